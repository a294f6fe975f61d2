// Small qs8 AVX2 kernels: residual add, global average and max pooling, and the quantize and
// dequantize steps at an int8 network's float32 edges. Each works 16 values (one xmm of
// int8, two ymm of int32 or float) at a time; a tail of fewer goes through a zeroed block
// (load_tail / store_tail), so no byte outside the arguments is read or written.
#include "avx2_helpers.h"

namespace mnengine {
namespace {

using avx2::load_tail;
using avx2::Qs8Requantization;
using avx2::store_tail;

inline __m128i load16(const int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline void store16(int8_t* p, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }

// The low and high 8 int8 of v as int32.
inline __m256i low8(__m128i v) { return _mm256_cvtepi8_epi32(v); }
inline __m256i high8(__m128i v) { return _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)); }

}  // namespace

void qs8_vadd__avx2(size_t n, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& params) {
  const Qs8Requantization rq(params.output);
  const __m256i a_zero_point = _mm256_set1_epi32(params.a_zero_point);
  const __m256i b_zero_point = _mm256_set1_epi32(params.b_zero_point);
  const __m256 a_scale = _mm256_set1_ps(params.a_scale), b_scale = _mm256_set1_ps(params.b_scale);
  // Two products, then their sum: each rounded to float32 (no FMA), as in the reference.
  const auto sum8 = [&](__m256i va, __m256i vb) {
    const __m256 fa = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(va, a_zero_point)), a_scale);
    const __m256 fb = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(vb, b_zero_point)), b_scale);
    return rq.round(_mm256_add_ps(fa, fb));
  };
  const auto sum16 = [&](__m128i va, __m128i vb) {
    return rq.pack(sum8(low8(va), low8(vb)), sum8(high8(va), high8(vb)));
  };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) store16(y + i, sum16(load16(a + i), load16(b + i)));
  if (i != n) store_tail(y + i, sum16(load_tail(a + i, n - i), load_tail(b + i, n - i)), n - i);
}

// Sums in int32 from -pixels * zero point (255 * pixels fits, see Qs8GlobalPoolFn), two
// vectors of 8 per 16 channels.
void qs8_gavgpool__avx2(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                        int32_t input_zero_point, float scale, const Qs8Output& output) {
  const Qs8Requantization rq(output);
  const __m256i bias = _mm256_set1_epi32(-static_cast<int32_t>(pixels) * input_zero_point);
  const __m256 vscale = _mm256_set1_ps(scale);
  const auto sum_channels = [&](auto groups, size_t c, auto load, auto store) {
    constexpr size_t kGroups = decltype(groups)::value;
    __m256i lo[kGroups], hi[kGroups];
    for (size_t g = 0; g < kGroups; ++g) lo[g] = hi[g] = bias;
    for (size_t p = 0; p < pixels; ++p) {
      const int8_t* row = x + p * channels + c;
      for (size_t g = 0; g < kGroups; ++g) {
        const __m128i v = load(row + 16 * g);
        lo[g] = _mm256_add_epi32(lo[g], low8(v));
        hi[g] = _mm256_add_epi32(hi[g], high8(v));
      }
    }
    for (size_t g = 0; g < kGroups; ++g) store(y + c + 16 * g, rq.pack(rq.to_int32(lo[g], vscale), rq.to_int32(hi[g], vscale)));
  };
  size_t c = 0;
  // Four groups of 16 channels make a cache line, so each line of a pixel is read once: with
  // one group at a time, 1024 channels put a group's 49 pixels 1 KiB apart, more lines than the
  // L1 ways of their sets keep until the next group needs them. (The same for the max pool.)
  for (; c + 64 <= channels; c += 64) sum_channels(std::integral_constant<size_t, 4>(), c, load16, store16);
  for (; c + 16 <= channels; c += 16) sum_channels(std::integral_constant<size_t, 1>(), c, load16, store16);
  if (c != channels) {
    const size_t tail = channels - c;
    sum_channels(std::integral_constant<size_t, 1>(), c, [&](const int8_t* p) { return load_tail(p, tail); },
                 [&](int8_t* p, __m128i v) { store_tail(p, v, tail); });
  }
}

// The maximum in int8 (VPMAXSB), requantized from int32 as max - zero point.
void qs8_gmaxpool__avx2(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                        int32_t input_zero_point, float scale, const Qs8Output& output) {
  const Qs8Requantization rq(output);
  const __m256i zero_point = _mm256_set1_epi32(input_zero_point);
  const __m256 vscale = _mm256_set1_ps(scale);
  const auto requantize = [&](__m128i max) {
    return rq.pack(rq.to_int32(_mm256_sub_epi32(low8(max), zero_point), vscale),
                   rq.to_int32(_mm256_sub_epi32(high8(max), zero_point), vscale));
  };
  const auto max_channels = [&](auto groups, size_t c, auto load, auto store) {
    constexpr size_t kGroups = decltype(groups)::value;
    __m128i max[kGroups];
    for (size_t g = 0; g < kGroups; ++g) max[g] = load(x + c + 16 * g);
    for (size_t p = 1; p < pixels; ++p) {
      const int8_t* row = x + p * channels + c;
      for (size_t g = 0; g < kGroups; ++g) max[g] = _mm_max_epi8(max[g], load(row + 16 * g));
    }
    for (size_t g = 0; g < kGroups; ++g) store(y + c + 16 * g, requantize(max[g]));
  };
  size_t c = 0;
  for (; c + 64 <= channels; c += 64) max_channels(std::integral_constant<size_t, 4>(), c, load16, store16);
  for (; c + 16 <= channels; c += 16) max_channels(std::integral_constant<size_t, 1>(), c, load16, store16);
  if (c != channels) {
    const size_t tail = channels - c;
    max_channels(std::integral_constant<size_t, 1>(), c, [&](const int8_t* p) { return load_tail(p, tail); },
                 [&](int8_t* p, __m128i v) { store_tail(p, v, tail); });
  }
}

// x * inv_scale clamped below in float first, where MAXPS(value, min) turns NaN into min as the
// reference does; the rest is the common requantization.
void qs8_quantize__avx2(size_t n, const float* x, int8_t* y, float inv_scale, const Qs8Output& output) {
  const Qs8Requantization rq(output);
  const __m256 vscale = _mm256_set1_ps(inv_scale), vmin = _mm256_set1_ps(output.min);
  const auto quantize8 = [&](__m256 v) { return rq.round(_mm256_max_ps(_mm256_mul_ps(v, vscale), vmin)); };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    store16(y + i, rq.pack(quantize8(_mm256_loadu_ps(x + i)), quantize8(_mm256_loadu_ps(x + i + 8))));
  }
  if (i != n) {
    const size_t tail = n - i;
    const __m256i lo = avx2::tail_mask(tail < 8 ? tail : 8), hi = avx2::tail_mask(tail > 8 ? tail - 8 : 0);
    const __m128i q = rq.pack(quantize8(_mm256_maskload_ps(x + i, lo)), quantize8(_mm256_maskload_ps(x + i + 8, hi)));
    store_tail(y + i, q, tail);
  }
}

void qs8_dequantize__avx2(size_t n, const int8_t* x, float* y, int32_t zero_point, float scale) {
  const __m256i vzero_point = _mm256_set1_epi32(zero_point);
  const __m256 vscale = _mm256_set1_ps(scale);
  const auto dequantize8 = [&](__m256i v) { return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, vzero_point)), vscale); };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = load16(x + i);
    _mm256_storeu_ps(y + i, dequantize8(low8(v)));
    _mm256_storeu_ps(y + i + 8, dequantize8(high8(v)));
  }
  if (i != n) {
    const size_t tail = n - i;
    const __m128i v = load_tail(x + i, tail);
    _mm256_maskstore_ps(y + i, avx2::tail_mask(tail < 8 ? tail : 8), dequantize8(low8(v)));
    _mm256_maskstore_ps(y + i + 8, avx2::tail_mask(tail > 8 ? tail - 8 : 0), dequantize8(high8(v)));
  }
}

}  // namespace mnengine
