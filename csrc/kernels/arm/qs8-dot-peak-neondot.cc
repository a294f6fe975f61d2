// qs8-dot-peak neondot (ARMv8.2 dot product): SDOT, 16 multiply-adds per instruction, as
// qs8-gemm-4x8c4-neondot.cc uses it. 16 independent chains: SDOT has 2 to 4 cycles of latency
// at up to 2 per cycle, so 8 would do on the cores we know; 16 leave margin for wider ones.
#include "neon.h"

namespace mnengine {

uint64_t qs8_dot_peak__neondot(uint64_t iterations, int32_t* sink) {
  constexpr int kChains = 16;
  int32x4_t acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_s32(i);
  const int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-5);
  for (uint64_t it = 0; it < iterations; ++it) {
    // Written out so that every accumulator stays in a register.
    acc[0] = vdotq_s32(acc[0], a, b); acc[1] = vdotq_s32(acc[1], a, b);
    acc[2] = vdotq_s32(acc[2], a, b); acc[3] = vdotq_s32(acc[3], a, b);
    acc[4] = vdotq_s32(acc[4], a, b); acc[5] = vdotq_s32(acc[5], a, b);
    acc[6] = vdotq_s32(acc[6], a, b); acc[7] = vdotq_s32(acc[7], a, b);
    acc[8] = vdotq_s32(acc[8], a, b); acc[9] = vdotq_s32(acc[9], a, b);
    acc[10] = vdotq_s32(acc[10], a, b); acc[11] = vdotq_s32(acc[11], a, b);
    acc[12] = vdotq_s32(acc[12], a, b); acc[13] = vdotq_s32(acc[13], a, b);
    acc[14] = vdotq_s32(acc[14], a, b); acc[15] = vdotq_s32(acc[15], a, b);
  }
  int32x4_t sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = vaddq_s32(sum, acc[i]);
  *sink = vaddvq_s32(sum);
  return iterations * kChains * 16;
}

}  // namespace mnengine
