"""``--compare``: mnengine and each installed peer on the same networks and weights. Each peer
is timed in a pair with mnengine, their runs interleaved in blocks (see time_interleaved), so
the machine's noise falls on both alike and no third runtime's threads are awake; each row
gives mnengine's median over the peer's in that pair (below 1.0: mnengine is faster) and the
largest difference between the peer's outputs and mnengine's. For an int8 model the peers run
their own int8 models of the float network it came from, calibrated on the same images (their
outputs then differ from mnengine's by their quantization as well)."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from ..engine import Engine
from . import Model, Timing, random_input, time_interleaved
from .peers import PEERS, PeerUnavailable, versions


def compare(models: Sequence[Model], batches: Sequence[int], thread_counts: Sequence[int], warmup: int,
            runs: int, workdir: Path, progress: Callable[[str], None]) -> Dict[str, object]:
    cells: List[dict] = []
    notes: Dict[str, str] = {}
    for model in models:
        for batch in batches:
            x = random_input(model.graph, batch)
            for threads in thread_counts:
                engine = Engine(model.path, threads=threads)
                reference = engine.predict(x).reshape(batch, -1)
                ours = lambda: engine.predict(x)  # noqa: E731
                outcome: Dict[str, dict] = {}
                our_samples: List[float] = []
                for name, factory in PEERS:
                    try:
                        if model.float_model is not None:
                            run = factory(model.float_model.graph, x, threads, workdir, calibration=model.calibration)
                        else:
                            run = factory(model.graph, x, threads, workdir)
                        difference = float(np.max(np.abs(np.asarray(run()).reshape(batch, -1) - reference)))
                    except PeerUnavailable as e:
                        outcome[name] = {"skipped": str(e)}
                        continue
                    except Exception as e:  # a peer's failure is reported, not fatal
                        notes[f"{name} on {model.name}"] = "".join(traceback.format_exception_only(type(e), e)).strip()
                        outcome[name] = {"skipped": f"failed: {type(e).__name__}"}
                        continue
                    progress(f"{model.name} batch {batch} threads {threads}: mnengine and {name}, "
                             f"{runs} runs each")
                    timings = time_interleaved({"mnengine": ours, name: run}, warmup, runs)
                    our_samples += timings["mnengine"].samples
                    outcome[name] = {
                        "max_abs_diff": difference,
                        "median_ms": timings[name].median_ms, "p10_ms": timings[name].p10_ms,
                        "p90_ms": timings[name].p90_ms, "mnengine_median_ms": timings["mnengine"].median_ms,
                        "ratio": timings["mnengine"].median_ms / timings[name].median_ms,
                    }
                    del run
                if not our_samples:
                    our_samples = time_interleaved({"mnengine": ours}, warmup, runs)["mnengine"].samples
                ours_all = Timing(our_samples)
                cells.append({
                    "model": model.name, "batch": batch, "threads": engine.threads, "isa": engine.isa,
                    "runs": runs,
                    "mnengine": {"median_ms": ours_all.median_ms, "p10_ms": ours_all.p10_ms,
                                 "p90_ms": ours_all.p90_ms},
                    "peers": outcome,
                })
    return {"cells": cells, "versions": versions(), "notes": notes}


def print_compare(report: Dict[str, object]) -> None:
    cells = report["cells"]
    peers = [name for name, _ in PEERS]
    print("\nmedian ms per inference (mnengine: [p10-p90] over all its runs); each peer was timed in a pair")
    print("with mnengine, runs interleaved; (ratio) = mnengine's median / the peer's in that pair")
    header = ["model", "batch", "threads", "mnengine"] + peers
    rows = [header]
    for cell in cells:
        ours = cell["mnengine"]
        row = [cell["model"], str(cell["batch"]), str(cell["threads"]),
               f"{ours['median_ms']:.3f} [{ours['p10_ms']:.3f}-{ours['p90_ms']:.3f}]"]
        for name in peers:
            peer = cell["peers"][name]
            if "median_ms" in peer:
                row.append(f"{peer['median_ms']:.3f} ({peer['ratio']:.2f}x)")
            else:
                row.append("-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    differences = {}
    for cell in cells:
        for name, peer in cell["peers"].items():
            if "max_abs_diff" in peer:
                differences[name] = max(differences.get(name, 0.0), peer["max_abs_diff"])
    if differences:
        print("\nlargest |peer - mnengine| over all outputs: "
              + ", ".join(f"{name} {value:.1e}" for name, value in differences.items()))
    skipped = {name: peer["skipped"] for cell in cells for name, peer in cell["peers"].items() if "skipped" in peer}
    for name, reason in skipped.items():
        print(f"{name}: skipped ({reason})")
    for where, message in report["notes"].items():
        print(f"{where}: {message}")
    installed = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
    print(f"peers installed: {installed or 'none'}")
