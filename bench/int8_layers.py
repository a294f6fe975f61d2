"""Single-layer A/B of mnengine's int8 kernels against its float32 kernels on MobileNet's layers.

Each distinct pointwise, depthwise and first-layer convolution of the model runs as a one-node
network, float32 (its node of the float graph) and int8 (the same node of the graph that
mnengine.quantize makes of it from a few random images, so its scales are realistic), on one
thread, for each instruction set, the networks of a layer interleaved round by round. Times
are the calling thread's CPU time (a one-thread network runs on the caller), so other
processes on a shared machine inflate them less than wall time; medians over the rounds.
Columns: time, G multiply-adds/s, the int8 layer's share of the ISA's dot-product peak and its
time over the float32 layer's on the same ISA. The peak is sampled in every round with the
layer's networks (_core.measure_dot_peak, which times with the wall clock, scaled by the share
of that time the thread had a CPU), since the machine's speed drifts with its load.

    python bench/int8_layers.py [--model mobilenet_v1|mobilenet_v2] [--isas avx512vnni,avx2_fma]
                                [--ops conv1x1,depthwise3x3,conv3x3] [--rounds 11]
"""

import argparse
import dataclasses
import statistics
import time

import numpy as np

from mnengine import _core, models, quantize
from mnengine.graph import INPUT, Graph

OPS = ("conv1x1", "depthwise3x3", "conv3x3")


def multiply_adds(node, in_shape, out_shape):
    h, w, c = out_shape
    return h * w * c * {"conv1x1": in_shape[2], "depthwise3x3": 9, "conv3x3": 27}[node.op]


def one_node_network(isa, node, in_shape, input_quantization=None):
    graph = Graph("layer", tuple(in_shape), [dataclasses.replace(node, inputs=[INPUT])],
                  input_quantization=input_quantization)
    graph.shapes()
    return _core.Network(isa, 1, tuple(in_shape), graph.core_nodes(), "never", input_quantization)


def dot_peak(isa, seconds=0.02):
    """measure_dot_peak in G multiply-adds per second of CPU time: its loop runs on the calling
    thread, whose CPU time over the wall time of the call corrects for time other processes took."""
    wall, cpu = time.perf_counter(), time.thread_time()
    peak = _core.measure_dot_peak(isa, seconds)
    return peak * (time.perf_counter() - wall) / (time.thread_time() - cpu)


def timed(run, target_seconds=0.02):
    """A callable running `run` enough times for one sample, returning seconds per run."""
    start, count = time.thread_time(), 0
    while time.thread_time() - start < target_seconds:
        run()
        count += 1

    def sample():
        run()
        begin = time.thread_time()
        for _ in range(count):
            run()
        return (time.thread_time() - begin) / count

    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v1", choices=["mobilenet_v1", "mobilenet_v2"])
    parser.add_argument("--isas", default=",".join(isa for isa in ("avx512vnni", "avx2_fma") if isa in _core.available_isas()))
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    isas, ops = args.isas.split(","), args.ops.split(",")
    rng = np.random.default_rng(0)
    graph = getattr(models, args.model)(1.0, 224)
    int8_graph = quantize.quantize(graph, rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8))
    shapes = graph.shapes()
    quantizations = {INPUT: int8_graph.input_quantization}
    quantizations.update((node.name, node.quantization) for node in int8_graph.nodes)
    print(f"{graph.name}, 1 thread, {args.rounds} rounds")
    seen = set()
    for node, int8_node in zip(graph.nodes, int8_graph.nodes):
        in_shape, out_shape = shapes[node.inputs[0]], shapes[node.name]
        key = (node.op, in_shape, out_shape)
        # A classifier that dequantizes (no output quantization) is not an int8-to-int8 layer: skipped.
        if node.op not in ops or key in seen or int8_node.quantization is None:
            continue
        seen.add(key)
        x_float = rng.standard_normal((1,) + tuple(in_shape)).astype(np.float32)
        x_int8 = rng.integers(-128, 128, (1,) + tuple(in_shape)).astype(np.int8)
        runs = {}
        for isa in isas:
            network = one_node_network(isa, int8_node, in_shape, quantizations[node.inputs[0]])
            out = np.empty((1, int(np.prod(out_shape))), np.int8)
            runs[("int8", isa)] = timed(lambda network=network, out=out: network.run_qs8(x_int8, out))
            network = one_node_network(isa, node, in_shape)
            out = np.empty((1, int(np.prod(out_shape))), np.float32)
            runs[("float32", isa)] = timed(lambda network=network, out=out: network.run(x_float, out))
        for isa in isas:
            runs[("peak", isa)] = lambda isa=isa: dot_peak(isa)
        samples = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, sample in runs.items():
                samples[key].append(sample())
        macs = multiply_adds(node, in_shape, out_shape)
        cells = []
        for isa in isas:
            int8, float32 = statistics.median(samples[("int8", isa)]), statistics.median(samples[("float32", isa)])
            peak = statistics.median(samples[("peak", isa)])
            cells.append(f"{isa}: int8 {int8 * 1e6:7.1f} us {macs / int8 / 1e9:5.0f} G {100 * macs / int8 / 1e9 / peak:3.0f}% "
                         f"| f32 {float32 * 1e6:7.1f} us {macs / float32 / 1e9:4.0f} G | x{int8 / float32:.2f}")
        label = f"{node.op} {in_shape[0]}x{in_shape[1]}x{in_shape[2]}->{out_shape[2]}" + (f" s{node.stride}" if node.op != "conv1x1" else "")
        print(f"{label:30s} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
