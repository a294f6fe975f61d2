// qs8-conv3x3s2c3 neon (ARMv8.0): the int8 first convolution, 8 output channels per group
// (CR = 8: int32 sums in two q registers), blocks of up to 4 output pixels.
//
// A pixel's window is 3 rows of 9 int8 (3 columns x 3 channels), widened once to int16: each
// row's first 8 in one register and the three 9th values in a fourth. Each tap's 8 weights
// are widened once per block, and SMLAL by element (SMLAL2 for the upper 4 channels) multiplies
// them by the tap's input lane into the sums of every pixel of the block: the input of a tap is
// a lane, not a vector, so the multiply by element saves a broadcast per tap that int8
// multiplies (no by-element form) would need. The layer is about 2% of MobileNet's work.
// Registers for 4 pixels: 16 of windows, 8 sums, 2 for the tap's weights. A block's windows are
// loaded once and serve every channel group. Windows over the left or right edge are copied,
// their missing columns set to the input zero point (the packed bias assumes every tap reads a
// real value), and run the same code.
#include <cstddef>
#include <utility>

#include "neon.h"

namespace mnengine {
namespace {

constexpr size_t kCR = 8;
constexpr size_t kTaps = 27;
constexpr size_t kGroupBytes = kCR * sizeof(int32_t) + kTaps * kCR + kCR * sizeof(float);

// One output pixel's 27 inputs in int16: row r's values 0..7 in rows[r], the 9th in ninth[r].
struct Window {
  int16x8_t rows[3];
  int16x8_t ninth;
};

// The window whose rows start at x[0..2] (9 readable bytes each).
inline Window load_window(const int8_t* const* x) {
  Window window;
  int8x8_t ninth = vdup_n_s8(0);
  ninth = vld1_lane_s8(x[0] + 8, ninth, 0);
  ninth = vld1_lane_s8(x[1] + 8, ninth, 1);
  ninth = vld1_lane_s8(x[2] + 8, ninth, 2);
  for (size_t r = 0; r < 3; ++r) window.rows[r] = vmovl_s8(vld1_s8(x[r]));
  window.ninth = vmovl_s8(ninth);
  return window;
}

// Tap kTap (ky = kTap / 9, then kx and the input channel) of one group into every pixel's sums.
template <size_t kTap, size_t kPixels>
inline void tap(const int8_t* taps, const Window* windows, int32x4_t (*acc)[2]) {
  constexpr size_t kRow = kTap / 9, kIndex = kTap % 9;
  const int16x8_t w = vmovl_s8(vld1_s8(taps + kTap * kCR));
  for (size_t p = 0; p < kPixels; ++p) {
    if constexpr (kIndex < 8) {
      acc[p][0] = vmlal_laneq_s16(acc[p][0], vget_low_s16(w), windows[p].rows[kRow], kIndex);
      acc[p][1] = vmlal_high_laneq_s16(acc[p][1], w, windows[p].rows[kRow], kIndex);
    } else {
      acc[p][0] = vmlal_laneq_s16(acc[p][0], vget_low_s16(w), windows[p].ninth, kRow);
      acc[p][1] = vmlal_high_laneq_s16(acc[p][1], w, windows[p].ninth, kRow);
    }
  }
}

template <size_t kPixels, size_t... kTap>
inline void all_taps(std::index_sequence<kTap...>, const int8_t* taps, const Window* windows,
                     int32x4_t (*acc)[2]) {
  (tap<kTap, kPixels>(taps, windows, acc), ...);
}

struct Row {
  size_t channels;
  const uint8_t* w;
  neon::Qs8Requantize requantize;
};

// Every channel group of kPixels adjacent output pixels, `out` at the first one's.
template <size_t kPixels>
inline void block(const Row& row, const Window* windows, int8_t* out) {
  const uint8_t* w = row.w;
  for (size_t c = 0; c < row.channels; c += kCR, w += kGroupBytes) {
    int32x4_t acc[kPixels][2];
    const int32x4_t bias_lo = neon::load_s32(w), bias_hi = neon::load_s32(w + 16);
    for (size_t p = 0; p < kPixels; ++p) acc[p][0] = bias_lo, acc[p][1] = bias_hi;
    all_taps<kPixels>(std::make_index_sequence<kTaps>(), reinterpret_cast<const int8_t*>(w + kCR * sizeof(int32_t)),
                      windows, acc);
    const uint8_t* scales = w + kCR * sizeof(int32_t) + kTaps * kCR;
    const float32x4_t scale_lo = neon::load_f32(scales), scale_hi = neon::load_f32(scales + 16);
    const size_t count = row.channels - c < kCR ? row.channels - c : kCR;
    for (size_t p = 0; p < kPixels; ++p) {
      const int8x8_t y = row.requantize.to_int8(
          row.requantize.to_int16(neon::scaled(acc[p][0], scale_lo), neon::scaled(acc[p][1], scale_hi)));
      int8_t* out_p = out + p * row.channels + c;
      if (count == kCR) {
        vst1_s8(out_p, y);
      } else {
        neon::store_partial_s8(out_p, vcombine_s8(y, y), count);
      }
    }
  }
}

template <size_t kPixels>
inline void interior_block(const Row& row, const int8_t* const* rows, size_t ix0, int8_t* out) {
  Window windows[kPixels];
  for (size_t p = 0; p < kPixels; ++p) {
    const size_t offset = (ix0 + 2 * p) * 3;
    const int8_t* x[3] = {rows[0] + offset, rows[1] + offset, rows[2] + offset};
    windows[p] = load_window(x);
  }
  block<kPixels>(row, windows, out);
}

}  // namespace

void qs8_conv3x3s2c3__neon(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const int8_t* const* rows, const void* packed_w, int8_t* out,
                           int32_t input_zero_point, const Qs8Output& output) {
  const Row row{channels, static_cast<const uint8_t*>(packed_w), neon::Qs8Requantize(output)};
  // Interior pixels: 2 * ox - pad_left >= 0 and 2 * ox - pad_left + 2 < in_width.
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / 2 + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + 1) / 2;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;
  const auto border = [&](size_t ox) {
    int8_t copy[3][9];
    const size_t ix0 = 2 * ox - pad_left;  // wraps left of the image
    for (size_t r = 0; r < 3; ++r) {
      for (size_t kx = 0; kx < 3; ++kx) {
        const size_t ix = ix0 + kx;
        for (size_t ci = 0; ci < 3; ++ci)
          copy[r][kx * 3 + ci] = ix < in_width ? rows[r][ix * 3 + ci] : static_cast<int8_t>(input_zero_point);
      }
    }
    const int8_t* x[3] = {copy[0], copy[1], copy[2]};
    const Window window = load_window(x);
    block<1>(row, &window, out + ox * channels);
  };
  size_t ox = 0;
  for (; ox < interior_begin; ++ox) border(ox);
  for (; ox + 4 <= interior_end; ox += 4) interior_block<4>(row, rows, 2 * ox - pad_left, out + ox * channels);
  if (ox + 2 <= interior_end) interior_block<2>(row, rows, 2 * ox - pad_left, out + ox * channels), ox += 2;
  if (ox < interior_end) interior_block<1>(row, rows, 2 * ox - pad_left, out + ox * channels), ++ox;
  for (; ox < out_width; ++ox) border(ox);
}

}  // namespace mnengine
