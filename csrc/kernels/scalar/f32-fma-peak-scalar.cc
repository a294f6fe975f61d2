// f32-fma-peak scalar: 8 independent multiply-add chains, to hide the operation latency.
#include "scalar.h"

namespace mnengine {

uint64_t f32_fma_peak__scalar(uint64_t iterations, float* sink) {
  constexpr int kChains = 8;
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = static_cast<float>(i);
  const float a = 0.999999f, b = 1e-7f;
  for (uint64_t it = 0; it < iterations; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * a + b;
  float sum = 0.0f;
  for (float v : acc) sum += v;
  *sink = sum;
  return iterations * kChains * 2;
}

}  // namespace mnengine
