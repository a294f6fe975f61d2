// AVX2+FMA kernels. Their translation units alone are compiled with -mavx2 -mfma; they use
// intrinsics and plain loops only, so no inline function compiled for AVX2 can be picked
// by the linker for code that runs on a CPU without it.
#pragma once

#include "../../kernels.h"

namespace mnengine {

void f32_gemm_6x16__avx2_fma(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                             const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_igemm_6x16__avx2_fma(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                              const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_dwconv3x3__avx2_fma(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                             size_t stride, size_t pad_left, const float* const* rows,
                             const float* packed_w, float* out, Clamp clamp);
void f32_dwconv5x5__avx2_fma(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* packed_w, float* out, Clamp clamp);
void f32_conv3x3s2c3__avx2_fma(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                               const float* const* rows, const float* packed_w, float* out, Clamp clamp);
void f32_vadd__avx2(size_t n, const float* a, const float* b, float* y, Clamp clamp);
void f32_gavgpool__avx2(size_t pixels, size_t channels, const float* x, float* y);
void f32_gmaxpool__avx2(size_t pixels, size_t channels, const float* x, float* y);
void f32_softmax__avx2_fma(size_t n, const float* x, float* y);
uint64_t f32_fma_peak__avx2_fma(uint64_t iterations, float* sink);
void f32_vmulc__avx2(size_t pixels, size_t channels, const float* x, const float* scale, float* y);
void f32_vhswish__avx2(size_t n, const float* x, float* y);

void qs8_gemm_6x16c2__avx2(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                           const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output);
void qs8_gemm_f32_6x16c2__avx2(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                               const void* packed_w, float* c, size_t c_stride, Clamp clamp);
void qs8_dwconv3x3__avx2(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const int8_t* const* rows, const void* packed_w,
                         int8_t* out, int32_t input_zero_point, const Qs8Output& output);
void qs8_conv3x3s2c3__avx2(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const int8_t* const* rows, const void* packed_w, int8_t* out,
                           int32_t input_zero_point, const Qs8Output& output);
void qs8_vadd__avx2(size_t n, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& params);
void qs8_gavgpool__avx2(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                        int32_t input_zero_point, float scale, const Qs8Output& output);
void qs8_gmaxpool__avx2(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                        int32_t input_zero_point, float scale, const Qs8Output& output);
void qs8_quantize__avx2(size_t n, const float* x, int8_t* y, float inv_scale, const Qs8Output& output);
void qs8_dequantize__avx2(size_t n, const int8_t* x, float* y, int32_t zero_point, float scale);
uint64_t qs8_dot_peak__avx2(uint64_t iterations, int32_t* sink);

// The AVX2 int8 kernel family, shared by the avx2_fma and avx512f kernel sets and used by
// avx512vnni for the layers its own kernels do not cover.
Qs8KernelSet qs8_avx2_kernels();

}  // namespace mnengine
