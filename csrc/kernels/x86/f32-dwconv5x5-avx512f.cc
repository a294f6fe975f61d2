// f32-dwconv 5x5 avx512f: one or two output rows, 16 channels per zmm (CR = 16), stride 1 or
// 2, on the shared tiling of ../f32-dwconv5x5-tiled.h. A channel group's 25 taps stay in zmm
// registers for the whole row sweep; blocks of 6 accumulators (1 row x 6 pixels, 2 x 3) and
// the input vector take the other 7 of the 32. Channel tails use lane masks.
#include "../f32-dwconv5x5-tiled.h"
#include "avx512_helpers.h"

namespace mnengine {

void f32_dwconv5x5__avx512f(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                            size_t stride, size_t pad_left, const float* const* rows, const float* w,
                            float* out, Clamp clamp) {
  dwconv5x5::dwconv5x5<avx512::Simd, /*kAccumulators=*/6, /*kRegisterTaps=*/true>(
      channels, out_rows, out_width, in_width, stride, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
