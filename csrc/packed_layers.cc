#include "packed_layers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

namespace mnengine {
namespace {

// Packed weights of one block of GEMM panels are kept near this size, so that the block stays
// in L2 while every row tile streams past it.
constexpr size_t kGemmBlockBytes = 256 * 1024;
// The micro-kernels take one- and two-row tiles four or two panels at a time (one panel alone
// leaves the FMA units waiting on two accumulator chains): blocks hold a multiple of four.
constexpr size_t kPanelGroup = 4;

// A row of `count` int8 values that all read as the real zero of `quantization`.
AlignedArray<int8_t> zero_point_row(size_t count, Quantization quantization) {
  AlignedArray<int8_t> row(count);
  std::fill_n(row.data(), count, static_cast<int8_t>(quantization.zero_point));
  return row;
}

// The int8 depthwise kernels are 3x3 (Network rejects int8 5x5 nodes before this).
size_t check_qs8_depthwise_size(size_t kernel_size) {
  if (kernel_size != 3) throw std::invalid_argument("the int8 depthwise convolution is 3x3 only");
  return kernel_size;
}

}  // namespace

Qs8Output qs8_output(Quantization output, Clamp clamp) {
  const auto bound = [&](float real, int32_t limit, bool lower) {
    if (std::isinf(real)) return limit;
    const double q = output.zero_point + std::nearbyint(static_cast<double>(real) / output.scale);
    return static_cast<int32_t>(lower ? std::max<double>(q, limit) : std::min<double>(q, limit));
  };
  const int32_t low = bound(clamp.min, -128, true), high = bound(clamp.max, 127, false);
  return {output.zero_point, static_cast<float>(low - output.zero_point),
          static_cast<float>(std::max(low, high) - output.zero_point)};
}

Qs8AddParams qs8_add_params(Quantization a, Quantization b, Quantization output, Clamp clamp) {
  return {a.zero_point, b.zero_point, static_cast<float>(static_cast<double>(a.scale) / output.scale),
          static_cast<float>(static_cast<double>(b.scale) / output.scale), qs8_output(output, clamp)};
}

std::vector<float> qs8_requantization_scales(const Qs8Layer& layer, size_t channels) {
  std::vector<float> scales(channels);
  for (size_t c = 0; c < channels; ++c) {
    scales[c] = static_cast<float>(static_cast<double>(layer.input.scale) * layer.weight_scale[c] /
                                   layer.output.scale);
  }
  return scales;
}

GemmTiling::GemmTiling(size_t mr, size_t nr, size_t n, size_t panel_bytes)
    : mr_(mr), nr_(nr), n_(n),
      panels_per_block_(round_up(std::max<size_t>(1, kGemmBlockBytes / panel_bytes), kPanelGroup)) {}

PackedGemm::PackedGemm(const KernelSet& kernels, size_t k, size_t n, const F32Layer& layer)
    : kernels_(kernels), k_(k), n_(n), packed_(pack_gemm_weights(k, n, kernels.gemm_nr, layer.kernel, layer.bias)),
      clamp_(layer.clamp), tiling_(kernels.gemm_mr, kernels.gemm_nr, n, (k + 1) * kernels.gemm_nr * sizeof(float)) {}

void PackedGemm::run(size_t rows, const float* a, size_t a_stride, float* c, size_t c_stride,
                     size_t panel_begin, size_t panel_end) const {
  const size_t panel_floats = (k_ + 1) * kernels_.gemm_nr;
  tiling_.for_each_tile(rows, panel_begin, panel_end, [&](size_t r, size_t mr, size_t p, size_t n0, size_t nc) {
    kernels_.gemm(mr, nc, k_, a + r * a_stride, a_stride, packed_.data() + p * panel_floats,
                  c + r * c_stride + n0, c_stride, clamp_);
  });
}

namespace {

// The scales the packed GEMM weights carry: requantizing to the output's quantization, or, for
// float32 output, dequantizing (input scale times weight scale).
std::vector<float> gemm_scales(const Qs8Layer& layer, size_t n, bool float_output) {
  Qs8Layer scaled = layer;
  if (float_output) scaled.output = {1.0f, 0};
  return qs8_requantization_scales(scaled, n);
}

}  // namespace

template <class OutputType>
PackedQs8Gemm<OutputType>::PackedQs8Gemm(const KernelSet& kernels, size_t k, size_t n, const Qs8Layer& layer)
    : kernels_(kernels.qs8), k_(k), n_(n),
      panel_bytes_(kernels.qs8.gemm_nr * (2 * sizeof(int32_t) + round_up(k, kernels.qs8.gemm_kr))),
      packed_(pack_qs8_gemm_weights(k, n, kernels.qs8.gemm_nr, kernels.qs8.gemm_kr, layer.kernel, layer.bias,
                                    gemm_scales(layer, n, std::is_same_v<Output, float>).data(),
                                    layer.input.zero_point, kernels.qs8.gemm_input_offset)),
      output_(std::is_same_v<Output, float> ? Qs8Output{0, 0.0f, 0.0f} : qs8_output(layer.output, layer.clamp)),
      clamp_(layer.clamp), tiling_(kernels.qs8.gemm_mr, kernels.qs8.gemm_nr, n, panel_bytes_) {}

template <class OutputType>
void PackedQs8Gemm<OutputType>::run(size_t rows, const int8_t* a, size_t a_stride, Output* c, size_t c_stride,
                                size_t panel_begin, size_t panel_end) const {
  tiling_.for_each_tile(rows, panel_begin, panel_end, [&](size_t r, size_t mr, size_t p, size_t n0, size_t nc) {
    const void* w = packed_.data() + p * panel_bytes_;
    if constexpr (std::is_same_v<Output, float>) {
      kernels_.gemm_f32(mr, nc, k_, a + r * a_stride, a_stride, w, c + r * c_stride + n0, c_stride, clamp_);
    } else {
      kernels_.gemm(mr, nc, k_, a + r * a_stride, a_stride, w, c + r * c_stride + n0, c_stride, output_);
    }
  });
}

template class PackedQs8Gemm<int8_t>;
template class PackedQs8Gemm<float>;

PackedConv3x3s2c3::PackedConv3x3s2c3(const KernelSet& kernels, Shape in, size_t out_channels,
                                     Padding padding, const F32Layer& layer)
    : kernels_(kernels), window_(in, 3, 2, padding, out_channels),
      packed_(pack_channel_group_weights(out_channels, 27, kernels.conv3x3s2c3_cr, layer.kernel, layer.bias)),
      zero_row_(in.width * 3), clamp_(layer.clamp) {}

PackedQs8Conv3x3s2c3::PackedQs8Conv3x3s2c3(const KernelSet& kernels, Shape in, size_t out_channels,
                                           Padding padding, const Qs8Layer& layer)
    : kernels_(kernels.qs8), window_(in, 3, 2, padding, out_channels),
      packed_(pack_qs8_channel_group_weights(out_channels, 27, kernels.qs8.conv3x3s2c3_cr, layer.kernel,
                                             layer.bias, qs8_requantization_scales(layer, out_channels).data(),
                                             layer.input.zero_point)),
      zero_row_(zero_point_row(in.width * 3, layer.input)), input_zero_point_(layer.input.zero_point),
      output_(qs8_output(layer.output, layer.clamp)) {}

PackedDepthwise::PackedDepthwise(const KernelSet& kernels, Shape in, size_t kernel_size, size_t stride,
                                 Padding padding, const F32Layer& layer)
    : dwconv_(kernel_size == 5 ? kernels.dwconv5x5 : kernels.dwconv3x3),
      window_(in, kernel_size, stride, padding, in.channels),
      packed_(pack_channel_group_weights(in.channels, kernel_size * kernel_size, kernels.dwconv_cr, layer.kernel,
                                         layer.bias)),
      zero_row_(in.width * in.channels), clamp_(layer.clamp) {}

PackedQs8Depthwise::PackedQs8Depthwise(const KernelSet& kernels, Shape in, size_t kernel_size, size_t stride,
                                       Padding padding, const Qs8Layer& layer)
    : kernels_(kernels.qs8), window_(in, check_qs8_depthwise_size(kernel_size), stride, padding, in.channels),
      packed_(pack_qs8_channel_group_weights(in.channels, 9, kernels.qs8.dwconv_cr, layer.kernel, layer.bias,
                                             qs8_requantization_scales(layer, in.channels).data(),
                                             layer.input.zero_point)),
      zero_row_(zero_point_row(in.width * in.channels, layer.input)),
      input_zero_point_(layer.input.zero_point), output_(qs8_output(layer.output, layer.clamp)) {}

}  // namespace mnengine
