// f32-dwconv 3x3 neon: one or two output rows, 4 channels per q register (CR = 4), stride 1 or
// 2, on the shared tiling of ../f32-dwconv3x3-tiled.h: 8 accumulators, the weights of a block
// and one input vector fit the 32 q registers with room to spare.
#include "../f32-dwconv3x3-tiled.h"
#include "neon.h"

namespace mnengine {

void f32_dwconv3x3__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const float* const* rows, const float* w,
                         float* out, Clamp clamp) {
  if (stride == 1) {
    dwconv3x3::dwconv3x3_rows<neon::Simd, 1>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  } else {
    dwconv3x3::dwconv3x3_rows<neon::Simd, 2>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  }
}

}  // namespace mnengine
