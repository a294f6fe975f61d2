// f32-dwconv 5x5 neon: one or two output rows, 4 channels per q register (CR = 4), stride 1 or
// 2, on the shared tiling of ../f32-dwconv5x5-tiled.h. 25 taps in registers would leave the 32 q
// registers room for only 4 accumulators, too few to cover the FMA latency on two pipes: the
// blocks (8 accumulators: 1 row x 8 pixels, 2 x 4) load each tap from the packed weights in L1
// once and use it for all their pixels.
#include "../f32-dwconv5x5-tiled.h"
#include "neon.h"

namespace mnengine {

void f32_dwconv5x5__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const float* const* rows, const float* w,
                         float* out, Clamp clamp) {
  dwconv5x5::dwconv5x5<neon::Simd, /*kAccumulators=*/8, /*kRegisterTaps=*/false>(
      channels, out_rows, out_width, in_width, stride, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
