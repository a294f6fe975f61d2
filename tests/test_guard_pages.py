"""No kernel touches memory outside the buffers it is given (csrc/kernels.h: kernels read and
write exactly what their arguments describe; callers need no tail slack).

Network.run reads the caller's input in place and writes the last node's output in place, so
a one-node network runs its kernel directly on arrays placed against inaccessible pages
(mmap + mprotect): flush with the end of the mapping before a guard page, and flush with the
start after one. Any read or write past either end is a segmentation fault, which fails the
run. The activation arena and scratch buffers inside the engine are heap allocations, which
the AddressSanitizer build (.ci/sanitize.sh) checks with its redzones.
"""

import ctypes
import mmap

import numpy as np
import pytest

from mnengine.graph import Node
from test_kernels import PAD_MODES_5X5, core_network, depthwise5x5_node, network, padding_for, window_fits
from test_qs8_kernels import int8_network, random_int8, random_quantization, random_weights

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class GuardedArrays:
    """Arrays (float32 unless said) whose first or last byte borders a PROT_NONE page."""

    def __init__(self):
        self.mappings = []

    def array(self, shape, at_end: bool, dtype=np.float32) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        count = int(np.prod(shape))
        data_pages = -(-count * itemsize // PAGE)
        mapping = mmap.mmap(-1, (data_pages + 2) * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
        for page in (0, data_pages + 1):
            if _libc.mprotect(base + page * PAGE, PAGE, 0) != 0:
                raise OSError(ctypes.get_errno(), "mprotect failed")
        self.mappings.append(mapping)
        offset = (data_pages + 1) * PAGE - count * itemsize if at_end else PAGE
        return np.frombuffer(mapping, dtype, count, offset).reshape(shape)


@pytest.fixture
def guarded():
    return GuardedArrays()  # the mappings live as long as the test


def run_guarded(guarded, net, x_values, at_end):
    x = guarded.array(x_values.shape, at_end)
    x[...] = x_values
    out = guarded.array((x.shape[0], int(np.prod(net.output_shape))), at_end)
    out[...] = np.nan
    net.run(x, out)
    assert np.isfinite(out).all()


CHANNELS = [1, 3, 4, 7, 8, 9, 17, 33]


@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
@pytest.mark.parametrize("threads", [1, 2])
def test_window_kernels(isa, rng, guarded, at_end, threads):
    for i, channels in enumerate(CHANNELS):
        for stride in (1, 2):
            for mode in ("same", "valid", "zero_pad_bottom_right", "asymmetric"):
                h, w = 3 + (i + stride) % 6, 3 + (2 * i + 1) % 7
                padding = padding_for(mode, h, w, stride)
                dw = Node("dw", "depthwise3x3", ["input"], {"kernel": rng.standard_normal((3, 3, channels)),
                                                            "bias": rng.standard_normal(channels)}, stride, padding)
                x = rng.standard_normal((1 + i % 2, h, w, channels)).astype(np.float32)
                run_guarded(guarded, network(isa, threads, (h, w, channels), dw), x, at_end)
                conv = Node("conv", "conv3x3", ["input"], {"kernel": rng.standard_normal((3, 3, 3, channels)),
                                                           "bias": rng.standard_normal(channels)}, stride, padding)
                x = rng.standard_normal((1 + i % 2, h, w, 3)).astype(np.float32)
                run_guarded(guarded, network(isa, threads, (h, w, 3), conv), x, at_end)


@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
@pytest.mark.parametrize("threads", [1, 2])
def test_depthwise5x5_kernel(isa, rng, guarded, at_end, threads):
    """Every padding mode of the 5x5 sweep, on images from 1 to 9 wide (windows overhanging
    both sides, interior blocks of every length) and channel tails of every vector width."""
    for i, channels in enumerate([1, 3, 7, 15, 16, 17, 31, 65]):
        for stride in (1, 2):
            for mode in PAD_MODES_5X5:
                h, w = 1 + (i + 3 * stride) % 9, 1 + (2 * i + len(mode)) % 9
                if not (window_fits(mode, h, stride, 5) and window_fits(mode, w, stride, 5)):
                    continue
                padding = padding_for(mode, h, w, stride, 5)
                node = depthwise5x5_node(rng.standard_normal((5, 5, channels)).astype(np.float32),
                                         rng.standard_normal(channels).astype(np.float32), stride, padding, "relu6")
                x = rng.standard_normal((1 + i % 2, h, w, channels)).astype(np.float32)
                run_guarded(guarded, core_network(isa, threads, (h, w, channels), [node]), x, at_end)


@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_and_small_kernels(isa, rng, guarded, at_end, threads):
    for k in (1, 3, 17, 33):
        for n in (1, 7, 8, 16, 17, 33):
            for h, w in ((1, 1), (3, 5), (7, 1)):
                node = Node("pw", "conv1x1", ["input"], {"kernel": rng.standard_normal((k, n)),
                                                         "bias": rng.standard_normal(n)})
                x = rng.standard_normal((2, h, w, k)).astype(np.float32)
                run_guarded(guarded, network(isa, threads, (h, w, k), node), x, at_end)
    for channels in CHANNELS + [100]:
        x = rng.standard_normal((3, 1, 1, channels)).astype(np.float32)
        dense = Node("fc", "dense", ["input"], {"kernel": rng.standard_normal((channels, 9)), "bias": rng.standard_normal(9)})
        nodes = [dense, Node("sm", "softmax", ["input"]), Node("sg", "sigmoid", ["input"]),
                 Node("add", "add", ["input", "input"])]
        for node in nodes:
            run_guarded(guarded, network(isa, threads, (1, 1, channels), node), x, at_end)
        x = rng.standard_normal((2, 3, 5, channels)).astype(np.float32)
        for op in ("global_avg_pool", "global_max_pool", "add"):
            node = Node(op, op, ["input", "input"] if op == "add" else ["input"])
            run_guarded(guarded, network(isa, threads, (3, 5, channels), node), x, at_end)
        # Hard-swish; the channel multiply reads the input in place (its gate is in the arena).
        run_guarded(guarded, core_network(isa, threads, (3, 5, channels), [{"kind": "hard_swish", "inputs": [0]}]),
                    x, at_end)
        gated = [{"kind": "global_avg_pool", "inputs": [0]}, {"kind": "multiply", "inputs": [0, 1]}]
        run_guarded(guarded, core_network(isa, threads, (3, 5, channels), gated), x, at_end)


def run_qs8_guarded(guarded, net, x_values, at_end):
    """An int8 network's layers (run_qs8) on int8 arrays against guard pages."""
    x = guarded.array(x_values.shape, at_end, np.int8)
    x[...] = x_values
    out = guarded.array((x.shape[0], int(np.prod(net.output_shape))), at_end, np.int8)
    net.run_qs8(x, out)


@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
@pytest.mark.parametrize("threads", [1, 2])
def test_qs8_window_kernels(qs8_isa, rng, guarded, at_end, threads):
    # 32 channels: the VNNI depthwise kernel's pixel pairs (64-byte loads across two pixels);
    # 130: past two of its 64-channel groups.
    for i, channels in enumerate(CHANNELS + [32, 130]):
        for stride in (1, 2):
            for mode in ("same", "valid", "zero_pad_bottom_right", "asymmetric"):
                h, w = 3 + (i + stride) % 6, 3 + (2 * i + 1) % 7
                padding = padding_for(mode, h, w, stride)
                input_q, output_q = random_quantization(rng), random_quantization(rng)
                dw = Node("dw", "depthwise3x3", ["input"], random_weights(rng, (3, 3, channels), channels), stride,
                          padding, quantization=output_q)
                x = random_int8(rng, (1 + i % 2, h, w, channels))
                run_qs8_guarded(guarded, int8_network(qs8_isa, threads, (h, w, channels), input_q, dw), x, at_end)
                if stride == 2:
                    conv = Node("conv", "conv3x3", ["input"], random_weights(rng, (3, 3, 3, channels), channels), 2,
                                padding, quantization=output_q)
                    x = random_int8(rng, (1 + i % 2, h, w, 3))
                    run_qs8_guarded(guarded, int8_network(qs8_isa, threads, (h, w, 3), input_q, conv), x, at_end)


@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
@pytest.mark.parametrize("threads", [1, 2])
def test_qs8_gemm_and_small_kernels(qs8_isa, rng, guarded, at_end, threads):
    for k in (1, 3, 4, 5, 17, 33, 64):
        for n in (1, 7, 8, 16, 17, 33, 64):
            for h, w in ((1, 1), (3, 5), (7, 1)):
                node = Node("pw", "conv1x1", ["input"], random_weights(rng, (k, n), n),
                            quantization=random_quantization(rng))
                x = random_int8(rng, (2, h, w, k))
                run_qs8_guarded(guarded, int8_network(qs8_isa, threads, (h, w, k), random_quantization(rng), node),
                                x, at_end)
    for channels in CHANNELS + [100]:
        input_q = random_quantization(rng)
        x = random_int8(rng, (3, 1, 1, channels))
        dense = Node("fc", "dense", ["input"], random_weights(rng, (channels, 9), 9),
                     quantization=random_quantization(rng))
        add = Node("add", "add", ["input", "input"], quantization=random_quantization(rng))
        for node in (dense, add):
            run_qs8_guarded(guarded, int8_network(qs8_isa, threads, (1, 1, channels), input_q, node), x, at_end)
        x = random_int8(rng, (2, 3, 5, channels))
        for op in ("global_avg_pool", "global_max_pool", "add"):
            node = Node(op, op, ["input", "input"] if op == "add" else ["input"], quantization=random_quantization(rng))
            run_qs8_guarded(guarded, int8_network(qs8_isa, threads, (3, 5, channels), input_q, node), x, at_end)


@pytest.mark.parametrize("at_end", [True, False], ids=["guard-after", "guard-before"])
def test_quantize_dequantize_kernels(qs8_isa, rng, guarded, at_end):
    """The float32 edges of an int8 network read the caller's float input and write its float
    output in place."""
    for n in (1, 3, 15, 16, 17, 31, 33, 64, 100, 1000):
        input_q = random_quantization(rng)
        net = int8_network(qs8_isa, 1, (1, 1, n), input_q, Node("copy", "global_max_pool", ["input"],
                                                                 quantization=input_q))
        run_guarded(guarded, net, rng.standard_normal((2, 1, 1, n)).astype(np.float32), at_end)
