// f32-fma-peak avx512f: 12 independent zmm accumulators. Cores that split a zmm FMA into two
// ymm halves (AMD Zen 4) reach the AVX2 peak with it; cores with two 512-bit FMA units reach
// twice that, which is the peak the AVX-512 kernels are measured against.
#include <immintrin.h>

#include "avx512f.h"

namespace mnengine {

uint64_t f32_fma_peak__avx512f(uint64_t iterations, float* sink) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (uint64_t it = 0; it < iterations; ++it) {
    // Written out so that every accumulator stays in a register.
    acc[0] = _mm512_fmadd_ps(acc[0], a, b); acc[1] = _mm512_fmadd_ps(acc[1], a, b);
    acc[2] = _mm512_fmadd_ps(acc[2], a, b); acc[3] = _mm512_fmadd_ps(acc[3], a, b);
    acc[4] = _mm512_fmadd_ps(acc[4], a, b); acc[5] = _mm512_fmadd_ps(acc[5], a, b);
    acc[6] = _mm512_fmadd_ps(acc[6], a, b); acc[7] = _mm512_fmadd_ps(acc[7], a, b);
    acc[8] = _mm512_fmadd_ps(acc[8], a, b); acc[9] = _mm512_fmadd_ps(acc[9], a, b);
    acc[10] = _mm512_fmadd_ps(acc[10], a, b); acc[11] = _mm512_fmadd_ps(acc[11], a, b);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  *sink = _mm512_reduce_add_ps(sum);
  return iterations * kChains * 16 * 2;
}

}  // namespace mnengine
