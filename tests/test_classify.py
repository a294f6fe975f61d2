"""mnengine.classify and `mnengine classify`: the same predictions as Engine.predict on each
file, in input order, with failures reported and the run going on; paths, output formats,
progress, exit statuses and Ctrl-C."""

import csv
import importlib.metadata
import json
import os
import pty
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

import mnengine
from conftest import run_module
from mnengine import cli

SIZE = 64
LABELS = [f"class {i}" for i in range(1000)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "v1.bin"
    mnengine.save_model(mnengine.models.mobilenet_v1(0.25, SIZE, labels=LABELS), path)
    return path


@pytest.fixture(scope="module")
def engine(model_file):
    return mnengine.Engine(model_file, threads=2)


def write_photo(path, rng, width, height, mode="RGB"):
    """A smooth picture with noise (JPEG-friendly, and distinct per call)."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width, 1), y * 255 // max(height, 1), (x + y) % 256], -1)
    pixels = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path, rng):
    """Images of several formats and sizes, in subfolders, with files that are not images."""
    root = tmp_path / "photos"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    write_photo(root / "a" / "one.jpg", rng, 320, 240)
    write_photo(root / "a" / "two.PNG", rng, 50, 90, "L")
    write_photo(root / "b" / "three.bmp", rng, 64, 64)
    write_photo(root / "b" / "deeper" / "four.png", rng, 200, 100, "RGBA")
    write_photo(root / "top.jpeg", rng, 1280, 720)
    (root / "notes.txt").write_text("not an image, and not picked from a folder")
    return root


def image_paths(folder):
    return [str(folder / p) for p in ("a/one.jpg", "a/two.PNG", "b/deeper/four.png", "b/three.bmp", "top.jpeg")]


def assert_matches_predict(engine, path, top_k):
    """top_k: (label, index, probability) triples, checked against engine.predict(path)."""
    probabilities = engine.predict(path)[0]
    order = np.argsort(-probabilities, kind="stable")[:len(top_k)]
    assert [t[1] for t in top_k] == [int(i) for i in order]
    assert [t[0] for t in top_k] == [LABELS[i] for i in order]
    assert [t[2] for t in top_k] == [float(probabilities[i]) for i in order]  # exactly


@pytest.mark.parametrize("workers, batch", [(0, 1), (1, 3), (3, 8), (2, 2)])
def test_results_equal_predict_in_input_order(engine, folder, workers, batch):
    paths = image_paths(folder) * 3
    results = list(mnengine.classify(paths, engine, top_k=4, batch=batch, workers=workers))
    assert [r.path for r in results] == paths
    for result in results:
        assert result.ok and result.error is None and len(result.top_k) == 4
        assert_matches_predict(engine, result.path, result.top_k)


@pytest.mark.parametrize("threads", [1, 3])
def test_builds_an_engine_from_a_model_file_or_graph(model_file, engine, folder, threads):
    """Given a model, classify runs `threads` one-thread batches at once: the same results."""
    paths = image_paths(folder) * 4
    expected = list(mnengine.classify(paths, engine, batch=3))
    assert list(mnengine.classify(paths, model_file, batch=3, threads=threads)) == expected
    assert list(mnengine.classify(paths, mnengine.load_model(model_file), batch=2, threads=threads)) == expected


def test_model_without_labels_names_classes_by_index(folder):
    engine = mnengine.Engine(mnengine.models.mobilenet_v1(0.25, SIZE), threads=1)
    (result,) = mnengine.classify(image_paths(folder)[:1], engine, top_k=3)
    assert [p.label for p in result.top_k] == [str(p.index) for p in result.top_k]


def test_failures_are_reported_and_the_run_goes_on(engine, folder, tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((folder / "top.jpeg").read_bytes()[:3000])
    not_an_image = tmp_path / "text.jpg"
    not_an_image.write_text("hello")
    good = image_paths(folder)
    paths = [good[0], str(truncated), good[1], str(not_an_image), str(tmp_path / "missing.png"), str(folder), good[2]]
    results = list(mnengine.classify(paths, engine, batch=2, workers=2))
    assert [r.path for r in results] == paths
    assert [r.ok for r in results] == [True, False, True, False, False, False, True]
    assert results[1].error.startswith("OSError: ") and "truncated" in results[1].error
    assert results[3].error == f"ValueError: {not_an_image}: not an image file Pillow can read"
    assert results[4].error == f"FileNotFoundError: No such file or directory: {tmp_path / 'missing.png'}"
    assert results[5].error.startswith("IsADirectoryError: Is a directory")
    assert all(r.top_k == () for r in results if not r.ok)
    for result in (results[0], results[2], results[6]):
        assert_matches_predict(engine, result.path, result.top_k)


def test_paths_are_consumed_lazily(engine, folder):
    consumed = []

    def paths():
        for i in range(10_000):
            consumed.append(i)
            yield image_paths(folder)[i % 5]

    results = mnengine.classify(paths(), engine, batch=4, workers=2)
    assert consumed == []  # nothing happens before the first result is asked for
    first = [next(results) for _ in range(5)]
    # The two batches yielded from, and the bounded queue: two batches more plus one per worker.
    assert len(consumed) <= 2 * 4 + (2 * 4 + 2)
    results.close()  # stops the workers; the rest is never read
    assert len(consumed) <= 2 * 4 + (2 * 4 + 2)
    assert [r.path for r in first] == image_paths(folder)


def test_bad_arguments(engine, model_file, folder):
    paths = image_paths(folder)
    with pytest.raises(ValueError, match="top_k must be an integer from 1 to 1000, got 0"):
        mnengine.classify(paths, engine, top_k=0)
    with pytest.raises(ValueError, match="batch must be an integer from 1 to 4096, got 0"):
        mnengine.classify(paths, engine, batch=0)
    with pytest.raises(ValueError, match="workers must be an integer from 0 to 256, got -1"):
        mnengine.classify(paths, engine, workers=-1)
    with pytest.raises(ValueError, match="threads must be an integer from 1 to 256, got 0"):
        mnengine.classify(paths, model_file, threads=0)
    with pytest.raises(ValueError, match="threads applies to the Engine classify builds"):
        mnengine.classify(paths, engine, threads=2)
    with pytest.raises(TypeError, match="paths must be an iterable of paths, got the single path"):
        mnengine.classify(paths[0], engine)
    with pytest.raises(TypeError, match="engine_or_model must be an Engine, a model file path or a Graph, got int"):
        mnengine.classify(paths, 3)
    with pytest.raises(FileNotFoundError):
        mnengine.classify(paths, folder / "no-model.bin")


def test_expand_paths(folder, tmp_path):
    assert list(mnengine.expand_paths([folder])) == image_paths(folder)
    assert list(mnengine.expand_paths([folder], recursive=False)) == [str(folder / "top.jpeg")]
    assert list(mnengine.expand_paths([str(folder / "*" / "*.jpg")])) == [str(folder / "a" / "one.jpg")]
    assert list(mnengine.expand_paths([str(folder / "**" / "*.png")])) == [
        str(folder / "a" / "two.PNG"), str(folder / "b" / "deeper" / "four.png")][1:]  # glob is case-sensitive
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'top.jpeg'}\n\n{folder / 'notes.txt'}\nrelative name.jpg\n")
    # A list's lines are taken as they are; a name that matches nothing is passed on, to fail.
    assert list(mnengine.expand_paths([f"@{listing}", folder / "b", str(folder / "zz*.jpg"), "missing.jpg"])) == [
        str(folder / "top.jpeg"), str(folder / "notes.txt"), "relative name.jpg",
        str(folder / "b" / "deeper" / "four.png"), str(folder / "b" / "three.bmp"), str(folder / "zz*.jpg"),
        "missing.jpg"]
    with pytest.raises(FileNotFoundError):
        list(mnengine.expand_paths([f"@{tmp_path / 'no-list.txt'}"]))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_records(engine, records, paths):
    assert [r["path"] for r in records] == paths
    for record in records:
        if "top_k" in record:
            assert_matches_predict(engine, record["path"], [(t["label"], t["index"], t["probability"])
                                                            for t in record["top_k"]])


class Run:
    """What a command run in this process returned and printed."""

    def __init__(self, status, stdout, stderr):
        self.returncode, self.stdout, self.stderr = status, stdout, stderr


def run_cli(capsys, *args, command=cli.classify_main, prog="python -m mnengine.classify"):
    """`mnengine classify ARGS` (or `mnengine ARGS` with command=cli.main) in this process."""
    capsys.readouterr()
    arguments = [str(a) for a in args]
    try:
        status = command(arguments, prog=prog) if command is cli.classify_main else command(arguments)
    except SystemExit as e:  # argparse's errors and --help
        status = e.code
    out, err = capsys.readouterr()
    return Run(status, out, err)


def test_cli_writes_jsonl_json_and_csv(engine, model_file, folder, tmp_path, capsys):
    paths = image_paths(folder)
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    for name in ("out.jsonl", "out.json", "out.csv"):
        out = tmp_path / name
        result = run_cli(capsys, folder, bad, "--model", model_file, "--top-k", 3, "--batch", 2, "--workers", 2,
                         "--threads", 2, "--output", out)
        assert result.returncode == 1, result.stderr  # one file failed
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert f"python -m mnengine.classify: {bad}: ValueError: {bad}: not an image file Pillow can read" in lines
        assert lines[-1].startswith("6 images, 1 failed, ") and lines[-1].endswith(" s wall")
        if name == "out.csv":
            with open(out, newline="") as f:
                rows = list(csv.reader(f))
            assert rows[0] == ["path", "label_1", "probability_1", "label_2", "probability_2", "label_3",
                               "probability_3", "error"]
            records = [{"path": row[0], "error": row[7]} if row[7] else
                       {"path": row[0], "top_k": [{"label": row[1 + 2 * r], "index": LABELS.index(row[1 + 2 * r]),
                                                   "probability": float(row[2 + 2 * r])} for r in range(3)]}
                       for row in rows[1:]]
            assert rows[-1][1:7] == [""] * 6
        else:
            records = read_jsonl(out) if name == "out.jsonl" else json.loads(out.read_text())
        check_records(engine, records, paths + [str(bad)])
        assert records[-1]["error"] == f"ValueError: {bad}: not an image file Pillow can read"


def test_cli_prints_json_lines_to_stdout(engine, model_file, folder, capsys):
    result = run_cli(capsys, folder, "--model", model_file, "--top-k", 2)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    check_records(engine, records, image_paths(folder))
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("5 images, 0 failed, ")
    missing = folder / "zz.jpg"
    quiet = run_cli(capsys, folder, "--model", model_file, "--quiet", missing)  # paths may follow options
    assert quiet.returncode == 1 and quiet.stderr == ""
    assert json.loads(quiet.stdout.splitlines()[-1])["path"] == str(missing)


def test_cli_reads_a_list_file(engine, model_file, folder, tmp_path):
    """Also the module and subcommand entry points, in their own processes."""
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(image_paths(folder)[::-1]) + "\n")
    out = tmp_path / "out.json"
    for module, *command in (("mnengine.classify",), ("mnengine", "classify")):
        result = run_module(module, *command, f"@{listing}", "--model", model_file, "-o", out, "--workers", 0)
        assert result.returncode == 0, result.stderr
        check_records(engine, json.loads(out.read_text()), image_paths(folder)[::-1])


@pytest.mark.parametrize("args, message", [
    (["--output", "out.txt"], "the format comes from the extension, which must be one of .jsonl, .json, .csv; got '.txt'"),
    (["--top-k", "0"], "--top-k must be a positive integer, got 0"),
    (["--top-k", "1001"], "--top-k 1001 exceeds the model's 1000 classes"),
    (["--workers", "-1"], "--workers must be a non-negative integer, got -1"),
    (["--output", "/nonexistent-dir/out.csv"], "cannot write the output: [Errno 2] No such file or directory"),
    (["@/nonexistent-list.txt"], "@/nonexistent-list.txt: no such list file"),
])
def test_cli_bad_arguments(model_file, folder, args, message, capsys):
    result = run_cli(capsys, folder, "--model", model_file, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_cli_bad_model_and_no_images(model_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken.bin"
    broken.write_bytes(model_file.read_bytes()[:-10])
    result = run_cli(capsys, tmp_path / "empty", "--model", broken)
    assert result.returncode == 2 and "cannot load the model: " in result.stderr and "truncated" in result.stderr
    result = run_cli(capsys, tmp_path / "empty", "--model", tmp_path / "none.bin")
    assert result.returncode == 2 and "cannot load the model: [Errno 2] No such file" in result.stderr
    result = run_cli(capsys, tmp_path / "empty", "--model", model_file)
    assert result.returncode == 2 and f"no image files found in {tmp_path / 'empty'}" in result.stderr


def test_mnengine_command_dispatches_subcommands(capsys):
    for command in ("classify", "bench", "export"):
        result = run_cli(capsys, command, "--help", command=cli.main)
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
    assert "classify" in run_cli(capsys, "--help", command=cli.main).stdout
    result = run_cli(capsys, "frobnicate", command=cli.main)
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")
               if e.value.startswith("mnengine.")}
    assert scripts == {"mnengine": "mnengine.cli:main", "mnengine-bench": "mnengine.bench:main",
                       "mnengine-export": "mnengine.export.__main__:main"}


def wait_for_lines(path, count, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {count} lines (exit status {process.poll()})")


def default_sigint():
    """Ctrl-C as a terminal delivers it: a shell without job control starts background commands
    with SIGINT ignored, and a Python started that way never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("name", ["out.jsonl", "out.json"])  # a .csv is flushed as a .jsonl is
def test_ctrl_c_keeps_a_valid_flushed_output(engine, model_file, folder, tmp_path, name):
    listing = tmp_path / "many.txt"
    listing.write_text("\n".join(image_paths(folder) * 2000) + "\n")  # far more than runs before the signal
    out = tmp_path / name
    process = subprocess.Popen([sys.executable, "-m", "mnengine.classify", f"@{listing}", "--model", str(model_file),
                                "--batch", "4", "--threads", "1", "--output", str(out)],
                               cwd=tempfile.gettempdir(), stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    try:
        wait_for_lines(out, 20, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("interrupted after ") and "Traceback" not in stderr
    records = read_jsonl(out) if name == "out.jsonl" else json.loads(out.read_text())
    check_records(engine, records[:10], (image_paths(folder) * 2)[:10])
    done = int(stderr.splitlines()[-1].split()[2])
    assert 20 <= len(records) == done < 10_000
    assert [r["path"] for r in records] == (image_paths(folder) * 2000)[:done]


def test_progress_line_on_a_terminal(model_file, folder, tmp_path, capsys, monkeypatch):
    """On a terminal stderr gets a progress line redrawn with carriage returns, failures on
    lines of their own, and the summary."""
    main, secondary = pty.openpty()
    terminal = os.fdopen(secondary, "w")
    monkeypatch.setattr(sys, "stderr", terminal)
    received = []

    def drain():  # a full terminal would block its writer
        try:
            while chunk := os.read(main, 4096):
                received.append(chunk)
        except OSError:  # EIO: Linux's end of a terminal whose other side closed
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(image_paths(folder) * 8 + [str(tmp_path / "missing.jpg")]) + "\n")
    try:
        status = cli.classify_main([f"@{listing}", "--model", str(model_file), "-o", str(tmp_path / "out.jsonl")])
    finally:
        terminal.close()  # the reader sees the end of the terminal's output
        reader.join(timeout=30)
        os.close(main)
    assert status == 1
    text = b"".join(received).decode()
    assert "\r41/41 (100%) images, " in text and "\x1b[K" in text
    assert f"{tmp_path / 'missing.jpg'}: FileNotFoundError" in text
    assert text.rstrip().splitlines()[-1].split("\r")[-1].split("\x1b[K")[-1].startswith("41 images, 1 failed, ")


def resident_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.rss
def test_memory_stays_flat_over_many_paths(engine, folder):
    """Results are not kept and decoded images wait in a bounded queue."""
    small = str(folder / "a" / "two.PNG")
    results = mnengine.classify((small for _ in range(6000)), engine, batch=8, workers=2)
    samples = [resident_mb() for i, _ in enumerate(results) if i % 500 == 499]
    assert max(samples[2:]) - samples[1] < 20, samples
