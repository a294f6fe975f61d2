"""Classifying many image files: decoding on worker threads, in parallel with inference.

``mnengine.classify(paths, model)`` yields one :class:`Classification` per path, lazily and
in input order. Worker threads decode and resize the next images (Pillow and NumPy release
the GIL while they do) while the engine runs the current batch; at most a few batches of
decoded images wait at any time, so memory stays flat however many paths come.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
from typing import Any, Deque, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .engine import Engine, default_threads
from .graph import Graph
from .images import PathLike, top_k_pairs


#: Images per inference call when the caller does not say.
DEFAULT_BATCH = 8



class Prediction(NamedTuple):
    """One of an image's most probable classes."""

    label: str  #: the class name from the model file, or the class index as a string
    index: int
    probability: float


class Classification(NamedTuple):
    """The result for one path: its top-k classes, or why it could not be classified."""

    path: str
    top_k: Tuple[Prediction, ...]  #: most probable first; empty when ``error`` is set
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_record(self) -> Dict[str, Any]:
        """The result as ``mnengine classify`` writes it in JSON: ``{"path": ..., "top_k":
        [{"label": ..., "index": ..., "probability": ...}, ...]}`` or ``{"path": ...,
        "error": ...}``."""
        if not self.ok:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "top_k": [p._asdict() for p in self.top_k]}


def top_predictions(probabilities: np.ndarray, top_k: int, labels: Optional[Sequence[str]]) -> Tuple[Prediction, ...]:
    """The ``top_k`` largest of one image's outputs, most probable first (ties: lower index
    first, as :meth:`Engine.top_k` orders them)."""
    pairs = top_k_pairs(probabilities.reshape(1, -1), top_k, None)[0]
    return tuple(Prediction(str(index) if labels is None else labels[index], index, probability)
                 for index, probability in pairs)


def default_workers() -> int:
    """Decoding threads when the caller does not say: the cores available, at least two so
    that decoding one image overlaps waiting for another's file."""
    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def classify(paths: Iterable[PathLike], engine_or_model: Union[Engine, PathLike, Graph], top_k: int = 5,
             batch: int = DEFAULT_BATCH, workers: Optional[int] = None,
             threads: Optional[int] = None) -> Iterator[Classification]:
    """Classifies image files, yielding one :class:`Classification` per path in input order.

    ``paths`` is any iterable of image file paths, consumed lazily (see
    :func:`expand_paths` for folders, globs and list files). ``workers`` threads (default:
    :func:`default_workers`; 0 decodes on the calling thread, between inferences) decode and
    resize images exactly as :meth:`Engine.predict` does for a path, so the probabilities are
    the ones ``engine.predict(path)`` returns, bit for bit; ``batch`` images go to the engine
    per call.

    ``engine_or_model`` is an :class:`Engine`, which then runs one batch at a time on its own
    threads, or a model file or :class:`Graph`: classify then loads a one-thread Engine and
    runs ``threads`` batches at once (default: one per core). While decoding keeps the cores
    busy too, independent one-thread inferences get more images/s out of them than one
    inference split over all of them.

    A file that cannot be read or decoded yields a Classification with its ``error`` and the
    run goes on. Stopping the iteration early (``break``, an exception, closing the
    generator) cancels the decoding still queued.
    """
    if isinstance(engine_or_model, Engine):
        if threads is not None:
            raise ValueError("threads applies to the Engine classify builds; pass it to Engine() instead "
                             "when giving an Engine")
        engine, streams = engine_or_model, 1
    elif isinstance(engine_or_model, (str, os.PathLike, Graph)):
        streams = default_threads() if threads is None else threads
        _check_positive("threads", streams, 256)
        engine = Engine(engine_or_model, threads=1)
    else:
        raise TypeError(f"engine_or_model must be an Engine, a model file path or a Graph, got "
                        f"{type(engine_or_model).__name__}")
    _check_positive("top_k", top_k, engine.num_classes)
    _check_positive("batch", batch, 4096)
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= 256:
        raise ValueError(f"workers must be an integer from 0 to 256, got {workers!r}")
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError(f"paths must be an iterable of paths, got the single path {os.fspath(paths)!r}; "
                        f"wrap it in a list")
    return _classify(iter(paths), engine, top_k, batch, workers, streams)


def _check_positive(name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, got {value!r}")


def _classify(paths: Iterator[PathLike], engine: Engine, top_k: int, batch: int, workers: int,
              streams: int) -> Iterator[Classification]:
    # Two batches queued beyond the ones being run keep every worker busy during inference.
    queue_limit = 2 * batch + workers
    pending: Deque[Tuple[str, concurrent.futures.Future]] = collections.deque()
    running: Deque[Tuple[List[str], List[Union[np.ndarray, str]], Optional[concurrent.futures.Future]]] = \
        collections.deque()
    with _threads_or_calling_thread(workers, "mnengine-decode") as decoders, \
            _threads_or_calling_thread(streams if streams > 1 else 0, "mnengine-infer") as inference:

        def fill_queue() -> None:
            for path in itertools.islice(paths, queue_limit - len(pending)):
                path = os.fsdecode(path)
                pending.append((path, decoders.submit(engine.preprocess, path)))

        def start_batch() -> None:
            chunk = [pending.popleft() for _ in range(min(batch, len(pending)))]
            fill_queue()
            decoded: List[Union[np.ndarray, str]] = []
            for _, future in chunk:
                try:
                    decoded.append(future.result())
                except Exception as error:  # any failure is this file's, reported with it
                    decoded.append(describe_error(error))
            images = [x for x in decoded if not isinstance(x, str)]
            run = inference.submit(engine.predict, np.concatenate(images)) if images else None
            running.append(([path for path, _ in chunk], decoded, run))

        try:
            fill_queue()
            while pending or running:
                while pending and len(running) < streams:
                    start_batch()
                chunk_paths, decoded, run = running.popleft()
                rows = iter(run.result() if run is not None else [])
                for path, image in zip(chunk_paths, decoded):
                    if isinstance(image, str):
                        yield Classification(path, (), image)
                    else:
                        yield Classification(path, top_predictions(next(rows), top_k, engine.labels))
        finally:
            for _, future in pending:
                future.cancel()
            for _, _, run in running:
                if run is not None:
                    run.cancel()


def _threads_or_calling_thread(threads: int, name: str) -> concurrent.futures.Executor:
    if threads == 0:
        return _CallingThread()
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=name)


class _CallingThread(concurrent.futures.Executor):
    """Runs each submitted call at once, on the submitting thread (``workers=0``)."""

    def submit(self, fn, /, *args, **kwargs) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


def describe_error(error: BaseException) -> str:
    """One line saying why a file could not be classified."""
    message = str(error)
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        message = f"{error.strerror}: {error.filename}"
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


