"""The .bin model format: round trip, and clear ModelFormatErrors for malformed files."""

import contextlib
import json
import resource
import struct
import zlib

import numpy as np
import pytest

import mnengine
from mnengine import ModelFormatError
from mnengine.graph import Graph, Node
from mnengine.modelfile import MAGIC, load, save


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "v2.bin"
    graph = mnengine.models.mobilenet_v2(0.35, 64, labels=[f"class {i}" for i in range(1000)])
    save(graph, path)
    return path


def rewrite(path, tmp_path, mutate, fix_checksum=True):
    """Copies the model with `mutate(bytearray)` applied, then recomputes the checksum."""
    data = bytearray(path.read_bytes())
    mutate(data)
    if fix_checksum:
        data[24:28] = struct.pack("<I", zlib.crc32(bytes(data[32:])))
    out = tmp_path / "mutated.bin"
    out.write_bytes(bytes(data))
    return out


def with_header(path, tmp_path, edit, version=None):
    """Copies the model with its JSON header edited by `edit(dict)`, the tensor data moved
    to the new aligned start and the preamble updated (its version `version`, or the file's
    own), so only the edit is wrong."""
    data = path.read_bytes()
    length = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[32 : 32 + length])
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    align = lambda n: -(-n // 64) * 64  # noqa: E731
    tensors = data[align(32 + length) :]
    body = text + bytes(align(32 + len(text)) - 32 - len(text)) + tensors
    version = struct.unpack_from("<I", data, 8)[0] if version is None else version
    preamble = struct.pack("<8sIIQII", MAGIC, version, len(text), 32 + len(body), zlib.crc32(body), 0)
    out = tmp_path / "edited.bin"
    out.write_bytes(preamble + body)
    return out


def test_round_trip_preserves_graph(model_path):
    original = mnengine.models.mobilenet_v2(0.35, 64, labels=[f"class {i}" for i in range(1000)])
    loaded = load(model_path)
    assert loaded.name == original.name and loaded.input_shape == original.input_shape
    assert loaded.labels == original.labels and loaded.preprocessing == "mobilenet"
    assert loaded.metadata == original.metadata
    assert [n.name for n in loaded.nodes] == [n.name for n in original.nodes]
    for a, b in zip(loaded.nodes, original.nodes):
        assert (a.op, a.inputs, a.stride, tuple(a.padding), a.activation) == (b.op, b.inputs, b.stride, tuple(b.padding), b.activation)
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            np.testing.assert_array_equal(a.weights[key], b.weights[key])


def test_tensors_are_aligned_and_mapped_not_copied(model_path):
    graph = load(model_path)
    kernel = graph.nodes[0].weights["kernel"]
    assert not kernel.flags.owndata and not kernel.flags.writeable
    assert kernel.__array_interface__["data"][0] % 64 == 0


def test_engine_runs_loaded_file(model_path):
    engine = mnengine.Engine(model_path)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    direct = mnengine.Engine(mnengine.models.mobilenet_v2(0.35, 64)).predict(x)
    np.testing.assert_array_equal(engine.predict(x), direct)
    assert engine.labels[3] == "class 3"


def test_version_1_files_load(model_path, tmp_path):
    """A version 1 file (no tensor dtypes, no quantization: float32 only) loads and runs as the
    version 2 file it was made from."""
    def as_version_1(header):
        del header["input_quantization"]
        for node in header["nodes"]:
            del node["quantization"]
        for tensor in header["tensors"]:
            del tensor["dtype"]

    path = with_header(model_path, tmp_path, as_version_1, version=1)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(mnengine.Engine(path).predict(x), mnengine.Engine(model_path).predict(x))


def test_no_partial_file_when_graph_invalid(tmp_path):
    bad = Graph("bad", (8, 8, 3), [Node("c", "conv1x1", ["input"], {"kernel": np.zeros((4, 2), np.float32)})])
    with pytest.raises(ModelFormatError, match="kernel shape"):
        save(bad, tmp_path / "bad.bin")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("length", [0, 5, 31, 32, 100, -1])
def test_truncated(model_path, tmp_path, length):
    data = model_path.read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:length] if length >= 0 else data[:-1])
    with pytest.raises(ModelFormatError, match="too short|truncated"):
        load(path)


def test_wrong_magic(model_path, tmp_path):
    path = rewrite(model_path, tmp_path, lambda d: d.__setitem__(slice(0, 8), b"NOTMNENG"), fix_checksum=False)
    with pytest.raises(ModelFormatError, match="not an mnengine model"):
        load(path)


def test_other_file_type(tmp_path):
    path = tmp_path / "photo.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFormatError, match="not an mnengine model"):
        mnengine.Engine(path)


def test_wrong_version(model_path, tmp_path):
    path = rewrite(model_path, tmp_path, lambda d: d.__setitem__(slice(8, 12), struct.pack("<I", 99)), fix_checksum=False)
    with pytest.raises(ModelFormatError, match="version 99 is not supported; this mnengine reads versions 1, 2, 3"):
        load(path)


@pytest.mark.parametrize("where", ["header", "weights", "last byte"])
def test_checksum_mismatch(model_path, tmp_path, where):
    size = model_path.stat().st_size
    offset = {"header": 40, "weights": size // 2, "last byte": size - 1}[where]

    def flip(d):
        d[offset] ^= 0x10

    path = rewrite(model_path, tmp_path, flip, fix_checksum=False)
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        load(path)


def test_header_not_json(model_path, tmp_path):
    path = rewrite(model_path, tmp_path, lambda d: d.__setitem__(slice(32, 36), b"\xff\xfe{["))
    with pytest.raises(ModelFormatError, match="not valid UTF-8 JSON"):
        load(path)


def test_header_length_beyond_file(model_path, tmp_path):
    path = rewrite(model_path, tmp_path, lambda d: d.__setitem__(slice(12, 16), struct.pack("<I", 1 << 31)))
    with pytest.raises(ModelFormatError, match="header length"):
        load(path)


@pytest.mark.parametrize("edit,message", [
    (lambda h: h["nodes"][3].__setitem__("op", "lstm"), "unknown operator"),
    (lambda h: h["nodes"][3].__setitem__("inputs", ["nowhere"]), "not produced by an earlier node"),
    (lambda h: h["nodes"][0].__setitem__("stride", 3), "stride must be 1 or 2"),
    (lambda h: h["nodes"][0].__setitem__("padding", [0, 1]), "padding must have 4 values"),
    (lambda h: h["nodes"][0].__setitem__("activation", "gelu"), "activation must be one of"),
    (lambda h: h["nodes"][1]["weights"].__setitem__("kernel", 10 ** 6), "does not exist"),
    (lambda h: h["tensors"][0].__setitem__("shape", [3, 3, 4, 16]), "kernel shape"),
    (lambda h: h["tensors"][0].__setitem__("shape", [3, 3, 3, 17]), "bias shape"),
    (lambda h: h["tensors"][0].__setitem__("shape", [1 << 20, 1 << 20, 1 << 20]), "does not lie aligned within"),
    (lambda h: h["tensors"][0].__setitem__("offset", 3), "does not lie aligned within"),
    (lambda h: h["tensors"][1].__setitem__("shape", [-3]), "non-negative integers"),
    (lambda h: h.__setitem__("input_shape", [64, 64]), "input shape must be"),
    (lambda h: h.__setitem__("input_shape", [64, 0, 3]), "input shape must be"),
    (lambda h: h.__setitem__("labels", ["a", "b"]), "2 labels for 1000 outputs"),
    (lambda h: h.__setitem__("labels", [1] * 3), "labels must be a list of strings"),
    (lambda h: h.__delitem__("nodes"), "missing field 'nodes'"),
    (lambda h: h.__setitem__("nodes", []), "no nodes"),
    (lambda h: h.__setitem__("preprocessing", "caffe"), "preprocessing must be one of"),
    (lambda h: h["nodes"].__setitem__(2, "node"), "expected a JSON object"),
    (lambda h: h["nodes"][5].__setitem__("name", h["nodes"][4]["name"]), "duplicate node name"),
])
def test_inconsistent_header(model_path, tmp_path, edit, message):
    path = with_header(model_path, tmp_path, edit)
    with pytest.raises(ModelFormatError, match=message):
        mnengine.Engine(path)


@contextlib.contextmanager
def address_space_headroom(extra):
    """Lets this process map at most `extra` bytes more than it has mapped now (RLIMIT_AS), so
    that a larger allocation fails. qemu-user ignores the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = mapped + extra if hard == resource.RLIM_INFINITY else min(mapped + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("size", [4096, 65536])
def test_activations_beyond_bound_rejected_before_allocation(model_path, tmp_path, size):
    """An input size whose activations exceed 1 GiB (at 4096x4096 only all layers together
    do; at 65536x65536 the first layer alone) is rejected naming the bound, with less
    address space left than the bound, so allocating the activations first would fail."""
    path = with_header(model_path, tmp_path, lambda h: h.__setitem__("input_shape", [size, size, 3]))
    with address_space_headroom(256 << 20), pytest.raises(ModelFormatError, match="activations of one image exceed 1 GiB"):
        mnengine.Engine(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        mnengine.Engine(tmp_path / "absent.bin")


@pytest.fixture(scope="module")
def int8_model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "v1-int8.bin"
    graph = mnengine.models.mobilenet_v1(0.25, 64)
    calibration = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    save(mnengine.quantize.quantize(graph, calibration), path)
    return path


def test_int8_round_trip(int8_model_path):
    graph = load(int8_model_path)
    assert graph.int8 and graph.metadata["quantization"] == "int8"
    conv = graph.nodes[0]
    assert conv.weights["kernel"].dtype == np.int8 and conv.weights["bias"].dtype == np.int32
    assert conv.weights["weight_scale"].dtype == np.float32 and conv.weights["weight_scale"].shape == (8,)
    assert isinstance(conv.quantization[0], float) and isinstance(conv.quantization[1], int)
    assert graph.nodes[-1].op == "softmax" and graph.nodes[-1].quantization is None
    engine = mnengine.Engine(int8_model_path)
    assert engine.dtype == "int8"
    y = engine.predict(np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32))
    assert y.dtype == np.float32 and y.shape == (2, 1000) and np.allclose(y.sum(axis=1), 1, atol=1e-5)


def _tensor_of(header, node, weight):
    return header["tensors"][header["nodes"][node]["weights"][weight]]


@pytest.mark.parametrize("edit,message", [
    (lambda h: h["tensors"][0].__setitem__("dtype", "float16"), "dtype must be one of"),
    (lambda h: h["tensors"][0].__setitem__("dtype", 8), "field 'dtype' must be a string"),
    (lambda h: h["tensors"][0].__delitem__("dtype"), "missing field 'dtype'"),
    (lambda h: _tensor_of(h, 0, "kernel").__setitem__("dtype", "int32"), "kernel must be int8"),
    (lambda h: _tensor_of(h, 0, "bias").__setitem__("dtype", "float32"), "bias must be int32"),
    (lambda h: _tensor_of(h, 0, "weight_scale").__setitem__("dtype", "int32"), "weight_scale must be float32"),
    (lambda h: _tensor_of(h, 1, "weight_scale").__setitem__("shape", [7]), "weight_scale shape"),
    (lambda h: h["nodes"][1]["weights"].__delitem__("weight_scale"), "missing weight 'weight_scale'"),
    (lambda h: h.__setitem__("input_quantization", {"scale": 0.01}), "missing field 'zero_point'"),
    (lambda h: h.__setitem__("input_quantization", {"scale": "0.01", "zero_point": 0}), "must be a number"),
    (lambda h: h.__setitem__("input_quantization", {"scale": True, "zero_point": 0}), "must be a number"),
    (lambda h: h.__setitem__("input_quantization", {"scale": 0.01, "zero_point": 1.5}), "must be an integer"),
    (lambda h: h.__setitem__("input_quantization", {"scale": 0.01, "zero_point": 128}), "zero point must be"),
    (lambda h: h.__setitem__("input_quantization", {"scale": 0.0, "zero_point": 0}), "scale must be a finite"),
    (lambda h: h.__setitem__("input_quantization", {"scale": -1.0, "zero_point": 0}), "scale must be a finite"),
    (lambda h: h.__setitem__("input_quantization", {"scale": 10 ** 400, "zero_point": 0}), "out of range"),
    (lambda h: h.__setitem__("input_quantization", [0.01, 0]), "must be an object or null"),
    (lambda h: h["nodes"][1].__setitem__("quantization", None), "output quantization must be a"),
    (lambda h: h["nodes"][2].__setitem__("quantization", None), "cannot read 'conv_pw_1', whose output is float32"),
    (lambda h: h["nodes"][2].__setitem__("quantization", {"scale": 1e31, "zero_point": 0}), "scale must be a finite"),
    (lambda h: h["nodes"][2].__setitem__("quantization", {"scale": 0.1, "zero_point": -129}), "zero point must be"),
    (lambda h: h["nodes"][-1].__setitem__("quantization", {"scale": 0.1, "zero_point": 0}), "takes no quantization"),
    (lambda h: h.__setitem__("input_quantization", None), "weight_scale and quantization belong to int8 graphs"),
])
def test_inconsistent_int8_header(int8_model_path, tmp_path, edit, message):
    path = with_header(int8_model_path, tmp_path, edit)
    with pytest.raises(ModelFormatError, match=message):
        mnengine.Engine(path)


def _int8_tensor_edit(path, tmp_path, node, weight, values):
    """The int8 model with the values of one weight tensor replaced (same size and dtype)."""
    data = bytearray(path.read_bytes())
    length = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[32 : 32 + length])
    tensor = _tensor_of(header, node, weight)
    start = -(-(32 + length) // 64) * 64 + tensor["offset"]
    blob = np.asarray(values, {"int8": np.int8, "int32": "<i4", "float32": "<f4"}[tensor["dtype"]]).tobytes()
    data[start : start + len(blob)] = blob
    return rewrite_bytes(data, tmp_path)


def rewrite_bytes(data, tmp_path):
    data[24:28] = struct.pack("<I", zlib.crc32(bytes(data[32:])))
    out = tmp_path / "values.bin"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("node,weight,values,message", [
    (0, "kernel", [-128], "int8 kernel values must lie in \\[-127, 127\\]"),
    (0, "bias", [1 << 30], "within \\+-2\\^29"),
    (0, "weight_scale", [0.0], "weight_scale values must be finite"),
    (0, "weight_scale", [np.nan], "weight_scale values must be finite"),
    (1, "weight_scale", [np.inf], "weight_scale values must be finite"),
    (1, "weight_scale", [-0.5], "weight_scale values must be finite"),
])
def test_int8_weight_values_checked(int8_model_path, tmp_path, node, weight, values, message):
    with pytest.raises(ModelFormatError, match=message):
        mnengine.Engine(_int8_tensor_edit(int8_model_path, tmp_path, node, weight, values))


def test_int8_limits_named(tmp_path):
    """A layer the int8 kernels cannot run is refused naming it: a full 3x3 convolution that is
    not a first layer, and a dense layer deeper than int32 sums allow."""
    q = (0.02, 0)
    int8 = lambda shape, channels: {"kernel": np.ones(shape, np.int8),  # noqa: E731
                                    "weight_scale": np.full(channels, 0.01, np.float32)}
    conv = Graph("conv", (8, 8, 4), [Node("conv", "conv3x3", ["input"], int8((3, 3, 4, 2), 2), 2, (0, 1, 0, 1),
                                          quantization=q)], input_quantization=q)
    with pytest.raises(ModelFormatError, match="'conv'.*must be a first layer"):
        save(conv, tmp_path / "conv.bin")
    dense = Graph("dense", (16, 16, 65), [Node("fc", "dense", ["input"], int8((16 * 16 * 65, 3), 3),
                                              quantization=q)], input_quantization=q)
    with pytest.raises(ModelFormatError, match="'fc'.*at most 16384 inputs"):
        save(dense, tmp_path / "dense.bin")


# ---- MobileNetV3: version 3's operators and activations

@pytest.fixture(scope="module")
def v3_model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "v3.bin"
    save(mnengine.models.mobilenet_v3_small(0.5, 65, classes=10, labels=[f"c{i}" for i in range(10)]), path)
    return path


def test_v3_round_trip(v3_model_path, model_path):
    """A MobileNetV3 file is version 3 and loads as the graph it was saved from (hard_sigmoid
    layers keep their unfolded weights); one without V3 layers stays version 2."""
    original = mnengine.models.mobilenet_v3_small(0.5, 65, classes=10, labels=[f"c{i}" for i in range(10)])
    assert struct.unpack_from("<I", v3_model_path.read_bytes(), 8)[0] == 3
    assert struct.unpack_from("<I", model_path.read_bytes(), 8)[0] == 2
    loaded = load(v3_model_path)
    assert (loaded.name, loaded.input_shape, loaded.labels, loaded.metadata) == (
        original.name, original.input_shape, original.labels, original.metadata)
    assert {n.op for n in loaded.nodes} >= {"depthwise5x5", "multiply"}
    assert {n.activation for n in loaded.nodes} >= {"hard_swish", "hard_sigmoid"}
    assert len(loaded.nodes) == len(original.nodes)
    for a, b in zip(loaded.nodes, original.nodes):
        assert (a.name, a.op, a.inputs, a.stride, tuple(a.padding), a.activation) == (
            b.name, b.op, b.inputs, b.stride, tuple(b.padding), b.activation)
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            np.testing.assert_array_equal(a.weights[key], b.weights[key])


def _node(header, name):
    return next(node for node in header["nodes"] if node["name"] == name)


def _first(header, op):
    return next(node for node in header["nodes"] if node["op"] == op)


def _set(node, key, value):
    node[key] = value


DW5 = "expanded_conv_3_depthwise"
SE = "expanded_conv_3_squeeze_excite_"


@pytest.mark.parametrize("edit,name,message", [
    (lambda h: _tensor_of(h, h["nodes"].index(_node(h, DW5)), "kernel").__setitem__("shape", [3, 3, 64]), DW5,
     r"kernel shape \(3, 3, 64\) does not fit input .*; expected \(5, 5, 64\)"),
    (lambda h: _set(_node(h, DW5), "stride", 3), DW5, "stride must be 1 or 2"),
    (lambda h: _set(_node(h, DW5), "padding", [5, 2, 1, 2]), DW5, "padding .* must be 0 to 4 each"),
    (lambda h: _set(_node(h, "expanded_conv_1_depthwise"), "padding", [0, 3, 0, 1]), "expanded_conv_1_depthwise",
     "padding .* must be 0 to 2 each"),
    (lambda h: _set(_node(h, DW5), "activation", "hard_sigmoid"), DW5, "takes no fused activation 'hard_sigmoid'"),
    (lambda h: _set(_node(h, SE + "mul"), "inputs", [DW5]), SE + "mul", r"takes 2 input\(s\), got 1"),
    (lambda h: _set(_node(h, SE + "mul"), "inputs", [DW5, DW5]), SE + "mul", r"the gate .* must be \(1, 1, 64\)"),
    (lambda h: _set(_node(h, SE + "mul"), "inputs", [DW5, "expanded_conv_squeeze_excite_conv_1"]), SE + "mul",
     r"must be \(1, 1, 64\) for input \(\d+, \d+, 64\), got \(1, 1, 16\)"),
    (lambda h: _set(_node(h, SE + "mul"), "activation", "relu"), SE + "mul", "takes no fused activation 'relu'"),
    (lambda h: _set(_node(h, SE + "mul"), "stride", 2), SE + "mul", "takes no stride or padding"),
    (lambda h: _set(_node(h, SE + "avg_pool"), "activation", "hard_swish"), SE + "avg_pool",
     "takes no fused activation 'hard_swish'"),
    (lambda h: _set(_first(h, "add"), "activation", "hard_swish"), "expanded_conv_2_add", "takes no fused activation 'hard_swish'"),
    (lambda h: _set(_node(h, "conv"), "activation", "hard_sigmoid"), "conv", "takes no fused activation 'hard_sigmoid'"),
    (lambda h: _set(_node(h, "predictions"), "activation", "swish"), "predictions", "activation must be one of"),
    (lambda h: _set(_node(h, "expanded_conv_3_project"), "op", "hard_swish"), "expanded_conv_3_project", "unexpected weights"),
])
def test_inconsistent_v3_header(v3_model_path, tmp_path, edit, name, message):
    path = with_header(v3_model_path, tmp_path, edit)
    with pytest.raises(ModelFormatError, match=message) as error:
        load(path)
    assert f"'{name}'" in str(error.value)


@pytest.mark.parametrize("version", [1, 2])
def test_v3_layers_need_version_3(v3_model_path, tmp_path, version):
    def edit(header):
        if version == 1:
            del header["input_quantization"]
            for node in header["nodes"]:
                del node["quantization"]
            for tensor in header["tensors"]:
                del tensor["dtype"]

    path = with_header(v3_model_path, tmp_path, edit, version=version)
    with pytest.raises(ModelFormatError, match=f"node 0 \\('conv'\\): activation 'hard_swish' needs format version 3; "
                                               f"the file is version {version}"):
        load(path)


def _hard_swish_graph(**node):
    return Graph("hs", (4, 5, 3), [Node("hs", "hard_swish", ["input"], **node)])


def test_standalone_hard_swish(tmp_path):
    """The element-wise hard_swish operator: saved as version 3; takes no weights, activation,
    stride or padding."""
    save(_hard_swish_graph(), tmp_path / "hs.bin")
    assert load(tmp_path / "hs.bin").nodes[0].op == "hard_swish"
    assert struct.unpack_from("<I", (tmp_path / "hs.bin").read_bytes(), 8)[0] == 3
    for node, message in [({"weights": {"kernel": np.ones((3, 3), np.float32)}}, "unexpected weights"),
                          ({"activation": "relu"}, "takes no fused activation 'relu'"),
                          ({"padding": (1, 1, 1, 1)}, "takes no stride or padding")]:
        with pytest.raises(ModelFormatError, match=f"node 'hs' \\(hard_swish\\): {message}"):
            _hard_swish_graph(**node).shapes()


def test_hard_sigmoid_folded_when_built():
    """hard_sigmoid is folded into its layer for the engine: kernel / 6, (bias + 3) / 6 (3 / 6
    without a bias) and the clamp [0, 1]; hard_swish sets the kernels' flag."""
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    bias = np.array([-3.0, 1.5], np.float32)
    graph = Graph("hs", (2, 2, 3), [Node("a", "conv1x1", ["input"], {"kernel": kernel, "bias": bias}, activation="hard_sigmoid"),
                                    Node("b", "dense", ["a"], {"kernel": np.ones((8, 4), np.float32)}, activation="hard_sigmoid"),
                                    Node("c", "conv1x1", ["b"], {"kernel": np.ones((4, 4), np.float32)}, activation="hard_swish")])
    a, b, c = graph.core_nodes()
    np.testing.assert_allclose(a["kernel"], kernel / 6, rtol=1e-7)
    np.testing.assert_allclose(a["bias"], [0.0, 0.75], rtol=1e-7)
    np.testing.assert_array_equal(b["bias"], [0.5] * 4)
    assert a["clamp"] == b["clamp"] == (0.0, 1.0) and "hard_swish" not in a
    assert c["hard_swish"] is True and c["clamp"] == (-np.inf, np.inf)
    np.testing.assert_array_equal(graph.nodes[0].weights["kernel"], kernel)  # the graph keeps them unfolded


@pytest.mark.parametrize("edit,message", [
    (lambda h: _set(h["nodes"][1], "activation", "hard_swish"), "activation 'hard_swish' runs in float32 only"),
    (lambda h: _set(h["nodes"][-2], "activation", "hard_sigmoid"), "activation 'hard_sigmoid' runs in float32 only"),
    (lambda h: _set(h["nodes"][1], "op", "depthwise5x5"), "operator 'depthwise5x5' runs in float32 only"),
    (lambda h: _set(h["nodes"][-3], "op", "hard_swish"), "operator 'hard_swish' runs in float32 only"),
])
def test_int8_refuses_v3_layers(int8_model_path, tmp_path, edit, message):
    path = with_header(int8_model_path, tmp_path, edit, version=3)
    with pytest.raises(ModelFormatError, match=f"{message}: an int8 graph cannot hold it"):
        load(path)


def test_depthwise5x5_window():
    """A 5x5 depthwise window takes padding up to 4 per side, and needs 5x5 with it."""
    def graph(shape, padding, stride=1):
        kernel = np.ones((5, 5, shape[2]), np.float32)
        return Graph("dw5", shape, [Node("dw", "depthwise5x5", ["input"], {"kernel": kernel}, stride, padding)])

    assert graph((2, 3, 5), (4, 0, 3, 1)).output_shape == (2, 3, 5)
    assert graph((9, 8, 2), (1, 2, 0, 0), 2).output_shape == (4, 2, 2)
    with pytest.raises(ModelFormatError, match=r"node 'dw' \(depthwise5x5\): input \(2, 3\) with padding \(1, 1, 1, 1\) "
                                               r"is smaller than the 5x5 window"):
        graph((2, 3, 5), (1, 1, 1, 1)).shapes()
