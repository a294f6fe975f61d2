#!/usr/bin/env bash
# The test suite against an extension built with AddressSanitizer and UndefinedBehaviorSanitizer
# (CMake option MNENGINE_SANITIZE), in a virtual environment of its own:
#   bash .ci/sanitize.sh [WORK_DIR]
# CPython is not instrumented, so the ASan runtime is preloaded. Leak detection is off:
# CPython keeps memory until exit that LeakSanitizer would report. Any ASan or UBSan report
# aborts the run. The comparisons with Keras are left out (marker `keras`): TensorFlow does
# not run under a preloaded ASan runtime, and they test the exporter's Python, not memory.
# So are the resident-memory tests (marker `rss`): ASan's quarantine holds on to every freed
# block, so resident memory grows with any allocation, the engine's or NumPy's.
# Then the model-loader fuzzer runs for 30 s (seeded) against the same build, so a malformed
# file that corrupts memory without crashing is caught too.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/mnengine-sanitize}
rm -rf "$WORK/venv"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q numpy pillow pytest h5py
"$WORK/venv/bin/pip" install -q -Ccmake.define.MNENGINE_SANITIZE=ON -Cbuild-dir="$WORK/build" .
ASAN_LIBRARY=$(g++ -print-file-name=libasan.so)
[ -f "$ASAN_LIBRARY" ] || { echo "no libasan.so for g++ ($ASAN_LIBRARY)" >&2; exit 1; }
# libstdc++ is preloaded too: ASan finds the real __cxa_throw when it starts, and CPython loads
# libstdc++ only later, with the extension; without it the first C++ exception the extension
# throws (a rejected network, say) stops the run with "CHECK failed: ... real___cxa_throw".
STDCXX_LIBRARY=$(g++ -print-file-name=libstdc++.so)
cd "$WORK"  # outside the checkout: test the installed package
# Found without importing it: loading it before the ASan runtime would abort.
EXTENSION=$(ls "$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"/mnengine/_core*.so)
# Captured, not piped into grep -q: with pipefail, grep -q's early exit can make ldd die of
# SIGPIPE and the check fail on a sanitized build.
LINKED=$(ldd "$EXTENSION")
[[ $LINKED == *libasan* ]] || { echo "$EXTENSION is not built with AddressSanitizer" >&2; exit 1; }
SANITIZED_PYTHON=(env LD_PRELOAD="$ASAN_LIBRARY $STDCXX_LIBRARY"
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  "$WORK/venv/bin/python")
# --capture=sys: with pytest's default fd capture, a report goes to a temporary file that the
# abort discards, leaving only "Fatal Python error: Aborted". Two shards, one per core.
bash "$REPO/tools/run-sharded.sh" 2 "${SANITIZED_PYTHON[@]}" -m pytest -q -p no:cacheprovider --capture=sys \
  -m "not keras and not rss" "$REPO/tests"
"${SANITIZED_PYTHON[@]}" "$REPO/tools/fuzz_modelfile.py" --seconds 30 --seed 2 --failures "$WORK/fuzz-failures"
