#include "scalar.h"

namespace mnengine {

const KernelSet& scalar_kernels() {
  static const KernelSet set = {
      "scalar",
      /*gemm_mr=*/4, /*gemm_nr=*/4, f32_gemm_4x4__scalar,
      f32_igemm_4x4__scalar,
      /*dwconv_cr=*/1, f32_dwconv3x3__scalar,
      /*conv3x3s2c3_cr=*/1, f32_conv3x3s2c3__scalar,
      f32_vadd__scalar,
      f32_gavgpool__scalar,
      f32_gmaxpool__scalar,
      f32_softmax__scalar,
      f32_fma_peak__scalar,
  };
  return set;
}

}  // namespace mnengine
