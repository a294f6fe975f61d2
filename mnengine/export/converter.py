"""Keras model config + weights -> mnengine Graph.

The (possibly nested) Functional or Sequential config is first flattened into one list of
layer calls in execution order, each naming the tensors it reads; then each call becomes
graph nodes: convolutions, depthwise convolutions and dense layers with their activations
fused, ZeroPadding2D merged into the convolution after it.

Per-channel arithmetic - BatchNormalization, ReLU and ReLU6, Rescaling, adding or
multiplying by a constant (MobileNetV3's hard sigmoid, ReLU6(x + 3) * (1 / 6), as Keras 3
ops or Keras 2 TFOpLambda layers), the activation hard_sigmoid - is not converted call by
call but collected into a pending chain of affine maps and clamps of one tensor; only what
reads the chain's result turns it into nodes: folded into the layer that produced the
tensor when nothing else reads it (BatchNormalization into the convolution before it, a
clamp as its relu / relu6 activation, a clamp to [0, 1] of a pointwise convolution or dense
layer as its hard_sigmoid), else as per-channel affine nodes, a depthwise 3x3 whose only
non-zero tap is the centre: exact, and cheap on the small tensors where it occurs. A
Multiply of x with a chain equal to relu6(x + 3) / 6 is x's hard-swish.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..graph import INPUT, Node, same_padding, window_output
from .keras_files import Keras3Names, Weights, WeightStore

#: Layer classes the exporter understands, and what each becomes.
SUPPORTED_LAYERS = {
    "InputLayer": "the input",
    "Conv2D": "3x3 (any stride) or 1x1 (stride 1) convolution",
    "DepthwiseConv2D": "3x3 or 5x5 depthwise convolution, depth_multiplier 1",
    "BatchNormalization": "folded into the layer before it",
    "ReLU": "ReLU / ReLU6 (max_value 6)",
    "Activation": "relu, relu6, linear, softmax, sigmoid, hard_swish (hard_silu), hard_sigmoid",
    "ZeroPadding2D": "merged into the next convolution",
    "Add": "residual add",
    "Multiply": "a feature map times a per-channel gate (squeeze-and-excite), or x * hard_sigmoid(x): hard-swish",
    "GlobalAveragePooling2D": "global average pooling",
    "GlobalMaxPooling2D": "global max pooling",
    "Dense": "fully connected (linear, relu, relu6, softmax or sigmoid)",
    "Softmax": "softmax",
    "Flatten": "flatten",
    "Reshape": "reshape to (1, 1, N) or (N,)",
    "Dropout": "nothing at inference",
    "Rescaling": "per-channel scale and offset",
    "TFOpLambda": "Keras 2 tensor arithmetic with a constant: + - * / (tf.__operators__.add, tf.math.multiply, ...)",
    "ops Add, Subtract, Multiply, Divide, TrueDivide": "Keras 3 tensor arithmetic with a constant (x + 3.0, ...)",
}
_MODELS = ("Functional", "Sequential", "Model")
_OPS_MODULE = "keras.src.ops"  # Keras 3 operations on tensors (x + 3.0): no layers, no variables
_ARITHMETIC_OPERATIONS = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide")


class UnsupportedModelError(ValueError):
    """The Keras model has a layer, activation or setting mnengine cannot run."""


def unsupported(layer: "LayerCall", message: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"layer {layer.name!r} ({layer.class_name}): {message}")


@dataclasses.dataclass
class LayerCall:
    """One call of one layer in the flattened model."""

    name: str  # unique in the flattened model: nested layers get their model's name prefixed
    class_name: str
    config: Dict[str, Any]
    inputs: List[str]  # tensor ids
    output: str  # tensor id
    keras3_path: Tuple[str, ...]
    legacy_path: Tuple[str, ...]
    constants: List[Any] = dataclasses.field(default_factory=list)  # non-tensor operands (x + 3.0: [3.0])
    constant_first: bool = False  # a constant is the first operand (6.0 - x)
    operation: bool = False  # a Keras 3 operation (keras.src.ops), not a layer


# ------------------------------------------------------------------ flattening the config

def _is_constant(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return isinstance(value, list) and bool(value) and all(_is_constant(v) for v in value)


def _call_operands(value: Any, entries: List[Sequence], constants: List[Any]) -> None:
    """Collects the keras_history triples [layer, node, tensor] of a Keras 3 call's args, in
    order, and the numbers among them (an operation's constant operand)."""
    if _is_constant(value):
        constants.append(value)
    elif isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            entries.append(value["config"]["keras_history"])
        else:
            for v in value.values():
                _call_operands(v, entries, constants)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _call_operands(v, entries, constants)


@dataclasses.dataclass
class _Inbound:
    """One call of a layer as its config records it."""

    entries: List[Sequence]  # [layer, node, tensor] of each tensor it reads
    constants: List[Any]  # its constant operands
    constant_first: bool  # a constant comes before the tensors


def _inbound_calls(layer_config: Dict[str, Any]) -> List[_Inbound]:
    """Each inbound node of a layer (Keras 2 and 3)."""
    calls = []
    for node in layer_config.get("inbound_nodes", []):
        entries: List[Sequence] = []
        constants: List[Any] = []
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            args = node.get("args", [])
            _call_operands(args, entries, constants)
            constant_first = bool(args) and _is_constant(args[0])
        else:  # Keras 2: [[layer, node, tensor, kwargs], ...]; a TFOpLambda's node is one such entry
            constant_first = False
            for entry in ([node] if node and isinstance(node[0], str) else node):
                entries.append(entry[:3])
                kwargs = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
                constants += [v for k, v in kwargs.items() if k != "name" and _is_constant(v)]
                constant_first = constant_first or _is_constant(kwargs.get("x"))
        calls.append(_Inbound(entries, constants, constant_first))
    return calls


def _endpoints(value: Any) -> List[Sequence]:
    """input_layers / output_layers: [name, node, tensor] or a list of them."""
    if value and isinstance(value[0], str):
        return [value]
    return list(value)


class Flattener:
    def __init__(self) -> None:
        self.calls: List[LayerCall] = []
        self.configs: Dict[Tuple[str, ...], Tuple[str, Dict[str, Any]]] = {}
        self.input_shape: Optional[Tuple[int, ...]] = None

    def model(self, model: Dict[str, Any], inputs: Optional[List[str]], keras3: Tuple[str, ...],
              legacy: Tuple[str, ...], prefix: str) -> List[str]:
        class_name, config = model["class_name"], model["config"]
        layers = config["layers"]
        keras3_names = Keras3Names()

        if class_name == "Sequential":
            tensor = inputs[0] if inputs else None
            for layer in layers:
                name = _layer_name(layer)
                path3, path_legacy = keras3 + (keras3_names(layer["class_name"]),), legacy + (name,)
                if layer["class_name"] == "InputLayer":
                    if tensor is None:
                        tensor = self._top_input(layer)
                    continue
                if tensor is None:  # Keras 2 Sequential without InputLayer: the first layer says
                    tensor = self._top_input(layer)
                tensor = self._call(layer, [tensor], path3, path_legacy, prefix, 0)[0]
            return [tensor]

        # Functional: layers in topological order, calls resolved through keras_history.
        produced: Dict[Tuple[str, int, int], str] = {}
        input_names = [entry[0] for entry in _endpoints(config["input_layers"])]
        for layer in layers:
            name = _layer_name(layer)
            if str(layer.get("module", "")).startswith(_OPS_MODULE):
                # Not a layer: Keras's weights file does not count it among the model's layers.
                path3 = keras3 + ("<op>" + name,)
            else:
                path3 = keras3 + (keras3_names(layer["class_name"]),)
            path_legacy = legacy + (name,)
            if layer["class_name"] == "InputLayer":
                position = input_names.index(name)
                produced[(name, 0, 0)] = inputs[position] if inputs else self._top_input(layer)
                continue
            for node_index, inbound in enumerate(_inbound_calls(layer)):
                try:
                    args = [produced[(entry[0], entry[1], entry[2])] for entry in inbound.entries]
                except KeyError as e:
                    raise UnsupportedModelError(f"layer {name!r}: input {e.args[0]} is not produced before it") from None
                outputs = self._call(layer, args, path3, path_legacy, prefix, node_index, inbound)
                for tensor_index, tensor in enumerate(outputs):
                    produced[(name, node_index, tensor_index)] = tensor
        return [produced[tuple(entry[:3])] for entry in _endpoints(config["output_layers"])]

    def _top_input(self, layer: Dict[str, Any]) -> str:
        config = layer["config"]
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        if shape is None:
            raise UnsupportedModelError("the model has no input shape: build it with an Input of (height, width, 3)")
        self.input_shape = tuple(shape[1:])  # None where the model takes any size
        return INPUT

    def _call(self, layer: Dict[str, Any], inputs: List[str], keras3: Tuple[str, ...], legacy: Tuple[str, ...],
              prefix: str, node_index: int, inbound: Optional[_Inbound] = None) -> List[str]:
        name = _layer_name(layer)
        if layer["class_name"] in _MODELS:
            return self.model(layer, inputs, keras3, legacy, prefix + name + "/")
        unique = prefix + name + (f":{node_index}" if node_index else "")
        self.configs[keras3] = (layer["class_name"], layer["config"])
        constants, constant_first = (inbound.constants, inbound.constant_first) if inbound else ([], False)
        # Keras 3's legacy .h5 config omits an operation's module; its constant operand tells it
        # from the layer of the same name (x + 3.0 is an Add operation, layers.Add adds tensors).
        module = layer.get("module")
        operation = (str(module).startswith(_OPS_MODULE) if module else
                     layer["class_name"] in _ARITHMETIC_OPERATIONS and bool(constants))
        self.calls.append(LayerCall(unique, layer["class_name"], layer["config"], inputs, unique, keras3, legacy,
                                    constants, constant_first, operation))
        return [unique]


def _layer_name(layer: Dict[str, Any]) -> str:
    return layer.get("name") or layer["config"]["name"]


def flatten_model(config: Dict[str, Any]) -> Flattener:
    if config.get("class_name") not in _MODELS:
        raise UnsupportedModelError(f"the file holds a {config.get('class_name')!r}, not a Keras model")
    flattener = Flattener()
    outputs = flattener.model(config, None, (), (), "")
    if len(outputs) != 1:
        raise UnsupportedModelError(f"the model has {len(outputs)} outputs; mnengine runs single-output models")
    flattener.output = outputs[0]
    return flattener


# ------------------------------------------------------------------ calls -> nodes

#: Operators whose output stage scales, offsets and clamps per channel: what a pending chain
#: can fold into.
KERNEL_OPS = ("conv3x3", "conv1x1", "depthwise3x3", "depthwise5x5", "dense")
INF = float("inf")


@dataclasses.dataclass
class Value:
    """A tensor of the Keras model as mnengine sees it."""

    node: str  # the mnengine node producing it (or "input")
    shape: Tuple[int, int, int]  # the mnengine tensor's (H, W, C)
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)  # ZeroPadding2D still to apply
    flat: bool = False  # Keras sees it flattened (H * W * C,)
    shared: bool = False  # the node's output is read through another tensor too (e.g. before a Dropout)


@dataclasses.dataclass
class Step:
    """y = min(max(x * scale + offset, low), high), per channel (scale and offset: float64
    scalars or one value per channel)."""

    scale: np.ndarray
    offset: np.ndarray
    low: float = -INF
    high: float = INF

    @property
    def clamps(self) -> bool:
        return self.low != -INF or self.high != INF


@dataclasses.dataclass
class Chain:
    """A tensor that is per-channel arithmetic of the tensor `base`, not yet made into nodes."""

    base: str  # the tensor id of a Value
    steps: List[Step]
    name: str  # the call that computed it: names the nodes it becomes
    call: "LayerCall"


def _then(steps: List[Step], step: Step) -> List[Step]:
    """`steps` followed by `step`, merged into the last step where that is exact: an affine map
    after an affine map, a clamp after an affine map, or a clamp after an overlapping clamp."""
    if steps:
        last = steps[-1]
        if not last.clamps:
            return steps[:-1] + [Step(last.scale * step.scale, last.offset * step.scale + step.offset,
                                      step.low, step.high)]
        identity = np.all(step.scale == 1) and np.all(step.offset == 0)
        if identity and max(last.low, step.low) <= min(last.high, step.high):
            return steps[:-1] + [Step(last.scale, last.offset, max(last.low, step.low), min(last.high, step.high))]
    return steps + [step]


def _unit_clamp(steps: List[Step]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(a, c) if the steps compute min(max(a * x + c, 0), 1), a hard sigmoid, else None."""
    if not steps or len(steps) > 2 or not steps[0].clamps or (len(steps) == 2 and steps[1].clamps):
        return None
    first = steps[0]
    if len(steps) == 1:
        low, high, a, c = np.float64(first.low), np.float64(first.high), first.scale, first.offset
    else:
        if not (np.isfinite(first.low) and np.isfinite(first.high)):
            return None
        second = steps[1]
        ends = (second.scale * first.low + second.offset, second.scale * first.high + second.offset)
        low, high = np.minimum(*ends), np.maximum(*ends)
        a, c = second.scale * first.scale, second.scale * first.offset + second.offset
    if np.allclose(low, 0, rtol=0, atol=1e-7) and np.allclose(high, 1, rtol=1e-7, atol=0):
        return a, c
    return None


def _is_hard_swish_gate(steps: List[Step]) -> bool:
    """Whether the steps compute relu6(x + 3) / 6, the gate of x * relu6(x + 3) / 6."""
    gate = _unit_clamp(steps)
    return gate is not None and np.allclose(gate[0], 1 / 6, rtol=1e-6) and np.allclose(gate[1], 0.5, rtol=1e-6)


def _node_steps(steps: List[Step]) -> List[Tuple[np.ndarray, np.ndarray, str]]:
    """The steps as per-channel (scale, offset, activation) nodes, activation linear, relu or
    relu6: a clamp to [low, high] is relu6 of the input mapped onto [0, 6] and mapped back by
    the next node. (Every clamp has a lower bound: ReLU's 0.)"""
    nodes = []
    scale, offset = np.float64(1), np.float64(0)  # the map still to apply after the last node
    for step in steps:
        s, o = scale * step.scale, offset * step.scale + step.offset
        if not step.clamps:
            scale, offset = s, o
        elif step.high == INF:  # max(y, low) = relu(y - low) + low
            nodes.append((s, o - step.low, "relu"))
            scale, offset = np.float64(1), np.float64(step.low)
        else:
            k = 6 / (step.high - step.low)
            nodes.append((s * k, (o - step.low) * k, "relu6"))
            scale, offset = np.float64(1 / k), np.float64(step.low)
    if not (np.all(scale == 1) and np.all(offset == 0)):
        nodes.append((scale, offset, "linear"))
    return nodes


def _pair(value: Any) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _activation_name(layer: LayerCall, name: Any) -> str:
    name = name or "linear"
    if isinstance(name, dict):  # Keras 3 may serialize activations as objects
        name = name.get("config", {}).get("name") or name.get("class_name", "")
    aliases = {"linear": "linear", "relu": "relu", "relu6": "relu6", "softmax": "softmax", "sigmoid": "sigmoid",
               "hard_swish": "hard_swish", "hard_silu": "hard_swish", "hard_sigmoid": "hard_sigmoid"}
    if name not in aliases:
        raise unsupported(layer, f"activation {name!r} is not supported; supported: {sorted(aliases)}")
    return aliases[name]


def _chain_aware(method):
    """Marks a layer handler that takes pending chains as they are (the others get them as nodes)."""
    method.chain_aware = True
    return method


#: Keras 2 TFOpLambda functions of tensor arithmetic, as the Keras 3 operation they are.
_TF_ARITHMETIC = {
    "__operators__.add": "Add", "math.add": "Add", "math.subtract": "Subtract", "__operators__.sub": "Subtract",
    "math.multiply": "Multiply", "__operators__.mul": "Multiply", "math.truediv": "TrueDivide",
    "__operators__.truediv": "TrueDivide", "math.divide": "TrueDivide",
}


class Converter:
    def __init__(self, flattener: Flattener, weights: WeightStore, size: Optional[Tuple[int, int]] = None,
                 keras2: bool = False):
        self.calls = flattener.calls
        self.weights = weights
        self.output = flattener.output
        self.keras2 = keras2  # Keras 2's hard_sigmoid is clip(0.2 x + 0.5, 0, 1), Keras 3's relu6(x + 3) / 6
        self.nodes: List[Node] = []
        self.values: Dict[str, Any] = {}  # tensor id -> Value or Chain
        self.readers: Dict[str, int] = {}
        for call in self.calls:
            for tensor in call.inputs:
                self.readers[tensor] = self.readers.get(tensor, 0) + 1
        self.input_shape = _input_shape(flattener.input_shape, size)
        self.values[INPUT] = Value(INPUT, self.input_shape)
        # A Rescaling that reads the input means the model preprocesses its own input, so
        # mnengine must feed it the 0..255 pixels; a Rescaling further on (a temperature
        # after the classifier, say) is just arithmetic and says nothing about the input.
        self.rescales_input = False
        # Values of each layer's variables, by the layer's place in the model (a layer called
        # twice has its variables once), as Keras's count_params counts them.
        self.keras_parameters: Dict[Tuple[str, ...], int] = {}

    def convert(self) -> List[Node]:
        for call in self.calls:
            if call.operation:
                handler = getattr(self, "_op_" + call.class_name, None)
            else:
                handler = getattr(self, "_" + call.class_name, None)
            if handler is None:
                what = "this operation" if call.operation else "this layer"
                raise unsupported(call, f"{what} is not supported; supported: " + ", ".join(SUPPORTED_LAYERS))
            if getattr(handler, "chain_aware", False):
                ins = [self.values[t] for t in call.inputs]
            else:
                ins = [self._materialize(t) for t in call.inputs]
            out = handler(call, ins)
            if isinstance(out, Value) and any(
                    isinstance(v, Value) and v.node == out.node and (v.shared or self.readers.get(t, 0) > 1)
                    for t, v in zip(call.inputs, ins)):
                out = dataclasses.replace(out, shared=True)  # the same node's output under two tensors
            self.values[call.output] = out
        out = self._materialize(self.output)
        if out.padding != (0, 0, 0, 0):
            raise UnsupportedModelError("the model ends in a ZeroPadding2D")
        if not self.nodes:
            raise UnsupportedModelError("the model computes nothing")
        if out.node != self.nodes[-1].name:
            raise UnsupportedModelError("the model's output is not its last layer's")
        return self.nodes

    # ---- helpers

    def _layer_weights(self, call: LayerCall) -> Weights:
        weights = self.weights.layer(call.keras3_path, call.legacy_path)
        self.keras_parameters[call.keras3_path] = sum(w.size for w in weights.values())
        return weights

    def _add(self, node: Node, shape: Tuple[int, int, int], flat: bool = False) -> Value:
        self.nodes.append(node)
        return Value(node.name, shape, flat=flat)

    def _fusable(self, value: Value, tensor: str, readers: int = 1) -> Optional[Node]:
        """The node producing `value` if what reads `tensor` (`readers` calls, all part of what
        is fused) may be fused into it: its output is read nowhere else and it has no
        activation yet."""
        if (value.node == INPUT or self.readers.get(tensor, 0) != readers or value.padding != (0, 0, 0, 0)
                or value.shared):
            return None
        node = self.nodes[-1]
        return node if node.name == value.node and node.activation == "linear" else None

    def _affine(self, call: LayerCall, value: Value, scale: np.ndarray, offset: np.ndarray,
                activation: str = "linear", name: Optional[str] = None) -> Value:
        """y = clamp(x * scale + offset) per channel, as a depthwise 3x3 with only the centre tap."""
        self._no_padding(call, value)
        channels = value.shape[2]
        kernel = np.zeros((3, 3, channels), np.float32)
        kernel[1, 1] = np.broadcast_to(np.asarray(scale, np.float32), (channels,))
        bias = np.broadcast_to(np.asarray(offset, np.float32), (channels,)).copy()
        node = Node(name or call.name, "depthwise3x3", [value.node], {"kernel": kernel, "bias": bias}, 1,
                    (1, 1, 1, 1), activation)
        return self._add(node, value.shape, value.flat)

    @staticmethod
    def _scale_node(node: Node, scale: np.ndarray, offset: np.ndarray) -> None:
        """Folds y * scale + offset per output channel into the node's kernel and bias."""
        kernel = np.asarray(node.weights["kernel"], np.float64)
        bias = np.asarray(node.weights.get("bias", np.zeros(kernel.shape[-1])), np.float64)
        node.weights["kernel"] = (kernel * scale).astype(np.float32)
        node.weights["bias"] = np.broadcast_to(bias * scale + offset, bias.shape).astype(np.float32)

    def _chain(self, call: LayerCall, tensor: str, step: Step) -> Chain:
        """The pending chain of `tensor` followed by `step`. A chain read by anything else too
        becomes nodes first, so that every chain is made into nodes once."""
        value = self.values[tensor]
        channels = value.shape[2] if isinstance(value, Value) else self.values[value.base].shape[2]

        def per_channel(name: str, array: np.ndarray) -> np.ndarray:
            if array.size == 1:
                return array.reshape(())
            if array.size != channels or array.shape[-1] != channels:
                raise unsupported(call, f"{name} of shape {array.shape}: supported are a scalar or one value per "
                                        f"channel ({channels})")
            return array.reshape(-1)

        step = dataclasses.replace(step, scale=per_channel("scale", step.scale),
                                   offset=per_channel("offset", step.offset))
        if isinstance(value, Chain) and self.readers.get(tensor, 0) == 1:
            return Chain(value.base, _then(value.steps, step), call.name, call)
        self._materialize(tensor)
        return Chain(tensor, [step], call.name, call)

    def _materialize(self, tensor: str) -> Value:
        """The Value of `tensor`, its pending chain made into nodes: folded into the node that
        produced the chain's base where nothing else reads that, else as affine nodes."""
        chain = self.values[tensor]
        if isinstance(chain, Value):
            return chain
        base = self.values[chain.base]
        target = self._fusable(base, chain.base)
        gate = _unit_clamp(chain.steps)
        result = base
        if target is not None and target.op in ("conv1x1", "dense") and gate is not None:
            # clamp(a y + c, 0, 1) = hard_sigmoid(6 a y + 6 c - 3), hard_sigmoid(z) = relu6(z + 3) / 6
            a, c = gate
            self._scale_node(target, 6 * a, 6 * c - 3)
            target.activation = "hard_sigmoid"
        else:
            steps = _node_steps(chain.steps)
            for i, (scale, offset, activation) in enumerate(steps):
                if i == 0 and target is not None and target.op in KERNEL_OPS:
                    self._scale_node(target, scale, offset)
                    target.activation = activation
                elif (i == 0 and target is not None and target.op == "add" and activation != "linear"
                      and np.all(scale == 1) and np.all(offset == 0)):
                    target.activation = activation
                else:
                    name = chain.name if i == len(steps) - 1 else f"{chain.name}#{i + 1}"
                    result = self._affine(chain.call, result, scale, offset, activation, name)
        self.values[tensor] = result
        return result

    def _activate(self, call: LayerCall, tensor: str, activation: str) -> Any:
        """`activation` applied to `tensor`: a pending step, fused into the node producing it when
        that node feeds only it, or as a node of its own."""
        if activation == "linear":
            return self.values[tensor]
        steps = {"relu": Step(np.float64(1), np.float64(0), 0.0),
                 "relu6": Step(np.float64(1), np.float64(0), 0.0, 6.0),
                 "hard_sigmoid": (Step(np.float64(0.2), np.float64(0.5), 0.0, 1.0) if self.keras2
                                  else Step(np.float64(1 / 6), np.float64(0.5), 0.0, 1.0))}
        if activation in steps:
            return self._chain(call, tensor, steps[activation])
        value = self._materialize(tensor)
        if activation in ("softmax", "sigmoid"):
            if value.shape[:2] != (1, 1) and not value.flat:
                raise unsupported(call, f"{activation} over a spatial tensor is not supported")
            return self._add(Node(call.name + "_" + activation, activation, [value.node]), value.shape, value.flat)
        return self._hard_swish(call, value, tensor)

    def _hard_swish(self, call: LayerCall, value: Value, tensor: str, readers: int = 1) -> Value:
        node = self._fusable(value, tensor, readers)
        if node is not None and node.op in KERNEL_OPS:
            node.activation = "hard_swish"
            return value
        self._no_padding(call, value)
        return self._add(Node(call.name, "hard_swish", [value.node]), value.shape, value.flat)

    def _intrinsic_activation(self, call: LayerCall, out: Value, activation: Any) -> Any:
        """A layer's own activation on its output `out`, which nothing else reads."""
        tensor = call.output + "#linear"
        self.values[tensor], self.readers[tensor] = out, 1
        return self._activate(call, tensor, _activation_name(call, activation))

    @staticmethod
    def _no_padding(call: LayerCall, value: Value) -> None:
        if value.padding != (0, 0, 0, 0):
            raise unsupported(call, "a ZeroPadding2D may only feed a 3x3 convolution or a depthwise convolution")

    def _window(self, call: LayerCall, value: Value, kernel: int = 3
                ) -> Tuple[int, Tuple[int, int, int, int], Tuple[int, int]]:
        """Stride, total padding and output size of a `kernel` x `kernel` window layer."""
        config = call.config
        if config.get("data_format", "channels_last") != "channels_last":
            raise unsupported(call, "only data_format='channels_last' is supported")
        if _pair(config.get("dilation_rate", 1)) != (1, 1):
            raise unsupported(call, "dilated convolutions are not supported")
        strides = _pair(config.get("strides", 1))
        if strides[0] != strides[1] or strides[0] not in (1, 2):
            raise unsupported(call, f"strides {strides}: supported are (1, 1) and (2, 2)")
        stride = strides[0]
        top, bottom, left, right = value.padding
        height, width = value.shape[0] + top + bottom, value.shape[1] + left + right
        if config.get("padding", "valid") == "same":
            extra_top, extra_bottom = same_padding(height, stride, kernel)
            extra_left, extra_right = same_padding(width, stride, kernel)
            top, bottom, left, right = top + extra_top, bottom + extra_bottom, left + extra_left, right + extra_right
        elif config.get("padding", "valid") != "valid":
            raise unsupported(call, f"padding {config.get('padding')!r}: supported are 'same' and 'valid'")
        out_h = window_output(value.shape[0], top, bottom, stride, kernel)
        out_w = window_output(value.shape[1], left, right, stride, kernel)
        if out_h < 1 or out_w < 1:
            raise unsupported(call, f"the input {value.shape[:2]} is smaller than the kernel")
        return stride, (top, bottom, left, right), (out_h, out_w)

    # ---- layers (methods named after the Keras class; _op_: Keras 3 operations)

    def _InputLayer(self, call: LayerCall, ins: List[Value]) -> Value:  # nested inputs are mapped away
        return ins[0]

    def _Dropout(self, call: LayerCall, ins: List[Value]) -> Value:
        return ins[0]

    _SpatialDropout2D = _Dropout

    def _Conv2D(self, call: LayerCall, ins: List[Value]) -> Any:
        value, config = ins[0], call.config
        size = _pair(config["kernel_size"])
        if config.get("groups", 1) != 1:
            raise unsupported(call, "grouped convolutions are not supported")
        w = self._layer_weights(call)
        kernel, bias = w["kernel"], w.get("bias")
        if size == (3, 3):
            stride, padding, (out_h, out_w) = self._window(call, value)
            node = Node(call.name, "conv3x3", [value.node], {"kernel": kernel}, stride, padding)
        elif size == (1, 1):
            self._no_padding(call, value)
            if _pair(config.get("strides", 1)) != (1, 1):
                raise unsupported(call, "1x1 convolutions must have stride 1")
            if value.flat and value.shape[:2] != (1, 1):
                raise unsupported(call, "a 1x1 convolution on a flattened tensor is not supported")
            out_h, out_w = value.shape[:2]
            node = Node(call.name, "conv1x1", [value.node], {"kernel": kernel[0, 0]})
        else:
            raise unsupported(call, f"kernel_size {size}: supported are 3x3 and 1x1")
        if bias is not None:
            node.weights["bias"] = bias
        out = self._add(node, (out_h, out_w, kernel.shape[-1]))
        return self._intrinsic_activation(call, out, config.get("activation"))

    def _DepthwiseConv2D(self, call: LayerCall, ins: List[Value]) -> Any:
        value, config = ins[0], call.config
        size = _pair(config["kernel_size"])
        if size not in ((3, 3), (5, 5)):
            raise unsupported(call, f"kernel_size {size}: supported are 3x3 and 5x5 depthwise")
        if config.get("depth_multiplier", 1) != 1:
            raise unsupported(call, "depth_multiplier must be 1")
        w = self._layer_weights(call)
        stride, padding, (out_h, out_w) = self._window(call, value, size[0])
        kernel = w["depthwise_kernel"] if "depthwise_kernel" in w else w["kernel"]
        node = Node(call.name, f"depthwise{size[0]}x{size[1]}", [value.node], {"kernel": kernel[:, :, :, 0]},
                    stride, padding)
        if "bias" in w:
            node.weights["bias"] = w["bias"]
        out = self._add(node, (out_h, out_w, value.shape[2]))
        return self._intrinsic_activation(call, out, config.get("activation"))

    def _Dense(self, call: LayerCall, ins: List[Value]) -> Any:
        value = ins[0]
        self._no_padding(call, value)
        w = self._layer_weights(call)
        kernel, units = w["kernel"], w["kernel"].shape[1]
        if value.flat or value.shape[:2] == (1, 1):
            node = Node(call.name, "dense", [value.node], {"kernel": kernel})
        else:  # Dense on a feature map acts on the last axis: a pointwise convolution
            node = Node(call.name, "conv1x1", [value.node], {"kernel": kernel})
        if "bias" in w:
            node.weights["bias"] = w["bias"]
        shape = (1, 1, units) if node.op == "dense" else value.shape[:2] + (units,)
        out = self._add(node, shape)
        return self._intrinsic_activation(call, out, call.config.get("activation"))

    @_chain_aware
    def _BatchNormalization(self, call: LayerCall, ins: List[Any]) -> Chain:
        config = call.config
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3):
            raise unsupported(call, f"axis {axis}: only the channel axis (-1) is supported")
        w = self._layer_weights(call)
        epsilon = float(config.get("epsilon", 1e-3))
        variance = np.asarray(w["moving_variance"], np.float64)
        scale = np.asarray(w.get("gamma", np.ones_like(variance)), np.float64) / np.sqrt(variance + epsilon)
        offset = np.asarray(w.get("beta", np.zeros_like(variance)), np.float64) - np.asarray(w["moving_mean"], np.float64) * scale
        return self._chain(call, call.inputs[0], Step(scale, offset))

    @_chain_aware
    def _ReLU(self, call: LayerCall, ins: List[Any]) -> Chain:
        config = call.config
        max_value = config.get("max_value")
        if config.get("negative_slope", 0) not in (0, None) or config.get("threshold", 0) not in (0, None):
            raise unsupported(call, "leaky or thresholded ReLU is not supported")
        if max_value is None:
            activation = "relu"
        elif float(max_value) == 6.0:
            activation = "relu6"
        else:
            raise unsupported(call, f"max_value {max_value}: supported are None and 6")
        return self._activate(call, call.inputs[0], activation)

    @_chain_aware
    def _Activation(self, call: LayerCall, ins: List[Any]) -> Any:
        return self._activate(call, call.inputs[0], _activation_name(call, call.config.get("activation")))

    def _Softmax(self, call: LayerCall, ins: List[Value]) -> Value:
        return self._activate(call, call.inputs[0], "softmax")

    def _ZeroPadding2D(self, call: LayerCall, ins: List[Value]) -> Value:
        value = ins[0]
        padding = call.config.get("padding", 1)
        if isinstance(padding, int):
            (top, bottom), (left, right) = (padding, padding), (padding, padding)
        elif isinstance(padding[0], int):
            (top, bottom), (left, right) = (padding[0], padding[0]), (padding[1], padding[1])
        else:
            (top, bottom), (left, right) = padding
        t, b, l, r = value.padding
        return dataclasses.replace(value, padding=(t + top, b + bottom, l + left, r + right))

    def _Add(self, call: LayerCall, ins: List[Value]) -> Value:
        if len(ins) != 2:
            raise unsupported(call, f"adds {len(ins)} tensors; supported: 2")
        for value in ins:
            self._no_padding(call, value)
        if ins[0].shape != ins[1].shape:
            raise unsupported(call, f"shapes {ins[0].shape} and {ins[1].shape} differ")
        return self._add(Node(call.name, "add", [ins[0].node, ins[1].node]), ins[0].shape)

    @_chain_aware
    def _Multiply(self, call: LayerCall, ins: List[Any]) -> Value:
        if len(ins) != 2:
            raise unsupported(call, f"multiplies {len(ins)} tensors; supported: 2")
        for x, gate in ((0, 1), (1, 0)):
            chain = ins[gate]
            if isinstance(chain, Chain) and chain.base == call.inputs[x] and _is_hard_swish_gate(chain.steps):
                # x * relu6(x + 3) / 6: x is read by the gate's first step and here.
                return self._hard_swish(call, self._materialize(call.inputs[x]), call.inputs[x], readers=2)
        a, b = (self._materialize(t) for t in call.inputs)
        for value in (a, b):
            self._no_padding(call, value)
        if b.shape[:2] != (1, 1) and a.shape[:2] == (1, 1):
            a, b = b, a
        if b.shape[:2] != (1, 1) or a.shape[2] != b.shape[2] or (a.flat and a.shape[:2] != (1, 1)):
            raise unsupported(call, f"multiplies shapes {a.shape} and {b.shape}: supported is a feature map (H, W, C) "
                                    "times a per-channel gate (1, 1, C)")
        return self._add(Node(call.name, "multiply", [a.node, b.node]), a.shape, a.flat)

    def _GlobalAveragePooling2D(self, call: LayerCall, ins: List[Value]) -> Value:
        return self._pool(call, ins[0], "global_avg_pool")

    def _GlobalMaxPooling2D(self, call: LayerCall, ins: List[Value]) -> Value:
        return self._pool(call, ins[0], "global_max_pool")

    def _pool(self, call: LayerCall, value: Value, op: str) -> Value:
        self._no_padding(call, value)
        if value.flat:
            raise unsupported(call, "pooling a flattened tensor is not supported")
        return self._add(Node(call.name, op, [value.node]), (1, 1, value.shape[2]))

    def _Flatten(self, call: LayerCall, ins: List[Value]) -> Value:
        self._no_padding(call, ins[0])
        return dataclasses.replace(ins[0], flat=True)

    def _Reshape(self, call: LayerCall, ins: List[Value]) -> Value:
        value = ins[0]
        self._no_padding(call, value)
        target = tuple(call.config["target_shape"])
        size = int(np.prod(value.shape))
        if target in ((1, 1, size), (1, 1, -1)) and (value.shape[:2] == (1, 1) or value.flat):
            return dataclasses.replace(value, flat=value.shape[:2] != (1, 1))
        if target in ((size,), (-1,)):
            return dataclasses.replace(value, flat=True)
        raise unsupported(call, f"target_shape {target} from {value.shape}: supported are (N,) and (1, 1, N)")

    @_chain_aware
    def _Rescaling(self, call: LayerCall, ins: List[Any]) -> Chain:
        if call.inputs[0] == INPUT:
            self.rescales_input = True
        scale = np.asarray(call.config.get("scale", 1.0), np.float64)
        offset = np.asarray(call.config.get("offset", 0.0), np.float64)
        return self._chain(call, call.inputs[0], Step(scale, offset))

    # ---- tensor arithmetic with constants: Keras 3 operations, Keras 2 TFOpLambda layers

    def _arithmetic(self, call: LayerCall, operation: str, constant_first: bool) -> Any:
        if len(call.inputs) == 2 and not call.constants and operation in ("Add", "Multiply"):
            handler = self._Add if operation == "Add" else self._Multiply
            ins = [self.values[t] for t in call.inputs]
            return handler(call, ins if operation == "Multiply" else [self._materialize(t) for t in call.inputs])
        if len(call.inputs) != 1 or len(call.constants) != 1:
            raise unsupported(call, "supported is arithmetic of one tensor and one constant")
        c = np.asarray(call.constants[0], np.float64)
        one, zero = np.float64(1), np.float64(0)
        if operation == "Add":
            step = Step(one, c)
        elif operation == "Multiply":
            step = Step(c, zero)
        elif operation == "Subtract":
            step = Step(-one, c) if constant_first else Step(one, -c)
        elif operation in ("Divide", "TrueDivide") and not constant_first:
            step = Step(1 / c, zero)
        else:
            raise unsupported(call, f"{operation} with the constant first is not supported")
        return self._chain(call, call.inputs[0], step)

    @_chain_aware
    def _op_Add(self, call: LayerCall, ins: List[Any]) -> Any:
        return self._arithmetic(call, "Add", False)

    @_chain_aware
    def _op_Multiply(self, call: LayerCall, ins: List[Any]) -> Any:
        return self._arithmetic(call, "Multiply", False)

    @_chain_aware
    def _op_Subtract(self, call: LayerCall, ins: List[Any]) -> Any:
        return self._arithmetic(call, "Subtract", call.constant_first)

    @_chain_aware
    def _op_Divide(self, call: LayerCall, ins: List[Any]) -> Any:
        return self._arithmetic(call, "Divide", call.constant_first)

    _op_TrueDivide = _op_Divide

    @_chain_aware
    def _TFOpLambda(self, call: LayerCall, ins: List[Any]) -> Any:
        function = call.config.get("function")
        if function in ("nn.relu", "nn.relu6"):
            return self._activate(call, call.inputs[0], function[3:])
        if function not in _TF_ARITHMETIC:
            raise unsupported(call, f"TensorFlow function {function!r} is not supported; supported: "
                                    + ", ".join(sorted(_TF_ARITHMETIC)) + ", nn.relu, nn.relu6")
        return self._arithmetic(call, _TF_ARITHMETIC[function], call.constant_first)


def _input_shape(shape: Optional[Tuple[Any, ...]], size: Optional[Tuple[int, int]]) -> Tuple[int, int, int]:
    """The (height, width, 3) the graph takes: the model's, its free dimensions given by `size`."""
    if shape is None or len(shape) != 3 or shape[2] != 3:
        raise UnsupportedModelError(f"input shape {shape}: expected a (height, width, 3) image input")
    height, width = shape[:2]
    if height is None or width is None:
        if size is None:
            raise UnsupportedModelError(
                f"the model's input size is not fixed (input shape {tuple(shape)}): give the size to export it at, "
                f"--size N or --size HxW (size=N or size=(H, W) in Python)")
        height, width = (size[0] if height is None else height), (size[1] if width is None else width)
    if size is not None and (height, width) != tuple(size):
        raise UnsupportedModelError(f"the model takes {height}x{width} inputs, not the {size[0]}x{size[1]} of --size")
    return int(height), int(width), 3


@dataclasses.dataclass
class Conversion:
    """A Keras model converted to mnengine nodes."""

    input_shape: Tuple[int, int, int]
    nodes: List[Node]
    rescales_input: bool  # a Rescaling reads the input: the model takes 0..255 pixels
    keras_layers: int  # layers of the Keras model, nested models' layers included, InputLayers not
    keras_parameters: int  # values of their variables, as Keras's count_params counts them


def convert(config: Dict[str, Any], store_factory, size: Optional[Tuple[int, int]] = None,
            keras2: bool = False) -> Conversion:
    """Converts a Keras model config; `store_factory(configs)` gives the weights. `size` is the
    (height, width) of a model whose input size is not fixed; `keras2`: the file is Keras 2's."""
    flattener = flatten_model(config)
    converter = Converter(flattener, store_factory(flattener.configs), size, keras2)
    nodes = converter.convert()
    layers = len({call.keras3_path for call in flattener.calls if not call.operation})
    return Conversion(converter.input_shape, nodes, converter.rescales_input, layers,
                      sum(converter.keras_parameters.values()))
