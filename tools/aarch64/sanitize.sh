#!/usr/bin/env bash
# The kernel tests against an aarch64 extension built with AddressSanitizer and
# UndefinedBehaviorSanitizer (CMake option MNENGINE_SANITIZE), in the aarch64 CPython under
# qemu-user (QEMU_CPU=neoverse-n1), so the NEON kernels get the memory checks that
# .ci/sanitize.sh gives the AVX2 ones:
#   tools/aarch64/sanitize.sh
# zig, which builds the wheel, has no sanitizer runtime: this build uses Debian's cross g++
# and its aarch64 libasan/libubsan (glibc 2.36, the sysroot's). GCC instruments the NEON
# load/store intrinsics too (vld1q_f32 reads are checked). Runs the kernels, the guard pages,
# the model format and a whole v1 and v2 network, and a third of the int8 kernel sweep (its
# relu6 cases) on the neon_dotprod family, which has every NEON int8 kernel but the ARMv8.0
# GEMM (that one, like every int8 family, gets the guard-page tests here; the scalar kernels
# get .ci/sanitize.sh); any ASan or UBSan report aborts the run.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=common.sh
. "$REPO/tools/aarch64/common.sh"
SAN=$CACHE/sanitize
CROSS_PACKAGES="g++-aarch64-linux-gnu libasan8-arm64-cross libubsan1-arm64-cross"
# libstdc++ (the sysroot's) last: ASan finds the real __cxa_throw when it starts, before CPython
# loads libstdc++ with the extension; without it the first C++ exception the extension throws
# stops the run with "CHECK failed: ... real___cxa_throw".
RUNTIMES=/usr/aarch64-linux-gnu/lib/libasan.so.8:/usr/aarch64-linux-gnu/lib/libubsan.so.1:/usr/lib/aarch64-linux-gnu/libstdc++.so.6

stage "host packages, build tools, sysroot, aarch64 numpy/pillow/pytest/h5py (cached)"
ensure_host_packages
dpkg -s $CROSS_PACKAGES >/dev/null 2>&1 ||
  logged apt-install-cross.log apt-get install -y --no-install-recommends $CROSS_PACKAGES
ensure_host_venv
ensure_sysroot
ensure_target_site
write_target_python

stage "cross-compiling the sanitized extension with aarch64-linux-gnu-g++ (incremental)"
# A Release build (at -O1: MNENGINE_SANITIZE lowers it) plus -g, so reports name files and
# lines. pybind11 must not run the host interpreter: the suffix and headers are the target's.
# A build directory configured from another checkout cannot be reused: CMake refuses it.
grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$REPO" "$SAN/build/CMakeCache.txt" 2>/dev/null || rm -rf "$SAN/build"
logged sanitize-configure.log cmake -S "$REPO" -B "$SAN/build" -G Ninja \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g \
  -DMNENGINE_SANITIZE=ON -Dpybind11_DIR="$("$HOST_VENV/bin/python" -m pybind11 --cmakedir)" \
  -DPYBIND11_USE_CROSSCOMPILING=ON -DPython_INCLUDE_DIR="$TARGET_INCLUDE" \
  -DPYTHON_MODULE_EXTENSION="$TARGET_EXT_SUFFIX" -DPYTHON_IS_DEBUG=0 -DPYTHON_MODULE_DEBUG_POSTFIX=
logged sanitize-build.log cmake --build "$SAN/build"
EXTENSION=$SAN/build/_core$TARGET_EXT_SUFFIX
# Captured, not piped into grep -q (with pipefail its early exit can fail the pipeline).
DYNAMIC=$(aarch64-linux-gnu-readelf -d "$EXTENSION")
[[ $DYNAMIC == *NEEDED*libasan* ]] || { echo "$EXTENSION is not built with AddressSanitizer" >&2; exit 1; }
# The source tree's package with the sanitized extension beside it (nothing else of the host's).
rm -rf "$SAN/site" && mkdir -p "$SAN/site"
cp -r "$REPO/mnengine" "$SAN/site/"
find "$SAN/site" \( -name '_core*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp "$EXTENSION" "$SAN/site/mnengine/"

# CPython is not instrumented, so the runtimes are preloaded (libubsan also satisfies the
# extension's NEEDED: it is not in the sysroot). QEMU_SET_ENV sets LD_PRELOAD for the guest
# only: the host's loader would try it on the wrapper's /bin/sh. Leak detection is off:
# CPython keeps memory until exit that LeakSanitizer would report.
export QEMU_SET_ENV=LD_PRELOAD=$RUNTIMES
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH=$SAN/site:$TARGET_SITE QEMU_CPU=neoverse-n1
cd "$CACHE"  # outside the checkout: `import mnengine` is the sanitized build's
"$TARGET_PYTHON" - "$SAN/site" <<'PY'
import sys
import mnengine
info = mnengine.cpu_info()
print("aarch64 Python:", info, "mnengine from", mnengine.__file__)
assert mnengine.__file__.startswith(sys.argv[1]), "mnengine is not imported from the sanitized build"
assert info["machine"] == "aarch64" and info["isa"] == "neon_dotprod", "the NEON dot-product path is not active"
assert any("libasan" in line for line in open("/proc/self/maps")), "the ASan runtime is not loaded"
PY

stage "pytest under qemu with ASan+UBSan, QEMU_CPU=$QEMU_CPU"
# The markers .ci/sanitize.sh leaves out, should these files ever get such tests: `rss`
# (ASan's quarantine keeps freed memory) and `keras` (no TensorFlow for this Python).
# --capture=sys: with pytest's default fd capture, the report goes to a temporary file that
# the abort discards, leaving only "Fatal Python error: Aborted". Two shards, one per core.
bash "$REPO/tools/run-sharded.sh" 2 "$TARGET_PYTHON" -m pytest -q -p no:cacheprovider --capture=sys --rootdir "$REPO" \
  -m "not keras and not rss" \
  "$REPO/tests/test_kernels.py" "$REPO/tests/test_guard_pages.py" "$REPO/tests/test_modelfile.py" \
  "$REPO/tests/test_networks.py" "$REPO/tests/test_qs8_kernels.py" \
  -k "(not test_networks and not test_qs8_kernels) or 0.25-97-2 or 0.35-96-2 or (test_qs8_kernels and [neon_dotprod- and relu6)"
stage "done"
