"""The ``mnengine`` command: ``mnengine classify``, ``mnengine bench``, ``mnengine export``.

``mnengine classify PATH... --model M.bin`` (also ``python -m mnengine.classify``) writes
each image's top-k classes as JSON lines to stdout, or to ``--output`` as ``.jsonl``,
``.json`` or ``.csv``; progress and a summary go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, TextIO

from .classification import DEFAULT_BATCH, Classification, classify
from .images import expand_paths
from .errors import ModelFormatError
from .modelfile import load as load_model

#: Exit statuses of ``mnengine classify``.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

OUTPUT_FORMATS = (".jsonl", ".json", ".csv")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``mnengine COMMAND ARGS...``: runs one of the subcommands."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands: Dict[str, Callable[[List[str]], int]] = {
        "classify": lambda args: classify_main(args, prog="mnengine classify"),
        "bench": _bench,
        "export": _export,
    }
    usage = ("usage: mnengine {classify,bench,export} ...\n\n"
             "  classify  classify image files, folders, globs or @lists with a .bin model\n"
             "  bench     benchmark MobileNets (the same as mnengine-bench)\n"
             "  export    convert a Keras MobileNet into a .bin (the same as mnengine-export)\n\n"
             "'mnengine COMMAND --help' describes each command.")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stdout if argv else sys.stderr)
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] not in commands:
        print(f"{usage}\n\nmnengine: error: unknown command {argv[0]!r}", file=sys.stderr)
        return EXIT_USAGE
    return commands[argv[0]](argv[1:])


def _bench(args: List[str]) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def _export(args: List[str]) -> int:
    from .export.__main__ import main as export_main

    return export_main(args)


def parse_classify_args(argv: Sequence[str], prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Classify images with an mnengine .bin model. Results go to stdout as JSON lines, "
                    "or to --output; progress, failures and a summary go to stderr.",
        epilog="Exit status: 0 when every image was classified, 1 when some could not be read, 2 for bad "
               "arguments, a model that cannot be loaded or an output that cannot be written, 130 when "
               "interrupted (what was written is kept).")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files, folders (searched recursively for image extensions, sorted), "
                             "glob patterns (quote them: 'photos/**/*.jpg'), or @FILE: a text file with one "
                             "path per line")
    parser.add_argument("--model", required=True, metavar="M.bin", help="the model file")
    parser.add_argument("--top-k", type=int, default=5, metavar="K", help="classes per image (default 5)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="B",
                        help=f"images per inference (default {DEFAULT_BATCH})")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="inference threads, each running its own batch (default: all cores)")
    parser.add_argument("--workers", type=int, metavar="W",
                        help="image decoding threads (default: the cores, at least 2; 0: decode "
                             "between inferences on the main thread)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write results to FILE: .jsonl (one JSON object per line, as they come), "
                             ".json (one array) or .csv (one row per image)")
    parser.add_argument("--no-recursive", dest="recursive", action="store_false",
                        help="search folders' own files only, not their subfolders")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing on stderr but fatal errors")
    args = parser.parse_intermixed_args(argv)
    if args.output is not None:
        extension = os.path.splitext(args.output)[1].lower()
        if extension not in OUTPUT_FORMATS:
            parser.error(f"--output {args.output!r}: the format comes from the extension, which must be one of "
                         f"{', '.join(OUTPUT_FORMATS)}; got {extension or 'none'!r}")
    for path in args.paths:
        if path.startswith("@") and not os.path.isfile(path[1:]):
            parser.error(f"{path}: no such list file (@FILE names a text file with one path per line)")
    for name in ("top_k", "batch", "threads", "workers"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "workers" else 1):
            parser.error(f"--{name.replace('_', '-')} must be a {'non-negative' if name == 'workers' else 'positive'} "
                         f"integer, got {value}")
    return args


def classify_main(argv: Optional[Sequence[str]] = None, prog: str = "python -m mnengine.classify") -> int:
    """``mnengine classify``: returns the exit status."""
    args = parse_classify_args(sys.argv[1:] if argv is None else argv, prog)

    def fail(message: str) -> int:
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        model = load_model(args.model)
        classes = math.prod(model.output_shape)
        if args.top_k > classes:
            return fail(f"--top-k {args.top_k} exceeds the model's {classes} classes")
        results = classify(expand_paths(args.paths, args.recursive), model, top_k=args.top_k, batch=args.batch,
                           workers=args.workers, threads=args.threads)
    except (OSError, ModelFormatError) as e:
        return fail(f"cannot load the model: {e}")
    try:
        stream = sys.stdout if args.output is None else open(args.output, "w", encoding="utf-8", newline="")
    except OSError as e:
        return fail(f"cannot write the output: {e}")

    show_progress = not args.quiet and sys.stderr.isatty()
    total = sum(1 for _ in expand_paths(args.paths, args.recursive)) if show_progress else None
    progress = Progress(sys.stderr, total, enabled=show_progress)
    writer = open_writer(args.output or ".jsonl", stream, args.top_k)
    start = time.perf_counter()
    done = failed = 0
    interrupted = False
    guard = InterruptGuard()
    try:
        for result in results:
            with guard:  # written and counted, or neither: the summary's count is the file's
                writer.write(result)
                done += 1
            if not result.ok:
                failed += 1
                if not args.quiet:
                    progress.note(f"{prog}: {result.path}: {result.error}")
            progress.update(done, failed)
    except KeyboardInterrupt:
        # A second Ctrl-C must not cut the cleanup short: it takes at most one batch's decoding.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        interrupted = True
    except BrokenPipeError:
        # The reader went away (mnengine classify ... | head): stop without a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        interrupted = True
    except OSError as e:  # a list file that became unreadable, a full disk
        progress.finish()
        return fail(f"stopped after {done} images: {e}")
    finally:
        guard.uninstall()
        results.close()
        writer.close()
        if stream is not sys.stdout:
            stream.close()
    seconds = time.perf_counter() - start
    progress.finish()
    if not args.quiet:
        print(summary(done, failed, seconds, interrupted), file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    if done == 0:
        return fail(f"no image files found in {' '.join(args.paths)}")
    return EXIT_SOME_FAILED if failed else EXIT_OK


class InterruptGuard:
    """Holds a Ctrl-C that arrives inside ``with guard:`` until the block ends, then raises
    KeyboardInterrupt; outside the block Ctrl-C raises it at once, as Python's own handler does.
    Installed only where that handler is SIGINT's (not when SIGINT is ignored, as in a
    background job, or handled by the embedding program) and in the main thread, the only one
    that may set signal handlers."""

    def __init__(self) -> None:
        self.inside = self.pending = False
        self.installed = (threading.current_thread() is threading.main_thread() and
                          signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if self.installed:
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.inside:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> None:
        self.inside = True

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self.inside = False
        if self.pending and kind is None:
            self.pending = False
            raise KeyboardInterrupt

    def uninstall(self) -> None:
        """Gives SIGINT back to Python's handler (unless it was set to something else since)."""
        if self.installed and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def summary(done: int, failed: int, seconds: float, interrupted: bool) -> str:
    rate = done / seconds if seconds > 0 else 0.0
    stopped = "interrupted after " if interrupted else ""
    return (f"{stopped}{done} images, {failed} failed, {rate:.1f} images/s, {seconds:.1f} s wall")


class JsonLinesWriter:
    """One JSON object per line, flushed as each result comes."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, result: Classification) -> None:
        self.stream.write(json.dumps(result.as_record()) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonArrayWriter:
    """A JSON array, one object per line; closed on close(), so that an interrupted run
    leaves a valid file with the results written so far."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.separator = "[\n"

    def write(self, result: Classification) -> None:
        self.stream.write(self.separator + json.dumps(result.as_record()))
        self.separator = ",\n"
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("[]\n" if self.separator == "[\n" else "\n]\n")
        self.stream.flush()


class CsvWriter:
    """A header, then one row per image: path, label_1, probability_1, ..., label_K,
    probability_K, error (empty unless the image failed, which leaves the classes empty)."""

    def __init__(self, stream: TextIO, top_k: int):
        self.stream = stream
        self.top_k = top_k
        self.rows = csv.writer(stream)
        ranks = [[f"label_{rank}", f"probability_{rank}"] for rank in range(1, top_k + 1)]
        self.rows.writerow(["path"] + [column for pair in ranks for column in pair] + ["error"])
        stream.flush()

    def write(self, result: Classification) -> None:
        classes = [value for p in result.top_k for value in (p.label, repr(p.probability))]
        classes += [""] * (2 * self.top_k - len(classes))
        self.rows.writerow([result.path] + classes + [result.error or ""])
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def open_writer(output: str, stream: TextIO, top_k: int):
    """The writer for the format ``output``'s extension names."""
    extension = os.path.splitext(output)[1].lower()
    if extension == ".csv":
        return CsvWriter(stream, top_k)
    if extension == ".json":
        return JsonArrayWriter(stream)
    return JsonLinesWriter(stream)


class Progress:
    """A progress line on a terminal, redrawn in place at most 10 times a second: images
    done (of how many), rate, failures and time left. Does nothing unless enabled."""

    def __init__(self, stream: TextIO, total: Optional[int], enabled: bool):
        self.stream = stream
        self.total = total
        self.enabled = enabled
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.line = ""

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last_draw < 0.1 and done != self.total):
            return
        self.last_draw = now
        rate = done / (now - self.start) if now > self.start else 0.0
        count = f"{done}" if self.total is None else f"{done}/{self.total} ({100 * done // max(self.total, 1)}%)"
        left = ""
        if self.total is not None and rate > 0:
            seconds = int((self.total - done) / rate)
            left = f", {seconds // 60}:{seconds % 60:02d} left"
        self.line = f"{count} images, {rate:.1f}/s, {failed} failed{left}"
        self.stream.write("\r" + self.line + "\x1b[K")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A message on its own line, above the progress line."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
        self.stream.write(message + "\n")
        if self.enabled and self.line:
            self.stream.write(self.line)
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.line:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
