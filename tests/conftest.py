import importlib
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from mnengine import _core

ISAS = _core.available_isas()


def _one_per_family(column: int):
    """The instruction sets with distinct kernels of one kind (column 1: float32, 2: int8), each
    family tested once under the instruction set named after it where there is one."""
    families = {}
    for entry in _core.kernel_families():
        family = entry[column]
        if family not in families or entry[0] == family:
            families[family] = entry[0]
    return [isa for isa in ISAS if isa in families.values()]


F32_ISAS = _one_per_family(1)
QS8_ISAS = _one_per_family(2)
REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("MNENGINE_FIXTURES", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(params=F32_ISAS)
def isa(request, monkeypatch):
    """Every float32 kernel family this machine has, forced through MNENGINE_ISA."""
    monkeypatch.setenv("MNENGINE_ISA", request.param)
    return request.param


@pytest.fixture(params=QS8_ISAS)
def qs8_isa(request, monkeypatch):
    """Every int8 kernel family this machine has, forced through MNENGINE_ISA."""
    monkeypatch.setenv("MNENGINE_ISA", request.param)
    return request.param


def pytest_collection_modifyitems(config, items):
    """MNENGINE_TEST_SHARD=i/n keeps every n-th collected test from the i-th (0-based): CI runs
    the slow emulated and sanitized suites as n processes side by side, one per core."""
    shard = os.environ.get("MNENGINE_TEST_SHARD")
    if not shard:
        return
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise pytest.UsageError(f"MNENGINE_TEST_SHARD must be i/n (e.g. 0/2), got {shard!r}") from None
    if not 0 <= index < count:
        raise pytest.UsageError(f"MNENGINE_TEST_SHARD {shard!r}: i must be in [0, n)")
    kept, deselected = [], []
    for position, item in enumerate(items):
        (kept if position % count == index else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def skip_unless_required(variable: str, reason: str):
    """Skips the test for `reason`, or fails it when the environment variable `variable` is 1
    (as CI sets it): what CI installs must not be skipped there."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} ({variable}=1 requires it)")
    pytest.skip(reason)


@pytest.fixture
def fixtures() -> Path:
    """../shared/fixtures: real ImageNet weights, photos and expected outputs.

    Absent outside the project's checkout (e.g. testing an installed wheel elsewhere) the
    tests that need it are skipped, unless MNENGINE_REQUIRE_FIXTURES=1 (as in CI) makes
    that an error.
    """
    if not FIXTURES.is_dir():
        skip_unless_required("MNENGINE_REQUIRE_FIXTURES", f"fixtures directory {FIXTURES} not found")
    return FIXTURES


def _import_keras(module: str):
    """Keras (the exporter's reference) if installed. `pip install ".[test]"` installs it on
    x86-64; elsewhere (the emulated aarch64 run) its tests are skipped - unless
    MNENGINE_REQUIRE_KERAS=1 (as in CI's host run) makes that an error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_unless_required("MNENGINE_REQUIRE_KERAS", f"{module} cannot be imported: {e}")


@pytest.fixture(scope="session")
def keras():
    return _import_keras("keras")


@pytest.fixture(scope="session")
def tf_keras():
    """Keras 2 (the tf_keras package), for files in Keras 2's formats."""
    return _import_keras("tf_keras")


@pytest.fixture
def rng(request):
    """Fresh random data per test, reproducible from the test's name."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def run_module(module, *args, timeout=600, unimportable=()):
    """`python -m module args...` with this interpreter, from outside the checkout, so that
    the installed mnengine is imported rather than the source tree beside the tests. In that
    process, importing any of the modules `unimportable` fails, as if it were not installed."""
    command = [sys.executable, "-m", module]
    if unimportable:
        command = [sys.executable, "-c", f"import runpy, sys; sys.modules.update(dict.fromkeys({tuple(unimportable)!r})); "
                                         f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]
    return subprocess.run(command + list(map(str, args)), capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())


def randomize_weights(model, rng, biases=False):
    """Realistic BatchNormalization statistics in `model` and its nested models (Keras
    initializes them to the identity), and with `biases` non-zero Conv2D / Dense biases too."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            randomize_weights(layer, rng, biases)
        elif type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, variance.shape),
            ])
        elif biases and type(layer).__name__ in ("Conv2D", "Dense") and getattr(layer, "use_bias", False):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.5, bias.shape)])


def run_poisoned(network, x):
    """Runs a core network with its output pre-filled with NaN, so unwritten values fail."""
    out = np.full((x.shape[0], int(np.prod(network.output_shape))), np.nan, np.float32)
    network.run(np.ascontiguousarray(x, np.float32), out)
    return out.reshape((x.shape[0],) + tuple(network.output_shape))


def import_cluster_framework(module: str, extra: str):
    """Ray or Dask, if installed (`pip install ".[ray]"` / `".[dask]"`); their tests are
    skipped without them, unless MNENGINE_REQUIRE_CLUSTER=1 (as in CI) makes that an error."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_unless_required("MNENGINE_REQUIRE_CLUSTER", f"{module} cannot be imported ({e}): pip install \".[{extra}]\"")
