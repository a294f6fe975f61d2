#!/usr/bin/env bash
# Installs an aarch64 wheel into an aarch64 CPython 3.11 run by qemu-aarch64-static and runs
# the test suite there on several CPU models:
#   tools/aarch64/test-wheel.sh WHEEL
# Each model's choice of kernels is asserted first: neoverse-n1 (ARMv8.2 with the dot product:
# Graviton 2, Ampere Altra) must choose neon_dotprod, whose int8 GEMM runs on SDOT;
# cortex-a53 (Raspberry Pi 3, the oldest ARMv8 cores) and cortex-a72 (Raspberry Pi 4), which
# lack it, must choose neon and not offer neon_dotprod (and qemu must refuse SDOT on them, or
# running there would prove nothing).
# neoverse-n1 runs the whole suite but the comparisons with Keras on the neon_dotprod and neon
# paths, the guard-page tests on the scalar one, and the int8 kernel sweep on the neon_dotprod
# family only (and fewer real-weights and full-size int8 network cases: see FULL below);
# cortex-a53 runs the float kernels, the model format, a whole v1 and v2 network, and the
# int8 kernels: the whole sweep on the ARMv8.0 int8 family (neon) and its
# guard-page tests, to show nothing assumes an extension those cores lack; cortex-a72 runs the
# same with a third of the int8 sweep (its relu6 cases and the small kernels: the code is
# cortex-a53's). Every int8 family of the machine runs its whole sweep on one CPU.
# MNENGINE_QEMU_CPUS overrides the list of CPU models.
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WHEEL=$(realpath "${1:?usage: test-wheel.sh WHEEL}")
# shellcheck source=common.sh
. "$REPO/tools/aarch64/common.sh"

stage "host packages, build tools, sysroot, aarch64 numpy/pillow/pytest/h5py (cached)"
ensure_host_packages
ensure_host_venv
ensure_sysroot
ensure_target_site
write_target_python

stage "installing $(basename "$WHEEL")"
INSTALL=$CACHE/installed
rm -rf "$INSTALL"
logged pip-wheel.log "$HOST_VENV/bin/pip" install --no-deps --target "$INSTALL" $(target_pip_args) "$WHEEL"

# A program that executes one SDOT (ARMv8.2 dot product) and exits 0: it dies of SIGILL on an
# emulated CPU without the instruction.
PROBE=$CACHE/sdot-probe
printf '%s\n' '.arch armv8.2-a+dotprod' '.globl _start' '_start:' 'sdot v0.4s, v1.16b, v2.16b' \
  'mov x0, #0' 'mov x8, #93' 'svc #0' | aarch64-linux-gnu-as -o "$PROBE.o" -
aarch64-linux-gnu-ld -o "$PROBE" "$PROBE.o"

# From outside the checkout, so `import mnengine` is the wheel's, not the source tree's.
cd "$CACHE"
export PYTHONPATH=$INSTALL:$TARGET_SITE

# The instruction set each CPU model must choose; the int8 family is named after it.
expected_isa() {
  case $1 in
    neoverse-n1) echo neon_dotprod ;;
    cortex-a53 | cortex-a72) echo neon ;;
    *) echo unknown ;;
  esac
}

SMOKE_FILES=("$REPO/tests/test_kernels.py" "$REPO/tests/test_modelfile.py" "$REPO/tests/test_networks.py"
             "$REPO/tests/test_qs8_kernels.py" "$REPO/tests/test_guard_pages.py")
SMOKE_BASE="test_kernels or test_modelfile or 0.25-97-2 or 0.35-96-2 or (test_guard_pages and (qs8 or quantize) and [neon-)"
SMOKE_A53=("${SMOKE_FILES[@]}" -k "$SMOKE_BASE or (test_qs8_kernels and [neon-)")
SMOKE_A72=("${SMOKE_FILES[@]}" -k "$SMOKE_BASE or (test_qs8_kernels and [neon- and (relu6 or dense or pool or quantize))")
# On neoverse-n1 the scalar path runs the guard-page tests only: an aarch64 CPU always has
# NEON, so the scalar kernels run there only when MNENGINE_ISA asks for them; their float
# kernel tests (test_kernels.py) run on cortex-a53 and cortex-a72 (SMOKE_BASE), and their fused
# blocks and whole networks would test the same portable C++ the host's runs test, at
# emulated speed. The int8 sweep of the neon family runs on cortex-a53 instead.
# Under emulation a test's NumPy side costs tens of times what it does on the host, so two
# kinds of test run on their smaller cases only: the real-weights tests on the v1 0.25 fixtures
# (the v1 0.5 and v2 1.0 ones spent three minutes in emulated calibration and preprocessing,
# on kernels that test_networks and test_qs8_networks check against NumPy at full size), and
# the full-size int8 networks on the neon_dotprod family (the neon family's int8 GEMM runs in
# the smaller networks, and in its whole kernel sweep on cortex-a53).
FULL_K="(not scalar or test_guard_pages) and not (test_qs8_kernels and [neon-)"
FULL_K+=" and not (test_real_weights and qat_folded) and not (test_qs8_networks and [neon-1.0-224)"
FULL=("$REPO/tests" -k "$FULL_K")
for cpu in ${MNENGINE_QEMU_CPUS:-neoverse-n1 cortex-a72 cortex-a53}; do
  stage "QEMU_CPU=$cpu: the instruction sets offered and chosen"
  # (In a subshell that waits for it, so that the shell's report of the SIGILL goes to /dev/null.)
  if (qemu-aarch64-static -cpu "$cpu" "$PROBE"; exit $?) 2>/dev/null; then has_sdot=1; else has_sdot=0; fi
  QEMU_CPU=$cpu "$TARGET_PYTHON" - "$INSTALL" "$cpu" "$(expected_isa "$cpu")" "$has_sdot" <<'PY'
import sys
import mnengine
from mnengine import _core
install, cpu, expected, has_sdot = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
info = mnengine.cpu_info()
families = _core.kernel_families()  # (isa, float32 family, int8 family), best first
print(f"{cpu}: {info}; kernel families {families}; SDOT runs: {has_sdot}; mnengine from {mnengine.__file__}")
assert mnengine.__file__.startswith(install), "mnengine is not imported from the wheel"
assert info["machine"] == "aarch64", info
assert ("neon_dotprod" in info["available_isas"]) == has_sdot, f"{cpu}: neon_dotprod offered iff SDOT runs"
if expected != "unknown":
    assert has_sdot == (expected == "neon_dotprod"), f"qemu's {cpu} {'refuses' if not has_sdot else 'runs'} SDOT"
    assert info["isa"] == expected, f"{cpu} chose {info['isa']}, expected {expected}"
    assert families[0] == (expected, "neon", expected), f"{cpu}: best kernel set {families[0]}"
PY
  case $cpu in
    neoverse-n1) selection=("${FULL[@]}") ;;
    cortex-a53) selection=("${SMOKE_A53[@]}") ;;
    *) selection=("${SMOKE_A72[@]}") ;;
  esac
  stage "pytest under qemu, QEMU_CPU=$cpu: ${selection[*]#$REPO/}"
  # No TensorFlow for this Python: the tests against Keras (marker `keras`) run on the host.
  # Nor the resident-memory tests (marker `rss`): qemu-user keeps about 250 KiB for every
  # thread that ever ran (200 plain Python threads grow it by 50 MiB), which they would count.
  # Two shards side by side: qemu runs each on one core.
  QEMU_CPU=$cpu bash "$REPO/tools/run-sharded.sh" 2 \
    "$TARGET_PYTHON" -m pytest -q -p no:cacheprovider --rootdir "$REPO" -m "not keras and not rss" "${selection[@]}"
done
stage "done"
