// qs8-dwconv 3x3 neon (ARMv8.0): 16 channels per q register (CR = 16), blocks of up to 3
// adjacent output pixels of one row, stride 1 or 2.
//
// Multiplies are int8 by int8 into int16 (SMULL/SMULL2: 8 per instruction), the taps of an
// output taken in pairs (SMLAL adds the second: two products of int8 by |w| <= 127 fit int16),
// each pair then added into the int32 sums (SADDW/SADDW2). Per 16 channels and output: 18
// multiplies and 20 adds for 144 multiply-adds, where widening everything to int16 first
// (SMLAL by int16: 4 per instruction) would take 36 multiplies; the multiplier is the scarce
// pipe (one on Cortex-A57/A72 and Neoverse-N1), the adds go to the other. The dot product does
// not help here: it sums 4 adjacent bytes of one register, which in NHWC are 4 channels.
//
// Registers for 3 pixels: 12 int32 sums and 6 int16 pair products, the 9 taps' weights and one
// input vector: 28 of the 32. Each input vector is loaded once per block and feeds every
// output whose window covers it (with 3 pixels at stride 1, 15 loads for 27 taps). Windows
// over the left or right edge read the input zero point for their missing columns (the packed
// bias assumes every tap reads a real value), so they run the same code, one pixel at a time
// with each column tested; the rows above and below the image are the caller's zero-point rows.
#include <cstddef>

#include "neon.h"
#include "../unroll.h"

namespace mnengine {
namespace {

constexpr size_t kCR = 16;
constexpr size_t kTapBytes = 9 * kCR;
constexpr size_t kGroupBytes = kCR * sizeof(int32_t) + kTapBytes + kCR * sizeof(float);

// One output's 16 channels: int32 sums and the int16 product of the pair of taps under way.
struct Sums {
  int32x4_t acc[4];
  int16x8_t pair[2];

  void first_of_pair(int8x16_t x, int8x16_t w) {
    pair[0] = vmull_s8(vget_low_s8(x), vget_low_s8(w));
    pair[1] = vmull_high_s8(x, w);
  }
  void second_of_pair(int8x16_t x, int8x16_t w) {
    pair[0] = vmlal_s8(pair[0], vget_low_s8(x), vget_low_s8(w));
    pair[1] = vmlal_high_s8(pair[1], x, w);
  }
  void add_pair() {
    acc[0] = vaddw_s16(acc[0], vget_low_s16(pair[0]));
    acc[1] = vaddw_high_s16(acc[1], pair[0]);
    acc[2] = vaddw_s16(acc[2], vget_low_s16(pair[1]));
    acc[3] = vaddw_high_s16(acc[3], pair[1]);
  }
  // Tap t (ky * 3 + kx) of this output: taps come in order, paired (0, 1), ..., (6, 7), (8).
  void tap(size_t t, int8x16_t x, int8x16_t w) {
    if (t % 2 == 0) {
      first_of_pair(x, w);
    } else {
      second_of_pair(x, w);
    }
    if (t % 2 == 1 || t == 8) add_pair();
  }
};

// What every block of a row shares.
struct Row {
  size_t channels, in_width;
  int8x16_t zero_point;  // the input zero point in every lane: what a missing column reads
  neon::Qs8Requantize requantize;
};

// kPixels output pixels kStride apart whose first window column is input column ix0 (wrapped
// when left of the image), one channel group: `rows` are the 3 input rows at the group's first
// channel, `w` its packed [biases][9 taps][scales], `out` the first pixel's output. With
// kBorder each column is tested against the image; otherwise all lie inside.
template <size_t kStride, size_t kPixels, bool kBorder, class Lanes>
inline void block(Lanes lanes, const Row& row, size_t ix0, const int8_t* const* rows, const uint8_t* w,
                  int8_t* out) {
  constexpr size_t kColumns = (kPixels - 1) * kStride + 3;
  const auto* taps = reinterpret_cast<const int8_t*>(w + kCR * sizeof(int32_t));
  int8x16_t weights[9];
  MNENGINE_UNROLL(32)
  for (size_t t = 0; t < 9; ++t) weights[t] = vld1q_s8(taps + t * kCR);
  Sums sums[kPixels];
  MNENGINE_UNROLL(32)
  for (size_t p = 0; p < kPixels; ++p) {
    MNENGINE_UNROLL(32)
    for (size_t q = 0; q < 4; ++q) sums[p].acc[q] = neon::load_s32(w + q * 16);
  }
  MNENGINE_UNROLL(32)
  for (size_t ky = 0; ky < 3; ++ky) {
    MNENGINE_UNROLL(32)
    for (size_t column = 0; column < kColumns; ++column) {
      const size_t ix = ix0 + column;
      const int8x16_t x = !kBorder || ix < row.in_width ? lanes.load(rows[ky] + ix * row.channels) : row.zero_point;
      MNENGINE_UNROLL(32)
      for (size_t p = 0; p < kPixels; ++p) {
        const size_t kx = column - p * kStride;  // wraps to huge left of pixel p's window
        if (kx < 3) sums[p].tap(ky * 3 + kx, x, weights[ky * 3 + kx]);
      }
    }
  }
  const uint8_t* scales = w + kCR * sizeof(int32_t) + kTapBytes;
  float32x4_t scale[4];
  MNENGINE_UNROLL(32)
  for (size_t q = 0; q < 4; ++q) scale[q] = neon::load_f32(scales + q * 16);
  MNENGINE_UNROLL(32)
  for (size_t p = 0; p < kPixels; ++p) {
    const neon::Qs8Requantize& rq = row.requantize;
    const int16x8_t lo = rq.to_int16(neon::scaled(sums[p].acc[0], scale[0]), neon::scaled(sums[p].acc[1], scale[1]));
    const int16x8_t hi = rq.to_int16(neon::scaled(sums[p].acc[2], scale[2]), neon::scaled(sums[p].acc[3], scale[3]));
    lanes.store(out + p * row.channels, rq.to_int8(lo, hi));
  }
}

// Every channel group of the kPixels pixels from output pixel ox.
template <size_t kStride, size_t kPixels, bool kBorder>
inline void pixels(const Row& row, size_t ox, size_t pad_left, const int8_t* const* rows, const uint8_t* w,
                   int8_t* out) {
  const size_t ix0 = ox * kStride - pad_left;  // wraps left of the image
  out += ox * row.channels;
  size_t c = 0;
  for (; c + kCR <= row.channels; c += kCR, w += kGroupBytes) {
    const int8_t* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    block<kStride, kPixels, kBorder>(neon::Int8Full(), row, ix0, group_rows, w, out + c);
  }
  if (c != row.channels) {
    const int8_t* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    block<kStride, kPixels, kBorder>(neon::Int8Tail{row.channels - c}, row, ix0, group_rows, w, out + c);
  }
}

template <size_t kStride>
void output_row(const Row& row, size_t out_width, size_t pad_left, const int8_t* const* rows, const uint8_t* w,
                int8_t* out) {
  // Interior pixels: ox * stride - pad_left >= 0 and ox * stride - pad_left + 2 < in_width.
  const size_t in_width = row.in_width;
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / kStride + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + kStride - 1) / kStride;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;
  size_t ox = 0;
  for (; ox < interior_begin; ++ox) pixels<kStride, 1, true>(row, ox, pad_left, rows, w, out);
  for (; ox + 3 <= interior_end; ox += 3) pixels<kStride, 3, false>(row, ox, pad_left, rows, w, out);
  if (ox + 2 <= interior_end) pixels<kStride, 2, false>(row, ox, pad_left, rows, w, out), ox += 2;
  if (ox < interior_end) pixels<kStride, 1, false>(row, ox, pad_left, rows, w, out), ++ox;
  for (; ox < out_width; ++ox) pixels<kStride, 1, true>(row, ox, pad_left, rows, w, out);
}

}  // namespace

void qs8_dwconv3x3__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width, size_t stride,
                         size_t pad_left, const int8_t* const* rows, const void* packed_w, int8_t* out,
                         int32_t input_zero_point, const Qs8Output& output) {
  const Row row{channels, in_width, vdupq_n_s8(static_cast<int8_t>(input_zero_point)), neon::Qs8Requantize(output)};
  const auto* w = static_cast<const uint8_t*>(packed_w);
  for (size_t oy = 0; oy < out_rows; ++oy, out += out_width * channels) {
    if (stride == 1) {
      output_row<1>(row, out_width, pad_left, rows + oy, w, out);
    } else {
      output_row<2>(row, out_width, pad_left, rows + oy * 2, w, out);
    }
  }
}

}  // namespace mnengine

