// qs8-gemm 2x8c8 neon and qs8-gemm-f32 2x8c8 neon (the same sums dequantized to float32)
// (ARMv8.0): up to 2 rows of A against 8-column panels packed with KR = 8
// (each column's 8 consecutive k together), XNNPACK's scheme for the cores without the dot
// product (Cortex-A57/A72/A73). Per 16 k of a row and a column: SMULL multiplies 8 int8 pairs
// into int16, SMLAL adds the next 8 products to them, SADALP adds adjacent int16 pairs into the
// column's int32x4 accumulator. Two products of int8 by a weight of magnitude <= 127 fit
// int16 (2 * 128 * 127 = 32512): that is why weights are in [-127, 127] and why SMLAL may add
// the second product without saturation. The 8 multiplies per instruction are the point:
// int16 x int16 -> int32 multiply-adds (SMLAL by element, KR = 1) do 4.
// Registers: 16 accumulators (2 rows x 8 columns), 4 D of A (16 k of each row), products and
// the weights streamed through D registers: under 32, no spills. Each accumulator holds four
// partial sums of its column, added pairwise (ADDP) at the end.
#include <cstddef>

#include "neon.h"
#include "../unroll.h"

namespace mnengine {
namespace {

constexpr size_t kNR = 8, kKR = 8;
// Ahead of the weights being read, as in the f32 GEMM (4 KiB covers memory latency): the
// first row tile of a block of panels reads them from memory.
constexpr size_t kPrefetchBytes = 4096;

template <size_t kRows, class Output>
void gemm_rows(size_t nc, size_t kc, const int8_t* a, size_t a_stride, const uint8_t* w,
               typename Output::Type* c, size_t c_stride, const Output& output) {
  const size_t k_bytes = round_up(kc, kKR) * kNR;  // the weights of one panel
  const int8_t* row[kRows];
  for (size_t i = 0; i < kRows; ++i) row[i] = a + i * a_stride;
  for (;;) {
    int32x4_t acc[kRows][kNR];
    MNENGINE_UNROLL(8)
    for (size_t i = 0; i < kRows; ++i) {
      MNENGINE_UNROLL(8)
      for (size_t j = 0; j < kNR; ++j) acc[i][j] = vdupq_n_s32(0);
    }
    const auto* wk = reinterpret_cast<const int8_t*>(w + kNR * sizeof(int32_t));
    size_t k = 0;
    for (; k + 2 * kKR <= kc; k += 2 * kKR, wk += 2 * kKR * kNR) {
      __builtin_prefetch(wk + kPrefetchBytes);
      __builtin_prefetch(wk + kPrefetchBytes + 64);
      // A as two D registers per row (a pair load), not one q: SMULL reads D registers, and
      // the upper half of a q would take an EXT to get there.
      int8x8_t va0[kRows], va1[kRows];
      MNENGINE_UNROLL(8)
      for (size_t i = 0; i < kRows; ++i) va0[i] = vld1_s8(row[i] + k), va1[i] = vld1_s8(row[i] + k + kKR);
      MNENGINE_UNROLL(8)
      for (size_t j = 0; j < kNR; ++j) {
        const int8x8_t w0 = vld1_s8(wk + j * kKR), w1 = vld1_s8(wk + (kNR + j) * kKR);
        MNENGINE_UNROLL(8)
        for (size_t i = 0; i < kRows; ++i) {
          const int16x8_t products = vmlal_s8(vmull_s8(w0, va0[i]), w1, va1[i]);
          acc[i][j] = vpadalq_s16(acc[i][j], products);
        }
      }
    }
    // The last 1..15 k: a whole block of 8, then a partial one (its padding weights are 0).
    for (; k < kc; k += kKR, wk += kKR * kNR) {
      int8x8_t va[kRows];
      MNENGINE_UNROLL(8)
      for (size_t i = 0; i < kRows; ++i)
        va[i] = kc - k >= kKR ? vld1_s8(row[i] + k) : vget_low_s8(neon::load_partial_s8(row[i] + k, kc - k));
      MNENGINE_UNROLL(8)
      for (size_t j = 0; j < kNR; ++j) {
        const int8x8_t wj = vld1_s8(wk + j * kKR);
        MNENGINE_UNROLL(8)
        for (size_t i = 0; i < kRows; ++i) acc[i][j] = vpadalq_s16(acc[i][j], vmull_s8(wj, va[i]));
      }
    }
    const int32x4_t bias_lo = neon::load_s32(w), bias_hi = neon::load_s32(w + 16);
    const uint8_t* scales = w + kNR * sizeof(int32_t) + k_bytes;
    const float32x4_t scale_lo = neon::load_f32(scales), scale_hi = neon::load_f32(scales + 16);
    const size_t columns = nc < kNR ? nc : kNR;
    MNENGINE_UNROLL(8)
    for (size_t i = 0; i < kRows; ++i) {
      const int32x4_t sum_lo = vpaddq_s32(vpaddq_s32(acc[i][0], acc[i][1]), vpaddq_s32(acc[i][2], acc[i][3]));
      const int32x4_t sum_hi = vpaddq_s32(vpaddq_s32(acc[i][4], acc[i][5]), vpaddq_s32(acc[i][6], acc[i][7]));
      output.store(c + i * c_stride, neon::scaled(vaddq_s32(sum_lo, bias_lo), scale_lo),
                   neon::scaled(vaddq_s32(sum_hi, bias_hi), scale_hi), columns);
    }
    if (nc <= kNR) return;
    nc -= kNR;
    c += kNR;
    w = scales + kNR * sizeof(float);
  }
}

}  // namespace

namespace {

template <class Output>
void gemm(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride, const void* packed_w,
          typename Output::Type* c, size_t c_stride, const Output& output) {
  const auto* w = static_cast<const uint8_t*>(packed_w);
  if (mr == 2) {
    gemm_rows<2>(nc, kc, a, a_stride, w, c, c_stride, output);
  } else {
    gemm_rows<1>(nc, kc, a, a_stride, w, c, c_stride, output);
  }
}

}  // namespace

void qs8_gemm_2x8c8__neon(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                          const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output) {
  gemm(mr, nc, kc, a, a_stride, packed_w, c, c_stride, neon::Qs8GemmInt8Output{neon::Qs8Requantize(output)});
}

void qs8_gemm_f32_2x8c8__neon(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                              const void* packed_w, float* c, size_t c_stride, Clamp clamp) {
  gemm(mr, nc, kc, a, a_stride, packed_w, c, c_stride,
       neon::Qs8GemmFloatOutput{vdupq_n_f32(clamp.min), vdupq_n_f32(clamp.max)});
}

}  // namespace mnengine

