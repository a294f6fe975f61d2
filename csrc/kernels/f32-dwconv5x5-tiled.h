// f32-dwconv 5x5, tiled: the depthwise 5x5 kernel shared by the SIMD instruction sets, written
// once over the `Simd` description of one vector register of channels that the 3x3 tiling uses
// (see f32-dwconv3x3-tiled.h for its members). Each ISA's kernel file instantiates dwconv5x5
// with its block size (kAccumulators) and tap policy (kRegisterTaps).
//
// A 5x5 window has 25 taps, so unlike the 3x3 kernel this one sweeps each output row one
// channel group (one vector) at a time: the group's 25 tap vectors are loaded once per sweep
// and every block of pixels along the row reuses them. Where the ISA has the registers for
// them (AVX-512: 32 zmm, 25 taps + 6 accumulators + 1 input) they stay in registers for the
// whole sweep (kRegisterTaps); otherwise each block reads them from the packed weights, which
// stay in L1 (26 vectors), and reuses each load for the block's pixels. A block is kOutRows
// output rows by kPixels adjacent pixels, kAccumulators independent sums in all: each input
// vector is loaded once per block and feeds every output whose window covers it (up to 5 per
// row at stride 1, 10 with two output rows, which share 4 of their 6 input rows). (With every
// register taken, GCC folds some of those loads into the FMAs as memory operands instead: L1
// loads, which the two load ports absorb.)
//
// The output stage is f32-output-stage.h's (hard-swish when the Clamp asks for it, then the
// clamp), chosen once per call.
//
// Borders are computed without a padded copy of the input: the pixels whose windows overhang
// the image on the left (or right) run as one block compiled without the columns outside it,
// as many as pad_left (or the last window's overhang) says, both at most 4; in an image narrower
// than the windows each pixel is a one-pixel block without its missing columns on both sides
// (at most 4 in all, since every window of a padding below 5 meets the image). Rows above or
// below the image are the caller's zero rows.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "../kernels.h"
#include "f32-output-stage.h"
#include "unroll.h"

namespace mnengine {
namespace dwconv5x5 {

constexpr size_t kSize = 5;
constexpr size_t kTaps = kSize * kSize;

// The 25 tap vectors of one channel group, as registers (loaded once per sweep).
template <class Simd>
struct RegisterTaps {
  typename Simd::Vec tap[kTaps];
  explicit RegisterTaps(const float* taps) {
    MNENGINE_UNROLL(32)
    for (size_t k = 0; k < kTaps; ++k) tap[k] = Simd::weights(taps + k * Simd::kLanes);
  }
  typename Simd::Vec operator[](size_t k) const { return tap[k]; }
};

// The 25 tap vectors of one channel group, read from the packed weights where used.
template <class Simd>
struct StreamedTaps {
  const float* taps;
  typename Simd::Vec operator[](size_t k) const { return Simd::weights(taps + k * Simd::kLanes); }
};

// kOutRows output rows by kPixels adjacent output pixels of one channel group. Their windows
// span (kOutRows - 1) * kStride + 5 input rows and (kPixels - 1) * kStride + 5 input columns,
// of which the first kSkipLeft and the last kSkipRight lie outside the image and are not read.
// `rows` point at the first column read of each input row (channel offset applied); `bias` at
// the group's packed biases; output rows are `out_stride` floats apart.
template <class Simd, size_t kStride, size_t kOutRows, size_t kPixels, size_t kSkipLeft,
          size_t kSkipRight, class Lanes, class Taps, class Output>
inline void block(Lanes lanes, size_t channels, const float* const* rows, const float* bias,
                  const Taps& taps, float* out, size_t out_stride, const Output& output) {
  using Vec = typename Simd::Vec;
  constexpr size_t kColumns = (kPixels - 1) * kStride + kSize;
  constexpr size_t kInRows = (kOutRows - 1) * kStride + kSize;
  Vec acc[kOutRows][kPixels];
  MNENGINE_UNROLL(32)
  for (size_t o = 0; o < kOutRows; ++o) {
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) acc[o][p] = Simd::weights(bias);
  }
  MNENGINE_UNROLL(32)
  for (size_t r = 0; r < kInRows; ++r) {
    const float* x_column = rows[r];  // stepped a column at a time: one address register
    MNENGINE_UNROLL(32)
    for (size_t column = kSkipLeft; column + kSkipRight < kColumns; ++column, x_column += channels) {
      const Vec x = lanes.load(x_column);
      MNENGINE_UNROLL(32)
      for (size_t o = 0; o < kOutRows; ++o) {
        const size_t ky = r - o * kStride;  // wraps to huge above output row o's window
        if (ky >= kSize) continue;
        MNENGINE_UNROLL(32)
        for (size_t p = 0; p < kPixels; ++p) {
          const size_t kx = column - p * kStride;  // wraps to huge left of pixel p's window
          if (kx < kSize) acc[o][p] = Simd::fma(acc[o][p], x, taps[ky * kSize + kx]);
        }
      }
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t o = 0; o < kOutRows; ++o) {
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) lanes.store(out + o * out_stride + p * channels, output(acc[o][p]));
  }
}

// f(std::integral_constant<size_t, value>) for a run-time value in [0, kSize).
template <class F, size_t... kValues>
inline void with_constant(size_t value, F&& f, std::index_sequence<kValues...>) {
  ((value == kValues ? f(std::integral_constant<size_t, kValues>()) : void()), ...);
}
template <class F>
inline void with_constant(size_t value, F&& f) {
  with_constant(value, f, std::make_index_sequence<kSize>());
}

// One output row sweep (kOutRows rows) of one channel group whose data starts at `rows[r]`
// (channel offset applied) and whose packed [bias][25 taps] are at `w`. Output columns
// [interior_begin, interior_end) have their whole window in the image.
template <class Simd, size_t kStride, size_t kOutRows, size_t kPixels, bool kRegisterTaps, class Lanes, class Output>
inline void group_rows(Lanes lanes, size_t channels, size_t out_width, size_t in_width,
                       size_t pad_left, size_t interior_begin, size_t interior_end,
                       const float* const* rows, const float* w, float* out, size_t out_stride,
                       const Output& output) {
  constexpr size_t kInRows = (kOutRows - 1) * kStride + kSize;
  const float* const taps_begin = w + Simd::kLanes;
  // rows[r] from input column ix.
  const auto rows_from = [&](size_t ix, const float** shifted) {
    for (size_t r = 0; r < kInRows; ++r) shifted[r] = rows[r] + ix * channels;
  };
  if (interior_begin == interior_end) {
    // An image narrower than the windows: each pixel a one-pixel block without the columns it
    // misses on either side.
    for (size_t ox = 0; ox < out_width; ++ox) {
      const size_t ix0 = ox * kStride - pad_left;  // wraps left of the image
      const size_t skip_left = ix0 < in_width ? 0 : 0 - ix0;
      const size_t end = ix0 + kSize;
      const size_t skip_right = end > in_width ? end - in_width : 0;
      const float* shifted[kInRows];
      rows_from(ix0 + skip_left, shifted);
      with_constant(skip_left, [&](auto left) {
        with_constant(skip_right, [&](auto right) {
          constexpr size_t kLeft = std::decay_t<decltype(left)>::value;
          constexpr size_t kRight = std::decay_t<decltype(right)>::value;
          if constexpr (kLeft + kRight < kSize) {
            block<Simd, kStride, kOutRows, 1, kLeft, kRight>(lanes, channels, shifted, w, StreamedTaps<Simd>{taps_begin},
                                                           out + ox * channels, out_stride, output);
          }
        });
      });
    }
    return;
  }
  using Taps = std::conditional_t<kRegisterTaps, RegisterTaps<Simd>, StreamedTaps<Simd>>;
  const Taps taps{taps_begin};
  const float* shifted[kInRows];
  // The pixels left of the interior, ceil(pad_left / stride) of them, as one block without
  // the pad_left columns left of the image (none of them reaches the right edge).
  if (interior_begin != 0) {
    rows_from(0, shifted);
    with_constant(pad_left, [&](auto left) {
      constexpr size_t kLeft = std::decay_t<decltype(left)>::value;
      if constexpr (kLeft != 0) {
        block<Simd, kStride, kOutRows, (kLeft + kStride - 1) / kStride, kLeft, 0>(lanes, channels, shifted, w, taps,
                                                                                out, out_stride, output);
      }
    });
  }
  // The interior in blocks of kPixels pixels while they last, then of half as many, down to one.
  size_t ox = interior_begin;
  const auto interior = [&](auto pixel_count, auto& self) -> void {
    constexpr size_t kBlock = decltype(pixel_count)::value;
    for (; ox + kBlock <= interior_end; ox += kBlock) {
      rows_from(ox * kStride - pad_left, shifted);
      block<Simd, kStride, kOutRows, kBlock, 0, 0>(lanes, channels, shifted, w, taps, out + ox * channels,
                                                   out_stride, output);
    }
    if constexpr (kBlock > 1) self(std::integral_constant<size_t, kBlock / 2>(), self);
  };
  interior(std::integral_constant<size_t, kPixels>(), interior);
  // The pixels right of the interior as one block without the columns right of the image: the
  // last pixel misses `overhang` (1 to 4), and ceil(overhang / stride) pixels miss some.
  if (interior_end != out_width) {
    const size_t ix0 = interior_end * kStride - pad_left;
    const size_t overhang = (out_width - 1) * kStride - pad_left + kSize - in_width;
    rows_from(ix0, shifted);
    with_constant(overhang, [&](auto right) {
      constexpr size_t kRight = std::decay_t<decltype(right)>::value;
      if constexpr (kRight != 0) {
        block<Simd, kStride, kOutRows, (kRight + kStride - 1) / kStride, 0, kRight>(
            lanes, channels, shifted, w, taps, out + interior_end * channels, out_stride, output);
      }
    });
  }
}

// The DwConv5x5Fn contract (csrc/kernels.h) for one stride and one number of output rows;
// blocks of kAccumulators / kOutRows pixels.
template <class Simd, size_t kStride, size_t kOutRows, size_t kAccumulators, bool kRegisterTaps, bool kHardSwish>
void rows_of(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
             const float* const* rows, const float* w, float* out, Clamp clamp) {
  constexpr size_t kCR = Simd::kLanes;
  constexpr size_t kInRows = (kOutRows - 1) * kStride + kSize;
  constexpr size_t kPixels = kAccumulators / kOutRows;
  // Interior columns: ox * stride - pad_left >= 0 and ox * stride - pad_left + 4 < in_width.
  size_t interior_end = in_width + pad_left >= kSize ? (in_width + pad_left - kSize) / kStride + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + kStride - 1) / kStride;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;
  const OutputStage<Simd, kHardSwish> output(clamp);
  const size_t out_stride = out_width * channels;
  const float* group[kInRows];
  size_t c = 0;
  for (; c + kCR <= channels; c += kCR) {
    for (size_t r = 0; r < kInRows; ++r) group[r] = rows[r] + c;
    group_rows<Simd, kStride, kOutRows, kPixels, kRegisterTaps>(
        typename Simd::Full{}, channels, out_width, in_width, pad_left, interior_begin, interior_end, group,
        w + c * (kTaps + 1), out + c, out_stride, output);
  }
  if (c != channels) {
    for (size_t r = 0; r < kInRows; ++r) group[r] = rows[r] + c;
    group_rows<Simd, kStride, kOutRows, kPixels, kRegisterTaps>(
        Simd::tail(channels - c), channels, out_width, in_width, pad_left, interior_begin, interior_end, group,
        w + c * (kTaps + 1), out + c, out_stride, output);
  }
}

template <class Simd, size_t kAccumulators, bool kRegisterTaps>
void dwconv5x5(size_t channels, size_t out_rows, size_t out_width, size_t in_width, size_t stride,
               size_t pad_left, const float* const* rows, const float* w, float* out, Clamp clamp) {
  with_hard_swish(clamp, [&](auto hard_swish) {
    constexpr bool kHardSwish = decltype(hard_swish)::value;
    const auto run = [&](auto stride_constant, auto out_rows_constant) {
      rows_of<Simd, decltype(stride_constant)::value, decltype(out_rows_constant)::value, kAccumulators, kRegisterTaps,
              kHardSwish>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
    };
    using One = std::integral_constant<size_t, 1>;
    using Two = std::integral_constant<size_t, 2>;
    if (stride == 1) {
      out_rows == 2 ? run(One(), Two()) : run(One(), One());
    } else {
      out_rows == 2 ? run(Two(), Two()) : run(Two(), One());
    }
  });
}

}  // namespace dwconv5x5
}  // namespace mnengine

