"""Whole int8 MobileNet v1 and v2 networks against the integer NumPy implementation of the
network (reference_qs8.run_graph), on every int8 kernel family of the machine.

The float graphs (synthetic weights) are quantized by mnengine.quantize on random calibration
images; the engine and the reference then run the same int8 graph. Without the softmax the
outputs are dequantized int8 values, compared exactly: any difference is counted and must be
zero (the engine's int8 arithmetic is specified to the bit). With the softmax, the float
probabilities agree to float32 rounding.
"""

import dataclasses

import numpy as np
import pytest

import mnengine
import reference_qs8
from mnengine.models import synthetic_weights
from mnengine.quantize import quantize

V1_CASES = [(0.25, 128, 1, 2), (0.25, 97, 3, 1), (0.5, 75, 1, 2), (1.0, 224, 1, 2)]
V2_CASES = [(0.35, 96, 3, 2), (0.5, 67, 1, 1), (1.0, 224, 1, 2), (1.3, 97, 1, 2)]


def int8_graph(arch, alpha, size, rng, include_top=True):
    weights = synthetic_weights(arch, alpha, include_top=include_top, seed=int(rng.integers(1 << 31)))
    graph = getattr(mnengine.models, arch)(alpha, size, weights=weights, include_top=include_top)
    calibration = rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    return quantize(graph, calibration)


def check_logits(graph, rng, batch, threads):
    """The network without its softmax: engine and reference bit for bit."""
    logits = dataclasses.replace(graph, nodes=graph.nodes[:-1], labels=None)
    x = rng.uniform(-1.0, 1.0, (batch,) + tuple(graph.input_shape)).astype(np.float32)
    y = mnengine.Engine(logits, threads=threads).predict(x).reshape(batch, -1)
    expected = reference_qs8.run_graph(logits, x).reshape(batch, -1)
    differences = int((y != expected).sum())
    assert differences == 0, f"{differences} of {y.size} outputs differ from the reference"
    assert np.unique(y).size > 10, "the outputs are nearly constant: the check would be vacuous"


@pytest.mark.parametrize("alpha,size,batch,threads", V1_CASES)
def test_int8_mobilenet_v1(qs8_isa, rng, alpha, size, batch, threads):
    check_logits(int8_graph("mobilenet_v1", alpha, size, rng), rng, batch, threads)


@pytest.mark.parametrize("alpha,size,batch,threads", V2_CASES)
def test_int8_mobilenet_v2(qs8_isa, rng, alpha, size, batch, threads):
    check_logits(int8_graph("mobilenet_v2", alpha, size, rng), rng, batch, threads)


def test_int8_softmax_output(qs8_isa, rng):
    """With the softmax: float probabilities computed from the same int8 logits."""
    graph = int8_graph("mobilenet_v2", 0.35, 96, rng)
    x = rng.uniform(-1.0, 1.0, (2, 96, 96, 3)).astype(np.float32)
    y = mnengine.Engine(graph).predict(x)
    expected = reference_qs8.run_graph(graph, x).reshape(2, 1000)
    assert y.dtype == np.float32 and y.shape == (2, 1000)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-7)
    assert (y.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_int8_feature_extractor(qs8_isa, rng):
    """No top: the int8 feature map is dequantized as the output."""
    graph = int8_graph("mobilenet_v1", 0.5, 96, rng, include_top=False)
    x = rng.uniform(-1.0, 1.0, (1, 96, 96, 3)).astype(np.float32)
    y = mnengine.Engine(graph).predict(x)
    assert y.shape == (1, 3, 3, 512)
    assert np.array_equal(y, reference_qs8.run_graph(graph, x))
