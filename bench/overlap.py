"""Do two Python threads predicting on one Engine run at the same time? (The kernels release
the GIL.) Prints the wall time of 2 x N predicts done one after another and done by two
threads at once, on a single-threaded Engine, and their ratio: near 0.5 on a machine with two
free cores means full overlap; 1.0 would mean the calls were serialized.

    python bench/overlap.py [--model mobilenet_v2] [--alpha 1.0] [--size 224] [--runs 30] [--repeats 5]
"""

import argparse
import threading
import time

import numpy as np

import mnengine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v2", choices=["mobilenet_v1", "mobilenet_v2"])
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=30, help="predicts per thread")
    parser.add_argument("--repeats", type=int, default=5, help="measurements (median reported)")
    args = parser.parse_args()
    engine = mnengine.Engine(getattr(mnengine.models, args.model)(args.alpha, args.size), threads=1)
    inputs = [np.random.default_rng(i).uniform(-1, 1, (1, args.size, args.size, 3)).astype(np.float32) for i in range(2)]
    for x in inputs:
        engine.predict(x)

    def work(x):
        for _ in range(args.runs):
            engine.predict(x)

    serial, concurrent = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for x in inputs:
            work(x)
        serial.append(time.perf_counter() - start)
        threads = [threading.Thread(target=work, args=(x,)) for x in inputs]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent.append(time.perf_counter() - start)
    s, c = np.median(serial), np.median(concurrent)
    print(f"{engine.name}, Engine(threads=1), 2 x {args.runs} predicts, median of {args.repeats}:")
    print(f"  one after another: {s * 1e3:8.1f} ms   [{min(serial) * 1e3:.1f}-{max(serial) * 1e3:.1f}]")
    print(f"  two threads:       {c * 1e3:8.1f} ms   [{min(concurrent) * 1e3:.1f}-{max(concurrent) * 1e3:.1f}]")
    print(f"  ratio: {c / s:.2f} (0.5 = the two threads ran fully in parallel, 1.0 = serialized)")


if __name__ == "__main__":
    main()
