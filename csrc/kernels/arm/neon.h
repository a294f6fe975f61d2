// NEON kernels (aarch64). Advanced SIMD is part of the ARMv8-A baseline, so these files need
// no extra compiler flags and run on every aarch64 core, Cortex-A53 included; they use no
// later extension (dotprod, fp16, SVE).
#pragma once

#include <arm_neon.h>

#include "../../kernels.h"

namespace mnengine {

void f32_gemm_6x8__neon(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                        const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_igemm_6x8__neon(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                         const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_dwconv3x3__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const float* const* rows,
                         const float* packed_w, float* out, Clamp clamp);
void f32_conv3x3s2c3__neon(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const float* const* rows, const float* packed_w, float* out, Clamp clamp);
void f32_vadd__neon(size_t n, const float* a, const float* b, float* y, Clamp clamp);
void f32_gavgpool__neon(size_t pixels, size_t channels, const float* x, float* y);
void f32_gmaxpool__neon(size_t pixels, size_t channels, const float* x, float* y);
void f32_softmax__neon(size_t n, const float* x, float* y);
uint64_t f32_fma_peak__neon(uint64_t iterations, float* sink);

namespace neon {

// FMAX/FMIN return NaN when either operand is NaN, so NaN propagates as in the scalar path.
inline float32x4_t clamp(float32x4_t x, float32x4_t lo, float32x4_t hi) {
  return vminq_f32(vmaxq_f32(x, lo), hi);
}

// The first `count` (0..3) floats at p, the other lanes zero; reads nothing past them.
inline float32x4_t load_partial(const float* p, size_t count) {
  float32x4_t v = vdupq_n_f32(0.0f);
  if (count >= 2) v = vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
  if (count == 3) v = vld1q_lane_f32(p + 2, v, 2);
  if (count == 1) v = vld1q_lane_f32(p, v, 0);
  return v;
}

// Stores the first `count` (0..3) lanes of v at p.
inline void store_partial(float* p, float32x4_t v, size_t count) {
  if (count >= 2) {
    vst1_f32(p, vget_low_f32(v));
    if (count == 3) vst1q_lane_f32(p + 2, v, 2);
  } else if (count == 1) {
    vst1q_lane_f32(p, v, 0);
  }
}

// One q register of float channels, as the shared tilings (../f32-dwconv3x3-tiled.h,
// ../f32-conv3x3s2c3-tiled.h) describe a vector register.
struct Simd {
  using Vec = float32x4_t;
  static constexpr size_t kLanes = 4;
  struct Full {
    Vec load(const float* p) const { return vld1q_f32(p); }
    void store(float* p, Vec v) const { vst1q_f32(p, v); }
  };
  struct Tail {
    size_t count;
    Vec load(const float* p) const { return load_partial(p, count); }
    void store(float* p, Vec v) const { store_partial(p, v, count); }
  };
  static Tail tail(size_t count) { return Tail{count}; }
  static Vec weights(const float* p) { return vld1q_f32(p); }
  static Vec broadcast(const float* p) { return vld1q_dup_f32(p); }
  static Vec dup(float x) { return vdupq_n_f32(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return vfmaq_f32(acc, x, w); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return neon::clamp(x, lo, hi); }
};

}  // namespace neon
}  // namespace mnengine
