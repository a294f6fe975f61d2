// f32-dwconv 3x3 avx512f: one or two output rows, 16 channels per zmm (CR = 16), stride 1 or
// 2, on the shared tiling of ../f32-dwconv3x3-tiled.h. Channel tails use lane masks.
#include "../f32-dwconv3x3-tiled.h"
#include "avx512_helpers.h"

namespace mnengine {

void f32_dwconv3x3__avx512f(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                            size_t stride, size_t pad_left, const float* const* rows, const float* w,
                            float* out, Clamp clamp) {
  if (stride == 1) {
    dwconv3x3::dwconv3x3_rows<avx512::Simd, 1>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  } else {
    dwconv3x3::dwconv3x3_rows<avx512::Simd, 2>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  }
}

}  // namespace mnengine
