// qs8-gemm 4x4 scalar: the reference int8 GEMM on weights packed with NR = 4, KR = 1.
#include <cstring>

#include "../qs8-requantize.h"
#include "scalar.h"

namespace mnengine {

void qs8_gemm_4x4__scalar(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                          const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output) {
  constexpr size_t kMR = 4, kNR = 4;
  const auto* w = static_cast<const uint8_t*>(packed_w);
  for (size_t n0 = 0; n0 < nc; n0 += kNR) {
    int32_t acc[kMR][kNR];
    int32_t bias[kNR];
    std::memcpy(bias, w, sizeof(bias));
    w += sizeof(bias);
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < kNR; ++j) acc[i][j] = bias[j];
    const auto* weights = reinterpret_cast<const int8_t*>(w);
    for (size_t k = 0; k < kc; ++k, weights += kNR) {
      for (size_t i = 0; i < mr; ++i) {
        const int32_t ak = a[i * a_stride + k];
        for (size_t j = 0; j < kNR; ++j) acc[i][j] += ak * weights[j];
      }
    }
    w += kc * kNR;
    float scale[kNR];
    std::memcpy(scale, w, sizeof(scale));
    w += sizeof(scale);
    const size_t cols = nc - n0 < kNR ? nc - n0 : kNR;
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < cols; ++j) c[i * c_stride + n0 + j] = qs8_requantize(acc[i][j], scale[j], output);
  }
}

}  // namespace mnengine
