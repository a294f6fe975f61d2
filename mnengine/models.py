"""MobileNet v1, v2 and v3 graphs, built from Keras-layout weights or synthetic ones.

Weights are given as Keras stores them: ``{layer name: {weight name: array}}`` with the layer
names of ``keras.applications`` (``conv1``, ``conv_dw_1``, ``conv_pw_1_bn``, ``block_3_expand``,
``expanded_conv_1_squeeze_excite_conv``, ...) and the weight names ``kernel``, ``depthwise_kernel``, ``bias``, ``gamma``, ``beta``,
``moving_mean``, ``moving_variance``. :func:`synthetic_weights` makes such a set with random
values, so tests and benchmarks need no downloads. BatchNormalization is folded into the
preceding convolution here; the graph never contains it.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .graph import Graph, Node, same_padding, window_output

KerasWeights = Dict[str, Dict[str, np.ndarray]]

V1_ALPHAS = (0.25, 0.5, 0.75, 1.0)
V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
BN_EPSILON = 1e-3  # keras.applications MobileNet, MobileNetV2 and MobileNetV3 all use 1e-3

# (pointwise filters, stride) of the 13 depthwise-separable blocks of MobileNet v1.
_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
    (1024, 2),
    (1024, 1),
]
# (output filters, stride, expansion) of the 17 inverted residual blocks of MobileNet v2.
_V2_BLOCKS = (
    [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6)]
    + [(64, 1, 6)] * 3
    + [(96, 1, 6)] * 3
    + [(160, 2, 6), (160, 1, 6), (160, 1, 6), (320, 1, 6)]
)

# (expansion, output filters, kernel size, stride, squeeze-excite, activation) of the inverted
# residual blocks of keras.applications MobileNetV3Small and MobileNetV3Large, as Keras writes
# them (the expansions' float expressions included, since the channel rounding sees them).
# Kernel size None is the model's (5, or 3 when minimalistic), activation None the model's
# (hard_swish, or relu when minimalistic); minimalistic models have no squeeze-excite.
_V3_BLOCKS = {
    "small": [
        (1, 16, 3, 2, True, "relu"), (72.0 / 16, 24, 3, 2, False, "relu"), (88.0 / 24, 24, 3, 1, False, "relu"),
        (4, 40, None, 2, True, None), (6, 40, None, 1, True, None), (6, 40, None, 1, True, None),
        (3, 48, None, 1, True, None), (3, 48, None, 1, True, None),
        (6, 96, None, 2, True, None), (6, 96, None, 1, True, None), (6, 96, None, 1, True, None),
    ],
    "large": [
        (1, 16, 3, 1, False, "relu"), (4, 24, 3, 2, False, "relu"), (3, 24, 3, 1, False, "relu"),
        (3, 40, None, 2, True, "relu"), (3, 40, None, 1, True, "relu"), (3, 40, None, 1, True, "relu"),
        (6, 80, 3, 2, False, None), (2.5, 80, 3, 1, False, None), (2.3, 80, 3, 1, False, None),
        (2.3, 80, 3, 1, False, None), (6, 112, 3, 1, True, None), (6, 112, 3, 1, True, None),
        (6, 160, None, 2, True, None), (6, 160, None, 1, True, None), (6, 160, None, 1, True, None),
    ],
}
_V3_LAST_POINT_CHANNELS = {"small": 1024, "large": 1280}
_V3_SE_RATIO = 0.25
_V3_STEM_CHANNELS = 16  # not scaled by alpha

_CLASSIFIERS = ("conv_preds", "predictions", "logits")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel rounding of keras.applications MobileNetV2 (``_make_divisible``) and MobileNetV3
    (``_depth``, the same function)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check_alpha(arch: str, alpha: float, allowed: Sequence[float]) -> None:
    if alpha not in allowed:
        raise ValueError(f"{arch} alpha must be one of {tuple(allowed)}, got {alpha!r}")


def _check_head(include_top: bool, pooling: Optional[str], classes: int) -> None:
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes must be a positive integer, got {classes!r}")


# ---------------------------------------------------------------------------------------------
# Layer lists: (layer name, weight shapes) of each architecture, the single source of truth for
# both the synthetic weights and the weights a builder expects.


def _v1_layers(alpha: float, include_top: bool, classes: int) -> List[Tuple[str, Dict[str, tuple]]]:
    layers = []
    channels = int(32 * alpha)
    layers += [("conv1", {"kernel": (3, 3, 3, channels)}), _bn("conv1_bn", channels)]
    for i, (filters, _) in enumerate(_V1_BLOCKS, start=1):
        out = int(filters * alpha)
        layers += [
            (f"conv_dw_{i}", {"depthwise_kernel": (3, 3, channels, 1)}),
            _bn(f"conv_dw_{i}_bn", channels),
            (f"conv_pw_{i}", {"kernel": (1, 1, channels, out)}),
            _bn(f"conv_pw_{i}_bn", out),
        ]
        channels = out
    if include_top:
        layers.append(("conv_preds", {"kernel": (1, 1, channels, classes), "bias": (classes,)}))
    return layers


def _v2_layers(alpha: float, include_top: bool, classes: int) -> List[Tuple[str, Dict[str, tuple]]]:
    layers = []
    channels = make_divisible(32 * alpha)
    layers += [("Conv1", {"kernel": (3, 3, 3, channels)}), _bn("bn_Conv1", channels)]
    for block_id, (filters, _, expansion) in enumerate(_V2_BLOCKS):
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        out = make_divisible(int(filters * alpha))
        expanded = channels * expansion
        if block_id:
            layers += [(prefix + "expand", {"kernel": (1, 1, channels, expanded)}), _bn(prefix + "expand_BN", expanded)]
        layers += [
            (prefix + "depthwise", {"depthwise_kernel": (3, 3, expanded, 1)}),
            _bn(prefix + "depthwise_BN", expanded),
            (prefix + "project", {"kernel": (1, 1, expanded, out)}),
            _bn(prefix + "project_BN", out),
        ]
        channels = out
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    layers += [("Conv_1", {"kernel": (1, 1, channels, last)}), _bn("Conv_1_bn", last)]
    if include_top:
        layers.append(("predictions", {"kernel": (last, classes), "bias": (classes,)}))
    return layers


def _v3_block_specs(model_type: str, alpha: float, minimalistic: bool) -> List[dict]:
    """Each inverted residual block of MobileNetV3 as Keras builds it: prefix, input, expanded
    and output channels, kernel size, stride, squeeze channels (0: no squeeze-excite),
    activation and whether it adds its input."""
    blocks = []
    channels = _V3_STEM_CHANNELS
    for block_id, (expansion, filters, kernel, stride, se, activation) in enumerate(_V3_BLOCKS[model_type]):
        out = make_divisible(filters * alpha)
        expanded = make_divisible(channels * expansion)
        blocks.append({
            "prefix": f"expanded_conv_{block_id}_" if block_id else "expanded_conv_",
            "expand": bool(block_id),
            "in": channels,
            # Block 0 has no expansion layer: its depthwise convolution runs on the input.
            "mid": expanded if block_id else channels,
            "out": out,
            "kernel": 3 if minimalistic else (kernel or 5),
            "stride": stride,
            "squeeze": make_divisible(expanded * _V3_SE_RATIO) if se and not minimalistic else 0,
            "activation": "relu" if minimalistic else (activation or "hard_swish"),
            "add": stride == 1 and channels == out,
        })
        channels = out
    return blocks


def _v3_head_channels(model_type: str, alpha: float, channels: int) -> Tuple[int, int]:
    """(conv_1's channels, conv_2's channels) after a last block of `channels`."""
    last_point = _V3_LAST_POINT_CHANNELS[model_type]
    return make_divisible(channels * 6), make_divisible(last_point * alpha) if alpha > 1.0 else last_point


def _v3_layers(model_type: str, alpha: float, minimalistic: bool, include_top: bool,
               classes: int) -> List[Tuple[str, Dict[str, tuple]]]:
    stem = _V3_STEM_CHANNELS
    layers = [("conv", {"kernel": (3, 3, 3, stem)}), _bn("conv_bn", stem)]
    channels = stem
    for block in _v3_block_specs(model_type, alpha, minimalistic):
        prefix, mid, k = block["prefix"], block["mid"], block["kernel"]
        if block["expand"]:
            layers += [(prefix + "expand", {"kernel": (1, 1, channels, mid)}), _bn(prefix + "expand_bn", mid)]
        layers += [(prefix + "depthwise", {"depthwise_kernel": (k, k, mid, 1)}), _bn(prefix + "depthwise_bn", mid)]
        if block["squeeze"]:
            squeeze = block["squeeze"]
            layers += [
                (prefix + "squeeze_excite_conv", {"kernel": (1, 1, mid, squeeze), "bias": (squeeze,)}),
                (prefix + "squeeze_excite_conv_1", {"kernel": (1, 1, squeeze, mid), "bias": (mid,)}),
            ]
        layers += [(prefix + "project", {"kernel": (1, 1, mid, block["out"])}), _bn(prefix + "project_bn", block["out"])]
        channels = block["out"]
    last_conv, last_point = _v3_head_channels(model_type, alpha, channels)
    layers += [("conv_1", {"kernel": (1, 1, channels, last_conv)}), _bn("conv_1_bn", last_conv)]
    if include_top:
        layers += [
            ("conv_2", {"kernel": (1, 1, last_conv, last_point), "bias": (last_point,)}),
            ("logits", {"kernel": (1, 1, last_point, classes), "bias": (classes,)}),
        ]
    return layers


def _bn(name: str, channels: int) -> Tuple[str, Dict[str, tuple]]:
    return name, {k: (channels,) for k in ("gamma", "beta", "moving_mean", "moving_variance")}


def synthetic_weights(
    arch: str, alpha: float = 1.0, *, include_top: bool = True, classes: int = 1000, seed: int = 0,
    minimalistic: bool = False,
) -> KerasWeights:
    """Random weights in the Keras layout for ``arch`` (one of :data:`ARCHITECTURES`;
    ``minimalistic`` only for the MobileNetV3 ones).

    Kernels are He-normal; BatchNormalization statistics and scales are drawn from ranges
    seen in trained MobileNets, so activations keep a realistic scale through the network.
    The classifier is scaled up so that, as in a trained network, its logits spread over
    several units and the softmax output has a clear maximum.
    """
    layers = _layers(arch, alpha, include_top, classes, minimalistic)
    rng = np.random.default_rng(seed)
    weights: KerasWeights = {}
    for name, shapes in layers:
        layer = {}
        for key, shape in shapes.items():
            if key in ("kernel", "depthwise_kernel"):
                fan_in = int(np.prod(shape[:-1])) if key == "kernel" else shape[0] * shape[1]
                gain = 8.0 if name in _CLASSIFIERS else np.sqrt(2.0)
                value = rng.normal(0.0, gain / np.sqrt(fan_in), shape)
            elif key == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif key == "moving_variance":
                value = rng.uniform(0.5, 2.0, shape)
            elif key == "moving_mean":
                value = rng.normal(0.0, 0.3, shape)
            else:  # beta, bias
                value = rng.normal(0.0, 0.2, shape)
            layer[key] = value.astype(np.float32)
        weights[name] = layer
    return weights


#: The architectures the builders and :func:`synthetic_weights` know.
ARCHITECTURES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")


def _layers(arch: str, alpha: float, include_top: bool, classes: int, minimalistic: bool = False):
    if minimalistic and arch not in ("mobilenet_v3_small", "mobilenet_v3_large"):
        raise ValueError(f"minimalistic applies to MobileNetV3 only, not {arch!r}")
    if arch == "mobilenet_v1":
        _check_alpha(arch, alpha, V1_ALPHAS)
        return _v1_layers(alpha, include_top, classes)
    if arch == "mobilenet_v2":
        _check_alpha(arch, alpha, V2_ALPHAS)
        return _v2_layers(alpha, include_top, classes)
    if arch in ("mobilenet_v3_small", "mobilenet_v3_large"):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 < alpha <= 10 and math.isfinite(alpha)):
            raise ValueError(f"{arch} alpha must be a number in (0, 10], got {alpha!r}")
        return _v3_layers(arch[len("mobilenet_v3_"):], alpha, minimalistic, include_top, classes)
    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


def keras_layers(
    arch: str, alpha: float, *, include_top: bool = True, classes: int = 1000, minimalistic: bool = False
) -> List[Tuple[str, str, Dict[str, tuple]]]:
    """(layer name, Keras class, {variable: shape}) of each layer with variables of the
    keras.applications model ``arch``, in the model's order; variables in the order Keras
    creates them."""
    return [(name, _keras_class(shapes), shapes)
            for name, shapes in _layers(arch, alpha, include_top, classes, minimalistic)]


def _keras_class(shapes: Dict[str, tuple]) -> str:
    # In these architectures a layer's variables tell its class.
    if "gamma" in shapes:
        return "BatchNormalization"
    if "depthwise_kernel" in shapes:
        return "DepthwiseConv2D"
    return "Conv2D" if len(shapes["kernel"]) == 4 else "Dense"


def _check_weights(arch: str, weights: KerasWeights, layers) -> None:
    for name, shapes in layers:
        if name not in weights:
            raise ValueError(f"{arch}: weights have no layer {name!r}")
        for key, shape in shapes.items():
            value = weights[name].get(key)
            if value is None:
                raise ValueError(f"{arch}: layer {name!r} has no weight {key!r}")
            if tuple(value.shape) != shape:
                raise ValueError(f"{arch}: {name}/{key} has shape {tuple(value.shape)}, expected {shape}")


def fold_batch_norm(
    kernel: np.ndarray, bn: Dict[str, np.ndarray], epsilon: float = BN_EPSILON, bias: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Folds BatchNormalization into the convolution before it (output channels last).

    BN(conv(x) + b) = conv(x) * s + (b - mean) * s + beta with s = gamma / sqrt(var + eps).
    Computed in float64 and returned as float32.
    """
    channels = kernel.shape[-1]
    gamma = np.asarray(bn.get("gamma", np.ones(channels)), np.float64)
    beta = np.asarray(bn.get("beta", np.zeros(channels)), np.float64)
    mean = np.asarray(bn["moving_mean"], np.float64)
    variance = np.asarray(bn["moving_variance"], np.float64)
    scale = gamma / np.sqrt(variance + epsilon)
    b = np.zeros(channels) if bias is None else np.asarray(bias, np.float64)
    folded_kernel = np.asarray(kernel, np.float64) * scale
    folded_bias = (b - mean) * scale + beta
    return folded_kernel.astype(np.float32), folded_bias.astype(np.float32)


def _head(nodes: List[Node], x: str, include_top: bool, pooling: Optional[str], names: Optional[Dict[str, str]] = None) -> None:
    """The feature extractor's pooling; `names` maps "avg"/"max" to the node name."""
    if not include_top and pooling is not None:
        op = "global_avg_pool" if pooling == "avg" else "global_max_pool"
        nodes.append(Node(names[pooling] if names else f"global_{pooling}_pool", op, [x]))


def mobilenet_v1(
    alpha: float = 1.0,
    input_size: int = 224,
    *,
    weights: Optional[KerasWeights] = None,
    include_top: bool = True,
    pooling: Optional[str] = None,
    classes: int = 1000,
    labels: Optional[List[str]] = None,
    seed: int = 0,
) -> Graph:
    """MobileNet v1 as ``keras.applications.MobileNet`` builds it, as an mnengine graph.

    ``weights`` are Keras-layout weights (see the module docstring); ``None`` draws synthetic
    ones from ``seed``. ``input_size`` may be any size the network fits (Keras allows >= 32).
    """
    _check_head(include_top, pooling, classes)
    layers = _layers("mobilenet_v1", alpha, include_top, classes)
    if weights is None:
        weights = synthetic_weights("mobilenet_v1", alpha, include_top=include_top, classes=classes, seed=seed)
    _check_weights("mobilenet_v1", weights, layers)

    size = (input_size, input_size)
    top, bottom = same_padding(size[0], 2)
    left, right = same_padding(size[1], 2)
    kernel, bias = fold_batch_norm(weights["conv1"]["kernel"], weights["conv1_bn"])
    nodes = [Node("conv1", "conv3x3", ["input"], {"kernel": kernel, "bias": bias}, 2, (top, bottom, left, right), "relu6")]
    x = "conv1"
    for i, (_, stride) in enumerate(_V1_BLOCKS, start=1):
        dw = weights[f"conv_dw_{i}"]["depthwise_kernel"]
        kernel, bias = fold_batch_norm(dw[:, :, :, 0], weights[f"conv_dw_{i}_bn"])
        # keras.applications pads stride-2 blocks with ZeroPadding2D(((0, 1), (0, 1))) + "valid".
        padding = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)
        nodes.append(Node(f"conv_dw_{i}", "depthwise3x3", [x], {"kernel": kernel, "bias": bias}, stride, padding, "relu6"))
        pw = weights[f"conv_pw_{i}"]["kernel"]
        kernel, bias = fold_batch_norm(pw[0, 0], weights[f"conv_pw_{i}_bn"])
        nodes.append(Node(f"conv_pw_{i}", "conv1x1", [f"conv_dw_{i}"], {"kernel": kernel, "bias": bias}, activation="relu6"))
        x = f"conv_pw_{i}"
    if include_top:
        head = weights["conv_preds"]
        nodes.append(Node("global_average_pooling2d", "global_avg_pool", [x]))
        nodes.append(Node("conv_preds", "conv1x1", ["global_average_pooling2d"], {"kernel": head["kernel"][0, 0], "bias": head["bias"]}))
        nodes.append(Node("predictions", "softmax", ["conv_preds"]))
    _head(nodes, x, include_top, pooling)
    return Graph(f"mobilenet_v1_{alpha:g}_{input_size}", (input_size, input_size, 3), nodes, "mobilenet", labels, {"architecture": "mobilenet_v1", "alpha": f"{alpha:g}"})


def mobilenet_v2(
    alpha: float = 1.0,
    input_size: int = 224,
    *,
    weights: Optional[KerasWeights] = None,
    include_top: bool = True,
    pooling: Optional[str] = None,
    classes: int = 1000,
    labels: Optional[List[str]] = None,
    seed: int = 0,
) -> Graph:
    """MobileNet v2 as ``keras.applications.MobileNetV2`` builds it, as an mnengine graph.

    Arguments as for :func:`mobilenet_v1`.
    """
    _check_head(include_top, pooling, classes)
    layers = _layers("mobilenet_v2", alpha, include_top, classes)
    if weights is None:
        weights = synthetic_weights("mobilenet_v2", alpha, include_top=include_top, classes=classes, seed=seed)
    _check_weights("mobilenet_v2", weights, layers)

    height = width = input_size
    top, bottom = same_padding(height, 2)
    left, right = same_padding(width, 2)
    kernel, bias = fold_batch_norm(weights["Conv1"]["kernel"], weights["bn_Conv1"])
    nodes = [Node("Conv1", "conv3x3", ["input"], {"kernel": kernel, "bias": bias}, 2, (top, bottom, left, right), "relu6")]
    height, width = -(-height // 2), -(-width // 2)
    x = "Conv1"
    channels = kernel.shape[-1]
    for block_id, (_, stride, _) in enumerate(_V2_BLOCKS):
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        block_input = x
        if block_id:
            kernel, bias = fold_batch_norm(weights[prefix + "expand"]["kernel"][0, 0], weights[prefix + "expand_BN"])
            nodes.append(Node(prefix + "expand", "conv1x1", [x], {"kernel": kernel, "bias": bias}, activation="relu6"))
            x = prefix + "expand"
        if stride == 1:
            padding = (1, 1, 1, 1)
        else:
            # imagenet_utils.correct_pad, then "valid": ((0, 1), (0, 1)) on even sizes,
            # ((1, 1), (1, 1)) on odd ones.
            padding = (height % 2, 1, width % 2, 1)
            height, width = window_output(height, *padding[:2], 2), window_output(width, *padding[2:], 2)
        dw = weights[prefix + "depthwise"]["depthwise_kernel"]
        kernel, bias = fold_batch_norm(dw[:, :, :, 0], weights[prefix + "depthwise_BN"])
        nodes.append(Node(prefix + "depthwise", "depthwise3x3", [x], {"kernel": kernel, "bias": bias}, stride, padding, "relu6"))
        kernel, bias = fold_batch_norm(weights[prefix + "project"]["kernel"][0, 0], weights[prefix + "project_BN"])
        nodes.append(Node(prefix + "project", "conv1x1", [prefix + "depthwise"], {"kernel": kernel, "bias": bias}))
        x = prefix + "project"
        if stride == 1 and kernel.shape[-1] == channels:
            nodes.append(Node(prefix + "add", "add", [block_input, x]))
            x = prefix + "add"
        channels = kernel.shape[-1]
    kernel, bias = fold_batch_norm(weights["Conv_1"]["kernel"][0, 0], weights["Conv_1_bn"])
    nodes.append(Node("Conv_1", "conv1x1", [x], {"kernel": kernel, "bias": bias}, activation="relu6"))
    x = "Conv_1"
    if include_top:
        head = weights["predictions"]
        nodes.append(Node("global_average_pooling2d", "global_avg_pool", [x]))
        nodes.append(Node("predictions", "dense", ["global_average_pooling2d"], {"kernel": head["kernel"], "bias": head["bias"]}))
        nodes.append(Node("predictions_softmax", "softmax", ["predictions"]))
    _head(nodes, x, include_top, pooling)
    return Graph(f"mobilenet_v2_{alpha:g}_{input_size}", (input_size, input_size, 3), nodes, "mobilenet", labels, {"architecture": "mobilenet_v2", "alpha": f"{alpha:g}"})


def _input_size(input_size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    """(height, width) of an input size given as one integer or a pair."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in size):
        raise ValueError(f"input size must be a positive integer or (height, width), got {input_size!r}")
    return size


def _mobilenet_v3(
    model_type: str, alpha: float, input_size: Union[int, Tuple[int, int]], minimalistic: bool,
    weights: Optional[KerasWeights], include_top: bool, pooling: Optional[str], classes: int,
    labels: Optional[List[str]], seed: int,
) -> Graph:
    arch = f"mobilenet_v3_{model_type}"
    _check_head(include_top, pooling, classes)
    height, width = _input_size(input_size)
    layers = _layers(arch, alpha, include_top, classes, minimalistic)
    if weights is None:
        weights = synthetic_weights(arch, alpha, include_top=include_top, classes=classes, seed=seed,
                                    minimalistic=minimalistic)
    _check_weights(arch, weights, layers)
    activation = "relu" if minimalistic else "hard_swish"

    def layer(name: str, op: str, x: str, kernel: np.ndarray, bn: Optional[str], act: str, stride: int = 1,
              padding: Tuple[int, int, int, int] = (0, 0, 0, 0), bias: Optional[np.ndarray] = None) -> str:
        """Appends the layer `name` (BatchNormalization `bn` folded in) and returns its name."""
        if bn is not None:
            kernel, bias = fold_batch_norm(kernel, weights[bn])
        node_weights = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias}
        nodes.append(Node(name, op, [x], node_weights, stride, padding, act))
        return name

    nodes: List[Node] = []
    # The stem: Conv2D 3x3 stride 2 "same", BatchNormalization, the model's activation.
    x = layer("conv", "conv3x3", "input", weights["conv"]["kernel"], "conv_bn", activation, 2,
              same_padding(height, 2) + same_padding(width, 2))
    height, width = -(-height // 2), -(-width // 2)
    for block in _v3_block_specs(model_type, alpha, minimalistic):
        prefix, k, stride, act = block["prefix"], block["kernel"], block["stride"], block["activation"]
        block_input = x
        if block["expand"]:
            x = layer(prefix + "expand", "conv1x1", x, weights[prefix + "expand"]["kernel"][0, 0], prefix + "expand_bn", act)
        if stride == 1:
            padding = (k // 2,) * 4  # "same"
        else:
            # ZeroPadding2D(imagenet_utils.correct_pad(x, k)), then "valid": one row and column
            # less before than after on even sizes.
            padding = (k // 2 - 1 + height % 2, k // 2, k // 2 - 1 + width % 2, k // 2)
            height = window_output(height, *padding[:2], 2, k)
            width = window_output(width, *padding[2:], 2, k)
        dw = weights[prefix + "depthwise"]["depthwise_kernel"][:, :, :, 0]
        x = layer(prefix + "depthwise", f"depthwise{k}x{k}", x, dw, prefix + "depthwise_bn", act, stride, padding)
        if block["squeeze"]:
            # Squeeze-excite: the input times a per-channel gate of its own global average.
            se = prefix + "squeeze_excite_"
            nodes.append(Node(se + "avg_pool", "global_avg_pool", [x]))
            gate = layer(se + "conv", "conv1x1", se + "avg_pool", weights[se + "conv"]["kernel"][0, 0], None, "relu",
                         bias=weights[se + "conv"]["bias"])
            gate = layer(se + "conv_1", "conv1x1", gate, weights[se + "conv_1"]["kernel"][0, 0], None, "hard_sigmoid",
                         bias=weights[se + "conv_1"]["bias"])
            nodes.append(Node(se + "mul", "multiply", [x, gate]))
            x = se + "mul"
        x = layer(prefix + "project", "conv1x1", x, weights[prefix + "project"]["kernel"][0, 0], prefix + "project_bn", "linear")
        if block["add"]:
            nodes.append(Node(prefix + "add", "add", [block_input, x]))
            x = prefix + "add"
    x = layer("conv_1", "conv1x1", x, weights["conv_1"]["kernel"][0, 0], "conv_1_bn", activation)
    if include_top:
        # GlobalAveragePooling2D(keepdims=True), conv_2, the activation, Dropout (nothing at
        # inference), logits, Flatten, softmax.
        nodes.append(Node("global_average_pooling2d", "global_avg_pool", [x]))
        x = layer("conv_2", "conv1x1", "global_average_pooling2d", weights["conv_2"]["kernel"][0, 0], None, activation,
                  bias=weights["conv_2"]["bias"])
        x = layer("logits", "conv1x1", x, weights["logits"]["kernel"][0, 0], None, "linear", bias=weights["logits"]["bias"])
        nodes.append(Node("predictions", "softmax", [x]))
    _head(nodes, x, include_top, pooling, {"avg": "avg_pool", "max": "max_pool"})
    shape = _input_size(input_size)
    size = str(shape[0]) if shape[0] == shape[1] else f"{shape[0]}x{shape[1]}"
    variant = "_minimalistic" if minimalistic else ""
    return Graph(f"{arch}{variant}_{alpha:g}_{size}", shape + (3,), nodes, "mobilenet", labels,
                 {"architecture": arch, "alpha": f"{alpha:g}", "minimalistic": str(minimalistic).lower()})


def mobilenet_v3_small(
    alpha: float = 1.0,
    input_size: Union[int, Tuple[int, int]] = 224,
    *,
    minimalistic: bool = False,
    weights: Optional[KerasWeights] = None,
    include_top: bool = True,
    pooling: Optional[str] = None,
    classes: int = 1000,
    labels: Optional[List[str]] = None,
    seed: int = 0,
) -> Graph:
    """MobileNetV3 Small as ``keras.applications.MobileNetV3Small`` builds it (with its
    input rescaling, which the graph's "mobilenet" preprocessing does), as an mnengine graph.

    ``input_size`` is one integer or (height, width), as ``input_shape`` given to Keras: its
    stride-2 layers pad odd sizes as Keras does for a known size (``correct_pad``). ``alpha``
    may be any width multiplier in (0, 10], as Keras allows; ``minimalistic`` drops
    squeeze-excite, hard-swish (ReLU instead) and 5x5 kernels. Other arguments as for
    :func:`mobilenet_v1`.
    """
    return _mobilenet_v3("small", alpha, input_size, minimalistic, weights, include_top, pooling, classes, labels, seed)


def mobilenet_v3_large(
    alpha: float = 1.0,
    input_size: Union[int, Tuple[int, int]] = 224,
    *,
    minimalistic: bool = False,
    weights: Optional[KerasWeights] = None,
    include_top: bool = True,
    pooling: Optional[str] = None,
    classes: int = 1000,
    labels: Optional[List[str]] = None,
    seed: int = 0,
) -> Graph:
    """MobileNetV3 Large as ``keras.applications.MobileNetV3Large`` builds it. Arguments as
    for :func:`mobilenet_v3_small`."""
    return _mobilenet_v3("large", alpha, input_size, minimalistic, weights, include_top, pooling, classes, labels, seed)
