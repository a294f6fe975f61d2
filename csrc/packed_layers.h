// The two layers MobileNet is made of, as weights packed once for a KernelSet plus the loops
// that apply them to a run of rows. Operators (operators.cc, fused_block.cc) decide which rows
// each task computes and where they live; these classes only compute them.
#pragma once

#include <cstddef>

#include "kernels.h"
#include "operators.h"

namespace mnengine {

// A pointwise (1x1) convolution or dense layer: c[m][n] = clamp(a[m][k] * kernel[k][n] + bias).
class PackedGemm {
 public:
  PackedGemm(const KernelSet& kernels, size_t k, size_t n, const float* kernel, const float* bias,
             Clamp clamp);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  size_t panels() const { return divide_round_up(n_, kernels_.gemm_nr); }

  // Rows [0, rows) of `a` (rows a_stride floats apart) times the output channels of panels
  // [panel_begin, panel_end) into `c` (rows c_stride floats apart). The panels are taken in
  // blocks that stay in L2 while every row tile streams past them.
  void run(size_t rows, const float* a, size_t a_stride, float* c, size_t c_stride,
           size_t panel_begin, size_t panel_end) const;
  void run(size_t rows, const float* a, size_t a_stride, float* c, size_t c_stride) const {
    run(rows, a, a_stride, c, c_stride, 0, panels());
  }

 private:
  const KernelSet& kernels_;
  size_t k_, n_;
  AlignedBuffer packed_;
  Clamp clamp_;
  size_t panels_per_block_;
};

// A network's first convolution (3x3, stride 2, 3 input channels) over one image, computed an
// output row at a time.
class PackedConv3x3s2c3 {
 public:
  PackedConv3x3s2c3(const KernelSet& kernels, Shape in, size_t out_channels, Padding padding,
                    const float* kernel, const float* bias, Clamp clamp);

  Shape input() const { return window_.in; }
  Shape output() const { return window_.out; }

  // Output row oy into `out`; `input_row(iy)` returns input row iy (0 <= iy < input().height).
  template <class InputRow>
  void run_row(size_t oy, InputRow&& input_row, float* out) const {
    const float* rows[3];
    window_.gather_rows(oy, 3, input_row, zero_row_.data(), rows);
    kernels_.conv3x3s2c3(window_.out.channels, window_.out.width, window_.in.width, window_.padding.left,
                         rows, packed_.data(), out, clamp_);
  }

 private:
  const KernelSet& kernels_;
  Window3x3 window_;
  AlignedBuffer packed_;
  AlignedBuffer zero_row_;
  Clamp clamp_;
};

// A depthwise 3x3 convolution over one image, computed an output row at a time.
class PackedDepthwise {
 public:
  PackedDepthwise(const KernelSet& kernels, Shape in, size_t stride, Padding padding,
                  const float* kernel, const float* bias, Clamp clamp);

  Shape input() const { return window_.in; }
  Shape output() const { return window_.out; }
  size_t stride() const { return window_.stride; }
  size_t pad_top() const { return window_.padding.top; }

  // Output rows [oy, oy + count) into `out` (contiguous); `input_row(iy)` returns input row iy
  // (0 <= iy < input().height). Rows above or below the image read as zeros. The kernel
  // takes rows two at a time.
  template <class InputRow>
  void run_rows(size_t oy, size_t count, InputRow&& input_row, float* out) const {
    const Shape in = window_.in, out_shape = window_.out;
    const size_t out_row = out_shape.width * out_shape.channels;
    for (size_t end = oy + count; oy < end; oy += 2, out += 2 * out_row) {
      const size_t rows_now = end - oy >= 2 ? 2 : 1;
      const float* rows[5];
      window_.gather_rows(oy, (rows_now - 1) * window_.stride + 3, input_row, zero_row_.data(), rows);
      kernels_.dwconv3x3(in.channels, rows_now, out_shape.width, in.width, window_.stride,
                         window_.padding.left, rows, packed_.data(), out, clamp_);
    }
  }

 private:
  const KernelSet& kernels_;
  Window3x3 window_;
  AlignedBuffer packed_;
  AlignedBuffer zero_row_;
  Clamp clamp_;
};

}  // namespace mnengine
