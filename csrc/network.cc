#include "network.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>

#include "isa.h"

namespace mnengine {
namespace {

// No activation of one image may exceed this many floats (1 GiB): a bound far above any
// MobileNet, that keeps every size computation below from overflowing.
constexpr size_t kMaxTensorFloats = size_t{1} << 28;
// Activation buffers are planned in units of this many floats (one cache line).
constexpr size_t kArenaGranule = kAlignment / sizeof(float);

const char* kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::conv3x3: return "conv3x3";
    case OpKind::conv1x1: return "conv1x1";
    case OpKind::dense: return "dense";
    case OpKind::depthwise3x3: return "depthwise3x3";
    case OpKind::add: return "add";
    case OpKind::global_avg_pool: return "global_avg_pool";
    case OpKind::global_max_pool: return "global_max_pool";
    case OpKind::softmax: return "softmax";
    case OpKind::sigmoid: return "sigmoid";
  }
  return "unknown";
}

std::string describe(Shape s) {
  return "(" + std::to_string(s.height) + ", " + std::to_string(s.width) + ", " +
         std::to_string(s.channels) + ")";
}

class NodeChecker {
 public:
  NodeChecker(size_t index, const NodeSpec& spec) : index_(index), spec_(spec) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw std::invalid_argument("node " + std::to_string(index_) + " (" +
                                kind_name(spec_.kind) + "): " + message);
  }

  void require(bool condition, const std::string& message) const {
    if (!condition) fail(message);
  }

  void check_weights(size_t kernel_size, size_t bias_size) const {
    require(spec_.kernel_size == kernel_size && (kernel_size == 0) == (spec_.kernel == nullptr),
            "kernel has " + std::to_string(spec_.kernel_size) + " values, expected " +
                std::to_string(kernel_size));
    require(spec_.bias_size == 0 || spec_.bias_size == bias_size,
            "bias has " + std::to_string(spec_.bias_size) + " values, expected " +
                std::to_string(bias_size) + " or none");
    require((spec_.bias_size == 0) == (spec_.bias == nullptr), "bias pointer and size disagree");
  }

  // Output extent of a 3x3 window along one axis, after checking stride and padding.
  size_t window_output(size_t in, size_t pad_before, size_t pad_after) const {
    require(spec_.stride == 1 || spec_.stride == 2,
            "stride must be 1 or 2, got " + std::to_string(spec_.stride));
    require(pad_before <= 2 && pad_after <= 2, "padding must be 0, 1 or 2 on each side");
    require(in + pad_before + pad_after >= 3,
            "input extent " + std::to_string(in) + " with its padding is smaller than the 3x3 window");
    return conv3x3_output_size(in, pad_before, pad_after, spec_.stride);
  }

 private:
  size_t index_;
  const NodeSpec& spec_;
};

Shape infer_output_shape(size_t index, const NodeSpec& spec, const std::vector<Shape>& shapes) {
  const NodeChecker check(index, spec);
  const size_t expected_inputs = spec.kind == OpKind::add ? 2 : 1;
  check.require(spec.inputs.size() == expected_inputs,
                "takes " + std::to_string(expected_inputs) + " input(s), got " +
                    std::to_string(spec.inputs.size()));
  for (size_t id : spec.inputs) {
    check.require(id < shapes.size(), "input tensor " + std::to_string(id) +
                                          " is not produced before this node");
  }
  const Shape in = shapes[spec.inputs[0]];
  const bool has_weights = spec.kind == OpKind::conv3x3 || spec.kind == OpKind::conv1x1 ||
                           spec.kind == OpKind::dense || spec.kind == OpKind::depthwise3x3;
  if (!has_weights) check.check_weights(0, 0);
  const size_t out_channels = spec.out_channels;
  if (spec.kind == OpKind::conv3x3 || spec.kind == OpKind::conv1x1 || spec.kind == OpKind::dense) {
    check.require(out_channels >= 1 && out_channels <= kMaxTensorFloats,
                  "out_channels must be positive, got " + std::to_string(out_channels));
  }
  Shape out{};
  switch (spec.kind) {
    case OpKind::conv3x3:
      check.require(in.channels * out_channels <= kMaxTensorFloats, "kernel too large");
      check.check_weights(9 * in.channels * out_channels, out_channels);
      out = {check.window_output(in.height, spec.padding.top, spec.padding.bottom),
             check.window_output(in.width, spec.padding.left, spec.padding.right), out_channels};
      break;
    case OpKind::depthwise3x3:
      check.check_weights(9 * in.channels, in.channels);
      out = {check.window_output(in.height, spec.padding.top, spec.padding.bottom),
             check.window_output(in.width, spec.padding.left, spec.padding.right), in.channels};
      break;
    case OpKind::conv1x1:
      check.require(in.channels * out_channels <= kMaxTensorFloats, "kernel too large");
      check.check_weights(in.channels * out_channels, out_channels);
      out = {in.height, in.width, out_channels};
      break;
    case OpKind::dense:
      check.require(in.size() * out_channels <= kMaxTensorFloats, "kernel too large");
      check.check_weights(in.size() * out_channels, out_channels);
      out = {1, 1, out_channels};
      break;
    case OpKind::add: {
      const Shape other = shapes[spec.inputs[1]];
      check.require(in.height == other.height && in.width == other.width &&
                        in.channels == other.channels,
                    "operand shapes differ: " + describe(in) + " and " + describe(other));
      out = in;
      break;
    }
    case OpKind::global_avg_pool:
    case OpKind::global_max_pool:
      out = {1, 1, in.channels};
      break;
    case OpKind::softmax:
    case OpKind::sigmoid:
      out = in;
      break;
  }
  check.require(out.height <= kMaxTensorFloats && out.width <= kMaxTensorFloats &&
                    out.size() <= kMaxTensorFloats,
                "output " + describe(out) + " is too large");
  return out;
}

std::unique_ptr<Operator> make_operator(const KernelSet& kernels, size_t threads,
                                        const NodeSpec& spec, Shape in, Shape out) {
  switch (spec.kind) {
    case OpKind::conv3x3:
      return make_conv3x3(kernels, in, out.channels, spec.stride, spec.padding, spec.kernel,
                          spec.bias, spec.clamp);
    case OpKind::conv1x1:
      return make_gemm(kernels, in.height * in.width, in.channels, out.channels, spec.kernel,
                       spec.bias, spec.clamp, threads);
    case OpKind::dense:
      return make_gemm(kernels, 1, in.size(), out.channels, spec.kernel, spec.bias, spec.clamp,
                       threads);
    case OpKind::depthwise3x3:
      return make_depthwise3x3(kernels, in, spec.stride, spec.padding, spec.kernel, spec.bias,
                               spec.clamp);
    case OpKind::add:
      return make_add(kernels, in.size(), spec.clamp);
    case OpKind::global_avg_pool:
    case OpKind::global_max_pool:
      return make_global_pool(kernels, in, spec.kind == OpKind::global_avg_pool);
    case OpKind::softmax:
      return make_softmax(kernels, in.size());
    case OpKind::sigmoid:
      return make_sigmoid(in.size());
  }
  throw std::invalid_argument("unknown operator kind");
}

// Fusing pays where the expanded tensor is large and the weights small (the early, wide
// blocks): each step of a fused block streams all its weights again, which is free while they
// stay in L1/L2 but not for the late blocks, whose weights outweigh their activations.
constexpr size_t kMinFusedTensorPerWeight = 8;
// With several threads a fused block splits each image into bands of output rows, and each
// band expands the two input rows it shares with its neighbour again: blocks with fewer
// output rows than this per thread run layer by layer instead.
constexpr size_t kMinFusedRowsPerThread = 8;

// The nodes from `first` that form one fused MobileNet block: [1x1 expand, or the network's
// first convolution (3x3, stride 2, RGB: its output, the largest tensor of MobileNet, then never
// leaves the cache)] -> depthwise 3x3 -> [1x1 project] [-> add of the block input], with an
// expand or a project or both, each
// intermediate tensor read only by the next node. A 1x1 convolution feeding a depthwise is
// left to start the next block (as in MobileNet v1, where every block is pointwise ->
// depthwise), not taken as a project. Returns 0 if no block starts at `first`.
struct TensorReaders {
  explicit TensorReaders(const std::vector<NodeSpec>& nodes)
      : count(nodes.size() + 1, 0), depthwise(nodes.size() + 1, false) {
    for (const NodeSpec& node : nodes) {
      for (size_t id : node.inputs) ++count[id];
      if (node.kind == OpKind::depthwise3x3) depthwise[node.inputs[0]] = true;
    }
  }
  std::vector<size_t> count;    // nodes reading each tensor id
  std::vector<bool> depthwise;  // whether a depthwise node reads it
};

size_t fused_block_length(const std::vector<NodeSpec>& nodes, size_t first,
                          const std::vector<Shape>& shapes, const TensorReaders& readers,
                          size_t threads, Fusion fusion) {
  if (fusion == Fusion::never) return 0;
  const size_t n = nodes.size();
  const std::vector<size_t>& consumers = readers.count;
  const std::vector<bool>& feeds_depthwise = readers.depthwise;
  // Node i is the only reader of the output of node i - 1.
  const auto chained = [&](size_t i, OpKind kind) {
    return i < n && nodes[i].kind == kind && nodes[i].inputs[0] == i && consumers[i] == 1;
  };
  size_t last = first;
  const NodeSpec& head = nodes[first];
  const bool expands = head.kind == OpKind::conv1x1 ||
                       (head.kind == OpKind::conv3x3 && is_first_conv(shapes[head.inputs[0]].channels, head.stride));
  const bool expand = expands && chained(first + 1, OpKind::depthwise3x3);
  if (expand) ++last;
  if (nodes[last].kind != OpKind::depthwise3x3) return 0;
  const size_t depthwise = last;
  const bool project = chained(last + 1, OpKind::conv1x1) && !feeds_depthwise[last + 2];
  if (project) ++last;
  if (!expand && !project) return 0;
  const size_t block_input = nodes[first].inputs[0];
  if (project && last + 1 < n && nodes[last + 1].kind == OpKind::add && consumers[last + 1] == 1) {
    const std::vector<size_t>& operands = nodes[last + 1].inputs;
    const Shape out = shapes[last + 1], in = shapes[block_input];
    const bool adds_input = (operands[0] == last + 1 && operands[1] == block_input) ||
                            (operands[1] == last + 1 && operands[0] == block_input);
    if (adds_input && out.height == in.height && out.width == in.width && out.channels == in.channels) ++last;
  }
  if (fusion == Fusion::always) return last - first + 1;
  if (threads > 1 && shapes[depthwise + 1].height < kMinFusedRowsPerThread * threads) return 0;
  const size_t weights = (expand ? nodes[first].kernel_size : 0) + (project ? nodes[depthwise + 1].kernel_size : 0);
  if (shapes[depthwise].size() < kMinFusedTensorPerWeight * weights) return 0;
  return last - first + 1;
}

std::unique_ptr<Operator> make_fused_operator(const KernelSet& kernels, size_t threads,
                                              const std::vector<NodeSpec>& nodes, size_t first,
                                              size_t count, const std::vector<Shape>& shapes) {
  const auto pointwise = [&](const NodeSpec& spec) {
    return PointwiseLayer{spec.out_channels, spec.kernel, spec.bias, spec.clamp};
  };
  size_t i = first;
  std::optional<PointwiseLayer> expand, project;
  std::optional<FirstConvLayer> first_conv;
  if (nodes[i].kind == OpKind::conv1x1) expand = pointwise(nodes[i++]);
  if (nodes[i].kind == OpKind::conv3x3) {
    const NodeSpec& conv = nodes[i++];
    first_conv = FirstConvLayer{conv.out_channels, conv.padding, conv.kernel, conv.bias, conv.clamp};
  }
  const NodeSpec& dw = nodes[i++];
  if (i < first + count && nodes[i].kind == OpKind::conv1x1) project = pointwise(nodes[i++]);
  const Clamp* residual = i < first + count ? &nodes[i].clamp : nullptr;
  const FusedBlock block{expand ? &*expand : nullptr, first_conv ? &*first_conv : nullptr,
                         {dw.stride, dw.padding, dw.kernel, dw.bias, dw.clamp},
                         project ? &*project : nullptr, residual};
  return make_fused_block(kernels, shapes[nodes[first].inputs[0]], block, threads);
}

struct TaskContext {
  const Operator* op;
  const Tensors* tensors;
  float* scratch;
  size_t scratch_floats;
};

void run_task(const void* context, size_t index, size_t thread) {
  const auto* ctx = static_cast<const TaskContext*>(context);
  ctx->op->run_task(index, *ctx->tensors, ctx->scratch + thread * ctx->scratch_floats);
}

size_t checked_threads(size_t threads) {
  if (threads == 0 || threads > 256) {
    throw std::invalid_argument("threads must be between 1 and 256, got " + std::to_string(threads));
  }
  return threads;
}

}  // namespace

struct Network::Workspace {
  size_t batch_capacity = 0;
  AlignedBuffer arena;
  AlignedBuffer scratch;
};

Network::Network(const std::string& isa, size_t threads, Shape input,
                 const std::vector<NodeSpec>& nodes, Fusion fusion)
    : kernels_(select_kernel_set(isa)), pool_(checked_threads(threads)) {
  if (input.height == 0 || input.width == 0 || input.channels == 0 ||
      input.height > kMaxTensorFloats || input.width > kMaxTensorFloats / input.height ||
      input.channels > kMaxTensorFloats / (input.height * input.width)) {
    throw std::invalid_argument("input shape " + describe(input) + " is empty or too large");
  }
  if (nodes.empty()) throw std::invalid_argument("a network needs at least one node");

  shapes_.push_back(input);
  for (size_t i = 0; i < nodes.size(); ++i) shapes_.push_back(infer_output_shape(i, nodes[i], shapes_));

  const TensorReaders readers(nodes);
  for (size_t i = 0; i < nodes.size();) {
    const size_t fused = fused_block_length(nodes, i, shapes_, readers, threads, fusion);
    Step step;
    if (fused != 0) {
      step.op = make_fused_operator(kernels_, threads, nodes, i, fused, shapes_);
      step.nodes = {i, fused};
    } else {
      step.op = make_operator(kernels_, threads, nodes[i], shapes_[nodes[i].inputs[0]], shapes_[i + 1]);
      step.nodes = {i, 1};
    }
    // A fused block reads only its first node's input: the others are inside it.
    step.inputs = fused != 0 ? std::vector<size_t>{nodes[i].inputs[0]} : nodes[i].inputs;
    i += step.nodes.count;
    step.output = i;
    scratch_floats_ = std::max(scratch_floats_, round_up(step.op->scratch_floats(), kArenaGranule));
    steps_.push_back(std::move(step));
  }

  // Plan the tensors the steps write (but the last: the caller's output) into one arena:
  // each takes the lowest gap free for its lifetime. The input is the caller's too.
  std::vector<size_t> last_use(shapes_.size(), 0);
  for (size_t s = 0; s < steps_.size(); ++s) {
    last_use[steps_[s].output] = s;
    for (size_t id : steps_[s].inputs) last_use[id] = std::max(last_use[id], s);
  }
  struct Block {
    size_t offset, size, tensor;
  };
  std::vector<Block> live;
  arena_offsets_.assign(shapes_.size(), 0);
  for (size_t s = 0; s + 1 < steps_.size(); ++s) {
    const size_t id = steps_[s].output;
    live.erase(std::remove_if(live.begin(), live.end(),
                              [&](const Block& b) { return last_use[b.tensor] < s; }),
               live.end());
    std::sort(live.begin(), live.end(), [](const Block& a, const Block& b) { return a.offset < b.offset; });
    const size_t size = round_up(shapes_[id].size(), kArenaGranule);
    size_t offset = 0;
    for (const Block& b : live) {
      if (offset + size <= b.offset) break;
      offset = std::max(offset, b.offset + b.size);
    }
    live.push_back({offset, size, id});
    arena_offsets_[id] = offset;
    arena_floats_per_image_ = std::max(arena_floats_per_image_, offset + size);
  }
}

std::vector<Network::NodeRange> Network::steps() const {
  std::vector<NodeRange> ranges;
  for (const Step& step : steps_) ranges.push_back(step.nodes);
  return ranges;
}

Network::~Network() = default;

std::unique_ptr<Network::Workspace> Network::acquire_workspace(size_t batch) const {
  std::unique_ptr<Workspace> workspace;
  {
    std::lock_guard<std::mutex> lock(workspaces_mutex_);
    if (!idle_workspaces_.empty()) {
      workspace = std::move(idle_workspaces_.back());
      idle_workspaces_.pop_back();
    }
  }
  if (!workspace) {
    workspace = std::make_unique<Workspace>();
    workspace->scratch.resize(pool_.threads() * scratch_floats_);
  }
  if (batch > workspace->batch_capacity) {
    // Filled with NaN, so that a kernel reading a value no operator wrote poisons the output.
    workspace->arena.resize(arena_floats_per_image_ * batch);
    std::fill_n(workspace->arena.data(), workspace->arena.size(),
                std::numeric_limits<float>::quiet_NaN());
    workspace->batch_capacity = batch;
  }
  return workspace;
}

void Network::release_workspace(std::unique_ptr<Workspace> workspace) const {
  std::lock_guard<std::mutex> lock(workspaces_mutex_);
  idle_workspaces_.push_back(std::move(workspace));
}

void Network::run(const float* input, size_t batch, float* output,
                  std::vector<double>* step_seconds) const {
  if (batch == 0 || batch > kMaxTensorFloats / std::max(arena_floats_per_image_, input_shape().size())) {
    throw std::invalid_argument("batch size " + std::to_string(batch) + " is out of range");
  }
  DenormalsFlushed flushed;
  std::unique_ptr<Workspace> workspace = acquire_workspace(batch);
  std::unique_lock<std::mutex> pool_lock(pool_mutex_, std::try_to_lock);
  if (step_seconds != nullptr) step_seconds->assign(steps_.size(), 0.0);

  const size_t output_id = steps_.back().output;
  const auto tensor = [&](size_t id) -> float* {
    if (id == 0) return const_cast<float*>(input);  // read only: no step writes tensor 0
    if (id == output_id) return output;
    return workspace->arena.data() + arena_offsets_[id] * batch;
  };
  for (size_t s = 0; s < steps_.size(); ++s) {
    const Step& step = steps_[s];
    const auto start = std::chrono::steady_clock::now();
    const Tensors tensors{batch, tensor(step.inputs[0]),
                          step.inputs.size() > 1 ? tensor(step.inputs[1]) : nullptr, tensor(step.output)};
    const TaskContext context{step.op.get(), &tensors, workspace->scratch.data(), scratch_floats_};
    const size_t count = step.op->task_count(batch);
    if (pool_lock.owns_lock()) {
      pool_.run(count, run_task, &context);
    } else {
      for (size_t task = 0; task < count; ++task) run_task(&context, task, 0);
    }
    if (step_seconds != nullptr) {
      (*step_seconds)[s] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  }
  pool_lock = {};
  release_workspace(std::move(workspace));
}

}  // namespace mnengine
