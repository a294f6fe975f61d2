// f32-conv3x3s2c3, tiled: the first convolution of a network on RGB input (3x3, stride 2, three
// input channels), shared by the SIMD instruction sets over a `Simd` description of one vector
// register of output channels, as f32-dwconv3x3-tiled.h is. Each ISA's kernel file defines its
// Simd and instantiates conv3x3s2c3_row.
//
// The general convolution (an IGEMM) gathers each output pixel's window through 9 pointers and
// spends 6 accumulators on 27 multiply-adds per tile: with 3 input channels its tiles are all
// set-up and latency. Here the input offsets of a block of pixels are constants (pixel p, tap
// (ky, kx, ci) reads row ky at (2p + kx) * 3 + ci), so a block is straight-line code: per tap,
// one weight vector per channel group and one broadcast per pixel feed groups x pixels
// independent accumulators, enough to cover the FMA latency. Blocks are kGroups channel groups
// by kAccumulators / kGroups pixels, then half the groups and twice the pixels, down to one
// group (narrow layers such as 8 channels get the most pixels). Output pixels whose window
// overhangs the left or right edge run a per-tap loop that skips the missing columns.
//
// Simd provides: Vec; kLanes (output channels per vector, the kernel's CR); kAccumulators and
// kWideGroups (the widest block); Full and Tail lane sets with store(p, v) (Tail covers the
// first `count` < kLanes channels; Simd::tail(count) makes one); weights(p) (an aligned load of
// packed weights); broadcast(p) (one input value in every lane); dup(x); fma(acc, x, w) =
// acc + x * w; and what f32-output-stage.h needs (clamp, hard_swish).
#pragma once

#include <cstddef>

#include "../kernels.h"
#include "f32-output-stage.h"
#include "unroll.h"

namespace mnengine {
namespace conv3x3s2c3 {

constexpr size_t kTaps = 27;

// kPixels output pixels two apart (ox, ox + 2, ...), all windows inside the image, by kGroups
// channel groups. Pixels two apart have windows that share no input column: adjacent pixels
// share one, and the compiler then keeps that column's broadcasts alive from one pixel's taps
// to the other's, which runs out of registers. `x[ky]` points at the first input column of the
// block in row ky, `w` at the first group's packed [bias][27 taps] weights (groups 28 * kLanes
// floats apart), `out` at the first pixel's first channel (pixels `channels` floats apart).
template <class Simd, size_t kGroups, size_t kPixels, class Lanes, class Output>
inline void block(Lanes lanes, const float* const* x, const float* w, float* out, size_t channels,
                  const Output& output) {
  using Vec = typename Simd::Vec;
  constexpr size_t kCR = Simd::kLanes;
  Vec acc[kGroups][kPixels];
  MNENGINE_UNROLL(32)
  for (size_t g = 0; g < kGroups; ++g) {
    const Vec bias = Simd::weights(w + g * (kTaps + 1) * kCR);
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) acc[g][p] = bias;
  }
  MNENGINE_UNROLL(32)
  for (size_t tap = 0; tap < kTaps; ++tap) {
    const size_t ky = tap / 9, kx = tap / 3 % 3, ci = tap % 3;
    Vec wv[kGroups];
    MNENGINE_UNROLL(32)
    for (size_t g = 0; g < kGroups; ++g) wv[g] = Simd::weights(w + g * (kTaps + 1) * kCR + (1 + tap) * kCR);
    MNENGINE_UNROLL(32)
    for (size_t p = 0; p < kPixels; ++p) {
      const Vec v = Simd::broadcast(x[ky] + (4 * p + kx) * 3 + ci);
      MNENGINE_UNROLL(32)
      for (size_t g = 0; g < kGroups; ++g) acc[g][p] = Simd::fma(acc[g][p], v, wv[g]);
    }
  }
  MNENGINE_UNROLL(32)
  for (size_t p = 0; p < kPixels; ++p) {
    MNENGINE_UNROLL(32)
    for (size_t g = 0; g < kGroups; ++g) {
      const Vec y = output(acc[g][p]);
      if (g + 1 < kGroups) {
        typename Simd::Full().store(out + 2 * p * channels + g * kCR, y);
      } else {
        lanes.store(out + 2 * p * channels + g * kCR, y);
      }
    }
  }
}

// One output row: the arguments of Conv3x3s2c3Fn, the row's interior pixels and its output
// stage (an OutputStage<Simd, ...>).
template <class Output>
struct Row {
  size_t channels, out_width, in_width, pad_left;
  size_t interior_begin, interior_end;  // pixels whose window lies inside the image
  const float* const* rows;
  const float* w;
  float* out;
  Output output;
};

// Interior pixels [ox, interior_end) of kGroups groups (`w`, `out` at the first group): runs of
// 2 * kPixels as two blocks (even and odd pixels), then halves, then single pixels.
template <class Simd, size_t kGroups, size_t kPixels, class Lanes, class Output>
inline void interior(Lanes lanes, const Row<Output>& row, size_t ox, const float* w, float* out) {
  constexpr size_t kRun = kPixels > 1 ? 2 * kPixels : 1;
  for (; ox + kRun <= row.interior_end; ox += kRun) {
    for (size_t first = ox; first < ox + (kRun > 1 ? 2 : 1); ++first) {
      const size_t ix0 = 2 * first - row.pad_left;
      const float* x[3] = {row.rows[0] + ix0 * 3, row.rows[1] + ix0 * 3, row.rows[2] + ix0 * 3};
      block<Simd, kGroups, kPixels>(lanes, x, w, out + first * row.channels, row.channels, row.output);
    }
  }
  if constexpr (kPixels > 1) interior<Simd, kGroups, kPixels / 2>(lanes, row, ox, w, out);
}

// One group of output pixel ox whose window overhangs an edge: each column is tested.
template <class Simd, class Lanes, class Output>
inline void border_pixel(Lanes lanes, const Row<Output>& row, size_t ox, const float* w, float* out) {
  constexpr size_t kCR = Simd::kLanes;
  typename Simd::Vec acc = Simd::weights(w);
  for (size_t kx = 0; kx < 3; ++kx) {
    const size_t ix = 2 * ox + kx - row.pad_left;  // wraps to huge left of the image
    if (ix >= row.in_width) continue;
    for (size_t ky = 0; ky < 3; ++ky) {
      for (size_t ci = 0; ci < 3; ++ci) {
        acc = Simd::fma(acc, Simd::broadcast(row.rows[ky] + ix * 3 + ci),
                        Simd::weights(w + (1 + (ky * 3 + kx) * 3 + ci) * kCR));
      }
    }
  }
  lanes.store(out + ox * row.channels, row.output(acc));
}

// Every pixel of kGroups groups from channel c, the last group stored through `lanes`.
template <class Simd, size_t kGroups, class Lanes, class Output>
inline void chunk(Lanes lanes, const Row<Output>& row, size_t c) {
  constexpr size_t kCR = Simd::kLanes, kGroupFloats = (kTaps + 1) * kCR;
  const float* w = row.w + c / kCR * kGroupFloats;
  float* out = row.out + c;
  const auto border = [&](size_t ox) {
    for (size_t g = 0; g + 1 < kGroups; ++g)
      border_pixel<Simd>(typename Simd::Full(), row, ox, w + g * kGroupFloats, out + g * kCR);
    border_pixel<Simd>(lanes, row, ox, w + (kGroups - 1) * kGroupFloats, out + (kGroups - 1) * kCR);
  };
  for (size_t ox = 0; ox < row.interior_begin; ++ox) border(ox);
  interior<Simd, kGroups, Simd::kAccumulators / kGroups>(lanes, row, row.interior_begin, w, out);
  for (size_t ox = row.interior_end; ox < row.out_width; ++ox) border(ox);
}

// Channel groups from `c` on, kGroups at a time while they last, then fewer (halving), then
// the channel tail.
template <class Simd, size_t kGroups, class Output>
inline void groups_from(const Row<Output>& row, size_t c) {
  constexpr size_t kCR = Simd::kLanes;
  for (; c + kGroups * kCR <= row.channels; c += kGroups * kCR) chunk<Simd, kGroups>(typename Simd::Full(), row, c);
  if constexpr (kGroups > 1) {
    groups_from<Simd, kGroups / 2>(row, c);
  } else if (c != row.channels) {
    chunk<Simd, 1>(Simd::tail(row.channels - c), row, c);
  }
}

// The Conv3x3s2c3Fn contract (csrc/kernels.h).
template <class Simd>
void conv3x3s2c3_row(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                     const float* const* rows, const float* w, float* out, Clamp clamp) {
  // Interior pixels: 2 * ox - pad_left >= 0 and 2 * ox - pad_left + 2 < in_width.
  size_t interior_end = in_width + pad_left >= 3 ? (in_width + pad_left - 3) / 2 + 1 : 0;
  interior_end = interior_end < out_width ? interior_end : out_width;
  size_t interior_begin = (pad_left + 1) / 2;
  interior_begin = interior_begin < interior_end ? interior_begin : interior_end;
  with_hard_swish(clamp, [&](auto hard_swish) {
    using Output = OutputStage<Simd, decltype(hard_swish)::value>;
    const Row<Output> row{channels, out_width, in_width, pad_left, interior_begin, interior_end,
                          rows, w, out, Output(clamp)};
    groups_from<Simd, Simd::kWideGroups>(row, 0);
  });
}

}  // namespace conv3x3s2c3
}  // namespace mnengine

