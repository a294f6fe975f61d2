// Portable scalar reference kernels: the semantics every SIMD kernel must reproduce.
#pragma once

#include "../../kernels.h"

namespace mnengine {

void f32_gemm_4x4__scalar(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                          const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_igemm_4x4__scalar(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                           const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_dwconv3x3__scalar(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* packed_w, float* out, Clamp clamp);
void f32_dwconv5x5__scalar(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* packed_w, float* out, Clamp clamp);
void f32_conv3x3s2c3__scalar(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                             const float* const* rows, const float* packed_w, float* out, Clamp clamp);
void f32_vadd__scalar(size_t n, const float* a, const float* b, float* y, Clamp clamp);
void f32_gavgpool__scalar(size_t pixels, size_t channels, const float* x, float* y);
void f32_gmaxpool__scalar(size_t pixels, size_t channels, const float* x, float* y);
void f32_softmax__scalar(size_t n, const float* x, float* y);
uint64_t f32_fma_peak__scalar(uint64_t iterations, float* sink);
void f32_vmulc__scalar(size_t pixels, size_t channels, const float* x, const float* scale, float* y);
void f32_vhswish__scalar(size_t n, const float* x, float* y);

void qs8_gemm_4x4__scalar(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                          const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output);
void qs8_gemm_f32_4x4__scalar(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                              const void* packed_w, float* c, size_t c_stride, Clamp clamp);
void qs8_dwconv3x3__scalar(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const int8_t* const* rows,
                           const void* packed_w, int8_t* out, int32_t input_zero_point,
                           const Qs8Output& output);
void qs8_conv3x3s2c3__scalar(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                             const int8_t* const* rows, const void* packed_w, int8_t* out,
                             int32_t input_zero_point, const Qs8Output& output);
void qs8_vadd__scalar(size_t n, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& params);
void qs8_gavgpool__scalar(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                          int32_t input_zero_point, float scale, const Qs8Output& output);
void qs8_gmaxpool__scalar(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                          int32_t input_zero_point, float scale, const Qs8Output& output);
void qs8_quantize__scalar(size_t n, const float* x, int8_t* y, float inv_scale, const Qs8Output& output);
void qs8_dequantize__scalar(size_t n, const int8_t* x, float* y, int32_t zero_point, float scale);
uint64_t qs8_dot_peak__scalar(uint64_t iterations, int32_t* sink);

// The scalar qs8 kernel family, shared by every kernel set until it has SIMD versions.
Qs8KernelSet qs8_scalar_kernels();

// NaN-propagating clamp shared by the scalar kernels.
inline float clamp_value(float x, Clamp clamp) {
  x = x < clamp.min ? clamp.min : x;
  return x > clamp.max ? clamp.max : x;
}

// Hard-swish, x * relu6(x + 3) / 6, as every kernel computes it (Clamp in common.h):
// t = min(max(x + 3, 0), 6), then (x * t) * (1/6).
inline float hard_swish_value(float x) {
  const float t = clamp_value(x + 3.0f, Clamp{0.0f, 6.0f});
  return x * t * (1.0f / 6.0f);
}

// The output stage of the f32 convolution kernels: hard-swish if the clamp asks for it, then
// the clamp (the SIMD kernels' is f32-output-stage.h).
inline float output_value(float y, Clamp clamp) {
  return clamp_value(clamp.hard_swish ? hard_swish_value(y) : y, clamp);
}

}  // namespace mnengine
