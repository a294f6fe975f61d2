// AVX-512F kernels. Their translation units alone are compiled with -mavx512f; the AVX-512
// kernel set uses them for the pointwise, depthwise and first convolutions and the FMA peak,
// and the AVX2 kernels for the rest (a CPU with AVX-512F has AVX2 and FMA). The first
// convolution's zmm kernel measured no faster than the AVX2 one on a Zen 4, which splits a zmm
// FMA in two (208 vs 204 us), and 0.64x its time on a core with two 512-bit FMA units (v1's
// 224x224 -> 32 channels, an Intel Xeon with AVX-512).
#pragma once

#include "../../kernels.h"

namespace mnengine {

void f32_gemm_7x32__avx512f(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                            const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_igemm_7x32__avx512f(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                             const float* packed_w, float* c, size_t c_stride, Clamp clamp);
void f32_dwconv3x3__avx512f(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                            size_t stride, size_t pad_left, const float* const* rows,
                            const float* packed_w, float* out, Clamp clamp);
void f32_dwconv5x5__avx512f(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* packed_w, float* out, Clamp clamp);
void f32_conv3x3s2c3__avx512f(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                              const float* const* rows, const float* packed_w, float* out, Clamp clamp);
uint64_t f32_fma_peak__avx512f(uint64_t iterations, float* sink);

}  // namespace mnengine
