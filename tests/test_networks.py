"""Whole MobileNet v1 and v2 networks against the independent float64 NumPy reference.

mnengine builds the graph from Keras-layout weights (folding BatchNormalization); the
reference runs Keras's layer sequence with BatchNormalization applied as Keras does.
"""

import dataclasses

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


# ---- MobileNetV3 (Small and Large): hard-swish, squeeze-excite, 5x5 depthwise convolutions

# (model type, alpha, minimalistic, include_top, pooling, (height, width), batch, threads): both
# types at alpha 0.75, 1.0 and the non-standard 0.5 (its channel rounding leaves the first
# Large block without a residual), minimalistic or not, classifier or feature extractor, odd and
# even sizes (correct_pad's two stride-2 paddings), batch 1 and 3, one and two threads.
V3_CASES = [
    ("small", 1.0, False, True, None, (96, 96), 1, 2),
    ("small", 0.75, False, True, None, (97, 97), 3, 1),
    ("small", 0.5, False, False, None, (97, 96), 1, 2),
    ("small", 1.0, True, True, None, (96, 97), 3, 2),
    ("small", 0.75, True, False, "avg", (97, 97), 1, 1),
    ("large", 1.0, False, True, None, (97, 97), 3, 2),
    ("large", 0.75, False, False, "max", (96, 96), 1, 1),
    ("large", 0.5, False, True, None, (96, 97), 1, 2),
    ("large", 1.0, True, False, None, (97, 96), 1, 2),
    ("large", 0.5, True, True, None, (97, 97), 3, 1),
]


def v3_case_id(case):
    model_type, alpha, minimalistic, include_top, pooling, (h, w), batch, threads = case
    return (f"{model_type}-{alpha:g}{'-min' if minimalistic else ''}-{'top' if include_top else f'pool_{pooling}'}"
            f"-{h}x{w}-b{batch}-t{threads}")


@pytest.mark.parametrize("case", V3_CASES, ids=v3_case_id)
def test_mobilenet_v3(isa, rng, case):
    """The engine against the float64 reference (BatchNormalization unfolded). With the
    classifier, its logits are checked too (the graph without its softmax), as synthetic
    weights can make the softmax nearly one-hot."""
    model_type, alpha, minimalistic, include_top, pooling, size, batch, threads = case
    arch = f"mobilenet_v3_{model_type}"
    weights = synthetic_weights(arch, alpha, include_top=include_top, minimalistic=minimalistic,
                                seed=int(rng.integers(1 << 31)))
    graph = getattr(mnengine.models, arch)(alpha, size, minimalistic=minimalistic, weights=weights,
                                           include_top=include_top, pooling=pooling)
    x = rng.uniform(-1.0, 1.0, (batch,) + size + (3,)).astype(np.float32)
    y = mnengine.Engine(graph, threads=threads).predict(x)
    if include_top:
        logits = reference.mobilenet_v3(x, weights, model_type, minimalistic, classifier_activation=None)
        expected = reference.softmax(logits)
        assert graph.nodes[-1].op == "softmax"
        without_softmax = dataclasses.replace(graph, nodes=graph.nodes[:-1])
        engine_logits = mnengine.Engine(without_softmax, threads=threads).predict(x)
        assert reference.relative_error(engine_logits, logits) < TOLERANCE
        assert (y.argmax(axis=1) == expected.argmax(axis=1)).all()
    else:
        features = reference.mobilenet_v3(x, weights, model_type, minimalistic, include_top=False)
        expected = {"avg": features.mean(axis=(1, 2)), "max": features.max(axis=(1, 2)), None: features}[pooling]
    assert y.shape == expected.shape
    assert reference.relative_error(y, expected) < TOLERANCE


def _keras_mobilenet_v3(keras, model_type, alpha, minimalistic, include_top, size, weights):
    application = keras.applications.MobileNetV3Small if model_type == "small" else keras.applications.MobileNetV3Large
    model = application(input_shape=size + (3,), alpha=alpha, minimalistic=minimalistic, include_top=include_top,
                        weights=None, include_preprocessing=False)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(list(weights[layer.name].values()))
    return model


@pytest.mark.parametrize("model_type,alpha,minimalistic,include_top,size", [
    ("small", 1.0, False, True, (97, 96)),
    ("small", 0.5, True, False, (64, 65)),
    ("large", 0.75, False, False, (65, 65)),
    ("large", 1.3, True, True, (64, 64)),
])
def test_mobilenet_v3_reference_is_keras(keras, rng, model_type, alpha, minimalistic, include_top, size):
    """The reference is Keras's MobileNetV3: the layers with variables, their order and shapes are
    those mnengine.models.keras_layers lists (so the builders read the weights Keras saves), and
    Keras's model with those weights computes what the reference does."""
    arch = f"mobilenet_v3_{model_type}"
    weights = synthetic_weights(arch, alpha, include_top=include_top, minimalistic=minimalistic, seed=int(rng.integers(1 << 31)))
    model = _keras_mobilenet_v3(keras, model_type, alpha, minimalistic, include_top, size, weights)
    names = {"DepthwiseConv2D": {"kernel": "depthwise_kernel"}}  # Keras 2's name, which the weights use
    layers = [(layer.name, type(layer).__name__,
               {names.get(type(layer).__name__, {}).get(w.path.split("/")[-1], w.path.split("/")[-1]): tuple(w.shape)
                for w in layer.weights})
              for layer in model.layers if layer.weights]
    assert layers == mnengine.models.keras_layers(arch, alpha, include_top=include_top, minimalistic=minimalistic)
    x = rng.uniform(-1.0, 1.0, (2,) + size + (3,)).astype(np.float32)
    expected = reference.mobilenet_v3(x, weights, model_type, minimalistic, include_top=include_top)
    assert reference.relative_error(model.predict(x, verbose=0), expected) < TOLERANCE


@pytest.mark.parametrize("model_type,minimalistic,macs,parameters", [
    ("small", False, 56.5, 2.54), ("small", True, 52.3, 2.04), ("large", False, 216.6, 5.47), ("large", True, 209.1, 3.91),
])
def test_mobilenet_v3_graph(model_type, minimalistic, macs, parameters):
    """The 224x224 graphs' size (Keras's table: Large 217 M multiply-adds, 5.4 M parameters;
    minimalistic 209 M, 3.9 M; Small's figures there are TF-slim's, not the Keras model's) and
    the ops and names MobileNetV3 uses."""
    graph = getattr(mnengine.models, f"mobilenet_v3_{model_type}")(1.0, 224, minimalistic=minimalistic)
    assert round(graph.multiply_adds() / 1e6, 1) == macs
    assert round(graph.parameters() / 1e6, 2) == parameters
    ops = {node.op for node in graph.nodes}
    activations = {node.activation for node in graph.nodes}
    assert ("depthwise5x5" in ops and "multiply" in ops and "hard_swish" in activations) == (not minimalistic)
    assert activations <= ({"linear", "relu"} if minimalistic else {"linear", "relu", "hard_swish", "hard_sigmoid"})
    names = [node.name for node in graph.nodes]
    assert names[:2] == ["conv", "expanded_conv_depthwise"] and names[-4:] == [
        "global_average_pooling2d", "conv_2", "logits", "predictions"]
    if not minimalistic:
        assert "expanded_conv_1_depthwise" in names and "expanded_conv_3_squeeze_excite_conv" in names
        prefix = "expanded_conv_4_" if model_type == "small" else "expanded_conv_13_"  # hard-swish, SE, 5x5, add
        block = [n for n in graph.nodes if n.name.startswith(prefix)]
        assert [(n.name[len(prefix):], n.op, n.activation) for n in block] == [
            ("expand", "conv1x1", "hard_swish"), ("depthwise", "depthwise5x5", "hard_swish"),
            ("squeeze_excite_avg_pool", "global_avg_pool", "linear"), ("squeeze_excite_conv", "conv1x1", "relu"),
            ("squeeze_excite_conv_1", "conv1x1", "hard_sigmoid"), ("squeeze_excite_mul", "multiply", "linear"),
            ("project", "conv1x1", "linear"), ("add", "add", "linear")]
        assert block[5].inputs == [prefix + "depthwise", prefix + "squeeze_excite_conv_1"]
        assert block[7].inputs == [graph.nodes[graph.nodes.index(block[0]) - 1].name, prefix + "project"]
    feature = getattr(mnengine.models, f"mobilenet_v3_{model_type}")(1.0, (97, 96), include_top=False, pooling="avg")
    assert feature.nodes[-1].name == "avg_pool" and feature.input_shape == (97, 96, 3)
