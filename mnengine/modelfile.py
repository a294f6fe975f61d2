"""Reading and writing mnengine's versioned ``.bin`` model files (specified in docs/FORMAT.md).

Layout: a 32-byte preamble (magic, version, header length, file length, CRC-32), a UTF-8
JSON header describing the graph, then 64-byte aligned little-endian tensors: float32 in
version 1; float32, int8 or int32 in version 2, which also stores int8 graphs' quantization;
version 3 is version 2 with MobileNetV3's operators and activations. A file is written in the
lowest of versions 2 and 3 that holds its graph, so that files without MobileNetV3 layers stay
readable by version-2 readers; all three are read.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .errors import ModelFormatError
from .graph import OPS, Graph, Node, Quantization, iter_weights

MAGIC = b"MNENGINE"
FORMAT_VERSION = 3  # the newest version, which save() writes for graphs that need it
READABLE_VERSIONS = (1, 2, 3)
#: What version 3 added: the operators and activations of MobileNetV3.
VERSION_3_OPS = ("depthwise5x5", "multiply", "hard_swish")
VERSION_3_ACTIVATIONS = ("hard_swish", "hard_sigmoid")
_PREAMBLE = struct.Struct("<8sIIQII")  # magic, version, header length, file length, crc32, reserved
_ALIGNMENT = 64
#: Tensor element types by their name in the header (version 1 has float32 only).
DTYPES = {"float32": np.dtype("<f4"), "int8": np.dtype("i1"), "int32": np.dtype("<i4")}

PathLike = Union[str, os.PathLike]


def _align(n: int) -> int:
    return -(-n // _ALIGNMENT) * _ALIGNMENT


def _version_3_feature(node: Node) -> Optional[str]:
    """What of `node` needs version 3 (its operator or activation), or None."""
    if node.op in VERSION_3_OPS:
        return f"operator {node.op!r}"
    if node.activation in VERSION_3_ACTIVATIONS:
        return f"activation {node.activation!r}"
    return None


def file_version(graph: Graph) -> int:
    """The version :func:`save` writes `graph` in: 3 if it uses an operator or activation that
    version 3 added, else 2."""
    return 3 if any(_version_3_feature(node) for node in graph.nodes) else 2


def save(graph: Graph, path: PathLike) -> None:
    """Writes ``graph`` to ``path`` as a .bin model file.

    The graph is checked first; the file appears complete or not at all (it is written to a
    temporary file beside ``path`` and renamed).
    """
    graph.shapes()
    tensors: List[Dict[str, Any]] = []
    blobs: List[bytes] = []
    offset = 0
    for name, array in iter_weights(graph):
        dtype_name = "float32" if array.dtype.kind == "f" else array.dtype.name
        data = np.ascontiguousarray(array, dtype=DTYPES[dtype_name]).tobytes()
        tensors.append({"name": name, "shape": list(array.shape), "dtype": dtype_name, "offset": offset})
        blobs.append(data)
        offset = _align(offset + len(data))
    index = {t["name"]: i for i, t in enumerate(tensors)}
    header = {
        "name": graph.name,
        "input_shape": list(graph.input_shape),
        "preprocessing": graph.preprocessing,
        "labels": graph.labels,
        "metadata": graph.metadata,
        "input_quantization": _quantization_json(graph.input_quantization),
        "nodes": [
            {
                "name": node.name,
                "op": node.op,
                "inputs": node.inputs,
                "stride": node.stride,
                "padding": list(node.padding),
                "activation": node.activation,
                "quantization": _quantization_json(node.quantization),
                "weights": {key: index[f"{node.name}/{key}"] for key in OPS[node.op] if key in node.weights},
            }
            for node in graph.nodes
        ],
        "tensors": tensors,
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    data_start = _align(_PREAMBLE.size + len(header_bytes))
    body = bytearray(data_start - _PREAMBLE.size + offset)
    body[: len(header_bytes)] = header_bytes
    for tensor, blob in zip(tensors, blobs):
        start = data_start - _PREAMBLE.size + tensor["offset"]
        body[start : start + len(blob)] = blob
    file_length = _PREAMBLE.size + len(body)
    preamble = _PREAMBLE.pack(MAGIC, file_version(graph), len(header_bytes), file_length, zlib.crc32(body), 0)

    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(preamble)
            f.write(body)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load(path: PathLike) -> Graph:
    """Reads and checks a .bin model file.

    The file is memory-mapped, not copied: the weights of the returned graph are read-only
    views of the mapping. Raises :class:`ModelFormatError` for anything malformed and
    ``OSError`` (e.g. ``FileNotFoundError``) if the file cannot be read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _PREAMBLE.size:
            raise ModelFormatError(
                f"{path}: {size} bytes is too short for an mnengine model (the preamble alone is {_PREAMBLE.size})"
            )
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    magic, version, header_length, file_length, crc, _ = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise ModelFormatError(f"{path}: not an mnengine model (magic {magic!r}, expected {MAGIC!r})")
    if version not in READABLE_VERSIONS:
        raise ModelFormatError(
            f"{path}: format version {version} is not supported; this mnengine reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    if file_length != size:
        raise ModelFormatError(
            f"{path}: file is {size} bytes but its preamble says {file_length}: truncated or padded"
        )
    actual_crc = zlib.crc32(memoryview(data)[_PREAMBLE.size :])
    if actual_crc != crc:
        raise ModelFormatError(
            f"{path}: checksum mismatch (stored CRC-32 {crc:#010x}, computed {actual_crc:#010x}): the file is corrupted"
        )
    if header_length > size - _PREAMBLE.size:
        raise ModelFormatError(f"{path}: header length {header_length} exceeds the file")
    try:
        header = json.loads(bytes(data[_PREAMBLE.size : _PREAMBLE.size + header_length]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFormatError(f"{path}: header is not valid UTF-8 JSON: {e}") from None
    try:
        return _graph_from_header(header, data, _align(_PREAMBLE.size + header_length), version)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None


def _quantization_json(quantization: Optional[Quantization]) -> Optional[Dict[str, Any]]:
    if quantization is None:
        return None
    scale, zero_point = quantization
    return {"scale": float(scale), "zero_point": int(zero_point)}


def _graph_from_header(header: Any, data: mmap.mmap, data_start: int, version: int) -> Graph:
    reader = _HeaderReader(header, "header")
    tensors = []
    for i, entry in enumerate(reader.list("tensors")):
        t = _HeaderReader(entry, f"tensor {i}")
        shape = t.int_list("shape")
        offset = t.int("offset")
        dtype_name = t.str("dtype") if version >= 2 else "float32"
        if dtype_name not in DTYPES:
            raise ModelFormatError(f"tensor {i}: dtype must be one of {sorted(DTYPES)}, got {dtype_name!r:.80}")
        dtype = DTYPES[dtype_name]
        count = math.prod(shape)
        start = data_start + offset
        if offset % _ALIGNMENT != 0 or start + count * dtype.itemsize > len(data):
            raise ModelFormatError(
                f"tensor {i} ({t.str('name')!r}, shape {shape}) at offset {offset} does not lie "
                f"aligned within the {len(data) - data_start} bytes of tensor data"
            )
        tensors.append(np.frombuffer(data, dtype=dtype, count=count, offset=start).reshape(shape))

    nodes = []
    for i, entry in enumerate(reader.list("nodes")):
        n = _HeaderReader(entry, f"node {i}")
        weights = {}
        for key, value in n.dict("weights").items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(tensors):
                raise ModelFormatError(f"node {i}: weight {key!r} refers to tensor {value!r}, which does not exist")
            weights[key] = tensors[value]
        padding = n.int_list("padding")
        if len(padding) != 4:
            raise ModelFormatError(f"node {i}: padding must have 4 values (top, bottom, left, right), got {padding}")
        node = Node(
            name=n.str("name"),
            op=n.str("op"),
            inputs=[_HeaderReader(x, f"node {i} input").value_str() for x in n.list("inputs")],
            weights=weights,
            stride=n.int("stride"),
            padding=tuple(padding),
            activation=n.str("activation"),
            quantization=n.quantization("quantization") if version >= 2 else None,
        )
        feature = _version_3_feature(node) if version < 3 else None
        if feature is not None:
            raise ModelFormatError(f"node {i} ({node.name!r}): {feature} needs format version 3; the file is version {version}")
        nodes.append(node)
    labels = header.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise ModelFormatError("header: labels must be a list of strings or null")
    metadata = reader.dict("metadata")
    if not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFormatError("header: metadata values must be strings")
    input_shape = reader.int_list("input_shape")
    graph = Graph(
        name=reader.str("name"),
        input_shape=tuple(input_shape),
        nodes=nodes,
        preprocessing=reader.str("preprocessing"),
        labels=labels,
        metadata=metadata,
        input_quantization=reader.quantization("input_quantization") if version >= 2 else None,
    )
    graph.shapes()
    return graph


class _HeaderReader:
    """Typed access to one JSON object of the header, with errors that name the field."""

    def __init__(self, value: Any, where: str):
        self.value = value
        self.where = where

    def _get(self, key: str, kind: type, kind_name: str) -> Any:
        if not isinstance(self.value, dict):
            raise ModelFormatError(f"{self.where}: expected a JSON object, got {type(self.value).__name__}")
        if key not in self.value:
            raise ModelFormatError(f"{self.where}: missing field {key!r}")
        item = self.value[key]
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise ModelFormatError(f"{self.where}: field {key!r} must be {kind_name}, got {item!r:.80}")
        return item

    def str(self, key: str) -> str:
        return self._get(key, str, "a string")

    def int(self, key: str) -> int:
        value = self._get(key, int, "an integer")
        if value < 0 or value > 1 << 40:
            raise ModelFormatError(f"{self.where}: field {key!r} is out of range: {value}")
        return value

    def list(self, key: str) -> list:
        return self._get(key, list, "a list")

    def dict(self, key: str) -> dict:
        return self._get(key, dict, "an object")

    def int_list(self, key: str) -> List[int]:
        values = self.list(key)
        if len(values) > 8 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 30 for v in values
        ):
            raise ModelFormatError(f"{self.where}: field {key!r} must be a short list of non-negative integers, got {values!r:.80}")
        return values

    def quantization(self, key: str) -> Optional[Quantization]:
        """A {"scale": number, "zero_point": integer} object, or null, as (scale, zero_point);
        the graph's checks judge the values."""
        value = self._get(key, (dict, type(None)), "an object or null")
        if value is None:
            return None
        q = _HeaderReader(value, f"{self.where} {key}")
        scale = q._get("scale", (int, float), "a number")
        if isinstance(scale, bool):
            raise ModelFormatError(f"{self.where} {key}: field 'scale' must be a number, got {scale!r}")
        zero_point = q._get("zero_point", int, "an integer")
        try:
            return (float(scale), zero_point)
        except OverflowError:
            raise ModelFormatError(f"{self.where} {key}: scale is out of range (an integer of {len(str(scale))} digits)") from None

    def value_str(self) -> str:
        if not isinstance(self.value, str):
            raise ModelFormatError(f"{self.where}: expected a string, got {self.value!r:.80}")
        return self.value
