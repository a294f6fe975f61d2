"""Whole MobileNet v1 and v2 networks against the independent float64 NumPy reference.

mnengine builds the graph from Keras-layout weights (folding BatchNormalization); the
reference runs Keras's layer sequence with BatchNormalization applied as Keras does.
"""

import numpy as np
import pytest

import mnengine
import reference
from mnengine.models import synthetic_weights

TOLERANCE = 1e-4

V1_CASES = [(0.25, 128, 1), (0.25, 97, 2), (0.5, 160, 1), (0.5, 75, 1), (0.75, 96, 2), (1.0, 224, 1), (1.0, 113, 1)]
V2_CASES = [(0.35, 96, 2), (0.5, 128, 1), (0.75, 101, 1), (1.0, 224, 1), (1.0, 67, 2), (1.3, 97, 1), (1.4, 64, 1)]


def check_network(arch, alpha, size, batch, rng, include_top=True, pooling=None, threads=2):
    weights = synthetic_weights(arch, alpha, include_top=include_top, seed=int(rng.integers(1 << 31)))
    graph = getattr(mnengine.models, arch)(alpha, size, weights=weights, include_top=include_top, pooling=pooling)
    engine = mnengine.Engine(graph, threads=threads)
    x = rng.uniform(-1.0, 1.0, (batch, size, size, 3)).astype(np.float32)
    y = engine.predict(x)
    expected = getattr(reference, arch)(x, weights, include_top=include_top)
    if not include_top:
        expected = {"avg": expected.mean(axis=(1, 2)), "max": expected.max(axis=(1, 2)), None: expected}[pooling]
    assert y.shape == expected.shape
    assert reference.relative_error(y, expected) < TOLERANCE
    if include_top:
        assert (y.argmax(axis=1) == expected.argmax(axis=1)).all()
    return y, expected


@pytest.mark.parametrize("alpha,size,batch", V1_CASES)
def test_mobilenet_v1(isa, rng, alpha, size, batch):
    check_network("mobilenet_v1", alpha, size, batch, rng)


@pytest.mark.parametrize("alpha,size,batch", V2_CASES)
def test_mobilenet_v2(isa, rng, alpha, size, batch):
    check_network("mobilenet_v2", alpha, size, batch, rng)


@pytest.mark.parametrize("arch,alpha", [("mobilenet_v1", 0.5), ("mobilenet_v2", 0.35)])
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_feature_extractor(isa, rng, arch, alpha, pooling):
    check_network(arch, alpha, 96, 2, rng, include_top=False, pooling=pooling)


def test_single_thread_matches_reference(isa, rng):
    check_network("mobilenet_v2", 0.5, 96, 3, rng, threads=1)


def test_synthetic_outputs_are_discriminative(rng):
    """The synthetic weights must give peaked outputs, or argmax checks would be vacuous: the
    top class leads the next by far more than the tolerance. (Over seeds the lead ranges from
    1.3x to 1000x; the seed comes from the test's id, which depends on how pytest is invoked.)"""
    y, _ = check_network("mobilenet_v1", 0.25, 128, 4, rng)
    top2 = np.sort(y, axis=1)[:, -2:]
    assert (top2[:, 1] > 1.2 * top2[:, 0]).all(), top2
