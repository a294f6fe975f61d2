// f32-softmax avx2-fma: max, then exp(x - max) and its sum, then scale by 1 / sum.
// exp uses Cephes's range reduction x = n ln2 + r (|r| <= ln2 / 2), a degree-6 polynomial
// for e^r and 2^n built in the exponent bits: within 2 ulp of expf over the range used.
#include "avx2_helpers.h"

namespace mnengine {
namespace {

inline __m256 exp_nonpositive(__m256 x) {
  // Below -87.3 e^x is under FLT_MIN: clamp there (results flush to ~0, as softmax needs).
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2, with ln2 split in two so that n * ln2_high is exact.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

}  // namespace

void f32_softmax__avx2_fma(size_t n, const float* x, float* y) {
  const size_t full = n / 8 * 8;
  const __m256i tail = avx2::tail_mask(n - full);
  // Lanes past the end read as -inf for the max and contribute nothing to the sum.
  const __m256 minus_infinity = _mm256_set1_ps(-__builtin_inff());
  __m256 vmax = minus_infinity;
  for (size_t i = 0; i < full; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  if (full != n) {
    const __m256 v = _mm256_blendv_ps(minus_infinity, _mm256_maskload_ps(x + full, tail), _mm256_castsi256_ps(tail));
    vmax = _mm256_max_ps(vmax, v);
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  const __m256 max = _mm256_broadcastss_ps(m);

  __m256 vsum = _mm256_setzero_ps();
  for (size_t i = 0; i < full; i += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), max));
    _mm256_storeu_ps(y + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  if (full != n) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(x + full, tail), max));
    _mm256_maskstore_ps(y + full, tail, e);
    vsum = _mm256_add_ps(vsum, _mm256_and_ps(e, _mm256_castsi256_ps(tail)));
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(vsum), _mm256_extractf128_ps(vsum, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  const __m256 scale = _mm256_set1_ps(1.0f / _mm_cvtss_f32(s));
  for (size_t i = 0; i < full; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), scale));
  if (full != n) _mm256_maskstore_ps(y + full, tail, _mm256_mul_ps(_mm256_maskload_ps(y + full, tail), scale));
}

}  // namespace mnengine
