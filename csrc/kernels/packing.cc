// Weight packing: done once when a model is loaded, into the layout the ISA's kernels read.
#include "kernels.h"

namespace mnengine {

AlignedBuffer pack_gemm_weights(size_t k, size_t n, size_t nr, const float* kernel,
                                const float* bias) {
  const size_t panels = divide_round_up(n, nr);
  AlignedBuffer packed(panels * (k + 1) * nr);  // zeroed: padding columns stay 0
  float* out = packed.data();
  for (size_t panel = 0; panel < panels; ++panel) {
    const size_t n0 = panel * nr;
    const size_t cols = n - n0 < nr ? n - n0 : nr;
    for (size_t j = 0; j < cols; ++j) out[j] = bias != nullptr ? bias[n0 + j] : 0.0f;
    out += nr;
    for (size_t kk = 0; kk < k; ++kk) {
      for (size_t j = 0; j < cols; ++j) out[j] = kernel[kk * n + n0 + j];
      out += nr;
    }
  }
  return packed;
}

AlignedBuffer pack_channel_group_weights(size_t channels, size_t taps, size_t cr,
                                         const float* kernel, const float* bias) {
  const size_t groups = divide_round_up(channels, cr);
  AlignedBuffer packed(groups * (taps + 1) * cr);
  float* out = packed.data();
  for (size_t group = 0; group < groups; ++group) {
    const size_t c0 = group * cr;
    const size_t count = channels - c0 < cr ? channels - c0 : cr;
    for (size_t j = 0; j < count; ++j) out[j] = bias != nullptr ? bias[c0 + j] : 0.0f;
    out += cr;
    for (size_t tap = 0; tap < taps; ++tap) {
      for (size_t j = 0; j < count; ++j) out[j] = kernel[tap * channels + c0 + j];
      out += cr;
    }
  }
  return packed;
}

}  // namespace mnengine
