// qs8-conv3x3s2c3 avx512vnni: a network's first convolution (3x3, stride 2, 3 input channels)
// with 16 output channels per group (CR = 16, a zmm of int32 sums).
//
// A pixel's window is 9 consecutive values (3 columns x 3 channels) in each of 3 rows; each row
// gives 3 VPDPBUSD quads, values 0-3, 4-7 and 8-11 (the last three are the next pixel's and
// meet zero taps), broadcast against the taps arranged the same way: 9 dot products per pixel
// and group where the float kernel issues 27 FMAs. Blocks of 4 pixels by 2 groups keep the 18
// tap vectors of a group pair, 8 accumulators and a broadcast in registers.
//
// VPDPBUSD's first operand is unsigned: the input rows under a run of pixels are first copied
// to a stack buffer as x + 128 (XOR 0x80), columns outside the image as the zero point + 128,
// so that every pixel (the borders too) reads its quads with plain broadcasts; each group's
// bias is less 128 * (sum of its taps), computed when the taps are arranged, once per call.
#include <cstring>

#include "avx512vnni_helpers.h"
#include "../unroll.h"

namespace mnengine {
namespace {

using avx512vnni::byte_mask;
using avx512vnni::Requantization;

constexpr size_t kCR = 16;
constexpr size_t kTaps = 27;
constexpr size_t kQuadsPerRow = 3;  // of a row's 9 window values
constexpr size_t kQuads = 3 * kQuadsPerRow;
// A packed group: [16 int32 biases][27 taps x 16 int8][16 float scales].
constexpr size_t kTapsOffset = kCR * sizeof(int32_t);
constexpr size_t kScalesOffset = kTapsOffset + kTaps * kCR;
constexpr size_t kGroupBytes = kScalesOffset + kCR * sizeof(float);

constexpr size_t kMaxGroups = 2;  // per block
// Accumulators per block: 10 dependency chains of VPDPBUSD (latency 5) keep both of its ports
// busy (8, from 4 pixels x 2 groups, measured 0.85x the speed), and 10 accumulators, a group
// pair's 18 tap vectors and a broadcast fit in the 32 registers.
constexpr size_t kBlockAccumulators = 10;
constexpr size_t kRunPixels = 40;  // pixels whose input rows are copied at a time: a multiple of 5 and 10
// Input columns of a run: its windows span 2 * kRunPixels + 1, and the last quad of the last
// window reads one column (3 values) more.
constexpr size_t kRunColumns = 2 * kRunPixels + 2;

// A group's biases (less 128 * the sum of its taps), scales and taps as quads: quad r * 3 + j
// holds taps 4j .. 4j + 3 of window row r (zero past the 9th) of each channel in a dword.
struct ArrangedGroup {
  __m512i bias;
  __m512 scale;
  __m512i taps[kQuads];

  void arrange(const uint8_t* packed) {
    const uint8_t* t = packed + kTapsOffset;
    const auto tap = [&](size_t r, size_t i) {
      return i < 9 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + (r * 9 + i) * kCR)) : _mm_setzero_si128();
    };
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i tap_sum = _mm512_setzero_si512();
    for (size_t r = 0; r < 3; ++r) {
      for (size_t j = 0; j < kQuadsPerRow; ++j) {
        const __m128i a = tap(r, 4 * j), b = tap(r, 4 * j + 1), c = tap(r, 4 * j + 2), d = tap(r, 4 * j + 3);
        const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
        __m512i quads = _mm512_castsi128_si512(_mm_unpacklo_epi16(ab_lo, cd_lo));  // channels 0-3
        quads = _mm512_inserti32x4(quads, _mm_unpackhi_epi16(ab_lo, cd_lo), 1);   // 4-7
        quads = _mm512_inserti32x4(quads, _mm_unpacklo_epi16(ab_hi, cd_hi), 2);   // 8-11
        quads = _mm512_inserti32x4(quads, _mm_unpackhi_epi16(ab_hi, cd_hi), 3);   // 12-15
        taps[r * kQuadsPerRow + j] = quads;
        tap_sum = _mm512_dpbusd_epi32(tap_sum, sign, quads);
      }
    }
    bias = _mm512_sub_epi32(_mm512_loadu_si512(packed), tap_sum);
    scale = _mm512_loadu_ps(packed + kScalesOffset);
  }
};

inline __m512i broadcast(const uint8_t* p) {
  int32_t quad;
  std::memcpy(&quad, p, sizeof(quad));
  return _mm512_set1_epi32(quad);
}

// kPixels pixels by kGroups groups. `x[r]` points at the first pixel's window in the copied
// row r (pixels 6 bytes apart), `out` at the first pixel's first channel of the groups, of
// which the first `stored` are written.
template <size_t kPixels, size_t kGroups, bool kClampAbove>
inline void block(const uint8_t* const* x, const ArrangedGroup* groups, int8_t* out, size_t channels,
                  __mmask64 stored, const Requantization& rq) {
  __m512i acc[kGroups][kPixels];
  MNENGINE_UNROLL(32)
  for (size_t g = 0; g < kGroups; ++g) {
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) acc[g][p] = groups[g].bias;
  }
  MNENGINE_UNROLL(32)
  for (size_t quad = 0; quad < kQuads; ++quad) {
    const size_t r = quad / kQuadsPerRow, j = quad % kQuadsPerRow;
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) {
      const __m512i v = broadcast(x[r] + 6 * p + 4 * j);
      MNENGINE_UNROLL(32)
      for (size_t g = 0; g < kGroups; ++g) acc[g][p] = _mm512_dpbusd_epi32(acc[g][p], v, groups[g].taps[quad]);
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t p = 0; p < kPixels; ++p) {
    const __m512i q0 = rq.to_int32<kClampAbove>(acc[0][p], groups[0].scale);
    const __m512i q1 = kGroups > 1 ? rq.to_int32<kClampAbove>(acc[kGroups - 1][p], groups[kGroups - 1].scale) : q0;
    _mm512_mask_storeu_epi8(out + p * channels, stored, rq.pack(q0, q1, q0, q1));
  }
}

// `run` pixels of kGroups groups from the copied rows: blocks of kBlockAccumulators / kGroups
// pixels, then single ones.
template <size_t kGroups, bool kClampAbove>
inline void run_pixels(size_t run, const uint8_t (*copied)[3 * kRunColumns], const ArrangedGroup* groups,
                       int8_t* y, size_t channels, __mmask64 stored, const Requantization& rq) {
  constexpr size_t kPixels = kBlockAccumulators / kGroups;
  const auto at = [&](size_t p, const uint8_t** x) {
    for (size_t r = 0; r < 3; ++r) x[r] = copied[r] + 6 * p;
  };
  size_t p = 0;
  for (; p + kPixels <= run; p += kPixels) {
    const uint8_t* x[3];
    at(p, x);
    block<kPixels, kGroups, kClampAbove>(x, groups, y + p * channels, channels, stored, rq);
  }
  for (; p < run; ++p) {
    const uint8_t* x[3];
    at(p, x);
    block<1, kGroups, kClampAbove>(x, groups, y + p * channels, channels, stored, rq);
  }
}

// Input columns [ix_begin, ix_begin + columns) of `row` (ix_begin wrapped if left of the
// image) as x + 128, columns outside the image as the zero point + 128.
inline void copy_row(const int8_t* row, size_t in_width, size_t ix_begin, size_t columns, uint8_t padding,
                     uint8_t* out) {
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  for (size_t i = 0; i < columns;) {
    const size_t ix = ix_begin + i;
    if (ix >= in_width) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = padding;
      ++i;
      continue;
    }
    const size_t inside = in_width - ix < columns - i ? in_width - ix : columns - i;
    for (size_t k = 0; k < 3 * inside; k += 64) {
      const __mmask64 mask = byte_mask(3 * inside - k);
      _mm512_mask_storeu_epi8(out + 3 * i + k, mask, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, row + 3 * ix + k), sign));
    }
    i += inside;
  }
}

}  // namespace

void qs8_conv3x3s2c3__avx512vnni(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                                 const int8_t* const* rows, const void* packed_w, int8_t* out,
                                 int32_t input_zero_point, const Qs8Output& output) {
  const Requantization rq(output);
  const auto* w = static_cast<const uint8_t*>(packed_w);
  const size_t group_count = (channels + kCR - 1) / kCR;
  const auto padding = static_cast<uint8_t>(input_zero_point ^ 0x80);
  alignas(64) uint8_t copied[3][3 * kRunColumns];
  for (size_t g = 0; g < group_count; g += kMaxGroups) {
    // Pairs of groups (the last alone if odd), their taps arranged once per call.
    const size_t block_groups = group_count - g < kMaxGroups ? group_count - g : kMaxGroups;
    ArrangedGroup groups[kMaxGroups];
    for (size_t i = 0; i < block_groups; ++i) groups[i].arrange(w + (g + i) * kGroupBytes);
    const size_t c = g * kCR;
    const __mmask64 stored = byte_mask(channels - c < kMaxGroups * kCR ? channels - c : kMaxGroups * kCR);
    const __m512 scales[kMaxGroups] = {groups[0].scale, groups[block_groups - 1].scale};
    const bool small_scales = Requantization::below_one(scales, kMaxGroups);
    for (size_t ox0 = 0; ox0 < out_width; ox0 += kRunPixels) {
      const size_t run = out_width - ox0 < kRunPixels ? out_width - ox0 : kRunPixels;
      for (size_t r = 0; r < 3; ++r) copy_row(rows[r], in_width, 2 * ox0 - pad_left, 2 * run + 2, padding, copied[r]);
      int8_t* y = out + ox0 * channels + c;
      if (block_groups == 2 && small_scales) {
        run_pixels<2, false>(run, copied, groups, y, channels, stored, rq);
      } else if (block_groups == 2) {
        run_pixels<2, true>(run, copied, groups, y, channels, stored, rq);
      } else if (small_scales) {
        run_pixels<1, false>(run, copied, groups, y, channels, stored, rq);
      } else {
        run_pixels<1, true>(run, copied, groups, y, channels, stored, rq);
      }
    }
  }
}

}  // namespace mnengine

