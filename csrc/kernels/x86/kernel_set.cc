#include "avx2_fma.h"
#include "avx512f.h"
#include "avx512vnni.h"
#include "../scalar/scalar.h"

namespace mnengine {

Qs8KernelSet qs8_avx2_kernels() {
  Qs8KernelSet set = qs8_scalar_kernels();
  set.name = "avx2";
  set.gemm_mr = 6;
  set.gemm_nr = 16;
  set.gemm_kr = 2;
  set.gemm_input_offset = 0;
  set.gemm = qs8_gemm_6x16c2__avx2;
  set.dwconv_cr = 16;
  set.dwconv3x3 = qs8_dwconv3x3__avx2;
  set.conv3x3s2c3_cr = 16;
  set.conv3x3s2c3 = qs8_conv3x3s2c3__avx2;
  set.vadd = qs8_vadd__avx2;
  set.global_avg_pool = qs8_gavgpool__avx2;
  set.global_max_pool = qs8_gmaxpool__avx2;
  set.quantize = qs8_quantize__avx2;
  set.dequantize = qs8_dequantize__avx2;
  set.dot_peak = qs8_dot_peak__avx2;
  return set;
}

const KernelSet& avx2_fma_kernels() {
  static const KernelSet set = {
      "avx2_fma", "avx2_fma",
      /*gemm_mr=*/6, /*gemm_nr=*/16, f32_gemm_6x16__avx2_fma,
      f32_igemm_6x16__avx2_fma,
      /*dwconv_cr=*/8, f32_dwconv3x3__avx2_fma,
      /*conv3x3s2c3_cr=*/8, f32_conv3x3s2c3__avx2_fma,
      f32_vadd__avx2,
      f32_gavgpool__avx2,
      f32_gmaxpool__avx2,
      f32_softmax__avx2_fma,
      f32_fma_peak__avx2_fma,
      qs8_avx2_kernels(),
  };
  return set;
}

const KernelSet& avx512f_kernels() {
  static const KernelSet set = {
      "avx512f", "avx512f",
      /*gemm_mr=*/7, /*gemm_nr=*/32, f32_gemm_7x32__avx512f,
      f32_igemm_7x32__avx512f,
      /*dwconv_cr=*/16, f32_dwconv3x3__avx512f,
      /*conv3x3s2c3_cr=*/8, f32_conv3x3s2c3__avx2_fma,
      f32_vadd__avx2,
      f32_gavgpool__avx2,
      f32_gmaxpool__avx2,
      f32_softmax__avx2_fma,
      f32_fma_peak__avx512f,
      qs8_avx2_kernels(),
  };
  return set;
}

const KernelSet& avx512vnni_kernels() {
  static const KernelSet set = [] {
    KernelSet vnni = avx512f_kernels();
    vnni.isa = "avx512vnni";
    vnni.qs8 = qs8_avx2_kernels();
    vnni.qs8.name = "avx512vnni";
    vnni.qs8.gemm_mr = 6;
    vnni.qs8.gemm_nr = 64;
    vnni.qs8.gemm_kr = 4;
    vnni.qs8.gemm_input_offset = 128;  // VPDPBUSD reads A as unsigned a + 128
    vnni.qs8.gemm = qs8_gemm_6x64c4__avx512vnni;
    vnni.qs8.dwconv_cr = 64;
    vnni.qs8.dwconv3x3 = qs8_dwconv3x3__avx512vnni;
    vnni.qs8.conv3x3s2c3_cr = 16;
    vnni.qs8.conv3x3s2c3 = qs8_conv3x3s2c3__avx512vnni;
    vnni.qs8.dot_peak = qs8_dot_peak__avx512vnni;
    return vnni;
  }();
  return set;
}

}  // namespace mnengine
