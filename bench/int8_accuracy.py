"""How closely int8 models follow their float32 originals on real photos: mnengine's int8 export
against LiteRT's int8 conversion of the same Keras model, calibrated on the same images.

    python bench/int8_accuracy.py [--fixtures ../shared/fixtures]

For each ImageNet-trained fixture model the 19 photos are split in two halves; each half
calibrates (mnengine: ``python -m mnengine.export --int8 --calibration``; LiteRT: TensorFlow's
converter, full-integer, with the same preprocessed images as representative dataset) and the
other half is classified, both ways, so every photo is classified by models that never saw
it. Against the float32 model (mnengine's, equal to Keras's within 1e-4): top-1 agreement on
all photos and on those the float model classifies with probability above 0.5, top-5 overlap,
and the mean absolute probability difference over all classes and for the float top-1 class.
Needs TensorFlow (`pip install ".[test]"`) and ai-edge-litert (the `compare` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODELS = {
    "mobilenet_2_5_128_tf.h5": ("mobilenet_v1", 0.25, 128),
    "mobilenet_2_5_224_tf.h5": ("mobilenet_v1", 0.25, 224),
    "mobilenet_v1_0.5_160_qat_folded.h5": ("mobilenet_v1", 0.5, 160),
    "mobilenet_v2_1.0_224_qat_folded.h5": ("mobilenet_v2", 1.0, 224),
}
PHOTO_SUFFIXES = (".bmp", ".jpg", ".png")


def export(args: list) -> None:
    result = subprocess.run([sys.executable, "-m", "mnengine.export", *map(str, args)], capture_output=True,
                            text=True, cwd=tempfile.gettempdir())
    if result.returncode != 0:
        raise RuntimeError(result.stderr)


def litert_int8(weights: Path, arch: str, alpha: float, size: int, calibration: np.ndarray):
    """LiteRT's full-integer int8 model of the Keras model, float32 in and out, as a function."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from mnengine.bench.peers import quiet_native_output

    application = keras.applications.MobileNet if arch == "mobilenet_v1" else keras.applications.MobileNetV2
    model = application(alpha=alpha, input_shape=(size, size, 3), weights=str(weights))
    with quiet_native_output():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        flatbuffer = converter.convert()
    interpreter = Interpreter(model_content=flatbuffer, num_threads=2)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def predict(x: np.ndarray) -> np.ndarray:
        rows = []
        for image in x:
            interpreter.set_tensor(input_index, image[None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(output_index).reshape(-1).copy())
        return np.stack(rows)

    return predict


def agreement(float_p: np.ndarray, int8_p: np.ndarray) -> dict:
    top1_f, top1_q = float_p.argmax(1), int8_p.argmax(1)
    confident = float_p.max(1) > 0.5
    top5_f = np.argsort(-float_p, axis=1)[:, :5]
    top5_q = np.argsort(-int8_p, axis=1)[:, :5]
    overlap = [len(set(a) & set(b)) / 5 for a, b in zip(top5_f, top5_q)]
    rows = np.arange(len(float_p))
    return {
        "photos": int(len(float_p)),
        "top1_agree": int((top1_f == top1_q).sum()),
        "confident": int(confident.sum()),
        "confident_top1_agree": int((top1_f == top1_q)[confident].sum()),
        "top5_overlap": float(np.mean(overlap)),
        "mean_abs_dp": float(np.abs(float_p - int8_p).mean()),
        "mean_abs_dp_top1": float(np.abs(float_p[rows, top1_f] - int8_p[rows, top1_f]).mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "fixtures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import mnengine

    photos = sorted(p for p in (args.fixtures / "photos").iterdir() if p.suffix in PHOTO_SUFFIXES)
    halves = (photos[0::2], photos[1::2])
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, alpha, size) in MODELS.items():
            weights = args.fixtures / "keras" / name
            float_bin = Path(tmp) / "float.bin"
            export([weights, "-o", float_bin, "--arch", arch, "--alpha", alpha, "--size", size])
            float_engine = mnengine.Engine(float_bin)
            float_p, mnengine_p, litert_p = [], [], []
            for calibrate, test in (halves, halves[::-1]):
                int8_bin = Path(tmp) / "int8.bin"
                export([weights, "-o", int8_bin, "--arch", arch, "--alpha", alpha, "--size", size, "--int8",
                        "--calibration", *calibrate])
                x = float_engine.preprocess(test)
                float_p.append(float_engine.predict(x))
                mnengine_p.append(mnengine.Engine(int8_bin).predict(x))
                litert = litert_int8(weights, arch, alpha, size, float_engine.preprocess(calibrate))
                litert_p.append(litert(x))
            float_p, mnengine_p, litert_p = map(np.concatenate, (float_p, mnengine_p, litert_p))
            report[name] = {"mnengine int8": agreement(float_p, mnengine_p), "LiteRT int8": agreement(float_p, litert_p)}
            print(f"{name}: done", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("| model | int8 by | top-1 = float (all) | top-1 = float (float p > 0.5) | top-5 overlap | "
          "mean abs dp (all classes) | mean abs dp (float top-1) |")
    print("|---|---|---|---|---|---|---|")
    for name, results in report.items():
        for who, r in results.items():
            print(f"| {name} | {who} | {r['top1_agree']}/{r['photos']} | {r['confident_top1_agree']}/{r['confident']} | "
                  f"{r['top5_overlap']:.3f} | {r['mean_abs_dp']:.2e} | {r['mean_abs_dp_top1']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
