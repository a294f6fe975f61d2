"""Float64 NumPy references, written from Keras's definitions and independent of mnengine.

Layers take NHWC float64 arrays. The networks run MobileNet v1, v2 and v3 from Keras-layout
weights with BatchNormalization applied as Keras applies it (not folded), so they check
mnengine's graph building and folding as well as its kernels.
"""

from typing import Dict, Tuple

import numpy as np

Weights = Dict[str, Dict[str, np.ndarray]]


def pad(x: np.ndarray, padding: Tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _windows(x, kh, kw, stride):
    """Yields (ky, kx, strided view of x under that tap)."""
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx, x[:, ky : ky + stride * (oh - 1) + 1 : stride, kx : kx + stride * (ow - 1) + 1 : stride, :]


def conv2d(x, kernel, bias=None, stride=1, padding=(0, 0, 0, 0)):
    """kernel (kh, kw, C_in, C_out)."""
    x = pad(np.asarray(x, np.float64), padding)
    kernel = np.asarray(kernel, np.float64)
    out = sum(view @ kernel[ky, kx] for ky, kx, view in _windows(x, kernel.shape[0], kernel.shape[1], stride))
    return out if bias is None else out + np.asarray(bias, np.float64)


def depthwise_conv2d(x, kernel, bias=None, stride=1, padding=(0, 0, 0, 0)):
    """kernel (kh, kw, C)."""
    x = pad(np.asarray(x, np.float64), padding)
    kernel = np.asarray(kernel, np.float64)
    out = sum(view * kernel[ky, kx] for ky, kx, view in _windows(x, kernel.shape[0], kernel.shape[1], stride))
    return out if bias is None else out + np.asarray(bias, np.float64)


def dense(x, kernel, bias=None):
    """Flattens each image (H, W, C order, as Keras's Flatten on NHWC) and multiplies."""
    out = np.asarray(x, np.float64).reshape(x.shape[0], -1) @ np.asarray(kernel, np.float64)
    return out if bias is None else out + np.asarray(bias, np.float64)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def softmax(x):
    x = np.asarray(x, np.float64)
    flat = x.reshape(x.shape[0], -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def relu(x):
    return np.maximum(x, 0.0)


def hard_sigmoid(x):
    """keras.applications.mobilenet_v3.hard_sigmoid: ReLU(6)(x + 3) * (1 / 6)."""
    return relu6(np.asarray(x, np.float64) + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    """Keras's "hard_swish" activation: x * relu6(x + 3) / 6."""
    x = np.asarray(x, np.float64)
    return x * relu6(x + 3.0) / 6.0


def batch_norm(x, bn, epsilon=1e-3):
    return (x - bn["moving_mean"]) / np.sqrt(np.asarray(bn["moving_variance"], np.float64) + epsilon) * bn["gamma"] + bn["beta"]


def keras_same_padding(size, stride, kernel=3):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def mobilenet_v1(x, w: Weights, include_top=True):
    """keras.applications.MobileNet's forward pass on preprocessed input x (N, H, W, 3)."""
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    h, wd = x.shape[1:3]
    x = conv2d(x, w["conv1"]["kernel"], stride=2, padding=keras_same_padding(h, 2) + keras_same_padding(wd, 2))
    x = relu6(batch_norm(x, w["conv1_bn"]))
    for i, stride in enumerate(strides, start=1):
        padding = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)  # ZeroPadding2D((0, 1), (0, 1)) + valid
        x = depthwise_conv2d(x, w[f"conv_dw_{i}"]["depthwise_kernel"][:, :, :, 0], stride=stride, padding=padding)
        x = relu6(batch_norm(x, w[f"conv_dw_{i}_bn"]))
        x = conv2d(x, w[f"conv_pw_{i}"]["kernel"])
        x = relu6(batch_norm(x, w[f"conv_pw_{i}_bn"]))
    if not include_top:
        return x
    x = x.mean(axis=(1, 2), keepdims=True)
    x = conv2d(x, w["conv_preds"]["kernel"], w["conv_preds"]["bias"])
    return softmax(x.reshape(x.shape[0], -1))


def mobilenet_v2(x, w: Weights, include_top=True):
    """keras.applications.MobileNetV2's forward pass on preprocessed input x (N, H, W, 3)."""
    strides = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    h, wd = x.shape[1:3]
    x = conv2d(x, w["Conv1"]["kernel"], stride=2, padding=keras_same_padding(h, 2) + keras_same_padding(wd, 2))
    x = relu6(batch_norm(x, w["bn_Conv1"]))
    for block, stride in enumerate(strides):
        prefix = f"block_{block}_" if block else "expanded_conv_"
        inputs = x
        if block:
            x = relu6(batch_norm(conv2d(x, w[prefix + "expand"]["kernel"]), w[prefix + "expand_BN"]))
        if stride == 2:  # ZeroPadding2D(imagenet_utils.correct_pad(x, 3)), then "valid"
            adjust = (1 - x.shape[1] % 2, 1 - x.shape[2] % 2)
            padding = (1 - adjust[0], 1, 1 - adjust[1], 1)
        else:
            padding = (1, 1, 1, 1)
        x = depthwise_conv2d(x, w[prefix + "depthwise"]["depthwise_kernel"][:, :, :, 0], stride=stride, padding=padding)
        x = relu6(batch_norm(x, w[prefix + "depthwise_BN"]))
        x = batch_norm(conv2d(x, w[prefix + "project"]["kernel"]), w[prefix + "project_BN"])
        if stride == 1 and inputs.shape[-1] == x.shape[-1]:
            x = inputs + x
    x = relu6(batch_norm(conv2d(x, w["Conv_1"]["kernel"]), w["Conv_1_bn"]))
    if not include_top:
        return x
    x = x.mean(axis=(1, 2))
    return softmax(dense(x, w["predictions"]["kernel"], w["predictions"]["bias"]))


# Per block of keras.applications MobileNetV3Small / MobileNetV3Large (stack_fn): stride, and
# whether it uses ReLU rather than the model's activation. Kernel sizes, channels and
# squeeze-excite are read off the weights.
_V3_BLOCKS = {
    "small": [(2, True), (2, True), (1, True)] + [(2, False)] + [(1, False)] * 4 + [(2, False), (1, False), (1, False)],
    "large": [(1, True), (2, True), (1, True), (2, True), (1, True), (1, True), (2, False)] + [(1, False)] * 5
    + [(2, False), (1, False), (1, False)],
}


def mobilenet_v3(x, w: Weights, model_type="small", minimalistic=False, include_top=True, classifier_activation="softmax"):
    """keras.applications.MobileNetV3Small/Large's forward pass on input x (N, H, W, 3) already
    rescaled to [-1, 1] (its Rescaling layer), with an input shape given (correct_pad sees it).
    classifier_activation=None returns the logits."""
    activation = relu if minimalistic else hard_swish
    h, wd = x.shape[1:3]
    x = conv2d(x, w["conv"]["kernel"], stride=2, padding=keras_same_padding(h, 2) + keras_same_padding(wd, 2))
    x = activation(batch_norm(x, w["conv_bn"]))
    for block, (stride, uses_relu) in enumerate(_V3_BLOCKS[model_type]):
        prefix = f"expanded_conv_{block}_" if block else "expanded_conv_"
        act = relu if uses_relu else activation
        shortcut = x
        if block:
            x = act(batch_norm(conv2d(x, w[prefix + "expand"]["kernel"]), w[prefix + "expand_bn"]))
        kernel = w[prefix + "depthwise"]["depthwise_kernel"][:, :, :, 0]
        k = kernel.shape[0]
        if stride == 2:  # ZeroPadding2D(imagenet_utils.correct_pad(x, k)), then "valid"
            adjust = (1 - x.shape[1] % 2, 1 - x.shape[2] % 2)
            padding = (k // 2 - adjust[0], k // 2, k // 2 - adjust[1], k // 2)
        else:  # "same"
            padding = keras_same_padding(x.shape[1], 1, k) + keras_same_padding(x.shape[2], 1, k)
        x = act(batch_norm(depthwise_conv2d(x, kernel, stride=stride, padding=padding), w[prefix + "depthwise_bn"]))
        if prefix + "squeeze_excite_conv" in w:  # _se_block
            s = x.mean(axis=(1, 2), keepdims=True)
            s = relu(conv2d(s, w[prefix + "squeeze_excite_conv"]["kernel"], w[prefix + "squeeze_excite_conv"]["bias"]))
            s = hard_sigmoid(conv2d(s, w[prefix + "squeeze_excite_conv_1"]["kernel"], w[prefix + "squeeze_excite_conv_1"]["bias"]))
            x = x * s
        x = batch_norm(conv2d(x, w[prefix + "project"]["kernel"]), w[prefix + "project_bn"])
        if stride == 1 and shortcut.shape[-1] == x.shape[-1]:
            x = shortcut + x
    x = activation(batch_norm(conv2d(x, w["conv_1"]["kernel"]), w["conv_1_bn"]))
    if not include_top:
        return x
    x = x.mean(axis=(1, 2), keepdims=True)
    x = activation(conv2d(x, w["conv_2"]["kernel"], w["conv_2"]["bias"]))
    x = conv2d(x, w["logits"]["kernel"], w["logits"]["bias"]).reshape(x.shape[0], -1)
    return x if classifier_activation is None else softmax(x)


def relative_error(actual, expected, scale=None) -> float:
    """max |actual - expected| / max |scale|: the normwise relative error, against `expected`
    itself unless a `scale` is given. A clamped output carries the rounding error of its sum
    before the activation, so layers with one are measured against that sum: a relu6 output of
    0.015 left over from terms of size 3 cannot be closer than the terms' rounding allows."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = expected if scale is None else np.asarray(scale, np.float64)
    return float(np.abs(actual - expected).max() / max(np.abs(scale).max(), 1e-30))
