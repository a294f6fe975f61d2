"""The peers ``--compare`` runs: each builds its own model file from an mnengine Graph (same
weights, same padding, same fused activations) and returns a callable for one inference.

Given calibration images (``--compare --int8``) a peer builds a full-integer int8 model of the
float graph with its own quantizer, calibrated on those images: LiteRT through TensorFlow's
converter with a representative dataset, ONNX Runtime and OpenVINO on the QDQ model of
onnxruntime.quantization.quantize_static (per-channel int8 weights, int8 activations). Their
inputs and outputs stay float32, as mnengine's int8 engine's do.

A peer whose package is not installed is skipped; one that fails to build or load is
reported with its error. Inputs are converted to each peer's layout before timing.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..graph import INPUT, Graph, Node


@contextlib.contextmanager
def quiet_native_output():
    """Sends what native code prints to file descriptors 1 and 2 (TensorFlow's converter logs
    pages of it) to a temporary file, shown only if the block fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class PeerUnavailable(Exception):
    """The peer's package is not installed (or cannot build this model): skip it."""


# A runner takes the NHWC float32 batch and returns the outputs as (N, values).
Runner = Callable[[], np.ndarray]


# ---------------------------------------------------------------- ONNX (ORT, OpenVINO)

def onnx_model(graph: Graph):
    """The graph as an ONNX model in NCHW layout, opset 14 (HardSwish); the output is NHWC-flattened."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:
        raise PeerUnavailable("the onnx package is not installed") from e
    shapes = graph.shapes()
    initializers, nodes = [], []

    def const(name: str, array: np.ndarray, dtype: type = np.float32) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype), name))
        return name

    def activation(node: Node, x: str) -> str:
        if node.activation == "linear":
            return x
        out = node.name + "_act"
        if node.activation == "relu":
            nodes.append(helper.make_node("Relu", [x], [out]))
        elif node.activation == "relu6":
            low = const(node.name + "_min", np.array(0.0, np.float32))
            high = const(node.name + "_max", np.array(6.0, np.float32))
            nodes.append(helper.make_node("Clip", [x, low, high], [out]))
        elif node.activation == "hard_swish":
            nodes.append(helper.make_node("HardSwish", [x], [out]))
        else:  # hard_sigmoid of the unfolded weights: relu6(y + 3) / 6 = clip(y / 6 + 0.5, 0, 1)
            nodes.append(helper.make_node("HardSigmoid", [x], [out], alpha=1 / 6, beta=0.5))
        return out

    names = {INPUT: "input"}
    for node in graph.nodes:
        ins = [names[name] for name in node.inputs]
        out = node.name
        if node.op in ("conv3x3", "conv1x1", "depthwise3x3", "depthwise5x5"):
            kernel = node.weights["kernel"]
            if node.op == "conv3x3":
                w = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
                group = 1
            elif node.op == "conv1x1":
                w = kernel.T[:, :, None, None]
                group = 1
            else:
                w = kernel.transpose(2, 0, 1)[:, None]  # (k, k, C) -> (C, 1, k, k)
                group = kernel.shape[2]
            top, bottom, left, right = node.padding
            inputs = [ins[0], const(out + "_w", w)]
            if "bias" in node.weights:
                inputs.append(const(out + "_b", node.weights["bias"]))
            nodes.append(helper.make_node(
                "Conv", inputs, [out], kernel_shape=list(w.shape[2:]), strides=[node.stride] * 2,
                pads=[top, left, bottom, right], group=group))
        elif node.op == "dense":
            # mnengine flattens NHWC: transpose back before flattening.
            nodes.append(helper.make_node("Transpose", ins, [out + "_nhwc"], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Flatten", [out + "_nhwc"], [out + "_flat"], axis=1))
            inputs = [out + "_flat", const(out + "_w", node.weights["kernel"])]
            if "bias" in node.weights:
                inputs.append(const(out + "_b", node.weights["bias"]))
            nodes.append(helper.make_node("Gemm", inputs, [out + "_2d"]))
            axes = const(out + "_axes", np.array([2, 3]), np.int64)
            nodes.append(helper.make_node("Unsqueeze", [out + "_2d", axes], [out]))
        elif node.op == "add":
            nodes.append(helper.make_node("Add", ins, [out]))
        elif node.op == "multiply":  # (N, C, H, W) times the gate (N, C, 1, 1), broadcast
            nodes.append(helper.make_node("Mul", ins, [out]))
        elif node.op == "hard_swish":
            nodes.append(helper.make_node("HardSwish", ins, [out]))
        elif node.op == "global_avg_pool":
            nodes.append(helper.make_node("GlobalAveragePool", ins, [out]))
        elif node.op == "global_max_pool":
            nodes.append(helper.make_node("GlobalMaxPool", ins, [out]))
        elif node.op == "softmax":
            if shapes[node.name][:2] != (1, 1):
                raise PeerUnavailable("softmax over a spatial tensor is not exported")
            nodes.append(helper.make_node("Softmax", ins, [out], axis=1))
        else:
            raise PeerUnavailable(f"op {node.op!r} is not exported to ONNX")
        names[node.name] = activation(node, out)
    last = names[graph.nodes[-1].name]
    nodes.append(helper.make_node("Transpose", [last], ["output_nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Flatten", ["output_nhwc"], ["output"], axis=1))
    h, w, c = graph.input_shape
    values = int(np.prod(graph.output_shape))
    model = helper.make_model(
        helper.make_graph(
            nodes, graph.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", values])],
            initializers),
        opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


def _onnx_file(graph: Graph, workdir: Path, calibration: Optional[np.ndarray] = None) -> Path:
    """The graph's ONNX file, or with calibration images its int8 QDQ model."""
    import onnx

    path = workdir / f"{graph.name}.onnx"
    if not path.exists():
        onnx.save(onnx_model(graph), str(path))
    if calibration is None:
        return path
    int8_path = workdir / f"{graph.name}.int8.onnx"
    if not int8_path.exists():
        try:
            from onnxruntime import quantization
        except ImportError as e:
            raise PeerUnavailable("onnxruntime.quantization (its int8 quantizer) is not installed") from e

        class Images(quantization.CalibrationDataReader):
            """The calibration images one at a time, NCHW."""

            def __init__(self):
                self.images = iter(np.ascontiguousarray(calibration.transpose(0, 3, 1, 2))[:, None])

            def get_next(self):
                image = next(self.images, None)
                return None if image is None else {"input": image}

        with quiet_native_output():
            quantization.quantize_static(
                str(path), str(int8_path), Images(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax)
    return int8_path


def onnxruntime_runner(graph: Graph, x: np.ndarray, threads: int, workdir: Path,
                       calibration: Optional[np.ndarray] = None) -> Runner:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise PeerUnavailable("onnxruntime is not installed") from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(_onnx_file(graph, workdir, calibration)), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
    return lambda: session.run(None, feed)[0]


def openvino_runner(graph: Graph, x: np.ndarray, threads: int, workdir: Path,
                    calibration: Optional[np.ndarray] = None) -> Runner:
    """OpenVINO on the ONNX model; on the int8 QDQ model its low-precision transformations run
    the quantized layers in int8 (INFERENCE_PRECISION_HINT concerns the float layers only)."""
    try:
        import openvino as ov
    except ImportError as e:
        raise PeerUnavailable("openvino is not installed") from e
    core = ov.Core()
    model = core.read_model(str(_onnx_file(graph, workdir, calibration)))
    model.reshape({"input": list(x.transpose(0, 3, 1, 2).shape)})
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
    })
    request = compiled.create_infer_request()
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def run() -> np.ndarray:
        request.infer({0: nchw})
        return request.get_output_tensor(0).data

    return run


# ---------------------------------------------------------------- ncnn

def ncnn_files(graph: Graph, workdir: Path) -> Tuple[Path, Path]:
    """The graph as ncnn's text .param and binary .bin, written directly."""
    shapes = graph.shapes()
    consumers = {INPUT: 0}
    for node in graph.nodes:
        consumers[node.name] = 0
        for name in node.inputs:
            consumers[name] += 1
    layers: List[str] = []
    weights = bytearray()
    blob_count = 0
    # A blob read by several layers goes through a Split (ncnn requires it).
    pending = {}

    def take(name: str) -> str:
        return pending[name].pop()

    def produce(layer_name: str, name: str) -> str:
        nonlocal blob_count
        blob_count += 1
        readers = consumers[name] if name != graph.nodes[-1].name else 1
        if readers > 1:
            splits = [f"{name}_s{i}" for i in range(readers)]
            layers.append(f"Split {layer_name}_split 1 {readers} {name} " + " ".join(splits))
            blob_count += readers
            pending[name] = splits
        else:
            pending[name] = [name]
        return name

    def floats(array: np.ndarray, tagged: bool) -> None:
        if tagged:
            weights.extend(struct.pack("<I", 0))  # 0: raw float32 follows
        weights.extend(np.ascontiguousarray(array, "<f4").tobytes())

    def activation(node: Node) -> str:
        """The fused activation's parameters (hard_sigmoid has none: a HardSigmoid layer follows)."""
        if node.activation == "relu":
            return " 9=1"
        if node.activation == "relu6":
            return " 9=3 -23310=2,0.000000e+00,6.000000e+00"
        if node.activation == "hard_swish":  # x * clip(alpha x + beta, 0, 1)
            return f" 9=6 -23310=2,{1 / 6:e},5.000000e-01"
        return ""

    h, w, c = graph.input_shape
    layers.append(f"Input input 0 1 input 0={w} 1={h} 2={c}")
    produce("input", INPUT)
    for node in graph.nodes:
        ins = [take(name) for name in node.inputs]
        in_shape = shapes[node.inputs[0]] if node.inputs[0] != INPUT else graph.input_shape
        top, bottom, left, right = node.padding
        spatial_1x1 = in_shape[:2] == (1, 1)
        # A layer with a hard_sigmoid writes its result to a blob of its own, which the
        # HardSigmoid layer after it reads to produce the node's blob.
        out = node.name + "_sums" if node.activation == "hard_sigmoid" else node.name
        head = f"{node.name} {len(ins)} 1 {' '.join(ins)} {out}"
        bias = "bias" in node.weights
        if node.op == "conv1x1" and spatial_1x1:
            kernel = node.weights["kernel"]  # (in, out): ncnn wants (out, in)
            layers.append(f"InnerProduct {head} 0={kernel.shape[1]} 1={int(bias)} 2={kernel.size}{activation(node)}")
            floats(kernel.T, True)
        elif node.op == "dense":
            if not spatial_1x1:
                raise PeerUnavailable("a dense layer on a spatial tensor is not exported to ncnn")
            kernel = node.weights["kernel"]
            layers.append(f"InnerProduct {head} 0={kernel.shape[1]} 1={int(bias)} 2={kernel.size}{activation(node)}")
            floats(kernel.T, True)
        elif node.op in ("conv3x3", "conv1x1", "depthwise3x3", "depthwise5x5"):
            kernel = node.weights["kernel"]
            if node.op == "conv3x3":
                w_oihw, size, kind, extra = kernel.transpose(3, 2, 0, 1), 3, "Convolution", ""
            elif node.op == "conv1x1":
                w_oihw, size, kind, extra = kernel.T[:, :, None, None], 1, "Convolution", ""
            else:
                channels = kernel.shape[2]
                w_oihw, size, kind, extra = (kernel.transpose(2, 0, 1)[:, None], kernel.shape[0],
                                             "ConvolutionDepthWise", f" 7={channels}")
            layers.append(
                f"{kind} {head} 0={w_oihw.shape[0]} 1={size} 3={node.stride} 4={left} 14={top} 15={right} "
                f"16={bottom} 5={int(bias)} 6={w_oihw.size}{extra}{activation(node)}")
            floats(w_oihw, True)
        elif node.op == "add":
            if node.activation != "linear":
                raise PeerUnavailable("an add with an activation is not exported to ncnn")
            layers.append(f"BinaryOp {head} 0=0")
        elif node.op == "multiply":
            # The gate comes out of the pooling and inner products as a 1-D blob of C values:
            # reshaped to C x 1 x 1, the product broadcasts it over each channel's pixels.
            channels = in_shape[2]
            layers.append(f"Reshape {node.name}_gate 1 1 {ins[1]} {node.name}_gate 0=1 1=1 2={channels}")
            blob_count += 1
            layers.append(f"BinaryOp {node.name} 2 1 {ins[0]} {node.name}_gate {out} 0=2")
        elif node.op == "hard_swish":
            layers.append(f"HardSwish {head} 0={1 / 6:e} 1=5.000000e-01")
        elif node.op in ("global_avg_pool", "global_max_pool"):
            layers.append(f"Pooling {head} 0={1 if node.op == 'global_avg_pool' else 0} 4=1")
        elif node.op == "softmax":
            layers.append(f"Softmax {head} 0=0 1=1")
        else:
            raise PeerUnavailable(f"op {node.op!r} is not exported to ncnn")
        if bias and node.op in ("conv3x3", "conv1x1", "depthwise3x3", "depthwise5x5", "dense"):
            floats(node.weights["bias"], False)
        if node.activation == "hard_sigmoid":  # relu6(y + 3) / 6 = clip(y / 6 + 0.5, 0, 1)
            blob_count += 1
            layers.append(f"HardSigmoid {node.name}_hard_sigmoid 1 1 {out} {node.name} 0={1 / 6:e} 1=5.000000e-01")
        produce(node.name, node.name)
    param = workdir / f"{graph.name}.ncnn.param"
    model = workdir / f"{graph.name}.ncnn.bin"
    param.write_text(f"7767517\n{len(layers)} {blob_count}\n" + "\n".join(layers) + "\n")
    model.write_bytes(bytes(weights))
    return param, model


def ncnn_runner(graph: Graph, x: np.ndarray, threads: int, workdir: Path,
               calibration: Optional[np.ndarray] = None) -> Runner:
    try:
        import ncnn
    except ImportError as e:
        raise PeerUnavailable("ncnn is not installed") from e
    if calibration is not None:
        raise PeerUnavailable("ncnn's int8 models come from its ncnn2table and ncnn2int8 tools, which its "
                              "Python package does not ship")
    if x.shape[0] != 1:
        raise PeerUnavailable("ncnn runs one image per extractor: batch 1 only")
    if graph.output_shape[:2] != (1, 1):
        raise PeerUnavailable("ncnn comparison covers classifiers only")
    param, model = ncnn_files(graph, workdir)
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = False
    # float32 throughout, like mnengine (ncnn may otherwise store in fp16 or bf16).
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = net.opt.use_bf16_packed = False
    if net.load_param(str(param)) != 0 or net.load_model(str(model)) != 0:
        raise RuntimeError("ncnn could not load the exported model")
    pixels = np.ascontiguousarray(x[0].transpose(2, 0, 1))
    chw = ncnn.Mat(pixels)  # a view: `pixels` must outlive it
    last = graph.nodes[-1].name

    def run(keep_alive=pixels) -> np.ndarray:
        with net.create_extractor() as extractor:
            extractor.input("input", chw)
            _, out = extractor.extract(last)
            return np.array(out).reshape(1, -1)

    return run


# ---------------------------------------------------------------- LiteRT (XNNPACK)

def keras_model(graph: Graph):
    """The graph as a Keras model (NHWC, explicit ZeroPadding2D for asymmetric padding), for
    TensorFlow's LiteRT converter."""
    try:
        import tensorflow as tf
    except ImportError as e:
        raise PeerUnavailable("TensorFlow converts to LiteRT and is not installed") from e
    layers = tf.keras.layers

    # MobileNetV3's activations written out (tf.keras's own hard_sigmoid is Keras 2's 0.2 x + 0.5
    # under TF_USE_LEGACY_KERAS): the converter turns x * relu6(x + 3) / 6 into its HARD_SWISH.
    def hard_sigmoid(t):
        return tf.nn.relu6(t + 3.0) * (1.0 / 6.0)

    def hard_swish(t):
        return t * hard_sigmoid(t)

    h, w, c = graph.input_shape
    inputs = tf.keras.Input((h, w, c), batch_size=None)
    tensors = {INPUT: inputs}
    for node in graph.nodes:
        ins = [tensors[name] for name in node.inputs]
        top, bottom, left, right = node.padding
        bias = node.weights.get("bias")
        act = {"linear": None, "relu": "relu", "relu6": tf.nn.relu6, "hard_swish": hard_swish,
               "hard_sigmoid": hard_sigmoid}[node.activation]
        if node.op in ("conv3x3", "conv1x1", "depthwise3x3", "depthwise5x5"):
            x = ins[0]
            if any(node.padding):
                x = layers.ZeroPadding2D(((top, bottom), (left, right)))(x)
            kernel = node.weights["kernel"]
            if node.op in ("depthwise3x3", "depthwise5x5"):
                layer = layers.DepthwiseConv2D(kernel.shape[0], node.stride, "valid", use_bias=bias is not None,
                                               activation=act)
                layer.build(x.shape)
                layer.set_weights([kernel[:, :, :, None]] + ([bias] if bias is not None else []))
            else:
                full = kernel if node.op == "conv3x3" else kernel[None, None]
                layer = layers.Conv2D(full.shape[3], full.shape[0], node.stride, "valid",
                                      use_bias=bias is not None, activation=act)
                layer.build(x.shape)
                layer.set_weights([full] + ([bias] if bias is not None else []))
            tensors[node.name] = layer(x)
        elif node.op == "dense":
            layer = layers.Dense(node.weights["kernel"].shape[1], use_bias=bias is not None, activation=act)
            flat = layers.Flatten()(ins[0])
            layer.build(flat.shape)
            layer.set_weights([node.weights["kernel"]] + ([bias] if bias is not None else []))
            tensors[node.name] = layers.Reshape((1, 1, -1))(layer(flat))
        elif node.op == "add":
            y = layers.Add()(ins)
            tensors[node.name] = y if act is None else layers.Activation(act)(y)
        elif node.op == "multiply":  # (H, W, C) times the gate (1, 1, C), broadcast
            tensors[node.name] = layers.Multiply()(ins)
        elif node.op == "hard_swish":
            tensors[node.name] = layers.Activation(hard_swish)(ins[0])
        elif node.op == "global_avg_pool":
            tensors[node.name] = layers.GlobalAveragePooling2D(keepdims=True)(ins[0])
        elif node.op == "global_max_pool":
            tensors[node.name] = layers.GlobalMaxPooling2D(keepdims=True)(ins[0])
        elif node.op == "softmax":
            tensors[node.name] = layers.Softmax()(ins[0])
        else:
            raise PeerUnavailable(f"op {node.op!r} is not exported to Keras")
    outputs = layers.Flatten()(tensors[graph.nodes[-1].name])
    return tf.keras.Model(inputs, outputs)


def litert_model(graph: Graph, calibration: Optional[np.ndarray] = None) -> bytes:
    """The graph converted by TensorFlow's LiteRT converter; with calibration images a
    full-integer int8 model (int8 kernels only, float32 input and output), calibrated on them
    as a representative dataset."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_native_output():
        model = keras_model(graph)
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if calibration is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


def litert_runner(graph: Graph, x: np.ndarray, threads: int, workdir: Path,
                  calibration: Optional[np.ndarray] = None) -> Runner:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise PeerUnavailable("ai-edge-litert is not installed") from e
    path = workdir / f"{graph.name}{'.int8' if calibration is not None else ''}.tflite"
    if not path.exists():
        path.write_bytes(litert_model(graph, calibration))
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, list(x.shape))
    interpreter.allocate_tensors()
    output_index = interpreter.get_output_details()[0]["index"]

    def run() -> np.ndarray:
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return run


#: Name and runner factory of each peer, in the order of the table's columns.
PEERS = (
    ("LiteRT+XNNPACK", litert_runner),
    ("ONNX Runtime", onnxruntime_runner),
    ("OpenVINO", openvino_runner),
    ("ncnn", ncnn_runner),
)


def versions() -> dict:
    """Installed versions of the peers' packages."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("ai-edge-litert", "tensorflow-cpu", "tensorflow", "onnxruntime", "openvino", "ncnn", "onnx"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found
