// f32-dwconv 3x3 avx2-fma: one output row, 8 channels per ymm (CR = 8), stride 1 or 2.
// Per channel group the 9 taps and the bias stay in registers while the row is swept;
// columns whose taps all fall inside the image take the branch-free interior loop, the
// border columns test each tap, so the input is never copied into a padded buffer.
#include "avx2_helpers.h"

namespace mnengine {
namespace {

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

template <bool kMasked>
void dwconv_group(Lanes<kMasked> lanes, size_t channels, size_t out_width, size_t in_width,
                  size_t stride, size_t pad_left, size_t interior_begin, size_t interior_end,
                  const float* const* rows, const float* w, float* out, __m256 vmin,
                  __m256 vmax) {
  const __m256 bias = _mm256_load_ps(w);
  __m256 k[9];
  for (size_t tap = 0; tap < 9; ++tap) k[tap] = _mm256_load_ps(w + 8 + tap * 8);

  const auto border_pixel = [&](size_t ox) {
    __m256 acc = bias;
    for (size_t kx = 0; kx < 3; ++kx) {
      const size_t ix = ox * stride + kx - pad_left;  // wraps to huge left of the image
      if (ix >= in_width) continue;
      const size_t offset = ix * channels;
      acc = _mm256_fmadd_ps(lanes.load(rows[0] + offset), k[kx], acc);
      acc = _mm256_fmadd_ps(lanes.load(rows[1] + offset), k[3 + kx], acc);
      acc = _mm256_fmadd_ps(lanes.load(rows[2] + offset), k[6 + kx], acc);
    }
    lanes.store(out + ox * channels, avx2::clamp(acc, vmin, vmax));
  };

  for (size_t ox = 0; ox < interior_begin; ++ox) border_pixel(ox);
  const float* r0 = rows[0];
  const float* r1 = rows[1];
  const float* r2 = rows[2];
  for (size_t ox = interior_begin; ox < interior_end; ++ox) {
    const size_t offset = (ox * stride - pad_left) * channels;
    const float* p0 = r0 + offset;
    const float* p1 = r1 + offset;
    const float* p2 = r2 + offset;
    __m256 acc = _mm256_fmadd_ps(lanes.load(p0), k[0], bias);
    acc = _mm256_fmadd_ps(lanes.load(p0 + channels), k[1], acc);
    acc = _mm256_fmadd_ps(lanes.load(p0 + 2 * channels), k[2], acc);
    acc = _mm256_fmadd_ps(lanes.load(p1), k[3], acc);
    acc = _mm256_fmadd_ps(lanes.load(p1 + channels), k[4], acc);
    acc = _mm256_fmadd_ps(lanes.load(p1 + 2 * channels), k[5], acc);
    acc = _mm256_fmadd_ps(lanes.load(p2), k[6], acc);
    acc = _mm256_fmadd_ps(lanes.load(p2 + channels), k[7], acc);
    acc = _mm256_fmadd_ps(lanes.load(p2 + 2 * channels), k[8], acc);
    lanes.store(out + ox * channels, avx2::clamp(acc, vmin, vmax));
  }
  for (size_t ox = interior_end; ox < out_width; ++ox) border_pixel(ox);
}

}  // namespace

void f32_dwconv3x3__avx2_fma(size_t channels, size_t out_width, size_t in_width, size_t stride,
                             size_t pad_left, const float* const* rows, const float* w,
                             float* out, Clamp clamp) {
  // Interior columns: ox * stride - pad_left >= 0 and ox * stride - pad_left + 2 < in_width.
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / stride + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + stride - 1) / stride;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;

  const __m256 vmin = _mm256_set1_ps(clamp.min);
  const __m256 vmax = _mm256_set1_ps(clamp.max);
  size_t c = 0;
  for (; c + 8 <= channels; c += 8, w += 80) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    dwconv_group(Lanes<false>{}, channels, out_width, in_width, stride, pad_left,
                 interior_begin, interior_end, group_rows, w, out + c, vmin, vmax);
  }
  if (c != channels) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    dwconv_group(Lanes<true>{avx2::tail_mask(channels - c)}, channels, out_width, in_width,
                 stride, pad_left, interior_begin, interior_end, group_rows, w, out + c, vmin,
                 vmax);
  }
}

}  // namespace mnengine
