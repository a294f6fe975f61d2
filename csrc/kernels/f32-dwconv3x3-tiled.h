// f32-dwconv 3x3, tiled: the depthwise row kernel shared by the SIMD instruction sets, written
// once over a `Simd` description of one vector register of channels. Each ISA's kernel file
// defines its Simd and instantiates dwconv3x3_row (see x86/ and arm/).
//
// The row is swept in tiles of 4 output pixels; for each tile every channel group is done
// before moving on, so the input is read as contiguous runs of channels (a channel-outer
// sweep would stride through memory by whole pixels and thrash L1 on wide layers). Within
// a tile, each input column is loaded once and feeds every output pixel whose window covers
// it: 3 x 6 loads for 36 FMAs at stride 1, 3 x 9 at stride 2. Border windows that miss
// whole columns run the same code without them, and the rest test each tap, so the input is
// never copied into a padded buffer.
//
// Simd provides: Vec; kLanes (channels per vector, the kernel's CR); Full and Tail lane sets
// with load(p) and store(p, v) (Tail covers the first `count` < kLanes channels and touches
// no memory past them; Simd::tail(count) makes one); weights(p) (a load from the packed,
// aligned weights); dup(x); fma(acc, x, w) = acc + x * w; clamp(x, lo, hi) propagating NaN.
#pragma once

#include <cstddef>

#include "../kernels.h"

namespace mnengine {
namespace dwconv3x3 {

constexpr size_t kTile = 4;

// kPixels adjacent output pixels. Their windows span kColumns input columns, of which the
// first kSkipLeft and the last kSkipRight lie outside the image (zero padding) and are not
// read. `rows` point at the first column read (channel offset applied), `w` at the group's
// packed [bias][9 taps] weights.
template <class Simd, size_t kStride, size_t kPixels, size_t kSkipLeft, size_t kSkipRight,
          class Lanes>
inline void window_pixels(Lanes lanes, size_t channels, const float* const* rows,
                          const float* w, float* out, typename Simd::Vec vmin,
                          typename Simd::Vec vmax) {
  using Vec = typename Simd::Vec;
  constexpr size_t kCR = Simd::kLanes;
  constexpr size_t kColumns = (kPixels - 1) * kStride + 3;
  Vec acc[kPixels];
  const Vec bias = Simd::weights(w);
  for (size_t p = 0; p < kPixels; ++p) acc[p] = bias;
  for (size_t ky = 0; ky < 3; ++ky) {
    const Vec k0 = Simd::weights(w + kCR + (ky * 3 + 0) * kCR);
    const Vec k1 = Simd::weights(w + kCR + (ky * 3 + 1) * kCR);
    const Vec k2 = Simd::weights(w + kCR + (ky * 3 + 2) * kCR);
    const float* row = rows[ky];
    for (size_t column = kSkipLeft; column + kSkipRight < kColumns; ++column) {
      const Vec x = lanes.load(row + (column - kSkipLeft) * channels);
      // Output pixel p sees this column through tap kx = column - p * stride.
      for (size_t p = 0; p < kPixels; ++p) {
        const size_t kx = column - p * kStride;  // wraps to huge when p's window starts later
        if (kx == 0) acc[p] = Simd::fma(acc[p], x, k0);
        if (kx == 1) acc[p] = Simd::fma(acc[p], x, k1);
        if (kx == 2) acc[p] = Simd::fma(acc[p], x, k2);
      }
    }
  }
  for (size_t p = 0; p < kPixels; ++p) lanes.store(out + p * channels, Simd::clamp(acc[p], vmin, vmax));
}

// One output pixel at the border: each tap is tested against the image.
template <class Simd, class Lanes>
inline void border_pixel(Lanes lanes, size_t channels, size_t in_width, size_t ix0,
                         const float* const* rows, const float* w, float* out,
                         typename Simd::Vec vmin, typename Simd::Vec vmax) {
  constexpr size_t kCR = Simd::kLanes;
  typename Simd::Vec acc = Simd::weights(w);
  for (size_t kx = 0; kx < 3; ++kx) {
    const size_t ix = ix0 + kx;  // wraps to huge left of the image
    if (ix >= in_width) continue;
    for (size_t ky = 0; ky < 3; ++ky)
      acc = Simd::fma(acc, lanes.load(rows[ky] + ix * channels), Simd::weights(w + kCR + (ky * 3 + kx) * kCR));
  }
  lanes.store(out, Simd::clamp(acc, vmin, vmax));
}

// All channel groups of kPixels pixels whose first column read is `first_column`: full
// groups, then the tail.
template <class Simd, size_t kStride, size_t kPixels, size_t kSkipLeft = 0, size_t kSkipRight = 0>
inline void pixels_all_groups(size_t channels, size_t first_column, const float* const* rows,
                              const float* w, float* out, typename Simd::Vec vmin,
                              typename Simd::Vec vmax) {
  constexpr size_t kCR = Simd::kLanes;
  const size_t offset = first_column * channels;
  size_t c = 0;
  for (; c + kCR <= channels; c += kCR, w += 10 * kCR) {
    const float* group_rows[3] = {rows[0] + offset + c, rows[1] + offset + c, rows[2] + offset + c};
    window_pixels<Simd, kStride, kPixels, kSkipLeft, kSkipRight>(typename Simd::Full{}, channels,
                                                                 group_rows, w, out + c, vmin, vmax);
  }
  if (c != channels) {
    const float* group_rows[3] = {rows[0] + offset + c, rows[1] + offset + c, rows[2] + offset + c};
    window_pixels<Simd, kStride, kPixels, kSkipLeft, kSkipRight>(Simd::tail(channels - c), channels,
                                                                 group_rows, w, out + c, vmin, vmax);
  }
}

template <class Simd>
void border_all_groups(size_t channels, size_t in_width, size_t ix0, const float* const* rows,
                       const float* w, float* out, typename Simd::Vec vmin,
                       typename Simd::Vec vmax) {
  constexpr size_t kCR = Simd::kLanes;
  size_t c = 0;
  for (; c + kCR <= channels; c += kCR, w += 10 * kCR) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    border_pixel<Simd>(typename Simd::Full{}, channels, in_width, ix0, group_rows, w, out + c, vmin, vmax);
  }
  if (c != channels) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    border_pixel<Simd>(Simd::tail(channels - c), channels, in_width, ix0, group_rows, w, out + c, vmin, vmax);
  }
}

// The DwConv3x3Fn contract (csrc/kernels.h) for one stride.
template <class Simd, size_t kStride>
void dwconv3x3_row(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                   const float* const* rows, const float* w, float* out, Clamp clamp) {
  using Vec = typename Simd::Vec;
  // Interior columns: ox * stride - pad_left >= 0 and ox * stride - pad_left + 2 < in_width.
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / kStride + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + kStride - 1) / kStride;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;

  const Vec vmin = Simd::dup(clamp.min);
  const Vec vmax = Simd::dup(clamp.max);
  // A border window missing only its first or only its last one or two columns runs the
  // interior code without those columns; anything else (images narrower than the window)
  // tests each tap.
  const auto border = [&](size_t ox) {
    const size_t ix0 = ox * kStride - pad_left;  // wraps left of the image
    float* y = out + ox * channels;
    const size_t missing_left = ix0 < in_width ? 0 : 0 - ix0;
    const size_t missing_right = ix0 + 3 > in_width && ix0 < in_width ? ix0 + 3 - in_width : 0;
    if (missing_left == 1 && in_width >= 2) {
      pixels_all_groups<Simd, kStride, 1, 1, 0>(channels, 0, rows, w, y, vmin, vmax);
    } else if (missing_left == 2 && in_width >= 1) {
      pixels_all_groups<Simd, kStride, 1, 2, 0>(channels, 0, rows, w, y, vmin, vmax);
    } else if (missing_right == 1 && missing_left == 0) {
      pixels_all_groups<Simd, kStride, 1, 0, 1>(channels, ix0, rows, w, y, vmin, vmax);
    } else if (missing_right == 2 && missing_left == 0) {
      pixels_all_groups<Simd, kStride, 1, 0, 2>(channels, ix0, rows, w, y, vmin, vmax);
    } else {
      border_all_groups<Simd>(channels, in_width, ix0, rows, w, y, vmin, vmax);
    }
  };
  size_t ox = 0;
  for (; ox < interior_begin; ++ox) border(ox);
  for (; ox + kTile <= interior_end; ox += kTile)
    pixels_all_groups<Simd, kStride, kTile>(channels, ox * kStride - pad_left, rows, w, out + ox * channels, vmin, vmax);
  for (; ox < interior_end; ++ox)
    pixels_all_groups<Simd, kStride, 1>(channels, ox * kStride - pad_left, rows, w, out + ox * channels, vmin, vmax);
  for (; ox < out_width; ++ox) border(ox);
}

}  // namespace dwconv3x3
}  // namespace mnengine
