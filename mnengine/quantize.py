"""Post-training int8 quantization of a float32 graph, calibrated on the user's images.

The scheme is TFLite's int8 scheme:

- weights int8 in [-127, 127], symmetric per output channel (zero point 0,
  ``weight_scale[c] = max |w[..., c]| / 127``);
- activations int8 with one scale and zero point per tensor, from the range of values each
  layer produced on the calibration images (min/max, widened to include 0); the network input's
  range is the preprocessing's own ([-1, 1] for MobileNet's, [0, 255] for none);
- biases int32 at scale ``input_scale * weight_scale[c]``;
- ReLU/ReLU6 stay as the activation, which the engine applies as the clamp of the requantized
  output; softmax and sigmoid compute in float32 on the dequantized values.

The engine requantizes in float32 (see csrc/kernels.h), quantizes the preprocessed float32
input itself and returns float32 outputs, so an int8 model file is used as a float one is.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .engine import default_threads, requested_isa
from .graph import FLOAT_OPS, INPUT, MAX_INT8_BIAS, Graph, Node, Quantization
from .images import is_single_image, to_batch

__all__ = ["DEFAULT_CALIBRATION_COUNT", "IMAGE_EXTENSIONS", "calibration_files", "quantize"]

#: Calibration images used when the caller does not say how many.
DEFAULT_CALIBRATION_COUNT = 100
#: Files a calibration folder contributes.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Images run through the float network at once while calibrating.
_CALIBRATION_BATCH = 8
#: The real range of a preprocessed input, by preprocessing.
_INPUT_RANGES = {"mobilenet": (-1.0, 1.0), "none": (0.0, 255.0)}

PathLike = Union[str, "os.PathLike[str]"]


def calibration_files(source: Union[PathLike, Sequence[PathLike]], count: int = DEFAULT_CALIBRATION_COUNT) -> List[Path]:
    """The image files of `source` (a folder, searched recursively for image extensions; a glob
    pattern; one file; or a list of files), sorted, and at most `count` of them spread evenly
    over that order. Raises ValueError if there are none."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"calibration count must be a positive integer, got {count!r}")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            files = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
    else:
        files = [Path(p) for p in source]
    if not files:
        raise ValueError(f"no calibration images found in {source}: expected a folder of images, a glob or files")
    if len(files) > count:
        files = [files[i * len(files) // count] for i in range(count)]
    return files


@dataclasses.dataclass
class _Range:
    low: float = math.inf
    high: float = -math.inf

    def update(self, low: float, high: float) -> None:
        self.low, self.high = min(self.low, low), max(self.high, high)


def quantize(graph: Graph, calibration: Union[np.ndarray, Iterable[Any]], *, threads: Optional[int] = None) -> Graph:
    """The int8 graph of the float32 `graph`, its activation ranges measured on `calibration`.

    `calibration` holds the images as `Engine.predict` takes them, preprocessed as it would
    preprocess them: image paths, PIL images, uint8 arrays (H, W, 3), a uint8 batch
    (N, H, W, 3), or float32 input already preprocessed at the model's size, (N, H, W, C).
    Raises ValueError for a graph the int8 kernels cannot run (naming the layer) and for an
    empty calibration set.
    """
    if graph.int8:
        raise ValueError(f"{graph.name} is already an int8 graph")
    shapes = graph.shapes()
    for node in graph.nodes:
        h, w, c = shapes[node.inputs[0]]
        if node.op == "conv3x3" and not (c == 3 and node.stride == 2):
            raise ValueError(f"layer {node.name!r}: int8 runs a full 3x3 convolution only as a first layer "
                             f"(3 input channels, stride 2); it has {c} input channels at stride {node.stride}")
    ranges = _calibration_ranges(graph, calibration, threads or default_threads())
    input_quantization = _activation_quantization(*_INPUT_RANGES[graph.preprocessing])
    quantizations = {INPUT: input_quantization}
    nodes = []
    for node, observed in zip(graph.nodes, ranges):
        quantization = None if node.op in FLOAT_OPS else _activation_quantization(observed.low, observed.high)
        weights = _quantized_weights(node, quantizations[node.inputs[0]]) if "kernel" in node.weights else {}
        nodes.append(dataclasses.replace(node, weights=weights, quantization=quantization))
        quantizations[node.name] = quantization
    metadata = dict(graph.metadata, quantization="int8")
    quantized = dataclasses.replace(graph, nodes=nodes, metadata=metadata, input_quantization=input_quantization)
    quantized.shapes()
    return quantized


def _calibration_ranges(graph: Graph, calibration: Union[np.ndarray, Iterable[Any]], threads: int) -> List[_Range]:
    """Each node's output range over the calibration images, from the float network run layer by
    layer (no fusion: every node's output exists)."""
    network = _core.Network(requested_isa(), threads, tuple(graph.input_shape), graph.core_nodes(), "never")
    if network.steps != [(i, 1) for i in range(len(graph.nodes))]:
        raise RuntimeError(f"calibration needs one step per node, got {network.steps}")
    ranges = [_Range() for _ in graph.nodes]
    out = np.empty((_CALIBRATION_BATCH, int(np.prod(network.output_shape))), np.float32)
    images = 0
    for batch in _batches(calibration, graph):
        for step, (low, high) in enumerate(network.value_ranges(batch, out[: batch.shape[0]])):
            ranges[step].update(low, high)
        images += batch.shape[0]
    if images == 0:
        raise ValueError("the calibration set is empty: int8 quantization needs images to measure ranges on")
    return ranges


def _batches(calibration: Union[np.ndarray, Iterable[Any]], graph: Graph) -> Iterable[np.ndarray]:
    """Preprocessed float32 batches of at most _CALIBRATION_BATCH images."""
    shape, preprocessing = tuple(graph.input_shape), graph.preprocessing
    if isinstance(calibration, np.ndarray) and not is_single_image(calibration):
        calibration = list(calibration) if calibration.dtype == np.uint8 else [calibration]
    elif is_single_image(calibration):
        calibration = [calibration]
    pending: List[np.ndarray] = []
    for item in calibration:
        pending.extend(to_batch(item, shape, preprocessing))
        while len(pending) >= _CALIBRATION_BATCH:
            yield np.stack(pending[:_CALIBRATION_BATCH])
            pending = pending[_CALIBRATION_BATCH:]
    if pending:
        yield np.stack(pending)


def _activation_quantization(low: float, high: float) -> Quantization:
    """TFLite's asymmetric int8 quantization of a range widened to include 0:
    scale = (high - low) / 255, zero point = round(-128 - low / scale)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"calibration produced a non-finite value range [{low}, {high}]")
    if high - low < 1e-6:  # a layer that output only zeros: any scale represents it
        high = low + 1e-6
    scale = float(np.float32((high - low) / 255.0))
    zero_point = int(np.clip(np.rint(-128.0 - low / scale), -128, 127))
    return scale, zero_point


def _quantized_weights(node: Node, input_quantization: Quantization) -> dict:
    """int8 kernel symmetric per output channel (the last axis), int32 bias at scale
    input_scale * weight_scale, and the float32 weight scales.

    A channel whose weights are tiny beside its bias (BatchNormalization folds a near-dead
    channel into one) gets a larger weight scale, as TFLite's quantizer gives it, so that its
    bias fits the int32 range the kernels allow (MAX_INT8_BIAS steps)."""
    kernel = np.asarray(node.weights["kernel"], np.float64)
    channels = kernel.shape[-1]
    largest = np.abs(kernel.reshape(-1, channels)).max(axis=0) / 127.0
    bias = np.asarray(node.weights["bias"], np.float64) if "bias" in node.weights else np.zeros(channels)
    needed_for_bias = np.abs(bias) / (np.float64(input_quantization[0]) * (MAX_INT8_BIAS // 2))
    weight_scale = np.maximum(largest, needed_for_bias)
    weight_scale = np.where(weight_scale > 0, weight_scale, 1.0).astype(np.float32)
    q_kernel = np.clip(np.rint(kernel / weight_scale.astype(np.float64)), -127, 127).astype(np.int8)
    weights = {"kernel": q_kernel, "weight_scale": weight_scale}
    if "bias" in node.weights:
        bias_scale = np.float64(input_quantization[0]) * weight_scale.astype(np.float64)
        weights["bias"] = np.rint(bias / bias_scale).astype(np.int32)
    return weights
