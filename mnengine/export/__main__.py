"""python -m mnengine.export MODEL -o model.bin [--labels FILE] [--size N|HxW] [--arch A --alpha X --size S
[--minimalistic]]
[--int8 --calibration PHOTOS [--calibration-count N]]"""

import argparse
import sys

from . import ARCHITECTURES, UnsupportedModelError, export, input_size
from ..quantize import DEFAULT_CALIBRATION_COUNT
from ..errors import ModelFormatError


def _size(text: str):
    try:
        return input_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnengine.export",
        description="Convert a Keras MobileNet v1/v2/v3 (.keras, .h5, or weights-only .h5 / .weights.h5) "
                    "into an mnengine .bin.")
    parser.add_argument("model", help="the Keras file: .keras, a full-model .h5, or a weights-only .h5 (Keras 2) "
                                      "or .weights.h5 (Keras 3)")
    parser.add_argument("-o", "--output", required=True, help="the .bin to write")
    parser.add_argument("--labels", help="class names, one per line (default: ImageNet's for 1000 classes)")
    parser.add_argument("--arch", choices=ARCHITECTURES, help="architecture of a weights-only file")
    parser.add_argument("--alpha", type=float, help="width multiplier of a weights-only file")
    parser.add_argument("--size", type=_size, metavar="N|HxW",
                        help="input size in pixels, N (square) or HxW: of a weights-only file, or to export a model "
                             "whose input size is not fixed (input_shape=None) at")
    parser.add_argument("--minimalistic", action="store_true",
                        help="a weights-only file of a minimalistic MobileNetV3 (no squeeze-excite, ReLU, 3x3)")
    parser.add_argument("--int8", action="store_true",
                        help="quantize to int8 (TFLite's scheme), calibrated on --calibration images")
    parser.add_argument("--calibration", nargs="+", metavar="PHOTOS",
                        help="calibration images for --int8: a folder (searched recursively), a glob, or files")
    parser.add_argument("--calibration-count", type=int, default=DEFAULT_CALIBRATION_COUNT, metavar="N",
                        help=f"use at most N calibration images, spread over the sorted list "
                             f"(default {DEFAULT_CALIBRATION_COUNT})")
    args = parser.parse_args(argv)
    calibration = args.calibration[0] if args.calibration and len(args.calibration) == 1 else args.calibration
    try:
        summary = export(args.model, args.output, labels=args.labels, arch=args.arch, alpha=args.alpha, size=args.size,
                         minimalistic=args.minimalistic, int8=args.int8, calibration=calibration,
                         calibration_count=args.calibration_count)
    except (UnsupportedModelError, ModelFormatError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"mnengine.export: error: {e}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
