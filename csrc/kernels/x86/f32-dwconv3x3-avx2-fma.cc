// f32-dwconv 3x3 avx2-fma: one or two output rows, 8 channels per ymm (CR = 8), stride 1 or 2, on the
// shared tiling of ../f32-dwconv3x3-tiled.h. Channel tails use maskload/maskstore.
#include "../f32-dwconv3x3-tiled.h"
#include "avx2_helpers.h"

namespace mnengine {
namespace {

struct Avx2 {
  using Vec = __m256;
  static constexpr size_t kLanes = 8;
  struct Full {
    Vec load(const float* p) const { return _mm256_loadu_ps(p); }
    void store(float* p, Vec v) const { _mm256_storeu_ps(p, v); }
  };
  struct Tail {
    __m256i mask;
    Vec load(const float* p) const { return _mm256_maskload_ps(p, mask); }
    void store(float* p, Vec v) const { _mm256_maskstore_ps(p, mask, v); }
  };
  static Tail tail(size_t count) { return Tail{avx2::tail_mask(count)}; }
  static Vec weights(const float* p) { return _mm256_load_ps(p); }
  static Vec dup(float x) { return _mm256_set1_ps(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return _mm256_fmadd_ps(x, w, acc); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return avx2::clamp(x, lo, hi); }
};

}  // namespace

void f32_dwconv3x3__avx2_fma(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                             size_t stride, size_t pad_left, const float* const* rows, const float* w,
                             float* out, Clamp clamp) {
  if (stride == 1) {
    dwconv3x3::dwconv3x3_rows<Avx2, 1>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  } else {
    dwconv3x3::dwconv3x3_rows<Avx2, 2>(channels, out_rows, out_width, in_width, pad_left, rows, w, out, clamp);
  }
}

}  // namespace mnengine
