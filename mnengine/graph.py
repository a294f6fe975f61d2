"""The network graph mnengine runs: nodes in execution order, their weights, and checks.

A :class:`Graph` is what a ``.bin`` model file stores (see ``docs/FORMAT.md``) and what
:mod:`mnengine.models` and the Keras exporter build. BatchNormalization never appears here:
builders fold it into the preceding convolution before a graph exists.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ModelFormatError

#: Operators and the weights each one carries (``weight_scale`` in int8 graphs only).
OPS: Dict[str, Tuple[str, ...]] = {
    "conv3x3": ("kernel", "bias", "weight_scale"),  # full 3x3 convolution, kernel (3, 3, C_in, C_out)
    "conv1x1": ("kernel", "bias", "weight_scale"),  # pointwise convolution, kernel (C_in, C_out)
    "depthwise3x3": ("kernel", "bias", "weight_scale"),  # depthwise 3x3 convolution, kernel (3, 3, C)
    "depthwise5x5": ("kernel", "bias", "weight_scale"),  # depthwise 5x5 convolution, kernel (5, 5, C)
    "dense": ("kernel", "bias", "weight_scale"),  # fully connected on the flattened input, kernel (H*W*C, units)
    "add": (),  # element-wise sum of two tensors of one shape
    "global_avg_pool": (),
    "global_max_pool": (),
    "softmax": (),
    "sigmoid": (),  # element-wise logistic function
    "multiply": (),  # inputs (x, gate): x (H, W, C) times the gate (1, 1, C) per channel (squeeze-excite)
    "hard_swish": (),  # element-wise x * relu6(x + 3) / 6
}

#: Activations fused into an operator, as the [min, max] clamp the kernels apply last.
#: "hard_swish" (x * relu6(x + 3) / 6) is the kernels' hard-swish output stage, unclamped.
#: "hard_sigmoid" (relu6(x + 3) / 6, Keras MobileNetV3's) is folded into the layer when the
#: engine is built: kernel / 6, (bias + 3) / 6 (a layer without a bias gets 3 / 6) and the clamp
#: [0, 1]; graphs and files keep the unfolded weights.
ACTIVATIONS: Dict[str, Tuple[float, float]] = {
    "linear": (-math.inf, math.inf),
    "relu": (0.0, math.inf),
    "relu6": (0.0, 6.0),
    "hard_swish": (-math.inf, math.inf),
    "hard_sigmoid": (0.0, 1.0),
}

#: The operators each activation may be fused into: ReLU and ReLU6 into every layer with weights
#: and add, hard-swish into the layers whose kernels apply it, hard-sigmoid where it folds.
_WINDOW_OPS = ("conv3x3", "depthwise3x3", "depthwise5x5")
_LAYER_OPS = _WINDOW_OPS + ("conv1x1", "dense")
ACTIVATION_OPS: Dict[str, Tuple[str, ...]] = {
    "linear": tuple(OPS),
    "relu": _LAYER_OPS + ("add",),
    "relu6": _LAYER_OPS + ("add",),
    "hard_swish": _LAYER_OPS,
    "hard_sigmoid": ("conv1x1", "dense"),
}

#: What int8 graphs cannot hold: MobileNetV3's operators and activations run in float32 only.
FLOAT32_ONLY_OPS = ("depthwise5x5", "multiply", "hard_swish")
FLOAT32_ONLY_ACTIVATIONS = ("hard_swish", "hard_sigmoid")

#: Input preprocessing a model expects of 0..255 RGB pixels.
PREPROCESSING = ("mobilenet", "none")  # x / 127.5 - 1 (keras mobilenet.preprocess_input), or x

INPUT = "input"  # the name nodes use for the network input

#: Bound on the float32 values of all node outputs of one image (1 GiB), so that no model
#: file, however its header is crafted, makes an Engine allocate more. MobileNet v2 1.4 at
#: 1024x1024 needs 210 M.
MAX_ACTIVATIONS = 1 << 28

Shape = Tuple[int, int, int]  # (height, width, channels) of one image

#: How an int8 tensor encodes real values: real = (q - zero_point) * scale.
Quantization = Tuple[float, int]  # (scale, zero_point)

#: Operators that compute in float32 in an int8 graph too (on the dequantized input).
FLOAT_OPS = ("softmax", "sigmoid")
#: Operators that may output float32 in an int8 graph (no quantization: their int32 sums
#: dequantized), as its classifier does; only float operators may read their output.
DEQUANTIZING_OPS = ("conv1x1", "dense")

#: Bounds of int8 graphs, so that every int32 sum stays in range (see csrc/kernels.h): products
#: per output of a pointwise or dense layer, bias magnitude, pixels of a global pool.
MAX_INT8_DEPTH = 16384
MAX_INT8_BIAS = 1 << 29
MAX_INT8_POOL_PIXELS = 1 << 22
#: Range of a quantization scale (the engine computes in float32).
SCALE_RANGE = (1e-30, 1e30)


@dataclasses.dataclass
class Node:
    """One operator. ``inputs`` names earlier nodes (or ``"input"``).

    In an int8 graph ``quantization`` is the (scale, zero point) of the node's int8 output
    (None for softmax and sigmoid, which compute in float32, and for a conv1x1 or dense layer
    that outputs its sums dequantized to float32, as a classifier does), and the weights are an int8
    ``kernel`` (values in [-127, 127], symmetric per output channel), an int32 ``bias`` at
    scale input_scale * weight_scale and the float32 ``weight_scale`` of each output channel.
    """

    name: str
    op: str
    inputs: List[str]
    weights: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    stride: int = 1
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    activation: str = "linear"
    quantization: Optional[Quantization] = None


@dataclasses.dataclass
class Graph:
    """A MobileNet-style network: input size, preprocessing, labels and nodes in order.

    ``input_quantization`` set makes it an int8 graph (TFLite's int8 scheme): the engine
    quantizes the preprocessed float32 input with it, runs int8 layers and returns float32.
    """

    name: str
    input_shape: Shape
    nodes: List[Node]
    preprocessing: str = "mobilenet"
    labels: Optional[List[str]] = None
    metadata: Dict[str, str] = dataclasses.field(default_factory=dict)
    input_quantization: Optional[Quantization] = None

    @property
    def int8(self) -> bool:
        """Whether this is an int8 (quantized) graph."""
        return self.input_quantization is not None

    def shapes(self) -> Dict[str, Shape]:
        """Checks the graph and returns the output shape of every node (and of ``"input"``).

        Raises :class:`ModelFormatError` naming the first node that is inconsistent.
        """
        return _infer_shapes(self)

    @property
    def output_shape(self) -> Shape:
        return self.shapes()[self.nodes[-1].name]

    def multiply_adds(self) -> int:
        """Multiply-accumulate operations of one inference on one image."""
        return sum(self.node_multiply_adds())

    def node_multiply_adds(self) -> List[int]:
        """Multiply-accumulates of each node, in order (0 for element-wise operators, pooling, softmax)."""
        shapes = self.shapes()
        counts = []
        for node in self.nodes:
            out = shapes[node.name]
            kernel = node.weights.get("kernel")
            if kernel is not None:  # per output pixel, each weight once (a depthwise one's C x k x k too)
                counts.append(out[0] * out[1] * kernel.size)
            else:
                counts.append(0)
        return counts

    def parameters(self) -> int:
        return sum(w.size for node in self.nodes for w in node.weights.values())

    def core_nodes(self) -> List[dict]:
        """The nodes in the form ``mnengine._core.Network`` takes."""
        index = {INPUT: 0}
        for i, node in enumerate(self.nodes):
            index[node.name] = i + 1
        shapes = self.shapes()
        result = []
        for node in self.nodes:
            spec = {
                "kind": node.op,
                "inputs": [index[name] for name in node.inputs],
                "stride": node.stride,
                "padding": tuple(node.padding),
                "clamp": ACTIVATIONS[node.activation],
            }
            if node.activation == "hard_swish":
                spec["hard_swish"] = True
            if "kernel" in node.weights:
                if self.int8:
                    spec["kernel"] = np.ascontiguousarray(node.weights["kernel"], dtype=np.int8)
                    bias = node.weights.get("bias")
                    spec["bias"] = np.ascontiguousarray(bias, dtype=np.int32) if bias is not None else None
                    spec["weight_scale"] = _as_f32(node.weights["weight_scale"])
                elif node.activation == "hard_sigmoid":
                    # relu6(k x + b + 3) / 6 = clamp((k / 6) x + (b + 3) / 6, 0, 1)
                    bias = node.weights.get("bias")
                    bias = np.zeros(shapes[node.name][2], np.float32) if bias is None else _as_f32(bias)
                    with np.errstate(invalid="ignore"):  # NaN weights (signalling ones too) stay NaN
                        spec["kernel"] = _as_f32(node.weights["kernel"]) / np.float32(6)
                        spec["bias"] = (bias + np.float32(3)) / np.float32(6)
                else:
                    spec["kernel"] = _as_f32(node.weights["kernel"])
                    spec["bias"] = _as_f32(node.weights["bias"]) if "bias" in node.weights else None
                if node.op not in ("depthwise3x3", "depthwise5x5"):
                    spec["out_channels"] = shapes[node.name][2]
            if node.quantization is not None:
                spec["output_quantization"] = node.quantization
            result.append(spec)
        return result


def _as_f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def quantization_error(quantization: object) -> Optional[str]:
    """None if ``quantization`` is a valid (scale, zero point) of int8 values, else what is wrong."""
    if not (isinstance(quantization, tuple) and len(quantization) == 2):
        return f"must be a (scale, zero point) pair, got {quantization!r:.80}"
    scale, zero_point = quantization
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
            SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]):
        return f"scale must be a finite number in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}], got {scale!r:.80}"
    if isinstance(zero_point, bool) or not isinstance(zero_point, int) or not -128 <= zero_point <= 127:
        return f"zero point must be an integer in [-128, 127], got {zero_point!r:.80}"
    return None


def same_padding(size: int, stride: int, kernel: int = 3) -> Tuple[int, int]:
    """(before, after) padding of Keras/TensorFlow ``padding="same"`` along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def window_output(size: int, before: int, after: int, stride: int, kernel: int = 3) -> int:
    return (size + before + after - kernel) // stride + 1


def _infer_shapes(graph: Graph) -> Dict[str, Shape]:
    def fail(node: Node, message: str) -> ModelFormatError:
        return ModelFormatError(f"node {node.name!r} ({node.op}): {message}")

    if len(graph.input_shape) != 3 or not all(
        isinstance(d, int) and 1 <= d <= 1 << 16 for d in graph.input_shape
    ):
        raise ModelFormatError(
            f"input shape must be (height, width, channels) of positive integers up to 65536, "
            f"got {graph.input_shape!r}"
        )
    if graph.preprocessing not in PREPROCESSING:
        raise ModelFormatError(
            f"preprocessing must be one of {PREPROCESSING}, got {graph.preprocessing!r}"
        )
    if not graph.nodes:
        raise ModelFormatError("the graph has no nodes")
    if graph.int8:
        error = quantization_error(graph.input_quantization)
        if error is not None:
            raise ModelFormatError(f"input quantization {error}")
    shapes: Dict[str, Shape] = {INPUT: tuple(graph.input_shape)}
    float_outputs: set = set()  # int8 graphs: the nodes that output float32
    activations = math.prod(graph.input_shape)
    for node in graph.nodes:
        if node.op not in OPS:
            raise fail(node, f"unknown operator; expected one of {sorted(OPS)}")
        if node.name in shapes:
            raise fail(node, "duplicate node name")
        if node.activation not in ACTIVATIONS:
            raise fail(node, f"activation must be one of {sorted(ACTIVATIONS)}, got {node.activation!r}")
        if node.op not in ACTIVATION_OPS[node.activation]:
            raise fail(node, f"takes no fused activation {node.activation!r} (it fuses into "
                             f"{', '.join(ACTIVATION_OPS[node.activation])})")
        if graph.int8 and (node.op in FLOAT32_ONLY_OPS or node.activation in FLOAT32_ONLY_ACTIVATIONS):
            what = f"operator {node.op!r}" if node.op in FLOAT32_ONLY_OPS else f"activation {node.activation!r}"
            raise fail(node, f"{what} runs in float32 only: an int8 graph cannot hold it (int8 MobileNetV3 is not supported)")
        arity = 2 if node.op in ("add", "multiply") else 1
        if len(node.inputs) != arity:
            raise fail(node, f"takes {arity} input(s), got {len(node.inputs)}")
        for name in node.inputs:
            if name not in shapes:
                raise fail(node, f"input {name!r} is not produced by an earlier node")
        allowed = OPS[node.op]
        extra = set(node.weights) - set(allowed)
        if extra:
            raise fail(node, f"unexpected weights {sorted(extra)}; this operator takes {list(allowed)}")
        if allowed and "kernel" not in node.weights:
            raise fail(node, "missing weight 'kernel'")
        _check_weight_types(graph, node, fail)
        h, w, c = shapes[node.inputs[0]]
        kernel = node.weights.get("kernel")
        kshape = tuple(kernel.shape) if kernel is not None else ()

        def expect_kernel(expected: Sequence[Optional[int]]) -> None:
            if len(kshape) != len(expected) or any(
                e is not None and e != k for e, k in zip(expected, kshape)
            ):
                shown = tuple("*" if e is None else e for e in expected)
                raise fail(node, f"kernel shape {kshape} does not fit input {(h, w, c)}; expected {shown}")
            if kshape[-1] < 1:
                raise fail(node, f"kernel shape {kshape} has no output channels")

        if node.op in _WINDOW_OPS:
            size = 5 if node.op == "depthwise5x5" else 3
            if node.stride not in (1, 2):
                raise fail(node, f"stride must be 1 or 2, got {node.stride}")
            if len(node.padding) != 4 or not all(isinstance(p, int) and 0 <= p < size for p in node.padding):
                raise fail(node, f"padding (top, bottom, left, right) must be 0 to {size - 1} each, got {node.padding}")
            top, bottom, left, right = node.padding
            if h + top + bottom < size or w + left + right < size:
                raise fail(node, f"input {(h, w)} with padding {node.padding} is smaller than the {size}x{size} window")
            oh = window_output(h, top, bottom, node.stride, size)
            ow = window_output(w, left, right, node.stride, size)
            if node.op == "conv3x3":
                expect_kernel((3, 3, c, None))
                out = (oh, ow, kshape[3])
            else:
                expect_kernel((size, size, c))
                out = (oh, ow, c)
        elif node.op == "conv1x1":
            expect_kernel((c, None))
            out = (h, w, kshape[1])
        elif node.op == "dense":
            expect_kernel((h * w * c, None))
            out = (1, 1, kshape[1])
        elif node.op == "add":
            other = shapes[node.inputs[1]]
            if other != (h, w, c):
                raise fail(node, f"operand shapes differ: {(h, w, c)} and {other}")
            out = (h, w, c)
        elif node.op == "multiply":
            gate = shapes[node.inputs[1]]
            if gate != (1, 1, c):
                raise fail(node, f"the gate {node.inputs[1]!r} must be (1, 1, {c}) for input {(h, w, c)}, got {gate}")
            out = (h, w, c)
        elif node.op in ("global_avg_pool", "global_max_pool"):
            out = (1, 1, c)
        else:  # softmax, sigmoid, hard_swish
            out = (h, w, c)
        if "bias" in node.weights and tuple(node.weights["bias"].shape) != (out[2],):
            raise fail(node, f"bias shape {tuple(node.weights['bias'].shape)}, expected {(out[2],)}")
        if node.op not in _WINDOW_OPS and (node.stride != 1 or any(node.padding)):
            raise fail(node, "takes no stride or padding")
        if graph.int8:
            _check_int8_node(node, (h, w, c), out, float_outputs, fail)
        shapes[node.name] = out
        activations += math.prod(out)
        if activations > MAX_ACTIVATIONS:
            raise ModelFormatError(
                f"the activations of one image exceed {MAX_ACTIVATIONS * 4 >> 30} GiB at node {node.name!r}: "
                f"input {graph.input_shape} is too large for this network")
    if graph.labels is not None:
        classes = math.prod(shapes[graph.nodes[-1].name])
        if len(graph.labels) != classes:
            raise ModelFormatError(f"{len(graph.labels)} labels for {classes} outputs")
    return shapes


def _check_weight_types(graph: Graph, node: Node, fail) -> None:
    """Weights of the graph's kind: float in float graphs; int8 kernel, int32 bias and a
    float32 weight_scale of one finite positive value per output channel in int8 graphs."""
    if not graph.int8:
        if "weight_scale" in node.weights or node.quantization is not None:
            raise fail(node, "weight_scale and quantization belong to int8 graphs only")
        for key, array in node.weights.items():
            if array.dtype.kind != "f":
                raise fail(node, f"{key} must be floating point in a float32 graph, got {array.dtype}")
        return
    expected = {"kernel": np.int8, "bias": np.int32, "weight_scale": np.float32}
    if "kernel" in node.weights and "weight_scale" not in node.weights:
        raise fail(node, "missing weight 'weight_scale' (an int8 graph's layers carry one)")
    for key, array in node.weights.items():
        if array.dtype != expected[key]:
            raise fail(node, f"{key} must be {np.dtype(expected[key]).name} in an int8 graph, got {array.dtype}")
    kernel = node.weights.get("kernel")
    if kernel is not None and kernel.size and int(kernel.min()) < -127:
        raise fail(node, "int8 kernel values must lie in [-127, 127], found -128")
    bias = node.weights.get("bias")
    if bias is not None and bias.size and int(np.abs(bias.astype(np.int64)).max()) > MAX_INT8_BIAS:
        raise fail(node, f"int32 bias values must lie within +-2^29, found {int(np.abs(bias.astype(np.int64)).max())}")
    scale = node.weights.get("weight_scale")
    if scale is not None and scale.size and not (
            np.isfinite(scale).all() and scale.min() >= SCALE_RANGE[0] and scale.max() <= SCALE_RANGE[1]):
        raise fail(node, f"weight_scale values must be finite and in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}]")


def _check_int8_node(node: Node, in_shape: Shape, out: Shape, float_outputs: set, fail) -> None:
    """What an int8 graph's node must be besides what every node must be. `float_outputs`
    names the nodes before it whose output is float32."""
    if node.op in FLOAT_OPS:
        if node.quantization is not None:
            raise fail(node, "computes in float32: it takes no quantization")
        float_outputs.add(node.name)
    else:
        float_input = next((name for name in node.inputs if name in float_outputs), None)
        if float_input is not None:
            raise fail(node, f"an int8 layer cannot read {float_input!r}, whose output is float32")
        if node.quantization is None and node.op in DEQUANTIZING_OPS:
            float_outputs.add(node.name)
        else:
            error = quantization_error(node.quantization)
            if error is not None:
                raise fail(node, f"output quantization {error}")
    scale = node.weights.get("weight_scale")
    if scale is not None and tuple(scale.shape) != (out[2],):
        raise fail(node, f"weight_scale shape {tuple(scale.shape)}, expected {(out[2],)}")
    h, w, c = in_shape
    if node.op == "conv3x3" and not (c == 3 and node.stride == 2):
        raise fail(node, "an int8 conv3x3 must be a first layer: 3 input channels, stride 2")
    depth = {"conv1x1": c, "dense": h * w * c}.get(node.op, 0)
    if depth > MAX_INT8_DEPTH:
        raise fail(node, f"an int8 {node.op} takes at most {MAX_INT8_DEPTH} inputs per output, got {depth}")
    if node.op in ("global_avg_pool", "global_max_pool") and h * w > MAX_INT8_POOL_PIXELS:
        raise fail(node, f"an int8 pool takes at most {MAX_INT8_POOL_PIXELS} pixels, got {h * w}")


def iter_weights(graph: Graph) -> Iterator[Tuple[str, np.ndarray]]:
    """(tensor name, array) of every weight, in file order."""
    for node in graph.nodes:
        for key in OPS[node.op]:
            if key in node.weights:
                yield f"{node.name}/{key}", node.weights[key]
