// Small qs8 NEON kernels: residual add, global average and max pooling, and quantize and
// dequantize at the network's float edges, 16 int8 values per step.
#include <cstddef>

#include "neon.h"

namespace mnengine {
namespace {

// int8 lanes minus a zero point, exactly, as four int32x4 (lanes 0-3, ..., 12-15).
struct Widened {
  int32x4_t q[4];
};

inline Widened minus_zero_point(int8x16_t x, int8x8_t zero_point) {
  const int16x8_t lo = vsubl_s8(vget_low_s8(x), zero_point);  // in [-255, 255]
  const int16x8_t hi = vsubl_high_s8(x, vcombine_s8(zero_point, zero_point));
  return {{vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)), vmovl_high_s16(hi)}};
}

inline int8x16_t requantize16(const neon::Qs8Requantize& rq, float32x4_t v0, float32x4_t v1, float32x4_t v2,
                              float32x4_t v3) {
  return rq.to_int8(rq.to_int16(v0, v1), rq.to_int16(v2, v3));
}

template <class Lanes>
inline void add16(Lanes lanes, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& p,
                  int8x8_t a_zero_point, int8x8_t b_zero_point, const neon::Qs8Requantize& rq) {
  const Widened va = minus_zero_point(lanes.load(a), a_zero_point);
  const Widened vb = minus_zero_point(lanes.load(b), b_zero_point);
  float32x4_t sum[4];
  // Two products, then their sum, each rounded (no FMLA: the reference rounds the products).
  for (size_t q = 0; q < 4; ++q)
    sum[q] = vaddq_f32(vmulq_f32(vcvtq_f32_s32(va.q[q]), vdupq_n_f32(p.a_scale)),
                       vmulq_f32(vcvtq_f32_s32(vb.q[q]), vdupq_n_f32(p.b_scale)));
  lanes.store(y, requantize16(rq, sum[0], sum[1], sum[2], sum[3]));
}

// Sums `pixels` values of 16 channels, `channels` apart, into `acc` (in int32). The inner sums
// are int16, 256 pixels at a time: 256 * -128 is int16's minimum.
template <class Lanes>
inline void sum_pixels(Lanes lanes, size_t pixels, size_t channels, const int8_t* x, int32x4_t* acc) {
  constexpr size_t kChunk = 256;
  for (size_t p0 = 0; p0 < pixels; p0 += kChunk) {
    const size_t end = pixels - p0 < kChunk ? pixels : p0 + kChunk;
    int16x8_t lo = vdupq_n_s16(0), hi = vdupq_n_s16(0);
    for (size_t p = p0; p < end; ++p) {
      const int8x16_t v = lanes.load(x + p * channels);
      lo = vaddw_s8(lo, vget_low_s8(v));
      hi = vaddw_high_s8(hi, v);
    }
    acc[0] = vaddw_s16(acc[0], vget_low_s16(lo));
    acc[1] = vaddw_high_s16(acc[1], lo);
    acc[2] = vaddw_s16(acc[2], vget_low_s16(hi));
    acc[3] = vaddw_high_s16(acc[3], hi);
  }
}

template <class Lanes>
inline void avg_pool16(Lanes lanes, size_t pixels, size_t channels, const int8_t* x, int8_t* y, int32x4_t bias,
                       float32x4_t scale, const neon::Qs8Requantize& rq) {
  int32x4_t acc[4] = {bias, bias, bias, bias};
  sum_pixels(lanes, pixels, channels, x, acc);
  lanes.store(y, requantize16(rq, neon::scaled(acc[0], scale), neon::scaled(acc[1], scale),
                              neon::scaled(acc[2], scale), neon::scaled(acc[3], scale)));
}

template <class Lanes>
inline void max_pool16(Lanes lanes, size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                       int8x8_t zero_point, float32x4_t scale, const neon::Qs8Requantize& rq) {
  int8x16_t max = lanes.load(x);
  for (size_t p = 1; p < pixels; ++p) max = vmaxq_s8(max, lanes.load(x + p * channels));
  const Widened v = minus_zero_point(max, zero_point);
  lanes.store(y, requantize16(rq, neon::scaled(v.q[0], scale), neon::scaled(v.q[1], scale),
                              neon::scaled(v.q[2], scale), neon::scaled(v.q[3], scale)));
}

// 16 floats at x quantized into int8 at y (`count` of them through Int8Tail).
inline int8x16_t quantize16(const float* x, float32x4_t inv_scale, float32x4_t min, const neon::Qs8Requantize& rq) {
  float32x4_t v[4];
  // FMAXNM returns the number when the other operand is a quiet NaN (the product of any NaN
  // is quiet): NaN becomes min, as in the reference. The upper bound, and the lower one for
  // every other value, are applied to the integers (see Qs8Requantize).
  for (size_t q = 0; q < 4; ++q) v[q] = vmaxnmq_f32(vmulq_f32(vld1q_f32(x + 4 * q), inv_scale), min);
  return requantize16(rq, v[0], v[1], v[2], v[3]);
}

inline void dequantize16(int8x16_t x, int8x8_t zero_point, float32x4_t scale, float* y) {
  const Widened v = minus_zero_point(x, zero_point);
  for (size_t q = 0; q < 4; ++q) vst1q_f32(y + 4 * q, vmulq_f32(vcvtq_f32_s32(v.q[q]), scale));
}

}  // namespace

void qs8_vadd__neon(size_t n, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& p) {
  const int8x8_t a_zero_point = vdup_n_s8(static_cast<int8_t>(p.a_zero_point));
  const int8x8_t b_zero_point = vdup_n_s8(static_cast<int8_t>(p.b_zero_point));
  const neon::Qs8Requantize rq(p.output);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) add16(neon::Int8Full(), a + i, b + i, y + i, p, a_zero_point, b_zero_point, rq);
  if (i != n) add16(neon::Int8Tail{n - i}, a + i, b + i, y + i, p, a_zero_point, b_zero_point, rq);
}

void qs8_gavgpool__neon(size_t pixels, size_t channels, const int8_t* x, int8_t* y, int32_t input_zero_point,
                        float scale, const Qs8Output& output) {
  const int32x4_t bias = vdupq_n_s32(-static_cast<int32_t>(pixels) * input_zero_point);
  const float32x4_t vscale = vdupq_n_f32(scale);
  const neon::Qs8Requantize rq(output);
  size_t c = 0;
  for (; c + 16 <= channels; c += 16) avg_pool16(neon::Int8Full(), pixels, channels, x + c, y + c, bias, vscale, rq);
  if (c != channels) avg_pool16(neon::Int8Tail{channels - c}, pixels, channels, x + c, y + c, bias, vscale, rq);
}

void qs8_gmaxpool__neon(size_t pixels, size_t channels, const int8_t* x, int8_t* y, int32_t input_zero_point,
                        float scale, const Qs8Output& output) {
  const int8x8_t zero_point = vdup_n_s8(static_cast<int8_t>(input_zero_point));
  const float32x4_t vscale = vdupq_n_f32(scale);
  const neon::Qs8Requantize rq(output);
  size_t c = 0;
  for (; c + 16 <= channels; c += 16)
    max_pool16(neon::Int8Full(), pixels, channels, x + c, y + c, zero_point, vscale, rq);
  if (c != channels) max_pool16(neon::Int8Tail{channels - c}, pixels, channels, x + c, y + c, zero_point, vscale, rq);
}

void qs8_quantize__neon(size_t n, const float* x, int8_t* y, float inv_scale, const Qs8Output& output) {
  const float32x4_t vinv_scale = vdupq_n_f32(inv_scale);
  const float32x4_t min = vdupq_n_f32(output.min);
  const neon::Qs8Requantize rq(output);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) vst1q_s8(y + i, quantize16(x + i, vinv_scale, min, rq));
  if (i != n) {
    float tail[16] = {};
    std::memcpy(tail, x + i, (n - i) * sizeof(float));
    neon::store_partial_s8(y + i, quantize16(tail, vinv_scale, min, rq), n - i);
  }
}

void qs8_dequantize__neon(size_t n, const int8_t* x, float* y, int32_t zero_point, float scale) {
  const int8x8_t vzero_point = vdup_n_s8(static_cast<int8_t>(zero_point));
  const float32x4_t vscale = vdupq_n_f32(scale);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) dequantize16(vld1q_s8(x + i), vzero_point, vscale, y + i);
  if (i != n) {
    float tail[16];
    dequantize16(neon::load_partial_s8(x + i, n - i), vzero_point, vscale, tail);
    std::memcpy(y + i, tail, (n - i) * sizeof(float));
  }
}

}  // namespace mnengine
