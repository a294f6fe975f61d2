"""Keras -> mnengine: ``python -m mnengine.export MODEL -o model.bin``.

Reads Keras 3 ``.keras`` archives, legacy ``.h5`` models (Keras 2, tf.keras, Keras 3) and
weights-only files of keras.applications models (Keras 2's ``.h5``, Keras 3's ``.weights.h5``;
given ``arch``, ``alpha`` and ``size``) with h5py alone, converts
MobileNet v1/v2/v3 and models built on them (see :data:`converter.SUPPORTED_LAYERS`) into an
mnengine graph, writes the ``.bin`` and checks that it loads and runs. Nothing is written when
the model cannot be converted.

The 1000 ImageNet class names shipped in ``mnengine/data/imagenet_labels.txt`` are Keras's
(``imagenet_class_index.json``): the first WordNet lemma of each synset with spaces as
underscores, derived from the synset and lemma lists of the timm package (Apache-2.0).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import models, quantize
from ..engine import Engine
from ..graph import Graph
from ..modelfile import save
from .converter import SUPPORTED_LAYERS, UnsupportedModelError, convert
from .keras_files import SavedModel

__all__ = ["ExportSummary", "UnsupportedModelError", "SUPPORTED_LAYERS", "export", "from_keras", "imagenet_labels"]

PathLike = Union[str, "os.PathLike[str]"]
ARCHITECTURES = models.ARCHITECTURES
_V3 = ("mobilenet_v3_small", "mobilenet_v3_large")
#: The classifier layer of each architecture: a weights-only file has the top if it holds it.
_CLASSIFIER = {"mobilenet_v1": "conv_preds", "mobilenet_v2": "predictions", "mobilenet_v3_small": "logits",
               "mobilenet_v3_large": "logits"}

Size = Union[int, Tuple[int, int]]


@dataclasses.dataclass
class ExportSummary:
    """What :func:`export` wrote."""

    source: str
    source_format: str
    keras_version: str
    output: str
    nodes: int  # mnengine operators
    keras_layers: Optional[int]  # the Keras layers they came from (None: a weights-only file has no architecture)
    parameters: int  # values stored in the file, BatchNormalization folded
    keras_parameters: int  # values of the Keras model's variables, as its count_params() counts them
    multiply_adds: int
    input_shape: tuple
    output_shape: tuple
    preprocessing: str
    labels: str
    file_bytes: int
    check: str
    dtype: str = "float32"
    calibration: Optional[str] = None  # int8: the images the ranges were measured on

    def __str__(self) -> str:
        layers = f"{self.nodes} mnengine operators"
        if self.keras_layers is not None:
            layers += f" from {self.keras_layers} Keras layers (BatchNormalization, activations and padding folded in)"
        return "\n".join([
            f"exported {self.source} ({self.source_format}, Keras {self.keras_version}) -> {self.output}",
            f"  layers:                 {layers}",
            f"  parameters:             {self.parameters:,} stored "
            f"(Keras counts {self.keras_parameters:,} before BatchNormalization is folded)",
            f"  multiply-adds:          {self.multiply_adds:,} per image",
            f"  input -> output:        {self.input_shape} -> {self.output_shape}",
            f"  preprocessing:          {self.preprocessing}",
            f"  labels:                 {self.labels}",
            f"  precision:              {self.dtype}" + (f", calibrated on {self.calibration}" if self.calibration else ""),
            f"  file size:              {self.file_bytes:,} bytes",
            f"  check:                  {self.check}",
        ])


def imagenet_labels() -> List[str]:
    """The 1000 ImageNet class names in Keras's order."""
    path = Path(__file__).resolve().parent.parent / "data" / "imagenet_labels.txt"
    return path.read_text(encoding="utf-8").splitlines()


def _read_labels(path: PathLike) -> List[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read labels from {path}: {e}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def input_size(size: Optional[Union[Size, str]]) -> Optional[Tuple[int, int]]:
    """(height, width) of a size given as N, (H, W) or the text "N" or "HxW"; None stays None."""
    if size is None:
        return None
    value = size
    if isinstance(value, str):
        parts = value.lower().split("x")
        try:
            value = tuple(int(p) for p in parts)
        except ValueError:
            value = None
        if value is not None and len(value) == 1:
            value = value[0]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in value)):
        return int(value[0]), int(value[1])
    raise ValueError(f"size must be a positive integer N or HxW (height x width), got {size!r}")


def _keras2_v3_name(name: str) -> str:
    """The Keras 3 name of a keras.applications MobileNetV3 layer named as Keras 2 names it:
    ``expanded_conv_1/expand/BatchNorm`` -> ``expanded_conv_1_expand_bn``, ``Conv_1`` -> ``conv_1``,
    ``Logits`` -> ``logits`` (the layers come in the same order; only the names changed)."""
    return name.replace("/BatchNorm", "_bn").replace("/", "_").lower()


def _weights_only_graph(saved: SavedModel, arch: Optional[str], alpha: Optional[float],
                        size: Optional[Tuple[int, int]], minimalistic: bool) -> Tuple[Graph, int]:
    """The graph of a weights-only file and the number of values in its weights."""
    if arch is None or alpha is None or size is None:
        raise UnsupportedModelError(
            f"{saved.path} holds weights only, no architecture: give arch, alpha and size "
            f"(--arch {'|'.join(ARCHITECTURES)} --alpha A --size S, and --minimalistic for a minimalistic "
            "MobileNetV3)")
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if minimalistic and arch not in _V3:
        raise ValueError(f"minimalistic is a MobileNetV3 variant; {arch} has none")
    if arch not in _V3 and size[0] != size[1]:
        raise ValueError(f"{arch} weights-only files export at a square size, got {size[0]}x{size[1]}")
    variant = {"minimalistic": minimalistic} if arch in _V3 else {}
    try:
        # With the classifier: the file says whether it has one, and of how many classes.
        layers = [(name, class_name, list(shapes))
                  for name, class_name, shapes in models.keras_layers(arch, alpha, **variant)]
    except ValueError as e:
        raise UnsupportedModelError(f"{saved.path}: {e}") from None
    weights, unknown = saved.layer_weights(layers, rename=_keras2_v3_name if arch in _V3 else None)
    if unknown:
        # Leaving them out would export a different model than the one saved.
        raise UnsupportedModelError(
            f"{saved.path} holds weights of layers that {arch} does not have ({', '.join(unknown)}): a weights-only "
            f"file must be a keras.applications model's own; save a model with layers of its own whole, "
            f"model.save('model.keras'), and export that")
    head = weights.get(_CLASSIFIER[arch])
    classes = int(head["kernel"].shape[-1]) if head else 1000
    builder = getattr(models, arch)
    try:
        graph = builder(alpha, size if arch in _V3 else size[0], weights=weights, include_top=head is not None,
                        classes=classes, **variant)
    except ValueError as e:
        variant_note = " minimalistic" if minimalistic else ""
        raise UnsupportedModelError(f"{saved.path}: not {arch}{variant_note} alpha {alpha} weights: {e}") from None
    return graph, sum(w.size for layer in weights.values() for w in layer.values())


def _graph(saved: SavedModel, arch: Optional[str], alpha: Optional[float], size: Optional[Tuple[int, int]],
           minimalistic: bool) -> Tuple[Graph, Optional[int], int]:
    """The graph of `saved`, the number of Keras layers it comes from (None for a weights-only
    file, which has no architecture to count) and their parameters as Keras counts them."""
    if saved.config is None:
        graph, keras_parameters = _weights_only_graph(saved, arch, alpha, size, minimalistic)
        return graph, None, keras_parameters
    given = [option for option, value in (("arch", arch), ("alpha", alpha), ("minimalistic", minimalistic)) if value]
    if given:
        raise ValueError(f"{saved.path} holds a whole model: {', '.join(given)} describe weights-only files")
    keras2 = saved.keras_version.startswith("2.")
    conversion = convert(saved.config, saved.weights, size, keras2)
    name = saved.config.get("config", {}).get("name") or saved.path.stem
    preprocessing = "none" if conversion.rescales_input else "mobilenet"
    graph = Graph(str(name), conversion.input_shape, conversion.nodes, preprocessing)
    return graph, conversion.keras_layers, conversion.keras_parameters


Calibration = Union[PathLike, Sequence[Any], np.ndarray]


def export(model: PathLike, output: PathLike, *, labels: Optional[PathLike] = None, arch: Optional[str] = None,
           alpha: Optional[float] = None, size: Optional[Union[Size, str]] = None, minimalistic: bool = False,
           int8: bool = False, calibration: Optional[Calibration] = None,
           calibration_count: int = quantize.DEFAULT_CALIBRATION_COUNT) -> ExportSummary:
    """Converts the Keras file `model` into mnengine's `output` .bin and checks it runs.

    `labels` is a text file with one class name per line; without it a 1000-class
    classifier gets the ImageNet names. `size` (N, (H, W) or "HxW") is the input size to
    export a model whose input size is not fixed at (Keras's MobileNetV3 default,
    ``input_shape=None``). `arch`, `alpha`, `size` and `minimalistic` (MobileNetV3) describe a
    weights-only file. With `int8` the model is quantized (see :mod:`mnengine.quantize`), its activation
    ranges measured on `calibration`: a folder of images, a glob, a list of image files, or
    images as ``Engine.predict`` takes them (preprocessed as predict preprocesses them); at
    most `calibration_count` of them are used. Raises :class:`UnsupportedModelError` (a
    ValueError) naming the layer that cannot be converted; nothing is written then.
    """
    size = input_size(size)
    with SavedModel(model) as saved:
        graph, keras_layers, keras_parameters = _graph(saved, arch, alpha, size, minimalistic)
        source_format, keras_version = saved.format, saved.keras_version
    output_shape = graph.output_shape  # validates every shape of the graph
    classes = int(np.prod(output_shape))
    if labels is not None:
        names = _read_labels(labels)
        if len(names) != classes:
            raise ValueError(f"{labels} has {len(names)} labels, the model outputs {classes} values")
        graph.labels, labels_note = names, f"{len(names)} from {labels}"
    elif output_shape == (1, 1, 1000):
        graph.labels, labels_note = imagenet_labels(), "the 1000 ImageNet classes"
    else:
        labels_note = "none (pass --labels FILE to name the classes)"
    graph.metadata.update({"source": Path(model).name, "source_format": source_format, "keras_version": keras_version})
    calibration_note = None
    if int8:
        images, calibration_note = _calibration_images(calibration, calibration_count)
        try:
            graph = quantize.quantize(graph, images)
        except ValueError as e:
            raise UnsupportedModelError(f"{model}: cannot be quantized to int8: {e}") from None
    elif calibration is not None:
        raise ValueError("calibration images are for int8 export: pass int8=True (--int8) with them")
    save(graph, output)
    try:
        check = _check(output, graph)
    except Exception:
        Path(output).unlink(missing_ok=True)
        raise
    return ExportSummary(
        source=str(model), source_format=source_format, keras_version=keras_version, output=str(output),
        nodes=len(graph.nodes), keras_layers=keras_layers, parameters=graph.parameters(),
        keras_parameters=keras_parameters, multiply_adds=graph.multiply_adds(),
        input_shape=tuple(graph.input_shape), output_shape=tuple(output_shape),
        preprocessing=graph.preprocessing, labels=labels_note, file_bytes=Path(output).stat().st_size, check=check,
        dtype="int8" if graph.int8 else "float32", calibration=calibration_note)


def _calibration_images(calibration: Optional[Calibration], count: int) -> Tuple[Sequence[Any], str]:
    """The calibration images of an int8 export and a note naming them."""
    if calibration is None:
        raise ValueError("int8 export needs calibration images (--calibration PHOTOS_DIR): the ranges of the "
                         "activations are measured on them; use images like those the model will see")
    if isinstance(calibration, (str, os.PathLike)) or (
            isinstance(calibration, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in calibration)):
        files = quantize.calibration_files(calibration, count)
        where = calibration if isinstance(calibration, (str, os.PathLike)) else "the given files"
        return files, f"{len(files)} images from {where}"
    images = list(calibration)[:count]
    return images, f"{len(images)} given images"


def _check(path: PathLike, graph: Graph) -> str:
    """Loads the written file and runs it on a random image: finite outputs of the right shape."""
    engine = Engine(path, threads=1)
    x = np.random.default_rng(0).uniform(-1, 1, (1,) + tuple(graph.input_shape)).astype(np.float32)
    y = engine.predict(x)
    if not np.all(np.isfinite(y)):
        raise UnsupportedModelError("the exported model produces non-finite outputs on a random input")
    return f"loaded and ran on a random input: {y.shape[1:]} finite outputs"


def from_keras(model: Any, path: PathLike, *, labels: Optional[PathLike] = None,
               size: Optional[Union[Size, str]] = None, int8: bool = False,
               calibration: Optional[Calibration] = None,
               calibration_count: int = quantize.DEFAULT_CALIBRATION_COUNT) -> ExportSummary:
    """Exports a live ``keras.Model`` (saved to a temporary ``.keras`` file, then converted);
    `labels`, `size` (for a model whose input size is not fixed), `int8`, `calibration` and
    `calibration_count` as for :func:`export`."""
    size = input_size(size)  # checked before the model is saved
    with tempfile.TemporaryDirectory(prefix="mnengine-export-") as tmp:
        saved = Path(tmp) / "model.keras"
        model.save(saved)
        return export(saved, path, labels=labels, size=size, int8=int8, calibration=calibration,
                      calibration_count=calibration_count)
