"""Fuzzes mnengine's .bin loader: malformed model files must end in mnengine.ModelFormatError,
never a crash, a hang, another exception or a huge allocation.

    python tools/fuzz_modelfile.py --seconds 60 --seed 1

Starting from small valid MobileNet v1 and v2 files it makes files by truncating, flipping
bits, inserting and deleting bytes - most of which the CRC-32 rejects, so each of those is also
tried with the preamble's length and checksum recomputed - and by mutating the JSON header
semantically (huge, negative and wrong-typed values, non-text strings, missing and repeated
fields) and writing it back with valid framing, so the mutation reaches the header's parser.
Each file is loaded, and what loads is given to an Engine and run. The address space is
limited (--memory-gib), so an attempt to allocate gigabytes fails loudly; each case has a
time limit. Exit status 1 if any case failed; the failing files are kept in --failures.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

import mnengine
from mnengine.modelfile import MAGIC, _PREAMBLE

SURPRISES = [
    0, -1, -(2**31), 2**31, 2**32 + 1, 2**62, 10**30, 1.5, float("nan"), True, None, "", "x" * 10000,
    "\udcff", "\x00\x01", [], [0] * 9, [2**30] * 3, [-1, 3, 3], {}, {"a": 1}, [[[[[]]]]],
]


def frame(header: bytes, data: bytes) -> bytes:
    """A file with valid preamble, alignment, length and checksum around header and data."""
    start = -(-(_PREAMBLE.size + len(header)) // 64) * 64
    body = header + b"\0" * (start - _PREAMBLE.size - len(header)) + data
    total = _PREAMBLE.size + len(body)
    crc = zlib.crc32(body)
    return _PREAMBLE.pack(MAGIC, 1, len(header), total, crc, 0) + body


def reframe(blob: bytearray) -> bytes:
    """Recomputes file length and checksum of an arbitrary blob that keeps the magic."""
    blob = bytearray(blob)
    if len(blob) < _PREAMBLE.size:
        return bytes(blob)
    magic, version, header_length, _, _, reserved = _PREAMBLE.unpack_from(blob)
    _PREAMBLE.pack_into(blob, 0, magic, version, header_length, len(blob), zlib.crc32(blob[_PREAMBLE.size:]), reserved)
    return bytes(blob)


def split(valid: bytes):
    _, _, header_length, _, _, _ = _PREAMBLE.unpack_from(valid)
    header = json.loads(valid[_PREAMBLE.size:_PREAMBLE.size + header_length])
    start = -(-(_PREAMBLE.size + header_length) // 64) * 64
    return header, valid[start:]


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value[:12]):
            yield from paths(item, prefix + (index,))


def mutate_header(rng: random.Random, header) -> tuple:
    header = copy.deepcopy(header)
    candidates = [p for p in paths(header) if p]
    path = rng.choice(candidates)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = rng.randrange(4)
    if action == 0:
        parent[key] = rng.choice(SURPRISES)
    elif action == 1 and isinstance(parent, dict):
        del parent[key]
    elif action == 2 and isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] = rng.choice([parent[key] * 1000, parent[key] + 1, parent[key] - 1, 2**40, 65536])
    else:
        parent[key] = copy.deepcopy(rng.choice([parent[k] for k in (parent if isinstance(parent, dict) else range(len(parent)))]))
    return header, f"header {'/'.join(map(str, path))} (action {action})"


def make_case(rng: random.Random, valid: bytes):
    kind = rng.randrange(6)
    blob = bytearray(valid)
    if kind == 0:
        cut = rng.randrange(len(blob))
        return bytes(blob[:cut]), f"truncated to {cut}"
    if kind in (1, 2):
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(blob))
            blob[position] ^= 1 << rng.randrange(8)
        return (bytes(blob), "bit flips") if kind == 1 else (reframe(blob), "bit flips, checksum fixed")
    if kind == 3:
        position = rng.randrange(len(blob))
        if rng.random() < 0.5:
            blob[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
            what = "bytes inserted"
        else:
            del blob[position:position + rng.randint(1, 64)]
            what = "bytes deleted"
        return reframe(blob), what + ", checksum fixed"
    header, data = split(valid)
    if kind == 4:
        for _ in range(rng.randint(1, 3)):
            header, what = mutate_header(rng, header)
        text = json.dumps(header, allow_nan=True).encode("utf-8", "surrogatepass")
        return frame(text, data), what
    text = bytearray(json.dumps(header).encode())
    text[rng.randrange(len(text))] = rng.choice([0x80, 0xFF, 0xC3, 0x00, ord("{"), ord('"')])
    return frame(bytes(text), data), "header byte replaced, framing fixed"


def run_case(path: Path) -> str:
    try:
        graph = mnengine.load_model(path)
        engine = mnengine.Engine(graph, threads=2)
        x = np.zeros((1,) + engine.input_shape, np.float32)
        engine.predict(x)
        return "loaded and ran"
    except mnengine.ModelFormatError as e:
        if not str(e):
            raise AssertionError("ModelFormatError without a message") from e
        return "rejected"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-gib", type=float, default=4.0, help="address-space limit of this process")
    parser.add_argument("--case-seconds", type=int, default=20, help="time limit of one case")
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"))
    args = parser.parse_args()
    limit = int(args.memory_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def timeout(signum, frame):
        raise TimeoutError(f"a case ran longer than {args.case_seconds} s")

    signal.signal(signal.SIGALRM, timeout)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="mnengine-fuzz-") as tmp:
        seeds = []
        for graph in (mnengine.models.mobilenet_v1(0.25, 32, classes=10), mnengine.models.mobilenet_v2(0.35, 33, classes=10)):
            path = Path(tmp) / "seed.bin"
            mnengine.save_model(graph, path)
            seeds.append(path.read_bytes())
        case_path = Path(tmp) / "case.bin"
        outcomes: dict = {}
        failures = 0
        deadline = time.monotonic() + args.seconds
        cases = 0
        while time.monotonic() < deadline:
            data, what = make_case(rng, rng.choice(seeds))
            case_path.write_bytes(data)
            cases += 1
            signal.alarm(args.case_seconds)
            try:
                outcome = run_case(case_path)
            except Exception as e:  # anything but ModelFormatError is a finding
                outcome = "FAILED"
                failures += 1
                args.failures.mkdir(parents=True, exist_ok=True)
                kept = args.failures / f"case-{args.seed}-{cases}.bin"
                kept.write_bytes(data)
                print(f"case {cases} ({what}): {type(e).__name__}: {e} -> {kept}", file=sys.stderr)
                traceback.print_exc(limit=3)
            finally:
                signal.alarm(0)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
    print(f"fuzz_modelfile: seed {args.seed}, {cases} cases in {args.seconds:g} s: {summary}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
