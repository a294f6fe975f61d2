// A network: operators in execution order over planned activation buffers. Consecutive nodes
// that form a MobileNet block run as one fused operator.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "operators.h"
#include "thread_pool.h"

namespace mnengine {

enum class OpKind {
  conv3x3,          // full 3x3 convolution, kernel [3][3][in][out]
  conv1x1,          // pointwise convolution, kernel [in][out]
  dense,            // fully connected on the flattened (H, W, C) input, kernel [H*W*C][out]
  depthwise3x3,     // depthwise 3x3 convolution, kernel [3][3][C]
  add,              // element-wise sum of two tensors of one shape
  global_avg_pool,  // mean over H and W
  global_max_pool,  // max over H and W
  softmax,          // over all values of an image
  sigmoid,          // element-wise logistic function (a binary or multi-label classifier head)
};

// One node as the model file describes it. Kernel and bias are borrowed: they are packed
// into the operator during Network construction and not referenced afterwards.
struct NodeSpec {
  OpKind kind;
  std::vector<size_t> inputs;  // tensor ids: 0 is the network input, i + 1 the output of node i
  size_t out_channels = 0;     // conv3x3, conv1x1, dense
  size_t stride = 1;           // conv3x3, depthwise3x3
  Padding padding{0, 0, 0, 0};
  Clamp clamp{-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  const float* kernel = nullptr;
  size_t kernel_size = 0;
  const float* bias = nullptr;  // null: no bias
  size_t bias_size = 0;
};

// Which MobileNet blocks run as one fused operator: those where it pays (the default), every
// block the nodes form, or none. The last two exist for tests of both paths at any shape.
enum class Fusion { automatic, always, never };

class Network {
 public:
  // Validates the nodes (throws std::invalid_argument naming the node and the mismatch),
  // packs every weight and plans the activation buffers.
  Network(const std::string& isa, size_t threads, Shape input, const std::vector<NodeSpec>& nodes,
          Fusion fusion = Fusion::automatic);
  ~Network();

  const KernelSet& kernels() const { return kernels_; }
  size_t threads() const { return pool_.threads(); }
  Shape input_shape() const { return shapes_.front(); }
  Shape output_shape() const { return shapes_.back(); }

  // The operators run, in order, as the nodes each one computes: [first, first + count).
  // A count above one is a fused block (see make_fused_block).
  struct NodeRange {
    size_t first;
    size_t count;
  };
  std::vector<NodeRange> steps() const;

  // Runs a batch: `input` is batch x input_shape, `output` batch x output_shape. Safe to call
  // from several threads at once: each call takes its own workspace, and a call that finds
  // the thread pool busy runs on its own thread alone. If `step_seconds` is given, it
  // receives the wall time of each step.
  void run(const float* input, size_t batch, float* output,
           std::vector<double>* step_seconds = nullptr) const;

 private:
  struct Step {
    std::unique_ptr<Operator> op;
    NodeRange nodes;
    std::vector<size_t> inputs;  // tensor ids read
    size_t output;               // tensor id written
  };
  struct Workspace;
  std::unique_ptr<Workspace> acquire_workspace(size_t batch) const;
  void release_workspace(std::unique_ptr<Workspace> workspace) const;

  const KernelSet& kernels_;
  std::vector<Shape> shapes_;                 // of every tensor id
  std::vector<Step> steps_;
  std::vector<size_t> arena_offsets_;         // per tensor id, in floats per image
  size_t arena_floats_per_image_ = 0;
  size_t scratch_floats_ = 0;                 // per thread

  mutable ThreadPool pool_;
  mutable std::mutex pool_mutex_;
  mutable std::mutex workspaces_mutex_;
  mutable std::vector<std::unique_ptr<Workspace>> idle_workspaces_;
};

}  // namespace mnengine
