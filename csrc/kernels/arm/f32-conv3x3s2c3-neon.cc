// f32-conv3x3s2c3 neon: 4 output channels per q register (CR = 4) on the shared tiling of
// ../f32-conv3x3s2c3-tiled.h. Blocks of 4 groups x 6 pixels down to 1 group x 24 pixels: 24
// accumulators, the block's weight vectors and one broadcast fit the 32 q registers.
#include "../f32-conv3x3s2c3-tiled.h"
#include "neon.h"

namespace mnengine {
namespace {

struct Tiling : neon::Simd {
  static constexpr size_t kAccumulators = 24;
  static constexpr size_t kWideGroups = 4;
};

}  // namespace

void f32_conv3x3s2c3__neon(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const float* const* rows, const float* w, float* out, Clamp clamp) {
  conv3x3s2c3::conv3x3s2c3_row<Tiling>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
