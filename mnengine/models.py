"""MobileNet v1 and v2 graphs, built from Keras-layout weights or synthetic ones.

Weights are given as Keras stores them: ``{layer name: {weight name: array}}`` with the layer
names of ``keras.applications`` (``conv1``, ``conv_dw_1``, ``conv_pw_1_bn``, ``block_3_expand``,
...) and the weight names ``kernel``, ``depthwise_kernel``, ``bias``, ``gamma``, ``beta``,
``moving_mean``, ``moving_variance``. :func:`synthetic_weights` makes such a set with random
values, so tests and benchmarks need no downloads. BatchNormalization is folded into the
preceding convolution here; the graph never contains it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .graph import Graph, Node, same_padding, window_output

KerasWeights = Dict[str, Dict[str, np.ndarray]]

V1_ALPHAS = (0.25, 0.5, 0.75, 1.0)
V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
BN_EPSILON = 1e-3  # keras.applications MobileNet and MobileNetV2 both use 1e-3

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


_CLASSIFIERS = ("conv_preds", "predictions")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel rounding of keras.applications MobileNetV2 (``_make_divisible``)."""
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


def _bn(name: str, channels: int) -> Tuple[str, Dict[str, tuple]]:
    return name, {k: (channels,) for k in ("gamma", "beta", "moving_mean", "moving_variance")}


def synthetic_weights(
    arch: str, alpha: float = 1.0, *, include_top: bool = True, classes: int = 1000, seed: int = 0
) -> KerasWeights:
    """Random weights in the Keras layout for ``arch`` ("mobilenet_v1" or "mobilenet_v2").

    Kernels are He-normal; BatchNormalization statistics and scales are drawn from ranges
    seen in trained MobileNets, so activations keep a realistic scale through the network.
    The classifier is scaled up so that, as in a trained network, its logits spread over
    several units and the softmax output has a clear maximum.
    """
    layers = _layers(arch, alpha, include_top, classes)
    rng = np.random.default_rng(seed)
    weights: KerasWeights = {}
    for name, shapes in layers:
        layer = {}
        for key, shape in shapes.items():
            if key in ("kernel", "depthwise_kernel"):
                fan_in = int(np.prod(shape[:-1])) if key == "kernel" else 9
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


def _layers(arch: str, alpha: float, include_top: bool, classes: int):
    if arch == "mobilenet_v1":
        _check_alpha(arch, alpha, V1_ALPHAS)
        return _v1_layers(alpha, include_top, classes)
    if arch == "mobilenet_v2":
        _check_alpha(arch, alpha, V2_ALPHAS)
        return _v2_layers(alpha, include_top, classes)
    raise ValueError(f"arch must be 'mobilenet_v1' or 'mobilenet_v2', got {arch!r}")


def keras_layers(
    arch: str, alpha: float, *, include_top: bool = True, classes: int = 1000
) -> List[Tuple[str, str, Dict[str, tuple]]]:
    """(layer name, Keras class, {variable: shape}) of each layer with variables of the
    keras.applications model ``arch``, in the model's order; variables in the order Keras
    creates them."""
    return [(name, _keras_class(shapes), shapes) for name, shapes in _layers(arch, alpha, include_top, classes)]


def _keras_class(shapes: Dict[str, tuple]) -> str:
    # In these two architectures a layer's variables tell its class.
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


def _head(nodes: List[Node], x: str, include_top: bool, pooling: Optional[str]) -> None:
    if not include_top and pooling is not None:
        op = "global_avg_pool" if pooling == "avg" else "global_max_pool"
        nodes.append(Node(f"global_{pooling}_pool", op, [x]))


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
