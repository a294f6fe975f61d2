"""Integer NumPy references of mnengine's int8 layers, written from TFLite's int8 scheme and
the requantization csrc/kernels.h specifies, independent of the engine's code.

Each layer takes int8 NHWC arrays and the (scale, zero point) of its input and output, sums
exact integer products of (q - zero_point) in int64 (padding reads as a real zero, which no
folding of zero points into biases is needed for), and requantizes in float32 one IEEE
operation at a time: float32(sum) * float32(scale), clamped, rounded to nearest even, plus the
output zero point.
"""

from typing import Tuple

import numpy as np

Quantization = Tuple[float, int]

RELU_BOUNDS = {"linear": (None, None), "relu": (0.0, None), "relu6": (0.0, 6.0)}


def output_range(quantization: Quantization, activation: str = "linear") -> Tuple[int, int]:
    """The int8 outputs a layer may produce: [-128, 127] cut to the activation's real range."""
    scale, zero_point = quantization
    low, high = RELU_BOUNDS[activation]
    qmin = -128 if low is None else max(-128, zero_point + int(np.rint(low / np.float64(scale))))
    qmax = 127 if high is None else min(127, zero_point + int(np.rint(high / np.float64(scale))))
    return qmin, max(qmin, qmax)


def requantize(values_f32: np.ndarray, quantization: Quantization, activation: str = "linear") -> np.ndarray:
    """float32 values (already scaled to output steps) clamped, rounded and offset to int8;
    NaN becomes the lower bound."""
    zero_point = quantization[1]
    qmin, qmax = output_range(quantization, activation)
    low, high = np.float32(qmin - zero_point), np.float32(qmax - zero_point)
    v = np.asarray(values_f32, np.float32)
    v = np.where(v > low, v, low)
    v = np.where(v < high, v, high)
    return (np.rint(v).astype(np.int32) + zero_point).astype(np.int8)


def requantize_sums(sums: np.ndarray, scale_f32: np.ndarray, quantization: Quantization,
                    activation: str = "linear") -> np.ndarray:
    return requantize(sums.astype(np.float32) * np.asarray(scale_f32, np.float32), quantization, activation)


def channel_scales(input_scale: float, weight_scale: np.ndarray, output_scale: float) -> np.ndarray:
    """float32(input_scale * weight_scale[c] / output_scale), computed in float64."""
    return (np.float64(input_scale) * np.asarray(weight_scale, np.float64) / np.float64(output_scale)).astype(np.float32)


def _centered(x: np.ndarray, zero_point: int) -> np.ndarray:
    return np.asarray(x, np.int64) - zero_point


def _windows(x, kh, kw, stride):
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    for ky in range(kh):
        for kx in range(kw):
            yield ky, kx, x[:, ky : ky + stride * (oh - 1) + 1 : stride, kx : kx + stride * (ow - 1) + 1 : stride, :]


def _pad(x, padding):
    top, bottom, left, right = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def conv_sums(x, zero_point, kernel, bias, stride, padding):
    """int64 sums of a full convolution, kernel (kh, kw, C_in, C_out)."""
    centered = _pad(_centered(x, zero_point), padding)
    kernel = np.asarray(kernel, np.int64)
    sums = sum(np.einsum("nhwc,cd->nhwd", view, kernel[ky, kx]) for ky, kx, view in
               _windows(centered, kernel.shape[0], kernel.shape[1], stride))
    return sums if bias is None else sums + np.asarray(bias, np.int64)


def depthwise_sums(x, zero_point, kernel, bias, stride, padding):
    """int64 sums of a depthwise convolution, kernel (kh, kw, C)."""
    centered = _pad(_centered(x, zero_point), padding)
    kernel = np.asarray(kernel, np.int64)
    sums = sum(view * kernel[ky, kx] for ky, kx, view in _windows(centered, kernel.shape[0], kernel.shape[1], stride))
    return sums if bias is None else sums + np.asarray(bias, np.int64)


def dense_sums(x, zero_point, kernel, bias):
    centered = _centered(x, zero_point).reshape(x.shape[0], -1)
    sums = centered @ np.asarray(kernel, np.int64)
    return sums if bias is None else sums + np.asarray(bias, np.int64)


def conv(x, in_q, kernel, bias, weight_scale, out_q, activation="linear", stride=1, padding=(0, 0, 0, 0)):
    sums = conv_sums(x, in_q[1], kernel, bias, stride, padding)
    return requantize_sums(sums, channel_scales(in_q[0], weight_scale, out_q[0]), out_q, activation)


def depthwise(x, in_q, kernel, bias, weight_scale, out_q, activation="linear", stride=1, padding=(0, 0, 0, 0)):
    sums = depthwise_sums(x, in_q[1], kernel, bias, stride, padding)
    return requantize_sums(sums, channel_scales(in_q[0], weight_scale, out_q[0]), out_q, activation)


def dense(x, in_q, kernel, bias, weight_scale, out_q, activation="linear"):
    sums = dense_sums(x, in_q[1], kernel, bias)
    return requantize_sums(sums, channel_scales(in_q[0], weight_scale, out_q[0]), out_q, activation)


def add(a, a_q, b, b_q, out_q, activation="linear"):
    """float32((a - za) * float32(sa / so)) + float32((b - zb) * float32(sb / so)), requantized."""
    a_scale = np.float32(np.float64(a_q[0]) / np.float64(out_q[0]))
    b_scale = np.float32(np.float64(b_q[0]) / np.float64(out_q[0]))
    va = _centered(a, a_q[1]).astype(np.float32) * a_scale
    vb = _centered(b, b_q[1]).astype(np.float32) * b_scale
    return requantize(va + vb, out_q, activation)


def global_avg_pool(x, in_q, out_q):
    pixels = x.shape[1] * x.shape[2]
    sums = _centered(x, in_q[1]).sum(axis=(1, 2))
    scale = np.float32(np.float64(in_q[0]) / (np.float64(out_q[0]) * pixels))
    return requantize_sums(sums, scale, out_q)


def global_max_pool(x, in_q, out_q):
    maxima = _centered(x.max(axis=(1, 2)), in_q[1])
    return requantize_sums(maxima, np.float32(np.float64(in_q[0]) / np.float64(out_q[0])), out_q)


def quantize(x_f32, quantization):
    """float32 x * float32(1 / scale), clamped to int8, rounded, plus the zero point."""
    inv_scale = np.float32(1.0 / np.float64(quantization[0]))
    return requantize(np.asarray(x_f32, np.float32) * inv_scale, quantization)


def dequantize(q, quantization):
    return _centered(q, quantization[1]).astype(np.float32) * np.float32(quantization[0])


def softmax(x):
    flat = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


def run_graph(graph, x_f32):
    """An int8 mnengine.Graph run layer by layer with the functions above, from the preprocessed
    float32 input x (N, H, W, C) to the float outputs (float64 for softmax and sigmoid, the
    dequantized float32 values otherwise). It reads the graph's quantization and weights only;
    what it computes with them is this module's."""
    values = {"input": quantize(x_f32, graph.input_quantization)}
    quantization = {"input": graph.input_quantization}
    for node in graph.nodes:
        q_in = quantization[node.inputs[0]]
        x = values[node.inputs[0]]
        w = node.weights
        if node.op in ("softmax", "sigmoid"):
            real = dequantize(x, q_in).astype(np.float64)
            values[node.name] = softmax(real) if node.op == "softmax" else 1.0 / (1.0 + np.exp(-real))
            quantization[node.name] = None
            continue
        q_out = node.quantization
        if node.op == "conv3x3":
            y = conv(x, q_in, w["kernel"], w.get("bias"), w["weight_scale"], q_out, node.activation, node.stride,
                     node.padding)
        elif node.op == "depthwise3x3":
            y = depthwise(x, q_in, w["kernel"], w.get("bias"), w["weight_scale"], q_out, node.activation,
                          node.stride, node.padding)
        elif node.op == "conv1x1":
            y = conv(x, q_in, w["kernel"][np.newaxis, np.newaxis], w.get("bias"), w["weight_scale"], q_out,
                     node.activation)
        elif node.op == "dense":
            y = dense(x, q_in, w["kernel"], w.get("bias"), w["weight_scale"], q_out, node.activation)
            y = y.reshape(y.shape[0], 1, 1, -1)
        elif node.op == "add":
            y = add(x, q_in, values[node.inputs[1]], quantization[node.inputs[1]], q_out, node.activation)
        elif node.op == "global_avg_pool":
            y = global_avg_pool(x, q_in, q_out)[:, np.newaxis, np.newaxis, :]
        elif node.op == "global_max_pool":
            y = global_max_pool(x, q_in, q_out)[:, np.newaxis, np.newaxis, :]
        else:
            raise ValueError(f"no int8 reference for {node.op}")
        values[node.name], quantization[node.name] = y, q_out
    last = graph.nodes[-1]
    out = values[last.name]
    return out if quantization[last.name] is None else dequantize(out, quantization[last.name])
