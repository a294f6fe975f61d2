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

// One ymm of float channels, as the shared tilings (../f32-dwconv3x3-tiled.h,
// ../f32-conv3x3s2c3-tiled.h) describe a vector register. Channel tails use maskload/maskstore.
struct Simd {
  using Vec = __m256;
  static constexpr size_t kLanes = 8;
  struct Full {
    Vec load(const float* p) const { return _mm256_loadu_ps(p); }
    void store(float* p, Vec v) const { _mm256_storeu_ps(p, v); }
  };
  struct Tail {
    __m256i mask;
    Vec load(const float* p) const { return _mm256_maskload_ps(p, mask); }
    void store(float* p, Vec v) const { _mm256_maskstore_ps(p, mask, v); }
  };
  static Tail tail(size_t count) { return Tail{tail_mask(count)}; }
  static Vec weights(const float* p) { return _mm256_load_ps(p); }
  static Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Vec dup(float x) { return _mm256_set1_ps(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return _mm256_fmadd_ps(x, w, acc); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return avx2::clamp(x, lo, hi); }
};

}  // namespace avx2
}  // namespace mnengine
