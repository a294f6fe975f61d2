import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from mnengine import _core

ISAS = _core.available_isas()
REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("MNENGINE_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(params=ISAS)
def isa(request, monkeypatch):
    """Every kernel instruction set this machine has, forced through MNENGINE_ISA."""
    monkeypatch.setenv("MNENGINE_ISA", request.param)
    return request.param


@pytest.fixture
def fixtures() -> Path:
    """../shared/fixtures: real ImageNet weights, photos and expected outputs.

    Absent outside the project's checkout (e.g. testing an installed wheel elsewhere) the
    tests that need it are skipped, unless MNENGINE_REQUIRE_FIXTURES=1 (as in CI) makes
    that an error.
    """
    if not FIXTURES.is_dir():
        if os.environ.get("MNENGINE_REQUIRE_FIXTURES") == "1":
            pytest.fail(f"fixtures directory {FIXTURES} not found")
        pytest.skip(f"fixtures directory {FIXTURES} not found")
    return FIXTURES


@pytest.fixture
def rng(request):
    """Fresh random data per test, reproducible from the test's name."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def run_poisoned(network, x):
    """Runs a core network with its output pre-filled with NaN, so unwritten values fail."""
    out = np.full((x.shape[0], int(np.prod(network.output_shape))), np.nan, np.float32)
    network.run(np.ascontiguousarray(x, np.float32), out)
    return out.reshape((x.shape[0],) + tuple(network.output_shape))
