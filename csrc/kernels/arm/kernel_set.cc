#include "neon.h"
#include "../scalar/scalar.h"

namespace mnengine {

const KernelSet& neon_kernels() {
  static const KernelSet set = {
      "neon", "neon",
      /*gemm_mr=*/6, /*gemm_nr=*/8, f32_gemm_6x8__neon,
      f32_igemm_6x8__neon,
      /*dwconv_cr=*/4, f32_dwconv3x3__neon,
      /*conv3x3s2c3_cr=*/4, f32_conv3x3s2c3__neon,
      f32_vadd__neon,
      f32_gavgpool__neon,
      f32_gmaxpool__neon,
      f32_softmax__neon,
      f32_fma_peak__neon,
      qs8_scalar_kernels(),
  };
  return set;
}

const KernelSet& neon_dotprod_kernels() {
  static const KernelSet set = [] {
    KernelSet dotprod = neon_kernels();
    dotprod.isa = "neon_dotprod";
    dotprod.qs8 = qs8_scalar_kernels();
    return dotprod;
  }();
  return set;
}

}  // namespace mnengine
