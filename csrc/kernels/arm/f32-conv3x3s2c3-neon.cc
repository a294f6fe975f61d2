// f32-conv3x3s2c3 neon: 4 output channels per q register (CR = 4) on the shared tiling of
// ../f32-conv3x3s2c3-tiled.h. Blocks of 4 groups x 6 pixels down to 1 group x 24 pixels: 24
// accumulators, the block's weight vectors and one broadcast fit the 32 q registers.
#include "../f32-conv3x3s2c3-tiled.h"
#include "neon.h"

namespace mnengine {
namespace {

struct Neon {
  using Vec = float32x4_t;
  static constexpr size_t kLanes = 4;
  static constexpr size_t kAccumulators = 24;
  static constexpr size_t kWideGroups = 4;
  struct Full {
    void store(float* p, Vec v) const { vst1q_f32(p, v); }
  };
  struct Tail {
    size_t count;
    void store(float* p, Vec v) const { neon::store_partial(p, v, count); }
  };
  static Tail tail(size_t count) { return Tail{count}; }
  static Vec weights(const float* p) { return vld1q_f32(p); }
  static Vec broadcast(const float* p) { return vld1q_dup_f32(p); }
  static Vec dup(float x) { return vdupq_n_f32(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return vfmaq_f32(acc, x, w); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return neon::clamp(x, lo, hi); }
};

}  // namespace

void f32_conv3x3s2c3__neon(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                           const float* const* rows, const float* w, float* out, Clamp clamp) {
  conv3x3s2c3::conv3x3s2c3_row<Neon>(channels, out_width, in_width, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
