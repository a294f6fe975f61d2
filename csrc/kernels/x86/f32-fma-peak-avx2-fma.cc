// f32-fma-peak avx2-fma: 12 independent ymm accumulators keep both FMA pipes of a Zen or
// Skylake core busy (latency 4 x 2 pipes = 8 chains needed; 12 leaves margin).
#include "avx2_helpers.h"

namespace mnengine {

uint64_t f32_fma_peak__avx2_fma(uint64_t iterations, float* sink) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (uint64_t it = 0; it < iterations; ++it) {
    // Written out so that every accumulator stays in a register.
    acc[0] = _mm256_fmadd_ps(acc[0], a, b); acc[1] = _mm256_fmadd_ps(acc[1], a, b);
    acc[2] = _mm256_fmadd_ps(acc[2], a, b); acc[3] = _mm256_fmadd_ps(acc[3], a, b);
    acc[4] = _mm256_fmadd_ps(acc[4], a, b); acc[5] = _mm256_fmadd_ps(acc[5], a, b);
    acc[6] = _mm256_fmadd_ps(acc[6], a, b); acc[7] = _mm256_fmadd_ps(acc[7], a, b);
    acc[8] = _mm256_fmadd_ps(acc[8], a, b); acc[9] = _mm256_fmadd_ps(acc[9], a, b);
    acc[10] = _mm256_fmadd_ps(acc[10], a, b); acc[11] = _mm256_fmadd_ps(acc[11], a, b);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  *sink = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
  return iterations * kChains * 8 * 2;
}

}  // namespace mnengine
