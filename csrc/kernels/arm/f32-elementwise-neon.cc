// Small NEON kernels: residual add with clamp, channel multiply, hard-swish, global average and
// max pooling.
#include "neon.h"

namespace mnengine {

void f32_vadd__neon(size_t n, const float* a, const float* b, float* y, Clamp clamp) {
  const float32x4_t vmin = vdupq_n_f32(clamp.min);
  const float32x4_t vmax = vdupq_n_f32(clamp.max);
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32(y + i, neon::clamp(vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)), vmin, vmax));
  if (i != n) {
    const float32x4_t sum = vaddq_f32(neon::load_partial(a + i, n - i), neon::load_partial(b + i, n - i));
    neon::store_partial(y + i, neon::clamp(sum, vmin, vmax), n - i);
  }
}

void f32_vmulc__neon(size_t pixels, size_t channels, const float* x, const float* scale, float* y) {
  for (size_t p = 0; p < pixels; ++p, x += channels, y += channels) {
    size_t c = 0;
    for (; c + 4 <= channels; c += 4) vst1q_f32(y + c, vmulq_f32(vld1q_f32(x + c), vld1q_f32(scale + c)));
    if (c != channels) {
      const size_t count = channels - c;
      neon::store_partial(y + c, vmulq_f32(neon::load_partial(x + c, count), neon::load_partial(scale + c, count)), count);
    }
  }
}

void f32_vhswish__neon(size_t n, const float* x, float* y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, neon::hard_swish(vld1q_f32(x + i)));
  if (i != n) neon::store_partial(y + i, neon::hard_swish(neon::load_partial(x + i, n - i)), n - i);
}

void f32_gavgpool__neon(size_t pixels, size_t channels, const float* x, float* y) {
  const float32x4_t scale = vdupq_n_f32(1.0f / static_cast<float>(pixels));
  size_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (size_t p = 0; p < pixels; ++p) sum = vaddq_f32(sum, vld1q_f32(x + p * channels + c));
    vst1q_f32(y + c, vmulq_f32(sum, scale));
  }
  if (c != channels) {
    const size_t count = channels - c;
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (size_t p = 0; p < pixels; ++p) sum = vaddq_f32(sum, neon::load_partial(x + p * channels + c, count));
    neon::store_partial(y + c, vmulq_f32(sum, scale), count);
  }
}

// max = x > max ? x : max, lane by lane: the scalar reference's choice when a NaN comes.
static inline float32x4_t running_max(float32x4_t max, float32x4_t x) {
  return vbslq_f32(vcgtq_f32(x, max), x, max);
}

void f32_gmaxpool__neon(size_t pixels, size_t channels, const float* x, float* y) {
  size_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    float32x4_t max = vld1q_f32(x + c);
    for (size_t p = 1; p < pixels; ++p) max = running_max(max, vld1q_f32(x + p * channels + c));
    vst1q_f32(y + c, max);
  }
  if (c != channels) {
    const size_t count = channels - c;
    float32x4_t max = neon::load_partial(x + c, count);
    for (size_t p = 1; p < pixels; ++p) max = running_max(max, neon::load_partial(x + p * channels + c, count));
    neon::store_partial(y + c, max, count);
  }
}

}  // namespace mnengine
