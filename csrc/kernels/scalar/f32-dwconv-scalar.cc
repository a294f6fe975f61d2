// f32-dwconv 3x3 and 5x5 scalar: the reference depthwise kernels, one channel at a time (CR = 1).
#include "scalar.h"

namespace mnengine {
namespace {

// A kSize x kSize depthwise window; weights per channel: [bias][kSize * kSize taps] (ky-major).
template <size_t kSize>
void dwconv_reference(size_t channels, size_t out_rows, size_t out_width, size_t in_width, size_t stride,
                      size_t pad_left, const float* const* rows, const float* w, float* out, Clamp clamp) {
  for (size_t oy = 0; oy < out_rows; ++oy, out += out_width * channels) {
    const float* const* window = rows + oy * stride;  // the kSize input rows of output row oy
    const float* weights = w;
    for (size_t c = 0; c < channels; ++c, weights += 1 + kSize * kSize) {
      for (size_t ox = 0; ox < out_width; ++ox) {
        float acc = weights[0];
        for (size_t ky = 0; ky < kSize; ++ky) {
          for (size_t kx = 0; kx < kSize; ++kx) {
            // Unsigned arithmetic: a column left of the image wraps to a huge value.
            const size_t ix = ox * stride + kx - pad_left;
            if (ix < in_width) acc += window[ky][ix * channels + c] * weights[1 + ky * kSize + kx];
          }
        }
        out[ox * channels + c] = output_value(acc, clamp);
      }
    }
  }
}

}  // namespace

void f32_dwconv3x3__scalar(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* w, float* out, Clamp clamp) {
  dwconv_reference<3>(channels, out_rows, out_width, in_width, stride, pad_left, rows, w, out, clamp);
}

void f32_dwconv5x5__scalar(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                           size_t stride, size_t pad_left, const float* const* rows,
                           const float* w, float* out, Clamp clamp) {
  dwconv_reference<5>(channels, out_rows, out_width, in_width, stride, pad_left, rows, w, out, clamp);
}

}  // namespace mnengine
