// f32-gemm 6x16 avx2-fma: up to 6 rows of A against 16-column panels of packed weights.
// Registers: 12 accumulators (6 rows x 2 ymm), 2 weight vectors, 1 broadcast of A. Row
// counts below 6 (the last tile of a layer, or a batch-1 dense layer) run a kernel compiled
// for exactly that many rows rather than repeating a row.
#include "avx2_helpers.h"

namespace mnengine {
namespace {

template <size_t kRows>
void gemm_rows(size_t nc, size_t kc, const float* a, size_t a_stride, const float* w, float* c,
               size_t c_stride, Clamp clamp) {
  const __m256 vmin = _mm256_set1_ps(clamp.min);
  const __m256 vmax = _mm256_set1_ps(clamp.max);
  const float* a_row[kRows];
  float* c_row[kRows];
  for (size_t i = 0; i < kRows; ++i) {
    a_row[i] = a + i * a_stride;
    c_row[i] = c + i * c_stride;
  }
  while (nc != 0) {
    __m256 lo[kRows], hi[kRows];  // columns 0-7 and 8-15 of each row
    lo[0] = _mm256_load_ps(w);
    hi[0] = _mm256_load_ps(w + 8);
    for (size_t i = 1; i < kRows; ++i) {
      lo[i] = lo[0];
      hi[i] = hi[0];
    }
    w += 16;
    for (size_t k = 0; k < kc; ++k, w += 16) {
      const __m256 b_lo = _mm256_load_ps(w);
      const __m256 b_hi = _mm256_load_ps(w + 8);
      for (size_t i = 0; i < kRows; ++i) {
        const __m256 a_ik = _mm256_broadcast_ss(a_row[i] + k);
        lo[i] = _mm256_fmadd_ps(a_ik, b_lo, lo[i]);
        hi[i] = _mm256_fmadd_ps(a_ik, b_hi, hi[i]);
      }
    }
    for (size_t i = 0; i < kRows; ++i) {
      lo[i] = avx2::clamp(lo[i], vmin, vmax);
      hi[i] = avx2::clamp(hi[i], vmin, vmax);
    }
    if (nc >= 16) {
      for (size_t i = 0; i < kRows; ++i) {
        _mm256_storeu_ps(c_row[i], lo[i]);
        _mm256_storeu_ps(c_row[i] + 8, hi[i]);
        c_row[i] += 16;
      }
      nc -= 16;
    } else {
      // Partial panel: the low 8 columns whole if there are 8 or more, the rest masked.
      if (nc >= 8) {
        for (size_t i = 0; i < kRows; ++i) {
          _mm256_storeu_ps(c_row[i], lo[i]);
          lo[i] = hi[i];
          c_row[i] += 8;
        }
        nc -= 8;
      }
      if (nc != 0) {
        const __m256i mask = avx2::tail_mask(nc);
        for (size_t i = 0; i < kRows; ++i) _mm256_maskstore_ps(c_row[i], mask, lo[i]);
      }
      nc = 0;
    }
  }
}

}  // namespace

void f32_gemm_6x16__avx2_fma(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                             const float* w, float* c, size_t c_stride, Clamp clamp) {
  switch (mr) {
    case 1: return gemm_rows<1>(nc, kc, a, a_stride, w, c, c_stride, clamp);
    case 2: return gemm_rows<2>(nc, kc, a, a_stride, w, c, c_stride, clamp);
    case 3: return gemm_rows<3>(nc, kc, a, a_stride, w, c, c_stride, clamp);
    case 4: return gemm_rows<4>(nc, kc, a, a_stride, w, c, c_stride, clamp);
    case 5: return gemm_rows<5>(nc, kc, a, a_stride, w, c, c_stride, clamp);
    default: return gemm_rows<6>(nc, kc, a, a_stride, w, c, c_stride, clamp);
  }
}

}  // namespace mnengine
