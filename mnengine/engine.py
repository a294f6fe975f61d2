"""The Engine: a loaded model ready to classify images."""

from __future__ import annotations

import dataclasses
import os
import pickle
import platform
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _core, modelfile
from .errors import ModelFormatError
from .graph import Graph
from .images import is_single_image, to_batch, top_k_pairs

ISA_ENVIRONMENT_VARIABLE = "MNENGINE_ISA"

#: How a pickled Engine carries its model: the model file's bytes, or its path.
PICKLE_BY = ("bytes", "path")


def default_threads() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def requested_isa() -> str:
    """The instruction set new Engines use: MNENGINE_ISA's if set (and available), else the best."""
    isa = os.environ.get(ISA_ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    available = _core.available_isas()
    if isa != "auto" and isa not in available:
        raise ValueError(
            f"{ISA_ENVIRONMENT_VARIABLE}={isa!r} is not available on this machine; "
            f"expected 'auto' or one of {available}"
        )
    return available[0] if isa == "auto" else isa


def cpu_info() -> Dict[str, Any]:
    """The machine, the kernel instruction sets it can run (best first) and the one new
    Engines will use (the best, unless the MNENGINE_ISA environment variable names another,
    e.g. MNENGINE_ISA=scalar for the portable reference kernels)."""
    return {
        "machine": platform.machine(),
        "available_isas": _core.available_isas(),
        "isa": requested_isa(),
        "default_threads": default_threads(),
    }


class Engine:
    """A MobileNet loaded from a ``.bin`` model file, ready to run.

    ``Engine(path, threads=None)`` reads and checks the file (raising
    :class:`mnengine.ModelFormatError` if it is malformed), packs the weights for this CPU's
    kernels and starts ``threads`` worker threads (default: the cores available to the
    process). One Engine may be used from several Python threads at once; inference runs
    with the GIL released.

    Engines pickle, so they can be sent to worker processes (multiprocessing, Ray, Dask). The
    pickle carries the model, ``threads`` as given (None: the receiving process's cores) and
    the kernel instruction set, so the unpickled Engine's predictions are bit-identical.
    With ``pickle_by="bytes"`` (the default) the model travels as the model file's bytes;
    an Engine built from a :class:`Graph` pickles the graph, as it is when pickled, written
    as a model file. With ``pickle_by="path"`` the pickle holds only the file's absolute
    path and checksum: the receiving process loads the file there (a shared file system)
    and raises :class:`pickle.UnpicklingError` if it is not the same file. Pickling by
    bytes raises :class:`pickle.PicklingError` if the file was changed since it was loaded.
    A machine that lacks the pickled Engine's instruction set unpickles it with its own
    (with a RuntimeWarning: outputs may then differ in the last bits).
    """

    def __init__(self, model: Union[str, "os.PathLike[str]", Graph], threads: Optional[int] = None,
                 pickle_by: str = "bytes"):
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256):
            raise ValueError(f"threads must be an integer from 1 to 256, got {threads!r}")
        if pickle_by not in PICKLE_BY:
            raise ValueError(f"pickle_by must be one of {PICKLE_BY}, got {pickle_by!r}")
        if isinstance(model, Graph):
            if pickle_by == "path":
                raise ValueError("pickle_by='path' needs a model file; an Engine built from a Graph "
                                 "pickles the graph as model-file bytes (pickle_by='bytes')")
            graph, source = model, model
        else:
            source = _ModelFile.identify(model)
            graph = modelfile.load(model)
        self._load(graph, threads, requested_isa(), source, pickle_by)

    def _load(self, graph: Graph, threads: Optional[int], isa: str, source: "_ModelSource", pickle_by: str) -> None:
        self._requested_threads = threads
        self._model_source = source
        self._pickle_by = pickle_by
        try:
            self._network = _core.Network(isa, default_threads() if threads is None else threads,
                                          tuple(graph.input_shape), graph.core_nodes(),
                                          input_quantization=graph.input_quantization)
        except ValueError as e:
            raise ModelFormatError(f"{graph.name}: {e}") from None
        out = self._network.output_shape
        self._output_shape: Tuple[int, ...] = (out[2],) if out[:2] == (1, 1) else tuple(out)
        self._num_classes = int(np.prod(self._output_shape))
        self._name = graph.name
        self._preprocessing = graph.preprocessing
        self._labels = list(graph.labels) if graph.labels is not None else None
        self._metadata = dict(graph.metadata)
        self._multiply_adds = graph.multiply_adds()
        self._int8 = graph.int8

    def __reduce__(self) -> Tuple[Any, Tuple[Dict[str, Any]]]:
        state: Dict[str, Any] = {"threads": self._requested_threads, "isa": self.isa, "pickle_by": self._pickle_by}
        source = self._model_source
        if self._pickle_by == "path":
            assert isinstance(source, _ModelFile)
            state["path"], state["crc32"] = source.path, source.checksum()
        else:
            state["model"] = _model_bytes(source)
        return _unpickle_engine, (state,)

    def __repr__(self) -> str:
        return (
            f"Engine({self._name!r}, input_shape={self.input_shape}, output_shape={self.output_shape}, "
            f"dtype={self.dtype!r}, isa={self.isa!r}, threads={self.threads})"
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(height, width, channels) of one input image."""
        return tuple(self._network.input_shape)

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """Shape of one image's output: (classes,) for a classifier, else (H, W, C)."""
        return self._output_shape

    @property
    def num_classes(self) -> int:
        """Values per image in the output (the classes of a classifier)."""
        return self._num_classes

    @property
    def labels(self) -> Optional[List[str]]:
        """Class names stored in the model file, or None."""
        return self._labels

    @property
    def preprocessing(self) -> str:
        """What predict() applies to 0..255 pixels: "mobilenet" (x / 127.5 - 1) or "none"."""
        return self._preprocessing

    @property
    def metadata(self) -> Dict[str, str]:
        return dict(self._metadata)

    @property
    def multiply_adds(self) -> int:
        """Multiply-accumulates of one inference on one image."""
        return self._multiply_adds

    @property
    def dtype(self) -> str:
        """What the layers compute in: "int8" for a quantized model file, else "float32". Input
        and output are float32 either way."""
        return "int8" if self._int8 else "float32"

    @property
    def isa(self) -> str:
        """The kernel instruction set in use: "avx512f", "avx2_fma", "neon" or "scalar"."""
        return self._network.isa

    @property
    def threads(self) -> int:
        return self._network.threads

    def preprocess(self, x: Any) -> np.ndarray:
        """The float32 (N, H, W, C) batch predict() would run for ``x``."""
        return to_batch(x, self.input_shape, self._preprocessing)

    def predict(self, x: Any) -> np.ndarray:
        """Runs the model on ``x`` and returns a float32 array of shape (N,) + output_shape.

        ``x`` may be an image file path, a PIL image, a uint8 array (H, W, 3) (also
        grayscale (H, W) or RGBA (H, W, 4)), a uint8 batch (N, H, W, 3), a list of such
        images, or a float array already preprocessed at the model's input size,
        (N, H, W, C) or (H, W, C). Images are resized (bilinear) to the input size and
        preprocessed as the model file says (MobileNet's x / 127.5 - 1 by default).
        """
        batch = to_batch(x, self._network.input_shape, self._preprocessing)
        out = np.empty((batch.shape[0], self._num_classes), np.float32)
        self._network.run(batch, out)
        return out.reshape((batch.shape[0],) + self._output_shape)

    def top_k(self, x: Any, k: int = 5) -> Union[List[Tuple[Any, float]], List[List[Tuple[Any, float]]]]:
        """The k most probable classes: (label, probability) pairs if the model file carries
        labels, else (class index, probability). For one image (a path, PIL image or
        single array) a list of pairs; for a batch or list, one such list per image."""
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.num_classes:
            raise ValueError(f"k must be an integer from 1 to {self.num_classes}, got {k!r}")
        probabilities = self.predict(x).reshape(-1, self.num_classes)
        pairs = top_k_pairs(probabilities, k, self._labels)
        return pairs[0] if is_single_image(x) else pairs

    @property
    def steps(self) -> List[Tuple[int, int]]:
        """The operators inference runs, as (first node, node count) into the model's nodes: a
        count above one is a MobileNet block fused into one operator."""
        return list(self._network.steps)

    def profile(self, x: Any) -> List[float]:
        """Wall time in seconds of each of :attr:`steps` for one run on ``x``."""
        batch = self.preprocess(x)
        out = np.empty((batch.shape[0], self.num_classes), np.float32)
        return self._network.profile(batch, out)


@dataclasses.dataclass
class _ModelFile:
    """The model file an Engine loaded: its absolute path and identity (device, inode, size,
    modification time), by which pickling tells whether the file there is still that one."""

    path: str
    identity: Tuple[int, int, int, int]
    _crc32: Optional[int] = None

    @staticmethod
    def _identity_of(stat: os.stat_result) -> Tuple[int, int, int, int]:
        return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)

    @classmethod
    def identify(cls, path: Union[str, "os.PathLike[str]"]) -> "_ModelFile":
        absolute = os.path.abspath(os.fspath(path))
        return cls(absolute, cls._identity_of(os.stat(absolute)))

    def read(self) -> bytes:
        """The file's bytes, if it is still the file that was loaded."""
        try:
            with open(self.path, "rb") as f:
                if self._identity_of(os.fstat(f.fileno())) != self.identity:
                    raise pickle.PicklingError(
                        f"{self.path} has changed since the Engine loaded it, so the Engine cannot be "
                        f"pickled with its model; load the file again to pickle the new model")
                return f.read()
        except OSError as e:
            raise pickle.PicklingError(f"cannot read the Engine's model file to pickle it: {e}") from None

    def checksum(self) -> int:
        """CRC-32 of the whole file (read once)."""
        if self._crc32 is None:
            self._crc32 = zlib.crc32(self.read())
        return self._crc32


#: Where an Engine's model came from, which pickling sends: a file, a Graph, or the bytes of
#: a model file (an Engine that was itself unpickled from bytes).
_ModelSource = Union[_ModelFile, Graph, bytes]


def _model_bytes(source: _ModelSource) -> bytes:
    """The model file an Engine would be rebuilt from."""
    if isinstance(source, _ModelFile):
        return source.read()
    if isinstance(source, Graph):
        with tempfile.TemporaryDirectory(prefix="mnengine-pickle-") as directory:
            path = Path(directory) / "model.bin"
            modelfile.save(source, path)
            return path.read_bytes()
    return source


def _graph_from_bytes(data: bytes) -> Graph:
    # modelfile.load maps a file; the mapping outlives the file's removal.
    with tempfile.TemporaryDirectory(prefix="mnengine-unpickle-") as directory:
        path = Path(directory) / "model.bin"
        path.write_bytes(data)
        return modelfile.load(path)


def _unpickle_engine(state: Dict[str, Any]) -> Engine:
    """Rebuilds a pickled Engine: the same model, threads as given and instruction set."""
    if "model" in state:
        source: _ModelSource = state["model"]
        graph = _graph_from_bytes(source)
    else:
        path = state["path"]
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise pickle.UnpicklingError(f"the pickled Engine's model file cannot be read here: {e}") from None
        if zlib.crc32(data) != state["crc32"]:
            raise pickle.UnpicklingError(
                f"{path} here is not the model file the Engine was pickled with (CRC-32 "
                f"{zlib.crc32(data):#010x}, expected {state['crc32']:#010x})")
        source = _ModelFile.identify(path)
        graph = _graph_from_bytes(data)
    isa = state["isa"]
    if isa not in _core.available_isas():
        fallback = requested_isa()
        warnings.warn(f"the pickled Engine ran {isa!r} kernels, which this machine lacks; it runs "
                      f"{fallback!r} here, so its outputs may differ in the last bits", RuntimeWarning)
        isa = fallback
    engine = Engine.__new__(Engine)
    engine._load(graph, state["threads"], isa, source, state["pickle_by"])
    return engine
