"""Classifying a Dask bag of image paths, with one Engine per worker process.

    import dask.bag as db
    from distributed import Client, LocalCluster
    from mnengine.integrations.dask import classify_bag

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
        records = classify_bag(db.from_sequence(paths, npartitions=8), "m.bin").compute()
    # [{'path': ..., 'top_k': [{'label': 'tabby', 'index': 281, 'probability': 0.83}, ...]}, ...]

Each worker process loads the model file the first time one of its tasks needs it and keeps
that Engine for the tasks after (the file must be readable by every worker).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Iterable, List, Tuple

from ..classification import DEFAULT_BATCH, PathLike, classify
from ..engine import Engine

_engines: Dict[Tuple[str, int], Engine] = {}
_engines_lock = threading.Lock()


def worker_engine(model: PathLike, threads: int) -> Engine:
    """This process's Engine for ``model`` with ``threads`` threads, loaded on first use."""
    key = (os.path.abspath(os.fspath(model)), threads)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = Engine(model, threads=threads)
        return _engines[key]


def loaded_engines() -> List[Tuple[str, int]]:
    """The (model file, threads) of the Engines this process has loaded."""
    with _engines_lock:
        return list(_engines)


def classify_partition(paths: Iterable[PathLike], model: PathLike, top_k: int = 5, threads: int = 1,
                       batch: int = DEFAULT_BATCH) -> List[Dict[str, Any]]:
    """One partition's records (``Classification.as_record()``, as ``mnengine classify``
    writes them), decoded on the task's own thread."""
    engine = worker_engine(model, threads)
    return [result.as_record() for result in classify(paths, engine, top_k=top_k, batch=batch, workers=0)]


def classify_bag(paths: Any, model: PathLike, top_k: int = 5, threads: int = 1, batch: int = DEFAULT_BATCH) -> Any:
    """A ``dask.bag.Bag`` of one record per path of the bag ``paths``, in its order: ``{"path":
    ..., "top_k": [{"label": ..., "index": ..., "probability": ...}, ...]}``, or ``{"path": ...,
    "error": ...}`` for a file that could not be read. ``threads`` engine threads per worker
    (one suits ``threads_per_worker=1``)."""
    model = os.path.abspath(os.fspath(model))
    if not os.path.isfile(model):
        raise FileNotFoundError(f"model file {model} not found")
    return paths.map_partitions(classify_partition, model, top_k=top_k, threads=threads, batch=batch)
