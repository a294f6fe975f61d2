// The fused MobileNet block (see make_fused_block in operators.h), float32 or int8.
//
// A task is one band of output rows of one image. It walks its band a step of a few output
// rows at a time: it expands the input rows the step newly needs into a ring of expanded rows
// (each row once per band: only the two rows a band shares with its neighbour are computed
// twice), runs the depthwise rows over the ring, and projects them straight into the output.
// The expanded tensor, the largest of a block, thus lives in a few rows of L2 instead of
// making a round trip through memory, and the block is one barrier instead of three or four.
#include <algorithm>
#include <optional>
#include <type_traits>

#include "operators.h"
#include "packed_layers.h"

namespace mnengine {
namespace {

// A step's pointwise GEMMs work on at least this many pixels, so that their row tiles are
// mostly full; steps are also sized to fill whole tiles where a few rows can.
constexpr size_t kMinStepPixels = 24;
constexpr size_t kMaxStepRows = 8;

// What a block's layers run on, by precision: the element type, the packed layers and the
// residual add.
template <class Block>
struct BlockKernels;

template <>
struct BlockKernels<FusedBlock> {
  using T = float;
  using Gemm = PackedGemm;
  using FirstConv = PackedConv3x3s2c3;
  using Depthwise = PackedDepthwise;
  static size_t gemm_mr(const KernelSet& kernels) { return kernels.gemm_mr; }
  static void add(const KernelSet& kernels, size_t n, float* y, const float* x, const Clamp& clamp) {
    kernels.vadd(n, y, x, y, clamp);
  }
};

template <>
struct BlockKernels<Qs8FusedBlock> {
  using T = int8_t;
  using Gemm = PackedQs8Gemm<int8_t>;
  using FirstConv = PackedQs8Conv3x3s2c3;
  using Depthwise = PackedQs8Depthwise;
  static size_t gemm_mr(const KernelSet& kernels) { return kernels.qs8.gemm_mr; }
  static void add(const KernelSet& kernels, size_t n, int8_t* y, const int8_t* x, const Qs8AddParams& params) {
    kernels.qs8.vadd(n, y, x, y, params);
  }
};

template <class Block>
class FusedBlockOperator final : public Operator {
  using Kernels = BlockKernels<Block>;
  using T = typename Kernels::T;
  using Residual = std::remove_const_t<std::remove_pointer_t<decltype(Block::residual)>>;

 public:
  FusedBlockOperator(const KernelSet& kernels, Shape in, const Block& block, size_t threads)
      : kernels_(kernels), in_(in),
        depthwise_(kernels, block_mid_shape(in, block), 3, block.depthwise.stride, block.depthwise.padding,
                   block.depthwise.layer),
        out_{depthwise_.output().height, depthwise_.output().width,
             block.project ? block.project->out_channels : depthwise_.output().channels},
        bands_(threads) {
    const size_t mid = depthwise_.input().channels;
    if (block.expand != nullptr) expand_.emplace(kernels, in.channels, mid, block.expand->layer);
    if (block.first_conv != nullptr) first_conv_.emplace(kernels, in, mid, block.first_conv->padding, block.first_conv->layer);
    if (block.project != nullptr) project_.emplace(kernels, mid, block.project->out_channels, block.project->layer);
    if (block.residual != nullptr) residual_ = *block.residual;
    step_rows_ = choose_step_rows();
    ring_rows_ = expands() ? (step_rows_ - 1) * depthwise_.stride() + 3 : 0;
  }

  size_t task_count(size_t batch) const override { return batch * bands_; }

  size_t scratch_bytes() const override {
    const Shape mid = depthwise_.input();
    return (ring_rows_ * mid.width * mid.channels + (project_ ? step_rows_ * out_.width * mid.channels : 0)) *
           sizeof(T);
  }

  void run_task(size_t task, const Tensors& tensors, void* scratch) const override {
    const size_t image = task / bands_, band = task % bands_;
    const Shape mid = depthwise_.input();
    const size_t mid_row = mid.width * mid.channels, in_row = in_.width * in_.channels;
    const size_t out_row = out_.width * out_.channels;
    const T* x = tensors.in0<T>() + image * in_.size();
    T* y = tensors.out<T>() + image * out_.size();
    T* ring = static_cast<T*>(scratch);
    T* depthwise_rows = ring + ring_rows_ * mid_row;
    const auto input_row = [&](size_t iy) {
      return expands() ? ring + iy % ring_rows_ * mid_row : x + iy * mid_row;
    };

    const size_t band_begin = out_.height * band / bands_, band_end = out_.height * (band + 1) / bands_;
    size_t expanded_end = 0;  // expanded rows the step needs below this one are in the ring
    for (size_t oy = band_begin; oy < band_end; oy += step_rows_) {
      const size_t rows = std::min(step_rows_, band_end - oy);
      if (expands()) {
        const size_t stride = depthwise_.stride(), pad = depthwise_.pad_top();
        // Input rows under the step's windows, clipped to the image.
        const size_t first = oy * stride > pad ? oy * stride - pad : 0;
        const size_t end = std::min(mid.height, (oy + rows - 1) * stride + 3 > pad ? (oy + rows - 1) * stride + 3 - pad : 0);
        expand_rows(x, std::max(first, expanded_end), end, ring);
        expanded_end = std::max(expanded_end, end);
      }
      depthwise_.run_rows(oy, rows, input_row, project_ ? depthwise_rows : y + oy * out_row);
      if (project_) {
        T* out = y + oy * out_row;
        project_->run(rows * out_.width, depthwise_rows, mid.channels, out, out_.channels);
        if (residual_) Kernels::add(kernels_, rows * out_row, out, x + oy * in_row, *residual_);
      }
    }
  }

 private:
  // The shape of the depthwise input: the first convolution's or the expansion's output, or the block input.
  static Shape block_mid_shape(Shape in, const Block& block) {
    if (block.first_conv != nullptr) return Window(in, 3, 2, block.first_conv->padding, block.first_conv->out_channels).out;
    return {in.height, in.width, block.expand != nullptr ? block.expand->out_channels : in.channels};
  }

  bool expands() const { return expand_ || first_conv_; }

  // Rows [begin, end) of the depthwise input into their ring slots (row iy in slot
  // iy % ring_rows_): from the first convolution a row at a time, from the 1x1 expansion as
  // one GEMM per run of slots that does not wrap.
  void expand_rows(const T* x, size_t begin, size_t end, T* ring) const {
    const Shape mid = depthwise_.input();
    if (first_conv_) {
      for (size_t iy = begin; iy < end; ++iy) {
        first_conv_->run_row(iy, [&](size_t row) { return x + row * in_.width * in_.channels; },
                             ring + iy % ring_rows_ * mid.width * mid.channels);
      }
      return;
    }
    for (size_t iy = begin; iy < end;) {
      const size_t slot = iy % ring_rows_;
      const size_t count = std::min(end - iy, ring_rows_ - slot);
      expand_->run(count * in_.width, x + iy * in_.width * in_.channels, in_.channels,
                   ring + slot * mid.width * mid.channels, mid.channels);
      iy += count;
    }
  }

  // The fewest output rows per step that give the GEMMs kMinStepPixels pixels, preferring
  // counts whose pixels fill whole row tiles of the kernel.
  size_t choose_step_rows() const {
    const size_t mr = Kernels::gemm_mr(kernels_);
    const size_t expanded_per_row = depthwise_.stride() * in_.width;
    size_t fallback = 0;
    for (size_t rows = 1; rows <= kMaxStepRows; ++rows) {
      if (rows * out_.width < kMinStepPixels) continue;
      if (fallback == 0) fallback = rows;
      const bool project_fills = !project_ || rows * out_.width % mr == 0;
      const bool expand_fills = !expand_ || rows * expanded_per_row % mr == 0;
      if (project_fills && expand_fills) return rows;
    }
    return fallback != 0 ? fallback : kMaxStepRows;
  }

  const KernelSet& kernels_;
  Shape in_;
  std::optional<typename Kernels::Gemm> expand_;
  std::optional<typename Kernels::FirstConv> first_conv_;
  typename Kernels::Depthwise depthwise_;
  std::optional<typename Kernels::Gemm> project_;
  Shape out_;
  std::optional<Residual> residual_;
  size_t bands_;
  size_t step_rows_ = 1;
  size_t ring_rows_ = 0;
};

}  // namespace

std::unique_ptr<Operator> make_fused_block(const KernelSet& kernels, Shape in,
                                           const FusedBlock& block, size_t threads) {
  return std::make_unique<FusedBlockOperator<FusedBlock>>(kernels, in, block, threads);
}

std::unique_ptr<Operator> make_fused_block(const KernelSet& kernels, Shape in,
                                           const Qs8FusedBlock& block, size_t threads) {
  return std::make_unique<FusedBlockOperator<Qs8FusedBlock>>(kernels, in, block, threads);
}

}  // namespace mnengine
