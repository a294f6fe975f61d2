#include "scalar.h"

namespace mnengine {

Qs8KernelSet qs8_scalar_kernels() {
  return {
      "scalar",
      /*gemm_mr=*/4, /*gemm_nr=*/4, /*gemm_kr=*/1, /*gemm_input_offset=*/0, qs8_gemm_4x4__scalar,
      qs8_gemm_f32_4x4__scalar,
      /*dwconv_cr=*/1, qs8_dwconv3x3__scalar,
      /*conv3x3s2c3_cr=*/1, qs8_conv3x3s2c3__scalar,
      qs8_vadd__scalar,
      qs8_gavgpool__scalar,
      qs8_gmaxpool__scalar,
      qs8_quantize__scalar,
      qs8_dequantize__scalar,
      qs8_dot_peak__scalar,
  };
}

const KernelSet& scalar_kernels() {
  static const KernelSet set = {
      "scalar", "scalar",
      /*gemm_mr=*/4, /*gemm_nr=*/4, f32_gemm_4x4__scalar,
      f32_igemm_4x4__scalar,
      /*dwconv_cr=*/1, f32_dwconv3x3__scalar,
      /*conv3x3s2c3_cr=*/1, f32_conv3x3s2c3__scalar,
      f32_vadd__scalar,
      f32_gavgpool__scalar,
      f32_gmaxpool__scalar,
      f32_softmax__scalar,
      f32_fma_peak__scalar,
      f32_vmulc__scalar,
      f32_vhswish__scalar,
      f32_dwconv5x5__scalar,
      qs8_scalar_kernels(),
  };
  return set;
}

}  // namespace mnengine
