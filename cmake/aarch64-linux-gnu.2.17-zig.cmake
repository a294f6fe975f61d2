# Cross-compiling for Linux aarch64 with zig's clang against glibc 2.17 symbols, so the wheel
# qualifies for manylinux2014 (Debian's cross g++ links against glibc 2.36: manylinux_2_34 at
# best). zig links its own libc++ statically, so the extension needs no libstdc++ either.
# Used by tools/aarch64/build-wheel.sh, which provides zig through MNENGINE_ZIG and the
# target's Python headers through MNENGINE_TARGET_PYTHON_INCLUDE.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(MNENGINE_ZIG_WRAPPERS "${CMAKE_CURRENT_LIST_DIR}/../tools/aarch64/zig")
set(CMAKE_CXX_COMPILER "${MNENGINE_ZIG_WRAPPERS}/c++")
set(CMAKE_AR "${MNENGINE_ZIG_WRAPPERS}/ar" CACHE FILEPATH "")
set(CMAKE_RANLIB "${MNENGINE_ZIG_WRAPPERS}/ranlib" CACHE FILEPATH "")
# The host's strip cannot read aarch64 objects.
find_program(CMAKE_STRIP NAMES aarch64-linux-gnu-strip llvm-strip REQUIRED)

# pybind11 must not run the host interpreter to learn the extension suffix: it takes it from
# SKBUILD_SOABI (SETUPTOOLS_EXT_SUFFIX), and the headers are the target's.
set(PYBIND11_USE_CROSSCOMPILING ON CACHE BOOL "")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # pybind11's CMake config lives in the host venv
if(DEFINED ENV{MNENGINE_TARGET_PYTHON_INCLUDE})
  set(Python_INCLUDE_DIR "$ENV{MNENGINE_TARGET_PYTHON_INCLUDE}" CACHE PATH "" FORCE)
endif()
