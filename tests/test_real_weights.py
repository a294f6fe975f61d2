"""Real ImageNet-trained MobileNets from ../shared/fixtures classify real photos as Keras did.

expected_top5.json holds Keras 3.15's top-5 for every model and photo (preprocessing: the
whole image resized bilinearly to S x S, then x / 127.5 - 1, which is what Engine.predict
does to an image path).
"""

import json

import numpy as np
import pytest

import mnengine
from keras_h5 import read_weights

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


def imagenet_labels(fixtures):
    index = json.loads((fixtures / "labels" / "imagenet_class_index.json").read_text())
    return [index[str(i)][1] for i in range(1000)]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_photos_classified_as_keras_did(fixtures, isa, model):
    arch, alpha, size = MODELS[model]
    weights = read_weights(fixtures / model)
    graph = getattr(mnengine.models, arch)(alpha, size, weights=weights, labels=imagenet_labels(fixtures))
    engine = mnengine.Engine(graph)
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
