"""``python -m mnengine.bench``: how fast mnengine runs MobileNet on this machine.

With no arguments it builds MobileNet v1 1.0@224, v2 1.0@224, v1 0.25@128 and MobileNetV3
Large 1.0@224 and Small 1.0@224 with synthetic weights (no downloads), saves each to a temporary ``.bin`` and times loading, the first
inference and at least 50 inferences after warm-up, at batch 1 and 8, on 1 thread and on all
cores. ``--compare`` runs the same networks, with the same weights, in each installed peer
(LiteRT with XNNPACK, ONNX Runtime, OpenVINO, ncnn), interleaved with mnengine run by run;
``--profile`` times each layer against the machine's measured FMA peak. ``--int8`` quantizes the
networks (calibrated on random images: the weights are synthetic anyway) and times mnengine's
int8 engine against its float32 one, or with ``--compare`` against each peer's own int8 model
of the same float network, calibrated on the same images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import _core, models
from ..engine import Engine, cpu_info, default_threads
from ..graph import FLOAT32_ONLY_ACTIVATIONS, FLOAT32_ONLY_OPS, Graph
from ..modelfile import load, save
from ..quantize import quantize

#: The networks run when no --model is given: (name, builder, alpha, input size).
DEFAULT_MODELS = (
    ("mobilenet_v1_1.0_224", "mobilenet_v1", 1.0, 224),
    ("mobilenet_v2_1.0_224", "mobilenet_v2", 1.0, 224),
    ("mobilenet_v1_0.25_128", "mobilenet_v1", 0.25, 128),
    ("mobilenet_v3_large_1.0_224", "mobilenet_v3_large", 1.0, 224),
    ("mobilenet_v3_small_1.0_224", "mobilenet_v3_small", 1.0, 224),
)


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries the table or the JSON)."""
    print(f"[mnengine.bench] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Timing:
    """Seconds of the timed runs of one callable."""

    samples: List[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples)) * 1e3

    @property
    def p10_ms(self) -> float:
        return float(np.percentile(self.samples, 10)) * 1e3

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.samples, 90)) * 1e3


def time_interleaved(runs: Dict[str, Callable[[], object]], warmup: int, repeats: int,
                     block: int = 10, settle_s: float = 0.1, rewarm_s: float = 0.02) -> Dict[str, Timing]:
    """Times each callable `repeats` times. With several callables they take turns in blocks
    of `block` runs, in rotating order, so that noise from the rest of the machine falls on
    all of them alike. Before its block each one waits `settle_s`, then runs untimed for
    `rewarm_s` (at least once): other runtimes' worker threads spin for a while after an
    inference and their weights fill the caches, which would otherwise count against whoever
    runs next. (Idle after an inference with 2 threads, ONNX Runtime's threads were measured
    spinning for about 40 ms and ncnn's for about 10 ms; a worker still spinning takes a core
    from the next runtime's threads.) The untimed runs bring the core back from the pause: a
    single one left the first timed runs of a 0.3 ms model 10-40% slower, for every runtime."""
    names = list(runs)
    for _ in range(warmup):
        for run in runs.values():
            run()
    samples: Dict[str, List[float]] = {name: [] for name in runs}
    turn = 0
    while len(samples[names[0]]) < repeats:
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            run = runs[name]
            if len(names) > 1:
                time.sleep(settle_s)
                warm_until = time.perf_counter() + rewarm_s
                run()
                while time.perf_counter() < warm_until:
                    run()
            for _ in range(min(block, repeats - len(samples[name]))):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
        turn += 1
    return {name: Timing(values) for name, values in samples.items()}


@dataclasses.dataclass
class Model:
    """A network to time, as a graph and its file. An int8 model also has the float32 model it
    was quantized from and the calibration images."""

    name: str
    graph: Graph
    path: Path
    float_model: Optional["Model"] = None
    calibration: Optional[np.ndarray] = None


#: Images the benchmark's int8 models (and the peers' int8 models) are calibrated on.
CALIBRATION_IMAGES = 16


def build_models(specs: Sequence[str], workdir: Path, int8: bool = False) -> List[Model]:
    """The default networks (synthetic weights) or the given .bin files, each as a file; with
    `int8` their int8 versions, quantized on random images."""
    if specs:
        built = [Model(Path(spec).stem, load(spec), Path(spec)) for spec in specs]
    else:
        built = []
        for name, builder, alpha, size in DEFAULT_MODELS:
            graph = getattr(models, builder)(alpha=alpha, input_size=size)
            path = workdir / f"{name}.bin"
            save(graph, path)
            built.append(Model(name, graph, path))
    if not int8:
        return built
    quantized = []
    for model in built:
        if model.graph.int8:
            raise ValueError(f"--int8 quantizes float32 models; {model.path} is already int8: time it without --int8")
        if not specs and not quantizable(model.graph):
            progress(f"{model.name}: no int8 version (int8 MobileNetV3 is not supported), skipped")
            continue
        calibration = random_input(model.graph, CALIBRATION_IMAGES, seed=1)
        path = workdir / f"{model.name}.int8.bin"
        graph = quantize(model.graph, calibration)
        save(graph, path)
        quantized.append(Model(f"{model.name} int8", graph, path, model, calibration))
    return quantized


def quantizable(graph: Graph) -> bool:
    """Whether mnengine's int8 kernels can run the graph (MobileNetV3's layers are float32 only)."""
    return not any(node.op in FLOAT32_ONLY_OPS or node.activation in FLOAT32_ONLY_ACTIVATIONS for node in graph.nodes)


def random_input(graph: Graph, batch: int, seed: int = 0) -> np.ndarray:
    """A preprocessed-range float32 NHWC batch."""
    return np.random.default_rng(seed).uniform(-1, 1, (batch,) + tuple(graph.input_shape)).astype(np.float32)


def measure_int8(model: Model, batch: int, threads: int, warmup: int, repeats: int) -> dict:
    """An int8 model against the float32 model it came from, runs interleaved."""
    engines = {"int8": Engine(model.path, threads=threads), "float32": Engine(model.float_model.path, threads=threads)}
    x = random_input(model.graph, batch)
    timings = time_interleaved({name: (lambda e=e: e.predict(x)) for name, e in engines.items()}, warmup, repeats)
    return {
        "model": model.name, "batch": batch, "threads": engines["int8"].threads, "isa": engines["int8"].isa,
        "runs": repeats,
        **{f"{name}_{key}": getattr(timing, key) for name, timing in timings.items()
           for key in ("median_ms", "p10_ms", "p90_ms")},
        "ratio": timings["int8"].median_ms / timings["float32"].median_ms,
    }


def measure_mnengine(model: Model, batch: int, threads: int, warmup: int, repeats: int) -> dict:
    """Load time, first inference and steady-state timing of one (model, batch, threads)."""
    start = time.perf_counter()
    engine = Engine(model.path, threads=threads)
    load_s = time.perf_counter() - start
    x = random_input(model.graph, batch)
    start = time.perf_counter()
    engine.predict(x)
    first_s = time.perf_counter() - start
    timing = time_interleaved({"mnengine": lambda: engine.predict(x)}, warmup, repeats)["mnengine"]
    return {
        "model": model.name,
        "batch": batch,
        "threads": engine.threads,
        "isa": engine.isa,
        "multiply_adds": engine.multiply_adds,
        "load_ms": load_s * 1e3,
        "first_ms": first_s * 1e3,
        "median_ms": timing.median_ms,
        "p10_ms": timing.p10_ms,
        "p90_ms": timing.p90_ms,
        "runs": repeats,
        "images_per_s": batch / (timing.median_ms / 1e3),
    }


def python_overhead(model: Model, warmup: int, repeats: int) -> dict:
    """Engine.predict against the bare kernels (Network.run on preallocated buffers), as the
    difference within back-to-back pairs of calls (in alternating order): its median and its
    10th-90th percentile spread, which tells a real overhead from the machine's noise (a
    difference of two noisy timings may come out negative)."""
    engine = Engine(model.path, threads=1)
    x = random_input(model.graph, 1)
    out = np.empty((1, engine.num_classes), np.float32)
    network = engine._network
    calls = {"predict": lambda: engine.predict(x), "kernels": lambda: network.run(x, out)}
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds: Dict[str, List[float]] = {name: [] for name in calls}
    for i in range(repeats):
        for name in (("predict", "kernels") if i % 2 == 0 else ("kernels", "predict")):
            start = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - start)
    differences_us = (np.array(seconds["predict"]) - np.array(seconds["kernels"])) * 1e6
    return {
        "model": model.name,
        "predict_ms": float(np.median(seconds["predict"])) * 1e3,
        "kernels_ms": float(np.median(seconds["kernels"])) * 1e3,
        "overhead_us": float(np.median(differences_us)),
        "overhead_p10_us": float(np.percentile(differences_us, 10)),
        "overhead_p90_us": float(np.percentile(differences_us, 90)),
    }


def format_table(rows: List[dict], columns: Sequence[tuple]) -> str:
    """A plain-text table; `columns` are (header, key, format)."""
    cells = [[header for header, _, _ in columns]]
    for row in rows:
        cells.append([("" if row.get(key) is None else fmt.format(row[key])) for _, key, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(line, widths)))
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


INT8_COLUMNS = (
    ("model", "model", "{}"),
    ("batch", "batch", "{}"),
    ("threads", "threads", "{}"),
    ("isa", "isa", "{}"),
    ("int8 median ms", "int8_median_ms", "{:.3f}"),
    ("p10", "int8_p10_ms", "{:.3f}"),
    ("p90", "int8_p90_ms", "{:.3f}"),
    ("float32 median ms", "float32_median_ms", "{:.3f}"),
    ("p10", "float32_p10_ms", "{:.3f}"),
    ("p90", "float32_p90_ms", "{:.3f}"),
    ("int8 / float32", "ratio", "{:.2f}x"),
)

MNENGINE_COLUMNS = (
    ("model", "model", "{}"),
    ("batch", "batch", "{}"),
    ("threads", "threads", "{}"),
    ("isa", "isa", "{}"),
    ("load ms", "load_ms", "{:.1f}"),
    ("first ms", "first_ms", "{:.2f}"),
    ("median ms", "median_ms", "{:.3f}"),
    ("p10 ms", "p10_ms", "{:.3f}"),
    ("p90 ms", "p90_ms", "{:.3f}"),
    ("images/s", "images_per_s", "{:.1f}"),
)


def machine_description() -> dict:
    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .. import __version__

    return {
        "cpu": model_name,
        "cores": default_threads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "mnengine": __version__,
        "numpy": np.__version__,
        **{key: cpu_info()[key] for key in ("isa", "available_isas")},
    }


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    cores = default_threads()
    parser = argparse.ArgumentParser(
        prog="python -m mnengine.bench",
        description="Benchmark mnengine on MobileNet (synthetic weights unless --model is given).",
    )
    parser.add_argument("--model", action="append", default=[], metavar="PATH",
                        help="a .bin model to run instead of the default five (repeatable)")
    parser.add_argument("--batch", type=int, nargs="+", default=None,
                        help="batch sizes (default: 1 8; with --compare: 1)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, cores}),
                        help=f"thread counts (default: 1 and all {cores} cores)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per cell after warm-up (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    parser.add_argument("--quick", action="store_true", help="10 runs, 2 warm-up: a fast, rough look")
    parser.add_argument("--compare", action="store_true",
                        help="also run each installed peer (LiteRT, ONNX Runtime, OpenVINO, ncnn), interleaved")
    parser.add_argument("--profile", action="store_true",
                        help="per-layer time, GFLOP/s and share of the measured FMA peak (int8: the "
                             "multiply-add peak of the int8 kernels' dot-product instruction)")
    parser.add_argument("--int8", action="store_true",
                        help="int8 models (quantized on random images) against mnengine's float32, or with "
                             "--compare against the peers' int8 models of the same networks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 10, 2
    if args.batch is None:
        args.batch = [1] if args.compare else [1, 8]
    for name in ("batch", "threads"):
        if any(value < 1 for value in getattr(args, name)):
            parser.error(f"--{name} values must be positive integers, got {getattr(args, name)}")
    if args.runs < 1 or args.warmup < 0:
        parser.error(f"--runs must be >= 1 and --warmup >= 0, got {args.runs} and {args.warmup}")
    for path in args.model:
        if not Path(path).is_file():
            parser.error(f"--model {path!r}: no such file")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    report: Dict[str, object] = {"machine": machine_description()}
    with tempfile.TemporaryDirectory(prefix="mnengine-bench-") as tmp:
        workdir = Path(tmp)
        progress(("building models" if not args.model else "loading models") + (", quantizing" if args.int8 else ""))
        try:
            model_list = build_models(args.model, workdir, args.int8)
        except ValueError as e:
            print(f"mnengine.bench: error: {e}", file=sys.stderr)
            return 2

        if args.compare:
            from .compare import compare

            report["compare"] = compare(model_list, args.batch, args.threads, args.warmup, args.runs, workdir, progress)
        elif args.int8:
            rows = []
            for model in model_list:
                for batch in args.batch:
                    for threads in args.threads:
                        progress(f"{model.name} batch {batch} threads {threads}: against float32")
                        rows.append(measure_int8(model, batch, threads, args.warmup, args.runs))
            report["int8"] = rows
        else:
            rows = []
            for model in model_list:
                for batch in args.batch:
                    for threads in args.threads:
                        progress(f"{model.name} batch {batch} threads {threads}")
                        rows.append(measure_mnengine(model, batch, threads, args.warmup, args.runs))
            report["mnengine"] = rows
            progress("Python overhead per predict")
            small = min(model_list, key=lambda m: m.graph.multiply_adds())
            report["overhead"] = python_overhead(small, args.warmup, max(args.runs, 200))

        if args.profile:
            from .profile import profile

            report["profile"] = profile(model_list, args.threads, args.warmup, progress)

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def print_report(report: Dict[str, object]) -> None:
    machine = report["machine"]
    print(f"mnengine {machine['mnengine']} on {machine['cpu']} ({machine['cores']} cores), "
          f"kernels: {machine['isa']}")
    if "mnengine" in report:
        print()
        print(format_table(report["mnengine"], MNENGINE_COLUMNS))
        overhead = report["overhead"]
        print(f"\nPython overhead per predict on {overhead['model']}: {overhead['overhead_us']:.1f} us, "
              f"p10-p90 of the paired differences {overhead['overhead_p10_us']:.1f} to "
              f"{overhead['overhead_p90_us']:.1f} us (predict {overhead['predict_ms']:.3f} ms, kernels alone "
              f"{overhead['kernels_ms']:.3f} ms)")
    if "int8" in report:
        print()
        print(format_table(report["int8"], INT8_COLUMNS))
    if "compare" in report:
        from .compare import print_compare

        print_compare(report["compare"])
    if "profile" in report:
        from .profile import print_profile

        print_profile(report["profile"])
