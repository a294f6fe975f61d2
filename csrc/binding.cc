// The Python binding: converts between NumPy / Python objects and the core's types. The
// only file of the core that knows about Python.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <map>
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

OpKind parse_kind(const std::string& name) {
  static const std::map<std::string, OpKind> kinds = {
      {"conv3x3", OpKind::conv3x3},
      {"conv1x1", OpKind::conv1x1},
      {"dense", OpKind::dense},
      {"depthwise3x3", OpKind::depthwise3x3},
      {"add", OpKind::add},
      {"global_avg_pool", OpKind::global_avg_pool},
      {"global_max_pool", OpKind::global_max_pool},
      {"softmax", OpKind::softmax},
      {"sigmoid", OpKind::sigmoid},
  };
  const auto it = kinds.find(name);
  if (it == kinds.end()) throw std::invalid_argument("unknown operator kind '" + name + "'");
  return it->second;
}

// A float32 C-contiguous array passed through unchanged (the Python layer converts).
FloatArray as_float_array(const py::handle& object, const char* what) {
  if (!FloatArray::check_(object)) {
    throw std::invalid_argument(std::string(what) + " must be a C-contiguous float32 array");
  }
  return py::reinterpret_borrow<FloatArray>(object);
}

mnengine::Fusion parse_fusion(const std::string& name) {
  if (name == "auto") return mnengine::Fusion::automatic;
  if (name == "always") return mnengine::Fusion::always;
  if (name == "never") return mnengine::Fusion::never;
  throw std::invalid_argument("fusion must be 'auto', 'always' or 'never', got '" + name + "'");
}

std::unique_ptr<Network> make_network(const std::string& isa, size_t threads,
                                      std::tuple<size_t, size_t, size_t> input_shape,
                                      const py::list& nodes, const std::string& fusion) {
  std::vector<NodeSpec> specs;
  std::vector<FloatArray> keep_alive;  // the weights outlive the packing in the constructor
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
    if (node.contains("kernel")) {
      keep_alive.push_back(as_float_array(node["kernel"], "kernel"));
      spec.kernel = keep_alive.back().data();
      spec.kernel_size = static_cast<size_t>(keep_alive.back().size());
    }
    if (node.contains("bias") && !node["bias"].is_none()) {
      keep_alive.push_back(as_float_array(node["bias"], "bias"));
      spec.bias = keep_alive.back().data();
      spec.bias_size = static_cast<size_t>(keep_alive.back().size());
    }
    specs.push_back(std::move(spec));
  }
  const Shape input{std::get<0>(input_shape), std::get<1>(input_shape), std::get<2>(input_shape)};
  const mnengine::Fusion fusion_policy = parse_fusion(fusion);
  py::gil_scoped_release release;  // packing large weights takes a while
  return std::make_unique<Network>(isa, threads, input, specs, fusion_policy);
}

py::tuple shape_tuple(Shape s) { return py::make_tuple(s.height, s.width, s.channels); }

// Checks `x` is (N, H, W, C) float32 C-contiguous and `out` a writeable (N, output size);
// returns N. Arrays are never converted here: a converted `out` would be a silent copy.
size_t check_io(const Network& net, const FloatArray& x, const FloatArray& out) {
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

  // Local to this module: another extension (or a second copy of mnengine) may bind a type of
  // the same name.
  py::class_<Network>(m, "Network", py::module_local())
      .def(py::init(&make_network), py::arg("isa"), py::arg("threads"), py::arg("input_shape"),
           py::arg("nodes"), py::arg("fusion") = "auto",
           "fusion: 'auto' fuses the MobileNet blocks where it pays; 'always' and 'never' are for "
           "testing both paths.")
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
              net.run(in, batch, y, &seconds);
            }
            return seconds;
          }, py::arg("x"), py::arg("out"), "Like run(); returns the wall time in seconds of each of `steps`.");
}
