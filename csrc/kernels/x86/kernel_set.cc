#include "avx2_fma.h"
#include "avx512f.h"
#include "../scalar/scalar.h"

namespace mnengine {

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
      qs8_scalar_kernels(),
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
      qs8_scalar_kernels(),
  };
  return set;
}

const KernelSet& avx512vnni_kernels() {
  static const KernelSet set = [] {
    KernelSet vnni = avx512f_kernels();
    vnni.isa = "avx512vnni";
    vnni.qs8 = qs8_scalar_kernels();
    return vnni;
  }();
  return set;
}

}  // namespace mnengine
