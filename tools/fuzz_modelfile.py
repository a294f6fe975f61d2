"""Fuzzes mnengine's .bin loader: malformed model files must end in mnengine.ModelFormatError,
never a crash, a hang, another exception or a huge allocation.

    python tools/fuzz_modelfile.py --seconds 60 --seed 1

Starting from small valid MobileNet v1 and v2 files, float32 and int8, and MobileNetV3 Small
and Large ones (float32: version 3 files) (--models picks them), it makes files by truncating, flipping
bits, inserting and deleting bytes - most of which the CRC-32 rejects, so each of those is also
tried with the preamble's length and checksum recomputed - and by mutating the JSON header
semantically (huge, negative and wrong-typed values, non-text strings, missing and repeated
fields) and writing it back with valid framing, so the mutation reaches the header's parser.
Each file is loaded, and what loads is given to an Engine and run.

Each case's file is written to --failures before it runs (as seed<S>-case<N>.bin) and deleted
when the case passes, so a case that crashes the process or hangs it leaves its input behind;
the directory is removed again if it ends up empty. A case may map --headroom-mib more address
space than the process held before it, plus the activation memory its header declares (at
most 1 GiB, the engine's bound), so an allocation the file does not justify fails loudly. A
case that runs past --case-seconds in Python is stopped by SIGALRM and reported; one stuck in
C++ with the GIL released cannot be interrupted that way, so a watchdog thread then prints
every thread's traceback and exits the process. Exit status 1 if any case failed.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import json
import math
import random
import resource
import signal
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


def frame(header: bytes, data: bytes, version: int) -> bytes:
    """A file with valid preamble, alignment, length and checksum around header and data."""
    start = -(-(_PREAMBLE.size + len(header)) // 64) * 64
    body = header + b"\0" * (start - _PREAMBLE.size - len(header)) + data
    total = _PREAMBLE.size + len(body)
    crc = zlib.crc32(body)
    return _PREAMBLE.pack(MAGIC, version, len(header), total, crc, 0) + body


def reframe(blob: bytearray) -> bytes:
    """Recomputes file length and checksum of an arbitrary blob that keeps the magic."""
    blob = bytearray(blob)
    if len(blob) < _PREAMBLE.size:
        return bytes(blob)
    magic, version, header_length, _, _, reserved = _PREAMBLE.unpack_from(blob)
    _PREAMBLE.pack_into(blob, 0, magic, version, header_length, len(blob), zlib.crc32(blob[_PREAMBLE.size:]), reserved)
    return bytes(blob)


def split(valid: bytes):
    """(header, tensor data, format version) of a valid file."""
    _, version, header_length, _, _, _ = _PREAMBLE.unpack_from(valid)
    header = json.loads(valid[_PREAMBLE.size:_PREAMBLE.size + header_length])
    start = -(-(_PREAMBLE.size + header_length) // 64) * 64
    return header, valid[start:], version


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
    header, data, version = split(valid)
    if kind == 4:
        for _ in range(rng.randint(1, 3)):
            header, what = mutate_header(rng, header)
        text = json.dumps(header, allow_nan=True).encode("utf-8", "surrogatepass")
        return frame(text, data, version), what
    text = bytearray(json.dumps(header).encode())
    text[rng.randrange(len(text))] = rng.choice([0x80, 0xFF, 0xC3, 0x00, ord("{"), ord('"')])
    return frame(bytes(text), data, version), "header byte replaced, framing fixed"


#: Seconds the watchdog waits beyond --case-seconds, so that a case stuck in Python is still
#: reported by SIGALRM (and fuzzing goes on) before the watchdog ends the process.
WATCHDOG_GRACE_SECONDS = 10


def address_space() -> int:
    """Bytes of address space this process has mapped (VmSize), the quantity RLIMIT_AS bounds."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def limit_address_space(limit: int = resource.RLIM_INFINITY) -> None:
    """Sets the soft RLIMIT_AS, or lifts it to the hard one (which stays, so the soft limit can
    be raised again)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and limit > hard):
        limit = hard
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def activation_bytes(graph: mnengine.Graph) -> int:
    """The float32 bytes of one image's input and node outputs, as the header declares them."""
    return 4 * sum(math.prod(shape) for shape in graph.shapes().values())


def run_case(path: Path, headroom: int) -> str:
    """Loads the file and runs what loads, mapping at most `headroom` bytes more than the
    process holds now, plus the activation memory of a graph that loads."""
    start = address_space()
    limit_address_space(start + headroom)
    try:
        graph = mnengine.load_model(path)
        limit_address_space(start + headroom + activation_bytes(graph))
        engine = mnengine.Engine(graph, threads=2)
        x = np.zeros((1,) + engine.input_shape, np.float32)
        engine.predict(x)
        return "loaded and ran"
    except mnengine.ModelFormatError as e:
        if not str(e):
            raise AssertionError("ModelFormatError without a message") from e
        return "rejected"
    finally:
        limit_address_space()


def seed_models(which: str, seed: int) -> list:
    """The valid graphs whose files are mutated: MobileNet v1 and v2 in float32 ("float32") and
    quantized ("int8"), MobileNetV3 Small and Large in float32 ("v3"; int8 has no V3), or all."""
    chosen: dict = {"float32": [], "int8": [], "v3": []}
    for graph in (mnengine.models.mobilenet_v1(0.25, 32, classes=10), mnengine.models.mobilenet_v2(0.35, 33, classes=10)):
        calibration = np.random.default_rng(seed).integers(0, 256, (2,) + graph.input_shape, dtype=np.uint8)
        chosen["float32"].append(graph)
        chosen["int8"].append(mnengine.quantize.quantize(graph, calibration))
    chosen["v3"] = [mnengine.models.mobilenet_v3_small(0.5, 33, classes=10),
                    mnengine.models.mobilenet_v3_large(0.5, (32, 35), classes=10)]
    return [model for kind, models in chosen.items() if which in ("all", kind) for model in models]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--headroom-mib", type=int, default=512,
                        help="address space a case may map beyond its declared activations (default 512)")
    parser.add_argument("--case-seconds", type=int, default=20, help="time limit of one case")
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"),
                        help="where each case's file is written before it runs, and kept if it fails")
    parser.add_argument("--models", choices=("all", "float32", "int8", "v3"), default="all",
                        help="the valid files mutated: MobileNet v1 and v2 float32 ones, their int8 ones, "
                             "MobileNetV3 ones (float32) or all of them (default)")
    args = parser.parse_args()
    headroom = args.headroom_mib << 20
    faulthandler.enable()  # a crash prints the Python traceback; the case's file stays behind

    def timeout(signum, frame):
        raise TimeoutError(f"a case ran longer than {args.case_seconds} s")

    signal.signal(signal.SIGALRM, timeout)
    rng = random.Random(args.seed)
    seeds = []
    with tempfile.TemporaryDirectory(prefix="mnengine-fuzz-") as tmp:
        for model in seed_models(args.models, args.seed):
            path = Path(tmp) / "seed.bin"
            mnengine.save_model(model, path)
            seeds.append(path.read_bytes())
    args.failures.mkdir(parents=True, exist_ok=True)
    print(f"fuzz_modelfile: each case's file is in {args.failures} while it runs", flush=True)
    outcomes: dict = {}
    failures = 0
    deadline = time.monotonic() + args.seconds
    cases = 0
    while time.monotonic() < deadline:
        data, what = make_case(rng, rng.choice(seeds))
        cases += 1
        case_path = args.failures / f"seed{args.seed}-case{cases}.bin"
        case_path.write_bytes(data)
        signal.alarm(args.case_seconds)
        faulthandler.dump_traceback_later(args.case_seconds + WATCHDOG_GRACE_SECONDS, exit=True)
        try:
            outcome = run_case(case_path, headroom)
            case_path.unlink()
        except Exception as e:  # anything but ModelFormatError is a finding
            outcome = "FAILED"
            failures += 1
            print(f"case {cases} ({what}): {type(e).__name__}: {e} -> {case_path}", file=sys.stderr)
            traceback.print_exc(limit=3)
        finally:
            faulthandler.cancel_dump_traceback_later()
            signal.alarm(0)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if not any(args.failures.iterdir()):
        args.failures.rmdir()
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
    print(f"fuzz_modelfile: seed {args.seed}, {args.models} models, {cases} cases in {args.seconds:g} s: {summary}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
