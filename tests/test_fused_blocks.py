"""Fused MobileNet blocks ([1x1 expand, or the first 3x3 stride-2 convolution on RGB] ->
depthwise 3x3 -> [1x1 project] [+ input]) against the float64 reference of the same layers run
one by one, on every ISA.

The network fuses a block only where it pays (a large expanded tensor, small weights, enough
rows per thread); these tests force fusion (`fusion="always"`) to run the fused operator at
every shape: odd and even sizes down to 1x1, each padding mode, steps of rows meeting every
ring position, and two and three threads splitting images into bands (some empty) whose shared
rows are expanded twice; the layers' activations take every place in turn, hard-swish included
(the expansion's, first convolution's and depthwise output stages inside the block). The
automatic policy is checked on its own. The int8 fused block runs over the same cases against
the integer reference, bit for bit.
"""

import itertools

import numpy as np
import pytest

import reference
import reference_qs8 as ref_qs8
from conftest import run_poisoned
from mnengine import _core
from mnengine.graph import Graph, Node
from test_kernels import CLAMP_ACTIVATIONS, CONV_ACTIVATIONS, apply_activation, network, padding_for
from test_qs8_kernels import (assert_bit_exact, output_quantization_for, random_int8, random_quantization,
                              random_weights, run_qs8_poisoned)

TOLERANCE = 1e-5
PATTERNS = ["expand+depthwise", "depthwise+project", "expand+depthwise+project", "expand+depthwise+project+add",
            "conv+depthwise", "conv+depthwise+project"]


def block_nodes(rng, pattern, c_in, c_mid, c_out, stride, padding, activations, conv_padding=None):
    """The nodes of one block and a float64 reference of it. A "conv" layer is a 3x3 stride-2
    convolution padded as `conv_padding` (its input has 3 channels)."""
    layers = pattern.split("+")
    nodes, steps = [], []
    source = "input"

    def weights(*shape):
        return {"kernel": (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(np.float32),
                "bias": rng.standard_normal(shape[-1]).astype(np.float32)}

    channels = c_in
    for i, layer in enumerate(layers):
        activation = activations[i % len(activations)]
        if layer == "expand":
            w = weights(channels, c_mid)
            nodes.append(Node("expand", "conv1x1", [source], w, activation=activation))
            steps.append(lambda y, w=w, a=activation: apply_activation(reference.conv2d(y, w["kernel"][None, None], w["bias"]), a))
            channels = c_mid
        elif layer == "conv":
            w = weights(3, 3, channels, c_mid)
            nodes.append(Node("conv", "conv3x3", [source], w, 2, conv_padding, activation))
            steps.append(lambda y, w=w, a=activation: apply_activation(
                reference.conv2d(y, w["kernel"], w["bias"], 2, conv_padding), a))
            channels = c_mid
        elif layer == "depthwise":
            w = weights(3, 3, channels)
            nodes.append(Node("depthwise", "depthwise3x3", [source], w, stride, padding, activation))
            steps.append(lambda y, w=w, a=activation: apply_activation(
                reference.depthwise_conv2d(y, w["kernel"], w["bias"], stride, padding), a))
        elif layer == "project":
            w = weights(channels, c_out)
            nodes.append(Node("project", "conv1x1", [source], w, activation="linear"))
            steps.append(lambda y, w=w: reference.conv2d(y, w["kernel"][None, None], w["bias"]))
            channels = c_out
        else:
            # The residual add applies clamps only: its turn's activation, or the next clamp.
            clamps = [a for a in activations[i % len(activations):] + activations if a in CLAMP_ACTIVATIONS]
            nodes.append(Node("add", "add", [source, "input"], activation=clamps[0]))
            steps.append(None)  # needs the block input: applied below
        source = nodes[-1].name

    def expected(x):
        y = np.asarray(x, np.float64)
        for node, step in zip(nodes, steps):
            y = apply_activation(y + x, node.activation) if step is None else step(y)
        return y

    return nodes, expected


def cases():
    """(pattern, h, w, c_in, c_mid, c_out, stride, padding mode, batch, threads): every H and W
    from 1 to 17 meets each pattern and stride; channel counts cover the vector and GEMM tile
    remainders; threads 1 to 3."""
    result = []
    modes = ["same", "valid", "zero_pad_bottom_right", "zero_pad_all", "asymmetric"]
    channels = [(1, 3, 1), (3, 7, 5), (4, 9, 8), (7, 8, 17), (2, 17, 3), (16, 33, 9), (9, 100, 16)]
    for i, (pattern, stride, size) in enumerate(itertools.product(PATTERNS, (1, 2), range(1, 18))):
        h, w = size, (7 * size + 3) % 17 + 1
        mode = modes[i % len(modes)]
        c_in, c_mid, c_out = channels[i % len(channels)]
        if pattern.endswith("add"):
            stride, mode, c_out = 1, "same", c_in  # the residual needs the input's shape back
        if pattern.startswith("conv"):
            c_in = 3
        result.append((pattern, h, w, c_in, c_mid, c_out, stride, mode, 1 + 2 * (i % 2), 1 + i % 3))
    # Images tall enough for several steps per band on two and three threads.
    for i, (pattern, threads, stride) in enumerate(itertools.product(PATTERNS, (2, 3), (1, 2))):
        if pattern.endswith("add"):
            stride = 1
        result.append((pattern, 8 * threads * stride * (2 if pattern.startswith("conv") else 1) + 1 + i % 3, 13 + i % 4, 3, 6,
                       3 if pattern.endswith("add") else 5, stride, modes[i % len(modes)] if stride == 2 else "same",
                       1 + 2 * (i % 2), threads))
    return result


def fitting_padding(mode, h, w, stride):
    """`mode`'s padding of an h x w input, or one pixel all round where that leaves the 3x3
    window no room."""
    padding = padding_for(mode, h, w, stride)
    if h + padding[0] + padding[1] < 3 or w + padding[2] + padding[3] < 3:
        padding = (1, 1, 1, 1)
    return padding


@pytest.mark.parametrize("pattern,h,w,c_in,c_mid,c_out,stride,mode,batch,threads", cases())
def test_fused_block(isa, rng, pattern, h, w, c_in, c_mid, c_out, stride, mode, batch, threads):
    conv_padding = None
    mid_h, mid_w = h, w
    if pattern.startswith("conv"):
        conv_padding = fitting_padding(mode, h, w, 2)
        mid_h = (h + conv_padding[0] + conv_padding[1] - 3) // 2 + 1
        mid_w = (w + conv_padding[2] + conv_padding[3] - 3) // 2 + 1
    padding = fitting_padding(mode, mid_h, mid_w, stride)
    # Rotated by the height (every pattern and stride meets heights 1 to 17): each layer meets
    # each activation.
    activations = CONV_ACTIVATIONS[h % 4:] + CONV_ACTIVATIONS[:h % 4]
    nodes, expected = block_nodes(rng, pattern, c_in, c_mid, c_out, stride, padding, activations, conv_padding)
    net = network(isa, threads, (h, w, c_in), *nodes, fusion="always")
    assert net.steps == [(0, len(nodes))], f"not fused: {net.steps}"
    x = rng.standard_normal((batch, h, w, c_in)).astype(np.float32)
    assert reference.relative_error(run_poisoned(net, x), expected(x)) < TOLERANCE


@pytest.mark.parametrize("h,c_in,c_mid,threads,fused", [
    (56, 8, 48, 1, True),   # large expanded tensor, small weights
    (56, 8, 48, 2, True),
    (6, 32, 64, 1, False),  # weights outweigh the expanded tensor
    (20, 4, 8, 3, False),   # fewer than 8 output rows per thread
])
def test_automatic_fusion(isa, rng, h, c_in, c_mid, threads, fused):
    nodes, expected = block_nodes(rng, "expand+depthwise+project+add", c_in, c_mid, c_in, 1, (1, 1, 1, 1), ["relu6"])
    net = network(isa, threads, (h, h, c_in), *nodes)
    assert net.steps == ([(0, 4)] if fused else [(0, 1), (1, 1), (2, 1), (3, 1)])
    x = rng.standard_normal((2, h, h, c_in)).astype(np.float32)
    assert reference.relative_error(run_poisoned(net, x), expected(x)) < TOLERANCE


def test_never_fused_matches_fused(isa, rng):
    nodes, _ = block_nodes(rng, "expand+depthwise+project+add", 5, 30, 5, 1, (1, 1, 1, 1), ["relu6", "linear"])
    x = rng.standard_normal((3, 19, 23, 5)).astype(np.float32)
    fused = run_poisoned(network(isa, 2, (19, 23, 5), *nodes, fusion="always"), x)
    unfused = run_poisoned(network(isa, 2, (19, 23, 5), *nodes, fusion="never"), x)
    np.testing.assert_array_equal(fused, unfused)


def qs8_block_nodes(rng, pattern, c_in, c_mid, c_out, stride, padding, activations, input_q, x, conv_padding=None):
    """The int8 nodes of one block, their output quantizations chosen on the block's input `x`
    to spread each layer's outputs over the int8 range, and the block's output by the integer
    reference run layer by layer."""
    nodes = []
    source, y, y_q, channels = "input", x, input_q, c_in
    for i, layer in enumerate(pattern.split("+")):
        activation = activations[i % len(activations)]
        if layer == "add":
            q = (float(np.float32(y_q[0] * 1.5)), int(rng.integers(-20, 20)))
            nodes.append(Node("add", "add", [source, "input"], activation=activation, quantization=q))
            y, y_q = ref_qs8.add(y, y_q, x, input_q, q, activation), q
            source = "add"
            continue
        if layer in ("expand", "project"):
            out_channels = c_mid if layer == "expand" else c_out
            w = random_weights(rng, (channels, out_channels), out_channels)
            sums = ref_qs8.conv_sums(y, y_q[1], w["kernel"][None, None], w["bias"], 1, (0, 0, 0, 0))
            op, node_stride, node_padding, channels = "conv1x1", 1, (0, 0, 0, 0), out_channels
            if layer == "project":
                activation = "linear"
        elif layer == "conv":
            w = random_weights(rng, (3, 3, 3, c_mid), c_mid)
            sums = ref_qs8.conv_sums(y, y_q[1], w["kernel"], w["bias"], 2, conv_padding)
            op, node_stride, node_padding, channels = "conv3x3", 2, conv_padding, c_mid
        else:
            w = random_weights(rng, (3, 3, channels), channels)
            sums = ref_qs8.depthwise_sums(y, y_q[1], w["kernel"], w["bias"], stride, padding)
            op, node_stride, node_padding = "depthwise3x3", stride, padding
        q = output_quantization_for(rng, sums, y_q, w["weight_scale"])
        nodes.append(Node(layer, op, [source], w, node_stride, node_padding, activation, q))
        y = ref_qs8.requantize_sums(sums, ref_qs8.channel_scales(y_q[0], w["weight_scale"], q[0]), q, activation)
        y_q, source = q, layer
    return nodes, y


@pytest.mark.parametrize("pattern,h,w,c_in,c_mid,c_out,stride,mode,batch,threads", cases())
def test_qs8_fused_block(qs8_isa, rng, pattern, h, w, c_in, c_mid, c_out, stride, mode, batch, threads):
    """The int8 fused block, bit for bit against the integer reference of its layers."""
    conv_padding = None
    mid_h, mid_w = h, w
    if pattern.startswith("conv"):
        conv_padding = fitting_padding(mode, h, w, 2)
        mid_h = (h + conv_padding[0] + conv_padding[1] - 3) // 2 + 1
        mid_w = (w + conv_padding[2] + conv_padding[3] - 3) // 2 + 1
    padding = fitting_padding(mode, mid_h, mid_w, stride)
    activations = CLAMP_ACTIVATIONS[::-1] if batch == 1 else CLAMP_ACTIVATIONS
    input_q = random_quantization(rng)
    x = random_int8(rng, (batch, h, w, c_in))
    nodes, expected = qs8_block_nodes(rng, pattern, c_in, c_mid, c_out, stride, padding, activations, input_q, x,
                                      conv_padding)
    graph = Graph("block", (h, w, c_in), nodes, input_quantization=input_q)
    net = _core.Network(qs8_isa, threads, (h, w, c_in), graph.core_nodes(), "always", input_q)
    assert net.steps == [(0, 0), (0, len(nodes)), (len(nodes), 0)], f"not fused: {net.steps}"
    assert_bit_exact(run_qs8_poisoned(net, x), expected)


def test_qs8_automatic_fusion(qs8_isa, rng):
    """An int8 network fuses a block where a float one would, and fused or not computes the
    same int8 values."""
    input_q = random_quantization(rng)
    x = random_int8(rng, (2, 56, 56, 8))
    nodes, expected = qs8_block_nodes(rng, "expand+depthwise+project+add", 8, 48, 8, 1, (1, 1, 1, 1), ["relu6"],
                                      input_q, x)
    graph = Graph("block", (56, 56, 8), nodes, input_quantization=input_q)
    for fusion, steps in (("auto", [(0, 0), (0, 4), (4, 0)]), ("never", [(0, 0), (0, 1), (1, 1), (2, 1), (3, 1), (4, 0)])):
        net = _core.Network(qs8_isa, 2, (56, 56, 8), graph.core_nodes(), fusion, input_q)
        assert net.steps == steps
        assert_bit_exact(run_qs8_poisoned(net, x), expected)
