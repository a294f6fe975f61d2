// A network: operators in execution order over planned activation buffers.
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

class Network {
 public:
  // Validates the nodes (throws std::invalid_argument naming the node and the mismatch),
  // packs every weight and plans the activation buffers.
  Network(const std::string& isa, size_t threads, Shape input, const std::vector<NodeSpec>& nodes);
  ~Network();

  const KernelSet& kernels() const { return kernels_; }
  size_t threads() const { return pool_.threads(); }
  Shape input_shape() const { return shapes_.front(); }
  Shape output_shape() const { return shapes_.back(); }

  // Runs a batch: `input` is batch x input_shape, `output` batch x output_shape. Safe to call
  // from several threads at once: each call takes its own workspace, and a call that finds
  // the thread pool busy runs on its own thread alone. If `node_seconds` is given, it
  // receives the wall time of each node.
  void run(const float* input, size_t batch, float* output,
           std::vector<double>* node_seconds = nullptr) const;

 private:
  struct Workspace;
  std::unique_ptr<Workspace> acquire_workspace(size_t batch) const;
  void release_workspace(std::unique_ptr<Workspace> workspace) const;

  const KernelSet& kernels_;
  std::vector<Shape> shapes_;                 // of every tensor id
  std::vector<std::vector<size_t>> inputs_;   // tensor ids read by each node
  std::vector<std::unique_ptr<Operator>> operators_;
  std::vector<size_t> arena_offsets_;         // per tensor id, in floats per image
  size_t arena_floats_per_image_ = 0;
  size_t scratch_floats_ = 0;                 // per thread

  mutable ThreadPool pool_;
  mutable std::mutex pool_mutex_;
  mutable std::mutex workspaces_mutex_;
  mutable std::vector<std::unique_ptr<Workspace>> idle_workspaces_;
};

}  // namespace mnengine
