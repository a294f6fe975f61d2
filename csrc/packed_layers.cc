#include "packed_layers.h"

#include <algorithm>

namespace mnengine {
namespace {

// Packed weights of one block of GEMM panels are kept near this size, so that the block stays
// in L2 while every row tile streams past it.
constexpr size_t kGemmBlockBytes = 256 * 1024;
// The micro-kernels take one- and two-row tiles four or two panels at a time (one panel alone
// leaves the FMA units waiting on two accumulator chains): blocks hold a multiple of four.
constexpr size_t kPanelGroup = 4;

}  // namespace

PackedGemm::PackedGemm(const KernelSet& kernels, size_t k, size_t n, const float* kernel,
                       const float* bias, Clamp clamp)
    : kernels_(kernels), k_(k), n_(n), packed_(pack_gemm_weights(k, n, kernels.gemm_nr, kernel, bias)),
      clamp_(clamp) {
  const size_t panel_bytes = (k + 1) * kernels.gemm_nr * sizeof(float);
  panels_per_block_ = round_up(std::max<size_t>(1, kGemmBlockBytes / panel_bytes), kPanelGroup);
}

void PackedGemm::run(size_t rows, const float* a, size_t a_stride, float* c, size_t c_stride,
                     size_t panel_begin, size_t panel_end) const {
  const size_t mr = kernels_.gemm_mr, nr = kernels_.gemm_nr;
  for (size_t p = panel_begin; p < panel_end; p += panels_per_block_) {
    const size_t n0 = p * nr;
    const size_t nc = std::min(std::min(p + panels_per_block_, panel_end) * nr, n_) - n0;
    const float* w = packed_.data() + p * (k_ + 1) * nr;
    // Rows spread evenly over the fewest tiles (49 rows: 6,5,6,5,... not 8 x 6 + 1): a tile
    // of one row leaves the FMA units as idle as a tile of six keeps them busy.
    const size_t tiles = divide_round_up(rows, mr);
    for (size_t t = 0; t < tiles; ++t) {
      const size_t r = rows * t / tiles, r_end = rows * (t + 1) / tiles;
      kernels_.gemm(r_end - r, nc, k_, a + r * a_stride, a_stride, w, c + r * c_stride + n0,
                    c_stride, clamp_);
    }
  }
}

PackedConv3x3s2c3::PackedConv3x3s2c3(const KernelSet& kernels, Shape in, size_t out_channels,
                                     Padding padding, const float* kernel, const float* bias,
                                     Clamp clamp)
    : kernels_(kernels), window_(in, 2, padding, out_channels),
      packed_(pack_channel_group_weights(out_channels, 27, kernels.conv3x3s2c3_cr, kernel, bias)),
      zero_row_(in.width * 3), clamp_(clamp) {}

PackedDepthwise::PackedDepthwise(const KernelSet& kernels, Shape in, size_t stride,
                                 Padding padding, const float* kernel, const float* bias,
                                 Clamp clamp)
    : kernels_(kernels), window_(in, stride, padding, in.channels),
      packed_(pack_channel_group_weights(in.channels, 9, kernels.dwconv_cr, kernel, bias)),
      zero_row_(in.width * in.channels), clamp_(clamp) {}

}  // namespace mnengine
