"""mnengine: a small, fast CPU inference engine for MobileNet v1 and v2.

    >>> import mnengine
    >>> engine = mnengine.Engine("mobilenet_v1.bin")
    >>> engine.top_k("cat.jpg")
"""

from pathlib import Path as _Path

try:
    from . import _core
except ImportError as _error:  # pragma: no cover - depends on how Python was started
    if not any(_Path(__file__).parent.glob("_core*")):
        raise ImportError(
            f"mnengine's compiled extension is not in {_Path(__file__).parent}: this is the source "
            "tree, which Python imports first when started in the repository's top directory. "
            "Run from another directory (or use the mnengine-bench / mnengine-export commands), "
            "or install in place with: pip install -e ."
        ) from _error
    raise

from . import models, quantize
from .classification import Classification, Prediction, classify
from .images import expand_paths
from .engine import Engine, cpu_info
from .errors import ModelFormatError
from .graph import Graph, Node
from .modelfile import load as load_model
from .modelfile import save as save_model

__version__ = "0.1.0"

__all__ = [
    "Classification",
    "Engine",
    "Graph",
    "ModelFormatError",
    "Node",
    "Prediction",
    "classify",
    "cpu_info",
    "expand_paths",
    "load_model",
    "models",
    "quantize",
    "save_model",
]
