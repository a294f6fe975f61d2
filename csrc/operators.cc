#include "operators.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "packed_layers.h"

namespace mnengine {
namespace {

// Elements per task of element-wise operators: large enough to amortise the dispatch.
constexpr size_t kElementwiseChunk = 16 * 1024;

// Pointwise weights up to this size are read whole by every thread rather than split between
// them, where the rows split as evenly (see GemmOperator::split_for).
constexpr size_t kSharedWeightBytes = 512 * 1024;
// Splits whose balance (busy fraction of the threads' time) differs by no more than this are
// taken as even: 131 row tiles against 16 panels is not worth reading the weights twice.
constexpr double kBalanceMargin = 0.03;

// The largest gemm_mr of any kernel set: sizes the IGEMM pointer arrays on the stack.
constexpr size_t kMaxGemmRows = 8;

class GemmOperator final : public Operator {
 public:
  GemmOperator(const KernelSet& kernels, size_t rows_per_image, size_t k, size_t n,
               const float* kernel, const float* bias, Clamp clamp, size_t threads)
      : kernels_(kernels), rows_per_image_(rows_per_image), gemm_(kernels, k, n, kernel, bias, clamp),
        threads_(threads) {}

  size_t task_count(size_t batch) const override {
    const Split split = split_for(batch);
    return split.row_chunks * split.panel_chunks;
  }

  void run_task(size_t task, const Tensors& tensors, float* /*scratch*/) const override {
    const size_t mr = kernels_.gemm_mr, k = gemm_.k(), n = gemm_.n();
    const size_t rows = tensors.batch * rows_per_image_;
    const Split split = split_for(tensors.batch);
    const size_t row_chunk = task / split.panel_chunks, panel_chunk = task % split.panel_chunks;
    const size_t tiles = divide_round_up(rows, mr), panels = gemm_.panels();
    const size_t row_begin = tiles * row_chunk / split.row_chunks * mr;
    const size_t row_end = std::min(rows, tiles * (row_chunk + 1) / split.row_chunks * mr);
    gemm_.run(row_end - row_begin, tensors.input0 + row_begin * k, k, tensors.output + row_begin * n, n,
              panels * panel_chunk / split.panel_chunks, panels * (panel_chunk + 1) / split.panel_chunks);
  }

 private:
  struct Split {
    size_t row_chunks;
    size_t panel_chunks;
  };

  // Row tiles or column panels, whichever the threads share more evenly (7 row tiles leave
  // one thread of two idle an eighth of the time, 5 panels a sixth). Evenly shared either
  // way, every thread reads all of the operand that is not split, so split the larger one:
  // rows where the activations outweigh the weights (early layers), output channels where
  // the weights do (late layers, dense); but weights that stay in a core's L2 are cheap to
  // read twice, and there the row split measured faster (14x14 64->384 at 2 threads in
  // 0.72-0.92x the time), as the next depthwise layer then reads rows its own thread wrote.
  // Too few chunks of one kind get the other too.
  Split split_for(size_t batch) const {
    if (threads_ == 1) return {1, 1};
    const size_t rows = batch * rows_per_image_;
    const size_t tiles = divide_round_up(rows, kernels_.gemm_mr);
    const size_t panels = gemm_.panels();
    const size_t target = 4 * threads_;
    // The busy fraction of the threads' time when each takes whole units, the last round short.
    const auto balance = [&](size_t units) {
      return static_cast<double>(units) / static_cast<double>(threads_ * divide_round_up(units, threads_));
    };
    const double tile_balance = balance(tiles), panel_balance = balance(panels);
    const bool small_weights = (gemm_.k() + 1) * gemm_.n() * sizeof(float) <= kSharedWeightBytes;
    const bool split_rows = tile_balance > panel_balance + kBalanceMargin ||
                            (tile_balance >= panel_balance - kBalanceMargin && (rows >= gemm_.n() || small_weights));
    if (split_rows && tiles >= 2 * threads_) return {std::min(tiles, target), 1};
    if (panels >= 2 * threads_) return {1, std::min(panels, target)};
    const size_t row_chunks = std::min(tiles, target);
    return {row_chunks, std::min(panels, divide_round_up(target, row_chunks))};
  }

  const KernelSet& kernels_;
  size_t rows_per_image_;
  PackedGemm gemm_;
  size_t threads_;
};

// Full 3x3 convolution as an IGEMM: each output pixel's window is three runs of 3 x C_in
// adjacent input values (one per kernel row), multiplied in place. Only windows that
// overhang the left or right edge are assembled, zero-padded, in scratch; rows above or
// below the image point at a zero run. Each task computes one output row.
class Conv3x3Operator final : public Operator {
 public:
  Conv3x3Operator(const KernelSet& kernels, Shape in, size_t out_channels, size_t stride,
                  Padding padding, const float* kernel, const float* bias, Clamp clamp)
      : kernels_(kernels), window_(in, stride, padding, out_channels), run_(3 * in.channels),
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
  size_t scratch_floats() const override { return border_columns_ * 3 * run_; }

  void run_task(size_t task, const Tensors& tensors, float* scratch) const override {
    const Shape in_shape = window_.in, out_shape = window_.out;
    const size_t image = task / out_shape.height, oy = task % out_shape.height;
    const float* in = tensors.input0 + image * in_shape.size();
    float* out = tensors.output + (image * out_shape.height + oy) * out_shape.width * out_shape.channels;
    const size_t mr = kernels_.gemm_mr, c = in_shape.channels;
    float* patch = scratch;
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
  Window3x3 window_;
  size_t run_;  // floats in one kernel row of a window: 3 pixels x C_in
  AlignedBuffer packed_;
  AlignedBuffer zero_run_;
  Clamp clamp_;
  std::vector<bool> window_inside_;  // per output column: all 3 input columns in the image
  size_t border_columns_ = 0;
};

// The first layer of a network on RGB input, 3x3 with stride 2 over 3 channels, on its own
// kernel (see f32-conv3x3s2c3-tiled.h). Each task computes one output row.
class Conv3x3s2c3Operator final : public Operator {
 public:
  Conv3x3s2c3Operator(const KernelSet& kernels, Shape in, size_t out_channels, Padding padding,
                      const float* kernel, const float* bias, Clamp clamp)
      : conv_(kernels, in, out_channels, padding, kernel, bias, clamp) {}

  size_t task_count(size_t batch) const override { return batch * conv_.output().height; }

  void run_task(size_t task, const Tensors& tensors, float* /*scratch*/) const override {
    const Shape in = conv_.input(), out = conv_.output();
    const size_t image = task / out.height, oy = task % out.height;
    const float* x = tensors.input0 + image * in.size();
    conv_.run_row(oy, [&](size_t iy) { return x + iy * in.width * 3; },
                  tensors.output + (image * out.height + oy) * out.width * out.channels);
  }

 private:
  PackedConv3x3s2c3 conv_;
};

class Depthwise3x3Operator final : public Operator {
 public:
  Depthwise3x3Operator(const KernelSet& kernels, Shape in, size_t stride, Padding padding,
                       const float* kernel, const float* bias, Clamp clamp)
      : depthwise_(kernels, in, stride, padding, kernel, bias, clamp) {}

  // A task is a pair of output rows (the kernel's unit), the last one alone if odd.
  size_t task_count(size_t batch) const override { return batch * pairs(); }

  void run_task(size_t task, const Tensors& tensors, float* /*scratch*/) const override {
    const Shape in = depthwise_.input(), out = depthwise_.output();
    const size_t image = task / pairs(), oy = task % pairs() * 2;
    const float* x = tensors.input0 + image * in.size();
    depthwise_.run_rows(oy, std::min<size_t>(2, out.height - oy),
                        [&](size_t iy) { return x + iy * in.width * in.channels; },
                        tensors.output + (image * out.height + oy) * out.width * out.channels);
  }

 private:
  size_t pairs() const { return divide_round_up(depthwise_.output().height, 2); }

  PackedDepthwise depthwise_;
};

class AddOperator final : public Operator {
 public:
  AddOperator(const KernelSet& kernels, size_t size_per_image, Clamp clamp)
      : kernels_(kernels), size_per_image_(size_per_image), clamp_(clamp) {}

  size_t task_count(size_t batch) const override {
    return divide_round_up(batch * size_per_image_, kElementwiseChunk);
  }

  void run_task(size_t task, const Tensors& tensors, float* /*scratch*/) const override {
    const size_t begin = task * kElementwiseChunk;
    const size_t count = std::min(kElementwiseChunk, tensors.batch * size_per_image_ - begin);
    kernels_.vadd(count, tensors.input0 + begin, tensors.input1 + begin, tensors.output + begin,
                  clamp_);
  }

 private:
  const KernelSet& kernels_;
  size_t size_per_image_;
  Clamp clamp_;
};

class GlobalPoolOperator final : public Operator {
 public:
  GlobalPoolOperator(const KernelSet& kernels, Shape in, bool average)
      : in_(in), pool_(average ? kernels.global_avg_pool : kernels.global_max_pool) {}

  size_t task_count(size_t batch) const override { return batch; }

  void run_task(size_t image, const Tensors& tensors, float* /*scratch*/) const override {
    pool_(in_.height * in_.width, in_.channels, tensors.input0 + image * in_.size(),
          tensors.output + image * in_.channels);
  }

 private:
  Shape in_;
  GlobalPoolFn pool_;
};

class SoftmaxOperator final : public Operator {
 public:
  SoftmaxOperator(const KernelSet& kernels, size_t size_per_image)
      : softmax_(kernels.softmax), size_per_image_(size_per_image) {}

  size_t task_count(size_t batch) const override { return batch; }

  void run_task(size_t image, const Tensors& tensors, float* /*scratch*/) const override {
    const size_t offset = image * size_per_image_;
    softmax_(size_per_image_, tensors.input0 + offset, tensors.output + offset);
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

  void run_task(size_t image, const Tensors& tensors, float* /*scratch*/) const override {
    const size_t offset = image * size_per_image_;
    for (size_t i = 0; i < size_per_image_; ++i)
      tensors.output[offset + i] = 1.0f / (1.0f + std::exp(-tensors.input0[offset + i]));
  }

 private:
  size_t size_per_image_;
};

}  // namespace

std::unique_ptr<Operator> make_gemm(const KernelSet& kernels, size_t rows_per_image, size_t k,
                                    size_t n, const float* kernel, const float* bias,
                                    Clamp clamp, size_t threads) {
  return std::make_unique<GemmOperator>(kernels, rows_per_image, k, n, kernel, bias, clamp,
                                        threads);
}

std::unique_ptr<Operator> make_conv3x3(const KernelSet& kernels, Shape in, size_t out_channels,
                                       size_t stride, Padding padding, const float* kernel,
                                       const float* bias, Clamp clamp) {
  if (is_first_conv(in.channels, stride)) {
    return std::make_unique<Conv3x3s2c3Operator>(kernels, in, out_channels, padding, kernel, bias, clamp);
  }
  return std::make_unique<Conv3x3Operator>(kernels, in, out_channels, stride, padding, kernel,
                                           bias, clamp);
}

std::unique_ptr<Operator> make_depthwise3x3(const KernelSet& kernels, Shape in, size_t stride,
                                            Padding padding, const float* kernel,
                                            const float* bias, Clamp clamp) {
  return std::make_unique<Depthwise3x3Operator>(kernels, in, stride, padding, kernel, bias,
                                                clamp);
}

std::unique_ptr<Operator> make_add(const KernelSet& kernels, size_t size_per_image,
                                   Clamp clamp) {
  return std::make_unique<AddOperator>(kernels, size_per_image, clamp);
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

}  // namespace mnengine
