// Weight packing: done once when a model is loaded, into the layout the ISA's kernels read.
#include <cstring>

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

namespace {

// Writes `value` at `out` (packed buffers hold int32 and float32 values at any 4-byte offset).
template <class T>
uint8_t* put(uint8_t* out, T value) {
  std::memcpy(out, &value, sizeof(value));
  return out + sizeof(value);
}

}  // namespace

ByteBuffer pack_qs8_gemm_weights(size_t k, size_t n, size_t nr, size_t kr, const int8_t* kernel,
                                 const int32_t* bias, const float* scale,
                                 int32_t input_zero_point, int32_t input_offset) {
  const size_t panels = divide_round_up(n, nr);
  const size_t k_blocks = divide_round_up(k, kr);
  const size_t panel_bytes = nr * (sizeof(int32_t) + k_blocks * kr + sizeof(float));
  ByteBuffer packed(panels * panel_bytes);  // zeroed: padding columns and k stay 0
  uint8_t* out = packed.data();
  for (size_t panel = 0; panel < panels; ++panel) {
    const size_t n0 = panel * nr;
    const size_t cols = n - n0 < nr ? n - n0 : nr;
    uint8_t* biases = out;
    for (size_t j = 0; j < nr; ++j) {
      int32_t value = 0;
      if (j < cols) {
        int32_t weight_sum = 0;
        for (size_t kk = 0; kk < k; ++kk) weight_sum += kernel[kk * n + n0 + j];
        value = (bias != nullptr ? bias[n0 + j] : 0) - (input_zero_point + input_offset) * weight_sum;
      }
      biases = put(biases, value);
    }
    auto* weights = reinterpret_cast<int8_t*>(out + nr * sizeof(int32_t));
    for (size_t block = 0; block < k_blocks; ++block) {
      for (size_t j = 0; j < cols; ++j) {
        for (size_t r = 0; r < kr; ++r) {
          const size_t kk = block * kr + r;
          if (kk < k) weights[(block * nr + j) * kr + r] = kernel[kk * n + n0 + j];
        }
      }
    }
    uint8_t* scales = out + nr * sizeof(int32_t) + k_blocks * kr * nr;
    for (size_t j = 0; j < nr; ++j) scales = put(scales, j < cols ? scale[n0 + j] : 0.0f);
    out += panel_bytes;
  }
  return packed;
}

ByteBuffer pack_qs8_channel_group_weights(size_t channels, size_t taps, size_t cr,
                                          const int8_t* kernel, const int32_t* bias,
                                          const float* scale, int32_t input_zero_point) {
  const size_t groups = divide_round_up(channels, cr);
  const size_t group_bytes = cr * (sizeof(int32_t) + taps + sizeof(float));
  ByteBuffer packed(groups * group_bytes);
  uint8_t* out = packed.data();
  for (size_t group = 0; group < groups; ++group) {
    const size_t c0 = group * cr;
    const size_t count = channels - c0 < cr ? channels - c0 : cr;
    uint8_t* biases = out;
    for (size_t j = 0; j < cr; ++j) {
      int32_t value = 0;
      if (j < count) {
        int32_t weight_sum = 0;
        for (size_t tap = 0; tap < taps; ++tap) weight_sum += kernel[tap * channels + c0 + j];
        value = (bias != nullptr ? bias[c0 + j] : 0) - input_zero_point * weight_sum;
      }
      biases = put(biases, value);
    }
    auto* weights = reinterpret_cast<int8_t*>(out + cr * sizeof(int32_t));
    for (size_t tap = 0; tap < taps; ++tap)
      for (size_t j = 0; j < count; ++j) weights[tap * cr + j] = kernel[tap * channels + c0 + j];
    uint8_t* scales = out + cr * (sizeof(int32_t) + taps);
    for (size_t j = 0; j < cr; ++j) scales = put(scales, j < count ? scale[c0 + j] : 0.0f);
    out += group_bytes;
  }
  return packed;
}

}  // namespace mnengine
