"""Every int8 kernel family against the integer NumPy reference (reference_qs8.py), bit for bit,
on every int8 kernel family this machine has.

The shapes are the float kernels' sweep (test_kernels.py): depthwise and first-layer
convolutions over every height and width from 1 to 17 each stride and padding mode fits
(widths 1 to 64 for the first layer), channel counts 1 to 100 meeting every remainder of the
kernels' channel groups; pointwise convolutions over every pair of those channel counts and 1
to 17 rows, and MobileNet's deep layers; batch 1 and 3, one and two threads, every activation.
The int8 kernels' own tiles add to it (see qs8_window_cases, qs8_rgb_stride2_cases,
qs8_gemm_cases): depthwise channel counts past two groups of 64, first-layer widths past runs
of 32 and 40 output pixels, and GEMM depths and widths that meet every remainder of KR = 2 and 4, of
64-deep chunks of A, of the avx2 kernel's 2048-deep segments of widened A and of 64-column panels.
Each case runs twice, its int8 output first filled with one sentinel and then another, so an
element no kernel wrote fails whichever value it would have held.
"""

import itertools

import numpy as np
import pytest

import reference_qs8 as ref
from mnengine import _core
from mnengine.graph import Graph, Node
from test_kernels import (CHANNELS, CLAMP_ACTIVATIONS, PAD_MODES, SIZES, gemm_cases, padding_for, rgb_stride2_cases,
                          window_cases, window_fits)

SENTINELS = (85, -86)


def qs8_window_cases():
    """The float sweep; for each stride and padding mode two channel counts past two of the VNNI
    depthwise kernel's 64-channel groups (130: two full groups and a tail of 2; 192: three
    full); and 32 channels, which that kernel runs as pairs of pixels at stride 1, over every
    width that fits each padding mode (pairs, a last single pixel, borders on either side)."""
    cases = window_cases(CLAMP_ACTIVATIONS)
    activations = CLAMP_ACTIVATIONS
    for i, ((stride, mode), channels) in enumerate(itertools.product(itertools.product((1, 2), PAD_MODES), (130, 192))):
        sizes = [size for size in SIZES if window_fits(mode, size, stride)]
        h, w = sizes[(3 * i) % len(sizes)], sizes[(5 * i + 4) % len(sizes)]
        cases.append((channels, h, w, stride, mode, 1 + 2 * (i % 2), 1 + i // 2 % 2, activations[i % 3]))
    for stride, mode in itertools.product((1, 2), PAD_MODES):
        sizes = [size for size in SIZES if window_fits(mode, size, stride)]
        for j, w in enumerate(sizes):
            i = len(cases)
            cases.append((32, sizes[(3 * j + 1) % len(sizes)], w, stride, mode, 1 + 2 * (i % 2), 1 + i // 2 % 2,
                          activations[i % 3]))
    return cases


def qs8_rgb_stride2_cases():
    """The float sweep (widths 1 to 64: up to 33 output pixels), and widths whose rows take two
    to five of the x86 kernels' runs of output pixels (32 for avx2, 40 for avx512vnni), with
    their remainders."""
    cases = rgb_stride2_cases(CLAMP_ACTIVATIONS)
    activations = CLAMP_ACTIVATIONS
    for i, (mode, w) in enumerate(itertools.product(PAD_MODES, (65, 66, 67, 130, 257))):
        cases.append((CHANNELS[i % len(CHANNELS)], 3 + i % 2, w, mode, 1 + i % 2, 1 + i // 2 % 2, activations[i % 3]))
    return cases


def qs8_gemm_cases():
    """The float sweep, and depths and widths for the x86 int8 GEMMs' tiles: k = 2 and 6 (k mod 4
    = 2, which the float sweep's depths miss), 64, 66, 130 and 191 (one to three 64-deep chunks
    of A and a tail), against n = 50 and 63 (a last panel of 4 vectors, partly filled), 64, 65
    and 129 (full panels and one column over), rows cycling through every row count; and
    k = 2048, 2049 and 4101 (one full segment of the avx2 kernel's widened A, and two or three
    segments, the last partly filled) against n = 17 and 40."""
    cases = gemm_cases(CLAMP_ACTIVATIONS)
    activations = CLAMP_ACTIVATIONS
    shapes = [*itertools.product((2, 6, 64, 66, 130, 191), (50, 63, 64, 65, 129)),
              *itertools.product((2048, 2049, 4101), (17, 40))]
    for i, (k, n) in enumerate(shapes):
        cases.append((1 + i % 7, 1 + i % 3, k, n, 1 + 2 * (i % 2), 1 + i // 2 % 2, activations[i % 3]))
    return cases


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


@pytest.mark.parametrize("channels,h,w,stride,mode,batch,threads,activation", qs8_window_cases())
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


@pytest.mark.parametrize("channels,h,w,mode,batch,threads,activation", qs8_rgb_stride2_cases())
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


@pytest.mark.parametrize("h,w,k,n,batch,threads,activation", qs8_gemm_cases())
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


def run_float_output(network, x_int8, input_q):
    """A network whose int8 input is `x_int8` and whose output is float32 (a dequantizing GEMM),
    through run(): its float input holds x's real values, which quantize back to x exactly
    (checked), and its output is poisoned with NaN."""
    x = ref.dequantize(x_int8, input_q).reshape(x_int8.shape)
    assert np.array_equal(ref.quantize(x, input_q), x_int8), "the float input would not quantize back to x"
    out = np.full((x.shape[0], int(np.prod(network.output_shape))), np.nan, np.float32)
    network.run(np.ascontiguousarray(x), out)
    return out


def expected_float_output(sums, input_q, weight_scale, activation):
    """float32(sum) * float32(input scale * weight scale), clamped to the activation's range."""
    real = sums.astype(np.float32) * ref.channel_scales(input_q[0], weight_scale, 1.0)
    low, high = ref.RELU_BOUNDS[activation]
    return np.clip(real, -np.inf if low is None else low, np.inf if high is None else high).astype(np.float32)


@pytest.mark.parametrize("h,w,k,n,batch,threads,activation", qs8_gemm_cases()[::3])
def test_qs8_conv1x1_float_output(qs8_isa, rng, h, w, k, n, batch, threads, activation):
    """The GEMM's float32 output stage (an int8 network's classifier), on every third case of
    the sweep: the same sums dequantized, bit for bit."""
    input_q = random_quantization(rng)
    weights = random_weights(rng, (k, n), n, with_bias=(h + k) % 5 != 0)
    x = random_int8(rng, (batch, h, w, k))
    node = Node("pw", "conv1x1", ["input"], weights, activation=activation)
    y = run_float_output(int8_network(qs8_isa, threads, (h, w, k), input_q, node), x, input_q)
    sums = ref.conv_sums(x, input_q[1], weights["kernel"][np.newaxis, np.newaxis], weights.get("bias"), 1,
                         (0, 0, 0, 0))
    assert np.array_equal(y, expected_float_output(sums, input_q, weights["weight_scale"], activation).reshape(y.shape))


def run_with_weight_scales(isa, rng, op, h, w, c, n, stride, mode, weight_scale):
    """A layer with the given per-channel weight scales against an output scale of 1e-2 the input
    scale (requantization scale = weight scale * 100), checked bit for bit."""
    input_q = random_quantization(rng)
    kernel_shape = {"conv1x1": (c, n), "depthwise3x3": (3, 3, c), "conv3x3": (3, 3, c, n)}[op]
    weights = random_weights(rng, kernel_shape, n)
    weights["weight_scale"] = np.asarray(weight_scale, np.float32)
    output_q = (float(np.float32(input_q[0] * 1e-2)), int(rng.integers(-40, 40)))
    x = random_int8(rng, (2, h, w, c))
    if op == "conv1x1":
        node = Node("pw", op, ["input"], weights, activation="relu6", quantization=output_q)
        sums = ref.conv_sums(x, input_q[1], weights["kernel"][np.newaxis, np.newaxis], weights["bias"], 1, (0, 0, 0, 0))
        activation = "relu6"
    else:
        padding = padding_for(mode, h, w, stride)
        node = Node(op, op, ["input"], weights, stride, padding, "linear", output_q)
        sums_fn = ref.depthwise_sums if op == "depthwise3x3" else ref.conv_sums
        sums = sums_fn(x, input_q[1], weights["kernel"], weights["bias"], stride, padding)
        activation = "linear"
    y = run_qs8_poisoned(int8_network(isa, 2, (h, w, c), input_q, node), x)
    scales = ref.channel_scales(input_q[0], weights["weight_scale"], output_q[0])
    assert_bit_exact(y, ref.requantize_sums(sums, scales, output_q, activation))
    return sums, scales


LARGE_SCALE_LAYERS = [
    ("conv1x1", 13, 1, 17, 70, 1, None), ("conv1x1", 7, 2, 130, 64, 1, None), ("conv1x1", 3, 1, 66, 129, 1, None),
    ("depthwise3x3", 9, 9, 70, 70, 1, "same"), ("depthwise3x3", 8, 11, 130, 130, 2, "asymmetric"),
    ("depthwise3x3", 6, 7, 32, 32, 1, "same"), ("conv3x3", 5, 67, 3, 33, 2, "same"), ("conv3x3", 6, 9, 3, 16, 2, "valid"),
]


@pytest.mark.parametrize("op,h,w,c,n,stride,mode", LARGE_SCALE_LAYERS)
def test_qs8_large_requantization_scales(qs8_isa, rng, op, h, w, c, n, stride, mode):
    """Requantization scales below 1 on most channels and from 1e4 to 1e6 on one in eight, chosen
    at random, so that sums scaled past 2^31 meet the kernels' float clamp above the output
    range (which they skip where every scale of a channel group is below 1); the outputs of the
    large scales saturate at either end of the range."""
    large = np.zeros(n, bool)
    large[rng.choice(n, max(2, n // 8), replace=False)] = True
    weight_scale = 10.0 ** np.where(large, rng.uniform(2, 4, n), rng.uniform(-5, -2.5, n))
    sums, scales = run_with_weight_scales(qs8_isa, rng, op, h, w, c, n, stride, mode, weight_scale)
    assert scales.min() < 1 < scales.max() and (np.abs(sums) * scales).max() > 2.0 ** 31


@pytest.mark.parametrize("op,h,w,c,n,stride,mode", LARGE_SCALE_LAYERS[:1] + LARGE_SCALE_LAYERS[5:7])
def test_qs8_one_large_requantization_scale(qs8_isa, rng, op, h, w, c, n, stride, mode):
    """One channel with a requantization scale of 1e5 among scales below 1, at every channel
    position in turn: a kernel that decides on the float clamp from part of a channel group's
    scales fails where the large one is in the part it skipped."""
    for channel in range(n):
        weight_scale = 10.0 ** rng.uniform(-5, -2.5, n)
        weight_scale[channel] = 1e3
        run_with_weight_scales(qs8_isa, rng, op, h, w, c, n, stride, mode, weight_scale)


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


@pytest.mark.parametrize("h,w,c,units,batch,threads", [
    (1, 1, 1, 1, 1, 1), (1, 1, 1024, 1000, 1, 2), (1, 1, 1280, 1000, 3, 1), (3, 3, 17, 37, 3, 2),
    (1, 1, 33, 17, 8, 1),
])
def test_qs8_dense_float_output(qs8_isa, rng, h, w, c, units, batch, threads):
    input_q = random_quantization(rng)
    weights = random_weights(rng, (h * w * c, units), units)
    x = random_int8(rng, (batch, h, w, c))
    node = Node("fc", "dense", ["input"], weights)
    y = run_float_output(int8_network(qs8_isa, threads, (h, w, c), input_q, node), x, input_q)
    sums = ref.dense_sums(x, input_q[1], weights["kernel"], weights["bias"])
    assert np.array_equal(y, expected_float_output(sums, input_q, weights["weight_scale"], "linear"))


ELEMENTWISE_SHAPES = [(1, 1), (3, 5), (17, 16), (112, 112)]


@pytest.mark.parametrize("h,w,c,batch,threads,activation", [
    (h, w, c, 1 + 2 * (i % 2), 1 + (i // 2) % 2, CLAMP_ACTIVATIONS[i % 3])
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


def test_dot_peak(qs8_isa):
    """The int8 peak loop (bench --profile's ceiling) runs on every int8 family: it is kernel
    code like the rest, with instructions of its own (SDOT, VPDPBUSD)."""
    assert _core.measure_dot_peak(qs8_isa, 0.01) > 0
