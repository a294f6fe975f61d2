// Scalar reference of the small qs8 kernels: residual add, global pooling, quantize and
// dequantize at the network's edges, and the int8 dot-product peak.
#include "../qs8-requantize.h"
#include "scalar.h"

namespace mnengine {

void qs8_vadd__scalar(size_t n, const int8_t* a, const int8_t* b, int8_t* y, const Qs8AddParams& p) {
  for (size_t i = 0; i < n; ++i) {
    const float va = static_cast<float>(a[i] - p.a_zero_point) * p.a_scale;
    const float vb = static_cast<float>(b[i] - p.b_zero_point) * p.b_scale;
    y[i] = qs8_requantize_float(va + vb, p.output);
  }
}

void qs8_gavgpool__scalar(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                          int32_t input_zero_point, float scale, const Qs8Output& output) {
  const int32_t bias = -static_cast<int32_t>(pixels) * input_zero_point;
  for (size_t c = 0; c < channels; ++c) {
    int32_t acc = bias;
    for (size_t p = 0; p < pixels; ++p) acc += x[p * channels + c];
    y[c] = qs8_requantize(acc, scale, output);
  }
}

void qs8_gmaxpool__scalar(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                          int32_t input_zero_point, float scale, const Qs8Output& output) {
  for (size_t c = 0; c < channels; ++c) {
    int32_t max = x[c];
    for (size_t p = 1; p < pixels; ++p) max = x[p * channels + c] > max ? x[p * channels + c] : max;
    y[c] = qs8_requantize(max - input_zero_point, scale, output);
  }
}

void qs8_quantize__scalar(size_t n, const float* x, int8_t* y, float inv_scale, const Qs8Output& output) {
  for (size_t i = 0; i < n; ++i) y[i] = qs8_requantize_float(x[i] * inv_scale, output);
}

void qs8_dequantize__scalar(size_t n, const int8_t* x, float* y, int32_t zero_point, float scale) {
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] - zero_point) * scale;
}

uint64_t qs8_dot_peak__scalar(uint64_t iterations, int32_t* sink) {
  constexpr int kChains = 8;
  uint32_t acc[kChains] = {};  // the sums wrap (unsigned: defined) over long runs
  int8_t a = 3, b = -5;
  for (uint64_t it = 0; it < iterations; ++it) {
    for (int i = 0; i < kChains; ++i) acc[i] += static_cast<uint32_t>(a * b);
    a = static_cast<int8_t>(a ^ 1);  // keeps the compiler from folding the loop into a product
  }
  uint32_t sum = 0;
  for (uint32_t v : acc) sum += v;
  *sink = static_cast<int32_t>(sum);
  return iterations * kChains;
}

}  // namespace mnengine
