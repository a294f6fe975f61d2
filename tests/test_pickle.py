"""Engines pickle: by the model file's bytes (default) or its path; unpickled Engines predict
bit-identically, in this process and in multiprocessing / ProcessPoolExecutor children."""

import concurrent.futures
import multiprocessing
import os
import pickle

import numpy as np
import pytest

import mnengine
from mnengine import _core

SIZE = 64


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pickle") / "v1.bin"
    mnengine.save_model(mnengine.models.mobilenet_v1(0.25, SIZE, labels=[f"class {i}" for i in range(1000)]), path)
    return path


@pytest.fixture
def images(rng):
    return rng.uniform(-1, 1, (3, SIZE, SIZE, 3)).astype(np.float32)


def predict_with(engine, x):
    """Runs in a child process: the engine arrives pickled."""
    return engine.predict(x), engine.threads, engine.isa, os.getpid()


def test_pickle_by_bytes_round_trip(isa, model_file, images):
    engine = mnengine.Engine(model_file, threads=2)
    data = pickle.dumps(engine)
    assert len(data) >= os.path.getsize(model_file)  # the model travels in the pickle
    loaded = pickle.loads(data)
    assert (loaded.isa, loaded.threads, loaded.labels, loaded.name, loaded.input_shape) == \
        (isa, 2, engine.labels, engine.name, engine.input_shape)
    np.testing.assert_array_equal(loaded.predict(images), engine.predict(images))
    # An unpickled Engine pickles again (it keeps the bytes: its file never existed here).
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(loaded)).predict(images), engine.predict(images))


def test_unpickled_engine_keeps_its_instruction_set(isa, model_file, images, monkeypatch):
    """Whatever MNENGINE_ISA says where it is unpickled."""
    data = pickle.dumps(mnengine.Engine(model_file, threads=1))
    monkeypatch.delenv("MNENGINE_ISA")
    assert pickle.loads(data).isa == isa
    other = next((i for i in _core.available_isas() if i != isa), isa)
    monkeypatch.setenv("MNENGINE_ISA", other)
    assert pickle.loads(data).isa == isa


def test_threads_travel_as_given(model_file):
    assert pickle.loads(pickle.dumps(mnengine.Engine(model_file, threads=3))).threads == 3
    default = pickle.loads(pickle.dumps(mnengine.Engine(model_file)))
    assert default._requested_threads is None and default.threads == mnengine.cpu_info()["default_threads"]


def test_engine_built_from_a_graph_pickles(images):
    graph = mnengine.models.mobilenet_v2(0.35, SIZE)
    engine = mnengine.Engine(graph, threads=1)
    loaded = pickle.loads(pickle.dumps(engine))
    assert loaded.name == engine.name and loaded.metadata == engine.metadata
    np.testing.assert_array_equal(loaded.predict(images), engine.predict(images))


def test_int8_engine_pickles(images, rng):
    calibration = rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    engine = mnengine.Engine(mnengine.quantize.quantize(mnengine.models.mobilenet_v1(0.25, SIZE), calibration), threads=1)
    loaded = pickle.loads(pickle.dumps(engine))
    assert (loaded.dtype, loaded.isa) == ("int8", engine.isa)
    np.testing.assert_array_equal(loaded.predict(images), engine.predict(images))


def test_pickle_by_path(model_file, images, tmp_path):
    engine = mnengine.Engine(model_file, threads=1, pickle_by="path")
    data = pickle.dumps(engine)
    assert len(data) < 1000 and str(model_file).encode() in data
    np.testing.assert_array_equal(pickle.loads(data).predict(images), engine.predict(images))

    # The receiving side loads the file at that path, which must be the same file.
    moved = tmp_path / "v1.bin"
    moved.write_bytes(model_file.read_bytes())
    data = pickle.dumps(mnengine.Engine(moved, pickle_by="path"))
    mnengine.save_model(mnengine.models.mobilenet_v1(0.25, SIZE, seed=1), moved)
    with pytest.raises(pickle.UnpicklingError, match="is not the model file the Engine was pickled with"):
        pickle.loads(data)
    moved.unlink()
    with pytest.raises(pickle.UnpicklingError, match="cannot be read here.*No such file"):
        pickle.loads(data)


def test_pickling_a_changed_file_fails(model_file, tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(model_file.read_bytes())
    engine = mnengine.Engine(path)
    mnengine.save_model(mnengine.models.mobilenet_v1(0.25, SIZE, seed=1), path)
    with pytest.raises(pickle.PicklingError, match="has changed since the Engine loaded it"):
        pickle.dumps(engine)
    path.unlink()
    with pytest.raises(pickle.PicklingError, match="cannot read the Engine's model file"):
        pickle.dumps(engine)


def test_bad_pickle_by():
    with pytest.raises(ValueError, match=r"pickle_by must be one of \('bytes', 'path'\), got 'file'"):
        mnengine.Engine(mnengine.models.mobilenet_v1(0.25, SIZE), pickle_by="file")
    with pytest.raises(ValueError, match="pickle_by='path' needs a model file"):
        mnengine.Engine(mnengine.models.mobilenet_v1(0.25, SIZE), pickle_by="path")


def test_missing_instruction_set_falls_back_with_a_warning(model_file, images, monkeypatch):
    engine = mnengine.Engine(model_file, threads=1)
    data = pickle.dumps(engine)
    if engine.isa == "scalar":
        pytest.skip("the scalar kernels exist everywhere")
    monkeypatch.setattr(_core, "available_isas", lambda: ["scalar"])
    with pytest.warns(RuntimeWarning, match=f"ran '{engine.isa}' kernels, which this machine lacks; it runs 'scalar'"):
        loaded = pickle.loads(data)
    assert loaded.isa == "scalar"
    np.testing.assert_allclose(loaded.predict(images), engine.predict(images), rtol=0, atol=1e-5)


# One child process each: starting Python is most of their cost (seconds under qemu).
@pytest.mark.parametrize("start_method, pickle_by", [("spawn", "bytes"), ("fork", "path")])
def test_multiprocessing_pool(model_file, images, start_method, pickle_by):
    engine = mnengine.Engine(model_file, threads=1, pickle_by=pickle_by)
    expected = engine.predict(images)
    with multiprocessing.get_context(start_method).Pool(1) as pool:
        results = pool.starmap(predict_with, [(engine, images[i:i + 1]) for i in range(3)])
    for i, (probabilities, threads, isa, pid) in enumerate(results):
        assert pid != os.getpid() and (threads, isa) == (1, engine.isa)
        np.testing.assert_array_equal(probabilities, expected[i:i + 1])


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_process_pool_executor(model_file, images, start_method):
    engine = mnengine.Engine(mnengine.load_model(model_file), threads=1)  # from a Graph
    expected = engine.predict(images)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(start_method)) as pool:
        futures = [pool.submit(predict_with, engine, images[i:i + 1]) for i in range(3)]
        for i, future in enumerate(futures):
            np.testing.assert_array_equal(future.result(timeout=120)[0], expected[i:i + 1])
