// f32-conv3x3s2c3 avx2-fma: 8 output channels per ymm (CR = 8) on the shared tiling of
// ../f32-conv3x3s2c3-tiled.h. Blocks of 2 groups x 6 pixels or 1 group x 12 pixels: 12
// accumulators, the block's weight vectors and one broadcast make 14 or 15 of the 16 ymm.
#include "../f32-conv3x3s2c3-tiled.h"
#include "avx2_helpers.h"

namespace mnengine {
namespace {

struct Avx2 {
  using Vec = __m256;
  static constexpr size_t kLanes = 8;
  static constexpr size_t kAccumulators = 12;
  static constexpr size_t kWideGroups = 2;
  struct Full {
    void store(float* p, Vec v) const { _mm256_storeu_ps(p, v); }
  };
  struct Tail {
    __m256i mask;
    void store(float* p, Vec v) const { _mm256_maskstore_ps(p, mask, v); }
  };
  static Tail tail(size_t count) { return Tail{avx2::tail_mask(count)}; }
  static Vec weights(const float* p) { return _mm256_load_ps(p); }
  static Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Vec dup(float x) { return _mm256_set1_ps(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return _mm256_fmadd_ps(x, w, acc); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return avx2::clamp(x, lo, hi); }
};

}  // namespace

void f32_conv3x3s2c3__avx2_fma(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                               const float* const* rows, const float* w, float* out, Clamp clamp) {
  conv3x3s2c3::conv3x3s2c3_row<Avx2>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
