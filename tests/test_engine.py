"""Engine: the inputs predict() takes, what it returns, and clear errors for bad input."""

import os
import threading

import numpy as np
import pytest
from PIL import Image

import mnengine
from mnengine import ModelFormatError

SIZE = 64


@pytest.fixture(scope="module")
def engine():
    labels = [f"label {i}" for i in range(1000)]
    return mnengine.Engine(mnengine.models.mobilenet_v1(0.25, SIZE, labels=labels), threads=2)


@pytest.fixture
def photo(rng):
    return rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)


def preprocess_like_keras(pixels):
    """The documented preprocessing: whole image, bilinear resize, x / 127.5 - 1."""
    image = Image.fromarray(pixels).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(image, np.float32)[np.newaxis] / np.float32(127.5) - np.float32(1)


def test_properties(engine):
    assert engine.input_shape == (SIZE, SIZE, 3)
    assert engine.output_shape == (1000,) and engine.num_classes == 1000
    assert engine.labels[7] == "label 7" and engine.preprocessing == "mobilenet"
    assert engine.threads == 2 and engine.isa in mnengine.cpu_info()["available_isas"]
    assert engine.metadata["architecture"] == "mobilenet_v1"
    assert "mobilenet_v1" in repr(engine)


def test_uint8_image_is_resized_and_preprocessed(engine, photo):
    expected = engine.predict(preprocess_like_keras(photo))
    np.testing.assert_array_equal(engine.predict(photo), expected)
    assert engine.predict(photo).shape == (1, 1000)
    assert abs(float(engine.predict(photo).sum()) - 1.0) < 1e-4


def test_path_pil_and_array_agree(engine, photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    from_array = engine.predict(photo)
    np.testing.assert_array_equal(engine.predict(path), from_array)
    np.testing.assert_array_equal(engine.predict(str(path)), from_array)
    np.testing.assert_array_equal(engine.predict(Image.fromarray(photo)), from_array)


def test_list_and_uint8_batch(engine, rng):
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(3)]
    singles = np.concatenate([engine.predict(i) for i in images])
    np.testing.assert_allclose(engine.predict(images), singles, rtol=0, atol=1e-6)
    np.testing.assert_allclose(engine.predict(np.stack(images)), singles, rtol=0, atol=1e-6)


def test_float_batch_passes_through(engine, rng):
    x = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    y = engine.predict(x)
    assert y.shape == (2, 1000) and y.dtype == np.float32
    np.testing.assert_array_equal(engine.predict(x[0]), y[:1])
    # float64, non-contiguous, negative strides and big-endian input are converted.
    np.testing.assert_array_equal(engine.predict(x.astype(np.float64)), y)
    np.testing.assert_array_equal(engine.predict(x.astype(">f4")), y)
    flipped = np.ascontiguousarray(x[:, ::-1, ::-1])
    np.testing.assert_array_equal(engine.predict(flipped[:, ::-1, ::-1]), y)
    wide = np.zeros((2, SIZE, SIZE, 6), np.float32)
    wide[..., ::2] = x
    np.testing.assert_array_equal(engine.predict(wide[..., ::2]), y)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_other_image_modes_are_converted(engine, photo, mode):
    if mode == "I;16":
        image = Image.fromarray(photo[:, :, 0].astype(np.uint16) * 257)
        assert image.mode == "I;16"
        expected = engine.predict(np.stack([photo[:, :, 0]] * 3, axis=2))
    else:
        image = Image.fromarray(photo).convert(mode)
        expected = engine.predict(np.asarray(image.convert("RGB")))
    np.testing.assert_array_equal(engine.predict(image), expected)


def test_sixteen_bit_png(engine, photo, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(photo[:, :, 1].astype(np.uint16) * 257).save(path)
    np.testing.assert_array_equal(engine.predict(path), engine.predict(np.stack([photo[:, :, 1]] * 3, axis=2)))


def test_grayscale_and_rgba_arrays(engine, photo):
    gray = photo[:, :, 0]
    expected = engine.predict(np.stack([gray] * 3, axis=2))
    np.testing.assert_array_equal(engine.predict(gray), expected)
    np.testing.assert_array_equal(engine.predict(gray[:, :, np.newaxis]), expected)
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(engine.predict(rgba), engine.predict(photo))


def test_tiny_image(engine):
    assert engine.predict(np.full((1, 1, 3), 128, np.uint8)).shape == (1, 1000)


def test_top_k(engine, photo):
    probabilities = engine.predict(photo)[0]
    top = engine.top_k(photo, k=3)
    order = np.argsort(-probabilities)[:3]
    assert [label for label, _ in top] == [f"label {i}" for i in order]
    assert [p for _, p in top] == pytest.approx(probabilities[order].tolist())
    batch = engine.top_k([photo, photo], k=2)
    assert len(batch) == 2 and batch[0] == top[:2]
    unlabelled = mnengine.Engine(mnengine.models.mobilenet_v1(0.25, SIZE))
    assert all(isinstance(index, int) for index, _ in unlabelled.top_k(photo))
    for k in (0, 1001, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer"):
            engine.top_k(photo, k=k)


@pytest.mark.parametrize("bad,error,message", [
    ([], ValueError, "empty batch"),
    (np.zeros((0, SIZE, SIZE, 3), np.float32), ValueError, "empty batch"),
    (np.zeros((0, SIZE, SIZE, 3), np.uint8), ValueError, "empty batch"),
    (np.zeros((SIZE, SIZE, 3), np.int64), TypeError, "expected uint8 pixels"),
    (np.zeros((1, 32, 32, 3), np.float32), ValueError, r"preprocessed at the model's input size: \(N, 64, 64, 3\)"),
    (np.zeros((SIZE, SIZE, 2), np.uint8), ValueError, r"\(H, W, 4\); got array of shape \(64, 64, 2\)"),
    (np.zeros((0, 5, 3), np.uint8), ValueError, "expected a uint8 image"),
    (np.zeros((2, 2, 2, 2, 3), np.uint8), ValueError, "expected a uint8 image"),
    (12, TypeError, "got int"),
    ([np.zeros((4, 4, 3), np.uint8), 3], TypeError, "item 1 of the list"),
    (np.full((1, SIZE, SIZE, 3), np.nan, np.float32), ValueError, "NaN or infinity"),
    (np.full((1, SIZE, SIZE, 3), np.inf, np.float32), ValueError, "NaN or infinity"),
])
def test_bad_input(engine, bad, error, message):
    with pytest.raises(error, match=message):
        engine.predict(bad)


def test_unreadable_files(engine, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        engine.predict(text)
    with pytest.raises(FileNotFoundError):
        engine.predict(tmp_path / "absent.jpg")


@pytest.mark.parametrize("threads", [0, -1, 1000, 1.5, "2"])
def test_bad_thread_count(threads):
    with pytest.raises(ValueError, match="threads must be an integer"):
        mnengine.Engine(mnengine.models.mobilenet_v1(0.25, 32), threads=threads)


def test_isa_environment_variable(monkeypatch):
    monkeypatch.setenv("MNENGINE_ISA", "scalar")
    assert mnengine.cpu_info()["isa"] == "scalar"
    assert mnengine.Engine(mnengine.models.mobilenet_v1(0.25, 32)).isa == "scalar"
    monkeypatch.setenv("MNENGINE_ISA", "sve2")
    with pytest.raises(ValueError, match="MNENGINE_ISA='sve2' is not available"):
        mnengine.Engine(mnengine.models.mobilenet_v1(0.25, 32))


def test_graph_rejected_by_core_raises_model_format_error():
    graph = mnengine.models.mobilenet_v1(0.25, 32)
    graph.nodes[0].weights["kernel"] = np.zeros((3, 3, 3, 8), np.float64)  # dtype is converted
    assert mnengine.Engine(graph).num_classes == 1000
    graph.nodes.append(mnengine.Node("extra", "add", ["conv1", "predictions"]))
    with pytest.raises(ModelFormatError, match="operand shapes differ"):
        mnengine.Engine(graph)


def test_concurrent_predicts_match_serial(engine, rng):
    """One Engine, 8 Python threads, 200 predicts each on inputs of their own: every result is
    bit-identical to the serial one (threads share the engine's worker pool or run alone)."""
    inputs = [rng.uniform(-1, 1, (1 + i % 3, SIZE, SIZE, 3)).astype(np.float32) for i in range(8)]
    serial = [engine.predict(x) for x in inputs]
    mismatches = [0] * len(inputs)

    def work(i):
        for _ in range(200):
            if not np.array_equal(engine.predict(inputs[i]), serial[i]):
                mismatches[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mismatches == [0] * len(inputs)


@pytest.mark.parametrize("variant", ["float64", "big-endian", "non-contiguous", "negative strides", "fortran"])
def test_float_array_layouts(engine, rng, variant):
    """Float inputs of any dtype, byte order and memory layout give the same result as the
    plain C-contiguous float32 array."""
    x = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    expected = engine.predict(x)
    if variant == "float64":
        other = x.astype(np.float64)
    elif variant == "big-endian":
        other = x.astype(">f4")
    elif variant == "non-contiguous":
        other = np.zeros((2, SIZE, 2 * SIZE, 3), np.float32)
        other[:, :, ::2] = x
        other = other[:, :, ::2]
    elif variant == "negative strides":
        other = np.ascontiguousarray(x[:, ::-1, ::-1])[:, ::-1, ::-1]
    else:
        other = np.asfortranarray(x)
    assert not (variant != "float64" and other.flags.c_contiguous and other.dtype == np.float32)
    np.testing.assert_array_equal(engine.predict(other), expected)


def test_uint8_layouts(engine, photo):
    expected = engine.predict(photo)
    np.testing.assert_array_equal(engine.predict(np.ascontiguousarray(photo[::-1])[::-1]), expected)
    np.testing.assert_array_equal(engine.predict(np.asfortranarray(photo)), expected)


def test_one_pixel_and_huge_images(engine):
    one = np.full((1, 1, 3), 200, np.uint8)
    np.testing.assert_allclose(engine.predict(one), engine.predict(np.full((SIZE, SIZE, 3), 200, np.uint8)), atol=1e-6)
    huge = np.zeros((10000, 10000, 3), np.uint8)
    huge[:, 5000:] = 255
    huge[2000:3000] = (10, 200, 30)
    np.testing.assert_array_equal(engine.predict(huge), engine.predict(preprocess_like_keras(huge)))


def resident_bytes():
    """Resident memory of this process; statm counts pages, whose size is the system's (16 or
    64 KiB on some aarch64 kernels)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.rss
def test_memory_is_flat_over_5000_predicts(engine, rng):
    x = rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    for _ in range(200):
        engine.predict(x)
    before = resident_bytes()
    for _ in range(5000):
        engine.predict(x)
    assert resident_bytes() - before < 8 << 20


@pytest.mark.rss
def test_memory_is_flat_over_200_engines(tmp_path):
    path = tmp_path / "small.bin"
    mnengine.save_model(mnengine.models.mobilenet_v2(0.35, 48), path)
    x = np.zeros((1, 48, 48, 3), np.float32)

    def cycle(count):
        for _ in range(count):
            engine = mnengine.Engine(path, threads=2)
            engine.predict(x)
            del engine

    cycle(20)
    before = resident_bytes()
    cycle(200)
    assert resident_bytes() - before < 16 << 20
