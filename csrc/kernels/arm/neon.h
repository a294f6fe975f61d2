// NEON kernels (aarch64). Advanced SIMD is part of the ARMv8-A baseline, so these files need
// no extra compiler flags and run on every aarch64 core, Cortex-A53 included; they use no
// later extension (dotprod, fp16, SVE). The exceptions are the *-neondot.cc files, compiled
// with -march=armv8.2-a+dotprod (CMakeLists.txt) and called only where the CPU reports the
// dot-product instructions (neon_dotprod_kernels(), chosen by isa.cc).
#pragma once

#include <arm_neon.h>

#include <cstring>

#include "../../kernels.h"

namespace mnengine {

void f32_gemm_6x8__neon(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                        const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_igemm_6x8__neon(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                         const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_dwconv3x3__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const float* const* rows,
                         const float* packed_w, float* out, Clamp clamp);
void f32_dwconv5x5__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* packed_w, float* out, Clamp clamp);
void f32_conv3x3s2c3__neon(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const float* const* rows, const float* packed_w, float* out, Clamp clamp);
void f32_vadd__neon(size_t n, const float* a, const float* b, float* y, Clamp clamp);
void f32_gavgpool__neon(size_t pixels, size_t channels, const float* x, float* y);
void f32_gmaxpool__neon(size_t pixels, size_t channels, const float* x, float* y);
void f32_softmax__neon(size_t n, const float* x, float* y);
uint64_t f32_fma_peak__neon(uint64_t iterations, float* sink);
void f32_vmulc__neon(size_t pixels, size_t channels, const float* x, const float* scale, float* y);
void f32_vhswish__neon(size_t n, const float* x, float* y);

void qs8_gemm_2x8c8__neon(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                          const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output);
void qs8_gemm_f32_2x8c8__neon(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                              const void* packed_w, float* c, size_t c_stride, Clamp clamp);
void qs8_dwconv3x3__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const int8_t* const* rows,
                         const void* packed_w, int8_t* out, int32_t input_zero_point,
                         const Qs8Output& output);
void qs8_conv3x3s2c3__neon(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const int8_t* const* rows, const void* packed_w, int8_t* out,
                           int32_t input_zero_point, const Qs8Output& output);
void qs8_vadd__neon(size_t n, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& params);
void qs8_gavgpool__neon(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                        int32_t input_zero_point, float scale, const Qs8Output& output);
void qs8_gmaxpool__neon(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                        int32_t input_zero_point, float scale, const Qs8Output& output);
void qs8_quantize__neon(size_t n, const float* x, int8_t* y, float inv_scale, const Qs8Output& output);
void qs8_dequantize__neon(size_t n, const int8_t* x, float* y, int32_t zero_point, float scale);
uint64_t qs8_dot_peak__neon(uint64_t iterations, int32_t* sink);

// ARMv8.2 dot product (SDOT): only for CPUs with HWCAP_ASIMDDP.
void qs8_gemm_4x8c4__neondot(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                             const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output);
void qs8_gemm_f32_4x8c4__neondot(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                 const void* packed_w, float* c, size_t c_stride, Clamp clamp);
uint64_t qs8_dot_peak__neondot(uint64_t iterations, int32_t* sink);

namespace neon {

// FMAX/FMIN return NaN when either operand is NaN, so NaN propagates as in the scalar path.
inline float32x4_t clamp(float32x4_t x, float32x4_t lo, float32x4_t hi) {
  return vminq_f32(vmaxq_f32(x, lo), hi);
}

// Hard-swish (Clamp in common.h): t = min(max(x + 3, 0), 6), then x * t * (1/6), as the scalar
// reference rounds it (FMAX/FMIN propagate a NaN x, and so does the product).
inline float32x4_t hard_swish(float32x4_t x) {
  const float32x4_t t = vminq_f32(vmaxq_f32(vaddq_f32(x, vdupq_n_f32(3.0f)), vdupq_n_f32(0.0f)), vdupq_n_f32(6.0f));
  return vmulq_f32(vmulq_f32(x, t), vdupq_n_f32(1.0f / 6.0f));
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
// ../f32-conv3x3s2c3-tiled.h) and output stage (../f32-output-stage.h) describe a vector
// register.
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
  static Vec hard_swish(Vec x) { return neon::hard_swish(x); }
};

// ---- qs8 ----

// The first `count` (0..8) bytes at p as the low bytes of an integer, the others zero; reads
// nothing past them. (Fixed-size copies compile to single loads, unaligned as they may be.)
inline uint64_t load_bytes(const int8_t* p, size_t count) {
  uint64_t bytes = 0;
  if (count == 8) {
    std::memcpy(&bytes, p, 8);
    return bytes;
  }
  size_t offset = 0;
  if (count & 4) {
    uint32_t four;
    std::memcpy(&four, p, 4);
    bytes = four;
    offset = 4;
  }
  if (count & 2) {
    uint16_t two;
    std::memcpy(&two, p + offset, 2);
    bytes |= static_cast<uint64_t>(two) << (8 * offset);
    offset += 2;
  }
  if (count & 1) bytes |= static_cast<uint64_t>(static_cast<uint8_t>(p[offset])) << (8 * offset);
  return bytes;
}

// The first `count` (< 16) bytes at p in the low lanes, the others zero; reads nothing past
// them (channel and k tails: kernels never read past their buffers).
inline int8x16_t load_partial_s8(const int8_t* p, size_t count) {
  const uint64_t lo = load_bytes(p, count < 8 ? count : 8);
  const uint64_t hi = count > 8 ? load_bytes(p + 8, count - 8) : 0;
  return vcombine_s8(vcreate_s8(lo), vcreate_s8(hi));
}

// Stores the first `count` (< 16) lanes of v at p.
inline void store_partial_s8(int8_t* p, int8x16_t v, size_t count) {
  if (count & 8) {
    vst1_s8(p, vget_low_s8(v));
    p += 8;
    v = vextq_s8(v, v, 8);
  }
  if (count & 4) {
    const uint32_t four = vgetq_lane_u32(vreinterpretq_u32_s8(v), 0);
    std::memcpy(p, &four, 4);
    p += 4;
    v = vextq_s8(v, v, 4);
  }
  if (count & 2) {
    const uint16_t two = vgetq_lane_u16(vreinterpretq_u16_s8(v), 0);
    std::memcpy(p, &two, 2);
    p += 2;
    v = vextq_s8(v, v, 2);
  }
  if (count & 1) *p = vgetq_lane_s8(v, 0);
}

// A q register of int8 channels, for the kernels that walk channels 16 at a time: all 16
// (Int8Full) or the first `count` (1..15) of a group that ends a row of pixels (Int8Tail; 8,
// the tail of layers with 8 * odd channels, takes D loads and stores, not byte copies).
struct Int8Full {
  int8x16_t load(const int8_t* p) const { return vld1q_s8(p); }
  void store(int8_t* p, int8x16_t v) const { vst1q_s8(p, v); }
};
struct Int8Tail {
  size_t count;
  int8x16_t load(const int8_t* p) const {
    return count == 8 ? vcombine_s8(vld1_s8(p), vdup_n_s8(0)) : load_partial_s8(p, count);
  }
  void store(int8_t* p, int8x16_t v) const {
    if (count == 8) {
      vst1_s8(p, vget_low_s8(v));
    } else {
      store_partial_s8(p, v, count);
    }
  }
};

inline float32x4_t load_f32(const uint8_t* p) { return vld1q_f32(reinterpret_cast<const float*>(p)); }
inline int32x4_t load_s32(const uint8_t* p) { return vld1q_s32(reinterpret_cast<const int32_t*>(p)); }

// float(acc) * scale: the requantization's one float operation before rounding.
inline float32x4_t scaled(int32x4_t acc, float32x4_t scale) { return vmulq_f32(vcvtq_f32_s32(acc), scale); }

// The rest of the requantization of Qs8Output (kernels.h): round to nearest even (FCVTNS),
// narrow to int16 with saturation, add the zero point (saturating), narrow to int8, clamp.
// The reference clamps the float before rounding; clamping the rounded integer instead gives
// the same int8, because the bounds are integers and rounding is monotonic, and a value the
// narrowing saturates lies beyond the bounds anyway. Only a NaN would differ (FCVTNS makes it
// 0, the reference min): sums times finite scales are never NaN, and quantize, whose float
// input may be, takes NaN to min before it comes here.
struct Qs8Requantize {
  int16x8_t zero_point;
  int8x16_t min, max;

  explicit Qs8Requantize(const Qs8Output& output)
      : zero_point(vdupq_n_s16(static_cast<int16_t>(output.zero_point))),
        min(vdupq_n_s8(static_cast<int8_t>(static_cast<int32_t>(output.min) + output.zero_point))),
        max(vdupq_n_s8(static_cast<int8_t>(static_cast<int32_t>(output.max) + output.zero_point))) {}

  // 8 scaled values, rounded, with the zero point, in int16.
  int16x8_t to_int16(float32x4_t lo, float32x4_t hi) const {
    const int16x8_t rounded = vqmovn_high_s32(vqmovn_s32(vcvtnq_s32_f32(lo)), vcvtnq_s32_f32(hi));
    return vqaddq_s16(rounded, zero_point);
  }
  int8x16_t to_int8(int16x8_t lo, int16x8_t hi) const {
    return vminq_s8(vmaxq_s8(vqmovn_high_s16(vqmovn_s16(lo), hi), min), max);
  }
  int8x8_t to_int8(int16x8_t v) const {
    return vmin_s8(vmax_s8(vqmovn_s16(v), vget_low_s8(min)), vget_low_s8(max));
  }
};

// The output stages of the qs8 GEMMs, for 8 columns of scaled sums (lo: columns 0-3, hi: 4-7)
// of which the first `columns` are stored: requantized to int8, or float32 clamped (the
// classifier's dequantized output; product, then clamp, as the reference).
struct Qs8GemmInt8Output {
  using Type = int8_t;
  Qs8Requantize requantize;

  void store(int8_t* c, float32x4_t lo, float32x4_t hi, size_t columns) const {
    const int8x8_t y = requantize.to_int8(requantize.to_int16(lo, hi));
    if (columns >= 8) {
      vst1_s8(c, y);
    } else {
      store_partial_s8(c, vcombine_s8(y, y), columns);
    }
  }
};

struct Qs8GemmFloatOutput {
  using Type = float;
  float32x4_t min, max;

  void store(float* c, float32x4_t lo, float32x4_t hi, size_t columns) const {
    lo = clamp(lo, min, max);
    hi = clamp(hi, min, max);
    if (columns >= 8) {
      vst1q_f32(c, lo);
      vst1q_f32(c + 4, hi);
    } else if (columns >= 4) {
      vst1q_f32(c, lo);
      store_partial(c + 4, hi, columns - 4);
    } else {
      store_partial(c, lo, columns);
    }
  }
};

}  // namespace neon
}  // namespace mnengine
