// qs8-dwconv 3x3 avx512vnni: 64 channels per group (CR = 64), one or two output rows, stride 1
// or 2.
//
// VPDPBUSD sums four byte products into each int32 lane. A depthwise layer has no sum over
// channels, so the four bytes are four input rows of one channel: VPUNPCK[LH]BW then
// VPUNPCK[LH]WD interleave four rows of a column's 64 channels into four vectors of "quads"
// (rows a, b, c, d of one channel per dword), which meet the quads (w0, w1, w2, 0) of one
// kernel column. Two output rows at stride 1 share the quads of rows 0-3, the second through
// taps shifted by a byte, (0, w0, w1, w2); at stride 2 they use rows 0-3 and 2-4. The unpacks
// work within 128-bit lanes, so quad vector m holds channels 16L + 4m .. 16L + 4m + 3 in lane
// L; biases, scales and taps are arranged to match, and the requantization's packs, which
// interleave the same way, put the channels back in order (Requantization::pack_lanes).
//
// VPDPBUSD's first operand is unsigned: the input is read as x + 128 (XOR 0x80, once per row
// and column, before the unpacks) and each group's bias less 128 * (sum of its taps), computed
// when the taps are arranged. Per call and group the taps are arranged into a stack buffer that
// the dot products read as memory operands.
//
// Taps outside the image read as the input zero point: a column left or right of the image is
// quads of zero point + 128 (rows above or below it are rows of zero points from the caller).
// Channel tails use byte-masked loads and stores. A layer of 32 channels at stride 1 runs two
// pixels per vector instead of half-empty groups (PairReader).
#include "avx512vnni_helpers.h"

namespace mnengine {
namespace {

using avx512vnni::byte_mask;
using avx512vnni::Requantization;

constexpr size_t kCR = 64;
constexpr size_t kTaps = 9;
// A packed group: [64 int32 biases][9 taps x 64 int8][64 float scales].
constexpr size_t kTapsOffset = kCR * sizeof(int32_t);
constexpr size_t kScalesOffset = kTapsOffset + kTaps * kCR;
constexpr size_t kGroupBytes = kScalesOffset + kCR * sizeof(float);

// 64 channels of four rows: q[m], lane L = channels 16L + 4m .. 16L + 4m + 3, a dword per
// channel holding its four rows' bytes.
struct Quads {
  __m512i q[4];
};

inline Quads interleave(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
  const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
  return {{_mm512_unpacklo_epi16(ab_lo, cd_lo), _mm512_unpackhi_epi16(ab_lo, cd_lo),
           _mm512_unpacklo_epi16(ab_hi, cd_hi), _mm512_unpackhi_epi16(ab_hi, cd_hi)}};
}

// 64 consecutive 4-byte values (channel order) in the order of Quads: q[m] gathers 128-bit lane
// m of each of the four vectors (a 4 x 4 transpose of lanes). For pixel pairs (see
// PairReader), the first 32 values twice.
inline Quads quad_order(const uint8_t* p, bool pixel_pairs) {
  const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
  const __m512i v2 = pixel_pairs ? v0 : _mm512_loadu_si512(p + 128), v3 = pixel_pairs ? v1 : _mm512_loadu_si512(p + 192);
  const __m512i v01_lo = _mm512_shuffle_i64x2(v0, v1, 0x44), v01_hi = _mm512_shuffle_i64x2(v0, v1, 0xEE);
  const __m512i v23_lo = _mm512_shuffle_i64x2(v2, v3, 0x44), v23_hi = _mm512_shuffle_i64x2(v2, v3, 0xEE);
  return {{_mm512_shuffle_i64x2(v01_lo, v23_lo, 0x88), _mm512_shuffle_i64x2(v01_lo, v23_lo, 0xDD),
           _mm512_shuffle_i64x2(v01_hi, v23_hi, 0x88), _mm512_shuffle_i64x2(v01_hi, v23_hi, 0xDD)}};
}

// kOutRows output rows at kStride over kInRows input rows. A column of the input is kSets sets
// of quads: rows 0-3 (0, 1, 2, 2 for one output row), and at stride 2 with two output rows
// also rows 2, 3, 4, 4. Output row o multiplies set set(o) by the taps shifted by shift(o)
// bytes.
template <size_t kStrideValue, size_t kOutRowsValue>
struct Geometry {
  static constexpr size_t kStride = kStrideValue;
  static constexpr size_t kOutRows = kOutRowsValue;
  static constexpr size_t kInRows = (kOutRows - 1) * kStride + 3;
  static constexpr size_t kSets = kStride == 2 && kOutRows == 2 ? 2 : 1;
  static constexpr size_t kShifts = kStride == 1 ? kOutRows : 1;
  static constexpr size_t set(size_t o) { return kStride == 2 ? o : 0; }
  static constexpr size_t shift(size_t o) { return kStride == 1 ? o : 0; }
};

template <class G>
struct Column {
  Quads sets[G::kSets];
};

// A group's biases (less 128 * the sum of the taps), scales and taps in quad order:
// taps[s][kx] are the quads (w0, w1, w2, 0) of kernel column kx shifted by s bytes. For pixel
// pairs, the group's first 32 channels in both halves.
template <class G>
struct ArrangedGroup {
  Quads bias, scale;
  Quads taps[G::kShifts][3];

  ArrangedGroup(const uint8_t* packed, bool pixel_pairs)
      : bias(quad_order(packed, pixel_pairs)), scale(quad_order(packed + kScalesOffset, pixel_pairs)) {
    const uint8_t* t = packed + kTapsOffset;
    const auto tap = [&](size_t ky, size_t kx) {
      const uint8_t* p = t + (ky * 3 + kx) * kCR;
      return pixel_pairs ? _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))
                         : _mm512_loadu_si512(p);
    };
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    for (size_t kx = 0; kx < 3; ++kx) {
      taps[0][kx] = interleave(tap(0, kx), tap(1, kx), tap(2, kx), _mm512_setzero_si512());
      for (size_t m = 0; m < 4; ++m) {
        bias.q[m] = _mm512_sub_epi32(bias.q[m], _mm512_dpbusd_epi32(_mm512_setzero_si512(), sign, taps[0][kx].q[m]));
        for (size_t s = 1; s < G::kShifts; ++s) taps[s][kx].q[m] = _mm512_slli_epi32(taps[0][kx].q[m], 8 * static_cast<int>(s));
      }
    }
  }
};

// The quads of a column's input rows (x + 128).
template <class G>
inline Column<G> quads_of(const __m512i* x) {
  Column<G> column;
  column.sets[0] = interleave(x[0], x[1], x[2], x[G::kInRows > 3 ? 3 : 2]);
  if constexpr (G::kSets == 2) column.sets[1] = interleave(x[2], x[3], x[4], x[4]);
  return column;
}

// One group's input rows at one column, as quads of x + 128.
template <class G>
struct ColumnReader {
  const int8_t* rows[G::kInRows];  // the group's channels of each input row
  size_t channels, in_width;
  __mmask64 lanes;
  Column<G> padding;  // zero point + 128 in every byte

  Column<G> operator()(size_t ix) const {  // ix wraps to huge left of the image
    if (ix >= in_width) return padding;
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i x[G::kInRows];
    for (size_t r = 0; r < G::kInRows; ++r) {
      x[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(lanes, rows[r] + ix * channels), sign);
    }
    return quads_of<G>(x);
  }
};

// Layers of 32 channels at stride 1 (MobileNet's first depthwise layer): a 64-channel group
// would leave half of every vector empty, so a vector holds two adjacent pixels instead, whose
// windows' columns are adjacent too: the 64 bytes at column ix are column kx of the windows of
// output pixels ox and ox + 1 (ix = ox - pad_left + kx), against taps repeated in both halves.
// A pixel pair's window columns overlap the next pair's by one (as at stride 2).
template <class G>
struct PairReader {
  static constexpr size_t kChannels = 32;
  const int8_t* rows[G::kInRows];
  size_t in_width;
  __m256i padding_half;  // the zero point (before the XOR) in every byte
  Column<G> padding;

  Column<G> operator()(size_t ix) const {  // pixels ix and ix + 1; ix wraps to huge left of the image
    const bool first = ix < in_width, second = ix + 1 < in_width;
    if (!first && !second) return padding;
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i x[G::kInRows];
    for (size_t r = 0; r < G::kInRows; ++r) {
      if (first && second) {
        x[r] = _mm512_loadu_si512(rows[r] + ix * kChannels);
      } else {  // one pixel of the pair lies outside the image
        const auto half = [&](bool inside, size_t column) {
          return inside ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r] + column * kChannels)) : padding_half;
        };
        x[r] = _mm512_inserti64x4(_mm512_castsi256_si512(half(first, ix)), half(second, ix + 1), 1);
      }
      x[r] = _mm512_xor_si512(x[r], sign);
    }
    return quads_of<G>(x);
  }
};

// One output pixel of the G::kOutRows rows from its window's three columns (kClampAbove: see
// Requantization::to_int32).
template <class G, bool kClampAbove>
inline void pixel(const ArrangedGroup<G>& group, const Column<G>& c0, const Column<G>& c1, const Column<G>& c2,
                  int8_t* out, size_t out_stride, __mmask64 lanes, const Requantization& rq) {
  const Column<G>* window[3] = {&c0, &c1, &c2};
  for (size_t o = 0; o < G::kOutRows; ++o) {
    __m512i acc[4];
    for (size_t m = 0; m < 4; ++m) acc[m] = group.bias.q[m];
    for (size_t kx = 0; kx < 3; ++kx) {
      const Quads& x = window[kx]->sets[G::set(o)];
      const Quads& w = group.taps[G::shift(o)][kx];
      for (size_t m = 0; m < 4; ++m) acc[m] = _mm512_dpbusd_epi32(acc[m], x.q[m], w.q[m]);
    }
    __m512i q[4];
    for (size_t m = 0; m < 4; ++m) q[m] = rq.to_int32<kClampAbove>(acc[m], _mm512_castsi512_ps(group.scale.q[m]));
    _mm512_mask_storeu_epi8(out + o * out_stride, lanes, rq.pack_lanes(q[0], q[1], q[2], q[3]));
  }
}

// One group along the output rows. Each column is interleaved once: at stride 1 the window's
// last two columns are kept for the next pixel, at stride 2 the last one.
template <class G, bool kClampAbove>
void sweep(const ArrangedGroup<G>& group, const ColumnReader<G>& read, size_t out_width, size_t pad_left,
           int8_t* y, size_t out_stride, const Requantization& rq) {
  const size_t channels = read.channels;
  const size_t ix0 = 0 - pad_left;  // the first window's first column, wrapped if negative
  if constexpr (G::kStride == 1) {
    Column<G> c0 = read(ix0), c1 = read(ix0 + 1);
    for (size_t ox = 0; ox < out_width; ++ox, y += channels) {
      const Column<G> c2 = read(ix0 + ox + 2);
      pixel<G, kClampAbove>(group, c0, c1, c2, y, out_stride, read.lanes, rq);
      c0 = c1;
      c1 = c2;
    }
  } else {
    Column<G> c0 = read(ix0);
    for (size_t ox = 0; ox < out_width; ++ox, y += channels) {
      const Column<G> c1 = read(ix0 + 2 * ox + 1), c2 = read(ix0 + 2 * ox + 2);
      pixel<G, kClampAbove>(group, c0, c1, c2, y, out_stride, read.lanes, rq);
      c0 = c2;
    }
  }
}

// Pixel pairs of a 32-channel layer at stride 1 (see PairReader) along the output rows.
template <class G, bool kClampAbove>
void sweep_pairs(const ArrangedGroup<G>& group, const PairReader<G>& read, size_t out_width, size_t pad_left,
                 int8_t* y, size_t out_stride, const Requantization& rq) {
  const size_t ix0 = 0 - pad_left;  // the first window's first column, wrapped if negative
  Column<G> c0 = read(ix0);
  for (size_t ox = 0; ox < out_width; ox += 2, y += 2 * PairReader<G>::kChannels) {
    const Column<G> c1 = read(ix0 + ox + 1), c2 = read(ix0 + ox + 2);
    pixel<G, kClampAbove>(group, c0, c1, c2, y, out_stride, byte_mask(ox + 1 < out_width ? 64 : 32), rq);
    c0 = c2;
  }
}

template <class G>
void dwconv_rows(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                 const int8_t* const* rows, const uint8_t* w, int8_t* out, int32_t input_zero_point,
                 const Qs8Output& output) {
  const Requantization rq(output);
  const size_t out_stride = out_width * channels;
  if constexpr (G::kStride == 1) {
    if (channels == PairReader<G>::kChannels) {
      const ArrangedGroup<G> group(w, true);
      PairReader<G> read;
      for (size_t r = 0; r < G::kInRows; ++r) read.rows[r] = rows[r];
      read.in_width = in_width;
      read.padding_half = _mm256_set1_epi8(static_cast<char>(input_zero_point));
      const __m512i padding = _mm512_set1_epi8(static_cast<char>(input_zero_point ^ 0x80));
      for (Quads& set : read.padding.sets) set = {{padding, padding, padding, padding}};
      const __m512 scales[4] = {_mm512_castsi512_ps(group.scale.q[0]), _mm512_castsi512_ps(group.scale.q[1]),
                                _mm512_castsi512_ps(group.scale.q[2]), _mm512_castsi512_ps(group.scale.q[3])};
      if (Requantization::below_one(scales, 4)) {
        sweep_pairs<G, false>(group, read, out_width, pad_left, out, out_stride, rq);
      } else {
        sweep_pairs<G, true>(group, read, out_width, pad_left, out, out_stride, rq);
      }
      return;
    }
  }
  ColumnReader<G> read;
  read.channels = channels;
  read.in_width = in_width;
  const __m512i padding = _mm512_set1_epi8(static_cast<char>(input_zero_point ^ 0x80));
  for (Quads& set : read.padding.sets) set = {{padding, padding, padding, padding}};
  for (size_t c = 0; c < channels; c += kCR, w += kGroupBytes) {
    const ArrangedGroup<G> group(w, false);
    for (size_t r = 0; r < G::kInRows; ++r) read.rows[r] = rows[r] + c;
    read.lanes = byte_mask(channels - c);
    const __m512 scales[4] = {_mm512_castsi512_ps(group.scale.q[0]), _mm512_castsi512_ps(group.scale.q[1]),
                              _mm512_castsi512_ps(group.scale.q[2]), _mm512_castsi512_ps(group.scale.q[3])};
    if (Requantization::below_one(scales, 4)) {
      sweep<G, false>(group, read, out_width, pad_left, out + c, out_stride, rq);
    } else {
      sweep<G, true>(group, read, out_width, pad_left, out + c, out_stride, rq);
    }
  }
}

}  // namespace

void qs8_dwconv3x3__avx512vnni(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
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
