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
void f32_conv3x3s2c3__avx2_fma(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                               const float* const* rows, const float* packed_w, float* out, Clamp clamp);
void f32_vadd__avx2(size_t n, const float* a, const float* b, float* y, Clamp clamp);
void f32_gavgpool__avx2(size_t pixels, size_t channels, const float* x, float* y);
void f32_gmaxpool__avx2(size_t pixels, size_t channels, const float* x, float* y);
void f32_softmax__avx2_fma(size_t n, const float* x, float* y);
uint64_t f32_fma_peak__avx2_fma(uint64_t iterations, float* sink);

}  // namespace mnengine
