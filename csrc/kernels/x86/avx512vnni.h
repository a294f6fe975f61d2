// AVX-512 VNNI int8 kernels. Their translation units alone are compiled with -mavx512f
// -mavx512bw -mavx512vnni; the avx512vnni kernel set uses them where the CPU has all three
// (cpu_has_avx512vnni) and the AVX2 int8 kernels for the rest.
#pragma once

#include "../../kernels.h"

namespace mnengine {

void qs8_gemm_6x64c4__avx512vnni(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                 const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output);
void qs8_gemm_f32_6x64c4__avx512vnni(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                     const void* packed_w, float* c, size_t c_stride, Clamp clamp);
void qs8_dwconv3x3__avx512vnni(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                               size_t stride, size_t pad_left, const int8_t* const* rows, const void* packed_w,
                               int8_t* out, int32_t input_zero_point, const Qs8Output& output);
void qs8_conv3x3s2c3__avx512vnni(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                                 const int8_t* const* rows, const void* packed_w, int8_t* out,
                                 int32_t input_zero_point, const Qs8Output& output);
uint64_t qs8_dot_peak__avx512vnni(uint64_t iterations, int32_t* sink);

}  // namespace mnengine
