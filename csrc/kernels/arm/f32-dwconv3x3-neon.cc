// f32-dwconv 3x3 neon: one or two output rows, 4 channels per q register (CR = 4), stride 1 or
// 2, on the shared tiling of ../f32-dwconv3x3-tiled.h: 8 accumulators, the weights of a block
// and one input vector fit the 32 q registers with room to spare.
#include "../f32-dwconv3x3-tiled.h"
#include "neon.h"

namespace mnengine {
namespace {

struct Neon {
  using Vec = float32x4_t;
  static constexpr size_t kLanes = 4;
  struct Full {
    Vec load(const float* p) const { return vld1q_f32(p); }
    void store(float* p, Vec v) const { vst1q_f32(p, v); }
  };
  struct Tail {
    size_t count;
    Vec load(const float* p) const { return neon::load_partial(p, count); }
    void store(float* p, Vec v) const { neon::store_partial(p, v, count); }
  };
  static Tail tail(size_t count) { return Tail{count}; }
  static Vec weights(const float* p) { return vld1q_f32(p); }
  static Vec dup(float x) { return vdupq_n_f32(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return vfmaq_f32(acc, x, w); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return neon::clamp(x, lo, hi); }
};

}  // namespace

void f32_dwconv3x3__neon(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                         size_t stride, size_t pad_left, const float* const* rows, const float* w,
                         float* out, Clamp clamp) {
  if (stride == 1) {
    dwconv3x3::dwconv3x3_rows<Neon, 1>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  } else {
    dwconv3x3::dwconv3x3_rows<Neon, 2>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  }
}

}  // namespace mnengine
