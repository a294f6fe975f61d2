"""``python -m mnengine.classify PATH... --model M.bin``: the same as ``mnengine classify``.

The Python API is :func:`mnengine.classify` (in :mod:`mnengine.classification`).
"""

from .cli import classify_main

if __name__ == "__main__":
    raise SystemExit(classify_main())
