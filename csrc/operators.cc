#include "operators.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "gemm_operator.h"
#include "packed_layers.h"

namespace mnengine {
namespace {

// Elements per task of element-wise operators: large enough to amortise the dispatch.
constexpr size_t kElementwiseChunk = 16 * 1024;

constexpr float kInfinity = std::numeric_limits<float>::infinity();

// The largest gemm_mr of any kernel set: sizes the IGEMM pointer arrays on the stack.
constexpr size_t kMaxGemmRows = 8;

// Full 3x3 convolution as an IGEMM: each output pixel's window is three runs of 3 x C_in
// adjacent input values (one per kernel row), multiplied in place. Only windows that
// overhang the left or right edge are assembled, zero-padded, in scratch; rows above or
// below the image point at a zero run. Each task computes one output row.
class Conv3x3Operator final : public Operator {
 public:
  Conv3x3Operator(const KernelSet& kernels, Shape in, size_t out_channels, size_t stride,
                  Padding padding, const float* kernel, const float* bias, Clamp clamp)
      : kernels_(kernels), window_(in, 3, stride, padding, out_channels), run_(3 * in.channels),
        packed_(pack_gemm_weights(3 * run_, out_channels, kernels.gemm_nr, kernel, bias)),
        zero_run_(run_), clamp_(clamp) {
    if (kernels.gemm_mr > kMaxGemmRows) throw std::logic_error("gemm_mr exceeds kMaxGemmRows");
    for (size_t ox = 0; ox < window_.out.width; ++ox) {
      const size_t ix0 = ox * stride - padding.left;  // wraps left of the image
      window_inside_.push_back(ix0 < in.width && ix0 + 2 < in.width);
      border_columns_ += window_inside_.back() ? 0 : 1;
    }
  }

  size_t task_count(size_t batch) const override { return batch * window_.out.height; }
  size_t scratch_bytes() const override { return border_columns_ * 3 * run_ * sizeof(float); }

  void run_task(size_t task, const Tensors& tensors, void* scratch) const override {
    const Shape in_shape = window_.in, out_shape = window_.out;
    const size_t image = task / out_shape.height, oy = task % out_shape.height;
    const float* in = tensors.in0<float>() + image * in_shape.size();
    float* out = tensors.out<float>() + (image * out_shape.height + oy) * out_shape.width * out_shape.channels;
    const size_t mr = kernels_.gemm_mr, c = in_shape.channels;
    float* patch = static_cast<float*>(scratch);
    for (size_t ox0 = 0; ox0 < out_shape.width; ox0 += mr) {
      const size_t rows = std::min(mr, out_shape.width - ox0);
      const float* a[3 * kMaxGemmRows];
      for (size_t ky = 0; ky < 3; ++ky) {
        const size_t iy = window_.input_row(oy, ky);
        const float** runs = a + ky * rows;
        if (iy >= in_shape.height) {
          for (size_t i = 0; i < rows; ++i) runs[i] = zero_run_.data();
          continue;
        }
        const float* row = in + iy * in_shape.width * c;
        for (size_t i = 0; i < rows; ++i) {
          const size_t ox = ox0 + i;
          const size_t ix0 = ox * window_.stride - window_.padding.left;  // wraps left of the image
          if (window_inside_[ox]) {
            runs[i] = row + ix0 * c;
            continue;
          }
          for (size_t kx = 0; kx < 3; ++kx) {
            const size_t ix = ix0 + kx;
            for (size_t j = 0; j < c; ++j) patch[kx * c + j] = ix < in_shape.width ? row[ix * c + j] : 0.0f;
          }
          runs[i] = patch;
          patch += run_;
        }
      }
      kernels_.igemm(rows, out_shape.channels, run_, 3, a, packed_.data(), out + ox0 * out_shape.channels,
                     out_shape.channels, clamp_);
    }
  }

 private:
  const KernelSet& kernels_;
  Window window_;
  size_t run_;  // floats in one kernel row of a window: 3 pixels x C_in
  AlignedBuffer packed_;
  AlignedBuffer zero_run_;
  Clamp clamp_;
  std::vector<bool> window_inside_;  // per output column: all 3 input columns in the image
  size_t border_columns_ = 0;
};

// The first layer of a network on RGB input, 3x3 with stride 2 over 3 channels, on its own
// kernel (see f32-conv3x3s2c3-tiled.h), float32 or int8 (PackedConv3x3s2c3, PackedQs8Conv3x3s2c3).
// Each task computes one output row.
template <class Packed>
class Conv3x3s2c3Operator final : public Operator {
 public:
  template <class Layer>
  explicit Conv3x3s2c3Operator(const KernelSet& kernels, Shape in, size_t out_channels, Padding padding,
                               const Layer& layer)
      : conv_(kernels, in, out_channels, padding, layer) {}

  size_t task_count(size_t batch) const override { return batch * conv_.output().height; }

  void run_task(size_t task, const Tensors& tensors, void* /*scratch*/) const override {
    using T = typename Packed::Element;
    const Shape in = conv_.input(), out = conv_.output();
    const size_t image = task / out.height, oy = task % out.height;
    const T* x = tensors.in0<T>() + image * in.size();
    conv_.run_row(oy, [&](size_t iy) { return x + iy * in.width * 3; },
                  tensors.out<T>() + (image * out.height + oy) * out.width * out.channels);
  }

 private:
  Packed conv_;
};

// A depthwise layer, float32 (3x3 or 5x5, PackedDepthwise) or int8 (3x3, PackedQs8Depthwise).
template <class Packed>
class DepthwiseOperator final : public Operator {
 public:
  template <class Layer>
  DepthwiseOperator(const KernelSet& kernels, Shape in, size_t kernel_size, size_t stride, Padding padding,
                    const Layer& layer)
      : depthwise_(kernels, in, kernel_size, stride, padding, layer) {}

  // A task is a pair of output rows (the kernel's unit), the last one alone if odd.
  size_t task_count(size_t batch) const override { return batch * pairs(); }

  void run_task(size_t task, const Tensors& tensors, void* /*scratch*/) const override {
    using T = typename Packed::Element;
    const Shape in = depthwise_.input(), out = depthwise_.output();
    const size_t image = task / pairs(), oy = task % pairs() * 2;
    const T* x = tensors.in0<T>() + image * in.size();
    depthwise_.run_rows(oy, std::min<size_t>(2, out.height - oy),
                        [&](size_t iy) { return x + iy * in.width * in.channels; },
                        tensors.out<T>() + (image * out.height + oy) * out.width * out.channels);
  }

 private:
  size_t pairs() const { return divide_round_up(depthwise_.output().height, 2); }

  Packed depthwise_;
};

// Runs `apply(begin, count)` over chunks of an element-wise operation's whole batch.
template <class Apply>
class ElementwiseOperator final : public Operator {
 public:
  ElementwiseOperator(size_t size_per_image, Apply apply) : size_per_image_(size_per_image), apply_(apply) {}

  size_t task_count(size_t batch) const override {
    return divide_round_up(batch * size_per_image_, kElementwiseChunk);
  }

  void run_task(size_t task, const Tensors& tensors, void* /*scratch*/) const override {
    const size_t begin = task * kElementwiseChunk;
    apply_(tensors, begin, std::min(kElementwiseChunk, tensors.batch * size_per_image_ - begin));
  }

 private:
  size_t size_per_image_;
  Apply apply_;
};

template <class Apply>
std::unique_ptr<Operator> make_elementwise(size_t size_per_image, Apply apply) {
  return std::make_unique<ElementwiseOperator<Apply>>(size_per_image, apply);
}

// Each image's pixels times its gate, in tasks of whole pixels of about kElementwiseChunk values.
class ChannelMultiplyOperator final : public Operator {
 public:
  ChannelMultiplyOperator(const KernelSet& kernels, Shape in)
      : in_(in), vmulc_(kernels.vmulc), pixels_per_task_(std::max<size_t>(1, kElementwiseChunk / in.channels)),
        tasks_per_image_(divide_round_up(in.height * in.width, pixels_per_task_)) {}

  size_t task_count(size_t batch) const override { return batch * tasks_per_image_; }

  void run_task(size_t task, const Tensors& tensors, void* /*scratch*/) const override {
    const size_t image = task / tasks_per_image_;
    const size_t first = task % tasks_per_image_ * pixels_per_task_;
    const size_t pixels = std::min(pixels_per_task_, in_.height * in_.width - first);
    const size_t offset = image * in_.size() + first * in_.channels;
    vmulc_(pixels, in_.channels, tensors.in0<float>() + offset, tensors.in1<float>() + image * in_.channels,
           tensors.out<float>() + offset);
  }

 private:
  Shape in_;
  VMulCFn vmulc_;
  size_t pixels_per_task_;
  size_t tasks_per_image_;
};

class GlobalPoolOperator final : public Operator {
 public:
  GlobalPoolOperator(const KernelSet& kernels, Shape in, bool average)
      : in_(in), pool_(average ? kernels.global_avg_pool : kernels.global_max_pool) {}

  size_t task_count(size_t batch) const override { return batch; }

  void run_task(size_t image, const Tensors& tensors, void* /*scratch*/) const override {
    pool_(in_.height * in_.width, in_.channels, tensors.in0<float>() + image * in_.size(),
          tensors.out<float>() + image * in_.channels);
  }

 private:
  Shape in_;
  GlobalPoolFn pool_;
};

// Global average or max pooling of int8 images, requantized to the output's quantization.
class Qs8GlobalPoolOperator final : public Operator {
 public:
  Qs8GlobalPoolOperator(const KernelSet& kernels, Shape in, bool average, Quantization input,
                        Quantization output)
      : in_(in), pool_(average ? kernels.qs8.global_avg_pool : kernels.qs8.global_max_pool),
        input_zero_point_(input.zero_point),
        scale_(static_cast<float>(static_cast<double>(input.scale) /
                                  (static_cast<double>(output.scale) * (average ? in.height * in.width : 1)))),
        output_(qs8_output(output, {-kInfinity, kInfinity})) {}

  size_t task_count(size_t batch) const override { return batch; }

  void run_task(size_t image, const Tensors& tensors, void* /*scratch*/) const override {
    pool_(in_.height * in_.width, in_.channels, tensors.in0<int8_t>() + image * in_.size(),
          tensors.out<int8_t>() + image * in_.channels, input_zero_point_, scale_, output_);
  }

 private:
  Shape in_;
  Qs8GlobalPoolFn pool_;
  int32_t input_zero_point_;
  float scale_;
  Qs8Output output_;
};

class SoftmaxOperator final : public Operator {
 public:
  SoftmaxOperator(const KernelSet& kernels, size_t size_per_image)
      : softmax_(kernels.softmax), size_per_image_(size_per_image) {}

  size_t task_count(size_t batch) const override { return batch; }

  void run_task(size_t image, const Tensors& tensors, void* /*scratch*/) const override {
    const size_t offset = image * size_per_image_;
    softmax_(size_per_image_, tensors.in0<float>() + offset, tensors.out<float>() + offset);
  }

 private:
  SoftmaxFn softmax_;
  size_t size_per_image_;
};

// The logistic function on a classifier's outputs: a few thousand values at most per image,
// so one portable loop serves every instruction set.
class SigmoidOperator final : public Operator {
 public:
  explicit SigmoidOperator(size_t size_per_image) : size_per_image_(size_per_image) {}

  size_t task_count(size_t batch) const override { return batch; }

  void run_task(size_t image, const Tensors& tensors, void* /*scratch*/) const override {
    const size_t offset = image * size_per_image_;
    const float* x = tensors.in0<float>() + offset;
    float* y = tensors.out<float>() + offset;
    for (size_t i = 0; i < size_per_image_; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
  }

 private:
  size_t size_per_image_;
};

}  // namespace

std::unique_ptr<Operator> make_gemm(const KernelSet& kernels, size_t rows_per_image, size_t k,
                                    size_t n, const float* kernel, const float* bias,
                                    Clamp clamp, size_t threads) {
  return std::make_unique<GemmOperator<PackedGemm>>(kernels, rows_per_image, k, n, threads,
                                                    F32Layer{kernel, bias, clamp});
}

std::unique_ptr<Operator> make_conv3x3(const KernelSet& kernels, Shape in, size_t out_channels,
                                       size_t stride, Padding padding, const float* kernel,
                                       const float* bias, Clamp clamp) {
  if (is_first_conv(in.channels, stride)) {
    return std::make_unique<Conv3x3s2c3Operator<PackedConv3x3s2c3>>(kernels, in, out_channels, padding,
                                                                     F32Layer{kernel, bias, clamp});
  }
  return std::make_unique<Conv3x3Operator>(kernels, in, out_channels, stride, padding, kernel,
                                           bias, clamp);
}

std::unique_ptr<Operator> make_depthwise(const KernelSet& kernels, Shape in, size_t kernel_size,
                                         size_t stride, Padding padding, const float* kernel,
                                         const float* bias, Clamp clamp) {
  if (kernel_size != 3 && kernel_size != 5) {
    throw std::invalid_argument("a depthwise window is 3x3 or 5x5, got " + std::to_string(kernel_size));
  }
  return std::make_unique<DepthwiseOperator<PackedDepthwise>>(kernels, in, kernel_size, stride, padding,
                                                              F32Layer{kernel, bias, clamp});
}

std::unique_ptr<Operator> make_add(const KernelSet& kernels, size_t size_per_image,
                                   Clamp clamp) {
  return make_elementwise(size_per_image, [vadd = kernels.vadd, clamp](const Tensors& t, size_t begin, size_t n) {
    vadd(n, t.in0<float>() + begin, t.in1<float>() + begin, t.out<float>() + begin, clamp);
  });
}

std::unique_ptr<Operator> make_channel_multiply(const KernelSet& kernels, Shape in) {
  return std::make_unique<ChannelMultiplyOperator>(kernels, in);
}

std::unique_ptr<Operator> make_hard_swish(const KernelSet& kernels, size_t size_per_image) {
  return make_elementwise(size_per_image, [vhswish = kernels.vhswish](const Tensors& t, size_t begin, size_t n) {
    vhswish(n, t.in0<float>() + begin, t.out<float>() + begin);
  });
}

std::unique_ptr<Operator> make_global_pool(const KernelSet& kernels, Shape in, bool average) {
  return std::make_unique<GlobalPoolOperator>(kernels, in, average);
}

std::unique_ptr<Operator> make_softmax(const KernelSet& kernels, size_t size_per_image) {
  return std::make_unique<SoftmaxOperator>(kernels, size_per_image);
}

std::unique_ptr<Operator> make_sigmoid(size_t size_per_image) {
  return std::make_unique<SigmoidOperator>(size_per_image);
}

std::unique_ptr<Operator> make_qs8_gemm(const KernelSet& kernels, size_t rows_per_image, size_t k,
                                        size_t n, const Qs8Layer& layer, size_t threads, bool float_output) {
  if (float_output) return std::make_unique<GemmOperator<PackedQs8Gemm<float>>>(kernels, rows_per_image, k, n, threads, layer);
  return std::make_unique<GemmOperator<PackedQs8Gemm<int8_t>>>(kernels, rows_per_image, k, n, threads, layer);
}

std::unique_ptr<Operator> make_qs8_conv3x3s2c3(const KernelSet& kernels, Shape in,
                                               size_t out_channels, Padding padding,
                                               const Qs8Layer& layer) {
  return std::make_unique<Conv3x3s2c3Operator<PackedQs8Conv3x3s2c3>>(kernels, in, out_channels, padding, layer);
}

std::unique_ptr<Operator> make_qs8_depthwise3x3(const KernelSet& kernels, Shape in, size_t stride,
                                                Padding padding, const Qs8Layer& layer) {
  return std::make_unique<DepthwiseOperator<PackedQs8Depthwise>>(kernels, in, 3, stride, padding, layer);
}

std::unique_ptr<Operator> make_qs8_add(const KernelSet& kernels, size_t size_per_image,
                                       Quantization a, Quantization b, Quantization output,
                                       Clamp clamp) {
  const Qs8AddParams params = qs8_add_params(a, b, output, clamp);
  return make_elementwise(size_per_image, [vadd = kernels.qs8.vadd, params](const Tensors& t, size_t begin, size_t n) {
    vadd(n, t.in0<int8_t>() + begin, t.in1<int8_t>() + begin, t.out<int8_t>() + begin, params);
  });
}

std::unique_ptr<Operator> make_qs8_global_pool(const KernelSet& kernels, Shape in, bool average,
                                               Quantization input, Quantization output) {
  return std::make_unique<Qs8GlobalPoolOperator>(kernels, in, average, input, output);
}

std::unique_ptr<Operator> make_quantize(const KernelSet& kernels, size_t size_per_image,
                                        Quantization output) {
  const float inv_scale = static_cast<float>(1.0 / output.scale);
  const Qs8Output range = qs8_output(output, {-kInfinity, kInfinity});
  return make_elementwise(size_per_image, [quantize = kernels.qs8.quantize, inv_scale, range](
                                              const Tensors& t, size_t begin, size_t n) {
    quantize(n, t.in0<float>() + begin, t.out<int8_t>() + begin, inv_scale, range);
  });
}

std::unique_ptr<Operator> make_dequantize(const KernelSet& kernels, size_t size_per_image,
                                          Quantization input) {
  return make_elementwise(size_per_image, [dequantize = kernels.qs8.dequantize, input](
                                              const Tensors& t, size_t begin, size_t n) {
    dequantize(n, t.in0<int8_t>() + begin, t.out<float>() + begin, input.zero_point, input.scale);
  });
}

}  // namespace mnengine
