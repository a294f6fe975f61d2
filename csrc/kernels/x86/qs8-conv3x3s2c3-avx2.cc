// qs8-conv3x3s2c3 avx2: a network's first convolution (3x3, stride 2, 3 input channels) with
// 16 output channels per group (CR = 16).
//
// A pixel's window is 9 consecutive values (3 columns x 3 channels) in each of 3 rows, so its
// 27 multiply-adds are 15 VPMADDWD pairs: values (0,1), (2,3), (4,5), (6,7), (8,-) of each row,
// broadcast as int16 pairs against the taps paired the same way (the ninth value's partner,
// the next pixel's first, meets a zero tap). A group's sums sit in two vectors, channels 0-3 and
// 8-11 ("lo") and 4-7 and 12-15 ("hi"), as VPUNPCK[LH]WD leaves the taps' pairs; the
// requantization's packs put them back in order (Qs8Requantization::pack_lanes).
//
// The input rows under a run of pixels are first sign-extended into a stack buffer of int16,
// columns outside the image as the input zero point, so that every pixel (the borders too)
// reads its pairs with plain broadcasts. Per call the taps of each group are paired into a
// stack buffer that the multiply-adds read; blocks of 4 pixels keep 8 accumulators, the
// broadcasts and the taps being multiplied in the 16 registers (with 2 groups per block, which
// would share the broadcasts, GCC spilled the accumulators).
#include "avx2_helpers.h"
#include "../unroll.h"

namespace mnengine {
namespace {

using avx2::madd_add;
using avx2::Qs8Pairs;
using avx2::Qs8Requantization;
using avx2::split_lanes;

constexpr size_t kCR = 16;
constexpr size_t kTaps = 27;
constexpr size_t kPairsPerRow = 5;  // of a row's 9 window values
constexpr size_t kPairs = 3 * kPairsPerRow;
// A packed group: [16 int32 biases][27 taps x 16 int8][16 float scales].
constexpr size_t kTapsOffset = kCR * sizeof(int32_t);
constexpr size_t kScalesOffset = kTapsOffset + kTaps * kCR;
constexpr size_t kGroupBytes = kScalesOffset + kCR * sizeof(float);

constexpr size_t kBlockPixels = 4;  // 4 pixels x (lo, hi) = 8 accumulators
constexpr size_t kRunPixels = 32;   // pixels whose input rows are widened at a time
// Input columns of a run: its windows span 2 * kRunPixels + 1, and the last pair of the last
// window reads one value (3 int16) more.
constexpr size_t kRunColumns = 2 * kRunPixels + 2;

// A group's biases, scales and taps in the paired layout (pair r * 5 + j of the window is
// values 2j and 2j + 1 of window row r).
struct PairedGroup {
  Qs8Pairs bias, scale;
  Qs8Pairs taps[kPairs];

  void arrange(const uint8_t* packed) {
    bias = split_lanes(packed);
    scale = split_lanes(packed + kScalesOffset);
    const uint8_t* t = packed + kTapsOffset;
    const auto tap = [&](size_t r, size_t i) {
      return i < 9 ? _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + (r * 9 + i) * kCR)))
                   : _mm256_setzero_si256();
    };
    for (size_t r = 0; r < 3; ++r) {
      for (size_t j = 0; j < kPairsPerRow; ++j) {
        const __m256i a = tap(r, 2 * j), b = tap(r, 2 * j + 1);
        taps[r * kPairsPerRow + j] = {_mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b)};
      }
    }
  }
};

// kPixels pixels of one group. `x[r]` points at the first pixel's window in the widened row r
// (pixels 6 values apart), `out` at the first pixel's first channel of the group, of which the
// first `stored` (up to 16) are written. kClampAbove: see Qs8Requantization::to_int32.
template <size_t kPixels, bool kClampAbove>
inline void block(const int16_t* const* x, const PairedGroup& group, int8_t* out, size_t channels,
                  size_t stored, const Qs8Requantization& rq) {
  Qs8Pairs acc[kPixels];
  MNENGINE_UNROLL(32)
  for (size_t p = 0; p < kPixels; ++p) acc[p] = group.bias;
  MNENGINE_UNROLL(32)
  for (size_t pair = 0; pair < kPairs; ++pair) {
    const size_t r = pair / kPairsPerRow, j = pair % kPairsPerRow;
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) {
      int32_t values;
      std::memcpy(&values, x[r] + 6 * p + 2 * j, sizeof(values));
      const __m256i v = _mm256_set1_epi32(values);
      acc[p].lo = madd_add(acc[p].lo, v, group.taps[pair].lo);
      acc[p].hi = madd_add(acc[p].hi, v, group.taps[pair].hi);
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t p = 0; p < kPixels; ++p) {
    const __m128i q = rq.pack_lanes(rq.to_int32<kClampAbove>(acc[p].lo, _mm256_castsi256_ps(group.scale.lo)),
                                    rq.to_int32<kClampAbove>(acc[p].hi, _mm256_castsi256_ps(group.scale.hi)));
    int8_t* y = out + p * channels;
    if (stored >= kCR) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y), q);
    } else {
      avx2::store_tail(y, q, stored);
    }
  }
}

// Input columns [ix_begin, ix_begin + columns) of `row` (ix_begin wrapped if left of the
// image), sign-extended, columns outside the image as the zero point.
inline void widen_row(const int8_t* row, size_t in_width, size_t ix_begin, size_t columns, int16_t zero_point,
                      int16_t* out) {
  for (size_t i = 0; i < columns;) {
    const size_t ix = ix_begin + i;
    if (ix >= in_width) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = zero_point;
      ++i;
      continue;
    }
    const size_t inside = in_width - ix < columns - i ? in_width - ix : columns - i;
    const int8_t* src = row + 3 * ix;
    int16_t* dst = out + 3 * i;
    const size_t values = 3 * inside;
    size_t k = 0;
    for (; k + 16 <= values; k += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), _mm256_cvtepi8_epi16(bytes));
    }
    for (; k < values; ++k) dst[k] = src[k];
    i += inside;
  }
}

}  // namespace

void qs8_conv3x3s2c3__avx2(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const int8_t* const* rows, const void* packed_w, int8_t* out,
                           int32_t input_zero_point, const Qs8Output& output) {
  const Qs8Requantization rq(output);
  const auto* w = static_cast<const uint8_t*>(packed_w);
  const size_t group_count = (channels + kCR - 1) / kCR;
  alignas(32) int16_t widened[3][3 * kRunColumns];
  for (size_t g = 0; g < group_count; ++g) {
    PairedGroup group;
    group.arrange(w + g * kGroupBytes);  // once per call
    const size_t c = g * kCR;
    const size_t stored = channels - c < kCR ? channels - c : kCR;
    const __m256 scales[2] = {_mm256_castsi256_ps(group.scale.lo), _mm256_castsi256_ps(group.scale.hi)};
    const bool small_scales = Qs8Requantization::below_one(scales, 2);
    for (size_t ox0 = 0; ox0 < out_width; ox0 += kRunPixels) {
      const size_t run = out_width - ox0 < kRunPixels ? out_width - ox0 : kRunPixels;
      for (size_t r = 0; r < 3; ++r) {
        widen_row(rows[r], in_width, 2 * ox0 - pad_left, 2 * run + 2, static_cast<int16_t>(input_zero_point),
                  widened[r]);
      }
      int8_t* y = out + ox0 * channels + c;
      const auto pixels = [&](auto count, size_t p) {
        const int16_t* x[3] = {widened[0] + 6 * p, widened[1] + 6 * p, widened[2] + 6 * p};
        constexpr size_t kPixels = decltype(count)::value;
        if (small_scales) {
          block<kPixels, false>(x, group, y + p * channels, channels, stored, rq);
        } else {
          block<kPixels, true>(x, group, y + p * channels, channels, stored, rq);
        }
      };
      size_t p = 0;
      for (; p + kBlockPixels <= run; p += kBlockPixels) pixels(std::integral_constant<size_t, kBlockPixels>(), p);
      for (; p < run; ++p) pixels(std::integral_constant<size_t, 1>(), p);
    }
  }
}

}  // namespace mnengine

