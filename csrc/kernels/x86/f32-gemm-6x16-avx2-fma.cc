// f32-gemm 6x16 avx2-fma: 6 rows of A against 16-column panels of packed weights.
// Registers: 12 accumulators (6 rows x 2 ymm), 2 weight vectors, 1 broadcast of A.
#include "avx2_helpers.h"

namespace mnengine {

void f32_gemm_6x16__avx2_fma(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                             const float* w, float* c, size_t c_stride, Clamp clamp) {
  // Rows beyond mr alias the last real row: they compute and store the same values twice
  // instead of branching in the inner loop.
  const float* a0 = a;
  float* c0 = c;
  const float* a1 = mr > 1 ? a0 + a_stride : a0;
  float* c1 = mr > 1 ? c0 + c_stride : c0;
  const float* a2 = mr > 2 ? a1 + a_stride : a1;
  float* c2 = mr > 2 ? c1 + c_stride : c1;
  const float* a3 = mr > 3 ? a2 + a_stride : a2;
  float* c3 = mr > 3 ? c2 + c_stride : c2;
  const float* a4 = mr > 4 ? a3 + a_stride : a3;
  float* c4 = mr > 4 ? c3 + c_stride : c3;
  const float* a5 = mr > 5 ? a4 + a_stride : a4;
  float* c5 = mr > 5 ? c4 + c_stride : c4;

  const __m256 vmin = _mm256_set1_ps(clamp.min);
  const __m256 vmax = _mm256_set1_ps(clamp.max);
  while (nc != 0) {
    __m256 acc0l = _mm256_load_ps(w), acc0h = _mm256_load_ps(w + 8);
    __m256 acc1l = acc0l, acc1h = acc0h, acc2l = acc0l, acc2h = acc0h;
    __m256 acc3l = acc0l, acc3h = acc0h, acc4l = acc0l, acc4h = acc0h;
    __m256 acc5l = acc0l, acc5h = acc0h;
    w += 16;
    for (size_t k = 0; k < kc; ++k, w += 16) {
      const __m256 bl = _mm256_load_ps(w);
      const __m256 bh = _mm256_load_ps(w + 8);
      __m256 va = _mm256_broadcast_ss(a0 + k);
      acc0l = _mm256_fmadd_ps(va, bl, acc0l);
      acc0h = _mm256_fmadd_ps(va, bh, acc0h);
      va = _mm256_broadcast_ss(a1 + k);
      acc1l = _mm256_fmadd_ps(va, bl, acc1l);
      acc1h = _mm256_fmadd_ps(va, bh, acc1h);
      va = _mm256_broadcast_ss(a2 + k);
      acc2l = _mm256_fmadd_ps(va, bl, acc2l);
      acc2h = _mm256_fmadd_ps(va, bh, acc2h);
      va = _mm256_broadcast_ss(a3 + k);
      acc3l = _mm256_fmadd_ps(va, bl, acc3l);
      acc3h = _mm256_fmadd_ps(va, bh, acc3h);
      va = _mm256_broadcast_ss(a4 + k);
      acc4l = _mm256_fmadd_ps(va, bl, acc4l);
      acc4h = _mm256_fmadd_ps(va, bh, acc4h);
      va = _mm256_broadcast_ss(a5 + k);
      acc5l = _mm256_fmadd_ps(va, bl, acc5l);
      acc5h = _mm256_fmadd_ps(va, bh, acc5h);
    }
    acc0l = avx2::clamp(acc0l, vmin, vmax); acc0h = avx2::clamp(acc0h, vmin, vmax);
    acc1l = avx2::clamp(acc1l, vmin, vmax); acc1h = avx2::clamp(acc1h, vmin, vmax);
    acc2l = avx2::clamp(acc2l, vmin, vmax); acc2h = avx2::clamp(acc2h, vmin, vmax);
    acc3l = avx2::clamp(acc3l, vmin, vmax); acc3h = avx2::clamp(acc3h, vmin, vmax);
    acc4l = avx2::clamp(acc4l, vmin, vmax); acc4h = avx2::clamp(acc4h, vmin, vmax);
    acc5l = avx2::clamp(acc5l, vmin, vmax); acc5h = avx2::clamp(acc5h, vmin, vmax);

    if (nc >= 16) {
      _mm256_storeu_ps(c5, acc5l); _mm256_storeu_ps(c5 + 8, acc5h); c5 += 16;
      _mm256_storeu_ps(c4, acc4l); _mm256_storeu_ps(c4 + 8, acc4h); c4 += 16;
      _mm256_storeu_ps(c3, acc3l); _mm256_storeu_ps(c3 + 8, acc3h); c3 += 16;
      _mm256_storeu_ps(c2, acc2l); _mm256_storeu_ps(c2 + 8, acc2h); c2 += 16;
      _mm256_storeu_ps(c1, acc1l); _mm256_storeu_ps(c1 + 8, acc1h); c1 += 16;
      _mm256_storeu_ps(c0, acc0l); _mm256_storeu_ps(c0 + 8, acc0h); c0 += 16;
      nc -= 16;
    } else {
      // Partial panel: the low 8 columns whole if there are 8 or more, the rest masked.
      if (nc >= 8) {
        _mm256_storeu_ps(c5, acc5l); _mm256_storeu_ps(c4, acc4l); _mm256_storeu_ps(c3, acc3l);
        _mm256_storeu_ps(c2, acc2l); _mm256_storeu_ps(c1, acc1l); _mm256_storeu_ps(c0, acc0l);
        acc5l = acc5h; acc4l = acc4h; acc3l = acc3h; acc2l = acc2h; acc1l = acc1h; acc0l = acc0h;
        c5 += 8; c4 += 8; c3 += 8; c2 += 8; c1 += 8; c0 += 8;
        nc -= 8;
      }
      if (nc != 0) {
        const __m256i mask = avx2::tail_mask(nc);
        _mm256_maskstore_ps(c5, mask, acc5l); _mm256_maskstore_ps(c4, mask, acc4l);
        _mm256_maskstore_ps(c3, mask, acc3l); _mm256_maskstore_ps(c2, mask, acc2l);
        _mm256_maskstore_ps(c1, mask, acc1l); _mm256_maskstore_ps(c0, mask, acc0l);
      }
      nc = 0;
    }
  }
}

}  // namespace mnengine
