// The pointwise convolution and dense layer as an operator, float32 or int8: one packed GEMM
// (PackedGemm or PackedQs8Gemm<int8_t or float>) with its rows or columns split into tasks.
#pragma once

#include <algorithm>

#include "packed_layers.h"

namespace mnengine {

// Pointwise weights up to this size are read whole by every thread rather than split between
// them, where the rows split as evenly (see GemmOperator::split_for).
constexpr size_t kSharedWeightBytes = 512 * 1024;
// Splits whose balance (busy fraction of the threads' time) differs by no more than this are
// taken as even: 131 row tiles against 16 panels is not worth reading the weights twice.
constexpr double kBalanceMargin = 0.03;

template <class Gemm>
class GemmOperator final : public Operator {
 public:
  template <class Layer>
  GemmOperator(const KernelSet& kernels, size_t rows_per_image, size_t k, size_t n, size_t threads,
               const Layer& layer)
      : rows_per_image_(rows_per_image), gemm_(kernels, k, n, layer), threads_(threads) {}

  size_t task_count(size_t batch) const override {
    const Split split = split_for(batch);
    return split.row_chunks * split.panel_chunks;
  }

  void run_task(size_t task, const Tensors& tensors, void* /*scratch*/) const override {
    using In = typename Gemm::Input;
    using Out = typename Gemm::Output;
    const size_t mr = gemm_.mr(), k = gemm_.k(), n = gemm_.n();
    const size_t rows = tensors.batch * rows_per_image_;
    const Split split = split_for(tensors.batch);
    const size_t row_chunk = task / split.panel_chunks, panel_chunk = task % split.panel_chunks;
    const size_t tiles = divide_round_up(rows, mr), panels = gemm_.panels();
    const size_t row_begin = tiles * row_chunk / split.row_chunks * mr;
    const size_t row_end = std::min(rows, tiles * (row_chunk + 1) / split.row_chunks * mr);
    gemm_.run(row_end - row_begin, tensors.in0<In>() + row_begin * k, k, tensors.out<Out>() + row_begin * n, n,
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
    const size_t tiles = divide_round_up(rows, gemm_.mr());
    const size_t panels = gemm_.panels();
    const size_t target = 4 * threads_;
    // The busy fraction of the threads' time when each takes whole units, the last round short.
    const auto balance = [&](size_t units) {
      return static_cast<double>(units) / static_cast<double>(threads_ * divide_round_up(units, threads_));
    };
    const double tile_balance = balance(tiles), panel_balance = balance(panels);
    const bool small_weights = gemm_.weight_bytes() <= kSharedWeightBytes;
    const bool split_rows = tile_balance > panel_balance + kBalanceMargin ||
                            (tile_balance >= panel_balance - kBalanceMargin && (rows >= gemm_.n() || small_weights));
    if (split_rows && tiles >= 2 * threads_) return {std::min(tiles, target), 1};
    if (panels >= 2 * threads_) return {1, std::min(panels, target)};
    const size_t row_chunks = std::min(tiles, target);
    return {row_chunks, std::min(panels, divide_round_up(target, row_chunks))};
  }

  size_t rows_per_image_;
  Gemm gemm_;
  size_t threads_;
};

}  // namespace mnengine
