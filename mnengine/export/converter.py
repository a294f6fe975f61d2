"""Keras model config + weights -> mnengine Graph.

The (possibly nested) Functional or Sequential config is first flattened into one list of
layer calls in execution order, each naming the tensors it reads; then each call becomes
graph nodes: convolutions, depthwise convolutions and dense layers with their activations
fused, BatchNormalization folded into the layer before it, ZeroPadding2D merged into the
convolution after it. What cannot be folded - a BatchNormalization or an activation after an
add or a pooling, a Rescaling - becomes a per-channel affine node, a depthwise 3x3 whose only
non-zero tap is the centre: exact, and cheap on the small tensors where it occurs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..graph import INPUT, Graph, Node, same_padding, window_output
from ..models import fold_batch_norm
from .keras_files import Keras3Names, Weights, WeightStore

#: Layer classes the exporter understands, and what each becomes.
SUPPORTED_LAYERS = {
    "InputLayer": "the input",
    "Conv2D": "3x3 (any stride) or 1x1 (stride 1) convolution",
    "DepthwiseConv2D": "3x3 depthwise convolution, depth_multiplier 1",
    "BatchNormalization": "folded into the layer before it",
    "ReLU": "ReLU / ReLU6 (max_value 6)",
    "Activation": "relu, relu6, linear, softmax, sigmoid",
    "ZeroPadding2D": "merged into the next convolution",
    "Add": "residual add",
    "GlobalAveragePooling2D": "global average pooling",
    "GlobalMaxPooling2D": "global max pooling",
    "Dense": "fully connected (linear, relu, relu6, softmax or sigmoid)",
    "Softmax": "softmax",
    "Flatten": "flatten",
    "Reshape": "reshape to (1, 1, N) or (N,)",
    "Dropout": "nothing at inference",
    "Rescaling": "per-channel scale and offset",
}
_MODELS = ("Functional", "Sequential", "Model")


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


# ------------------------------------------------------------------ flattening the config

def _history_entries(value: Any) -> List[Sequence]:
    """keras_history triples [layer, node, tensor] found in a Keras 3 call's args, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"]]
        return [h for v in value.values() for h in _history_entries(v)]
    if isinstance(value, (list, tuple)):
        return [h for v in value for h in _history_entries(v)]
    return []


def _inbound_calls(layer_config: Dict[str, Any]) -> List[List[Sequence]]:
    """Each inbound node of a layer as a list of [layer, node, tensor] (Keras 2 and 3)."""
    calls = []
    for node in layer_config.get("inbound_nodes", []):
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            calls.append(_history_entries(node.get("args", [])))
        else:  # Keras 2: [[layer, node, tensor, kwargs], ...]
            calls.append([entry[:3] for entry in node])
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
            path3, path_legacy = keras3 + (keras3_names(layer["class_name"]),), legacy + (name,)
            if layer["class_name"] == "InputLayer":
                position = input_names.index(name)
                produced[(name, 0, 0)] = inputs[position] if inputs else self._top_input(layer)
                continue
            for node_index, call in enumerate(_inbound_calls(layer)):
                try:
                    args = [produced[(entry[0], entry[1], entry[2])] for entry in call]
                except KeyError as e:
                    raise UnsupportedModelError(f"layer {name!r}: input {e.args[0]} is not produced before it") from None
                outputs = self._call(layer, args, path3, path_legacy, prefix, node_index)
                for tensor_index, tensor in enumerate(outputs):
                    produced[(name, node_index, tensor_index)] = tensor
        return [produced[tuple(entry[:3])] for entry in _endpoints(config["output_layers"])]

    def _top_input(self, layer: Dict[str, Any]) -> str:
        config = layer["config"]
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        if shape is None:
            raise UnsupportedModelError("the model has no input shape: build it with a fixed input size")
        self.input_shape = tuple(shape[1:])
        return INPUT

    def _call(self, layer: Dict[str, Any], inputs: List[str], keras3: Tuple[str, ...], legacy: Tuple[str, ...],
              prefix: str, node_index: int) -> List[str]:
        name = _layer_name(layer)
        if layer["class_name"] in _MODELS:
            return self.model(layer, inputs, keras3, legacy, prefix + name + "/")
        unique = prefix + name + (f":{node_index}" if node_index else "")
        self.configs[keras3] = (layer["class_name"], layer["config"])
        self.calls.append(LayerCall(unique, layer["class_name"], layer["config"], inputs, unique, keras3, legacy))
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

@dataclasses.dataclass
class Value:
    """A tensor of the Keras model as mnengine sees it."""

    node: str  # the mnengine node producing it (or "input")
    shape: Tuple[int, int, int]  # the mnengine tensor's (H, W, C)
    padding: Tuple[int, int, int, int] = (0, 0, 0, 0)  # ZeroPadding2D still to apply
    flat: bool = False  # Keras sees it flattened (H * W * C,)


def _pair(value: Any) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _activation_name(layer: LayerCall, name: Optional[str]) -> str:
    name = name or "linear"
    if isinstance(name, dict):  # Keras 3 may serialize activations as objects
        name = name.get("config", {}).get("name") or name.get("class_name", "")
    aliases = {"linear": "linear", "relu": "relu", "relu6": "relu6", "softmax": "softmax", "sigmoid": "sigmoid"}
    if name not in aliases:
        raise unsupported(layer, f"activation {name!r} is not supported; supported: {sorted(aliases)}")
    return aliases[name]


class Converter:
    def __init__(self, flattener: Flattener, weights: WeightStore):
        self.calls = flattener.calls
        self.weights = weights
        self.output = flattener.output
        self.nodes: List[Node] = []
        self.values: Dict[str, Value] = {}
        self.readers: Dict[str, int] = {}
        for call in self.calls:
            for tensor in call.inputs:
                self.readers[tensor] = self.readers.get(tensor, 0) + 1
        shape = flattener.input_shape
        if shape is None or len(shape) != 3 or shape[2] != 3 or not all(isinstance(s, int) for s in shape):
            raise UnsupportedModelError(f"input shape {shape}: expected a fixed (height, width, 3) image input")
        self.input_shape = tuple(shape)
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
            handler = getattr(self, "_" + call.class_name, None)
            if handler is None:
                raise unsupported(call, "this layer is not supported; supported: " + ", ".join(SUPPORTED_LAYERS))
            self.values[call.output] = handler(call, [self.values[t] for t in call.inputs])
        out = self.values[self.output]
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

    def _fusable(self, value: Value, tensor: str) -> Optional[Node]:
        """The node producing `value` if a following activation or BN may be fused into it."""
        if value.node == INPUT or self.readers.get(tensor, 0) != 1 or value.padding != (0, 0, 0, 0):
            return None
        node = self.nodes[-1]
        return node if node.name == value.node and node.activation == "linear" else None

    def _affine(self, call: LayerCall, value: Value, scale: np.ndarray, offset: np.ndarray,
                activation: str = "linear") -> Value:
        """y = clamp(x * scale + offset) per channel, as a depthwise 3x3 with only the centre tap."""
        self._no_padding(call, value)
        if value.flat and value.shape[:2] != (1, 1):
            raise unsupported(call, "per-feature scaling of a flattened spatial tensor is not supported")
        channels = value.shape[2]
        kernel = np.zeros((3, 3, channels), np.float32)
        kernel[1, 1] = np.broadcast_to(np.asarray(scale, np.float32), (channels,))
        bias = np.broadcast_to(np.asarray(offset, np.float32), (channels,)).copy()
        node = Node(call.name, "depthwise3x3", [value.node], {"kernel": kernel, "bias": bias}, 1, (1, 1, 1, 1), activation)
        return self._add(node, value.shape, value.flat)

    def _activate(self, call: LayerCall, value: Value, tensor: str, activation: str,
                  intrinsic: bool = False) -> Value:
        """Applies an activation to `value`: fused into the node producing it when that node
        is the activation's own layer (`intrinsic`) or feeds only it, else as an extra node."""
        if activation == "linear":
            return value
        if activation in ("softmax", "sigmoid"):
            if value.shape[:2] != (1, 1) and not value.flat:
                raise unsupported(call, f"{activation} over a spatial tensor is not supported")
            return self._add(Node(call.name + "_" + activation, activation, [value.node]), value.shape, value.flat)
        node = self.nodes[-1] if intrinsic else self._fusable(value, tensor)
        if node is not None:
            node.activation = activation
            return value
        channels = value.shape[2]
        return self._affine(call, value, np.ones(channels), np.zeros(channels), activation)

    @staticmethod
    def _no_padding(call: LayerCall, value: Value) -> None:
        if value.padding != (0, 0, 0, 0):
            raise unsupported(call, "a ZeroPadding2D may only feed a 3x3 convolution")

    def _window(self, call: LayerCall, value: Value) -> Tuple[int, Tuple[int, int, int, int], Tuple[int, int]]:
        """Stride, total padding and output size of a 3x3 window layer."""
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
            extra_top, extra_bottom = same_padding(height, stride)
            extra_left, extra_right = same_padding(width, stride)
            top, bottom, left, right = top + extra_top, bottom + extra_bottom, left + extra_left, right + extra_right
        elif config.get("padding", "valid") != "valid":
            raise unsupported(call, f"padding {config.get('padding')!r}: supported are 'same' and 'valid'")
        out_h = window_output(value.shape[0], top, bottom, stride)
        out_w = window_output(value.shape[1], left, right, stride)
        if out_h < 1 or out_w < 1:
            raise unsupported(call, f"the input {value.shape[:2]} is smaller than the kernel")
        return stride, (top, bottom, left, right), (out_h, out_w)

    # ---- layers (methods named after the Keras class)

    def _InputLayer(self, call: LayerCall, ins: List[Value]) -> Value:  # nested inputs are mapped away
        return ins[0]

    def _Dropout(self, call: LayerCall, ins: List[Value]) -> Value:
        return ins[0]

    _SpatialDropout2D = _Dropout

    def _Conv2D(self, call: LayerCall, ins: List[Value]) -> Value:
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
        return self._activate(call, out, call.output, _activation_name(call, config.get("activation")), True)

    def _DepthwiseConv2D(self, call: LayerCall, ins: List[Value]) -> Value:
        value, config = ins[0], call.config
        if _pair(config["kernel_size"]) != (3, 3):
            raise unsupported(call, f"kernel_size {_pair(config['kernel_size'])}: only 3x3 depthwise is supported")
        if config.get("depth_multiplier", 1) != 1:
            raise unsupported(call, "depth_multiplier must be 1")
        w = self._layer_weights(call)
        stride, padding, (out_h, out_w) = self._window(call, value)
        kernel = w["depthwise_kernel"] if "depthwise_kernel" in w else w["kernel"]
        node = Node(call.name, "depthwise3x3", [value.node], {"kernel": kernel[:, :, :, 0]}, stride, padding)
        if "bias" in w:
            node.weights["bias"] = w["bias"]
        out = self._add(node, (out_h, out_w, value.shape[2]))
        return self._activate(call, out, call.output, _activation_name(call, config.get("activation")), True)

    def _Dense(self, call: LayerCall, ins: List[Value]) -> Value:
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
        return self._activate(call, out, call.output, _activation_name(call, call.config.get("activation")), True)

    def _BatchNormalization(self, call: LayerCall, ins: List[Value]) -> Value:
        value, config = ins[0], call.config
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3):
            raise unsupported(call, f"axis {axis}: only the channel axis (-1) is supported")
        w = self._layer_weights(call)
        epsilon = float(config.get("epsilon", 1e-3))
        node = self._fusable(value, call.inputs[0])
        if node is not None and node.op in ("conv3x3", "conv1x1", "depthwise3x3", "dense"):
            kernel, bias = fold_batch_norm(node.weights["kernel"], w, epsilon, node.weights.get("bias"))
            node.weights.update(kernel=kernel, bias=bias)
            return value
        scale = np.asarray(w.get("gamma", 1.0), np.float64) / np.sqrt(np.asarray(w["moving_variance"], np.float64) + epsilon)
        offset = np.asarray(w.get("beta", 0.0), np.float64) - np.asarray(w["moving_mean"], np.float64) * scale
        return self._affine(call, value, scale, offset)

    def _ReLU(self, call: LayerCall, ins: List[Value]) -> Value:
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
        return self._activate(call, ins[0], call.inputs[0], activation)

    def _Activation(self, call: LayerCall, ins: List[Value]) -> Value:
        return self._activate(call, ins[0], call.inputs[0], _activation_name(call, call.config.get("activation")))

    def _Softmax(self, call: LayerCall, ins: List[Value]) -> Value:
        return self._activate(call, ins[0], call.inputs[0], "softmax")

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

    def _Rescaling(self, call: LayerCall, ins: List[Value]) -> Value:
        if ins[0].node == INPUT:
            self.rescales_input = True
        channels = ins[0].shape[2]
        scale = np.asarray(call.config.get("scale", 1.0), np.float64)
        offset = np.asarray(call.config.get("offset", 0.0), np.float64)
        if scale.size not in (1, channels) or offset.size not in (1, channels):
            raise unsupported(call, "scale and offset must be scalars or per-channel")
        return self._affine(call, ins[0], scale.reshape(-1), offset.reshape(-1))


@dataclasses.dataclass
class Conversion:
    """A Keras model converted to mnengine nodes."""

    input_shape: Tuple[int, int, int]
    nodes: List[Node]
    rescales_input: bool  # a Rescaling reads the input: the model takes 0..255 pixels
    keras_layers: int  # layers of the Keras model, nested models' layers included, InputLayers not
    keras_parameters: int  # values of their variables, as Keras's count_params counts them


def convert(config: Dict[str, Any], store_factory) -> Conversion:
    """Converts a Keras model config; `store_factory(configs)` gives the weights."""
    flattener = flatten_model(config)
    converter = Converter(flattener, store_factory(flattener.configs))
    nodes = converter.convert()
    layers = len({call.keras3_path for call in flattener.calls})
    return Conversion(converter.input_shape, nodes, converter.rescales_input, layers,
                      sum(converter.keras_parameters.values()))
