// Inline helpers for the AVX-512 kernels; included only by files compiled with -mavx512f.
#pragma once

#include <immintrin.h>

#include "avx512f.h"

namespace mnengine {
namespace avx512 {

// max(lo, x) then min(hi, x): the operand order makes NaN propagate, as in the scalar path.
static inline __m512 clamp(__m512 x, __m512 lo, __m512 hi) {
  return _mm512_min_ps(hi, _mm512_max_ps(lo, x));
}

// Hard-swish (Clamp in common.h): t = min(max(x + 3, 0), 6), then x * t * (1/6), as the scalar
// reference rounds it. A NaN x makes t 0 (VMAXPS returns its second operand on NaN) and x * t
// NaN: NaN propagates.
static inline __m512 hard_swish(__m512 x) {
  const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(x, _mm512_set1_ps(3.0f)), _mm512_setzero_ps()),
                                 _mm512_set1_ps(6.0f));
  return _mm512_mul_ps(_mm512_mul_ps(x, t), _mm512_set1_ps(1.0f / 6.0f));
}

// The first `count` (0..16) of 16 lanes.
static inline __mmask16 lanes_mask(size_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

// One zmm of float channels, as the shared tilings (../f32-dwconv3x3-tiled.h,
// ../f32-conv3x3s2c3-tiled.h) and output stage (../f32-output-stage.h) describe a vector
// register. Channel tails use lane masks, which
// neither read nor write (nor fault on) the lanes they leave out.
struct Simd {
  using Vec = __m512;
  static constexpr size_t kLanes = 16;
  struct Full {
    Vec load(const float* p) const { return _mm512_loadu_ps(p); }
    void store(float* p, Vec v) const { _mm512_storeu_ps(p, v); }
  };
  struct Tail {
    __mmask16 mask;
    Vec load(const float* p) const { return _mm512_maskz_loadu_ps(mask, p); }
    void store(float* p, Vec v) const { _mm512_mask_storeu_ps(p, mask, v); }
  };
  static Tail tail(size_t count) { return Tail{lanes_mask(count)}; }
  static Vec weights(const float* p) { return _mm512_load_ps(p); }
  static Vec dup(float x) { return _mm512_set1_ps(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return _mm512_fmadd_ps(x, w, acc); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return avx512::clamp(x, lo, hi); }
  static Vec hard_swish(Vec x) { return avx512::hard_swish(x); }
};

}  // namespace avx512
}  // namespace mnengine
