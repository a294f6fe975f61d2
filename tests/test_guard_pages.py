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
from test_kernels import network, padding_for

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class GuardedArrays:
    """Float32 arrays whose first or last byte borders a PROT_NONE page."""

    def __init__(self):
        self.mappings = []

    def array(self, shape, at_end: bool) -> np.ndarray:
        count = int(np.prod(shape))
        data_pages = -(-count * 4 // PAGE)
        mapping = mmap.mmap(-1, (data_pages + 2) * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
        for page in (0, data_pages + 1):
            if _libc.mprotect(base + page * PAGE, PAGE, 0) != 0:
                raise OSError(ctypes.get_errno(), "mprotect failed")
        self.mappings.append(mapping)
        offset = (data_pages + 1) * PAGE - count * 4 if at_end else PAGE
        return np.frombuffer(mapping, np.float32, count, offset).reshape(shape)


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
