#include "network.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "isa.h"

namespace mnengine {
namespace {

// No activation of one image may exceed this many floats (1 GiB): a bound far above any
// MobileNet, that keeps every size computation below from overflowing.
constexpr size_t kMaxTensorFloats = size_t{1} << 28;
// Int8 sums must stay in int32 (see Qs8GemmFn): at most this many products per output of a
// GEMM, biases at most this large, and pools over at most this many pixels.
constexpr size_t kMaxQs8Depth = 16384;
constexpr int64_t kMaxQs8Bias = int64_t{1} << 29;
constexpr size_t kMaxQs8PoolPixels = size_t{1} << 22;

const char* kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::conv3x3: return "conv3x3";
    case OpKind::conv1x1: return "conv1x1";
    case OpKind::dense: return "dense";
    case OpKind::depthwise3x3: return "depthwise3x3";
    case OpKind::depthwise5x5: return "depthwise5x5";
    case OpKind::add: return "add";
    case OpKind::global_avg_pool: return "global_avg_pool";
    case OpKind::global_max_pool: return "global_max_pool";
    case OpKind::softmax: return "softmax";
    case OpKind::sigmoid: return "sigmoid";
    case OpKind::multiply: return "multiply";
    case OpKind::hard_swish: return "hard_swish";
  }
  return "unknown";
}

std::string describe(Shape s) {
  return "(" + std::to_string(s.height) + ", " + std::to_string(s.width) + ", " +
         std::to_string(s.channels) + ")";
}

// Empty if `scale` may scale int8 values, else what is wrong with it.
std::string scale_error(float scale) {
  if (std::isfinite(scale) && scale >= 1e-30f && scale <= 1e30f) return "";
  return "must be finite and in [1e-30, 1e30], got " + std::to_string(scale);
}

// Empty if `q` is a valid int8 quantization, else what is wrong with it.
std::string quantization_error(Quantization q) {
  const std::string error = scale_error(q.scale);
  if (!error.empty()) return "scale " + error;
  if (q.zero_point < -128 || q.zero_point > 127) {
    return "zero point must be in [-128, 127], got " + std::to_string(q.zero_point);
  }
  return "";
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

  // The kernel (kernel_size values, none for layers without weights), the optional bias
  // (bias_size values) and, in an int8 network, the weight scales (one per bias value): of the
  // network's type, finite and in range.
  void check_weights(size_t kernel_size, size_t bias_size, bool quantized) const {
    const void* kernel = quantized ? static_cast<const void*>(spec_.qs8_kernel) : spec_.kernel;
    const void* bias = quantized ? static_cast<const void*>(spec_.qs8_bias) : spec_.bias;
    const void* other_kernel = quantized ? static_cast<const void*>(spec_.kernel) : spec_.qs8_kernel;
    const void* other_bias = quantized ? static_cast<const void*>(spec_.bias) : spec_.qs8_bias;
    const char* network = quantized ? "an int8 network" : "a float32 network";
    require(other_kernel == nullptr && other_bias == nullptr,
            std::string("weights of the wrong type for ") + network);
    require(spec_.kernel_size == kernel_size && (kernel_size == 0) == (kernel == nullptr),
            "kernel has " + std::to_string(spec_.kernel_size) + " values, expected " +
                std::to_string(kernel_size));
    require(spec_.bias_size == 0 || spec_.bias_size == bias_size,
            "bias has " + std::to_string(spec_.bias_size) + " values, expected " +
                std::to_string(bias_size) + " or none");
    require((spec_.bias_size == 0) == (bias == nullptr), "bias pointer and size disagree");
    const size_t scales = quantized && kernel_size != 0 ? bias_size : 0;
    require(spec_.weight_scale_size == scales && (scales == 0) == (spec_.weight_scale == nullptr),
            "weight_scale has " + std::to_string(spec_.weight_scale_size) + " values, expected " +
                std::to_string(scales));
    if (!quantized) return;
    for (size_t i = 0; i < kernel_size; ++i) {
      require(spec_.qs8_kernel[i] != -128, "int8 kernel value -128 at " + std::to_string(i) +
                                               ": weights must lie in [-127, 127]");
    }
    for (size_t i = 0; i < spec_.bias_size; ++i) {
      require(spec_.qs8_bias[i] >= -kMaxQs8Bias && spec_.qs8_bias[i] <= kMaxQs8Bias,
              "int32 bias " + std::to_string(spec_.qs8_bias[i]) + " at " + std::to_string(i) +
                  " exceeds +-2^29");
    }
    for (size_t i = 0; i < scales; ++i) require_scale(spec_.weight_scale[i], "weight_scale");
  }

  void require_scale(float scale, const std::string& what) const {
    const std::string error = scale_error(scale);
    require(error.empty(), what + " " + error);
  }

  void check_quantization(Quantization q, const std::string& what) const {
    const std::string error = quantization_error(q);
    require(error.empty(), what + " quantization: " + error);
  }

  // Output extent of a size x size window along one axis, after checking stride and padding
  // (each side below the window size, so that every window meets the image).
  size_t window_output(size_t in, size_t pad_before, size_t pad_after, size_t size) const {
    require(spec_.stride == 1 || spec_.stride == 2,
            "stride must be 1 or 2, got " + std::to_string(spec_.stride));
    require(pad_before < size && pad_after < size,
            "padding must be 0 to " + std::to_string(size - 1) + " on each side, got " + std::to_string(pad_before) +
                " and " + std::to_string(pad_after));
    const std::string window = std::to_string(size) + "x" + std::to_string(size);
    require(in + pad_before + pad_after >= size,
            "input extent " + std::to_string(in) + " with its padding is smaller than the " + window + " window");
    return window_output_size(in, size, pad_before, pad_after, spec_.stride);
  }

 private:
  size_t index_;
  const NodeSpec& spec_;
};

// The layers whose kernels apply a Clamp's hard-swish (their output stage: f32-output-stage.h).
bool applies_hard_swish(OpKind kind) {
  return kind == OpKind::conv3x3 || kind == OpKind::conv1x1 || kind == OpKind::dense || kind == OpKind::depthwise3x3 ||
         kind == OpKind::depthwise5x5;
}

Shape infer_output_shape(size_t index, const NodeSpec& spec, const std::vector<Shape>& shapes, bool quantized) {
  const NodeChecker check(index, spec);
  const size_t expected_inputs = spec.kind == OpKind::add || spec.kind == OpKind::multiply ? 2 : 1;
  check.require(spec.inputs.size() == expected_inputs,
                "takes " + std::to_string(expected_inputs) + " input(s), got " +
                    std::to_string(spec.inputs.size()));
  for (size_t id : spec.inputs) {
    check.require(id < shapes.size(), "input tensor " + std::to_string(id) +
                                          " is not produced before this node");
  }
  const Shape in = shapes[spec.inputs[0]];
  const bool float_only = spec.kind == OpKind::multiply || spec.kind == OpKind::hard_swish;
  check.require(!quantized || !float_only, "an int8 network cannot run it (float32 only)");
  check.require(!quantized || !spec.clamp.hard_swish, "hard-swish activation in an int8 network (float32 only)");
  check.require(!spec.clamp.hard_swish || applies_hard_swish(spec.kind),
                "takes no hard-swish activation: only conv3x3, conv1x1, dense and depthwise layers apply it");
  const float infinity = std::numeric_limits<float>::infinity();
  check.require(!float_only || (spec.clamp.min == -infinity && spec.clamp.max == infinity),
                "takes no activation: its clamp must be (-inf, inf)");
  const bool has_weights = spec.kind == OpKind::conv3x3 || spec.kind == OpKind::conv1x1 ||
                           spec.kind == OpKind::dense || spec.kind == OpKind::depthwise3x3 ||
                           spec.kind == OpKind::depthwise5x5;
  check.require(!quantized || spec.kind != OpKind::depthwise5x5,
                "an int8 network has no 5x5 depthwise convolution (float32 only)");
  if (!has_weights) check.check_weights(0, 0, quantized);
  const bool float_layer = spec.kind == OpKind::softmax || spec.kind == OpKind::sigmoid;
  const bool dequantizing = spec.kind == OpKind::conv1x1 || spec.kind == OpKind::dense;
  if (quantized && !float_layer && !(dequantizing && !spec.output_quantization)) {
    check.require(spec.output_quantization.has_value(), "an int8 layer needs an output quantization");
    check.check_quantization(*spec.output_quantization, "output");
  }
  check.require(quantized || float_layer || !spec.output_quantization, "a float32 network's node has a quantization");
  if (float_layer) check.require(!spec.output_quantization, "a float layer takes no output quantization");
  const size_t out_channels = spec.out_channels;
  if (spec.kind == OpKind::conv3x3 || spec.kind == OpKind::conv1x1 || spec.kind == OpKind::dense) {
    check.require(out_channels >= 1 && out_channels <= kMaxTensorFloats,
                  "out_channels must be positive, got " + std::to_string(out_channels));
  }
  Shape out{};
  switch (spec.kind) {
    case OpKind::conv3x3:
      check.require(in.channels * out_channels <= kMaxTensorFloats, "kernel too large");
      check.require(!quantized || is_first_conv(in.channels, spec.stride),
                    "an int8 conv3x3 must be a first layer: 3 input channels, stride 2");
      check.check_weights(9 * in.channels * out_channels, out_channels, quantized);
      out = {check.window_output(in.height, spec.padding.top, spec.padding.bottom, 3),
             check.window_output(in.width, spec.padding.left, spec.padding.right, 3), out_channels};
      break;
    case OpKind::depthwise3x3:
      check.check_weights(9 * in.channels, in.channels, quantized);
      out = {check.window_output(in.height, spec.padding.top, spec.padding.bottom, 3),
             check.window_output(in.width, spec.padding.left, spec.padding.right, 3), in.channels};
      break;
    case OpKind::depthwise5x5:
      check.check_weights(25 * in.channels, in.channels, quantized);
      out = {check.window_output(in.height, spec.padding.top, spec.padding.bottom, 5),
             check.window_output(in.width, spec.padding.left, spec.padding.right, 5), in.channels};
      break;
    case OpKind::conv1x1:
      check.require(in.channels * out_channels <= kMaxTensorFloats, "kernel too large");
      check.require(!quantized || in.channels <= kMaxQs8Depth,
                    "an int8 conv1x1 takes at most " + std::to_string(kMaxQs8Depth) + " input channels");
      check.check_weights(in.channels * out_channels, out_channels, quantized);
      out = {in.height, in.width, out_channels};
      break;
    case OpKind::dense:
      check.require(in.size() * out_channels <= kMaxTensorFloats, "kernel too large");
      check.require(!quantized || in.size() <= kMaxQs8Depth,
                    "an int8 dense layer takes at most " + std::to_string(kMaxQs8Depth) + " inputs, got " +
                        std::to_string(in.size()));
      check.check_weights(in.size() * out_channels, out_channels, quantized);
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
    case OpKind::multiply: {
      const Shape gate = shapes[spec.inputs[1]];
      check.require(gate.height == 1 && gate.width == 1 && gate.channels == in.channels,
                    "the gate (second input) must have shape (1, 1, " + std::to_string(in.channels) +
                        ") to scale the channels of " + describe(in) + ", got " + describe(gate));
      out = in;
      break;
    }
    case OpKind::global_avg_pool:
    case OpKind::global_max_pool:
      check.require(!quantized || in.height * in.width <= kMaxQs8PoolPixels,
                    "an int8 pool takes at most " + std::to_string(kMaxQs8PoolPixels) + " pixels");
      out = {1, 1, in.channels};
      break;
    case OpKind::softmax:
    case OpKind::sigmoid:
    case OpKind::hard_swish:
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
    case OpKind::depthwise5x5:
      return make_depthwise(kernels, in, spec.kind == OpKind::depthwise5x5 ? 5 : 3, spec.stride, spec.padding,
                            spec.kernel, spec.bias, spec.clamp);
    case OpKind::add:
      return make_add(kernels, in.size(), spec.clamp);
    case OpKind::global_avg_pool:
    case OpKind::global_max_pool:
      return make_global_pool(kernels, in, spec.kind == OpKind::global_avg_pool);
    case OpKind::softmax:
      return make_softmax(kernels, in.size());
    case OpKind::sigmoid:
      return make_sigmoid(in.size());
    case OpKind::multiply:
      return make_channel_multiply(kernels, in);
    case OpKind::hard_swish:
      return make_hard_swish(kernels, in.size());
  }
  throw std::invalid_argument("unknown operator kind");
}

// The int8 operator of an int8 network's node (softmax and sigmoid are float layers: they
// are made by make_operator, on the dequantized input). `inputs` are the quantizations of the
// node's inputs.
std::unique_ptr<Operator> make_qs8_operator(const KernelSet& kernels, size_t threads, const NodeSpec& spec,
                                            Shape in, Shape out, const std::vector<Quantization>& inputs) {
  const Quantization output = spec.output_quantization.value_or(Quantization{1.0f, 0});
  const Qs8Layer layer{spec.qs8_kernel, spec.qs8_bias, spec.weight_scale, inputs[0], output, spec.clamp};
  const bool float_output = !spec.output_quantization;
  switch (spec.kind) {
    case OpKind::conv3x3:
      return make_qs8_conv3x3s2c3(kernels, in, out.channels, spec.padding, layer);
    case OpKind::conv1x1:
      return make_qs8_gemm(kernels, in.height * in.width, in.channels, out.channels, layer, threads, float_output);
    case OpKind::dense:
      return make_qs8_gemm(kernels, 1, in.size(), out.channels, layer, threads, float_output);
    case OpKind::depthwise3x3:
      return make_qs8_depthwise3x3(kernels, in, spec.stride, spec.padding, layer);
    case OpKind::add:
      return make_qs8_add(kernels, in.size(), inputs[0], inputs[1], output, spec.clamp);
    case OpKind::global_avg_pool:
    case OpKind::global_max_pool:
      return make_qs8_global_pool(kernels, in, spec.kind == OpKind::global_avg_pool, inputs[0], output);
    case OpKind::depthwise5x5:  // rejected by infer_output_shape
    case OpKind::softmax:
    case OpKind::sigmoid:
    case OpKind::multiply:
    case OpKind::hard_swish:
      break;
  }
  throw std::invalid_argument(std::string("no int8 operator for ") + kind_name(spec.kind));
}

bool is_float_layer(OpKind kind) { return kind == OpKind::softmax || kind == OpKind::sigmoid; }

// What an int8 network's node computes into: int8, but for the float layers and the
// dequantizing layers (a GEMM without an output quantization).
DataType output_type(const NodeSpec& spec, bool quantized) {
  return quantized && !is_float_layer(spec.kind) && spec.output_quantization ? DataType::qs8 : DataType::float32;
}

// What a node reads: int8, but for the float layers.
DataType input_type(const NodeSpec& spec, bool quantized) {
  return quantized && !is_float_layer(spec.kind) ? DataType::qs8 : DataType::float32;
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
                          size_t threads, Fusion fusion, bool quantized) {
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
  // The fused-block machinery is 3x3 (its ring of expanded rows, BlockLayers::Depthwise): a
  // depthwise5x5 node never fuses and runs layer by layer, its expand and project with it.
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
  // In an int8 network every layer of a block computes int8 (a dequantizing GEMM, the
  // classifier, ends the int8 layers).
  for (size_t i = first; quantized && i <= last; ++i) {
    if (!nodes[i].output_quantization) return 0;
  }
  if (fusion == Fusion::always) return last - first + 1;
  if (threads > 1 && shapes[depthwise + 1].height < kMinFusedRowsPerThread * threads) return 0;
  const size_t weights = (expand ? nodes[first].kernel_size : 0) + (project ? nodes[depthwise + 1].kernel_size : 0);
  if (shapes[depthwise].size() < kMinFusedTensorPerWeight * weights) return 0;
  return last - first + 1;
}

// The fused operator of nodes [first, first + count) (a block fused_block_length found).
// `quantization` holds each tensor id's quantization in an int8 network.
std::unique_ptr<Operator> make_fused_operator(const KernelSet& kernels, size_t threads,
                                              const std::vector<NodeSpec>& nodes, size_t first,
                                              size_t count, const std::vector<Shape>& shapes,
                                              const std::vector<Quantization>* quantization) {
  // The layer descriptors of a node, float32 or int8.
  const auto f32 = [&](const NodeSpec& spec) { return F32Layer{spec.kernel, spec.bias, spec.clamp}; };
  const auto qs8 = [&](const NodeSpec& spec) {
    return Qs8Layer{spec.qs8_kernel, spec.qs8_bias, spec.weight_scale, (*quantization)[spec.inputs[0]],
                    *spec.output_quantization, spec.clamp};
  };
  const auto build = [&](auto layer, auto residual_of) {
    using Block = BlockLayers<decltype(layer(nodes[first])),
                              std::remove_const_t<std::remove_pointer_t<decltype(residual_of(nodes[first], 0, 0))>>>;
    size_t i = first;
    std::optional<typename Block::Pointwise> expand, project;
    std::optional<typename Block::FirstConv> first_conv;
    if (nodes[i].kind == OpKind::conv1x1) {
      expand = typename Block::Pointwise{nodes[i].out_channels, layer(nodes[i])};
      ++i;
    }
    if (nodes[i].kind == OpKind::conv3x3) {
      first_conv = typename Block::FirstConv{nodes[i].out_channels, nodes[i].padding, layer(nodes[i])};
      ++i;
    }
    const NodeSpec& dw = nodes[i++];
    if (i < first + count && nodes[i].kind == OpKind::conv1x1) {
      project = typename Block::Pointwise{nodes[i].out_channels, layer(nodes[i])};
      ++i;
    }
    // The add's operands, whichever order the node names them in: the project's output (tensor
    // i), then the block input.
    const auto* residual = i < first + count ? residual_of(nodes[i], i, nodes[first].inputs[0]) : nullptr;
    const Block block{expand ? &*expand : nullptr, first_conv ? &*first_conv : nullptr,
                      {dw.stride, dw.padding, layer(dw)}, project ? &*project : nullptr, residual};
    return make_fused_block(kernels, shapes[nodes[first].inputs[0]], block, threads);
  };
  if (quantization == nullptr) {
    return build(f32, [](const NodeSpec& add, size_t, size_t) { return &add.clamp; });
  }
  std::optional<Qs8AddParams> add_params;
  return build(qs8, [&](const NodeSpec& add, size_t projected, size_t block_input) {
    add_params = qs8_add_params((*quantization)[projected], (*quantization)[block_input], *add.output_quantization,
                                add.clamp);
    return &*add_params;
  });
}

struct TaskContext {
  const Operator* op;
  const Tensors* tensors;
  uint8_t* scratch;
  size_t scratch_bytes;
};

void run_task(const void* context, size_t index, size_t thread) {
  const auto* ctx = static_cast<const TaskContext*>(context);
  ctx->op->run_task(index, *ctx->tensors, ctx->scratch + thread * ctx->scratch_bytes);
}

// The statistics of `pixels` pixels of `channels` values each.
ValueStatistics value_statistics(const float* x, size_t pixels, size_t channels) {
  ValueStatistics statistics{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                             std::vector<double>(channels, 0.0)};
  for (size_t p = 0; p < pixels; ++p, x += channels) {
    for (size_t c = 0; c < channels; ++c) {
      if (x[c] < statistics.min) statistics.min = x[c];
      if (x[c] > statistics.max) statistics.max = x[c];
      statistics.channel_sums[c] += x[c];
    }
  }
  return statistics;
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
  ByteBuffer arena;
  ByteBuffer scratch;
};

Network::Network(const std::string& isa, size_t threads, Shape input,
                 const std::vector<NodeSpec>& nodes, Fusion fusion,
                 std::optional<Quantization> input_quantization)
    : kernels_(select_kernel_set(isa)), input_quantization_(input_quantization), pool_(checked_threads(threads)) {
  if (input.height == 0 || input.width == 0 || input.channels == 0 ||
      input.height > kMaxTensorFloats || input.width > kMaxTensorFloats / input.height ||
      input.channels > kMaxTensorFloats / (input.height * input.width)) {
    throw std::invalid_argument("input shape " + describe(input) + " is empty or too large");
  }
  if (nodes.empty()) throw std::invalid_argument("a network needs at least one node");
  const bool quantized = input_quantization.has_value();
  if (quantized && !quantization_error(*input_quantization).empty()) {
    throw std::invalid_argument("input quantization: " + quantization_error(*input_quantization));
  }

  add_tensor(input, DataType::float32);
  std::vector<Shape> node_shapes{input};
  for (size_t i = 0; i < nodes.size(); ++i) {
    node_shapes.push_back(infer_output_shape(i, nodes[i], node_shapes, quantized));
    add_tensor(node_shapes.back(), output_type(nodes[i], quantized));
  }

  // An int8 network's conversions: each float32 tensor an int8 layer reads (the input) and each
  // int8 tensor a float layer reads is converted once, into a tensor of its own.
  // Only the input and int8 tensors have a quantization, so an int8 layer cannot read a float
  // layer's output.
  // The input's is the quantization its int8 twin gets.
  std::vector<Quantization> quantization(shapes_.size(), input_quantization.value_or(Quantization{1.0f, 0}));
  for (size_t i = 0; i < nodes.size(); ++i) quantization[i + 1] = nodes[i].output_quantization.value_or(Quantization{1.0f, 0});
  std::vector<size_t> converted(shapes_.size(), 0);  // tensor id -> its converted twin, 0 if none
  const auto reading = [&](size_t node, size_t id) {
    const DataType wanted = input_type(nodes[node], quantized);
    if (types_[id] == wanted) return id;
    NodeChecker(node, nodes[node]).require(wanted == DataType::float32 || id == 0,
                                           "an int8 layer cannot read the float32 output of node " +
                                               std::to_string(id - 1));
    if (converted[id] == 0) {
      converted[id] = add_tensor(shapes_[id], wanted);
      if (wanted == DataType::qs8) {
        quantization.push_back(*input_quantization);
        add_step(make_quantize(kernels_, shapes_[id].size(), *input_quantization), {node, 0}, {id}, converted[id]);
      } else {
        quantization.push_back(Quantization{1.0f, 0});
        add_step(make_dequantize(kernels_, shapes_[id].size(), quantization[id]), {node, 0}, {id}, converted[id]);
      }
    }
    return converted[id];
  };

  const TensorReaders readers(nodes);
  for (size_t i = 0; i < nodes.size();) {
    const size_t fused = fused_block_length(nodes, i, node_shapes, readers, threads, fusion, quantized);
    if (fused != 0) {
      // A fused block reads only its first node's input: the others are inside it.
      const size_t input = reading(i, nodes[i].inputs[0]);
      add_step(make_fused_operator(kernels_, threads, nodes, i, fused, node_shapes, quantized ? &quantization : nullptr),
               {i, fused}, {input}, i + fused);
      i += fused;
      continue;
    }
    std::vector<size_t> inputs;
    std::vector<Quantization> input_quantizations;
    for (size_t id : nodes[i].inputs) {
      inputs.push_back(reading(i, id));
      input_quantizations.push_back(quantization[inputs.back()]);
    }
    const Shape in = shapes_[inputs[0]], out = shapes_[i + 1];
    add_step(input_type(nodes[i], quantized) == DataType::qs8
                 ? make_qs8_operator(kernels_, threads, nodes[i], in, out, input_quantizations)
                 : make_operator(kernels_, threads, nodes[i], in, out),
             {i, 1}, inputs, i + 1);
    ++i;
  }
  size_t output_id = nodes.size();
  if (types_[output_id] == DataType::qs8) {
    const size_t id = add_tensor(shapes_[output_id], DataType::float32);
    add_step(make_dequantize(kernels_, shapes_[output_id].size(), quantization[output_id]), {nodes.size(), 0},
             {output_id}, id);
    output_id = id;
  }
  plan_arena(output_id);
}

size_t Network::add_tensor(Shape shape, DataType type) {
  shapes_.push_back(shape);
  types_.push_back(type);
  return shapes_.size() - 1;
}

size_t Network::tensor_bytes(size_t id) const {
  return shapes_[id].size() * (types_[id] == DataType::float32 ? sizeof(float) : sizeof(int8_t));
}

void Network::add_step(std::unique_ptr<Operator> op, NodeRange nodes, std::vector<size_t> inputs, size_t output) {
  scratch_bytes_ = std::max(scratch_bytes_, round_up(op->scratch_bytes(), kAlignment));
  steps_.push_back({std::move(op), nodes, std::move(inputs), output});
}

// Plans the tensors the steps write (but `output_id`, the caller's output) into one arena:
// each takes the lowest gap free for its lifetime. The input is the caller's too.
void Network::plan_arena(size_t output_id) {
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
  for (size_t s = 0; s < steps_.size(); ++s) {
    const size_t id = steps_[s].output;
    if (id == output_id) continue;
    live.erase(std::remove_if(live.begin(), live.end(),
                              [&](const Block& b) { return last_use[b.tensor] < s; }),
               live.end());
    std::sort(live.begin(), live.end(), [](const Block& a, const Block& b) { return a.offset < b.offset; });
    const size_t size = round_up(tensor_bytes(id), kAlignment);
    size_t offset = 0;
    for (const Block& b : live) {
      if (offset + size <= b.offset) break;
      offset = std::max(offset, b.offset + b.size);
    }
    live.push_back({offset, size, id});
    arena_offsets_[id] = offset;
    arena_bytes_per_image_ = std::max(arena_bytes_per_image_, offset + size);
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
    workspace->scratch.resize(pool_.threads() * scratch_bytes_);
  }
  if (batch > workspace->batch_capacity) {
    // Filled with all-ones bytes (NaN as float32), so that a kernel reading a float value no
    // operator wrote poisons the output.
    workspace->arena.resize(arena_bytes_per_image_ * batch);
    std::fill_n(workspace->arena.data(), workspace->arena.size(), uint8_t{0xff});
    workspace->batch_capacity = batch;
  }
  return workspace;
}

void Network::release_workspace(std::unique_ptr<Workspace> workspace) const {
  std::lock_guard<std::mutex> lock(workspaces_mutex_);
  idle_workspaces_.push_back(std::move(workspace));
}

void Network::run(const float* input, size_t batch, float* output, const RunObserver& observer) const {
  if (observer.step_statistics != nullptr && quantized()) {
    throw std::invalid_argument("value statistics are observed on float32 networks only");
  }
  run_steps(input, 0, batch, output, steps_.back().output, 0, steps_.size(), observer);
}

void Network::run_qs8(const int8_t* input, size_t batch, int8_t* output) const {
  const bool converts = quantized() && steps_.size() >= 3 && steps_.front().nodes.count == 0 &&
                        steps_.front().inputs[0] == 0 && steps_.back().nodes.count == 0 &&
                        types_[steps_.back().inputs[0]] == DataType::qs8;
  if (!converts) throw std::invalid_argument("run_qs8 needs an int8 network with int8 layers from input to output");
  run_steps(input, steps_.front().output, batch, output, steps_.back().inputs[0], 1, steps_.size() - 1, {});
}

void Network::run_steps(const void* input, size_t input_id, size_t batch, void* output, size_t output_id,
                        size_t first_step, size_t end_step, const RunObserver& observer) const {
  const size_t largest_tensor = std::max(arena_bytes_per_image_, input_shape().size() * sizeof(float));
  if (batch == 0 || batch > kMaxTensorFloats * sizeof(float) / largest_tensor) {
    throw std::invalid_argument("batch size " + std::to_string(batch) + " is out of range");
  }
  DenormalsFlushed flushed;
  std::unique_ptr<Workspace> workspace = acquire_workspace(batch);
  std::unique_lock<std::mutex> pool_lock(pool_mutex_, std::try_to_lock);
  if (observer.step_seconds != nullptr) observer.step_seconds->assign(steps_.size(), 0.0);
  if (observer.step_statistics != nullptr) observer.step_statistics->assign(steps_.size(), {});

  const auto tensor = [&](size_t id) -> void* {
    if (id == input_id) return const_cast<void*>(input);  // read only: no step writes the input
    if (id == output_id) return output;
    return workspace->arena.data() + arena_offsets_[id] * batch;
  };
  for (size_t s = first_step; s < end_step; ++s) {
    const Step& step = steps_[s];
    const auto start = std::chrono::steady_clock::now();
    const Tensors tensors{batch, tensor(step.inputs[0]),
                          step.inputs.size() > 1 ? tensor(step.inputs[1]) : nullptr, tensor(step.output)};
    const TaskContext context{step.op.get(), &tensors, workspace->scratch.data(), scratch_bytes_};
    const size_t count = step.op->task_count(batch);
    if (pool_lock.owns_lock()) {
      pool_.run(count, run_task, &context);
    } else {
      for (size_t task = 0; task < count; ++task) run_task(&context, task, 0);
    }
    if (observer.step_seconds != nullptr) {
      (*observer.step_seconds)[s] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (observer.step_statistics != nullptr) {
      const Shape shape = shapes_[step.output];
      (*observer.step_statistics)[s] = value_statistics(static_cast<const float*>(tensors.output),
                                                        batch * shape.height * shape.width, shape.channels);
    }
  }
  pool_lock = {};
  release_workspace(std::move(workspace));
}

}  // namespace mnengine
