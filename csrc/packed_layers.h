// The layers MobileNet is made of, as weights packed once for a KernelSet plus the loops that
// apply them to a run of rows, in float32 (PackedGemm, PackedConv3x3s2c3, PackedDepthwise) and
// int8 (PackedQs8*). Operators (operators.cc, qs8_operators.cc, fused_block.cc) decide which
// rows each task computes and where they live; these classes only compute them. Each float
// class and its int8 twin share their loops (GemmTiling, run_depthwise_rows): they differ only
// in the kernel called and its parameters.
#pragma once

#include <algorithm>
#include <cstddef>

#include "kernels.h"
#include "operators.h"

namespace mnengine {

// How a GEMM walks its output: blocks of panels that stay in L2 while every row tile streams
// past them, and rows spread evenly over the fewest tiles (49 rows: 6,5,6,5,... not 8 x 6 + 1:
// a tile of one row leaves the multiply units as idle as a full tile keeps them busy).
class GemmTiling {
 public:
  GemmTiling(size_t mr, size_t nr, size_t n, size_t panel_bytes);

  size_t mr() const { return mr_; }
  size_t panels() const { return divide_round_up(n_, nr_); }

  // Calls tile(row, row_count, panel, column, column_count) over rows [0, rows) and the
  // columns of panels [panel_begin, panel_end).
  template <class Tile>
  void for_each_tile(size_t rows, size_t panel_begin, size_t panel_end, Tile&& tile) const {
    for (size_t p = panel_begin; p < panel_end; p += panels_per_block_) {
      const size_t n0 = p * nr_;
      const size_t nc = std::min(std::min(p + panels_per_block_, panel_end) * nr_, n_) - n0;
      const size_t tiles = divide_round_up(rows, mr_);
      for (size_t t = 0; t < tiles; ++t) {
        const size_t r = rows * t / tiles, r_end = rows * (t + 1) / tiles;
        tile(r, r_end - r, p, n0, nc);
      }
    }
  }

 private:
  size_t mr_, nr_, n_;
  size_t panels_per_block_;
};

// A pointwise (1x1) convolution or dense layer: c[m][n] = clamp(a[m][k] * kernel[k][n] + bias).
class PackedGemm {
 public:
  using Input = float;
  using Output = float;

  PackedGemm(const KernelSet& kernels, size_t k, size_t n, const F32Layer& layer);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  size_t mr() const { return tiling_.mr(); }
  size_t panels() const { return tiling_.panels(); }
  size_t weight_bytes() const { return (k_ + 1) * n_ * sizeof(float); }  // with the biases

  // Rows [0, rows) of `a` (rows a_stride elements apart) times the output channels of panels
  // [panel_begin, panel_end) into `c` (rows c_stride elements apart).
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
  GemmTiling tiling_;
};

// The int8 pointwise convolution or dense layer, requantizing into int8 (Output = int8_t), or
// dequantizing its sums into float32 (Output = float: an int8 network's classifier, whose
// logits a softmax reads; the layer's output quantization is then unused).
template <class OutputType>
class PackedQs8Gemm {
 public:
  using Input = int8_t;
  using Output = OutputType;

  PackedQs8Gemm(const KernelSet& kernels, size_t k, size_t n, const Qs8Layer& layer);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  size_t mr() const { return tiling_.mr(); }
  size_t panels() const { return tiling_.panels(); }
  size_t weight_bytes() const { return (k_ + 2 * sizeof(int32_t)) * n_; }  // with biases and scales

  void run(size_t rows, const int8_t* a, size_t a_stride, Output* c, size_t c_stride,
           size_t panel_begin, size_t panel_end) const;
  void run(size_t rows, const int8_t* a, size_t a_stride, Output* c, size_t c_stride) const {
    run(rows, a, a_stride, c, c_stride, 0, panels());
  }

 private:
  const Qs8KernelSet& kernels_;
  size_t k_, n_;
  size_t panel_bytes_;
  ByteBuffer packed_;
  Qs8Output output_;  // int8 output
  Clamp clamp_;       // float32 output
  GemmTiling tiling_;
};

// A network's first convolution (3x3, stride 2, 3 input channels) over one image, computed an
// output row at a time.
class PackedConv3x3s2c3 {
 public:
  using Element = float;

  PackedConv3x3s2c3(const KernelSet& kernels, Shape in, size_t out_channels, Padding padding,
                    const F32Layer& layer);

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
  Window window_;
  AlignedBuffer packed_;
  AlignedBuffer zero_row_;
  Clamp clamp_;
};

// The int8 first convolution; rows above or below the image read as the input zero point.
class PackedQs8Conv3x3s2c3 {
 public:
  using Element = int8_t;

  PackedQs8Conv3x3s2c3(const KernelSet& kernels, Shape in, size_t out_channels, Padding padding,
                       const Qs8Layer& layer);

  Shape input() const { return window_.in; }
  Shape output() const { return window_.out; }

  template <class InputRow>
  void run_row(size_t oy, InputRow&& input_row, int8_t* out) const {
    const int8_t* rows[3];
    window_.gather_rows(oy, 3, input_row, zero_row_.data(), rows);
    kernels_.conv3x3s2c3(window_.out.channels, window_.out.width, window_.in.width, window_.padding.left,
                         rows, packed_.data(), out, input_zero_point_, output_);
  }

 private:
  const Qs8KernelSet& kernels_;
  Window window_;
  ByteBuffer packed_;
  AlignedArray<int8_t> zero_row_;
  int32_t input_zero_point_;
  Qs8Output output_;
};

// Output rows [oy, oy + count) of a depthwise layer (3x3 or 5x5) into `out` (contiguous), two at
// a time (the kernels' unit): gathers each pair's input rows, `zero_row` above and below the
// image, and calls kernel(rows_now, rows, out).
template <class T, class InputRow, class Kernel>
void run_depthwise_rows(const Window& window, size_t oy, size_t count, InputRow&& input_row,
                        const T* zero_row, T* out, Kernel&& kernel) {
  const size_t out_row = window.out.width * window.out.channels;
  for (size_t end = oy + count; oy < end; oy += 2, out += 2 * out_row) {
    const size_t rows_now = end - oy >= 2 ? 2 : 1;
    const T* rows[2 + 5];  // at most stride 2 + a 5x5 window
    window.gather_rows(oy, (rows_now - 1) * window.stride + window.size, input_row, zero_row, rows);
    kernel(rows_now, rows, out);
  }
}

// A depthwise convolution over one image (3x3 or 5x5: dwconv3x3 or dwconv5x5), computed an
// output row at a time.
class PackedDepthwise {
 public:
  using Element = float;

  PackedDepthwise(const KernelSet& kernels, Shape in, size_t kernel_size, size_t stride,
                  Padding padding, const F32Layer& layer);

  Shape input() const { return window_.in; }
  Shape output() const { return window_.out; }
  size_t stride() const { return window_.stride; }
  size_t pad_top() const { return window_.padding.top; }

  // Output rows [oy, oy + count) into `out` (contiguous); `input_row(iy)` returns input row iy
  // (0 <= iy < input().height). Rows above or below the image read as zeros.
  template <class InputRow>
  void run_rows(size_t oy, size_t count, InputRow&& input_row, float* out) const {
    run_depthwise_rows(window_, oy, count, input_row, zero_row_.data(), out,
                       [&](size_t rows_now, const float* const* rows, float* y) {
                         dwconv_(window_.in.channels, rows_now, window_.out.width, window_.in.width,
                                 window_.stride, window_.padding.left, rows, packed_.data(), y, clamp_);
                       });
  }

 private:
  DwConv3x3Fn dwconv_;  // the kernel set's dwconv3x3 or dwconv5x5 (one signature)
  Window window_;
  AlignedBuffer packed_;
  AlignedBuffer zero_row_;
  Clamp clamp_;
};

// The int8 depthwise convolution, 3x3 only (kernel_size must be 3); rows above or below the
// image read as the input zero point.
class PackedQs8Depthwise {
 public:
  using Element = int8_t;

  PackedQs8Depthwise(const KernelSet& kernels, Shape in, size_t kernel_size, size_t stride,
                     Padding padding, const Qs8Layer& layer);

  Shape input() const { return window_.in; }
  Shape output() const { return window_.out; }
  size_t stride() const { return window_.stride; }
  size_t pad_top() const { return window_.padding.top; }

  template <class InputRow>
  void run_rows(size_t oy, size_t count, InputRow&& input_row, int8_t* out) const {
    run_depthwise_rows(window_, oy, count, input_row, zero_row_.data(), out,
                       [&](size_t rows_now, const int8_t* const* rows, int8_t* y) {
                         kernels_.dwconv3x3(window_.in.channels, rows_now, window_.out.width, window_.in.width,
                                            window_.stride, window_.padding.left, rows, packed_.data(), y,
                                            input_zero_point_, output_);
                       });
  }

 private:
  const Qs8KernelSet& kernels_;
  Window window_;
  ByteBuffer packed_;
  AlignedArray<int8_t> zero_row_;
  int32_t input_zero_point_;
  Qs8Output output_;
};

}  // namespace mnengine
