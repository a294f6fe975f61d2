// f32-fma-peak neon: 16 independent q accumulators keep two FMA pipes of a Cortex-A76 /
// Neoverse-N1 busy (latency 4 x 2 pipes = 8 chains needed; 16 leaves margin for wider cores).
#include "neon.h"

namespace mnengine {

uint64_t f32_fma_peak__neon(uint64_t iterations, float* sink) {
  constexpr int kChains = 16;
  float32x4_t acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_f32(static_cast<float>(i));
  const float32x4_t a = vdupq_n_f32(0.999999f), b = vdupq_n_f32(1e-7f);
  for (uint64_t it = 0; it < iterations; ++it) {
    // Written out so that every accumulator stays in a register.
    acc[0] = vfmaq_f32(b, acc[0], a); acc[1] = vfmaq_f32(b, acc[1], a);
    acc[2] = vfmaq_f32(b, acc[2], a); acc[3] = vfmaq_f32(b, acc[3], a);
    acc[4] = vfmaq_f32(b, acc[4], a); acc[5] = vfmaq_f32(b, acc[5], a);
    acc[6] = vfmaq_f32(b, acc[6], a); acc[7] = vfmaq_f32(b, acc[7], a);
    acc[8] = vfmaq_f32(b, acc[8], a); acc[9] = vfmaq_f32(b, acc[9], a);
    acc[10] = vfmaq_f32(b, acc[10], a); acc[11] = vfmaq_f32(b, acc[11], a);
    acc[12] = vfmaq_f32(b, acc[12], a); acc[13] = vfmaq_f32(b, acc[13], a);
    acc[14] = vfmaq_f32(b, acc[14], a); acc[15] = vfmaq_f32(b, acc[15], a);
  }
  float32x4_t sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = vaddq_f32(sum, acc[i]);
  *sink = vaddvq_f32(sum);
  return iterations * kChains * 4 * 2;
}

}  // namespace mnengine
