// f32-dwconv 3x3 avx2-fma: one output row, 8 channels per ymm (CR = 8), stride 1 or 2.
//
// The row is swept in tiles of 4 output pixels; for each tile every channel group is done
// before moving on, so the input is read as contiguous runs of channels (a channel-outer
// sweep would stride through memory by whole pixels and thrash L1 on wide layers). Within
// a tile, each input column is loaded once and feeds every output pixel whose window covers
// it: 3 x 6 loads for 36 FMAs at stride 1, 3 x 9 at stride 2. Columns at the image border
// take a per-pixel path that tests each tap, so the input is never copied into a padded
// buffer.
#include "avx2_helpers.h"

namespace mnengine {
namespace {

constexpr size_t kTile = 4;

template <bool kMasked>
struct Lanes {
  __m256i mask;
  __m256 load(const float* p) const {
    return kMasked ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
  }
  void store(float* p, __m256 v) const {
    if (kMasked) {
      _mm256_maskstore_ps(p, mask, v);
    } else {
      _mm256_storeu_ps(p, v);
    }
  }
};

// kPixels adjacent output pixels. Their windows span kColumns input columns, of which the
// first kSkipLeft and the last kSkipRight lie outside the image (zero padding) and are not
// read. `rows` point at the first column read (channel offset applied), `w` at the group's
// packed [bias][9 taps] weights.
template <size_t kStride, size_t kPixels, size_t kSkipLeft, size_t kSkipRight, bool kMasked>
inline void window_pixels(Lanes<kMasked> lanes, size_t channels, const float* const* rows,
                          const float* w, float* out, __m256 vmin, __m256 vmax) {
  constexpr size_t kColumns = (kPixels - 1) * kStride + 3;
  __m256 acc[kPixels];
  const __m256 bias = _mm256_load_ps(w);
  for (size_t p = 0; p < kPixels; ++p) acc[p] = bias;
  for (size_t ky = 0; ky < 3; ++ky) {
    const __m256 k0 = _mm256_load_ps(w + 8 + (ky * 3 + 0) * 8);
    const __m256 k1 = _mm256_load_ps(w + 8 + (ky * 3 + 1) * 8);
    const __m256 k2 = _mm256_load_ps(w + 8 + (ky * 3 + 2) * 8);
    const float* row = rows[ky];
    for (size_t column = kSkipLeft; column + kSkipRight < kColumns; ++column) {
      const __m256 x = lanes.load(row + (column - kSkipLeft) * channels);
      // Output pixel p sees this column through tap kx = column - p * stride.
      for (size_t p = 0; p < kPixels; ++p) {
        const size_t kx = column - p * kStride;  // wraps to huge when p's window starts later
        if (kx == 0) acc[p] = _mm256_fmadd_ps(x, k0, acc[p]);
        if (kx == 1) acc[p] = _mm256_fmadd_ps(x, k1, acc[p]);
        if (kx == 2) acc[p] = _mm256_fmadd_ps(x, k2, acc[p]);
      }
    }
  }
  for (size_t p = 0; p < kPixels; ++p) lanes.store(out + p * channels, avx2::clamp(acc[p], vmin, vmax));
}

// One output pixel at the border: each tap is tested against the image.
template <bool kMasked>
inline void border_pixel(Lanes<kMasked> lanes, size_t channels, size_t in_width, size_t ix0,
                         const float* const* rows, const float* w, float* out, __m256 vmin,
                         __m256 vmax) {
  __m256 acc = _mm256_load_ps(w);
  for (size_t kx = 0; kx < 3; ++kx) {
    const size_t ix = ix0 + kx;  // wraps to huge left of the image
    if (ix >= in_width) continue;
    for (size_t ky = 0; ky < 3; ++ky)
      acc = _mm256_fmadd_ps(lanes.load(rows[ky] + ix * channels), _mm256_load_ps(w + 8 + (ky * 3 + kx) * 8), acc);
  }
  lanes.store(out, avx2::clamp(acc, vmin, vmax));
}

// All channel groups of kPixels pixels whose first column read is `first_column`: full
// groups, then the masked tail.
template <size_t kStride, size_t kPixels, size_t kSkipLeft = 0, size_t kSkipRight = 0>
inline void pixels_all_groups(size_t channels, size_t first_column, const float* const* rows,
                              const float* w, float* out, __m256 vmin, __m256 vmax) {
  const size_t offset = first_column * channels;
  size_t c = 0;
  for (; c + 8 <= channels; c += 8, w += 80) {
    const float* group_rows[3] = {rows[0] + offset + c, rows[1] + offset + c, rows[2] + offset + c};
    window_pixels<kStride, kPixels, kSkipLeft, kSkipRight>(Lanes<false>{}, channels, group_rows,
                                                           w, out + c, vmin, vmax);
  }
  if (c != channels) {
    const float* group_rows[3] = {rows[0] + offset + c, rows[1] + offset + c, rows[2] + offset + c};
    window_pixels<kStride, kPixels, kSkipLeft, kSkipRight>(
        Lanes<true>{avx2::tail_mask(channels - c)}, channels, group_rows, w, out + c, vmin, vmax);
  }
}

void border_all_groups(size_t channels, size_t in_width, size_t ix0, const float* const* rows,
                       const float* w, float* out, __m256 vmin, __m256 vmax) {
  size_t c = 0;
  for (; c + 8 <= channels; c += 8, w += 80) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    border_pixel(Lanes<false>{}, channels, in_width, ix0, group_rows, w, out + c, vmin, vmax);
  }
  if (c != channels) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    border_pixel(Lanes<true>{avx2::tail_mask(channels - c)}, channels, in_width, ix0,
                 group_rows, w, out + c, vmin, vmax);
  }
}

template <size_t kStride>
void dwconv_row(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                const float* const* rows, const float* w, float* out, Clamp clamp) {
  // Interior columns: ox * stride - pad_left >= 0 and ox * stride - pad_left + 2 < in_width.
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / kStride + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + kStride - 1) / kStride;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;

  const __m256 vmin = _mm256_set1_ps(clamp.min);
  const __m256 vmax = _mm256_set1_ps(clamp.max);
  // A border window missing only its first or only its last one or two columns runs the
  // interior code without those columns; anything else (images narrower than the window)
  // tests each tap.
  const auto border = [&](size_t ox) {
    const size_t ix0 = ox * kStride - pad_left;  // wraps left of the image
    float* y = out + ox * channels;
    const size_t missing_left = ix0 < in_width ? 0 : 0 - ix0;
    const size_t missing_right = ix0 + 3 > in_width && ix0 < in_width ? ix0 + 3 - in_width : 0;
    if (missing_left == 1 && in_width >= 2) {
      pixels_all_groups<kStride, 1, 1, 0>(channels, 0, rows, w, y, vmin, vmax);
    } else if (missing_left == 2 && in_width >= 1) {
      pixels_all_groups<kStride, 1, 2, 0>(channels, 0, rows, w, y, vmin, vmax);
    } else if (missing_right == 1 && missing_left == 0) {
      pixels_all_groups<kStride, 1, 0, 1>(channels, ix0, rows, w, y, vmin, vmax);
    } else if (missing_right == 2 && missing_left == 0) {
      pixels_all_groups<kStride, 1, 0, 2>(channels, ix0, rows, w, y, vmin, vmax);
    } else {
      border_all_groups(channels, in_width, ix0, rows, w, y, vmin, vmax);
    }
  };
  size_t ox = 0;
  for (; ox < interior_begin; ++ox) border(ox);
  for (; ox + kTile <= interior_end; ox += kTile)
    pixels_all_groups<kStride, kTile>(channels, ox * kStride - pad_left, rows, w, out + ox * channels, vmin, vmax);
  for (; ox < interior_end; ++ox)
    pixels_all_groups<kStride, 1>(channels, ox * kStride - pad_left, rows, w, out + ox * channels, vmin, vmax);
  for (; ox < out_width; ++ox) border(ox);
}

}  // namespace

void f32_dwconv3x3__avx2_fma(size_t channels, size_t out_width, size_t in_width, size_t stride,
                             size_t pad_left, const float* const* rows, const float* w,
                             float* out, Clamp clamp) {
  if (stride == 1) {
    dwconv_row<1>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
  } else {
    dwconv_row<2>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
  }
}

}  // namespace mnengine
