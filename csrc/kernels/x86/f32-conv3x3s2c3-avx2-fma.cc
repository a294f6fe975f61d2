// f32-conv3x3s2c3 avx2-fma: 8 output channels per ymm (CR = 8) on the shared tiling of
// ../f32-conv3x3s2c3-tiled.h. Blocks of 2 groups x 6 pixels or 1 group x 12 pixels: 12
// accumulators, the block's weight vectors and one broadcast make 14 or 15 of the 16 ymm.
#include "../f32-conv3x3s2c3-tiled.h"
#include "avx2_helpers.h"

namespace mnengine {
namespace {

struct Tiling : avx2::Simd {
  static constexpr size_t kAccumulators = 12;
  static constexpr size_t kWideGroups = 2;
};

}  // namespace

void f32_conv3x3s2c3__avx2_fma(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                               const float* const* rows, const float* w, float* out, Clamp clamp) {
  conv3x3s2c3::conv3x3s2c3_row<Tiling>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
