"""How fast `mnengine classify` runs over a folder of JPEGs, against Engine.predict on the same
images already decoded and resized; its resident memory over a long list of paths; and Ray
Data and Dask with two workers against one.

    python bench/classify_throughput.py [--images 1000] [--runs 3] [--block 200] [--threads 2]
        [--workers 2] [--batch 8] [--rss-paths 100000] [--rss-model v1-1.0-224|v1-0.25-128]
        [--cluster-images 1000] [--skip-classify] [--skip-rss] [--skip-cluster]

It makes the images itself, in a temporary folder (removed at the end): random crops of the
photos in ../shared/fixtures/photos, resized to sizes from 160x120 to 1280x720, saved as
JPEG at quality 75-95. The model is MobileNet v1 1.0@224 with synthetic weights. Run it from
outside the checkout (or with the package installed in place): it imports mnengine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
from PIL import Image

import mnengine

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "photos"


def make_images(folder: Path, count: int, seed: int = 0) -> List[str]:
    """`count` JPEGs of mixed sizes up to 1280x720: crops of the fixture photos, resized."""
    rng = np.random.default_rng(seed)
    sources = [Image.open(p).convert("RGB") for p in sorted(PHOTOS.iterdir()) if p.suffix in (".jpg", ".png", ".bmp")]
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        width, height = source.size
        crop_w, crop_h = (int(rng.integers(min(d, 64), d + 1)) for d in (width, height))
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        out_w = int(rng.integers(160, 1281))
        out_h = int(np.clip(out_w * rng.uniform(0.5, 1.0), 120, 720))
        image = source.crop((left, top, left + crop_w, top + crop_h)).resize((out_w, out_h), Image.BILINEAR)
        path = folder / f"{i:05d}.jpg"
        image.save(path, quality=int(rng.integers(75, 96)))
        paths.append(str(path))
    return paths


def spread(values: Sequence[float]) -> str:
    return f"median {statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f}, {len(values)} measurements)"


def classify_command(paths_arg: str, model: Path, args: argparse.Namespace, output: Path) -> List[str]:
    return [sys.executable, "-m", "mnengine.classify", paths_arg, "--model", str(model), "--threads", str(args.threads),
            "--workers", str(args.workers), "--batch", str(args.batch), "--output", str(output)]


def run_classify(command: List[str]) -> Dict[str, float]:
    """Runs `mnengine classify`; its images/s from the summary line and its peak resident
    memory, sampled from /proc every 0.2 s."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    samples: List[float] = []

    def sample() -> None:
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as f:
                    samples.extend(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
            except OSError:
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    summary = stderr.strip().splitlines()[-1]  # "N images, F failed, R images/s, S s wall"
    return {"images_per_s": float(summary.split(", ")[2].split()[0]), "peak_rss_mb": max(samples, default=0.0),
            "rss_samples_mb": samples}


def predict_throughput(engine: mnengine.Engine, batches: List[np.ndarray], streams: int = 1) -> float:
    """Images/s of predict over `batches`, from `streams` Python threads at once."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(streams) as pool:
        list(pool.map(engine.predict, batches))
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def measure_classify(paths: List[str], model: Path, workdir: Path, args: argparse.Namespace) -> None:
    """Blocks of `args.block` images, each timed with predict and then with classify, in
    pairs, so that both sides of a ratio see the same load on this shared machine."""
    print(f"\n## mnengine classify vs Engine.predict: {len(paths)} JPEGs, MobileNet v1 1.0@224, "
          f"{args.threads} engine threads, batch {args.batch}, {args.workers} decoding workers")
    engine = mnengine.Engine(model, threads=args.threads)
    # What classify itself does with the cores: one-thread inferences, --threads at once.
    one_thread = mnengine.Engine(model, threads=1)
    blocks = [paths[i:i + args.block] for i in range(0, len(paths), args.block)]
    listings = []
    for i, block in enumerate(blocks):
        listings.append(workdir / f"block{i}.txt")
        listings[-1].write_text("\n".join(block) + "\n")
    # The same decode and resize as classify's, done beforehand: float32 batches in memory.
    decoded = [[np.concatenate([engine.preprocess(p) for p in block[i:i + args.batch]])
                for i in range(0, len(block), args.batch)] for block in blocks]
    predict_throughput(engine, decoded[0][:4])
    print(f"command (one per block): {' '.join(classify_command('@BLOCK.txt', model, args, workdir / 'out.jsonl')[1:])}")
    classify_rates, predict_rates, streams_rates, ratios, streams_ratios, peaks = [], [], [], [], [], []
    for run in range(args.runs):
        run_ratios = []
        for listing, batches in zip(listings, decoded):
            predict_rates.append(predict_throughput(engine, batches))
            streams_rates.append(predict_throughput(one_thread, batches, streams=args.threads))
            result = run_classify(classify_command(f"@{listing}", model, args, workdir / "out.jsonl"))
            classify_rates.append(result["images_per_s"])
            peaks.append(result["peak_rss_mb"])
            run_ratios.append(100 * classify_rates[-1] / predict_rates[-1])
            streams_ratios.append(100 * classify_rates[-1] / streams_rates[-1])
        ratios.extend(run_ratios)
        print(f"run {run + 1}: classify / predict per block, %: {' '.join(f'{r:.0f}' for r in run_ratios)}")
    print(f"classify images/s per block: {spread(classify_rates)}")
    print(f"predict images/s per block (Engine(threads={args.threads})): {spread(predict_rates)}")
    print(f"classify / predict per block, %: {spread(ratios)}")
    print(f"predict images/s per block, {args.threads} one-thread inferences at once: {spread(streams_rates)}")
    print(f"classify / that, %: {spread(streams_ratios)}")
    print(f"classify peak RSS: {max(peaks):.0f} MB")


def measure_rss(paths: List[str], model: Path, workdir: Path, args: argparse.Namespace) -> None:
    listing = workdir / "many.txt"
    with open(listing, "w") as f:
        for i in range(args.rss_paths):
            f.write(paths[i % len(paths)] + "\n")
    if args.rss_model != "v1-1.0-224":
        alpha, size = (float(x) for x in args.rss_model.split("-")[1:])
        model = workdir / f"mobilenet_{args.rss_model}.bin"
        mnengine.save_model(mnengine.models.mobilenet_v1(alpha=alpha, input_size=int(size)), model)
    command = classify_command(f"@{listing}", model, args, workdir / "many.jsonl")
    print(f"\n## Resident memory over {args.rss_paths} paths (the folder's files repeated), MobileNet "
          f"{args.rss_model}\ncommand: {' '.join(command[1:])}")
    result = run_classify(command)
    samples = result["rss_samples_mb"]
    tenth = samples[len(samples) // 10] if samples else 0.0
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB; RSS at 10% of the run {tenth:.0f} MB, at the end "
          f"{samples[-1] if samples else 0.0:.0f} MB; {result['images_per_s']:.1f} images/s")


def best_of(function: Callable[[], object], runs: int) -> List[float]:
    """Seconds of `runs` calls after one untimed call."""
    function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def measure_ray(paths: List[str], model: Path, args: argparse.Namespace) -> None:
    import ray

    from mnengine.integrations.ray import Classifier

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        dataset = ray.data.from_items([{"path": p} for p in paths])
        rates = {}
        for workers in (1, 2):
            def run() -> None:
                # Half a CPU per actor: the scheduler keeps some for Ray Data's own tasks.
                dataset.map_batches(Classifier, fn_constructor_kwargs={"model": str(model), "threads": 1},
                                    concurrency=workers, num_cpus=0.5, batch_size=32).materialize()
            rates[workers] = [len(paths) / s for s in best_of(run, args.runs)]
            print(f"Ray Data, {workers} actor(s) x 1 engine thread: {spread(rates[workers])} images/s")
        ratios = [two / one for one, two in zip(rates[1], rates[2])]
        print(f"Ray 2 actors / 1 actor: {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})")
    finally:
        ray.shutdown()


def measure_dask(paths: List[str], model: Path, args: argparse.Namespace) -> None:
    import dask.bag
    from distributed import Client, LocalCluster

    from mnengine.integrations.dask import classify_bag

    rates = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            bag = classify_bag(dask.bag.from_sequence(paths, npartitions=8 * workers), model, threads=1)
            rates[workers] = [len(paths) / s for s in best_of(lambda: client.compute(bag).result(), args.runs)]
        print(f"Dask, {workers} worker(s) x 1 thread: {spread(rates[workers])} images/s")
    ratios = [two / one for one, two in zip(rates[1], rates[2])]
    print(f"Dask 2 workers / 1 worker: {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="JPEGs to make (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each measurement (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="classify's decoding workers (default 2)")
    parser.add_argument("--batch", type=int, default=8, help="images per inference (default 8)")
    parser.add_argument("--block", type=int, default=200, help="images per paired measurement (default 200)")
    parser.add_argument("--rss-paths", type=int, default=100_000, help="paths in the memory run (default 100000)")
    parser.add_argument("--rss-model", choices=["v1-1.0-224", "v1-0.25-128"], default="v1-1.0-224",
                        help="the memory run's model (v1-0.25-128: decoding-bound, 100,000 images in minutes)")
    parser.add_argument("--cluster-images", type=int, default=1000, help="images for Ray and Dask (default 1000)")
    parser.add_argument("--skip-classify", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    print(f"mnengine {mnengine.__version__}, {mnengine.cpu_info()}")
    with tempfile.TemporaryDirectory(prefix="mnengine-classify-bench-") as tmp:
        workdir = Path(tmp)
        model = workdir / "mobilenet_v1_1.0_224.bin"
        mnengine.save_model(mnengine.models.mobilenet_v1(alpha=1.0, input_size=224), model)
        (workdir / "images").mkdir()
        paths = make_images(workdir / "images", args.images)
        sizes = [os.path.getsize(p) for p in paths]
        print(f"{len(paths)} JPEGs, {sum(sizes) / 1e6:.0f} MB")
        if not args.skip_classify:
            measure_classify(paths, model, workdir, args)
        if not args.skip_rss:
            measure_rss(paths, model, workdir, args)
        if not args.skip_cluster:
            print(f"\n## Ray Data and Dask: {args.cluster_images} paths, MobileNet v1 1.0@224, "
                  f"each worker decoding its images and running a 1-thread Engine")
            measure_ray(paths[:args.cluster_images], model, args)
            measure_dask(paths[:args.cluster_images], model, args)


if __name__ == "__main__":
    main()
