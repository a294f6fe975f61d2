"""llvm-mca's estimate of mnengine's aarch64 inner loops, in cycles per multiply-add, for the
cores LLVM models (there is no ARM hardware here; bench/RESULTS.md (aarch64 section) has the method, the
results and their limits).

    python bench/arm_mca.py [--loop NAME=FILE.s[:LABEL] ...]

Each kernel file is compiled as the aarch64 wheel compiles it (zig's clang through
tools/aarch64/zig/c++, -O3, ARMv8.0, or ARMv8.2 + dotprod for the *-neondot.cc files) and
each kernel's widest inner loop is taken: the loop of one basic block with the most
multiply-adds (the full tile: 6 rows of the f32 GEMM, the 3-pixel block of the int8
depthwise). llvm-mca then runs it for each core, and the table gives cycles per iteration
over the multiply-adds of an iteration, counted from the instructions themselves (FMLA .4s:
4, SDOT .4s: 16, SMULL/SMLAL into .8h: 8, into .4s: 4).

--loop adds a loop from any aarch64 assembly file (another library's kernel, say): the loop
whose header is LABEL (a numeric local label such as 1, closed by a branch to 1b, or a .LBB
label), or without LABEL the widest loop as above.

zig comes from the aarch64 build cache (tools/aarch64/common.sh: $MNENGINE_AARCH64_CACHE, by
default ~/.cache/mnengine-aarch64; tools/aarch64/build-wheel.sh fills it) unless --zig names
it; llvm-mca is Debian's LLVM 14 (llvm-mca-14) unless --mca names another.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "csrc" / "kernels" / "arm"
# (table name, kernel file): each file holds one kernel (the f32 GEMM's is its IGEMM's).
MNENGINE_LOOPS = [
    ("mnengine f32 gemm 6x8 (neon)", "f32-gemm-6x8-neon.cc"),
    ("mnengine qs8 gemm 2x8c8 (neon)", "qs8-gemm-2x8c8-neon.cc"),
    ("mnengine qs8 gemm 4x8c4 (neondot)", "qs8-gemm-4x8c4-neondot.cc"),
    ("mnengine f32 dwconv3x3 (neon)", "f32-dwconv3x3-neon.cc"),
    ("mnengine qs8 dwconv3x3 (neon)", "qs8-dwconv3x3-neon.cc"),
]
# -mcpu values; LLVM 14 has scheduling models of its own for the first three only (the table
# says which model each one gets).
CPUS = ["cortex-a53", "cortex-a55", "cortex-a57", "cortex-a72", "neoverse-n1"]
COMPILE_FLAGS = ["-O3", "-g0", "-DNDEBUG", "-std=c++17", "-ffp-contract=off", f"-I{REPO / 'csrc'}"]

LABEL = re.compile(r"^\s*([.\w$]+):")
BRANCH = re.compile(r"^\s*(b(\.\w+)?|cbn?z|tbn?z)\s+(.*)$", re.IGNORECASE)


def find_zig(cache: str) -> str:
    found = glob.glob(os.path.join(cache, "host-venv", "lib", "python3*", "site-packages", "ziglang", "zig"))
    if not found:
        sys.exit(f"zig not found under {cache}: run tools/aarch64/build-wheel.sh first, or pass --zig")
    return found[0]


def compile_to_assembly(zig: str, source: str, out_dir: str) -> str:
    flags = ["-march=armv8.2-a+dotprod"] if source.endswith("-neondot.cc") else []
    out = os.path.join(out_dir, source.replace(".cc", ".s"))
    env = dict(os.environ, MNENGINE_ZIG=zig)
    subprocess.run(["sh", str(REPO / "tools/aarch64/zig/c++"), *COMPILE_FLAGS, *flags, "-S", "-o", out,
                    str(KERNELS / source)], check=True, env=env, stderr=subprocess.DEVNULL)
    return out


def is_instruction(line: str) -> bool:
    text = line.split("//")[0].strip()
    return bool(text) and not text.startswith((".", "#", "@")) and not LABEL.match(line)


def multiply_adds(line: str) -> int:
    """The multiply-adds of one instruction (0 for any other)."""
    text = line.split("//")[0].strip().lower()
    mnemonic = text.split()[0] if text else ""
    if mnemonic == "sdot":
        return 16
    if mnemonic in ("fmla", "smull", "smull2", "smlal", "smlal2"):
        lanes = re.match(r"\S+\s+v\d+\.(\d+)[bhsd]", text)
        return int(lanes.group(1)) if lanes else 0
    return 0


def wide_loads(line: str) -> int:
    """The 128-bit vector registers one instruction loads (LDR/LDUR/LDP of q registers, LD1 of
    16-byte arrangements): on Cortex-A53 and A55 each one blocks dual issue for 2 cycles,
    which LLVM 14's models of them do not know (bench/RESULTS.md (aarch64 section))."""
    text = line.split("//")[0].strip().lower()
    mnemonic = text.split()[0] if text else ""
    if mnemonic in ("ldr", "ldur", "ldp"):
        return len(re.findall(r"\bq\d+\b", text.split("[")[0]))
    if mnemonic.startswith("ld1"):
        return len(re.findall(r"v\d+\.(16b|8h|4s|2d)", text.split("[")[0]))
    return 0


def loops(lines):
    """(header label, body lines) of every loop made of one basic block: a label, then
    instructions without another label, then a branch back to that label."""
    found = []
    for i, line in enumerate(lines):
        label = LABEL.match(line)
        if not label:
            continue
        name = label.group(1)
        for j in range(i + 1, len(lines)):
            if LABEL.match(lines[j]):
                break
            branch = BRANCH.match(lines[j].split("//")[0])
            if branch and branch.group(3).split(",")[-1].strip() in (name, name + "b"):
                body = [l for l in lines[i + 1:j + 1] if is_instruction(l)]
                # A numeric local label ("1b") has no definition in the loop alone, and
                # llvm-mca would drop the branch: it gets a symbol, as .LBB labels are.
                body[-1] = re.sub(r"\b\d+b\s*$", ".Lloop", body[-1])
                found.append((name, body))
                break
    return found


def widest_loop(lines, header=None):
    candidates = [(name, body) for name, body in loops(lines) if header is None or name == header]
    if not candidates:
        sys.exit(f"no loop{' at label ' + header if header else ''} found")
    return max(candidates, key=lambda loop: sum(map(multiply_adds, loop[1])))[1]


def model_of(mca: str, cpu: str) -> str:
    """The scheduling model llvm-mca uses for `cpu`, named by its first resource."""
    report = subprocess.run([mca, "-mtriple=aarch64", f"-mcpu={cpu}"], input="add x0, x0, x1\n",
                            capture_output=True, text=True, check=True).stdout
    resource = re.search(r"^\[[\d.]+\]\s+-\s+(\w+)", report, re.MULTILINE)
    return re.sub(r"Unit\w*$", "", resource.group(1)) if resource else "?"


def cycles_per_iteration(mca: str, cpu: str, body):
    """(simulated cycles per iteration, the resources' bound: llvm-mca's Block RThroughput)."""
    report = subprocess.run([mca, "-mtriple=aarch64", f"-mcpu={cpu}", "-mattr=+dotprod", "-iterations=300"],
                            input="\n".join(body) + "\n", capture_output=True, text=True, check=True).stdout
    iterations = int(re.search(r"^Iterations:\s+(\d+)", report, re.MULTILINE).group(1))
    cycles = int(re.search(r"^Total Cycles:\s+(\d+)", report, re.MULTILINE).group(1))
    bound = float(re.search(r"^Block RThroughput:\s+([\d.]+)", report, re.MULTILINE).group(1))
    return cycles / iterations, bound


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", action="append", default=[], metavar="NAME=FILE.s[:LABEL]",
                        help="a further loop for the table, from an assembly file")
    parser.add_argument("--zig", help="zig binary (default: the aarch64 build cache's)")
    parser.add_argument("--mca", default="llvm-mca-14")
    parser.add_argument("--cpus", default=",".join(CPUS))
    args = parser.parse_args()
    cpus = args.cpus.split(",")
    cache = os.environ.get("MNENGINE_AARCH64_CACHE",
                           os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                        "mnengine-aarch64"))
    zig = args.zig or find_zig(cache)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in MNENGINE_LOOPS:
            lines = Path(compile_to_assembly(zig, source, tmp)).read_text().splitlines()
            rows.append((name, widest_loop(lines)))
    for spec in args.loop:
        name, path = spec.split("=", 1)
        path, _, header = path.partition(":")
        rows.append((name, widest_loop(Path(path).read_text().splitlines(), header or None)))

    models = [model_of(args.mca, cpu) for cpu in cpus]
    print("Cycles per multiply-add of each inner loop as llvm-mca simulates it "
          f"({args.mca}, -iterations=300), and in brackets the bound of the core's resources alone "
          "(Block RThroughput: issue width and pipes, no latencies)\n")
    print("| loop | instructions | 128-bit loads | multiply-adds | "
          + " | ".join(f"{c} ({m} model)" for c, m in zip(cpus, models)) + " |")
    print("|---|---|---|---|" + "---|" * len(cpus))
    for name, body in rows:
        macs = sum(map(multiply_adds, body))
        cells = []
        for cpu in cpus:
            cycles, bound = cycles_per_iteration(args.mca, cpu, body)
            cells.append(f"{cycles / macs:.3f} ({bound / macs:.3f})")
        print(f"| {name} | {len(body)} | {sum(map(wide_loads, body))} | {macs} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
