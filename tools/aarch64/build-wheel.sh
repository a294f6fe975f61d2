#!/usr/bin/env bash
# Builds mnengine's Linux aarch64 wheel for CPython 3.11 on an x86-64 host:
#   tools/aarch64/build-wheel.sh [OUT_DIR]      (default: dist/aarch64)
# -> OUT_DIR/mnengine-<version>-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl
# zig compiles against glibc 2.17 (cmake/aarch64-linux-gnu.2.17-zig.cmake); auditwheel gives
# the manylinux tag; the checks at the end fail the build when the tag, the extension's suffix
# or its machine is wrong, or the wheel needs a library outside the manylinux policy (each of
# those would otherwise only show on the user's board).
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$REPO/dist/aarch64}" && cd "${1:-$REPO/dist/aarch64}" && pwd)
# shellcheck source=common.sh
. "$REPO/tools/aarch64/common.sh"
BUILD=$CACHE/build

stage "host packages (apt: qemu-user-static, aarch64 binutils)"
ensure_host_packages
stage "host build tools (pinned, cached)"
ensure_host_venv
stage "aarch64 sysroot and Python headers (cached)"
ensure_sysroot

stage "cross-compiling the wheel (zig's first run builds its libc++: minutes)"
rm -rf "$BUILD/dist"
(cd "$REPO" && CMAKE_TOOLCHAIN_FILE=$REPO/cmake/aarch64-linux-gnu.2.17-zig.cmake \
  _PYTHON_HOST_PLATFORM=linux-aarch64 SETUPTOOLS_EXT_SUFFIX=$TARGET_EXT_SUFFIX \
  logged build-wheel.log "$HOST_VENV/bin/python" -m build --wheel --no-isolation \
  -Cbuild-dir="$BUILD/cmake" -Ccmake.python-hints=false -o "$BUILD/dist")

stage "auditwheel: manylinux tag"
rm -rf "$BUILD/repaired"
# The host's auditwheel takes only --plat auto for a foreign architecture.
logged auditwheel-repair.log "$HOST_VENV/bin/auditwheel" repair --plat auto -w "$BUILD/repaired" "$BUILD"/dist/*.whl
WHEELS=("$BUILD"/repaired/*.whl)
[ ${#WHEELS[@]} -eq 1 ] || { echo "expected one repaired wheel, got: ${WHEELS[*]}" >&2; exit 1; }
WHEEL=${WHEELS[0]}
"$HOST_VENV/bin/auditwheel" show "$WHEEL" | tee "$CACHE/logs/auditwheel-show.log"

stage "checking the wheel"
"$HOST_VENV/bin/python" - "$WHEEL" "$TARGET_EXT_SUFFIX" "$CACHE/logs/auditwheel-show.log" <<'PY'
import re, struct, sys, zipfile
wheel, suffix, show_log = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
problems = []
name = wheel.rsplit("/", 1)[-1]
match = re.fullmatch(r"mnengine-[^-]+-cp311-cp311-([^-]+)\.whl", name)
platforms = set(match.group(1).split(".")) if match else set()
if platforms != {"manylinux_2_17_aarch64", "manylinux2014_aarch64"}:
    problems.append(f"wheel {name!r} is not tagged cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64")
if 'consistent with the following platform tag: "manylinux_2_17_aarch64"' not in " ".join(show_log.split()):
    problems.append("auditwheel show does not report the manylinux_2_17_aarch64 policy")
with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    extensions = [n for n in names if n.startswith("mnengine/_core")]
    if extensions != ["mnengine/_core" + suffix]:
        problems.append(f"extension files {extensions}, expected ['mnengine/_core{suffix}']")
    else:
        header = archive.read(extensions[0])[:20]
        machine = struct.unpack_from("<H", header, 18)[0]
        if header[:4] != b"\x7fELF" or machine != 183:  # EM_AARCH64
            problems.append(f"{extensions[0]} is not an aarch64 ELF (e_machine {machine})")
    grafted = [n for n in names if n.startswith("mnengine.libs/")]
    if grafted:
        problems.append(f"auditwheel had to bundle external libraries: {grafted}")
if problems:
    sys.exit("aarch64 wheel check failed:\n  " + "\n  ".join(problems))
print(f"ok: {name}: tag, extension suffix, aarch64 ELF, no external libraries")
PY
cp "$WHEEL" "$OUT/"
stage "done: $OUT/$(basename "$WHEEL")"
