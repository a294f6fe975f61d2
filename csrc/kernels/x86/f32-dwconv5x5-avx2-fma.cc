// f32-dwconv 5x5 avx2-fma: one or two output rows, 8 channels per ymm (CR = 8), stride 1 or 2,
// on the shared tiling of ../f32-dwconv5x5-tiled.h. 16 ymm registers cannot hold 25 taps: the
// blocks (8 accumulators: 1 row x 8 pixels, 2 x 4) read them from the packed weights in L1 as
// FMA memory operands. Channel tails use maskload/maskstore.
#include "../f32-dwconv5x5-tiled.h"
#include "avx2_helpers.h"

namespace mnengine {

void f32_dwconv5x5__avx2_fma(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                             size_t stride, size_t pad_left, const float* const* rows, const float* w,
                             float* out, Clamp clamp) {
  dwconv5x5::dwconv5x5<avx2::Simd, /*kAccumulators=*/8, /*kRegisterTaps=*/false>(
      channels, out_rows, out_width, in_width, stride, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
