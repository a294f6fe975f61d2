// qs8-dwconv 3x3 avx2: 16 channels per group (CR = 16), one or two output rows, stride 1 or 2.
//
// AVX2's exact int8 dot product is VPMADDWD: int16 pairs multiplied and summed into int32. A
// depthwise layer has no sum over channels, so a pair is two input rows of one channel: each
// input column's rows are sign-extended to int16 and interleaved two by two (rows 0 and 1,
// 2 and 3, 4 alone), and a pair meets the two taps of the output row it feeds, zero where a row
// falls outside that output row's window. With two output rows at stride 1 the pairs (0,1) and
// (2,3) serve both, with taps (w0,w1), (w2,0) and (0,w0), (w1,w2): a column's four loads, four
// sign extensions and four interleaves feed the multiply-adds of up to six outputs. The
// interleave works within 128-bit lanes, so a group's sums sit in two vectors, channels 0-3 and
// 8-11 ("lo") and 4-7 and 12-15 ("hi"); biases, scales and taps are arranged to match, and
// the requantization's packs put the channels back in order (Qs8Requantization::pack_lanes).
//
// Per call and group the taps are paired that way into a stack buffer (PairedGroup), which the
// multiply-adds read as memory operands: 8 accumulators (2 rows x 2 pixels or 1 row x 4 pixels,
// lo and hi) and one column's pairs fill the 16 registers. Groups are outer and pixels inner,
// so a group's taps are paired once per call; the input rows under a call stay in L1 from one
// group to the next (four groups share each cache line).
//
// Taps outside the image read as the input zero point: a column left or right of the image
// is a vector of zero points (rows above or below it are rows of zero points from the caller).
#include "avx2_helpers.h"
#include "../unroll.h"

namespace mnengine {
namespace {

using avx2::load_tail;
using avx2::madd_add;
using avx2::Qs8Pairs;
using avx2::Qs8Requantization;
using avx2::split_lanes;
using avx2::store_tail;

constexpr size_t kCR = 16;
constexpr size_t kTaps = 9;
// A packed group: [16 int32 biases][9 taps x 16 int8][16 float scales].
constexpr size_t kTapsOffset = kCR * sizeof(int32_t);
constexpr size_t kScalesOffset = kTapsOffset + kTaps * kCR;
constexpr size_t kGroupBytes = kScalesOffset + kCR * sizeof(float);

inline Qs8Pairs interleave(__m128i a, __m128i b) {
  const __m256i wa = _mm256_cvtepi8_epi16(a), wb = _mm256_cvtepi8_epi16(b);
  return {_mm256_unpacklo_epi16(wa, wb), _mm256_unpackhi_epi16(wa, wb)};
}

inline __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// kOutRows output rows at kStride over kInRows input rows, paired (0,1), (2,3), (4,-).
template <size_t kStrideValue, size_t kOutRowsValue>
struct Geometry {
  static constexpr size_t kStride = kStrideValue;
  static constexpr size_t kOutRows = kOutRowsValue;
  static constexpr size_t kInRows = (kOutRows - 1) * kStride + 3;
  static constexpr size_t kPairs = (kInRows + 1) / 2;
  static constexpr size_t kPixels = 4 / kOutRows;  // of the widest block: 8 accumulators
  // Kernel row of input row r in output row o's window (wraps to huge outside it).
  static constexpr size_t kernel_row(size_t o, size_t r) { return r - o * kStride; }
  static constexpr bool pair_used(size_t o, size_t j) {
    return kernel_row(o, 2 * j) < 3 || kernel_row(o, 2 * j + 1) < 3;
  }
};

// One group's biases, scales and taps in the paired layout: taps[o][j][kx] multiplies pair j
// of window column kx for output row o.
template <class G>
struct PairedGroup {
  Qs8Pairs bias, scale;
  Qs8Pairs taps[G::kOutRows][G::kPairs][3];

  explicit PairedGroup(const uint8_t* packed) : bias(split_lanes(packed)), scale(split_lanes(packed + kScalesOffset)) {
    const uint8_t* t = packed + kTapsOffset;
    const auto tap = [&](size_t ky, size_t kx) { return ky < 3 ? load16(t + (ky * 3 + kx) * kCR) : _mm_setzero_si128(); };
    for (size_t o = 0; o < G::kOutRows; ++o) {
      for (size_t j = 0; j < G::kPairs; ++j) {
        for (size_t kx = 0; kx < 3; ++kx) {
          taps[o][j][kx] = interleave(tap(G::kernel_row(o, 2 * j), kx), tap(G::kernel_row(o, 2 * j + 1), kx));
        }
      }
    }
  }
};

// All 16 channels of a group, or the first `count` of the last one.
struct Full {
  __m128i load(const int8_t* p) const { return load16(p); }
  void store(int8_t* p, __m128i v) const { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
};
struct Tail {
  size_t count;
  __m128i load(const int8_t* p) const { return load_tail(p, count); }
  void store(int8_t* p, __m128i v) const { store_tail(p, v, count); }
};

// kPixels adjacent output pixels of the G::kOutRows rows, one group. `rows` point at the
// group's channels of each input row, ix0 is the first input column of the block's windows
// (wrapped if left of the image); pixels are `channels` apart in `out`, rows `out_stride`.
// kClampAbove: see Qs8Requantization::to_int32.
template <class G, size_t kPixels, bool kClampAbove, class Lanes>
inline void block(Lanes lanes, const PairedGroup<G>& group, size_t channels, size_t in_width,
                  size_t ix0, const int8_t* const* rows, __m128i padding, int8_t* out,
                  size_t out_stride, const Qs8Requantization& rq) {
  constexpr size_t kColumns = (kPixels - 1) * G::kStride + 3;
  Qs8Pairs acc[G::kOutRows][kPixels];
  MNENGINE_UNROLL(32)
  for (size_t o = 0; o < G::kOutRows; ++o) {
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) acc[o][p] = group.bias;
  }
  MNENGINE_UNROLL(32)
  for (size_t column = 0; column < kColumns; ++column) {
    const size_t ix = ix0 + column;  // wraps to huge left of the image
    __m128i x[G::kInRows];
    if (ix < in_width) {
      MNENGINE_UNROLL(32)
      for (size_t r = 0; r < G::kInRows; ++r) x[r] = lanes.load(rows[r] + ix * channels);
    } else {
      MNENGINE_UNROLL(32)
      for (size_t r = 0; r < G::kInRows; ++r) x[r] = padding;
    }
    Qs8Pairs pairs[G::kPairs];
    MNENGINE_UNROLL(32)
    for (size_t j = 0; j < G::kPairs; ++j) pairs[j] = interleave(x[2 * j], x[2 * j + 1 < G::kInRows ? 2 * j + 1 : 2 * j]);
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) {
      const size_t kx = column - p * G::kStride;  // wraps to huge before pixel p's window
      if (kx >= 3) continue;
      MNENGINE_UNROLL(32)
      for (size_t o = 0; o < G::kOutRows; ++o) {
        MNENGINE_UNROLL(32)
        for (size_t j = 0; j < G::kPairs; ++j) {
          if (!G::pair_used(o, j)) continue;
          acc[o][p].lo = madd_add(acc[o][p].lo, pairs[j].lo, group.taps[o][j][kx].lo);
          acc[o][p].hi = madd_add(acc[o][p].hi, pairs[j].hi, group.taps[o][j][kx].hi);
        }
      }
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t o = 0; o < G::kOutRows; ++o) {
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) {
      const __m128i q = rq.pack_lanes(rq.to_int32<kClampAbove>(acc[o][p].lo, _mm256_castsi256_ps(group.scale.lo)),
                                      rq.to_int32<kClampAbove>(acc[o][p].hi, _mm256_castsi256_ps(group.scale.hi)));
      lanes.store(out + o * out_stride + p * channels, q);
    }
  }
}

// One group across the output rows: blocks of G::kPixels pixels, then single pixels.
template <class G, bool kClampAbove, class Lanes>
inline void sweep(Lanes lanes, const PairedGroup<G>& group, size_t channels, size_t out_width,
                  size_t in_width, size_t pad_left, const int8_t* const* rows, __m128i padding,
                  int8_t* out, const Qs8Requantization& rq) {
  const size_t out_stride = out_width * channels;
  size_t ox = 0;
  for (; ox + G::kPixels <= out_width; ox += G::kPixels) {
    block<G, G::kPixels, kClampAbove>(lanes, group, channels, in_width, ox * G::kStride - pad_left, rows, padding,
                                      out + ox * channels, out_stride, rq);
  }
  for (; ox < out_width; ++ox) {
    block<G, 1, kClampAbove>(lanes, group, channels, in_width, ox * G::kStride - pad_left, rows, padding,
                             out + ox * channels, out_stride, rq);
  }
}

template <class G, class Lanes>
inline void sweep_group(Lanes lanes, const PairedGroup<G>& group, size_t channels, size_t out_width,
                        size_t in_width, size_t pad_left, const int8_t* const* rows, __m128i padding,
                        int8_t* out, const Qs8Requantization& rq) {
  const __m256 scales[2] = {_mm256_castsi256_ps(group.scale.lo), _mm256_castsi256_ps(group.scale.hi)};
  if (Qs8Requantization::below_one(scales, 2)) {
    sweep<G, false>(lanes, group, channels, out_width, in_width, pad_left, rows, padding, out, rq);
  } else {
    sweep<G, true>(lanes, group, channels, out_width, in_width, pad_left, rows, padding, out, rq);
  }
}

template <class G>
void dwconv_rows(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                 const int8_t* const* rows, const uint8_t* w, int8_t* out, int32_t input_zero_point,
                 const Qs8Output& output) {
  const Qs8Requantization rq(output);
  const __m128i padding = _mm_set1_epi8(static_cast<char>(input_zero_point));
  for (size_t c = 0; c < channels; c += kCR, w += kGroupBytes) {
    const PairedGroup<G> group(w);
    const int8_t* group_rows[G::kInRows];
    for (size_t r = 0; r < G::kInRows; ++r) group_rows[r] = rows[r] + c;
    if (channels - c >= kCR) {
      sweep_group(Full{}, group, channels, out_width, in_width, pad_left, group_rows, padding, out + c, rq);
    } else {
      sweep_group(Tail{channels - c}, group, channels, out_width, in_width, pad_left, group_rows, padding, out + c, rq);
    }
  }
}

}  // namespace

void qs8_dwconv3x3__avx2(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const int8_t* const* rows, const void* packed_w,
                         int8_t* out, int32_t input_zero_point, const Qs8Output& output) {
  const auto* w = static_cast<const uint8_t*>(packed_w);
  if (stride == 1) {
    if (out_rows == 2) {
      dwconv_rows<Geometry<1, 2>>(channels, out_width, in_width, pad_left, rows, w, out, input_zero_point, output);
    } else {
      dwconv_rows<Geometry<1, 1>>(channels, out_width, in_width, pad_left, rows, w, out, input_zero_point, output);
    }
  } else if (out_rows == 2) {
    dwconv_rows<Geometry<2, 2>>(channels, out_width, in_width, pad_left, rows, w, out, input_zero_point, output);
  } else {
    dwconv_rows<Geometry<2, 1>>(channels, out_width, in_width, pad_left, rows, w, out, input_zero_point, output);
  }
}

}  // namespace mnengine

