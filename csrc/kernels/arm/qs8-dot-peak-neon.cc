// qs8-dot-peak neon (ARMv8.0): the int8 GEMM's own multiply-add sequence on registers: SMULL and
// SMLAL of 8 int8 pairs each into int16, SADALP into int32 (16 multiply-adds per three
// instructions, as qs8-gemm-2x8c8-neon.cc does per 16 k of a row and a column). 8 independent
// int32 chains cover SADALP's latency (4 cycles at one or two per cycle); the products do not
// depend on one another.
#include "neon.h"

namespace mnengine {

uint64_t qs8_dot_peak__neon(uint64_t iterations, int32_t* sink) {
  constexpr int kChains = 8;
  int32x4_t acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_s32(i);
  int8x8_t a = vdup_n_s8(3), b = vdup_n_s8(-5), c = vdup_n_s8(7), d = vdup_n_s8(-11);
  for (uint64_t it = 0; it < iterations; ++it) {
    // An empty asm that claims to change `a`: the products must be recomputed every round
    // instead of being hoisted out of the loop (it emits no instruction).
    __asm__ volatile("" : "+w"(a));
    const int16x8_t p0 = vmlal_s8(vmull_s8(a, b), c, d), p1 = vmlal_s8(vmull_s8(a, c), b, d);
    const int16x8_t p2 = vmlal_s8(vmull_s8(a, d), b, c), p3 = vmlal_s8(vmull_s8(b, c), a, d);
    const int16x8_t p4 = vmlal_s8(vmull_s8(b, d), a, c), p5 = vmlal_s8(vmull_s8(c, d), a, b);
    const int16x8_t p6 = vmlal_s8(vmull_s8(a, a), b, b), p7 = vmlal_s8(vmull_s8(c, c), d, d);
    acc[0] = vpadalq_s16(acc[0], p0); acc[1] = vpadalq_s16(acc[1], p1);
    acc[2] = vpadalq_s16(acc[2], p2); acc[3] = vpadalq_s16(acc[3], p3);
    acc[4] = vpadalq_s16(acc[4], p4); acc[5] = vpadalq_s16(acc[5], p5);
    acc[6] = vpadalq_s16(acc[6], p6); acc[7] = vpadalq_s16(acc[7], p7);
  }
  int32x4_t sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = vaddq_s32(sum, acc[i]);
  *sink = vaddvq_s32(sum);
  return iterations * kChains * 16;
}

}  // namespace mnengine
