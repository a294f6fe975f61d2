// qs8-dwconv 3x3 scalar: the reference int8 depthwise kernel, one channel at a time (CR = 1).
#include <cstring>

#include "../qs8-requantize.h"
#include "scalar.h"

namespace mnengine {

void qs8_dwconv3x3__scalar(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const int8_t* const* rows,
                           const void* packed_w, int8_t* out, int32_t input_zero_point,
                           const Qs8Output& output) {
  // Per channel: an int32 bias, 9 int8 taps, a float scale.
  constexpr size_t kGroupBytes = sizeof(int32_t) + 9 + sizeof(float);
  for (size_t oy = 0; oy < out_rows; ++oy, out += out_width * channels) {
    const int8_t* const* window = rows + oy * stride;  // the three input rows of output row oy
    const auto* group = static_cast<const uint8_t*>(packed_w);
    for (size_t c = 0; c < channels; ++c, group += kGroupBytes) {
      int32_t bias;
      float scale;
      std::memcpy(&bias, group, sizeof(bias));
      const auto* taps = reinterpret_cast<const int8_t*>(group + sizeof(bias));
      std::memcpy(&scale, group + sizeof(bias) + 9, sizeof(scale));
      for (size_t ox = 0; ox < out_width; ++ox) {
        int32_t acc = bias;
        for (size_t ky = 0; ky < 3; ++ky) {
          for (size_t kx = 0; kx < 3; ++kx) {
            // Unsigned arithmetic: a column left of the image wraps to a huge value.
            const size_t ix = ox * stride + kx - pad_left;
            const int32_t x = ix < in_width ? window[ky][ix * channels + c] : input_zero_point;
            acc += x * taps[ky * 3 + kx];
          }
        }
        out[ox * channels + c] = qs8_requantize(acc, scale, output);
      }
    }
  }
}

}  // namespace mnengine
