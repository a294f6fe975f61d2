"""What each step of a network loses to cold caches: its time inside the whole network against
its time alone (the same step built as a network of its own, on the same weights), hot (run
again and again) and cold (after writing a buffer larger than the L3 between runs).

A whole inference streams every layer's weights through the caches (17 MB for MobileNet v1
1.0@224), which evicts the activations the next inference's first layers read and write, and
those layers' weights; the gap between "in network" and "alone, hot" is what that costs a
step. Steps that read a tensor from outside their own nodes other than their input (a lone
residual add) cannot be built alone and show "-".

    python bench/layer_cache.py [--model mobilenet_v1_1.0_224] [--threads 1] [--runs 60]
        [--flush-mb 64] [--fusion auto|always|never]
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Sequence

import numpy as np

from mnengine import _core, models
from mnengine.bench import DEFAULT_MODELS
from mnengine.engine import requested_isa
from mnengine.graph import INPUT, Graph


def step_alone(graph: Graph, specs: List[dict], shapes: Dict[str, tuple], first: int,
               count: int) -> Optional[tuple]:
    """Nodes [first, first + count) as (input shape, nodes) of a network of their own, given
    the graph's core node specs and tensor shapes, or None when they read more than one tensor
    from outside the slice."""
    nodes = graph.nodes[first:first + count]
    inside = {node.name: i + 1 for i, node in enumerate(nodes)}
    outside = {name for node in nodes for name in node.inputs if name not in inside}
    if len(outside) != 1:
        return None
    (source,) = outside
    renumbered = [dict(spec, inputs=[inside.get(name, 0) for name in node.inputs])
                  for spec, node in zip(specs[first:first + count], nodes)]
    shape = graph.input_shape if source == INPUT else shapes[source]
    return tuple(shape), renumbered


def median_step_seconds(network, x: np.ndarray, out: np.ndarray, runs: int,
                        flush: Optional[np.ndarray] = None) -> np.ndarray:
    for _ in range(5):
        network.profile(x, out)
    samples = []
    for _ in range(runs):
        if flush is not None:
            flush += 1.0  # every line written: the step's data leaves every cache level
        samples.append(network.profile(x, out))
    return np.median(samples, axis=0)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [name for name, *_ in DEFAULT_MODELS]
    parser.add_argument("--model", default=names[0], choices=names)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=60, help="timed runs per measurement (median reported)")
    parser.add_argument("--flush-mb", type=int, default=64, help="buffer written between cold runs, MiB")
    parser.add_argument("--fusion", default="auto", choices=["auto", "always", "never"])
    args = parser.parse_args(argv)
    _, builder, alpha, size = next(spec for spec in DEFAULT_MODELS if spec[0] == args.model)
    graph = getattr(models, builder)(alpha=alpha, input_size=size)
    isa = requested_isa()
    rng = np.random.default_rng(0)
    flush = np.zeros(args.flush_mb << 18, np.float32)

    def network_for(shape, specs):
        network = _core.Network(isa, args.threads, shape, specs, args.fusion)
        x = rng.uniform(-1, 1, (1,) + tuple(shape)).astype(np.float32)
        return network, x, np.empty((1, int(np.prod(network.output_shape))), np.float32)

    specs, shapes = graph.core_nodes(), graph.shapes()
    whole, x, out = network_for(graph.input_shape, specs)
    in_network = median_step_seconds(whole, x, out, args.runs)
    print(f"{args.model}, {whole.threads} thread(s), {isa}, fusion {args.fusion}: "
          f"{in_network.sum() * 1e3:.3f} ms in the network")
    print(f"{'step':26s} {'nodes':>5s} {'in network us':>14s} {'alone hot us':>13s} {'alone cold us':>14s}")
    totals: List[float] = [0.0, 0.0, 0.0]
    for (first, count), seconds in zip(whole.steps, in_network):
        alone = step_alone(graph, specs, shapes, first, count) if count > 0 else None
        hot = cold = None
        if alone is not None:
            network, x, out = network_for(*alone)
            hot = float(median_step_seconds(network, x, out, args.runs).sum())
            cold = float(median_step_seconds(network, x, out, args.runs, flush).sum())
            totals = [totals[0] + seconds, totals[1] + hot, totals[2] + cold]
        name = graph.nodes[first].name if count > 0 else "(conversion)"
        cells = [f"{v * 1e6:.1f}" if v is not None else "-" for v in (hot, cold)]
        print(f"{name:26s} {count:5d} {seconds * 1e6:14.1f} {cells[0]:>13s} {cells[1]:>14s}")
    print(f"{'steps built alone, total':32s} {totals[0] * 1e6:14.1f} {totals[1] * 1e6:13.1f} {totals[2] * 1e6:14.1f}")


if __name__ == "__main__":
    main()
