// A network: operators in execution order over planned activation buffers. Consecutive nodes
// that form a MobileNet block run as one fused operator.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
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
  depthwise5x5,     // depthwise 5x5 convolution, kernel [5][5][C] (float32 networks only)
  add,              // element-wise sum of two tensors of one shape
  global_avg_pool,  // mean over H and W
  global_max_pool,  // max over H and W
  softmax,          // over all values of an image
  sigmoid,          // element-wise logistic function (a binary or multi-label classifier head)
  multiply,         // inputs {x, gate}: x (H, W, C) times a gate (1, 1, C) of the same image, per channel
  hard_swish,       // element-wise x * relu6(x + 3) / 6
};

// One node as the model file describes it. Kernel and bias are borrowed: they are packed
// into the operator during Network construction and not referenced afterwards.
//
// In an int8 network (one given an input quantization) every node but softmax and sigmoid
// computes int8 tensors: its weights are `qs8_kernel` (int8, |w| <= 127), `qs8_bias` (int32)
// and `weight_scale` (float32, one per output channel) instead of `kernel` and `bias`, and
// `output_quantization` says how its output encodes real values. A conv1x1 or dense node
// without one outputs float32, its sums dequantized (the network's classifier: its logits
// are then neither rounded nor clipped to an int8 range); after it only float layers may
// follow. The clamp is still the activation's real-valued range.
//
// A clamp with hard_swish (common.h) is for the layers whose kernels apply it, in float32
// networks: conv3x3, conv1x1, dense and the depthwise convolutions. Multiply and hard_swish
// nodes take no activation (their clamp is (-inf, inf)), and only float32 networks run them.
struct NodeSpec {
  OpKind kind;
  std::vector<size_t> inputs;  // tensor ids: 0 is the network input, i + 1 the output of node i
  size_t out_channels = 0;     // conv3x3, conv1x1, dense
  size_t stride = 1;           // conv3x3, depthwise3x3, depthwise5x5
  Padding padding{0, 0, 0, 0};
  Clamp clamp{-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  const float* kernel = nullptr;
  const int8_t* qs8_kernel = nullptr;
  size_t kernel_size = 0;
  const float* bias = nullptr;  // null: no bias
  const int32_t* qs8_bias = nullptr;
  size_t bias_size = 0;
  const float* weight_scale = nullptr;
  size_t weight_scale_size = 0;
  std::optional<Quantization> output_quantization;
};

// What a tensor holds.
enum class DataType { float32, qs8 };

// Which MobileNet blocks run as one fused operator: those where it pays (the default), every
// block the nodes form, or none. The last two exist for tests of both paths at any shape.
enum class Fusion { automatic, always, never };

// The values one step of a float32 network wrote, over a batch: the smallest and largest (NaN
// ignored) and the sum of each channel (over images and pixels), as calibration needs them.
struct ValueStatistics {
  float min;
  float max;
  std::vector<double> channel_sums;
};

// What a run may report besides the output: the wall time of each step, and the statistics of
// the values each step wrote.
struct RunObserver {
  std::vector<double>* step_seconds = nullptr;
  std::vector<ValueStatistics>* step_statistics = nullptr;  // float32 networks only
};

class Network {
 public:
  // Validates the nodes (throws std::invalid_argument naming the node and the mismatch),
  // packs every weight and plans the activation buffers.
  // With `input_quantization` the network is an int8 network: it quantizes its float32 input,
  // runs its layers on int8 tensors and dequantizes what its float layers (softmax, sigmoid)
  // and its output need; input and output stay float32.
  Network(const std::string& isa, size_t threads, Shape input, const std::vector<NodeSpec>& nodes,
          Fusion fusion = Fusion::automatic,
          std::optional<Quantization> input_quantization = std::nullopt);
  ~Network();

  const KernelSet& kernels() const { return kernels_; }
  size_t threads() const { return pool_.threads(); }
  Shape input_shape() const { return shapes_.front(); }
  Shape output_shape() const { return shapes_[steps_.back().output]; }

  bool quantized() const { return input_quantization_.has_value(); }

  // The operators run, in order, as the nodes each one computes: [first, first + count).
  // A count above one is a fused block (see make_fused_block); a count of zero is a conversion
  // between float32 and int8 of an int8 network, before node `first` (or after the last node).
  struct NodeRange {
    size_t first;
    size_t count;
  };
  std::vector<NodeRange> steps() const;

  // Runs a batch: `input` is batch x input_shape, `output` batch x output_shape. Safe to call
  // from several threads at once: each call takes its own workspace, and a call that finds
  // the thread pool busy runs on its own thread alone.
  void run(const float* input, size_t batch, float* output, const RunObserver& observer = {}) const;

  // An int8 network's layers alone, int8 tensors in and out (without the quantization of the
  // input and the dequantization of the output): for testing them bit for bit. Throws unless
  // the network's first step quantizes its input and its last dequantizes the output.
  void run_qs8(const int8_t* input, size_t batch, int8_t* output) const;

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
  void add_step(std::unique_ptr<Operator> op, NodeRange nodes, std::vector<size_t> inputs, size_t output);
  size_t add_tensor(Shape shape, DataType type);
  size_t tensor_bytes(size_t id) const;
  void plan_arena(size_t output_id);
  void run_steps(const void* input, size_t input_id, size_t batch, void* output, size_t output_id,
                 size_t first_step, size_t end_step, const RunObserver& observer) const;

  const KernelSet& kernels_;
  std::optional<Quantization> input_quantization_;
  std::vector<Shape> shapes_;                 // of every tensor id
  std::vector<DataType> types_;               // of every tensor id
  std::vector<Step> steps_;
  std::vector<size_t> arena_offsets_;         // per tensor id, in bytes per image
  size_t arena_bytes_per_image_ = 0;
  size_t scratch_bytes_ = 0;                  // per thread

  mutable ThreadPool pool_;
  mutable std::mutex pool_mutex_;
  mutable std::mutex workspaces_mutex_;
  mutable std::vector<std::unique_ptr<Workspace>> idle_workspaces_;
};

}  // namespace mnengine
