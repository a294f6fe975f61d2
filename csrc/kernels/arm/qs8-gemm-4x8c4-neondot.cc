// qs8-gemm 4x8c4 neondot and qs8-gemm-f32 4x8c4 neondot (the same sums dequantized to float32)
// (ARMv8.2 dot product): up to 4 rows of A against 8-column panels
// packed with KR = 4 (each column's 4 consecutive k together, 16 bytes for 4 columns). SDOT by
// element multiplies one q register of weights (4 columns x 4 k) by 4 k of one row of A (a
// 32-bit lane) and adds each column's 4 products to its int32 lane: 16 multiply-adds per
// instruction, signed by signed, so A needs no offset (gemm_input_offset 0) and nothing
// narrower than int32 can overflow.
// Registers: 8 accumulators (4 rows x 2 q), 4 of A (16 k of each row, one lane per SDOT), 2 of
// weights per 4 k. 8 accumulators cover SDOT's latency (2 to 4 cycles) at up to 2 per cycle.
#include <cstddef>

#include "neon.h"
#include "../unroll.h"

namespace mnengine {
namespace {

constexpr size_t kNR = 8, kKR = 4;
constexpr size_t kPrefetchBytes = 4096;  // as in the f32 GEMM: weights come from memory once

template <int kLane, size_t kRows>
inline void dot_block(const int8_t* wk, const int8x16_t* va, int32x4_t* lo, int32x4_t* hi) {
  const int8x16x2_t w = vld1q_s8_x2(wk);  // columns 0-3 and 4-7, one LD1 of two registers
  MNENGINE_UNROLL(4)
  for (size_t i = 0; i < kRows; ++i) {
    lo[i] = vdotq_laneq_s32(lo[i], w.val[0], va[i], kLane);
    hi[i] = vdotq_laneq_s32(hi[i], w.val[1], va[i], kLane);
  }
}

template <size_t kRows, class Output>
void gemm_rows(size_t nc, size_t kc, const int8_t* a, size_t a_stride, const uint8_t* w,
               typename Output::Type* c, size_t c_stride, const Output& output) {
  const size_t k_bytes = round_up(kc, kKR) * kNR;  // the weights of one panel
  const int8_t* row[kRows];
  for (size_t i = 0; i < kRows; ++i) row[i] = a + i * a_stride;
  for (;;) {
    int32x4_t lo[kRows], hi[kRows];
    const int32x4_t bias_lo = neon::load_s32(w), bias_hi = neon::load_s32(w + 16);
    MNENGINE_UNROLL(4)
    for (size_t i = 0; i < kRows; ++i) lo[i] = bias_lo, hi[i] = bias_hi;
    const auto* wk = reinterpret_cast<const int8_t*>(w + kNR * sizeof(int32_t));
    size_t k = 0;
    for (; k + 4 * kKR <= kc; k += 4 * kKR, wk += 4 * kKR * kNR) {
      __builtin_prefetch(wk + kPrefetchBytes);
      __builtin_prefetch(wk + kPrefetchBytes + 64);
      int8x16_t va[kRows];
      MNENGINE_UNROLL(4)
      for (size_t i = 0; i < kRows; ++i) va[i] = vld1q_s8(row[i] + k);
      dot_block<0, kRows>(wk, va, lo, hi);
      dot_block<1, kRows>(wk + kKR * kNR, va, lo, hi);
      dot_block<2, kRows>(wk + 2 * kKR * kNR, va, lo, hi);
      dot_block<3, kRows>(wk + 3 * kKR * kNR, va, lo, hi);
    }
    // The last 1..15 k, 4 at a time (the partial last block's padding weights are 0).
    for (; k < kc; k += kKR, wk += kKR * kNR) {
      int8x16_t va[kRows];
      MNENGINE_UNROLL(4)
      for (size_t i = 0; i < kRows; ++i) {
        if (kc - k >= kKR) {
          int32_t four;
          std::memcpy(&four, row[i] + k, sizeof(four));
          va[i] = vreinterpretq_s8_s32(vdupq_n_s32(four));
        } else {
          va[i] = neon::load_partial_s8(row[i] + k, kc - k);
        }
      }
      dot_block<0, kRows>(wk, va, lo, hi);
    }
    const uint8_t* scales = w + kNR * sizeof(int32_t) + k_bytes;
    const float32x4_t scale_lo = neon::load_f32(scales), scale_hi = neon::load_f32(scales + 16);
    const size_t columns = nc < kNR ? nc : kNR;
    MNENGINE_UNROLL(4)
    for (size_t i = 0; i < kRows; ++i) {
      output.store(c + i * c_stride, neon::scaled(lo[i], scale_lo), neon::scaled(hi[i], scale_hi), columns);
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
  switch (mr) {
    case 1: return gemm_rows<1>(nc, kc, a, a_stride, w, c, c_stride, output);
    case 2: return gemm_rows<2>(nc, kc, a, a_stride, w, c, c_stride, output);
    case 3: return gemm_rows<3>(nc, kc, a, a_stride, w, c, c_stride, output);
    default: return gemm_rows<4>(nc, kc, a, a_stride, w, c, c_stride, output);
  }
}

}  // namespace

void qs8_gemm_4x8c4__neondot(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                             const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output) {
  gemm(mr, nc, kc, a, a_stride, packed_w, c, c_stride, neon::Qs8GemmInt8Output{neon::Qs8Requantize(output)});
}

void qs8_gemm_f32_4x8c4__neondot(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                 const void* packed_w, float* c, size_t c_stride, Clamp clamp) {
  gemm(mr, nc, kc, a, a_stride, packed_w, c, c_stride,
       neon::Qs8GemmFloatOutput{vdupq_n_f32(clamp.min), vdupq_n_f32(clamp.max)});
}

}  // namespace mnengine

