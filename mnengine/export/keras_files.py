"""Reading what Keras saves, with h5py and the standard library only (no TensorFlow):

- Keras 3 ``.keras`` archives: a zip of ``config.json`` (the model's architecture) and
  ``model.weights.h5``, where each layer's variables sit at ``layers/<name>/vars/<i>`` and
  ``<name>`` is not the layer's name but its class in snake case, numbered within its model
  (``conv2d``, ``conv2d_1``, ...), as keras.src.saving.saving_lib writes them;
- legacy HDF5 ``.h5`` models (Keras 2, tf.keras, Keras 3's legacy format): the architecture in
  the root attribute ``model_config``, the weights under ``model_weights/<layer name>``;
- weights-only ``.h5`` files of Keras 2 (``model.save_weights``, the keras.applications
  release files): layer groups at the root, named by the layers' names;
- weights-only ``.weights.h5`` files of Keras 3 (``model.save_weights``): the layout of a
  ``.keras`` archive's ``model.weights.h5``, without the config that names the groups.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelFormatError

# One layer's variables by name: kernel, bias, gamma, ... (a depthwise kernel is "kernel" in
# Keras 3's files and "depthwise_kernel" in Keras 2's).
Weights = Dict[str, np.ndarray]

# A layer of a known architecture, for reading a weights-only file: its name, its Keras class
# and its variables' names in the order Keras creates them.
LayerSpec = Tuple[str, str, Sequence[str]]

# SavedModel.format of each kind of file.
KERAS_ARCHIVE = "keras"
H5_MODEL = "h5"
KERAS2_WEIGHTS = "weights-only h5"
KERAS3_WEIGHTS = "weights-only .weights.h5"


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in the export extra
        raise ImportError("reading Keras files needs h5py: pip install 'mnengine[export]'") from e
    return h5py


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def snake_case(class_name: str) -> str:
    """keras.src.utils.naming.to_snake_case: ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class Keras3Names:
    """The names keras.src.saving.saving_lib gives the layers of one model, in the model's
    order: the class in snake case, numbered within the model per class (``conv2d``,
    ``conv2d_1``, ...), not the layer's own name."""

    def __init__(self) -> None:
        self._used: Dict[str, int] = {}

    def __call__(self, class_name: str) -> str:
        base = snake_case(class_name)
        if base in self._used:
            self._used[base] += 1
            return f"{base}_{self._used[base]}"
        self._used[base] = 0
        return base


def variable_names(class_name: str, config: Dict[str, Any]) -> List[str]:
    """The names of a layer's variables in the order Keras creates (and saves) them."""
    if class_name in ("Conv2D", "DepthwiseConv2D", "Dense"):
        return ["kernel"] + (["bias"] if config.get("use_bias", True) else [])
    if class_name == "BatchNormalization":
        return ((["gamma"] if config.get("scale", True) else []) + (["beta"] if config.get("center", True) else [])
                + ["moving_mean", "moving_variance"])
    return []


def _normalize_variable(name: str) -> str:
    """``conv_dw_1/depthwise_kernel:0`` -> ``depthwise_kernel``; ``bn/gamma:0`` -> ``gamma``."""
    return name.split("/")[-1].split(":")[0]


class WeightStore:
    """Variables of the layers of a saved model, found by the layer's place in the model."""

    def layer(self, keras3_path: Sequence[str], legacy_path: Sequence[str]) -> Weights:
        raise NotImplementedError


class Keras3Weights(WeightStore):
    """``model.weights.h5`` of a ``.keras`` archive."""

    def __init__(self, h5file: Any, configs: Dict[tuple, tuple]):
        self._file = h5file
        self._configs = configs  # keras3 path -> (class name, config), to name the variables

    def layer(self, keras3_path: Sequence[str], legacy_path: Sequence[str]) -> Weights:
        group_path = "/".join(part for name in keras3_path for part in ("layers", name)) + "/vars"
        class_name, config = self._configs[tuple(keras3_path)]
        names = variable_names(class_name, config)
        group = self._file.get(group_path)
        stored = sorted(group.keys(), key=int) if group is not None else []
        if len(stored) != len(names):
            raise ModelFormatError(f"layer {legacy_path[-1]!r} ({class_name}): expected variables {names} at "
                                   f"{group_path}, found {len(stored)}")
        return {name: np.asarray(group[key], np.float32) for name, key in zip(names, stored)}


class LegacyWeights(WeightStore):
    """Layer groups named by layer names (``model_weights`` of an h5 model, or a weights-only
    file), each listing its variables in the attribute ``weight_names``."""

    def __init__(self, root: Any):
        self._root = root

    def layer(self, keras3_path: Sequence[str], legacy_path: Sequence[str]) -> Weights:
        group = self._root.get(legacy_path[0])
        if group is None:
            raise ModelFormatError(f"the file has no weights for layer {legacy_path[0]!r}")
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        # A nested model's group lists all its layers' variables as "<layer>/<variable>".
        inner = legacy_path[1:]
        if inner:
            names = [n for n in names if n.split("/")[-2] == inner[-1]]
        weights = {}
        for name in names:
            dataset = group.get(name)
            if dataset is None:  # Keras 3's legacy writer omits the layer prefix
                dataset = group.get("/".join(name.split("/")[1:]))
            if dataset is None:
                raise ModelFormatError(f"layer {legacy_path[-1]!r}: variable {name!r} is listed but missing")
            weights[_normalize_variable(name)] = np.asarray(dataset, np.float32)
        return weights

    def layer_names(self) -> List[str]:
        return [_text(n) for n in self._root.attrs.get("layer_names", [])]


def _holds_arrays(group: Any) -> bool:
    h5py = _h5py()
    return bool(group.visititems(lambda _, item: True if isinstance(item, h5py.Dataset) else None))


class SavedModel:
    """A Keras file opened for export: its architecture (None for a weights-only file) and
    its weights. Use as a context manager (it holds the HDF5 file open)."""

    def __init__(self, path: "str | Path"):
        self.path = Path(path)
        self.config: Optional[Dict[str, Any]] = None
        self._archive = None
        h5py = _h5py()
        if not self.path.is_file():
            raise FileNotFoundError(f"no such Keras model file: {self.path}")
        if zipfile.is_zipfile(self.path):
            self._archive = zipfile.ZipFile(self.path)
            names = self._archive.namelist()
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelFormatError(f"{self.path}: a zip but not a .keras archive (no config.json / model.weights.h5)")
            self.config = json.loads(self._archive.read("config.json"))
            self._h5 = h5py.File(self._archive.open("model.weights.h5"), "r")
            self.format = KERAS_ARCHIVE
        else:
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as e:
                raise ModelFormatError(f"{self.path}: neither a .keras archive nor an HDF5 file ({e})") from None
            if "model_config" in self._h5.attrs:
                self.config = json.loads(_text(self._h5.attrs["model_config"]))
                self.format = H5_MODEL
            elif "layer_names" in self._h5.attrs:
                self.format = KERAS2_WEIGHTS
            elif isinstance(self._h5.get("layers"), h5py.Group):
                self.format = KERAS3_WEIGHTS
            else:
                found = f"attributes {sorted(self._h5.attrs)} and members {sorted(self._h5)}"
                self._h5.close()
                raise ModelFormatError(
                    f"{self.path}: an HDF5 file but not one Keras saved: expected the attribute model_config "
                    f"(a model), the attribute layer_names (Keras 2 weights) or the group layers (Keras 3 weights), "
                    f"found {found}")
        self.keras_version = self._version()

    def _version(self) -> str:
        if self.format == KERAS3_WEIGHTS:  # Keras 3 records no version in weights files; the layout is its own
            return "3"
        if self._archive is not None and "metadata.json" in self._archive.namelist():
            return str(json.loads(self._archive.read("metadata.json")).get("keras_version", "unknown"))
        root = self._h5["model_weights"] if "model_weights" in self._h5 else self._h5
        for attrs in (self._h5.attrs, root.attrs):
            if "keras_version" in attrs:
                return _text(attrs["keras_version"])
        return "unknown"

    def weights(self, configs: Dict[tuple, tuple]) -> WeightStore:
        if self.format == KERAS_ARCHIVE:
            return Keras3Weights(self._h5, configs)
        return LegacyWeights(self._h5["model_weights"] if self.format == H5_MODEL else self._h5)

    def layer_weights(self, layers: Sequence[LayerSpec], rename: Optional[Callable[[str], str]] = None
                      ) -> Tuple[Dict[str, Weights], List[str]]:
        """A weights-only file read as the weights of a model whose layers with variables are
        `layers`, in the model's order: ({layer name: its variables} of those the file holds,
        the layers or groups of the file holding variables that are none of `layers`). In a
        Keras 2 file, which names its groups by layer, a name that is none of `layers`' is
        looked up as `rename(name)` too (the architecture's Keras 3 name of a layer Keras 2
        named otherwise)."""
        if self.format == KERAS3_WEIGHTS:
            return self._keras3_layer_weights(layers)
        store = LegacyWeights(self._h5)
        expected = {name for name, _, _ in layers}
        weights, unknown = {}, []
        for name in store.layer_names():
            variables = store.layer((), (name,))
            known = name if name in expected or rename is None else rename(name)
            if known in expected and variables:
                weights[known] = variables
            elif variables:
                unknown.append(name)
        return weights, unknown

    def _keras3_layer_weights(self, layers: Sequence[LayerSpec]) -> Tuple[Dict[str, Weights], List[str]]:
        """Keras 3 names the groups by class and position (see :class:`Keras3Names`), so the
        model's layer order is what tells which group is which layer; a layer whose group is
        missing (the classifier of a model without top) is left out."""
        groups = self._h5["layers"]
        group_names = Keras3Names()
        weights, read = {}, set()
        for name, class_name, variables in layers:
            group_name = group_names(class_name)
            group = groups.get(f"{group_name}/vars")
            if group is None:
                continue
            stored = sorted(group.keys(), key=int)
            if len(stored) != len(variables):
                raise ModelFormatError(
                    f"{self.path}: layers/{group_name}/vars holds {len(stored)} variables, but {class_name} {name!r} of "
                    f"the architecture given has {list(variables)}: not weights of that architecture")
            weights[name] = {variable: np.asarray(group[key], np.float32) for variable, key in zip(variables, stored)}
            read.add(group_name)
        unknown = [name for name in groups if name not in read and _holds_arrays(groups[name])]
        return weights, unknown

    def close(self) -> None:
        self._h5.close()
        if self._archive is not None:
            self._archive.close()

    def __enter__(self) -> "SavedModel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
