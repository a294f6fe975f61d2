"""Real ImageNet-trained MobileNets from ../shared/fixtures, exported from their weights-only
Keras files with ``python -m mnengine.export --arch A --alpha X --size S``, classify real
photos as Keras did.

expected_top5.json holds Keras 3.15's top-5 for every model and photo (preprocessing: the
whole image resized bilinearly to S x S, then x / 127.5 - 1, which is what Engine.predict
does to an image path).
"""

import json

import numpy as np
import pytest

import mnengine
from conftest import run_module
from mnengine.export import export

MODELS = {
    "keras/mobilenet_2_5_128_tf.h5": ("mobilenet_v1", 0.25, 128),
    "keras/mobilenet_2_5_160_tf.h5": ("mobilenet_v1", 0.25, 160),
    "keras/mobilenet_2_5_192_tf.h5": ("mobilenet_v1", 0.25, 192),
    "keras/mobilenet_2_5_224_tf.h5": ("mobilenet_v1", 0.25, 224),
    "keras/mobilenet_v1_0.5_160_qat_folded.h5": ("mobilenet_v1", 0.5, 160),
    "keras/mobilenet_v2_1.0_224_qat_folded.h5": ("mobilenet_v2", 1.0, 224),
}


def load_expectations(fixtures):
    return json.loads((fixtures / "expected_top5.json").read_text())["models"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{fixture model: its exported .bin}, exported once per module."""
    cache = {}

    def get(fixtures, model):
        if model not in cache:
            arch, alpha, size = MODELS[model]
            out = tmp_path_factory.mktemp("exported") / "model.bin"
            export(fixtures / model, out, arch=arch, alpha=alpha, size=size)
            cache[model] = out
        return cache[model]

    return get


def test_cli_exports_keras2_weights_only_file(fixtures, tmp_path):
    """The official release file, written by Keras 2.0.4, through the command line."""
    out = tmp_path / "v1.bin"
    result = run_module("mnengine.export", fixtures / "keras/mobilenet_2_5_224_tf_no_top.h5", "-o", out,
                        "--arch", "mobilenet_v1", "--alpha", "0.25", "--size", "224")
    assert result.returncode == 0, result.stderr
    assert "weights-only h5, Keras 2.0.4" in result.stdout and "multiply-adds" in result.stdout
    assert mnengine.Engine(out).output_shape == (7, 7, 256)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_photos_classified_as_keras_did(fixtures, exported, isa, model):
    engine = mnengine.Engine(exported(fixtures, model))
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
@pytest.mark.parametrize("model", sorted(MODELS))
def test_matches_keras_predict_with_real_weights(fixtures, exported, keras, model):
    arch, alpha, size = MODELS[model]
    application = keras.applications.MobileNet if arch == "mobilenet_v1" else keras.applications.MobileNetV2
    reference = application(alpha=alpha, input_shape=(size, size, 3), weights=str(fixtures / model))
    engine = mnengine.Engine(exported(fixtures, model))
    photos = sorted(load_expectations(fixtures)[model])[:6]
    x = engine.preprocess([fixtures / "photos" / p for p in photos])
    expected = reference.predict(x, verbose=0)
    got = engine.predict(x)
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
