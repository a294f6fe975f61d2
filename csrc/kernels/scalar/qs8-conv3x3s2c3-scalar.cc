// qs8-conv3x3s2c3 scalar: the reference int8 first-layer convolution, one output channel at a time.
#include <cstring>

#include "../qs8-requantize.h"
#include "scalar.h"

namespace mnengine {

void qs8_conv3x3s2c3__scalar(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                             const int8_t* const* rows, const void* packed_w, int8_t* out,
                             int32_t input_zero_point, const Qs8Output& output) {
  // Per output channel: an int32 bias, 27 int8 taps, a float scale.
  constexpr size_t kGroupBytes = sizeof(int32_t) + 27 + sizeof(float);
  const auto* group = static_cast<const uint8_t*>(packed_w);
  for (size_t c = 0; c < channels; ++c, group += kGroupBytes) {
    int32_t bias;
    float scale;
    std::memcpy(&bias, group, sizeof(bias));
    const auto* taps = reinterpret_cast<const int8_t*>(group + sizeof(bias));
    std::memcpy(&scale, group + sizeof(bias) + 27, sizeof(scale));
    for (size_t ox = 0; ox < out_width; ++ox) {
      int32_t acc = bias;
      for (size_t ky = 0; ky < 3; ++ky) {
        for (size_t kx = 0; kx < 3; ++kx) {
          // Unsigned arithmetic: a column left of the image wraps to a huge value.
          const size_t ix = 2 * ox + kx - pad_left;
          for (size_t ci = 0; ci < 3; ++ci) {
            const int32_t x = ix < in_width ? rows[ky][ix * 3 + ci] : input_zero_point;
            acc += x * taps[(ky * 3 + kx) * 3 + ci];
          }
        }
      }
      out[ox * channels + c] = qs8_requantize(acc, scale, output);
    }
  }
}

}  // namespace mnengine
