// Micro-kernel signatures and the per-ISA kernel sets.
//
// Every micro-kernel computes NHWC data: float32 (f32-*) or signed 8-bit quantized (qs8-*).
// Each family has a portable scalar reference (kernels/scalar) and SIMD versions (kernels/x86,
// kernels/arm). Kernels read exactly the elements their arguments describe: no reads past the
// end of any input, so callers need no tail slack.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace mnengine {

// f32-gemm: c[m][n] = clamp(bias[n] + sum_k a[m][k] * w[k][n]) for m < mr <= MR, n < nc.
// `packed_w` holds the weights packed by pack_gemm_weights() for this kernel's NR:
// panels of NR columns, each [NR biases][kc rows of NR weights]. Strides are in floats.
using GemmFn = void (*)(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                        const float* packed_w, float* c, size_t c_stride, Clamp clamp);

// f32-igemm: the same product with each row of A gathered from `ks` segments of kc floats:
// row i's segment s starts at a[s * mr + i] (the indirection of XNNPACK's igemm), so a
// convolution multiplies its input windows in place instead of copying them (im2col).
// The packed weights are those of a GEMM with k = ks * kc.
using IgemmFn = void (*)(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                         const float* packed_w, float* c, size_t c_stride, Clamp clamp);

// f32-dwconv 3x3: `out_rows` (1 or 2) consecutive output rows of a depthwise 3x3 convolution
// over `channels` channels, written contiguously to `out`. `rows` are the (out_rows - 1) *
// stride + 3 input rows under the kernel (each in_width * channels floats; a zero row where the
// kernel overhangs the top or bottom). Input column ix = ox * stride - pad_left + kx
// contributes only when 0 <= ix < in_width, so no padded copy of the input is needed.
// `packed_w` holds, per group of CR channels, [CR biases][9 taps of CR weights] (ky-major).
using DwConv3x3Fn = void (*)(size_t channels, size_t out_rows, size_t out_width, size_t in_width,
                             size_t stride, size_t pad_left, const float* const* rows,
                             const float* packed_w, float* out, Clamp clamp);

// f32-dwconv 5x5: the DwConv3x3Fn geometry with a 5x5 window: `rows` are the (out_rows - 1) *
// stride + 5 input rows under the 1 or 2 output rows; input column ix = ox * stride - pad_left +
// kx (kx < 5) contributes only when 0 <= ix < in_width. The padding is at most 4 on each side
// (pad_left <= 4, and out_width at most what a right padding of 4 gives), so that every window
// meets the image. `packed_w` holds, per group of the set's dwconv_cr channels, [CR biases][25
// taps of CR weights] (ky-major).
using DwConv5x5Fn = DwConv3x3Fn;

// f32-conv3x3s2c3: one output row of a 3x3 convolution with stride 2 over 3 input channels
// (a network's first layer, on RGB), `channels` output channels per pixel written contiguously
// to `out`. `rows` are the 3 input rows under the output row (each in_width * 3 floats; a zero
// row where the kernel overhangs the top or bottom). Input column ix = 2 * ox - pad_left + kx
// contributes only when 0 <= ix < in_width. `packed_w` holds, per group of CR output channels,
// [CR biases][27 taps of CR weights] (taps in Keras's order: ky, kx, input channel).
using Conv3x3s2c3Fn = void (*)(size_t channels, size_t out_width, size_t in_width, size_t pad_left,
                               const float* const* rows, const float* packed_w, float* out,
                               Clamp clamp);

// f32-vadd: y[i] = clamp(a[i] + b[i]).
using VAddFn = void (*)(size_t n, const float* a, const float* b, float* y, Clamp clamp);

// f32-vmulc: y[p][c] = x[p][c] * scale[c] for p < pixels, c < channels (x, y pixels x channels,
// contiguous): a squeeze-and-excitation block's gate on every pixel.
using VMulCFn = void (*)(size_t pixels, size_t channels, const float* x, const float* scale, float* y);

// f32-vhswish: y[i] = hard-swish(x[i]) = x[i] * relu6(x[i] + 3) / 6, rounded as the
// convolutions' output stage rounds it (Clamp in common.h).
using VHardSwishFn = void (*)(size_t n, const float* x, float* y);

// f32-gpool: y[c] = mean (or max) over `pixels` of x[p][c].
using GlobalPoolFn = void (*)(size_t pixels, size_t channels, const float* x, float* y);

// f32-softmax over one row of n values.
using SoftmaxFn = void (*)(size_t n, const float* x, float* y);

// A tight loop of independent register-only FMAs, for measuring the machine's peak: runs
// `iterations` rounds and returns the floating-point operations executed (2 per lane per FMA).
// `sink` receives a value derived from the accumulators so the loop cannot be elided.
using FmaPeakFn = uint64_t (*)(uint64_t iterations, float* sink);

// ---- qs8: signed 8-bit quantized kernels (TFLite's int8 scheme) ----------------------------
//
// A real value r is stored as q = round(r / scale) + zero_point in int8. Weights are
// per-output-channel symmetric (zero point 0, |q| <= 127), biases int32 at scale
// input_scale * weight_scale[c]. A layer sums int32 products and requantizes each sum in
// float32, as XNNPACK's fp32 scheme does:
//   q = int(round_to_nearest_even(clamp(float(acc) * scale[c], min, max))) + zero_point
// where min and max are the output range less the zero point (the fused ReLU/ReLU6 is part of
// that range). Every SIMD kernel reproduces its scalar reference bit for bit: float products
// and sums are done one IEEE operation at a time (no fused multiply-add where the reference
// has none), and the rounding is the CPU's default round-to-nearest-even.
struct Qs8Output {
  int32_t zero_point;
  float min;  // output minimum less zero_point, in [-255, 0]
  float max;  // output maximum less zero_point, in [0, 255]
};

// qs8-gemm: c[m][n] = requantize(bias[n] + sum_k a[m][k] * w[k][n], scale[n]) for m < mr <= MR,
// n < nc. `packed_w` is pack_qs8_gemm_weights()'s layout for this kernel's NR and KR: panels of
// NR columns, each [NR int32 biases][ceil(kc / KR) blocks of NR x KR int8 weights, a column's
// KR consecutive k together][NR float32 scales], 4-byte aligned. The biases include the input
// zero point's share (-zero_point * sum_k w[k][n]) and the kernel set's input offset (kernels
// that read A as unsigned bytes, a + 128, have -128 * sum_k w[k][n] folded in). Strides are in
// bytes (= elements).
using Qs8GemmFn = void (*)(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                           const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& out);

// qs8-gemm with float32 output, for an int8 network's last layer (its classifier): the same
// sums on the same packed weights, dequantized instead of requantized:
// c[m][n] = clamp(float(acc) * scale[n]) with the packed scales input_scale * weight_scale[n]
// and a real-valued clamp (product, then clamp; c_stride in floats). No int8 rounding or range
// limits the logits a softmax then reads.
using Qs8GemmF32Fn = void (*)(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                              const void* packed_w, float* c, size_t c_stride, Clamp clamp);

// qs8-dwconv 3x3: the f32 depthwise kernel's geometry (see DwConv3x3Fn) on int8 rows. Taps
// outside the image read as `input_zero_point` (a real zero), so the packed bias, which holds
// -input_zero_point * (sum of the 9 taps), is right for every window. `packed_w` holds, per
// group of CR channels, [CR int32 biases][9 taps of CR int8 weights][CR float32 scales].
using Qs8DwConv3x3Fn = void (*)(size_t channels, size_t out_rows, size_t out_width,
                                size_t in_width, size_t stride, size_t pad_left,
                                const int8_t* const* rows, const void* packed_w, int8_t* out,
                                int32_t input_zero_point, const Qs8Output& output);

// qs8-conv3x3s2c3: the f32 first-layer kernel's geometry (see Conv3x3s2c3Fn) on int8 rows,
// taps outside the image reading as `input_zero_point`. `packed_w` holds, per group of CR
// output channels, [CR int32 biases][27 taps of CR int8 weights][CR float32 scales].
using Qs8Conv3x3s2c3Fn = void (*)(size_t channels, size_t out_width, size_t in_width,
                                  size_t pad_left, const int8_t* const* rows,
                                  const void* packed_w, int8_t* out, int32_t input_zero_point,
                                  const Qs8Output& output);

// qs8-vadd: y[i] = requantize of float(a[i] - a_zero_point) * a_scale +
// float(b[i] - b_zero_point) * b_scale (two products, then their sum, each rounded to float32),
// where a_scale and b_scale are the operands' scales over the output's.
struct Qs8AddParams {
  int32_t a_zero_point;
  int32_t b_zero_point;
  float a_scale;
  float b_scale;
  Qs8Output output;
};
using Qs8VAddFn = void (*)(size_t n, const int8_t* a, const int8_t* b, int8_t* y,
                           const Qs8AddParams& params);

// qs8-gavgpool: y[c] = requantize(sum_p x[p][c] - pixels * input_zero_point, scale), scale being
// input_scale / (output_scale * pixels). qs8-gmaxpool: y[c] = requantize(max_p x[p][c] -
// input_zero_point, scale), scale = input_scale / output_scale. pixels * 255 fits in int32.
using Qs8GlobalPoolFn = void (*)(size_t pixels, size_t channels, const int8_t* x, int8_t* y,
                                 int32_t input_zero_point, float scale, const Qs8Output& output);

// qs8-quantize: y[i] = int(round_to_nearest_even(clamp(x[i] * inv_scale, min, max))) +
// zero_point, NaN taken as min. qs8-dequantize: y[i] = float(x[i] - zero_point) * scale.
using Qs8QuantizeFn = void (*)(size_t n, const float* x, int8_t* y, float inv_scale,
                               const Qs8Output& output);
using Qs8DequantizeFn = void (*)(size_t n, const int8_t* x, float* y, int32_t zero_point,
                                 float scale);

// A tight loop of the qs8 GEMM's own dot-product instruction on registers, for the int8 peak:
// returns the multiply-adds executed.
using DotPeakFn = uint64_t (*)(uint64_t iterations, int32_t* sink);

struct Qs8KernelSet {
  const char* name;  // the family of qs8 kernels: several ISAs may share one
  size_t gemm_mr;
  size_t gemm_nr;
  size_t gemm_kr;
  int32_t gemm_input_offset;  // 128 where the GEMM reads A as unsigned bytes, else 0
  Qs8GemmFn gemm;
  Qs8GemmF32Fn gemm_f32;  // same MR, NR, KR and packing as gemm
  size_t dwconv_cr;
  Qs8DwConv3x3Fn dwconv3x3;
  size_t conv3x3s2c3_cr;
  Qs8Conv3x3s2c3Fn conv3x3s2c3;
  Qs8VAddFn vadd;
  Qs8GlobalPoolFn global_avg_pool;
  Qs8GlobalPoolFn global_max_pool;
  Qs8QuantizeFn quantize;
  Qs8DequantizeFn dequantize;
  DotPeakFn dot_peak;
};

struct KernelSet {
  const char* isa;
  const char* f32_name;  // the family of f32 kernels: several ISAs may share one
  size_t gemm_mr;
  size_t gemm_nr;
  GemmFn gemm;
  IgemmFn igemm;  // same MR, NR and packing as gemm
  size_t dwconv_cr;
  DwConv3x3Fn dwconv3x3;
  size_t conv3x3s2c3_cr;
  Conv3x3s2c3Fn conv3x3s2c3;
  VAddFn vadd;
  GlobalPoolFn global_avg_pool;
  GlobalPoolFn global_max_pool;
  SoftmaxFn softmax;
  FmaPeakFn fma_peak;
  VMulCFn vmulc;
  VHardSwishFn vhswish;
  DwConv5x5Fn dwconv5x5;  // same CR and packing layout (25 taps) as dwconv3x3
  Qs8KernelSet qs8;
};

const KernelSet& scalar_kernels();
#if defined(__x86_64__) || defined(_M_X64)
const KernelSet& avx2_fma_kernels();
const KernelSet& avx512f_kernels();
const KernelSet& avx512vnni_kernels();  // avx512f's float kernels, int8 on VPDPBUSD
#endif
#if defined(__aarch64__)
const KernelSet& neon_kernels();
const KernelSet& neon_dotprod_kernels();  // neon's float kernels, int8 on SDOT (ARMv8.2)
#endif

// Weight packing into the layouts above. `kernel` is [k][n] (Keras's HWIO with H = W = 1,
// or Dense's [in][out]); `bias` may be null.
AlignedBuffer pack_gemm_weights(size_t k, size_t n, size_t nr, const float* kernel,
                                const float* bias);
// Per group of cr channels, [cr biases][taps rows of cr weights], from `kernel` [taps][channels]:
// the depthwise kernels ([3][3][channels] or [5][5][channels], Keras's with multiplier 1: 9 or
// 25 taps) and the first convolution's ([3][3][3][channels]: 27 taps).
AlignedBuffer pack_channel_group_weights(size_t channels, size_t taps, size_t cr,
                                         const float* kernel, const float* bias);

// qs8 packings (layouts above). `kernel` is int8 [k][n] (or [taps][channels]), `bias` int32
// (may be null), `scale` the float32 requantization scale of each output channel;
// `input_zero_point` and `input_offset` are folded into the biases.
ByteBuffer pack_qs8_gemm_weights(size_t k, size_t n, size_t nr, size_t kr, const int8_t* kernel,
                                 const int32_t* bias, const float* scale,
                                 int32_t input_zero_point, int32_t input_offset);
ByteBuffer pack_qs8_channel_group_weights(size_t channels, size_t taps, size_t cr,
                                          const int8_t* kernel, const int32_t* bias,
                                          const float* scale, int32_t input_zero_point);

}  // namespace mnengine
