// f32-conv3x3s2c3 scalar: the reference first-layer convolution, one output channel at a time.
#include "scalar.h"

namespace mnengine {

void f32_conv3x3s2c3__scalar(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                             const float* const* rows, const float* w, float* out, Clamp clamp) {
  for (size_t c = 0; c < channels; ++c, w += 28) {
    for (size_t ox = 0; ox < out_width; ++ox) {
      float acc = w[0];
      for (size_t ky = 0; ky < 3; ++ky) {
        for (size_t kx = 0; kx < 3; ++kx) {
          // Unsigned arithmetic: a column left of the image wraps to a huge value.
          const size_t ix = 2 * ox + kx - pad_left;
          if (ix >= in_width) continue;
          for (size_t ci = 0; ci < 3; ++ci) acc += rows[ky][ix * 3 + ci] * w[1 + (ky * 3 + kx) * 3 + ci];
        }
      }
      out[ox * channels + c] = output_value(acc, clamp);
    }
  }
}

}  // namespace mnengine
