// The Python binding: converts between NumPy / Python objects and the core's types. The
// only file of the core that knows about Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "network.h"

namespace py = pybind11;
using mnengine::Network;
using mnengine::NodeSpec;
using mnengine::OpKind;
using mnengine::Shape;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;
using Int8Array = py::array_t<int8_t, py::array::c_style>;
using Int32Array = py::array_t<int32_t, py::array::c_style>;

OpKind parse_kind(const std::string& name) {
  static const std::map<std::string, OpKind> kinds = {
      {"conv3x3", OpKind::conv3x3},
      {"conv1x1", OpKind::conv1x1},
      {"dense", OpKind::dense},
      {"depthwise3x3", OpKind::depthwise3x3},
      {"depthwise5x5", OpKind::depthwise5x5},
      {"add", OpKind::add},
      {"global_avg_pool", OpKind::global_avg_pool},
      {"global_max_pool", OpKind::global_max_pool},
      {"softmax", OpKind::softmax},
      {"sigmoid", OpKind::sigmoid},
      {"multiply", OpKind::multiply},
      {"hard_swish", OpKind::hard_swish},
  };
  const auto it = kinds.find(name);
  if (it == kinds.end()) throw std::invalid_argument("unknown operator kind '" + name + "'");
  return it->second;
}

// A C-contiguous array of the given type passed through unchanged (the Python layer converts).
template <class Array>
Array as_array(const py::handle& object, const char* what, const char* type) {
  if (!Array::check_(object)) {
    throw std::invalid_argument(std::string(what) + " must be a C-contiguous " + type + " array");
  }
  return py::reinterpret_borrow<Array>(object);
}

FloatArray as_float_array(const py::handle& object, const char* what) {
  return as_array<FloatArray>(object, what, "float32");
}

mnengine::Quantization parse_quantization(const py::handle& object) {
  const auto q = object.cast<std::pair<float, int32_t>>();
  return {q.first, q.second};
}

mnengine::Fusion parse_fusion(const std::string& name) {
  if (name == "auto") return mnengine::Fusion::automatic;
  if (name == "always") return mnengine::Fusion::always;
  if (name == "never") return mnengine::Fusion::never;
  throw std::invalid_argument("fusion must be 'auto', 'always' or 'never', got '" + name + "'");
}

std::unique_ptr<Network> make_network(const std::string& isa, size_t threads,
                                      std::tuple<size_t, size_t, size_t> input_shape,
                                      const py::list& nodes, const std::string& fusion,
                                      const py::object& input_quantization) {
  std::vector<NodeSpec> specs;
  std::vector<py::array> keep_alive;  // the weights outlive the packing in the constructor
  const bool quantized = !input_quantization.is_none();
  for (const py::handle& item : nodes) {
    const auto node = item.cast<py::dict>();
    NodeSpec spec;
    spec.kind = parse_kind(node["kind"].cast<std::string>());
    spec.inputs = node["inputs"].cast<std::vector<size_t>>();
    if (node.contains("out_channels")) spec.out_channels = node["out_channels"].cast<size_t>();
    if (node.contains("stride")) spec.stride = node["stride"].cast<size_t>();
    if (node.contains("padding")) {
      const auto p = node["padding"].cast<std::tuple<size_t, size_t, size_t, size_t>>();
      spec.padding = {std::get<0>(p), std::get<1>(p), std::get<2>(p), std::get<3>(p)};
    }
    if (node.contains("clamp")) {
      const auto c = node["clamp"].cast<std::pair<float, float>>();
      spec.clamp = {c.first, c.second};
    }
    // The hard-swish before the clamp, on the layers whose kernels apply it (Network checks).
    if (node.contains("hard_swish")) spec.clamp.hard_swish = node["hard_swish"].cast<bool>();
    // Int8 networks take int8 kernels, int32 biases and float32 weight scales.
    if (node.contains("kernel")) {
      if (quantized) {
        const Int8Array kernel = as_array<Int8Array>(node["kernel"], "kernel", "int8");
        spec.qs8_kernel = kernel.data();
        keep_alive.push_back(kernel);
      } else {
        const FloatArray kernel = as_float_array(node["kernel"], "kernel");
        spec.kernel = kernel.data();
        keep_alive.push_back(kernel);
      }
      spec.kernel_size = static_cast<size_t>(keep_alive.back().size());
    }
    if (node.contains("bias") && !node["bias"].is_none()) {
      if (quantized) {
        const Int32Array bias = as_array<Int32Array>(node["bias"], "bias", "int32");
        spec.qs8_bias = bias.data();
        keep_alive.push_back(bias);
      } else {
        const FloatArray bias = as_float_array(node["bias"], "bias");
        spec.bias = bias.data();
        keep_alive.push_back(bias);
      }
      spec.bias_size = static_cast<size_t>(keep_alive.back().size());
    }
    if (node.contains("weight_scale")) {
      const FloatArray scale = as_float_array(node["weight_scale"], "weight_scale");
      spec.weight_scale = scale.data();
      spec.weight_scale_size = static_cast<size_t>(scale.size());
      keep_alive.push_back(scale);
    }
    if (node.contains("output_quantization")) spec.output_quantization = parse_quantization(node["output_quantization"]);
    specs.push_back(std::move(spec));
  }
  const Shape input{std::get<0>(input_shape), std::get<1>(input_shape), std::get<2>(input_shape)};
  const mnengine::Fusion fusion_policy = parse_fusion(fusion);
  std::optional<mnengine::Quantization> quantization;
  if (quantized) quantization = parse_quantization(input_quantization);
  py::gil_scoped_release release;  // packing large weights takes a while
  return std::make_unique<Network>(isa, threads, input, specs, fusion_policy, quantization);
}

py::tuple shape_tuple(Shape s) { return py::make_tuple(s.height, s.width, s.channels); }

// Checks `x` is (N, H, W, C) float32 C-contiguous and `out` a writeable (N, output size);
// returns N. Arrays are never converted here: a converted `out` would be a silent copy.
template <class InArray, class OutArray>
size_t check_io(const Network& net, const InArray& x, const OutArray& out) {
  if (!out.writeable()) throw std::invalid_argument("out must be writeable");
  const Shape in = net.input_shape();
  if (x.ndim() != 4 || x.shape(0) < 1 || static_cast<size_t>(x.shape(1)) != in.height ||
      static_cast<size_t>(x.shape(2)) != in.width || static_cast<size_t>(x.shape(3)) != in.channels) {
    throw std::invalid_argument("input must have shape (N, " + std::to_string(in.height) + ", " +
                                std::to_string(in.width) + ", " + std::to_string(in.channels) +
                                ") with N >= 1");
  }
  const size_t batch = static_cast<size_t>(x.shape(0));
  if (out.ndim() != 2 || static_cast<size_t>(out.shape(0)) != batch ||
      static_cast<size_t>(out.shape(1)) != net.output_shape().size()) {
    throw std::invalid_argument("output must have shape (" + std::to_string(batch) + ", " +
                                std::to_string(net.output_shape().size()) + ")");
  }
  return batch;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mnengine's C++ core: NHWC float32 MobileNet kernels and the network executor.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (const auto* set : mnengine::available_kernel_sets()) names.emplace_back(set->isa);
    return names;
  }, "Instruction sets this build and CPU can run, best first.");

  m.def("kernel_families", [] {
    std::vector<std::tuple<std::string, std::string, std::string>> families;
    for (const auto* set : mnengine::available_kernel_sets()) families.emplace_back(set->isa, set->f32_name, set->qs8.name);
    return families;
  }, "(isa, f32 kernel family, qs8 kernel family) of each available instruction set, best first: "
     "several instruction sets may share the kernels of one family.");

  m.def("measure_fma_peak", [](const std::string& isa, double seconds) {
    const mnengine::KernelSet& set = mnengine::select_kernel_set(isa);
    py::gil_scoped_release release;
    float sink = 0.0f;
    uint64_t iterations = 1 << 16;
    for (;;) {  // grow the run until it lasts long enough to time
      const auto start = std::chrono::steady_clock::now();
      const uint64_t flops = set.fma_peak(iterations, &sink);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed >= seconds || iterations >= (uint64_t{1} << 40)) return flops / elapsed / 1e9;
      iterations *= 2;
    }
  }, py::arg("isa"), py::arg("seconds") = 0.1,
  "Single-thread float32 FMA throughput of one core in GFLOP/s, from a register-only loop "
  "with the given ISA's kernels, run for at least `seconds`.");

  m.def("measure_dot_peak", [](const std::string& isa, double seconds) {
    const mnengine::KernelSet& set = mnengine::select_kernel_set(isa);
    py::gil_scoped_release release;
    int32_t sink = 0;
    uint64_t iterations = 1 << 16;
    for (;;) {
      const auto start = std::chrono::steady_clock::now();
      const uint64_t macs = set.qs8.dot_peak(iterations, &sink);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed >= seconds || iterations >= (uint64_t{1} << 40)) return macs / elapsed / 1e9;
      iterations *= 2;
    }
  }, py::arg("isa"), py::arg("seconds") = 0.1,
  "Single-thread int8 multiply-add throughput of one core in G multiply-adds/s, from a "
  "register-only loop of the given ISA's qs8 GEMM dot-product instruction.");

  // Local to this module: another extension (or a second copy of mnengine) may bind a type of
  // the same name.
  py::class_<Network>(m, "Network", py::module_local())
      .def(py::init(&make_network), py::arg("isa"), py::arg("threads"), py::arg("input_shape"),
           py::arg("nodes"), py::arg("fusion") = "auto", py::arg("input_quantization") = py::none(),
           "fusion: 'auto' fuses the MobileNet blocks where it pays; 'always' and 'never' are for "
           "testing both paths. input_quantization: None for a float32 network, (scale, zero point) "
           "of the quantized input for an int8 network (its nodes then carry int8 kernels, int32 "
           "biases, weight_scale and output_quantization; a conv1x1 or dense node without "
           "output_quantization outputs float32).")
      .def_property_readonly("quantized", &Network::quantized)
      .def_property_readonly("isa", [](const Network& n) { return std::string(n.kernels().isa); })
      .def_property_readonly("threads", &Network::threads)
      .def_property_readonly("input_shape", [](const Network& n) { return shape_tuple(n.input_shape()); })
      .def_property_readonly("output_shape", [](const Network& n) { return shape_tuple(n.output_shape()); })
      .def_property_readonly("steps", [](const Network& n) {
            std::vector<std::pair<size_t, size_t>> ranges;
            for (const Network::NodeRange& r : n.steps()) ranges.emplace_back(r.first, r.count);
            return ranges;
          }, "The operators run, as (first node, node count): a count above one is a fused block.")
      .def("run", [](const Network& net, const py::handle& x_object, const py::handle& out_object) {
            const FloatArray x = as_float_array(x_object, "x");
            FloatArray out = as_float_array(out_object, "out");
            const size_t batch = check_io(net, x, out);
            const float* in = x.data();
            float* y = out.mutable_data();
            py::gil_scoped_release release;
            net.run(in, batch, y);
          }, py::arg("x"), py::arg("out"),
          "Runs x (N, H, W, C) into out (N, output size); releases the GIL.")
      .def("profile", [](const Network& net, const py::handle& x_object, const py::handle& out_object) {
            const FloatArray x = as_float_array(x_object, "x");
            FloatArray out = as_float_array(out_object, "out");
            const size_t batch = check_io(net, x, out);
            const float* in = x.data();
            float* y = out.mutable_data();
            std::vector<double> seconds;
            {
              py::gil_scoped_release release;
              net.run(in, batch, y, {&seconds, nullptr});
            }
            return seconds;
          }, py::arg("x"), py::arg("out"), "Like run(); returns the wall time in seconds of each of `steps`.")
      .def("value_statistics", [](const Network& net, const py::handle& x_object, const py::handle& out_object) {
            const FloatArray x = as_float_array(x_object, "x");
            FloatArray out = as_float_array(out_object, "out");
            const size_t batch = check_io(net, x, out);
            const float* in = x.data();
            float* y = out.mutable_data();
            std::vector<mnengine::ValueStatistics> statistics;
            {
              py::gil_scoped_release release;
              net.run(in, batch, y, {nullptr, &statistics});
            }
            py::list steps;
            for (const mnengine::ValueStatistics& s : statistics) {
              steps.append(py::make_tuple(s.min, s.max, py::array_t<double>(s.channel_sums.size(), s.channel_sums.data())));
            }
            return steps;
          }, py::arg("x"), py::arg("out"),
          "Like run() on a float32 network; returns for each of `steps` the (min, max, per-channel sums "
          "over images and pixels) of the values it wrote.")
      .def("run_qs8", [](const Network& net, const py::handle& x_object, const py::handle& out_object) {
            const Int8Array x = as_array<Int8Array>(x_object, "x", "int8");
            Int8Array out = as_array<Int8Array>(out_object, "out", "int8");
            const size_t batch = check_io(net, x, out);
            const int8_t* in = x.data();
            int8_t* y = out.mutable_data();
            py::gil_scoped_release release;
            net.run_qs8(in, batch, y);
          }, py::arg("x"), py::arg("out"),
          "An int8 network's int8 layers alone: int8 x (N, H, W, C) into int8 out (N, output size), "
          "without the input's quantization and the output's dequantization.");
}
