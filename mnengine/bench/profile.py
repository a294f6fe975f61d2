"""``--profile``: each layer's time, operations per second and share of the machine's peak.

A fused MobileNet block (e.g. expand + depthwise + project + add, run as one operator) is one
row, named after its first layer, with its layers in the op column (``fused pw+dw+pw+add``).

The peak is measured first, per core, by a tight loop of independent FMAs in the extension
(``_core.measure_fma_peak``); a row on t threads is compared with t times that. An int8 model's
layers are compared with the int8 peak instead: a loop of the int8 GEMM's own dot-product
instruction (``_core.measure_dot_peak``), as multiply-adds (2 operations each).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

from .. import _core
from ..engine import Engine
from . import Model, format_table, random_input

PROFILE_RUNS = 30

#: Short names of the layers of a fused block, for the op column.
FUSED_NAMES = {"conv1x1": "pw", "depthwise3x3": "dw", "add": "add"}


def profile(models: Sequence[Model], thread_counts: Sequence[int], warmup: int,
            progress: Callable[[str], None]) -> Dict[str, object]:
    int8 = models[0].graph.int8
    progress(f"measuring the {'int8 multiply-add' if int8 else 'FMA'} peak of one core")
    isa = Engine(models[0].graph, threads=1).isa
    # Operations per second: an FMA is 2 floating-point operations, an int8 multiply-add 2 integer ones.
    peak_per_core = (2 * _core.measure_dot_peak(isa, 0.5) if int8 else _core.measure_fma_peak(isa, 0.5)) * 1e9
    results = []
    for model in models:
        macs = model.graph.node_multiply_adds()
        for threads in thread_counts:
            progress(f"profiling {model.name} on {threads} thread(s)")
            engine = Engine(model.graph, threads=threads)
            x = random_input(model.graph, 1)
            for _ in range(warmup):
                engine.profile(x)
            seconds = np.median([engine.profile(x) for _ in range(PROFILE_RUNS)], axis=0)
            peak = peak_per_core * engine.threads
            layers, pointwise = [], []
            for (first, count), t in zip(engine.steps, seconds):
                nodes = model.graph.nodes[first:first + count]
                step_macs = sum(macs[first:first + count])
                flops = 2 * step_macs / t if t > 0 else 0.0
                if count == 0:  # an int8 network's conversion at its float32 edge
                    name = "quantize input" if first == 0 and not layers else "dequantize"
                    layers.append({"layer": name, "op": name.split()[0], "nodes": [], "us": t * 1e6,
                                   "gflops": 0.0, "peak_percent": 0.0})
                    continue
                op = nodes[0].op if count == 1 else "fused " + "+".join(FUSED_NAMES.get(n.op, n.op) for n in nodes)
                layers.append({"layer": nodes[0].name, "op": op, "nodes": [n.name for n in nodes], "us": t * 1e6,
                               "gflops": flops / 1e9, "peak_percent": 100 * flops / peak})
                if op == "conv1x1":
                    pointwise.append((step_macs, t))
            pointwise_flops = 2 * sum(c for c, _ in pointwise) / sum(t for _, t in pointwise) if pointwise else 0.0
            total_s = float(np.sum(seconds))
            results.append({
                "model": model.name, "threads": engine.threads, "isa": engine.isa, "layers": layers,
                "total_ms": total_s * 1e3,
                "gflops": 2 * sum(macs) / total_s / 1e9,
                "peak_percent": 100 * 2 * sum(macs) / total_s / peak,
                "pointwise_peak_percent": 100 * pointwise_flops / peak,
            })
    return {"peak_gops_per_core": peak_per_core / 1e9, "peak_kind": "int8 multiply-add" if int8 else "FMA",
            "isa": isa, "models": results}


LAYER_COLUMNS = (
    ("layer", "layer", "{}"),
    ("op", "op", "{}"),
    ("us", "us", "{:.1f}"),
    ("G op/s", "gflops", "{:.1f}"),
    ("% peak", "peak_percent", "{:.1f}"),
)


def print_profile(report: Dict[str, object]) -> None:
    print(f"\n{report['peak_kind']} peak ({report['isa']}): {report['peak_gops_per_core']:.1f} G operations/s per core")
    for result in report["models"]:
        print(f"\n{result['model']}, {result['threads']} thread(s): {result['total_ms']:.3f} ms, "
              f"{result['gflops']:.1f} G op/s = {result['peak_percent']:.1f}% of peak; "
              f"pointwise layers {result['pointwise_peak_percent']:.1f}% of peak")
        print(format_table(result["layers"], LAYER_COLUMNS))
