"""mnengine: a small, fast CPU inference engine for MobileNet v1 and v2.

    >>> import mnengine
    >>> engine = mnengine.Engine("mobilenet_v1.bin")
    >>> engine.top_k("cat.jpg")
"""

from . import models
from .engine import Engine, cpu_info
from .errors import ModelFormatError
from .graph import Graph, Node
from .modelfile import load as load_model
from .modelfile import save as save_model

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "Graph",
    "ModelFormatError",
    "Node",
    "cpu_info",
    "load_model",
    "models",
    "save_model",
]
