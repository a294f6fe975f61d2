"""Every int8 kernel family against the integer NumPy reference (reference_qs8.py), bit for bit,
on every int8 kernel family this machine has.

The shapes are the float kernels' sweep (test_kernels.py): depthwise and first-layer
convolutions over every height and width from 1 to 17 each stride and padding mode fits
(widths 1 to 64 for the first layer), channel counts 1 to 100 meeting every remainder of the
kernels' channel groups; pointwise convolutions over every pair of those channel counts and 1
to 17 rows, and MobileNet's deep layers; batch 1 and 3, one and two threads, every activation.
Each case runs twice, its int8 output first filled with one sentinel and then another, so an
element no kernel wrote fails whichever value it would have held.
"""

import itertools

import numpy as np
import pytest

import reference_qs8 as ref
from mnengine import _core
from mnengine.graph import ACTIVATIONS, Graph, Node
from test_kernels import CHANNELS, gemm_cases, padding_for, rgb_stride2_cases, window_cases

SENTINELS = (85, -86)


def random_quantization(rng, zero_point_range=(-128, 127)):
    return (float(np.float32(rng.uniform(0.005, 0.05))), int(rng.integers(*zero_point_range, endpoint=True)))


def int8_network(isa, threads, input_shape, input_q, *nodes):
    graph = Graph("test", tuple(input_shape), list(nodes), input_quantization=input_q)
    graph.shapes()
    return _core.Network(isa, threads, tuple(input_shape), graph.core_nodes(), "auto", input_q)


def run_qs8_poisoned(network, x):
    """The network's int8 layers on x, checked to give one result whatever the output held."""
    outputs = []
    for sentinel in SENTINELS:
        out = np.full((x.shape[0], int(np.prod(network.output_shape))), sentinel, np.int8)
        network.run_qs8(np.ascontiguousarray(x, np.int8), out)
        outputs.append(out.reshape((x.shape[0],) + tuple(network.output_shape)))
    assert np.array_equal(outputs[0], outputs[1]), "some outputs were not written"
    return outputs[0]


def random_int8(rng, shape):
    return rng.integers(-128, 127, shape, endpoint=True).astype(np.int8)


def random_weights(rng, kernel_shape, channels, with_bias=True):
    kernel = rng.integers(-127, 127, kernel_shape, endpoint=True).astype(np.int8)
    bias = rng.integers(-(1 << 14), 1 << 14, channels).astype(np.int32) if with_bias else None
    weight_scale = rng.uniform(0.002, 0.02, channels).astype(np.float32)
    weights = {"kernel": kernel, "weight_scale": weight_scale}
    if with_bias:
        weights["bias"] = bias
    return weights


def output_quantization_for(rng, sums, input_q, weight_scale):
    """An output scale that spreads the layer's outputs over most of the int8 range (a few
    clamp), and a random zero point."""
    real = sums * np.float64(input_q[0]) * np.asarray(weight_scale, np.float64)
    spread = float(np.percentile(np.abs(real), 90)) if real.size else 1.0
    return (float(np.float32(max(spread, 1e-6) / 100)), int(rng.integers(-40, 40)))


def assert_bit_exact(actual, expected):
    assert actual.dtype == np.int8 and expected.dtype == np.int8
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    differ = np.flatnonzero(actual != expected)
    assert differ.size == 0, (
        f"{differ.size} of {actual.size} outputs differ; first at flat index {differ[0]}: "
        f"{actual.flat[differ[0]]} instead of {expected.flat[differ[0]]}")


@pytest.mark.parametrize("channels,h,w,stride,mode,batch,threads,activation", window_cases())
def test_qs8_depthwise3x3(qs8_isa, rng, channels, h, w, stride, mode, batch, threads, activation):
    padding = padding_for(mode, h, w, stride)
    input_q = random_quantization(rng)
    weights = random_weights(rng, (3, 3, channels), channels)
    x = random_int8(rng, (batch, h, w, channels))
    sums = ref.depthwise_sums(x, input_q[1], weights["kernel"], weights["bias"], stride, padding)
    output_q = output_quantization_for(rng, sums, input_q, weights["weight_scale"])
    node = Node("dw", "depthwise3x3", ["input"], weights, stride, padding, activation, output_q)
    y = run_qs8_poisoned(int8_network(qs8_isa, threads, (h, w, channels), input_q, node), x)
    expected = ref.requantize_sums(sums, ref.channel_scales(input_q[0], weights["weight_scale"], output_q[0]),
                                   output_q, activation)
    assert_bit_exact(y, expected)


@pytest.mark.parametrize("channels,h,w,mode,batch,threads,activation", rgb_stride2_cases())
def test_qs8_conv3x3_rgb_stride2(qs8_isa, rng, channels, h, w, mode, batch, threads, activation):
    padding = padding_for(mode, h, w, 2)
    input_q = random_quantization(rng)
    weights = random_weights(rng, (3, 3, 3, channels), channels)
    x = random_int8(rng, (batch, h, w, 3))
    sums = ref.conv_sums(x, input_q[1], weights["kernel"], weights["bias"], 2, padding)
    output_q = output_quantization_for(rng, sums, input_q, weights["weight_scale"])
    node = Node("conv", "conv3x3", ["input"], weights, 2, padding, activation, output_q)
    y = run_qs8_poisoned(int8_network(qs8_isa, threads, (h, w, 3), input_q, node), x)
    expected = ref.requantize_sums(sums, ref.channel_scales(input_q[0], weights["weight_scale"], output_q[0]),
                                   output_q, activation)
    assert_bit_exact(y, expected)


@pytest.mark.parametrize("h,w,k,n,batch,threads,activation", gemm_cases())
def test_qs8_conv1x1(qs8_isa, rng, h, w, k, n, batch, threads, activation):
    input_q = random_quantization(rng)
    weights = random_weights(rng, (k, n), n, with_bias=(h + k) % 5 != 0)
    x = random_int8(rng, (batch, h, w, k))
    sums = ref.conv_sums(x, input_q[1], weights["kernel"][np.newaxis, np.newaxis], weights.get("bias"), 1,
                         (0, 0, 0, 0))
    output_q = output_quantization_for(rng, sums, input_q, weights["weight_scale"])
    node = Node("pw", "conv1x1", ["input"], weights, activation=activation, quantization=output_q)
    y = run_qs8_poisoned(int8_network(qs8_isa, threads, (h, w, k), input_q, node), x)
    expected = ref.requantize_sums(sums, ref.channel_scales(input_q[0], weights["weight_scale"], output_q[0]),
                                   output_q, activation)
    assert_bit_exact(y, expected)


@pytest.mark.parametrize("h,w,c,units,batch,threads", [
    (1, 1, 1, 1, 1, 1), (1, 1, 256, 1000, 1, 2), (1, 1, 1280, 1000, 3, 2), (3, 3, 17, 37, 3, 1),
    (3, 3, 1024, 10, 2, 2), (2, 5, 7, 9, 1, 2), (1, 1, 33, 17, 8, 2), (4, 4, 1024, 3, 1, 1),
])
def test_qs8_dense(qs8_isa, rng, h, w, c, units, batch, threads):
    input_q = random_quantization(rng)
    weights = random_weights(rng, (h * w * c, units), units)
    x = random_int8(rng, (batch, h, w, c))
    sums = ref.dense_sums(x, input_q[1], weights["kernel"], weights["bias"])
    output_q = output_quantization_for(rng, sums, input_q, weights["weight_scale"])
    node = Node("fc", "dense", ["input"], weights, quantization=output_q)
    y = run_qs8_poisoned(int8_network(qs8_isa, threads, (h, w, c), input_q, node), x)
    expected = ref.requantize_sums(sums, ref.channel_scales(input_q[0], weights["weight_scale"], output_q[0]),
                                   output_q)
    assert_bit_exact(y.reshape(batch, units), expected)


ELEMENTWISE_SHAPES = [(1, 1), (3, 5), (17, 16), (112, 112)]


@pytest.mark.parametrize("h,w,c,batch,threads,activation", [
    (h, w, c, 1 + 2 * (i % 2), 1 + (i // 2) % 2, list(ACTIVATIONS)[i % 3])
    for i, (c, (h, w)) in enumerate(itertools.product(CHANNELS, ELEMENTWISE_SHAPES))
])
def test_qs8_add(qs8_isa, rng, h, w, c, batch, threads, activation):
    """input + copy(input), the copy a depthwise layer with an identity kernel and its own
    quantization, so the two operands have different scales and zero points."""
    input_q = random_quantization(rng)
    copy_q = random_quantization(rng)
    identity = np.zeros((3, 3, c), np.int8)
    identity[1, 1] = 1
    # Requantization scale 1: the copy holds x - input zero point on its own zero point.
    weight_scale = np.full(c, np.float32(copy_q[0] / input_q[0]), np.float32)
    output_q = (float(np.float32(input_q[0] * 2)), int(rng.integers(-30, 30)))
    nodes = [
        Node("copy", "depthwise3x3", ["input"], {"kernel": identity, "weight_scale": weight_scale}, 1,
             (1, 1, 1, 1), "linear", copy_q),
        Node("sum", "add", ["input", "copy"], activation=activation, quantization=output_q),
    ]
    x = random_int8(rng, (batch, h, w, c))
    y = run_qs8_poisoned(int8_network(qs8_isa, threads, (h, w, c), input_q, *nodes), x)
    copy = ref.depthwise(x, input_q, identity, None, weight_scale, copy_q, "linear", 1, (1, 1, 1, 1))
    assert_bit_exact(y, ref.add(x, input_q, copy, copy_q, output_q, activation))


@pytest.mark.parametrize("h,w,c,batch", [(h, w, c, 1 + 2 * (i % 2)) for i, (c, (h, w)) in enumerate(
    itertools.product(CHANNELS, [(1, 1), (2, 3), (7, 7), (17, 13)]))])
@pytest.mark.parametrize("op", ["global_avg_pool", "global_max_pool"])
def test_qs8_global_pool(qs8_isa, rng, op, h, w, c, batch):
    input_q = random_quantization(rng)
    output_q = (float(np.float32(input_q[0] * rng.uniform(0.3, 1.5))), int(rng.integers(-128, 127)))
    x = random_int8(rng, (batch, h, w, c))
    y = run_qs8_poisoned(int8_network(qs8_isa, 2, (h, w, c), input_q,
                                      Node("pool", op, ["input"], quantization=output_q)), x)
    pool = ref.global_avg_pool if op == "global_avg_pool" else ref.global_max_pool
    assert_bit_exact(y.reshape(batch, c), pool(x, input_q, output_q))


@pytest.mark.parametrize("n,batch", [(1, 1), (3, 3), (15, 1), (16, 2), (17, 1), (33, 3), (1000, 2), (50000, 1)])
def test_quantize_dequantize(qs8_isa, rng, n, batch):
    """The float32 edges of an int8 network: its input quantized, its output dequantized (a
    max pool over one pixel, with the input's quantization, passes the int8 values through).
    Values far outside the int8 range, infinities and NaN included, saturate (NaN to -128)."""
    input_q = random_quantization(rng)
    scale = input_q[0]
    x = (rng.standard_normal((batch, 1, 1, n)) * 100 * scale).astype(np.float32)
    # Exact ties (k + 0.5 steps) round to even; a few outliers and non-finite values saturate.
    ties = (rng.integers(-60, 60, x.shape) + 0.5).astype(np.float32) * np.float32(scale)
    x = np.where(rng.random(x.shape) < 0.2, ties, x)
    specials = np.array([np.inf, -np.inf, np.nan, 1e30, -1e30], np.float32)
    x.flat[: min(n * batch, specials.size)] = specials[: min(n * batch, specials.size)]
    network = int8_network(qs8_isa, 2, (1, 1, n), input_q, Node("copy", "global_max_pool", ["input"],
                                                                quantization=input_q))
    y = np.full((batch, n), np.nan, np.float32)
    network.run(x, y)
    expected = ref.dequantize(ref.quantize(x, input_q), input_q).reshape(batch, n)
    assert np.array_equal(y, expected), np.flatnonzero(y != expected)[:10]
