"""python -m mnengine.export MODEL -o model.bin [--labels FILE] [--arch A --alpha X --size S]"""

import argparse
import sys

from . import ARCHITECTURES, UnsupportedModelError, export
from ..errors import ModelFormatError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnengine.export",
        description="Convert a Keras MobileNet v1/v2 (.keras, .h5, or weights-only .h5 / .weights.h5) "
                    "into an mnengine .bin.")
    parser.add_argument("model", help="the Keras file: .keras, a full-model .h5, or a weights-only .h5 (Keras 2) "
                                      "or .weights.h5 (Keras 3)")
    parser.add_argument("-o", "--output", required=True, help="the .bin to write")
    parser.add_argument("--labels", help="class names, one per line (default: ImageNet's for 1000 classes)")
    parser.add_argument("--arch", choices=ARCHITECTURES, help="architecture of a weights-only file")
    parser.add_argument("--alpha", type=float, help="width multiplier of a weights-only file")
    parser.add_argument("--size", type=int, help="input size (pixels, square) of a weights-only file")
    args = parser.parse_args(argv)
    try:
        summary = export(args.model, args.output, labels=args.labels, arch=args.arch, alpha=args.alpha, size=args.size)
    except (UnsupportedModelError, ModelFormatError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"mnengine.export: error: {e}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
