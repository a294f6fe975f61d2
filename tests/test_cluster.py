"""Ray Data and Dask on local clusters: the results equal serial Engine.predict on the same
files, and Dask workers load the Engine once, not once per task. Skipped without the ray /
dask extras, unless MNENGINE_REQUIRE_CLUSTER=1 (as in CI) makes that an error."""

import sys

import numpy as np
import pytest
from PIL import Image

import mnengine
from conftest import import_cluster_framework

pytestmark = pytest.mark.cluster

SIZE = 64
LABELS = [f"class {i}" for i in range(1000)]
TOP_K = 3


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "v1.bin"
    mnengine.save_model(mnengine.models.mobilenet_v1(0.25, SIZE, labels=LABELS), path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """24 images of mixed sizes and modes."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(16)
    paths = []
    for i in range(24):
        height, width = rng.integers(40, 300, 2)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"photo{i:02d}.{'jpg' if i % 3 else 'png'}"
        Image.fromarray(pixels).convert("L" if i % 5 == 0 else "RGB").save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def expected(model_file, photos):
    """Serial predict on each file: path -> [(label, index, probability)] of the top TOP_K."""
    engine = mnengine.Engine(model_file, threads=1)
    result = {}
    for path in photos:
        probabilities = engine.predict(path)[0]
        order = np.argsort(-probabilities, kind="stable")[:TOP_K]
        result[path] = [(LABELS[i], int(i), float(probabilities[i])) for i in order]
    return result


@pytest.fixture(scope="module")
def ray():
    ray = import_cluster_framework("ray", "ray")
    import_cluster_framework("ray.data", "ray")
    # Two CPUs: with an actor per CPU no read task could run, so tests leave one free.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def ray_rows_by_path(rows):
    """{path: (top-k triples, error)} from Classifier's output rows."""
    return {row["path"]: ([(row[f"label_{r}"], row[f"index_{r}"], row[f"probability_{r}"]) for r in range(1, TOP_K + 1)],
                          row["error"]) for row in rows}


def test_ray_classifier_on_paths(ray, model_file, photos, expected, tmp_path):
    from mnengine.integrations.ray import Classifier

    missing = str(tmp_path / "missing.jpg")
    dataset = ray.data.from_items([{"path": p} for p in photos + [missing]])
    rows = dataset.map_batches(Classifier, fn_constructor_kwargs={"model": str(model_file), "top_k": TOP_K, "threads": 1},
                               concurrency=2, num_cpus=0.5, batch_size=4).take_all()
    got = ray_rows_by_path(rows)
    assert sorted(got) == sorted(photos + [missing])
    for path in photos:
        assert got[path] == (expected[path], "")  # probabilities are float32: compared exactly
    top_k, error = got.pop(missing)
    assert error == f"FileNotFoundError: No such file or directory: {missing}"
    assert [t[:2] for t in top_k] == [("", -1)] * TOP_K and all(np.isnan(t[2]) for t in top_k)


def test_ray_classifier_on_read_images(ray, model_file, photos, expected):
    from mnengine.integrations.ray import Classifier

    # mode="RGB": Pillow's conversion, as predict does (Ray reads grayscale as (1, H, W) otherwise).
    dataset = ray.data.read_images(str(photos[0].rsplit("/", 1)[0]), mode="RGB", include_paths=True)
    # One actor of one CPU: the other CPU is for read_images's read tasks.
    rows = dataset.map_batches(Classifier, fn_constructor_kwargs={"model": str(model_file), "top_k": TOP_K},
                               concurrency=1, num_cpus=1, batch_size=8).take_all()
    got = ray_rows_by_path(rows)
    assert sorted(got) == sorted(photos)
    for path in photos:
        assert got[path] == (expected[path], "")


def test_ray_classifier_rejects_other_columns(model_file):
    from mnengine.integrations.ray import Classifier

    classifier = Classifier(str(model_file), threads=1)
    with pytest.raises(KeyError, match=r"expected an 'image' column .* or a 'path' column .* has \['file'\]"):
        classifier({"file": np.array(["x.jpg"])})
    with pytest.raises(ValueError, match="top_k must be an integer from 1 to 1000, got 0"):
        Classifier(str(model_file), top_k=0, threads=1)


def count_engine_loads():
    """Run on each Dask worker: counts the Engines mnengine.integrations.dask builds there."""
    import mnengine.integrations.dask as integration

    class CountingEngine(integration.Engine):
        loads = 0

        def __init__(self, *args, **kwargs):
            CountingEngine.loads += 1
            super().__init__(*args, **kwargs)

    integration.Engine = CountingEngine


def engine_loads():
    import mnengine.integrations.dask as integration

    return integration.Engine.loads


@pytest.fixture(scope="module")
def dask_client():
    import_cluster_framework("dask.bag", "dask")
    distributed = import_cluster_framework("distributed", "dask")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_dask_bag_equals_serial_predict_with_one_engine_per_worker(dask_client, model_file, photos, expected, tmp_path):
    import dask.bag

    from mnengine.integrations.dask import classify_bag

    dask_client.run(count_engine_loads)
    missing = str(tmp_path / "missing.jpg")
    paths = photos + [missing]
    bag = dask.bag.from_sequence(paths, npartitions=10)
    records = dask_client.compute(classify_bag(bag, model_file, top_k=TOP_K, batch=2)).result(timeout=300)
    assert [r["path"] for r in records] == paths
    for record in records[:-1]:
        assert [(t["label"], t["index"], t["probability"]) for t in record["top_k"]] == expected[record["path"]]
    assert records[-1] == {"path": missing, "error": f"FileNotFoundError: No such file or directory: {missing}"}
    loads = dask_client.run(engine_loads)
    assert len(loads) == 2 and set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads  # 10 tasks
    from mnengine.integrations.dask import loaded_engines

    kept = dask_client.run(loaded_engines)
    assert all(engines in ([], [(str(model_file), 1)]) for engines in kept.values()), kept


def test_dask_classify_bag_needs_the_model_file(tmp_path):
    import_cluster_framework("dask.bag", "dask")
    import dask.bag

    from mnengine.integrations.dask import classify_bag

    with pytest.raises(FileNotFoundError, match="model file .*none.bin not found"):
        classify_bag(dask.bag.from_sequence(["x.jpg"]), tmp_path / "none.bin")
