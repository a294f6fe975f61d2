"""The Keras exporter against real Keras: every keras.applications MobileNet (v1 and v2, every
alpha, two input sizes, .keras and .h5), models built on them with custom heads, a fine-tuned
model, a Keras 2 (tf_keras) model, and models it must refuse. Keras's predict is the reference.
Weights are random (nothing can be downloaded here) with BatchNormalization statistics drawn
from realistic ranges."""

import collections
import re

import numpy as np
import pytest

import mnengine
from conftest import randomize_weights, run_module
from reference import relative_error
from mnengine.export import UnsupportedModelError, export, from_keras, imagenet_labels

pytestmark = pytest.mark.keras


def assert_close(got, expected):
    """mnengine's outputs equal Keras's to relative error < 1e-4, with the same argmax per image."""
    batch = len(expected)
    got, expected = np.reshape(got, (batch, -1)), np.reshape(expected, (batch, -1))
    error = relative_error(got, expected)
    assert error < 1e-4, error
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def assert_matches_keras(model, path, rng, batch=2, **export_args):
    """Exports `path` and compares mnengine with model.predict on one random batch."""
    out = path.with_suffix(".bin")
    export(path, out, **export_args)
    x = rng.uniform(-1, 1, (batch,) + tuple(model.input_shape[1:])).astype(np.float32)
    assert_close(mnengine.Engine(out, threads=2).predict(x), model.predict(x, verbose=0))
    return out


APPLICATIONS = [("MobileNet", alpha) for alpha in (0.25, 0.5, 0.75, 1.0)] + [
    ("MobileNetV2", alpha) for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
]


@pytest.mark.parametrize("size", [96, 131])
@pytest.mark.parametrize("application, alpha", APPLICATIONS)
def test_keras_applications(keras, tmp_path, rng, application, alpha, size):
    model = getattr(keras.applications, application)(alpha=alpha, input_shape=(size, size, 3), weights=None)
    randomize_weights(model, rng)
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"model{suffix}"
        model.save(path)
        out = assert_matches_keras(model, path, rng)
        assert mnengine.Engine(out).labels == imagenet_labels()


@pytest.mark.parametrize("application, pooling", [("MobileNet", None), ("MobileNetV2", "avg"), ("MobileNet", "max")])
def test_feature_extractors(keras, tmp_path, rng, application, pooling):
    model = getattr(keras.applications, application)(
        input_shape=(64, 80, 3), include_top=False, pooling=pooling, weights=None, alpha=0.5)
    randomize_weights(model, rng)
    model.save(tmp_path / "model.keras")
    assert_matches_keras(model, tmp_path / "model.keras", rng)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_fine_tuned_v2_with_37_classes(keras, tmp_path, rng, suffix):
    """A MobileNetV2 base nested in a Functional model, a 37-class head, trained a few steps."""
    base = keras.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights=None, alpha=0.35)
    randomize_weights(base, rng)
    inputs = keras.Input((160, 160, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(37, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(rng.uniform(-1, 1, (16, 160, 160, 3)), rng.integers(0, 37, 16), batch_size=8, epochs=2, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"breed {i}" for i in range(37)) + "\n")
    model.save(tmp_path / f"pets{suffix}")
    out = assert_matches_keras(model, tmp_path / f"pets{suffix}", rng, labels=labels)
    assert mnengine.Engine(out).labels[36] == "breed 36"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sequential_head_with_batch_norm_relu_and_sigmoid(keras, tmp_path, rng, suffix):
    """A Sequential model: a Rescaling of the input, the base, and a head of pooling,
    BatchNormalization, Dense, ReLU6, Reshape, 1x1 Conv2D, Flatten and sigmoid."""
    base = keras.applications.MobileNet(input_shape=(128, 128, 3), include_top=False, weights=None, alpha=0.25)
    randomize_weights(base, rng)
    model = keras.Sequential([
        keras.Input((128, 128, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1),
        base,
        keras.layers.GlobalMaxPooling2D(),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(64),
        keras.layers.ReLU(max_value=6),
        keras.layers.Reshape((1, 1, 64)),
        keras.layers.Conv2D(5, 1),
        keras.layers.Flatten(),
        keras.layers.Activation("sigmoid"),
    ])
    randomize_weights(model, rng)
    model.save(tmp_path / f"model{suffix}")
    out = assert_matches_keras(model, tmp_path / f"model{suffix}", rng)
    engine = mnengine.Engine(out)
    assert engine.preprocessing == "none"  # the model rescales its own input: predict passes pixels as they are
    pixels = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    assert_close(engine.predict(pixels), model.predict(pixels.astype(np.float32), verbose=0))


def test_rescaling_in_the_head_is_not_preprocessing(keras, tmp_path, rng):
    """A Rescaling after the classifier (temperature scaling) is arithmetic on the logits, not
    the model preprocessing its own input: the file keeps MobileNet's preprocessing, so
    predict on 0..255 pixels equals Keras on x / 127.5 - 1."""
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35)
    randomize_weights(base, rng)
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    x = keras.layers.Dense(6)(x)
    x = keras.layers.Rescaling(1 / 1.7, name="temperature")(x)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    model.save(tmp_path / "model.keras")
    out = assert_matches_keras(model, tmp_path / "model.keras", rng)
    engine = mnengine.Engine(out)
    assert engine.preprocessing == "mobilenet"
    pixels = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    assert_close(engine.predict(pixels), model.predict(pixels / 127.5 - 1, verbose=0))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_flatten_dense_head_at_96(keras, tmp_path, rng, suffix):
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.5)
    randomize_weights(base, rng)
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Flatten()(base(inputs))
    x = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, x)
    model.save(tmp_path / f"model{suffix}")
    assert_matches_keras(model, tmp_path / f"model{suffix}", rng)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_batch_norm_epsilon_is_the_layers_own(keras, tmp_path, rng, suffix):
    """BatchNormalization(epsilon=1e-5), not Keras's default 1e-3, after each layer of a
    backbone-like stack (a strided 3x3 convolution, a depthwise one, a 1x1 convolution with a
    bias of its own) and in a head after pooling, where nothing precedes it to fold into;
    then Dense(activation="sigmoid"). Moving variances of 0.001 to 0.01, as in channels that
    barely vary, make the epsilon matter: with 1e-3 instead, a channel's scale is off by up
    to 40 %. Gammas in proportion to the standard deviations keep each BatchNormalization's
    output, and so the sigmoid's input, at the usual scale rather than saturated."""
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    x = keras.layers.ReLU(max_value=6)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    x = keras.layers.ReLU(max_value=6)(x)
    x = keras.layers.Conv2D(24, 1)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5)(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid")(x))
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            channels = layer.gamma.shape
            variance = rng.uniform(0.001, 0.01, channels)
            layer.set_weights([rng.uniform(0.5, 1.5, channels) * np.sqrt(variance), rng.normal(0, 0.2, channels),
                               rng.normal(0, 0.03, channels), variance])
    model.save(tmp_path / f"model{suffix}")
    assert_matches_keras(model, tmp_path / f"model{suffix}", rng)


def test_from_live_model(keras, tmp_path, rng):
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(64, 64, 3), weights=None, classes=7)
    randomize_weights(model, rng)
    summary = from_keras(model, tmp_path / "live.bin")
    assert summary.output_shape == (1, 1, 7) and summary.parameters > 0
    x = rng.uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(mnengine.Engine(tmp_path / "live.bin").predict(x), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-6)


def summary_field(stdout, name):
    """The value of one `  name: value` line of the export command's summary."""
    match = re.search(rf"^  {re.escape(name)}:\s+(.*)$", stdout, re.M)
    assert match, (name, stdout)
    return match.group(1)


def count(text):
    """1,234,567 -> 1234567"""
    return int(text.replace(",", ""))


def test_cli_with_labels_prints_a_checked_summary(keras, tmp_path, rng):
    """`python -m mnengine.export MODEL -o out.bin --labels FILE` puts the labels in the file and
    prints a summary whose figures agree with what Keras says of the same model:

    - layers: Keras's (model.layers without the InputLayer), and one mnengine operator per
      convolution, dense, add and pooling layer plus the Dense's softmax: BatchNormalization,
      ReLU and ZeroPadding2D fold into them;
    - parameters: Keras's count_params(), and stored 3 fewer per BatchNormalization channel:
      its 4 values per channel (gamma, beta, moving mean and variance) fold into one bias of
      the bias-free convolution before it;
    - multiply-adds: each convolution's and dense layer's output positions times its kernel's
      size, from Keras's shapes; the file's size; the check it ran.
    """
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=5)
    randomize_weights(model, rng)
    model.save(tmp_path / "flowers.keras")
    names = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    out = tmp_path / "flowers.bin"
    result = run_module("mnengine.export", tmp_path / "flowers.keras", "-o", out, "--labels", tmp_path / "labels.txt")
    assert result.returncode == 0, result.stderr
    stdout = result.stdout
    assert mnengine.Engine(out).labels == names
    assert summary_field(stdout, "labels") == f"5 from {tmp_path / 'labels.txt'}"
    assert f"(keras, Keras {keras.__version__}) -> {out}" in stdout

    classes = collections.Counter(type(layer).__name__ for layer in model.layers)
    operators = sum(classes[c] for c in ("Conv2D", "DepthwiseConv2D", "Dense", "Add", "GlobalAveragePooling2D")) + 1
    layers = re.fullmatch(r"(\d+) mnengine operators from (\d+) Keras layers \(.*\)", summary_field(stdout, "layers"))
    assert layers and (int(layers[1]), int(layers[2])) == (operators, len(model.layers) - 1), stdout

    batch_norm_channels = sum(layer.gamma.shape[0] for layer in model.layers if type(layer).__name__ == "BatchNormalization")
    parameters = re.fullmatch(r"([\d,]+) stored \(Keras counts ([\d,]+) before .*\)", summary_field(stdout, "parameters"))
    assert parameters, stdout
    assert count(parameters[2]) == model.count_params()
    assert count(parameters[1]) == model.count_params() - 3 * batch_norm_channels

    multiply_adds = sum(int(np.prod(layer.output.shape[1:-1])) * int(np.prod(layer.kernel.shape))
                        for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense"))
    assert summary_field(stdout, "multiply-adds") == f"{multiply_adds:,} per image"
    assert summary_field(stdout, "file size") == f"{out.stat().st_size:,} bytes"
    assert summary_field(stdout, "check") == "loaded and ran on a random input: (5,) finite outputs"


def test_keras2_full_model_h5(tf_keras, tmp_path, rng):
    """A full model saved by Keras 2 (tf_keras) in HDF5, with its Keras 2 config layout."""
    model = tf_keras.applications.MobileNetV2(alpha=0.5, input_shape=(96, 96, 3), weights=None)
    randomize_weights(model, rng)
    model.save(tmp_path / "keras2.h5")
    assert_matches_keras(model, tmp_path / "keras2.h5", rng)


@pytest.mark.parametrize("application, arch, alpha, size, include_top", [
    ("MobileNetV2", "mobilenet_v2", 0.35, 96, True),
    ("MobileNetV2", "mobilenet_v2", 1.0, 131, False),
    ("MobileNet", "mobilenet_v1", 0.5, 128, True),
])
def test_keras3_weights_only_file(keras, tmp_path, rng, application, arch, alpha, size, include_top):
    """model.save_weights("m.weights.h5") of Keras 3, whose groups are named by class and
    position rather than by layer, exported with --arch/--alpha/--size in a process that
    cannot import TensorFlow or Keras, equals Keras's predict."""
    model = getattr(keras.applications, application)(
        alpha=alpha, input_shape=(size, size, 3), weights=None, include_top=include_top, classes=7)
    randomize_weights(model, rng)
    model.save_weights(tmp_path / "m.weights.h5")
    out = tmp_path / "m.bin"
    result = run_module("mnengine.export", tmp_path / "m.weights.h5", "-o", out, "--arch", arch, "--alpha", alpha,
                        "--size", size, unimportable=("tensorflow", "keras", "tf_keras"))
    assert result.returncode == 0, result.stderr
    assert "(weights-only .weights.h5, Keras 3)" in result.stdout
    assert f"(Keras counts {model.count_params():,} before" in result.stdout
    x = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    assert_close(mnengine.Engine(out).predict(x), model.predict(x, verbose=0))


def test_weights_only_file_of_a_model_with_its_own_layers_fails_cleanly(keras, tf_keras, tmp_path):
    """Weights-only files of models that add a classifier to a MobileNetV2 base, from Keras 3
    (the base nested) and Keras 2 (the head on the base's output, all layers at the top): the
    architecture is not the file's, and exporting it without the head would give a different
    model, so the export fails naming the layers it does not know, and writes nothing."""
    model = keras.Sequential([
        keras.Input((96, 96, 3)),
        keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, name="flowers"),
    ])
    model.save_weights(tmp_path / "keras3.weights.h5")
    base = tf_keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None, alpha=0.35)
    head = tf_keras.layers.Dense(3, name="flowers")(tf_keras.layers.GlobalAveragePooling2D()(base.output))
    tf_keras.Model(base.input, head).save_weights(tmp_path / "keras2.h5")
    for weights, unknown in (("keras3.weights.h5", "functional"), ("keras2.h5", "flowers")):
        out = tmp_path / (weights + ".bin")
        with pytest.raises(UnsupportedModelError, match=f"layers that mobilenet_v2 does not have \\({unknown}\\)"):
            export(tmp_path / weights, out, arch="mobilenet_v2", alpha=0.35, size=96)
        assert not out.exists()


def test_unsupported_layer_fails_cleanly(keras, tmp_path):
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(7, padding="same", name="wide_depthwise")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    model.save(tmp_path / "wide.keras")
    out = tmp_path / "wide.bin"
    with pytest.raises(UnsupportedModelError, match=r"'wide_depthwise' \(DepthwiseConv2D\).*3x3 and 5x5"):
        export(tmp_path / "wide.keras", out)
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "wide.keras"]


def test_cli_reports_unsupported_recurrent_layer(keras, tmp_path):
    """The first layer mnengine cannot run is an LSTM: a ConvLSTM1D reading the rows of the
    image as time steps, after a supported 1x1 convolution. (A plain LSTM needs a 3D tensor,
    and every layer that makes one from an image is itself unsupported.) The command names the
    LSTM and its class, lists what is supported and writes nothing."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 1, name="pointwise")(inputs)
    x = keras.layers.ConvLSTM1D(4, 3, name="rows_as_time")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    keras.Model(inputs, x).save(tmp_path / "lstm.keras")
    result = run_module("mnengine.export", tmp_path / "lstm.keras", "-o", tmp_path / "lstm.bin")
    assert result.returncode == 1
    assert "layer 'rows_as_time' (ConvLSTM1D): this layer is not supported" in result.stderr, result.stderr
    assert "supported: InputLayer, Conv2D, DepthwiseConv2D" in result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == [tmp_path / "lstm.keras"]
