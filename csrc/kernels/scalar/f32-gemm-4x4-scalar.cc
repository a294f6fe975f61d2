// f32-gemm 4x4 scalar: the reference GEMM on weights packed with NR = 4.
#include "scalar.h"

namespace mnengine {

void f32_gemm_4x4__scalar(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                          const float* w, float* c, size_t c_stride, Clamp clamp) {
  constexpr size_t kMR = 4, kNR = 4;
  for (size_t n0 = 0; n0 < nc; n0 += kNR) {
    float acc[kMR][kNR];
    for (size_t i = 0; i < kMR; ++i)
      for (size_t j = 0; j < kNR; ++j) acc[i][j] = w[j];
    w += kNR;
    for (size_t k = 0; k < kc; ++k) {
      for (size_t i = 0; i < mr; ++i) {
        const float ak = a[i * a_stride + k];
        for (size_t j = 0; j < kNR; ++j) acc[i][j] += ak * w[j];
      }
      w += kNR;
    }
    const size_t cols = nc - n0 < kNR ? nc - n0 : kNR;
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < cols; ++j) c[i * c_stride + n0 + j] = clamp_value(acc[i][j], clamp);
  }
}

}  // namespace mnengine
