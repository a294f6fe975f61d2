// Scalar reference of the small kernels: residual add, channel multiply, hard-swish, global
// pooling, softmax.
#include <cmath>

#include "scalar.h"

namespace mnengine {

void f32_vadd__scalar(size_t n, const float* a, const float* b, float* y, Clamp clamp) {
  for (size_t i = 0; i < n; ++i) y[i] = clamp_value(a[i] + b[i], clamp);
}

void f32_vmulc__scalar(size_t pixels, size_t channels, const float* x, const float* scale, float* y) {
  for (size_t p = 0; p < pixels; ++p, x += channels, y += channels)
    for (size_t c = 0; c < channels; ++c) y[c] = x[c] * scale[c];
}

void f32_vhswish__scalar(size_t n, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) y[i] = hard_swish_value(x[i]);
}

void f32_gavgpool__scalar(size_t pixels, size_t channels, const float* x, float* y) {
  const float scale = 1.0f / static_cast<float>(pixels);
  for (size_t c = 0; c < channels; ++c) y[c] = 0.0f;
  for (size_t p = 0; p < pixels; ++p, x += channels)
    for (size_t c = 0; c < channels; ++c) y[c] += x[c];
  for (size_t c = 0; c < channels; ++c) y[c] *= scale;
}

void f32_gmaxpool__scalar(size_t pixels, size_t channels, const float* x, float* y) {
  for (size_t c = 0; c < channels; ++c) y[c] = x[c];
  for (size_t p = 1; p < pixels; ++p) {
    x += channels;
    for (size_t c = 0; c < channels; ++c) y[c] = x[c] > y[c] ? x[c] : y[c];
  }
}

void f32_softmax__scalar(size_t n, const float* x, float* y) {
  float max = x[0];
  for (size_t i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    y[i] = std::exp(x[i] - max);
    sum += y[i];
  }
  const float scale = 1.0f / sum;
  for (size_t i = 0; i < n; ++i) y[i] *= scale;
}

}  // namespace mnengine
