// Micro-kernel signatures and the per-ISA kernel sets.
//
// Every micro-kernel computes NHWC float32 data. Each family has a portable scalar
// reference (kernels/scalar), an AVX2+FMA version (kernels/x86) and a NEON version
// (kernels/arm). Kernels read exactly the elements their arguments describe: no
// reads past the end of any input, so callers need no tail slack.
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

// f32-gpool: y[c] = mean (or max) over `pixels` of x[p][c].
using GlobalPoolFn = void (*)(size_t pixels, size_t channels, const float* x, float* y);

// f32-softmax over one row of n values.
using SoftmaxFn = void (*)(size_t n, const float* x, float* y);

// A tight loop of independent register-only FMAs, for measuring the machine's peak: runs
// `iterations` rounds and returns the floating-point operations executed (2 per lane per FMA).
// `sink` receives a value derived from the accumulators so the loop cannot be elided.
using FmaPeakFn = uint64_t (*)(uint64_t iterations, float* sink);

struct KernelSet {
  const char* isa;
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
};

const KernelSet& scalar_kernels();
#if defined(__x86_64__) || defined(_M_X64)
const KernelSet& avx2_fma_kernels();
const KernelSet& avx512f_kernels();
#endif
#if defined(__aarch64__)
const KernelSet& neon_kernels();
#endif

// Weight packing into the layouts above. `kernel` is [k][n] (Keras's HWIO with H = W = 1,
// or Dense's [in][out]); `bias` may be null.
AlignedBuffer pack_gemm_weights(size_t k, size_t n, size_t nr, const float* kernel,
                                const float* bias);
// Per group of cr channels, [cr biases][taps rows of cr weights], from `kernel` [taps][channels]:
// the depthwise kernel ([3][3][channels], Keras's with multiplier 1: 9 taps) and the first
// convolution's ([3][3][3][channels]: 27 taps).
AlignedBuffer pack_channel_group_weights(size_t channels, size_t taps, size_t cr,
                                         const float* kernel, const float* bias);

}  // namespace mnengine
