// f32-gemm 4x4 scalar and f32-igemm 4x4 scalar: the reference GEMMs on weights packed with
// NR = 4. The GEMM is the IGEMM with one segment per row.
#include "../gemm-rows.h"
#include "scalar.h"

namespace mnengine {

void f32_igemm_4x4__scalar(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                           const float* w, float* c, size_t c_stride, Clamp clamp) {
  constexpr size_t kMR = 4, kNR = 4;
  for (size_t n0 = 0; n0 < nc; n0 += kNR) {
    float acc[kMR][kNR];
    for (size_t i = 0; i < kMR; ++i)
      for (size_t j = 0; j < kNR; ++j) acc[i][j] = w[j];
    w += kNR;
    for (size_t s = 0; s < ks; ++s) {
      for (size_t k = 0; k < kc; ++k) {
        for (size_t i = 0; i < mr; ++i) {
          const float ak = a[s * mr + i][k];
          for (size_t j = 0; j < kNR; ++j) acc[i][j] += ak * w[j];
        }
        w += kNR;
      }
    }
    const size_t cols = nc - n0 < kNR ? nc - n0 : kNR;
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < cols; ++j) c[i * c_stride + n0 + j] = output_value(acc[i][j], clamp);
  }
}

void f32_gemm_4x4__scalar(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                          const float* w, float* c, size_t c_stride, Clamp clamp) {
  gemm_via_igemm<f32_igemm_4x4__scalar, 4>(mr, nc, kc, a, a_stride, w, c, c_stride, clamp);
}

}  // namespace mnengine
