"""Real ImageNet-trained MobileNets from ../shared/fixtures, exported from their weights-only
Keras files with ``python -m mnengine.export --arch A --alpha X --size S``, classify real
photos as Keras did and compute what Keras computes with those weights.

expected_top5.json holds Keras 3.15's top-5 for every model and photo (preprocessing: the
whole image resized bilinearly to S x S, then x / 127.5 - 1, which is what Engine.predict
does to an image path).
"""

import json

import numpy as np
import pytest

import mnengine
from conftest import run_module
from mnengine.export import imagenet_labels
from reference import relative_error

# The classifiers (expected_top5.json has their top-5 on every photo) ...
MODELS = {
    "keras/mobilenet_2_5_128_tf.h5": ("mobilenet_v1", 0.25, 128),
    "keras/mobilenet_2_5_160_tf.h5": ("mobilenet_v1", 0.25, 160),
    "keras/mobilenet_2_5_192_tf.h5": ("mobilenet_v1", 0.25, 192),
    "keras/mobilenet_2_5_224_tf.h5": ("mobilenet_v1", 0.25, 224),
    "keras/mobilenet_v1_0.5_160_qat_folded.h5": ("mobilenet_v1", 0.5, 160),
    "keras/mobilenet_v2_1.0_224_qat_folded.h5": ("mobilenet_v2", 1.0, 224),
}
# ... and the official feature extractor (no top) release file, written by Keras 2.0.4.
NO_TOP = "keras/mobilenet_2_5_224_tf_no_top.h5"
ARCHITECTURES = {**MODELS, NO_TOP: ("mobilenet_v1", 0.25, 224)}


def load_expectations(fixtures):
    return json.loads((fixtures / "expected_top5.json").read_text())["models"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """get(fixtures, model) -> (the .bin, the summary printed): each fixture model exported
    once per module, through the command line."""
    cache = {}

    def get(fixtures, model):
        if model not in cache:
            arch, alpha, size = ARCHITECTURES[model]
            out = tmp_path_factory.mktemp("exported") / "model.bin"
            result = run_module("mnengine.export", fixtures / model, "-o", out,
                                "--arch", arch, "--alpha", alpha, "--size", size)
            assert result.returncode == 0, result.stderr
            cache[model] = out, result.stdout
        return cache[model]

    return get


def test_cli_exports_keras2_weights_only_file(fixtures, exported):
    """The official release file, written by Keras 2.0.4."""
    out, summary = exported(fixtures, NO_TOP)
    assert "weights-only h5, Keras 2.0.4" in summary and "multiply-adds" in summary
    assert mnengine.Engine(out).output_shape == (7, 7, 256)


def test_imagenet_labels_are_keras_class_names(fixtures, exported):
    """The labels mnengine ships, and puts in an exported 1000-class model, are Keras's
    class names in Keras's order."""
    index = json.loads((fixtures / "labels" / "imagenet_class_index.json").read_text())
    names = [index[str(i)][1] for i in range(1000)]
    assert imagenet_labels() == names
    out, _ = exported(fixtures, "keras/mobilenet_2_5_128_tf.h5")
    assert mnengine.Engine(out).labels == names


@pytest.mark.parametrize("model", sorted(MODELS))
def test_photos_classified_as_keras_did(fixtures, exported, isa, model):
    engine = mnengine.Engine(exported(fixtures, model)[0])
    expected = load_expectations(fixtures)[model]
    photos = sorted(expected)
    probabilities = engine.predict([fixtures / "photos" / p for p in photos])
    confident = 0
    for photo, row in zip(photos, probabilities):
        top5 = expected[photo]
        if top5[0][2] > 0.5:
            confident += 1
            assert int(row.argmax()) == top5[0][0], (photo, engine.top_k(fixtures / "photos" / photo))
        for index, _, probability in top5:
            assert abs(row[index] - probability) < 1e-3, (photo, index, row[index], probability)
    assert confident >= 5
    # top_k names the class with the label the file carries.
    label, probability = engine.top_k(fixtures / "photos" / photos[0], k=1)[0]
    assert label == expected[photos[0]][0][1] and abs(probability - expected[photos[0]][0][2]) < 1e-3


@pytest.mark.keras
@pytest.mark.parametrize("model", sorted(ARCHITECTURES))
def test_matches_keras_predict_with_real_weights(fixtures, exported, keras, model):
    """mnengine equals Keras's predict with the same weights file (relative error < 1e-4, and
    a classifier's argmax), and the summary's parameter count is Keras's count_params()."""
    arch, alpha, size = ARCHITECTURES[model]
    application = keras.applications.MobileNet if arch == "mobilenet_v1" else keras.applications.MobileNetV2
    reference = application(alpha=alpha, input_shape=(size, size, 3), weights=str(fixtures / model),
                            include_top=model != NO_TOP)
    out, summary = exported(fixtures, model)
    assert f"(Keras counts {reference.count_params():,} before" in summary
    engine = mnengine.Engine(out)
    photos = sorted(p for p in (fixtures / "photos").iterdir() if p.suffix in (".bmp", ".jpg", ".png"))[:6]
    x = engine.preprocess(photos)
    expected = reference.predict(x, verbose=0).reshape(len(photos), -1)
    got = engine.predict(x).reshape(len(photos), -1)
    assert relative_error(got, expected) < 1e-4
    if model != NO_TOP:  # a feature map's maximum is a ReLU6's 6, tied across many features
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


INT8_MODELS = ["keras/mobilenet_2_5_128_tf.h5", "keras/mobilenet_v1_0.5_160_qat_folded.h5",
               "keras/mobilenet_v2_1.0_224_qat_folded.h5"]


@pytest.mark.parametrize("model", INT8_MODELS)
def test_int8_export_keeps_confident_classifications(fixtures, exported, tmp_path, model):
    """Quantized with ``--int8 --calibration`` on half the photos, the model classifies each
    photo of the other half (both ways round, so no photo is classified by a model calibrated
    on it) as the float model does wherever the float model is confident (top-1 probability
    above 0.5), and stays close on the rest (bench/int8_accuracy.py reports the full figures)."""
    arch, alpha, size = ARCHITECTURES[model]
    float_engine = mnengine.Engine(exported(fixtures, model)[0])
    photos = sorted(p for p in (fixtures / "photos").iterdir() if p.suffix in (".bmp", ".jpg", ".png"))
    confident = overlap = 0
    for calibrate, test in ((photos[0::2], photos[1::2]), (photos[1::2], photos[0::2])):
        out = tmp_path / "int8.bin"
        result = run_module("mnengine.export", fixtures / model, "-o", out, "--arch", arch, "--alpha", alpha,
                            "--size", size, "--int8", "--calibration", *calibrate)
        assert result.returncode == 0, result.stderr
        assert f"precision:              int8, calibrated on {len(calibrate)} images" in result.stdout
        int8_engine = mnengine.Engine(out)
        assert int8_engine.dtype == "int8"
        x = float_engine.preprocess(test)
        expected, got = float_engine.predict(x), int8_engine.predict(x)
        for photo, p_float, p_int8 in zip(test, expected, got):
            if p_float.max() > 0.5:
                confident += 1
                assert p_int8.argmax() == p_float.argmax(), (photo.name, p_float.max(), p_int8.max())
            overlap += len(set(np.argsort(-p_float)[:5]) & set(np.argsort(-p_int8)[:5]))
        assert np.abs(got - expected).mean() < 1e-3
    assert confident >= 5
    assert overlap >= 0.6 * 5 * len(photos)
