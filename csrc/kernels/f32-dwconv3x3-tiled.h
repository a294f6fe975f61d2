// f32-dwconv 3x3, tiled: the depthwise kernel shared by the SIMD instruction sets, written once
// over a `Simd` description of one vector register of channels. Each ISA's kernel file defines
// its Simd and instantiates dwconv3x3_rows (see x86/ and arm/).
//
// It computes one or two output rows per call. The unit of work is a block of output rows by
// pixels by channel groups (vectors) holding 8 independent accumulators: an FMA has 4 cycles of
// latency and two issue ports on the cores we target, so fewer independent sums would leave the
// FMA units idle (9 taps into one accumulator is a 36-cycle chain). Each input vector is loaded
// once per block and feeds every output whose window covers it; two output rows share the two
// input rows between them, which halves what a pair of rows reads from L2, and give the
// narrow blocks that finish a row (one pixel by four groups) a second use of every load.
// Blocks are 1 row x 4 pixels x 2 groups or 2 rows x 2 pixels x 2 groups, narrower and taller
// at a row's end and at its borders. Two groups of 8 floats (AVX2) make a cache line, and a
// block uses both: with power-of-two channel counts the columns of a block fall into the same
// few cache sets, so a block that used half of each line would find the other half evicted
// when the next group needs it. (An AVX-512 group of 16 is a whole line.) Every block
// does all channel groups before the sweep moves on, so the input is read as contiguous runs
// of channels. Border windows that miss whole columns run the same code without them, so the
// input is never copied into a padded buffer.
//
// Simd provides: Vec; kLanes (channels per vector, the kernel's CR); Full and Tail lane sets
// with load(p) and store(p, v) (Tail covers the first `count` < kLanes channels and touches
// no memory past them; Simd::tail(count) makes one); weights(p) (a load from the packed,
// aligned weights); dup(x); fma(acc, x, w) = acc + x * w; and what f32-output-stage.h needs
// (clamp, hard_swish).
#pragma once

#include <cstddef>
#include <type_traits>

#include "../kernels.h"
#include "f32-output-stage.h"
#include "unroll.h"

namespace mnengine {
namespace dwconv3x3 {

constexpr size_t kAccumulators = 8;

// kOutRows output rows by kPixels adjacent output pixels by kGroups channel groups. Their
// windows span kInRows input rows and kColumns input columns, of which the first kSkipLeft and
// the last kSkipRight lie outside the image (zero padding) and are not read. `rows` point at
// the first column read of each input row (channel offset applied), `w` at the first group's
// packed [bias][9 taps] weights; groups are kLanes channels apart in the data and 10 * kLanes
// floats apart in the weights; output rows are `out_stride` floats apart.
template <class Simd, size_t kStride, size_t kOutRows, size_t kPixels, size_t kGroups,
          size_t kSkipLeft, size_t kSkipRight, class Lanes, class Output>
inline void block(Lanes lanes, size_t channels, const float* const* rows, const float* w,
                  float* out, size_t out_stride, const Output& output) {
  using Vec = typename Simd::Vec;
  constexpr size_t kCR = Simd::kLanes;
  constexpr size_t kColumns = (kPixels - 1) * kStride + 3;
  constexpr size_t kInRows = (kOutRows - 1) * kStride + 3;
  Vec acc[kOutRows][kGroups][kPixels];
  MNENGINE_UNROLL(32)
  for (size_t g = 0; g < kGroups; ++g) {
    const Vec bias = Simd::weights(w + g * 10 * kCR);
    MNENGINE_UNROLL(32)
    for (size_t o = 0; o < kOutRows; ++o) {
      MNENGINE_UNROLL(32)
      for (size_t p = 0; p < kPixels; ++p) acc[o][g][p] = bias;
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t r = 0; r < kInRows; ++r) {
    // Stepped a column at a time: one register for every column's address.
    const float* x_column = rows[r];
    MNENGINE_UNROLL(32)
    for (size_t column = kSkipLeft; column + kSkipRight < kColumns; ++column, x_column += channels) {
      MNENGINE_UNROLL(32)
      for (size_t g = 0; g < kGroups; ++g) {
        const Vec x = lanes.load(x_column + g * kCR);
        MNENGINE_UNROLL(32)
        for (size_t o = 0; o < kOutRows; ++o) {
          const size_t ky = r - o * kStride;  // wraps to huge above output row o's window
          if (ky >= 3) continue;
          const float* taps = w + g * 10 * kCR + kCR + ky * 3 * kCR;
          MNENGINE_UNROLL(32)
          for (size_t p = 0; p < kPixels; ++p) {
            const size_t kx = column - p * kStride;  // wraps to huge when p's window starts later
            if (kx < 3) acc[o][g][p] = Simd::fma(acc[o][g][p], x, Simd::weights(taps + kx * kCR));
          }
        }
      }
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t o = 0; o < kOutRows; ++o) {
    MNENGINE_UNROLL(32)
    for (size_t g = 0; g < kGroups; ++g) {
      MNENGINE_UNROLL(32)
      for (size_t p = 0; p < kPixels; ++p)
        lanes.store(out + o * out_stride + p * channels + g * kCR, output(acc[o][g][p]));
    }
  }
}

// Blocks of kPixels pixels over channels [c, channels): kGroups groups at a time while they
// last, then fewer (halving), then the channel tail.
template <class Simd, size_t kStride, size_t kOutRows, size_t kPixels, size_t kGroups, size_t kSkipLeft,
          size_t kSkipRight, class Output>
inline void groups_from(size_t c, size_t channels, const float* const* rows, const float* w,
                        float* out, size_t out_stride, const Output& output) {
  constexpr size_t kCR = Simd::kLanes;
  constexpr size_t kInRows = (kOutRows - 1) * kStride + 3;
  for (; c + kGroups * kCR <= channels; c += kGroups * kCR) {
    const float* group_rows[kInRows];
    for (size_t r = 0; r < kInRows; ++r) group_rows[r] = rows[r] + c;
    block<Simd, kStride, kOutRows, kPixels, kGroups, kSkipLeft, kSkipRight>(
        typename Simd::Full{}, channels, group_rows, w + c * 10, out + c, out_stride, output);
  }
  if constexpr (kGroups > 1) {
    groups_from<Simd, kStride, kOutRows, kPixels, kGroups / 2, kSkipLeft, kSkipRight>(c, channels, rows, w, out, out_stride, output);
  } else if (c != channels) {
    const float* group_rows[kInRows];
    for (size_t r = 0; r < kInRows; ++r) group_rows[r] = rows[r] + c;
    block<Simd, kStride, kOutRows, kPixels, 1, kSkipLeft, kSkipRight>(
        Simd::tail(channels - c), channels, group_rows, w + c * 10, out + c, out_stride, output);
  }
}

// kPixels pixels whose first column read is `first_column`, all channels.
template <class Simd, size_t kStride, size_t kOutRows, size_t kPixels, size_t kSkipLeft = 0, size_t kSkipRight = 0,
          class Output>
inline void pixels(size_t channels, size_t first_column, const float* const* rows,
                   const float* w, float* out, size_t out_stride, const Output& output) {
  constexpr size_t kInRows = (kOutRows - 1) * kStride + 3;
  const size_t offset = first_column * channels;
  const float* shifted[kInRows];
  for (size_t r = 0; r < kInRows; ++r) shifted[r] = rows[r] + offset;
  groups_from<Simd, kStride, kOutRows, kPixels, kAccumulators / kPixels / kOutRows, kSkipLeft, kSkipRight>(
      0, channels, shifted, w, out, out_stride, output);
}

// One output pixel of an image narrower than the window: each tap is tested against the image.
template <class Simd, class Lanes, class Output>
inline void narrow_pixel(Lanes lanes, size_t channels, size_t in_width, size_t ix0,
                         const float* const* rows, const float* w, float* out, const Output& output) {
  constexpr size_t kCR = Simd::kLanes;
  typename Simd::Vec acc = Simd::weights(w);
  for (size_t kx = 0; kx < 3; ++kx) {
    const size_t ix = ix0 + kx;  // wraps to huge left of the image
    if (ix >= in_width) continue;
    for (size_t ky = 0; ky < 3; ++ky)
      acc = Simd::fma(acc, lanes.load(rows[ky] + ix * channels), Simd::weights(w + kCR + (ky * 3 + kx) * kCR));
  }
  lanes.store(out, output(acc));
}

template <class Simd, class Output>
void narrow_pixel_all_groups(size_t channels, size_t in_width, size_t ix0, const float* const* rows,
                             const float* w, float* out, const Output& output) {
  constexpr size_t kCR = Simd::kLanes;
  size_t c = 0;
  for (; c + kCR <= channels; c += kCR, w += 10 * kCR) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    narrow_pixel<Simd>(typename Simd::Full{}, channels, in_width, ix0, group_rows, w, out + c, output);
  }
  if (c != channels) {
    const float* group_rows[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
    narrow_pixel<Simd>(Simd::tail(channels - c), channels, in_width, ix0, group_rows, w, out + c, output);
  }
}

// kOutRows output rows, `out_stride` floats apart, from the (kOutRows - 1) * kStride + 3 input
// rows under them.
template <class Simd, size_t kStride, size_t kOutRows, bool kHardSwish>
void rows_of(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
             const float* const* rows, const float* w, float* out, size_t out_stride, Clamp clamp) {
  // Interior columns: ox * stride - pad_left >= 0 and ox * stride - pad_left + 2 < in_width.
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / kStride + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + kStride - 1) / kStride;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;

  const OutputStage<Simd, kHardSwish> output(clamp);
  // A border window missing only its first or only its last one or two columns runs the
  // interior code without those columns; anything else (images narrower than the window)
  // tests each tap.
  const auto border = [&](size_t ox) {
    const size_t ix0 = ox * kStride - pad_left;  // wraps left of the image
    float* y = out + ox * channels;
    const size_t missing_left = ix0 < in_width ? 0 : 0 - ix0;
    const size_t missing_right = ix0 + 3 > in_width && ix0 < in_width ? ix0 + 3 - in_width : 0;
    if (missing_left == 1 && in_width >= 2) {
      pixels<Simd, kStride, kOutRows, 1, 1, 0>(channels, 0, rows, w, y, out_stride, output);
    } else if (missing_left == 2 && in_width >= 1) {
      pixels<Simd, kStride, kOutRows, 1, 2, 0>(channels, 0, rows, w, y, out_stride, output);
    } else if (missing_right == 1 && missing_left == 0) {
      pixels<Simd, kStride, kOutRows, 1, 0, 1>(channels, ix0, rows, w, y, out_stride, output);
    } else if (missing_right == 2 && missing_left == 0) {
      pixels<Simd, kStride, kOutRows, 1, 0, 2>(channels, ix0, rows, w, y, out_stride, output);
    } else {
      for (size_t o = 0; o < kOutRows; ++o)
        narrow_pixel_all_groups<Simd>(channels, in_width, ix0, rows + o * kStride, w, y + o * out_stride, output);
    }
  };
  const auto interior = [&](auto pixel_count, size_t ox) {
    constexpr size_t kPixels = decltype(pixel_count)::value;
    pixels<Simd, kStride, kOutRows, kPixels>(channels, ox * kStride - pad_left, rows, w, out + ox * channels, out_stride, output);
  };
  constexpr size_t kWide = 4 / kOutRows;  // pixels of the widest block
  size_t ox = 0;
  for (; ox < interior_begin; ++ox) border(ox);
  for (; ox + kWide <= interior_end; ox += kWide) interior(std::integral_constant<size_t, kWide>(), ox);
  if constexpr (kWide > 2) {
    if (ox + 2 <= interior_end) interior(std::integral_constant<size_t, 2>(), ox), ox += 2;
  }
  if (ox < interior_end) interior(std::integral_constant<size_t, 1>(), ox), ++ox;
  for (; ox < out_width; ++ox) border(ox);
}

// The DwConv3x3Fn contract (csrc/kernels.h) for one stride.
template <class Simd, size_t kStride>
void dwconv3x3_rows(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                    size_t pad_left, const float* const* rows, const float* w, float* out,
                    Clamp clamp) {
  with_hard_swish(clamp, [&](auto hard_swish) {
    constexpr bool kHardSwish = decltype(hard_swish)::value;
    if (out_rows == 2) {
      rows_of<Simd, kStride, 2, kHardSwish>(channels, out_width, in_width, pad_left, rows, w, out, out_width * channels, clamp);
    } else {
      rows_of<Simd, kStride, 1, kHardSwish>(channels, out_width, in_width, pad_left, rows, w, out, out_width * channels, clamp);
    }
  });
}

}  // namespace dwconv3x3
}  // namespace mnengine

