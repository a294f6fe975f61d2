#!/usr/bin/env bash
# Installs an aarch64 wheel into an aarch64 CPython 3.11 run by qemu-aarch64-static and runs
# the test suite there on several CPU models:
#   tools/aarch64/test-wheel.sh WHEEL
# neoverse-n1 (Graviton 2, Ampere Altra) runs the whole suite but the comparisons with Keras
# on the neon path, and the kernel-level tests on the scalar one; cortex-a53 (Raspberry Pi 3,
# the oldest ARMv8 cores) and cortex-a72 (Raspberry Pi 4) run the kernels, the model format
# and a whole v1 and v2 network, to show nothing assumes an extension those cores lack.
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

# From outside the checkout, so `import mnengine` is the wheel's, not the source tree's.
cd "$CACHE"
export PYTHONPATH=$INSTALL:$TARGET_SITE
"$TARGET_PYTHON" - "$INSTALL" <<'PY'
import sys
import mnengine
info = mnengine.cpu_info()
print("aarch64 Python:", info, "mnengine from", mnengine.__file__)
assert mnengine.__file__.startswith(sys.argv[1]), "mnengine is not imported from the wheel"
assert info["machine"] == "aarch64" and info["isa"] == "neon", "the NEON path is not active"
PY

SMOKE=("$REPO/tests/test_kernels.py" "$REPO/tests/test_modelfile.py" "$REPO/tests/test_networks.py"
       -k "test_kernels or test_modelfile or 0.25-97-2 or 0.35-96-2")
# On neoverse-n1 the scalar path runs the kernel-level tests only: whole networks and the
# real weights on it would test the same portable C++ the host's run tests, at emulated speed.
FULL=("$REPO/tests" -k "not scalar or test_kernels or test_guard_pages or test_fused_blocks")
for cpu in ${MNENGINE_QEMU_CPUS:-neoverse-n1 cortex-a72 cortex-a53}; do
  if [ "$cpu" = neoverse-n1 ]; then selection=("${FULL[@]}"); else selection=("${SMOKE[@]}"); fi
  stage "pytest under qemu, QEMU_CPU=$cpu: ${selection[*]#$REPO/}"
  # No TensorFlow for this Python: the tests against Keras (marker `keras`) run on the host.
  # Nor the resident-memory tests (marker `rss`): qemu-user keeps about 250 KiB for every
  # thread that ever ran (200 plain Python threads grow it by 50 MiB), which they would count.
  QEMU_CPU=$cpu "$TARGET_PYTHON" -m pytest -q -p no:cacheprovider --rootdir "$REPO" -m "not keras and not rss" "${selection[@]}"
done
stage "done"
