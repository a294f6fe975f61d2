#include "avx2_fma.h"
#include "avx512f.h"
#include "avx512vnni.h"
#include "../scalar/scalar.h"

namespace mnengine {

Qs8KernelSet qs8_avx2_kernels() {
  return {
      "avx2",
      /*gemm_mr=*/6, /*gemm_nr=*/16, /*gemm_kr=*/2, /*gemm_input_offset=*/0, qs8_gemm_6x16c2__avx2,
      qs8_gemm_f32_6x16c2__avx2,
      /*dwconv_cr=*/16, qs8_dwconv3x3__avx2,
      /*conv3x3s2c3_cr=*/16, qs8_conv3x3s2c3__avx2,
      qs8_vadd__avx2,
      qs8_gavgpool__avx2,
      qs8_gmaxpool__avx2,
      qs8_quantize__avx2,
      qs8_dequantize__avx2,
      qs8_dot_peak__avx2,
  };
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
      f32_vmulc__avx2,
      f32_vhswish__avx2,
      f32_dwconv5x5__avx2_fma,
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
      /*conv3x3s2c3_cr=*/16, f32_conv3x3s2c3__avx512f,
      f32_vadd__avx2,
      f32_gavgpool__avx2,
      f32_gmaxpool__avx2,
      f32_softmax__avx2_fma,
      f32_fma_peak__avx512f,
      f32_vmulc__avx2,
      f32_vhswish__avx2,
      f32_dwconv5x5__avx512f,
      qs8_avx2_kernels(),
  };
  return set;
}

const KernelSet& avx512vnni_kernels() {
  static const KernelSet set = [] {
    KernelSet vnni = avx512f_kernels();
    vnni.isa = "avx512vnni";
    // VPDPBUSD kernels where they pay; the AVX2 ones for the small element-wise layers (16
    // values at a time, a fraction of a percent of a network's time).
    vnni.qs8 = {
        "avx512vnni",
        // VPDPBUSD reads A as unsigned a + 128: the packing folds -128 * sum_k w into the biases.
        /*gemm_mr=*/6, /*gemm_nr=*/64, /*gemm_kr=*/4, /*gemm_input_offset=*/128, qs8_gemm_6x64c4__avx512vnni,
        qs8_gemm_f32_6x64c4__avx512vnni,
        /*dwconv_cr=*/64, qs8_dwconv3x3__avx512vnni,
        /*conv3x3s2c3_cr=*/16, qs8_conv3x3s2c3__avx512vnni,
        qs8_vadd__avx2,
        qs8_gavgpool__avx2,
        qs8_gmaxpool__avx2,
        qs8_quantize__avx2,
        qs8_dequantize__avx2,
        qs8_dot_peak__avx512vnni,
    };
    return vnni;
  }();
  return set;
}

}  // namespace mnengine
