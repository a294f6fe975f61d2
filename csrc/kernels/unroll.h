// MNENGINE_UNROLL(n): unroll the loop that follows completely (up to n iterations), so that
// every index into a kernel's small arrays (accumulators, taps, rows) is a constant and the
// arrays live in registers; GCC otherwise keeps arrays of that size in memory.
//
// The sanitizer build (CMake option MNENGINE_SANITIZE) leaves these loops rolled. The loops
// make the same accesses either way, and each is instrumented either way; unrolled, GCC took
// minutes per depthwise file to instrument the functions (9 minutes for f32-dwconv5x5 neon in
// the aarch64 ASan+UBSan build), which was most of that build's time.
#pragma once

#define MNENGINE_PRAGMA(text) _Pragma(#text)
#ifdef MNENGINE_SANITIZE
#define MNENGINE_UNROLL(n)
#else
#define MNENGINE_UNROLL(n) MNENGINE_PRAGMA(GCC unroll n)
#endif
