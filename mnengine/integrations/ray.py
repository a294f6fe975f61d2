"""Classifying a Ray Data dataset with one Engine per actor.

    import ray
    from mnengine.integrations.ray import Classifier

    ds = ray.data.read_images("photos/", mode="RGB", include_paths=True)   # or a dataset of paths:
    # ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(Classifier, fn_constructor_kwargs={"model": "m.bin"},
                        concurrency=2, num_cpus=1, batch_size=32)
    ds.take(1)  # [{'path': ..., 'label_1': 'tabby', 'index_1': 281, 'probability_1': 0.83, ...}]

Ray builds each Classifier once per actor (loading the model there: the file must be readable
by every node) and calls it on batches. Sizing: every actor takes ``num_cpus`` CPUs for its
life; leave a CPU free for ``read_images``'s read tasks (or pass paths, which actors read
themselves), or the pipeline stalls waiting for one.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..classification import Classification, PathLike, Prediction, classify, top_predictions
from ..engine import Engine


def _assigned_cpus() -> int:
    """The CPUs Ray gave this actor (at least 1)."""
    import ray

    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


class Classifier:
    """A ``map_batches`` callable class: the top-k classes of each image of a batch.

    A batch must have an ``"image"`` column of uint8 (H, W, 3) arrays, as
    ``ray.data.read_images(..., mode="RGB")`` makes (without ``mode="RGB"`` Ray reads
    grayscale files as (1, H, W) arrays, which are refused), or a ``"path"`` column of image
    files, which the actor decodes exactly as :meth:`Engine.predict` does for a path. The output has the batch's other columns, then
    ``label_R``, ``index_R`` and ``probability_R`` (float32) for each rank R from 1 to
    ``top_k`` and ``error`` (empty unless the file could not be read; its classes are then
    empty strings, -1 and NaN). ``threads`` engine threads per actor (default: the CPUs Ray
    assigned the actor).
    """

    def __init__(self, model: PathLike, top_k: int = 5, threads: Optional[int] = None):
        self.engine = Engine(model, threads=_assigned_cpus() if threads is None else threads)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= self.engine.num_classes:
            raise ValueError(f"top_k must be an integer from 1 to {self.engine.num_classes}, got {top_k!r}")
        self.top_k = top_k

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if "image" in batch:
            images = list(batch["image"])
            probabilities = self.engine.predict(images) if images else []
            results: List[Classification] = [
                Classification("", top_predictions(row, self.top_k, self.engine.labels)) for row in probabilities]
        elif "path" in batch:
            paths = [str(p) for p in batch["path"]]
            results = list(classify(paths, self.engine, top_k=self.top_k, batch=max(1, len(paths)), workers=0))
        else:
            raise KeyError(f"expected an 'image' column (ray.data.read_images) or a 'path' column of image "
                           f"files; the batch has {sorted(batch)}")
        output = {name: column for name, column in batch.items() if name != "image"}
        missing = Prediction("", -1, float("nan"))
        for rank in range(self.top_k):
            ranked = [r.top_k[rank] if r.ok else missing for r in results]
            output[f"label_{rank + 1}"] = np.array([p.label for p in ranked], dtype=object)
            output[f"index_{rank + 1}"] = np.array([p.index for p in ranked], dtype=np.int64)
            output[f"probability_{rank + 1}"] = np.array([p.probability for p in ranked], dtype=np.float32)
        output["error"] = np.array([r.error or "" for r in results], dtype=object)
        return output
