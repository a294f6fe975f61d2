"""Every kernel family against the float64 reference, on every ISA this machine has.

Depthwise and full 3x3 convolutions: for each stride (1, 2) and padding mode, every height
and every width from 1 to 17 with which the padded input holds the 3x3 window; the channel
counts 1, 3, 4, 7, 8, 9, 16, 17, 33, 100 (every remainder of vector widths 4 and 8) each with
batch 1 and 3 and with one and two threads. The first-layer convolution (3 input channels,
stride 2, its own kernel) also over every width from 1 to 64. Pointwise convolution (GEMM): every pair of those
channel counts as input and output channels, 1 to 17 rows (against row tiles of 4 and 6),
batch 1 and 3, one and two threads, and three of MobileNet's deep layers. Depthwise 5x5: the
same sweep with every padding of 0 to 4 on each side (Keras's 'same' and correct_pad among
them), the channel counts 1 to 100 with every remainder of vector widths 4, 8 and 16, and
MobileNetV3's 5x5 layers. The convolutions
sweep the activations linear, ReLU, ReLU6 and hard-swish. Channel multiply (a
squeeze-and-excitation gate) and standalone hard-swish over every remainder. Outputs are
poisoned with NaN before each run.
"""

import itertools

import numpy as np
import pytest

import reference
from conftest import run_poisoned
from mnengine import _core
from mnengine.graph import ACTIVATIONS, Graph, Node, same_padding

CHANNELS = [1, 3, 4, 7, 8, 9, 16, 17, 33, 100]
SIZES = list(range(1, 18))
TOLERANCE = 1e-5
# The activations every layer takes (clamps), and those of the float32 convolutions, whose
# kernels also apply hard-swish (before the clamp).
CLAMP_ACTIVATIONS = ["linear", "relu", "relu6"]
CONV_ACTIVATIONS = CLAMP_ACTIVATIONS + ["hard_swish"]


def network(isa, threads, input_shape, *nodes, fusion="auto"):
    """The core network of graph nodes."""
    graph = Graph("test", tuple(input_shape), list(nodes))
    graph.shapes()
    return _core.Network(isa, threads, tuple(input_shape), graph.core_nodes(), fusion)


def core_network(isa, threads, input_shape, nodes):
    """A float32 network of node dicts as mnengine._core.Network takes them (inputs by tensor
    id: 0 the input, i + 1 node i's output), for the operators built here without the graph."""
    return _core.Network(isa, threads, tuple(input_shape), nodes)


def apply_activation(y, activation):
    if activation == "hard_swish":
        return reference.hard_swish(y)
    low, high = ACTIVATIONS[activation]
    return np.clip(y, low, high)


def cycled(activations, i):
    """The activation of case i: cycling with the case, shifted by one every 10 cases, so that
    each of the 10 channel counts (period 10) meets every activation."""
    return activations[(i + i // 10) % len(activations)]


def padding_for(mode, size_h, size_w, stride, kernel=3):
    """The paddings Keras models use: 'same', 'valid', and ZeroPadding2D + 'valid' as
    keras.applications MobileNet v1 ((0, 1), (0, 1)) and v2 and v3 (correct_pad) do at stride
    2, plus 5x5 windows overhanging each side by each amount up to 4 ('asymmetric', 'overhang',
    'bottom_right')."""
    if mode == "same":
        return same_padding(size_h, stride, kernel) + same_padding(size_w, stride, kernel)
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode == "correct_pad":  # imagenet_utils.correct_pad: k // 2 after, one less before on even sizes
        half = kernel // 2
        return (half - 1 + size_h % 2, half, half - 1 + size_w % 2, half)
    if mode == "zero_pad_bottom_right":
        return (0, 1, 0, 1)
    if mode == "zero_pad_all":
        return (1, 1, 1, 1)
    if mode == "asymmetric":
        return (2, 0, 1, 2) if kernel == 3 else (4, 1, 3, 1)
    if mode == "overhang":
        return (3, 3, 4, 4)
    if mode == "bottom_right":
        return (0, 4, 0, 3)
    raise ValueError(mode)


PAD_MODES = ["same", "valid", "zero_pad_bottom_right", "zero_pad_all", "asymmetric"]
PAD_MODES_5X5 = ["same", "valid", "correct_pad", "asymmetric", "overhang", "bottom_right"]


def window_fits(mode, size, stride, kernel=3):
    """Whether a kernel x kernel window fits a `size` x `size` input padded as `mode` pads it."""
    top, bottom, left, right = padding_for(mode, size, size, stride, kernel)
    return size + top + bottom >= kernel and size + left + right >= kernel


IN_CHANNELS = [1, 3, 8, 17]


def window_cases(activations=CONV_ACTIVATIONS):
    """(channels, height, width, stride, padding mode, batch, threads, activation).

    For each stride and padding mode, every height from 1 to 17 and every width from 1 to 17
    that the padded window fits (all but 1 and 2 for 'valid', all but 1 for
    'zero_pad_bottom_right'), the widths in another order than the heights. Along all
    cases, channels, batch and threads cycle with periods 10, 20 and 40, so every channel
    count meets both batch sizes and both thread counts, and the activations as `cycled` says.
    """
    cases = []
    for stride, mode in itertools.product((1, 2), PAD_MODES):
        sizes = [size for size in SIZES if window_fits(mode, size, stride)]
        for j, h in enumerate(sizes):
            w = sizes[(7 * j + 3) % len(sizes)]  # 7 is prime to 15, 16 and 17: a permutation
            i = len(cases)
            cases.append((CHANNELS[i % 10], h, w, stride, mode, (1, 3)[i // 10 % 2], (1, 2)[i // 20 % 2],
                          cycled(activations, i)))
    return cases


def conv3x3_cases():
    """The window cases, each with in-channels 1, 3, 8 and 17 in turn."""
    return [(IN_CHANNELS[i % len(IN_CHANNELS)],) + case for i, case in enumerate(window_cases())]


def test_window_cases_cover_every_size():
    """What window_cases promises: each stride and padding mode meets every height and every
    width that fits, and each channel count both batch sizes and both thread counts."""
    cases = window_cases()
    for stride, mode in itertools.product((1, 2), PAD_MODES):
        fitting = {size for size in SIZES if window_fits(mode, size, stride)}
        assert {c[1] for c in cases if c[3:5] == (stride, mode)} == fitting
        assert {c[2] for c in cases if c[3:5] == (stride, mode)} == fitting
    assert {(c[0], c[5], c[6]) for c in cases} == set(itertools.product(CHANNELS, (1, 3), (1, 2)))
    assert {(c[0], c[7]) for c in cases} == set(itertools.product(CHANNELS, CONV_ACTIVATIONS))


@pytest.mark.parametrize("channels,h,w,stride,mode,batch,threads,activation", window_cases())
def test_depthwise3x3(isa, rng, channels, h, w, stride, mode, batch, threads, activation):
    padding = padding_for(mode, h, w, stride)
    kernel = rng.standard_normal((3, 3, channels)).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    x = rng.standard_normal((batch, h, w, channels)).astype(np.float32)
    node = Node("dw", "depthwise3x3", ["input"], {"kernel": kernel, "bias": bias}, stride, padding, activation)
    y = run_poisoned(network(isa, threads, (h, w, channels), node), x)
    before_activation = reference.depthwise_conv2d(x, kernel, bias, stride, padding)
    expected = apply_activation(before_activation, activation)
    assert reference.relative_error(y, expected, scale=before_activation) < TOLERANCE


# Every remainder of the vector widths 4, 8 and 16 (NEON, AVX2, AVX-512), and a few groups more.
CHANNELS_5X5 = [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 65, 100]


def depthwise5x5_cases():
    """(channels, height, width, stride, padding mode, batch, threads, activation) for the 5x5
    depthwise kernel: for each stride and padding mode, every height from 1 to 17 that the
    padded window fits, each twice with widths in two other orders (every fitting width meets
    each stride and mode twice); channels, batch and threads cycle with periods 12, 24 and 48,
    the activations (linear, ReLU, ReLU6, hard-swish) with the case, shifted by one every 12
    cases, so that every channel count meets each. Then MobileNetV3's 5x5 layers, whose rows are long enough for every block."""
    cases = []
    for stride, mode in itertools.product((1, 2), PAD_MODES_5X5):
        sizes = [size for size in SIZES if window_fits(mode, size, stride, 5)]
        for j, h in enumerate(sizes):
            for step, shift in ((7, 3), (5, 11)):  # 5 and 7 are prime to every count of sizes here
                w = sizes[(step * j + shift) % len(sizes)]
                i = len(cases)
                cases.append((CHANNELS_5X5[i % 12], h, w, stride, mode, (1, 3)[i // 12 % 2], (1, 2)[i // 24 % 2],
                              CONV_ACTIVATIONS[(i + i // 12) % 4]))
    cases += [(72, 56, 56, 2, "correct_pad", 1, 2, "relu"), (120, 28, 28, 1, "same", 1, 1, "relu6"),
              (240, 14, 14, 1, "same", 3, 2, "hard_swish"), (96, 28, 28, 2, "correct_pad", 1, 1, "hard_swish"),
              (672, 14, 14, 2, "correct_pad", 1, 2, "linear"), (960, 7, 7, 1, "same", 3, 1, "hard_swish")]
    return cases


def depthwise5x5_node(kernel, bias, stride, padding, activation):
    """A core node dict (what Graph.core_nodes makes of a "depthwise5x5" node); hard_swish is the
    unbounded clamp with the binding's "hard_swish" flag."""
    node = {"kind": "depthwise5x5", "inputs": [0], "stride": stride, "padding": tuple(padding),
            "clamp": ACTIVATIONS["linear" if activation == "hard_swish" else activation], "kernel": kernel, "bias": bias}
    if activation == "hard_swish":
        node["hard_swish"] = True
    return node


def test_depthwise5x5_cases_cover_every_size():
    cases = depthwise5x5_cases()
    for stride, mode in itertools.product((1, 2), PAD_MODES_5X5):
        fitting = {size for size in SIZES if window_fits(mode, size, stride, 5)}
        assert {c[1] for c in cases if c[3:5] == (stride, mode)} & set(SIZES) == fitting
        assert {c[2] for c in cases if c[3:5] == (stride, mode)} & set(SIZES) == fitting
    assert {(c[0], c[5], c[6]) for c in cases} >= set(itertools.product(CHANNELS_5X5, (1, 3), (1, 2)))
    assert {(c[0], c[7]) for c in cases} >= set(itertools.product(CHANNELS_5X5, CONV_ACTIVATIONS))
    # Every side padded by every amount from 0 to 4 somewhere.
    paddings = {padding_for(c[4], c[1], c[2], c[3], 5) for c in cases}
    for side in range(4):
        assert {p[side] for p in paddings} == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("channels,h,w,stride,mode,batch,threads,activation", depthwise5x5_cases())
def test_depthwise5x5(isa, rng, channels, h, w, stride, mode, batch, threads, activation):
    padding = padding_for(mode, h, w, stride, 5)
    kernel = rng.standard_normal((5, 5, channels)).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    x = rng.standard_normal((batch, h, w, channels)).astype(np.float32)
    y = run_poisoned(core_network(isa, threads, (h, w, channels), [depthwise5x5_node(kernel, bias, stride, padding, activation)]), x)
    before_activation = reference.depthwise_conv2d(x, kernel, bias, stride, padding)
    expected = apply_activation(before_activation, activation)
    assert reference.relative_error(y, expected, scale=before_activation) < TOLERANCE


@pytest.mark.parametrize("fusion", ["always", "never"])
def test_depthwise5x5_in_a_block(isa, rng, fusion):
    """expand 1x1 -> depthwise 5x5 -> project 1x1 -> add, as MobileNetV3's 5x5 blocks: the same
    result whether fusion is forced or off (a 5x5 block runs layer by layer either way)."""
    h, w, c, mid = 9, 11, 24, 72
    expand = (rng.standard_normal((c, mid)) / np.sqrt(c)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, mid)).astype(np.float32)
    bias = rng.standard_normal(mid).astype(np.float32)
    project = (rng.standard_normal((mid, c)) / np.sqrt(mid)).astype(np.float32)
    x = rng.standard_normal((3, h, w, c)).astype(np.float32)
    nodes = [
        {"kind": "conv1x1", "inputs": [0], "kernel": expand, "bias": None, "out_channels": mid, "clamp": (0.0, 6.0)},
        dict(depthwise5x5_node(kernel, bias, 1, (2, 2, 2, 2), "hard_swish"), inputs=[1]),
        {"kind": "conv1x1", "inputs": [2], "kernel": project, "bias": None, "out_channels": c},
        {"kind": "add", "inputs": [3, 0]},
    ]
    y = run_poisoned(_core.Network(isa, 2, (h, w, c), nodes, fusion), x)
    expanded = reference.relu6(reference.conv2d(x, expand[np.newaxis, np.newaxis]))
    depthwise = apply_activation(reference.depthwise_conv2d(expanded, kernel, bias, 1, (2, 2, 2, 2)), "hard_swish")
    expected = reference.conv2d(depthwise, project[np.newaxis, np.newaxis]) + x
    assert reference.relative_error(y, expected) < TOLERANCE


@pytest.mark.parametrize("change,message", [
    (dict(kernel=np.zeros((3, 3, 8), np.float32)), r"kernel has 72 values, expected 200"),
    (dict(bias=np.zeros(7, np.float32)), r"bias has 7 values, expected 8 or none"),
    (dict(padding=(0, 5, 0, 0)), r"padding must be 0 to 4 on each side, got 0 and 5"),
    (dict(padding=(0, 0, 5, 0)), r"padding must be 0 to 4 on each side, got 5 and 0"),
    (dict(stride=3), r"stride must be 1 or 2, got 3"),
    (dict(padding=(0, 0, 0, 0), shape=(4, 6, 8)), r"input extent 4 with its padding is smaller than the 5x5 window"),
    (dict(padding=(1, 0, 0, 0), shape=(6, 3, 8)), r"input extent 3 with its padding is smaller than the 5x5 window"),
])
def test_depthwise5x5_rejects(change, message):
    shape = change.pop("shape", (6, 6, 8))
    node = depthwise5x5_node(np.zeros((5, 5, 8), np.float32), np.zeros(8, np.float32), 1, (2, 2, 2, 2), "linear")
    node.update(change)
    with pytest.raises(ValueError, match=r"node 0 \(depthwise5x5\): " + message):
        _core.Network("scalar", 1, shape, [node], "auto")


def test_depthwise5x5_is_float32_only():
    node = {"kind": "depthwise5x5", "inputs": [0], "padding": (2, 2, 2, 2), "kernel": np.ones((5, 5, 8), np.int8),
            "bias": np.zeros(8, np.int32), "weight_scale": np.ones(8, np.float32), "output_quantization": (0.1, 0)}
    with pytest.raises(ValueError, match=r"node 0 \(depthwise5x5\): an int8 network has no 5x5 depthwise"):
        _core.Network("scalar", 1, (6, 6, 8), [node], "auto", (0.1, 0))


@pytest.mark.parametrize("in_channels,channels,h,w,stride,mode,batch,threads,activation", conv3x3_cases())
def test_conv3x3(isa, rng, in_channels, channels, h, w, stride, mode, batch, threads, activation):
    padding = padding_for(mode, h, w, stride)
    kernel = rng.standard_normal((3, 3, in_channels, channels)).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    x = rng.standard_normal((batch, h, w, in_channels)).astype(np.float32)
    node = Node("conv", "conv3x3", ["input"], {"kernel": kernel, "bias": bias}, stride, padding, activation)
    y = run_poisoned(network(isa, threads, (h, w, in_channels), node), x)
    before_activation = reference.conv2d(x, kernel, bias, stride, padding)
    expected = apply_activation(before_activation, activation)
    assert reference.relative_error(y, expected, scale=before_activation) < TOLERANCE


def rgb_stride2_cases(activations=CONV_ACTIVATIONS):
    """(out channels, height, width, padding mode, batch, threads, activation) for the first-layer
    kernel (3 input channels, stride 2): every width from 1 to 64 that the window fits, so the
    output rows meet every remainder of its pixel blocks (runs of up to 2 x 24 pixels) and
    every border, with the channel counts cycling (every remainder of its 1..4 channel groups)."""
    cases = []
    for mode in PAD_MODES:
        for w in (w for w in range(1, 65) if window_fits(mode, w, 2)):
            i = len(cases)
            cases.append((CHANNELS[i % 10], 3 + i % 3, w, mode, 1 + i // 10 % 2, 1 + i // 20 % 2, cycled(activations, i)))
    return cases


@pytest.mark.parametrize("channels,h,w,mode,batch,threads,activation", rgb_stride2_cases())
def test_conv3x3_rgb_stride2(isa, rng, channels, h, w, mode, batch, threads, activation):
    test_conv3x3(isa, rng, 3, channels, h, w, 2, mode, batch, threads, activation)


def gemm_cases(activations=CONV_ACTIVATIONS):
    """(pixels h x w, in channels, out channels, batch, threads, activation): rows 1..17 meet
    every row-tile remainder, channel counts every column-panel and vector remainder."""
    cases = []
    for i, (k, n) in enumerate(itertools.product(CHANNELS, CHANNELS)):
        h = SIZES[i % len(SIZES)]
        w = SIZES[(5 * i + 2) % len(SIZES)] if i % 4 == 0 else 1
        cases.append((h, w, k, n, 1 + 2 * (i % 2), 1 + (i // 2) % 2, cycled(activations, i)))
    # Deep and wide layers as in MobileNet's tail: several cache blocks of weight panels.
    cases += [(7, 7, 1024, 1024, 1, 2, "relu6"), (7, 7, 1024, 1000, 3, 1, "linear"), (14, 14, 512, 77, 1, 2, "relu")]
    if "hard_swish" in activations:  # and MobileNetV3-Small's last expansion
        cases.append((7, 7, 96, 576, 3, 2, "hard_swish"))
    return cases


@pytest.mark.parametrize("h,w,k,n,batch,threads,activation", gemm_cases())
def test_conv1x1(isa, rng, h, w, k, n, batch, threads, activation):
    kernel = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((batch, h, w, k)).astype(np.float32)
    node = Node("pw", "conv1x1", ["input"], {"kernel": kernel, "bias": bias}, activation=activation)
    y = run_poisoned(network(isa, threads, (h, w, k), node), x)
    before_activation = reference.conv2d(x, kernel[np.newaxis, np.newaxis], bias)
    expected = apply_activation(before_activation, activation)
    assert reference.relative_error(y, expected, scale=before_activation) < TOLERANCE


def test_conv1x1_without_bias(isa, rng):
    kernel = rng.standard_normal((17, 33)).astype(np.float32)
    x = rng.standard_normal((2, 5, 3, 17)).astype(np.float32)
    y = run_poisoned(network(isa, 2, (5, 3, 17), Node("pw", "conv1x1", ["input"], {"kernel": kernel})), x)
    assert reference.relative_error(y, reference.conv2d(x, kernel[np.newaxis, np.newaxis])) < TOLERANCE


@pytest.mark.parametrize("h,w,c,units,batch,threads,activation", [
    (1, 1, 1, 1, 1, 1, "linear"), (1, 1, 256, 1000, 1, 2, "linear"), (1, 1, 1280, 1000, 3, 2, "linear"),
    (3, 3, 17, 37, 3, 1, "relu"), (3, 3, 1024, 10, 2, 2, "relu6"), (2, 5, 7, 9, 1, 2, "hard_swish"),
    (1, 1, 33, 17, 8, 2, "hard_swish"), (1, 1, 576, 1024, 3, 2, "hard_swish"),
])
def test_dense(isa, rng, h, w, c, units, batch, threads, activation):
    kernel = (rng.standard_normal((h * w * c, units)) / np.sqrt(h * w * c)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    x = rng.standard_normal((batch, h, w, c)).astype(np.float32)
    node = Node("fc", "dense", ["input"], {"kernel": kernel, "bias": bias}, activation=activation)
    y = run_poisoned(network(isa, threads, (h, w, c), node), x)
    before_activation = reference.dense(x, kernel, bias)
    expected = apply_activation(before_activation, activation)
    assert reference.relative_error(y.reshape(batch, units), expected, scale=before_activation) < TOLERANCE


@pytest.mark.parametrize("h,w,c,batch,threads,activation", [
    (h, w, c, 1 + 2 * (i % 2), 1 + (i // 2) % 2, CLAMP_ACTIVATIONS[i % 3])
    for i, (c, (h, w)) in enumerate(itertools.product(CHANNELS, [(1, 1), (3, 5), (17, 16), (112, 112)]))
])
def test_add(isa, rng, h, w, c, batch, threads, activation):
    a = rng.standard_normal((batch, h, w, c)).astype(np.float32)
    # The second operand is a node's output: a depthwise layer with an identity kernel.
    identity = np.zeros((3, 3, c), np.float32)
    identity[1, 1] = 1.0
    nodes = [
        Node("copy", "depthwise3x3", ["input"], {"kernel": identity}, 1, (1, 1, 1, 1)),
        Node("sum", "add", ["input", "copy"], activation=activation),
    ]
    y = run_poisoned(network(isa, threads, (h, w, c), *nodes), a)
    assert reference.relative_error(y, apply_activation(2.0 * a.astype(np.float64), activation)) < TOLERANCE


@pytest.mark.parametrize("h,w,c,batch,threads", [
    (h, w, c, 1 + 2 * (i % 2), 1 + (i // 2) % 2)
    for i, (c, (h, w)) in enumerate(itertools.product(CHANNELS, [(1, 1), (3, 5), (17, 13), (61, 57)]))
])
def test_multiply(isa, rng, h, w, c, batch, threads):
    """A squeeze-and-excitation gate: each image times its own 1x1xC gate (here a 1x1
    convolution of the image's average), channel by channel; 61x57 images split into several
    tasks of whole pixels."""
    kernel = rng.standard_normal((c, c)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    x = rng.standard_normal((batch, h, w, c)).astype(np.float32)
    nodes = [
        {"kind": "global_avg_pool", "inputs": [0]},
        {"kind": "conv1x1", "inputs": [1], "out_channels": c, "kernel": kernel, "bias": bias},
        {"kind": "multiply", "inputs": [0, 2]},
    ]
    y = run_poisoned(core_network(isa, threads, (h, w, c), nodes), x)
    gate = reference.conv2d(x.astype(np.float64).mean(axis=(1, 2), keepdims=True), kernel[np.newaxis, np.newaxis], bias)
    # Against the product of the largest input and gate: the gate's own rounding carries over to
    # every pixel, whichever is the largest output.
    scale = np.abs(x).max() * np.abs(gate).max()
    assert reference.relative_error(y, x * gate, scale=scale) < TOLERANCE


@pytest.mark.parametrize("shape,batch,threads", [((1, 1, n), 1 + 2 * (n % 2), 1 + n // 2 % 2) for n in range(1, 34)] + [
    ((7, 7, 17), 3, 2), ((5, 3, 100), 1, 1), ((112, 112, 3), 3, 2), ((61, 57, 5), 2, 1),
])
def test_hard_swish(isa, rng, shape, batch, threads):
    """Standalone hard-swish over every remainder of 4, 8 and 16 values (1 to 33), and images
    split into several tasks; values spread over both bends of relu6(x + 3)."""
    x = rng.uniform(-8.0, 8.0, (batch,) + shape).astype(np.float32)
    y = run_poisoned(core_network(isa, threads, shape, [{"kind": "hard_swish", "inputs": [0]}]), x)
    assert reference.relative_error(y, reference.hard_swish(x)) < TOLERANCE


def test_hard_swish_breakpoints(isa):
    """At and around -3 and 3, where relu6(x + 3) bends, at zeros of both signs and for NaN,
    which stays NaN; in the standalone kernel and in a convolution's output stage (an identity
    depthwise layer)."""
    eps = float(np.finfo(np.float32).eps)
    values = np.array([-7.0, -6.0, -3.0 - 2 * eps, -3.0, -3.0 + eps, -1.5, -0.0, 0.0, 1e-30, 3.0 - eps, 3.0,
                       3.0 + 2 * eps, 6.0, 1e30, np.nan, 0.25], np.float32)
    x = values.reshape(1, 1, 1, -1)
    expected = reference.hard_swish(x)
    standalone = core_network(isa, 1, x.shape[1:], [{"kind": "hard_swish", "inputs": [0]}])
    identity = np.zeros((3, 3, x.shape[-1]), np.float32)
    identity[1, 1] = 1.0
    depthwise = network(isa, 1, x.shape[1:], Node("dw", "depthwise3x3", ["input"], {"kernel": identity}, 1,
                                                   (1, 1, 1, 1), "hard_swish"))
    for net in (standalone, depthwise):
        y = run_poisoned(net, x).astype(np.float64)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=4 * eps, atol=0)


@pytest.mark.parametrize("nodes,input_quantization,message", [
    ([{"kind": "global_avg_pool", "inputs": [0]}, {"kind": "multiply", "inputs": [1, 0]}], None,
     r"node 1 \(multiply\): the gate \(second input\) must have shape \(1, 1, 8\) to scale the channels of "
     r"\(1, 1, 8\), got \(5, 3, 8\)"),
    ([{"kind": "multiply", "inputs": [0]}], None, r"node 0 \(multiply\): takes 2 input\(s\), got 1"),
    ([{"kind": "add", "inputs": [0, 0], "hard_swish": True}], None,
     r"node 0 \(add\): takes no hard-swish activation: only conv3x3, conv1x1, dense and depthwise layers apply it"),
    ([{"kind": "global_max_pool", "inputs": [0], "hard_swish": True}], None, r"node 0 \(global_max_pool\): takes no hard-swish"),
    ([{"kind": "softmax", "inputs": [0], "hard_swish": True}], None, r"node 0 \(softmax\): takes no hard-swish"),
    ([{"kind": "hard_swish", "inputs": [0], "clamp": (0.0, 6.0)}], None,
     r"node 0 \(hard_swish\): takes no activation: its clamp must be \(-inf, inf\)"),
    ([{"kind": "hard_swish", "inputs": [0]}], (0.05, 3), r"node 0 \(hard_swish\): an int8 network cannot run it"),
    ([{"kind": "global_avg_pool", "inputs": [0], "output_quantization": (0.05, 3)},
      {"kind": "multiply", "inputs": [0, 1], "output_quantization": (0.05, 3)}], (0.05, 3),
     r"node 1 \(multiply\): an int8 network cannot run it"),
    ([{"kind": "global_avg_pool", "inputs": [0], "output_quantization": (0.05, 3), "hard_swish": True}], (0.05, 3),
     r"node 0 \(global_avg_pool\): hard-swish activation in an int8 network"),
])
def test_multiply_and_hard_swish_rejected(nodes, input_quantization, message):
    """Bad multiply and hard-swish nodes: a clear error naming the node."""
    with pytest.raises(ValueError, match=message):
        _core.Network("scalar", 1, (5, 3, 8), nodes, "auto", input_quantization)


def test_int8_conv_rejects_hard_swish(rng):
    kernel = rng.integers(-127, 128, (8, 4), dtype=np.int8)
    node = {"kind": "conv1x1", "inputs": [0], "out_channels": 4, "kernel": kernel,
            "weight_scale": np.full(4, 0.01, np.float32), "output_quantization": (0.05, 0), "hard_swish": True}
    with pytest.raises(ValueError, match=r"node 0 \(conv1x1\): hard-swish activation in an int8 network"):
        _core.Network("scalar", 1, (5, 3, 8), [node], "auto", (0.05, 3))


@pytest.mark.parametrize("h,w,c,batch", [(h, w, c, 1 + 2 * (i % 2)) for i, (c, (h, w)) in enumerate(
    itertools.product(CHANNELS, [(1, 1), (2, 3), (7, 7), (17, 13)]))])
@pytest.mark.parametrize("op", ["global_avg_pool", "global_max_pool"])
def test_global_pool(isa, rng, op, h, w, c, batch):
    x = rng.standard_normal((batch, h, w, c)).astype(np.float32)
    y = run_poisoned(network(isa, 2, (h, w, c), Node("pool", op, ["input"])), x)
    expected = x.astype(np.float64).mean(axis=(1, 2)) if op == "global_avg_pool" else x.max(axis=(1, 2))
    assert reference.relative_error(y.reshape(batch, c), expected) < TOLERANCE


@pytest.mark.parametrize("n,batch,scale", [(1, 1, 1.0), (7, 3, 1.0), (8, 1, 30.0), (1000, 2, 10.0), (1001, 1, 0.01), (17, 3, 80.0), (9, 2, 1000.0), (33, 1, 100.0)])
def test_softmax(isa, rng, n, batch, scale):
    x = (rng.standard_normal((batch, 1, 1, n)) * scale).astype(np.float32)
    y = run_poisoned(network(isa, 1, (1, 1, n), Node("softmax", "softmax", ["input"])), x)
    assert reference.relative_error(y, reference.softmax(x)) < TOLERANCE


@pytest.mark.parametrize("n, batch", [(1, 1), (7, 3), (37, 1), (1000, 2)])
def test_sigmoid(isa, rng, n, batch):
    x = (rng.standard_normal((batch, 1, 1, n)) * 6).astype(np.float32)
    y = run_poisoned(network(isa, 1, (1, 1, n), Node("sigmoid", "sigmoid", ["input"])), x)
    assert reference.relative_error(y, reference.sigmoid(x)) < TOLERANCE


def test_isa_paths_present():
    """Every kernel set the CPU runs is tested in this same session, as read independently of
    mnengine: on x86-64 from /proc/cpuinfo (AVX-512 VNNI, AVX-512F, AVX2+FMA, scalar), on
    aarch64 from the auxiliary vector (NEON with the dot product, NEON, scalar; qemu-user
    emulates the auxiliary vector of the CPU it emulates, not /proc/cpuinfo)."""
    import platform

    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        import re

        flags = open("/proc/cpuinfo").read()
        has = lambda flag: re.search(rf"\b{flag}\b", flags) is not None  # noqa: E731
        if has("avx2") and has("fma"):
            expected = ["avx2_fma", "scalar"]
            if has("avx512f"):
                expected.insert(0, "avx512f")
                if has("avx512bw") and has("avx512_vnni"):
                    expected.insert(0, "avx512vnni")
            assert _core.available_isas() == expected
    elif machine in ("aarch64", "arm64"):
        import ctypes

        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        hwcap = libc.getauxval(16)  # AT_HWCAP
        dotprod = bool(hwcap & (1 << 20))  # HWCAP_ASIMDDP
        assert _core.available_isas() == (["neon_dotprod"] if dotprod else []) + ["neon", "scalar"]
    assert _core.available_isas()[-1] == "scalar"
