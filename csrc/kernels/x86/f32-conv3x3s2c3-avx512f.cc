// f32-conv3x3s2c3 avx512f: 16 output channels per zmm (CR = 16) on the shared tiling of
// ../f32-conv3x3s2c3-tiled.h. Blocks of 2 groups x 12 pixels or 1 group x 24 pixels: 24
// accumulators, the block's weight vectors and one broadcast make 26 or 27 of the 32 zmm.
#include "../f32-conv3x3s2c3-tiled.h"
#include "avx512_helpers.h"

namespace mnengine {
namespace {

struct Tiling : avx512::Simd {
  static constexpr size_t kAccumulators = 24;
  static constexpr size_t kWideGroups = 2;
  static Vec broadcast(const float* p) { return _mm512_set1_ps(*p); }
};

}  // namespace

void f32_conv3x3s2c3__avx512f(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                              const float* const* rows, const float* w, float* out, Clamp clamp) {
  conv3x3s2c3::conv3x3s2c3_row<Tiling>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
