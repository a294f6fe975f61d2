"""The Keras exporter on MobileNetV3 against real Keras: keras.applications MobileNetV3Small and
Large (alpha 0.5, 0.75, 1.0, minimalistic or not, with and without the top, even and odd
sizes, .keras and .h5), models whose input size is not fixed exported at a given size,
weights-only files of Keras 3 and Keras 2, Keras 2 (tf_keras) models, fine-tuned models with a
V3 base, and the hard-swish / hard-sigmoid patterns written by hand. Keras's predict is the
reference; weights are random (nothing can be downloaded here)."""

import collections

import numpy as np
import pytest

import mnengine
from conftest import randomize_weights, run_module
from mnengine.export import UnsupportedModelError, export, from_keras
from test_export import assert_close

pytestmark = pytest.mark.keras


def pixels(rng, shape, batch=2):
    return rng.uniform(0, 255, (batch,) + tuple(shape)).astype(np.float32)


def export_and_compare(model, path, rng, shape=None, **export_args):
    """Exports `path`, compares the engine with model.predict on a random batch of `shape`
    (the model's own by default) and returns the exported graph."""
    out = path.with_suffix(path.suffix + ".bin")
    export(path, out, **export_args)
    x = pixels(rng, shape or model.input_shape[1:])
    assert_close(mnengine.Engine(out, threads=2).predict(x), model.predict(x, verbose=0))
    return mnengine.load_model(out)


def assert_fully_folded(model, graph, softmax):
    """One mnengine operator per convolution, add, pooling and squeeze-excite multiply (plus
    the softmax): BatchNormalization, the activations, the hard sigmoid's arithmetic and the
    padding are all folded; every squeeze-excite gate is its 1x1 convolution's hard_sigmoid."""
    classes = collections.Counter(type(layer).__name__ for layer in model.layers)
    operators = sum(classes[c] for c in ("Conv2D", "DepthwiseConv2D", "Add", "GlobalAveragePooling2D",
                                         "GlobalMaxPooling2D", "Multiply")) + softmax
    assert len(graph.nodes) == operators, collections.Counter(node.op for node in graph.nodes)
    gates = [node for node in graph.nodes if node.name.endswith("squeeze_excite_conv_1")]
    assert len(gates) == classes["Multiply"]
    assert all(node.activation == "hard_sigmoid" for node in gates)


V3_APPLICATIONS = [
    # application, alpha, minimalistic, include_top, pooling, size
    ("MobileNetV3Small", 1.0, False, True, None, 96),
    ("MobileNetV3Small", 0.75, False, False, "avg", 97),
    ("MobileNetV3Small", 0.5, True, True, None, 97),
    ("MobileNetV3Small", 1.0, True, False, None, 96),
    ("MobileNetV3Large", 1.0, False, True, None, 97),
    ("MobileNetV3Large", 0.75, False, False, "max", 96),
    ("MobileNetV3Large", 0.5, False, True, None, 96),
    ("MobileNetV3Large", 0.75, True, True, None, 97),
]


@pytest.mark.parametrize("application, alpha, minimalistic, include_top, pooling, size", V3_APPLICATIONS)
def test_keras_applications_v3(keras, tmp_path, rng, application, alpha, minimalistic, include_top, pooling, size):
    """A keras.applications MobileNetV3 with its input rescaling, saved as .keras and as .h5:
    the exported file takes the pixels as they are and equals Keras's predict."""
    model = getattr(keras.applications, application)(
        input_shape=(size, size, 3), alpha=alpha, minimalistic=minimalistic, include_top=include_top,
        pooling=pooling, weights=None, classes=10)
    randomize_weights(model, rng, biases=True)
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"model{suffix}"
        model.save(path)
        graph = export_and_compare(model, path, rng)
        assert graph.preprocessing == "none"
        # The Rescaling at the input is the one affine node left.
        assert_fully_folded(model, graph, include_top + 1)
        ops = {node.op for node in graph.nodes}
        assert ("depthwise5x5" in ops) == (not minimalistic) and ("multiply" in ops) == (not minimalistic)
        assert "hard_swish" not in ops  # always fused into the layer before it


def test_large_at_224(keras, tmp_path, rng):
    model = keras.applications.MobileNetV3Large(input_shape=(224, 224, 3), weights=None)
    randomize_weights(model, rng, biases=True)
    model.save(tmp_path / "large.keras")
    graph = export_and_compare(model, tmp_path / "large.keras", rng)
    assert graph.output_shape == (1, 1, 1000) and graph.labels[0] == "tench"


def test_free_input_size_exports_at_the_given_size(keras, tmp_path, rng):
    """MobileNetV3's default input_shape=None: the model takes any size (its stride-2 paddings
    are those Keras computes for an unknown size), so the export asks for one - size= in
    Python, --size N or --size HxW on the command line - and fails without it, naming --size."""
    model = keras.applications.MobileNetV3Small(alpha=0.75, weights=None, classes=10)
    assert model.input_shape == (None, None, None, 3)
    randomize_weights(model, rng, biases=True)
    model.save(tmp_path / "free.keras")
    graph = export_and_compare(model, tmp_path / "free.keras", rng, shape=(97, 97, 3), size=97)
    assert graph.input_shape == (97, 97, 3)

    out = tmp_path / "free.bin"
    with pytest.raises(UnsupportedModelError, match=r"input size is not fixed \(input shape \(None, None, 3\)\).*--size"):
        export(tmp_path / "free.keras", out)
    result = run_module("mnengine.export", tmp_path / "free.keras", "-o", out)
    assert result.returncode == 1 and "--size N or --size HxW" in result.stderr, result.stderr
    assert not out.exists()

    result = run_module("mnengine.export", tmp_path / "free.keras", "-o", out, "--size", "80x112")
    assert result.returncode == 0, result.stderr
    x = pixels(rng, (80, 112, 3))
    assert_close(mnengine.Engine(out).predict(x), model.predict(x, verbose=0))

    for size in ("80x", "0", "big"):
        result = run_module("mnengine.export", tmp_path / "free.keras", "-o", out, "--size", size)
        assert result.returncode == 2 and "size must be a positive integer N or HxW" in result.stderr


def test_fixed_input_size_refuses_another(keras, tmp_path):
    model = keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), weights=None, minimalistic=True)
    model.save(tmp_path / "fixed.keras")
    with pytest.raises(UnsupportedModelError, match="the model takes 96x96 inputs, not the 128x128 of --size"):
        export(tmp_path / "fixed.keras", tmp_path / "fixed.bin", size=128)
    export(tmp_path / "fixed.keras", tmp_path / "fixed.bin", size=(96, 96))


def test_from_live_model_with_free_size(keras, tmp_path, rng):
    model = keras.applications.MobileNetV3Large(alpha=0.5, weights=None, include_top=False, pooling="avg")
    randomize_weights(model, rng, biases=True)
    summary = from_keras(model, tmp_path / "live.bin", size=(96, 128))
    assert summary.input_shape == (96, 128, 3)
    x = pixels(rng, (96, 128, 3))
    assert_close(mnengine.Engine(tmp_path / "live.bin").predict(x), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="size must be a positive integer"):
        from_keras(model, tmp_path / "bad.bin", size=(96,))


@pytest.mark.parametrize("application, arch, alpha, minimalistic, include_top, size", [
    ("MobileNetV3Small", "mobilenet_v3_small", 1.0, False, True, 96),
    ("MobileNetV3Large", "mobilenet_v3_large", 0.75, True, False, 97),
])
def test_keras3_weights_only_v3(keras, tmp_path, rng, application, arch, alpha, minimalistic, include_top, size):
    """model.save_weights("m.weights.h5") of a Keras 3 MobileNetV3, exported with --arch,
    --alpha, --size (and --minimalistic) in a process that cannot import Keras: the graph of
    mnengine.models' builder with those weights, which takes MobileNet's x / 127.5 - 1
    preprocessing for the model's own Rescaling."""
    model = getattr(keras.applications, application)(
        input_shape=(size, size, 3), alpha=alpha, minimalistic=minimalistic, include_top=include_top,
        weights=None, classes=7)
    randomize_weights(model, rng, biases=True)
    model.save_weights(tmp_path / "m.weights.h5")
    out = tmp_path / "m.bin"
    result = run_module("mnengine.export", tmp_path / "m.weights.h5", "-o", out, "--arch", arch, "--alpha", alpha,
                        "--size", size, *(["--minimalistic"] if minimalistic else []),
                        unimportable=("tensorflow", "keras", "tf_keras"))
    assert result.returncode == 0, result.stderr
    assert f"(Keras counts {model.count_params():,} before" in result.stdout
    engine = mnengine.Engine(out)
    assert engine.preprocessing == "mobilenet"
    x = pixels(rng, (size, size, 3))
    assert_close(engine.predict(x.astype(np.uint8)), model.predict(x.astype(np.uint8).astype(np.float32), verbose=0))
    assert_close(engine.predict(x / 127.5 - 1), model.predict(x, verbose=0))


@pytest.mark.parametrize("application, arch, alpha, include_top, size", [
    ("MobileNetV3Small", "mobilenet_v3_small", 0.75, True, 97),
    ("MobileNetV3Large", "mobilenet_v3_large", 1.0, False, 96),
])
def test_keras2_weights_only_v3(tf_keras, tmp_path, rng, application, arch, alpha, include_top, size):
    """A Keras 2 weights-only .h5 (the form of keras.applications' MobileNetV3 release files),
    whose layers Keras 2 named otherwise (Conv/BatchNorm, expanded_conv_1/expand, Logits)."""
    model = getattr(tf_keras.applications, application)(
        input_shape=(size, size, 3), alpha=alpha, include_top=include_top, weights=None, classes=5)
    randomize_weights(model, rng, biases=True)
    model.save_weights(tmp_path / "m.h5")
    export(tmp_path / "m.h5", tmp_path / "m.bin", arch=arch, alpha=alpha, size=size)
    x = pixels(rng, (size, size, 3))
    assert_close(mnengine.Engine(tmp_path / "m.bin").predict(x / 127.5 - 1), model.predict(x, verbose=0))
    # The file's squeeze-excite layers are none of the minimalistic model's.
    with pytest.raises(UnsupportedModelError, match=rf"layers that {arch} does not have \(expanded_conv(_\d+)?/squeeze_excite/Conv, "):
        export(tmp_path / "m.h5", tmp_path / "wrong.bin", arch=arch, alpha=alpha, size=size, minimalistic=True)
    assert not (tmp_path / "wrong.bin").exists()


@pytest.mark.parametrize("application, alpha, include_top, pooling, size", [
    ("MobileNetV3Small", 1.0, True, None, 97),
    ("MobileNetV3Large", 0.75, False, "avg", 96),
])
def test_keras2_full_model_v3(tf_keras, tmp_path, rng, application, alpha, include_top, pooling, size):
    """Keras 2's MobileNetV3 writes hard-swish as Multiply([x, hard_sigmoid(x)]) and the hard
    sigmoid as TFOpLambda layers (tf.__operators__.add, tf.math.multiply) around a ReLU(6):
    they fold as in Keras 3's model."""
    model = getattr(tf_keras.applications, application)(
        input_shape=(size, size, 3), alpha=alpha, include_top=include_top, pooling=pooling, weights=None, classes=10)
    randomize_weights(model, rng, biases=True)
    model.save(tmp_path / "keras2.h5")
    graph = export_and_compare(model, tmp_path / "keras2.h5", rng)
    classes = collections.Counter(type(layer).__name__ for layer in model.layers)
    assert classes["TFOpLambda"] > 0
    ops = collections.Counter(node.op for node in graph.nodes)
    assert ops["hard_swish"] == 0 and ops["multiply"] == sum(
        1 for layer in model.layers if "squeeze_excite" in layer.name and type(layer).__name__ == "Multiply")
    assert any(node.activation == "hard_swish" for node in graph.nodes)


def test_fine_tuned_v3_small(keras, tmp_path, rng):
    """A MobileNetV3Small base nested in a Functional model with a 5-class head, trained a few
    steps, saved as .keras and as .h5."""
    base = keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.75)
    randomize_weights(base, rng, biases=True)
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(pixels(rng, (96, 96, 3), 8), rng.integers(0, 5, 8), batch_size=4, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"flower {i}\n" for i in range(5)))
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"flowers{suffix}")
        export_and_compare(model, tmp_path / f"flowers{suffix}", rng, labels=labels)
        assert mnengine.Engine(tmp_path / f"flowers{suffix}.bin").labels[4] == "flower 4"


def test_sequential_v3_large_base_of_free_size_with_hard_activations(keras, tmp_path, rng):
    """A Sequential model: a MobileNetV3Large base without its own rescaling and of free input
    size (the outer Input fixes it), then pooling, BatchNormalization, a Dense with hard_swish
    and one with hard_sigmoid (folded: relu6(x + 3) / 6 of the dense layer's output)."""
    base = keras.applications.MobileNetV3Large(include_top=False, weights=None, alpha=0.5,
                                               include_preprocessing=False)
    model = keras.Sequential([
        keras.Input((97, 97, 3)),
        base,
        keras.layers.GlobalMaxPooling2D(),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(32, activation="hard_swish"),
        keras.layers.Dense(3, activation="hard_sigmoid"),
    ])
    randomize_weights(model, rng, biases=True)
    model.save(tmp_path / "seq.keras")
    out = tmp_path / "seq.bin"
    export(tmp_path / "seq.keras", out)
    graph = mnengine.load_model(out)
    assert graph.preprocessing == "mobilenet" and [n.activation for n in graph.nodes[-2:]] == ["hard_swish", "hard_sigmoid"]
    x = rng.uniform(-1, 1, (2, 97, 97, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    assert 0 < np.mean((expected > 0) & (expected < 1))  # not all saturated: the gate is tested
    assert_close(mnengine.Engine(out).predict(x), expected)


def test_hard_swish_and_hard_sigmoid_written_by_hand(keras, tmp_path, rng):
    """The patterns wherever they occur: hard-swish after an add (a node of its own),
    x * relu6(x + 3) / 6 in Keras 3 operations on a tensor that cannot take it as an
    activation, Activation("hard_sigmoid") as a squeeze-excite gate, a hard sigmoid that is
    no gate (per-channel affine nodes), and further arithmetic with constants (x - c, c - x)."""
    inputs = keras.Input((33, 31, 3))
    x = keras.layers.Conv2D(24, 3, strides=2, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("hard_swish")(x)
    y = keras.layers.Add()([x, keras.layers.DepthwiseConv2D(5, padding="same")(x)])
    y = keras.layers.Activation("hard_swish")(y)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
    gate = keras.layers.Conv2D(24, 1, activation="hard_sigmoid")(keras.layers.Conv2D(8, 1, activation="relu")(gate))
    z = keras.layers.Multiply()([y, gate])
    z = keras.layers.Multiply()([z, keras.layers.ReLU(6.0)(z + 3.0) / 6.0])
    q = keras.layers.ReLU(6.0)(z + 3.0) * (1.0 / 6.0)
    q = 6.0 - (q - 0.5) * 2.0
    q = keras.layers.DepthwiseConv2D(5, strides=2, padding="same")(q)
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(q))
    model = keras.Model(inputs, outputs)
    randomize_weights(model, rng, biases=True)
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"hand{suffix}")
        graph = export_and_compare(model, tmp_path / f"hand{suffix}", rng, shape=(33, 31, 3))
        counts = collections.Counter(node.op for node in graph.nodes)
        assert counts["hard_swish"] == 2 and counts["multiply"] == 1 and counts["depthwise5x5"] == 2


def test_keras2_hard_sigmoid_is_its_own(tf_keras, tmp_path, rng):
    """Keras 2's hard_sigmoid is clip(0.2 x + 0.5, 0, 1), not Keras 3's relu6(x + 3) / 6: a
    Keras 2 file's gate is folded with its own slope."""
    inputs = tf_keras.Input((16, 16, 3))
    x = tf_keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(6, activation="hard_sigmoid")(x))
    randomize_weights(model, rng, biases=True)
    # Keras's own initial kernels are not seeded: units 0 and 1 make both ends of the clip
    # sure (1 and 0); the others' slope is what tells the two definitions apart.
    kernel, bias = (w * 3 for w in model.layers[-1].get_weights())
    kernel[:, :2] = 0
    bias[:2] = [50, -50]
    model.layers[-1].set_weights([kernel, bias])
    model.save(tmp_path / "keras2.h5")
    x = rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    assert np.any((expected[:, 2:] > 0) & (expected[:, 2:] < 1))
    export(tmp_path / "keras2.h5", tmp_path / "keras2.bin")
    assert_close(mnengine.Engine(tmp_path / "keras2.bin").predict(x), expected)


@pytest.mark.parametrize("build, message", [
    (lambda k, x: k.layers.Multiply(name="product")([x, k.layers.Conv2D(8, 1)(x)]),
     r"'product' \(Multiply\): multiplies shapes \(16, 16, 8\) and \(16, 16, 8\)"),
    (lambda k, x: k.ops.exp(x), r"\(Exp\): this operation is not supported"),
    (lambda k, x: k.layers.Dense(4, activation="gelu", name="gelu_head")(x), r"'gelu_head' \(Dense\): activation 'gelu'"),
    (lambda k, x: 1.0 / x, r"Divide with the constant first is not supported"),
])
def test_unsupported_v3_like_layers_fail_naming_the_layer(keras, tmp_path, build, message):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 1)(inputs)
    keras.Model(inputs, build(keras, x)).save(tmp_path / "m.keras")
    with pytest.raises(UnsupportedModelError, match=message):
        export(tmp_path / "m.keras", tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()
