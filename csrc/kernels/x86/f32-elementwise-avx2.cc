// Small AVX2 kernels: residual add with clamp, global average and max pooling.
#include "avx2_helpers.h"

namespace mnengine {

void f32_vadd__avx2(size_t n, const float* a, const float* b, float* y, Clamp clamp) {
  const __m256 vmin = _mm256_set1_ps(clamp.min);
  const __m256 vmax = _mm256_set1_ps(clamp.max);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 sum = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(y + i, avx2::clamp(sum, vmin, vmax));
  }
  if (i != n) {
    const __m256i mask = avx2::tail_mask(n - i);
    const __m256 sum = _mm256_add_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask));
    _mm256_maskstore_ps(y + i, mask, avx2::clamp(sum, vmin, vmax));
  }
}

void f32_gavgpool__avx2(size_t pixels, size_t channels, const float* x, float* y) {
  const __m256 scale = _mm256_set1_ps(1.0f / static_cast<float>(pixels));
  for (size_t c = 0; c < channels; c += 8) {
    const __m256i mask = avx2::tail_mask(channels - c < 8 ? channels - c : 8);
    __m256 sum = _mm256_setzero_ps();
    for (size_t p = 0; p < pixels; ++p) sum = _mm256_add_ps(sum, _mm256_maskload_ps(x + p * channels + c, mask));
    _mm256_maskstore_ps(y + c, mask, _mm256_mul_ps(sum, scale));
  }
}

void f32_gmaxpool__avx2(size_t pixels, size_t channels, const float* x, float* y) {
  for (size_t c = 0; c < channels; c += 8) {
    const __m256i mask = avx2::tail_mask(channels - c < 8 ? channels - c : 8);
    __m256 max = _mm256_maskload_ps(x + c, mask);
    for (size_t p = 1; p < pixels; ++p) max = _mm256_max_ps(_mm256_maskload_ps(x + p * channels + c, mask), max);
    _mm256_maskstore_ps(y + c, mask, max);
  }
}

}  // namespace mnengine
