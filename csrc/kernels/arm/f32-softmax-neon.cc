// f32-softmax neon: max, then exp(x - max) and its sum, then scale by 1 / sum. exp uses the
// same Cephes reduction and polynomial as the AVX2 kernel (within 2 ulp of expf); the last
// n % 4 values go through the scalar expf.
#include <cmath>

#include "neon.h"

namespace mnengine {
namespace {

inline float32x4_t exp_nonpositive(float32x4_t x) {
  // Below -87.3 e^x is under FLT_MIN: clamp there (results flush to ~0, as softmax needs).
  x = vmaxq_f32(x, vdupq_n_f32(-87.3f));
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  // r = x - n ln2, with ln2 split in two so that n * ln2_high is exact.
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  const int32x4_t exponent = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(exponent));
}

}  // namespace

void f32_softmax__neon(size_t n, const float* x, float* y) {
  const size_t full = n / 4 * 4;
  float32x4_t vmax = vdupq_n_f32(-__builtin_inff());
  for (size_t i = 0; i < full; i += 4) vmax = vmaxq_f32(vmax, vld1q_f32(x + i));
  float max = vmaxvq_f32(vmax);
  for (size_t i = full; i < n; ++i) max = x[i] > max ? x[i] : max;

  const float32x4_t vmax_all = vdupq_n_f32(max);
  float32x4_t vsum = vdupq_n_f32(0.0f);
  for (size_t i = 0; i < full; i += 4) {
    const float32x4_t e = exp_nonpositive(vsubq_f32(vld1q_f32(x + i), vmax_all));
    vst1q_f32(y + i, e);
    vsum = vaddq_f32(vsum, e);
  }
  float sum = vaddvq_f32(vsum);
  for (size_t i = full; i < n; ++i) {
    y[i] = std::exp(x[i] - max);
    sum += y[i];
  }
  const float scale = 1.0f / sum;
  for (size_t i = 0; i < full; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(y + i), scale));
  for (size_t i = full; i < n; ++i) y[i] *= scale;
}

}  // namespace mnengine
