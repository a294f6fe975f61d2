// Inline helpers for the AVX2 kernels; included only by files compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include "avx2_fma.h"

namespace mnengine {
namespace avx2 {

// Lane mask selecting the first `count` (0..8) of 8 floats, for maskload/maskstore tails.
static inline __m256i tail_mask(size_t count) {
  alignas(32) static const int kTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                             0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTable + 8 - count));
}

// max(lo, x) then min(hi, x): the operand order makes NaN propagate, as in the scalar path.
static inline __m256 clamp(__m256 x, __m256 lo, __m256 hi) {
  return _mm256_min_ps(hi, _mm256_max_ps(lo, x));
}

}  // namespace avx2
}  // namespace mnengine
