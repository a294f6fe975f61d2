// Operators: one layer each, sitting on the micro-kernels of a KernelSet. An operator owns
// its weights, packed once at construction into the layout its kernel reads, and splits
// its work into independent tasks the thread pool distributes.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "kernels.h"

namespace mnengine {

// Per-image shape of an NHWC activation.
struct Shape {
  size_t height;
  size_t width;
  size_t channels;
  size_t size() const { return height * width * channels; }
};

// Where a task reads and writes: whole-batch tensors, NHWC, contiguous; float32 or int8, as
// the operator's layer computes.
struct Tensors {
  size_t batch;
  const void* input0;
  const void* input1;  // second operand of Add or Multiply, else null
  void* output;

  template <class T>
  const T* in0() const { return static_cast<const T*>(input0); }
  template <class T>
  const T* in1() const { return static_cast<const T*>(input1); }
  template <class T>
  T* out() const { return static_cast<T*>(output); }
};

class Operator {
 public:
  virtual ~Operator() = default;
  virtual size_t task_count(size_t batch) const = 0;
  // `scratch` is this thread's private buffer of scratch_bytes() bytes, 64-byte aligned.
  virtual void run_task(size_t task, const Tensors& tensors, void* scratch) const = 0;
  virtual size_t scratch_bytes() const { return 0; }
};

// How an int8 tensor encodes real values: real = (q - zero_point) * scale.
struct Quantization {
  float scale;
  int32_t zero_point;
};

// A float32 convolution or dense layer's weights: the kernel (in the layout its layer says),
// the bias (may be null) and the fused activation's clamp.
struct F32Layer {
  const float* kernel;
  const float* bias;
  Clamp clamp;
};

// A quantized convolution or dense layer: int8 weights, int32 bias (may be null) at scale
// input.scale * weight_scale[c], and the quantization of its input and output. The fused
// activation's real-valued clamp becomes part of the int8 output range.
struct Qs8Layer {
  const int8_t* kernel;
  const int32_t* bias;
  const float* weight_scale;  // per output channel
  Quantization input;
  Quantization output;
  Clamp clamp;
};

// The int8 output range of `output` under a real-valued clamp: [max(-128, zero_point +
// round(min / scale)), min(127, zero_point + round(max / scale))], rounding to nearest even.
Qs8Output qs8_output(Quantization output, Clamp clamp);

// The parameters of an int8 add of a and b into `output`: each operand's scale over the
// output's, computed in double and rounded to float32.
Qs8AddParams qs8_add_params(Quantization a, Quantization b, Quantization output, Clamp clamp);

// The float32 requantization scale of each of `channels` output channels:
// float(double(input.scale) * weight_scale[c] / output.scale).
std::vector<float> qs8_requantization_scales(const Qs8Layer& layer, size_t channels);

struct Padding {
  size_t top, bottom, left, right;
};

// 1x1 convolution (rows = pixels) or dense layer (rows = images, k = flattened input):
// out[rows][n] = clamp(in[rows][k] * kernel[k][n] + bias).
std::unique_ptr<Operator> make_gemm(const KernelSet& kernels, size_t rows_per_image, size_t k,
                                    size_t n, const float* kernel, const float* bias,
                                    Clamp clamp, size_t threads);

// Full 3x3 convolution, kernel [3][3][in.channels][out_channels] (Keras HWIO).
std::unique_ptr<Operator> make_conv3x3(const KernelSet& kernels, Shape in, size_t out_channels,
                                       size_t stride, Padding padding, const float* kernel,
                                       const float* bias, Clamp clamp);

// Whether a full 3x3 convolution runs on the first-layer kernel (3x3, stride 2, RGB input).
inline bool is_first_conv(size_t in_channels, size_t stride) { return in_channels == 3 && stride == 2; }

// Depthwise convolution with a kernel_size x kernel_size window (3 or 5), kernel
// [kernel_size][kernel_size][channels].
std::unique_ptr<Operator> make_depthwise(const KernelSet& kernels, Shape in, size_t kernel_size,
                                         size_t stride, Padding padding, const float* kernel,
                                         const float* bias, Clamp clamp);

// A MobileNet block in one pass over its rows: [1x1 expand, or the network's first convolution]
// -> depthwise 3x3 -> [1x1 project] [+ block input], in float32 (Layer F32Layer, Residual
// Clamp) or int8 (Qs8Layer, Qs8AddParams: every layer int8, the add requantized). The tensors
// between its layers never leave the cache: each thread streams the rows of its band through a
// ring of expanded rows and a few depthwise output rows.
template <class Layer, class Residual>
struct BlockLayers {
  struct Pointwise {
    size_t out_channels;
    Layer layer;  // kernel [in][out]
  };
  struct FirstConv {  // 3x3, stride 2, 3 input channels (is_first_conv)
    size_t out_channels;
    Padding padding;
    Layer layer;  // kernel [3][3][3][out]
  };
  struct Depthwise {
    size_t stride;
    Padding padding;
    Layer layer;  // kernel [3][3][channels]
  };
  const Pointwise* expand;      // null: the depthwise reads the block input (or first_conv's)
  const FirstConv* first_conv;  // instead of expand: the rows come from the first convolution
  Depthwise depthwise;
  const Pointwise* project;  // null: the block outputs the depthwise result
  const Residual* residual;  // non-null: adds the block input (stride 1, same channels)
};
using FusedBlock = BlockLayers<F32Layer, Clamp>;
using Qs8FusedBlock = BlockLayers<Qs8Layer, Qs8AddParams>;
std::unique_ptr<Operator> make_fused_block(const KernelSet& kernels, Shape in,
                                           const FusedBlock& block, size_t threads);
std::unique_ptr<Operator> make_fused_block(const KernelSet& kernels, Shape in,
                                           const Qs8FusedBlock& block, size_t threads);

std::unique_ptr<Operator> make_add(const KernelSet& kernels, size_t size_per_image, Clamp clamp);

// out[p][c] = input0[p][c] * input1[c] over each image's in.height x in.width pixels: input1
// holds one 1 x 1 x in.channels gate per image (a squeeze-and-excitation block's).
std::unique_ptr<Operator> make_channel_multiply(const KernelSet& kernels, Shape in);

// Element-wise hard-swish, x * relu6(x + 3) / 6.
std::unique_ptr<Operator> make_hard_swish(const KernelSet& kernels, size_t size_per_image);

std::unique_ptr<Operator> make_global_pool(const KernelSet& kernels, Shape in, bool average);

std::unique_ptr<Operator> make_softmax(const KernelSet& kernels, size_t size_per_image);
std::unique_ptr<Operator> make_sigmoid(size_t size_per_image);

// The int8 layers, as their float counterparts above, on int8 tensors. A GEMM with
// `float_output` writes its outputs dequantized, in float32 (an int8 network's classifier).
std::unique_ptr<Operator> make_qs8_gemm(const KernelSet& kernels, size_t rows_per_image, size_t k,
                                        size_t n, const Qs8Layer& layer, size_t threads,
                                        bool float_output = false);
std::unique_ptr<Operator> make_qs8_conv3x3s2c3(const KernelSet& kernels, Shape in,
                                               size_t out_channels, Padding padding,
                                               const Qs8Layer& layer);
std::unique_ptr<Operator> make_qs8_depthwise3x3(const KernelSet& kernels, Shape in, size_t stride,
                                                Padding padding, const Qs8Layer& layer);
std::unique_ptr<Operator> make_qs8_add(const KernelSet& kernels, size_t size_per_image,
                                       Quantization a, Quantization b, Quantization output,
                                       Clamp clamp);
std::unique_ptr<Operator> make_qs8_global_pool(const KernelSet& kernels, Shape in, bool average,
                                               Quantization input, Quantization output);
// Where an int8 network meets float32: its input, and the float layers (softmax, sigmoid) or
// the output after its int8 layers.
std::unique_ptr<Operator> make_quantize(const KernelSet& kernels, size_t size_per_image,
                                        Quantization output);
std::unique_ptr<Operator> make_dequantize(const KernelSet& kernels, size_t size_per_image,
                                          Quantization input);

// Output extent of a window of `size` taps: (in + pad_before + pad_after - size) / stride + 1.
inline size_t window_output_size(size_t in, size_t size, size_t pad_before, size_t pad_after,
                                 size_t stride) {
  return (in + pad_before + pad_after - size) / stride + 1;
}

// Where a size x size window with a stride and padding falls over an input: the geometry of the
// window layers (3x3 full, first-layer and depthwise convolutions; 5x5 depthwise).
struct Window {
  Window(Shape in, size_t size, size_t stride, Padding padding, size_t out_channels)
      : in(in), size(size), stride(stride), padding(padding),
        out{window_output_size(in.height, size, padding.top, padding.bottom, stride),
            window_output_size(in.width, size, padding.left, padding.right, stride), out_channels} {}

  // The input row under kernel row `ky` of output row `oy`: in.height or more (the subtraction
  // wraps) where the kernel overhangs the top or bottom of the image.
  size_t input_row(size_t oy, size_t ky) const { return oy * stride + ky - padding.top; }

  // `count` consecutive input rows from the one under output row oy's first kernel row:
  // `input_row(iy)` for rows of the image, `zero_row` for those above or below it.
  template <class T, class InputRow>
  void gather_rows(size_t oy, size_t count, InputRow&& input_row, const T* zero_row,
                   const T** rows) const {
    for (size_t r = 0; r < count; ++r) {
      const size_t iy = this->input_row(oy, r);
      rows[r] = iy < in.height ? input_row(iy) : zero_row;
    }
  }

  Shape in;
  size_t size;  // taps along each axis
  size_t stride;
  Padding padding;
  Shape out;
};

}  // namespace mnengine
