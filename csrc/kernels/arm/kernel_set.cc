#include "neon.h"

namespace mnengine {
namespace {

// ARMv8.0: int8 multiplies into int16 (SMULL/SMLAL), pairwise into int32 (SADALP).
Qs8KernelSet qs8_neon_kernels() {
  return {
      "neon",
      /*gemm_mr=*/2, /*gemm_nr=*/8, /*gemm_kr=*/8, /*gemm_input_offset=*/0, qs8_gemm_2x8c8__neon,
      qs8_gemm_f32_2x8c8__neon,
      /*dwconv_cr=*/16, qs8_dwconv3x3__neon,
      /*conv3x3s2c3_cr=*/8, qs8_conv3x3s2c3__neon,
      qs8_vadd__neon,
      qs8_gavgpool__neon,
      qs8_gmaxpool__neon,
      qs8_quantize__neon,
      qs8_dequantize__neon,
      qs8_dot_peak__neon,
  };
}

// ARMv8.2 dot product: the GEMM on SDOT (signed by signed: no input offset). The depthwise and
// first-layer kernels stay ARMv8.0's: SDOT sums 4 adjacent bytes, which in NHWC are 4
// channels, not 4 taps of one channel.
Qs8KernelSet qs8_neon_dotprod_kernels() {
  Qs8KernelSet set = qs8_neon_kernels();
  set.name = "neon_dotprod";
  set.gemm_mr = 4;
  set.gemm_nr = 8;
  set.gemm_kr = 4;
  set.gemm_input_offset = 0;
  set.gemm = qs8_gemm_4x8c4__neondot;
  set.gemm_f32 = qs8_gemm_f32_4x8c4__neondot;
  set.dot_peak = qs8_dot_peak__neondot;
  return set;
}

}  // namespace

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
      f32_vmulc__neon,
      f32_vhswish__neon,
      f32_dwconv5x5__neon,
      qs8_neon_kernels(),
  };
  return set;
}

const KernelSet& neon_dotprod_kernels() {
  static const KernelSet set = [] {
    KernelSet dotprod = neon_kernels();
    dotprod.isa = "neon_dotprod";
    dotprod.qs8 = qs8_neon_dotprod_kernels();
    return dotprod;
  }();
  return set;
}

}  // namespace mnengine
