"""The benchmark's command line, its JSON report, and the peers' model files: each installed
peer, run on the model file the benchmark writes for it, must reproduce mnengine's outputs
(a peer that is not installed is an optional extra and its test is skipped)."""

import json

import numpy as np
import pytest

import mnengine
from conftest import run_module, skip_unless_required
from mnengine.bench import peers, random_input


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.bin"
    mnengine.save_model(mnengine.models.mobilenet_v2(alpha=0.35, input_size=48, classes=10), path)
    return path


def bench(*args):
    return run_module("mnengine.bench", *args)


def test_json_report(tiny_model):
    result = bench("--model", str(tiny_model), "--runs", "3", "--warmup", "1", "--batch", "1", "2",
                   "--threads", "1", "--profile", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = report["mnengine"]
    assert [(r["batch"], r["threads"]) for r in rows] == [(1, 1), (2, 1)]
    for row in rows:
        assert row["model"] == "tiny" and row["runs"] == 3 and row["isa"] == mnengine.cpu_info()["isa"]
        assert 0 < row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["median_ms"] * 1e3)
    profile = report["profile"]
    assert profile["peak_gops_per_core"] > 0 and profile["peak_kind"] == "FMA"
    graph = mnengine.load_model(tiny_model)
    layers = profile["models"][0]["layers"]
    assert [name for layer in layers for name in layer["nodes"]] == [n.name for n in graph.nodes]
    assert all(layer["layer"] == layer["nodes"][0] for layer in layers)
    assert "progress" not in result.stdout and "tiny batch 1 threads 1" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads values must be positive"),
    (["--model", "/nonexistent.bin"], "no such file"),
    (["--runs", "0"], "--runs must be >= 1"),
])
def test_argument_errors(args, message):
    result = bench(*args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("name, factory", peers.PEERS, ids=[name for name, _ in peers.PEERS])
@pytest.mark.parametrize("arch, alpha, size", [
    ("mobilenet_v1", 0.25, 64), ("mobilenet_v2", 0.35, 64),
    # MobileNetV3: 5x5 depthwise, squeeze-excite (multiply by a hard_sigmoid gate), hard-swish;
    # at an odd size the stride-2 layers pad (1, 1) and (2, 2), at an even one (0, 1) and (1, 2).
    ("mobilenet_v3_small", 1.0, 64), ("mobilenet_v3_large", 0.75, 65),
])
def test_peer_reproduces_mnengine(tmp_path, name, factory, arch, alpha, size):
    """Each installed peer's model file, written from mnengine's graph, computes what mnengine
    computes. A peer that is not installed is skipped, unless MNENGINE_REQUIRE_PEERS=1 (as in
    CI, which installs the `compare` extra) makes that an error."""
    graph = getattr(mnengine.models, arch)(alpha=alpha, input_size=size)
    x = random_input(graph, 1, seed=3)
    expected = mnengine.Engine(graph, threads=1).predict(x).reshape(1, -1)
    try:
        run = factory(graph, x, 1, tmp_path)
    except peers.PeerUnavailable as e:
        skip_unless_required("MNENGINE_REQUIRE_PEERS", f"{name}: {e}")
    got = np.asarray(run()).reshape(1, -1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_int8_json_report(tiny_model):
    result = bench("--model", str(tiny_model), "--int8", "--runs", "3", "--warmup", "1", "--batch", "1",
                   "--threads", "1", "--profile", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [row] = report["int8"]
    assert row["model"] == "tiny int8" and row["runs"] == 3
    assert 0 < row["int8_p10_ms"] <= row["int8_median_ms"] <= row["int8_p90_ms"]
    assert row["ratio"] == pytest.approx(row["int8_median_ms"] / row["float32_median_ms"])
    profile = report["profile"]
    assert profile["peak_kind"] == "int8 multiply-add" and profile["peak_gops_per_core"] > 0
    layers = profile["models"][0]["layers"]
    assert layers[0]["layer"] == "quantize input" and layers[-1]["op"] == "softmax"
    graph = mnengine.load_model(tiny_model)
    assert [name for layer in layers for name in layer["nodes"]] == [n.name for n in graph.nodes]


def test_int8_of_int8_file_refused(tmp_path, tiny_model):
    graph = mnengine.load_model(tiny_model)
    path = tmp_path / "q.bin"
    mnengine.save_model(mnengine.quantize.quantize(graph, random_input(graph, 2)), path)
    result = bench("--model", str(path), "--int8", "--quick")
    assert result.returncode == 2 and "already int8" in result.stderr


@pytest.mark.parametrize("name, factory", [p for p in peers.PEERS if p[0] != "ncnn"],
                         ids=[name for name, _ in peers.PEERS if name != "ncnn"])
def test_int8_peer_close_to_mnengine(tmp_path, name, factory):
    """Each installed peer's own int8 model of the float network, calibrated on the same images,
    is int8 (a quarter of the float file) and close to mnengine's int8 engine: both quantize
    with TFLite's scheme, though not to the same numbers, and the peers' softmax outputs int8
    probabilities in steps of 1/256 where mnengine's computes in float32."""
    graph = mnengine.models.mobilenet_v1(alpha=0.25, input_size=64)
    calibration = random_input(graph, 16, seed=1)
    x = random_input(graph, 1, seed=3)
    expected = mnengine.Engine(mnengine.quantize.quantize(graph, calibration), threads=1).predict(x).reshape(1, -1)
    try:
        float_run = factory(graph, x, 1, tmp_path)
        run = factory(graph, x, 1, tmp_path, calibration=calibration)
    except peers.PeerUnavailable as e:
        skip_unless_required("MNENGINE_REQUIRE_PEERS", f"{name}: {e}")
    files = {".int8." in path.name: path.stat().st_size for path in tmp_path.iterdir()
             if path.suffix in (".tflite", ".onnx")}
    assert files[True] < 0.4 * files[False], files
    got = np.asarray(run()).reshape(1, -1)
    assert np.abs(got - expected).max() < 0.06
    assert np.abs(got - np.asarray(float_run()).reshape(1, -1)).max() < 0.06


def test_int8_leaves_mobilenet_v3_out(tmp_path, monkeypatch):
    """--int8 without --model quantizes the default networks that int8 can run, leaving
    MobileNetV3 out; a V3 model given with --model is refused, naming the layer int8 lacks."""
    from mnengine import bench as bench_module

    monkeypatch.setattr(bench_module, "DEFAULT_MODELS", (
        ("v2", "mobilenet_v2", 0.35, 48), ("v3", "mobilenet_v3_small", 0.5, 48)))
    built = bench_module.build_models([], tmp_path, int8=True)
    assert [model.name for model in built] == ["v2 int8"] and built[0].graph.int8
    path = tmp_path / "v3.bin"
    mnengine.save_model(mnengine.models.mobilenet_v3_small(alpha=0.5, input_size=48), path)
    result = bench("--model", str(path), "--int8", "--quick")
    assert result.returncode == 2 and "layer 'conv': int8 has no activation 'hard_swish'" in result.stderr, result.stderr
