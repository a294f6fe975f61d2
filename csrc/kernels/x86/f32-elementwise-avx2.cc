// Small AVX2 kernels: residual add with clamp, channel multiply, hard-swish, global average and
// max pooling. Memory-bound: the AVX-512 kernel set uses them too.
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

void f32_vmulc__avx2(size_t pixels, size_t channels, const float* x, const float* scale, float* y) {
  for (size_t p = 0; p < pixels; ++p, x += channels, y += channels) {
    size_t c = 0;
    for (; c + 8 <= channels; c += 8) _mm256_storeu_ps(y + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(scale + c)));
    if (c != channels) {
      const __m256i mask = avx2::tail_mask(channels - c);
      _mm256_maskstore_ps(y + c, mask, _mm256_mul_ps(_mm256_maskload_ps(x + c, mask), _mm256_maskload_ps(scale + c, mask)));
    }
  }
}

void f32_vhswish__avx2(size_t n, const float* x, float* y) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, avx2::hard_swish(_mm256_loadu_ps(x + i)));
  if (i != n) {
    const __m256i mask = avx2::tail_mask(n - i);
    _mm256_maskstore_ps(y + i, mask, avx2::hard_swish(_mm256_maskload_ps(x + i, mask)));
  }
}

// The pooling kernels walk the input a pixel at a time, folding each row of channels into y
// (a few KiB, in L1): the input is read in order. With the channel groups outer, the pixels of
// a group lie `channels` floats apart, and at 1024 channels (MobileNet v1) that is 4 KiB, one
// L1 set for all 49 of them: v1's average pool took 14 us. Each channel is still reduced in
// pixel order, so the results are the same.
namespace {

// y[c] = op(x[c], y[c]) for c in [0, channels), or y = x when `first`.
template <class Op>
inline void fold_row(size_t channels, const float* x, float* y, Op op, bool first) {
  size_t c = 0;
  for (; c + 8 <= channels; c += 8) {
    const __m256 v = _mm256_loadu_ps(x + c);
    _mm256_storeu_ps(y + c, first ? v : op(v, _mm256_loadu_ps(y + c)));
  }
  if (c != channels) {
    const __m256i mask = avx2::tail_mask(channels - c);
    const __m256 v = _mm256_maskload_ps(x + c, mask);
    _mm256_maskstore_ps(y + c, mask, first ? v : op(v, _mm256_maskload_ps(y + c, mask)));
  }
}

}  // namespace

void f32_gavgpool__avx2(size_t pixels, size_t channels, const float* x, float* y) {
  const auto add = [](__m256 v, __m256 sum) { return _mm256_add_ps(sum, v); };
  for (size_t p = 0; p < pixels; ++p) fold_row(channels, x + p * channels, y, add, p == 0);
  const __m256 scale = _mm256_set1_ps(1.0f / static_cast<float>(pixels));
  fold_row(channels, y, y, [&](__m256 v, __m256) { return _mm256_mul_ps(v, scale); }, false);
}

void f32_gmaxpool__avx2(size_t pixels, size_t channels, const float* x, float* y) {
  const auto max = [](__m256 v, __m256 m) { return _mm256_max_ps(v, m); };
  for (size_t p = 0; p < pixels; ++p) fold_row(channels, x + p * channels, y, max, p == 0);
}

}  // namespace mnengine
