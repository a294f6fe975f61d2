// f32-gemm 6x8 neon and f32-igemm 6x8 neon: up to 6 rows of A against 8-column panels of
// packed weights, XNNPACK's choice for Cortex-A76 / Neoverse-N1. Registers: 12 accumulators
// (6 rows x 2 q), 6 q of A holding 4 consecutive k of each row, 2 q of weights: 20 of the 32.
// Loading A four k at a time and multiplying by lane (FMLA by element) takes one load of A
// per four FMAs instead of a broadcast per FMA.
//
// As in the AVX2 kernel, each row count 1..6 has its own instantiation and the per-row code
// is written as fold expressions over an index sequence, so accumulators stay in registers.
#include <utility>

#include "../f32-output-stage.h"
#include "../gemm-rows.h"
#include "neon.h"

namespace mnengine {
namespace {

// Weights are read from memory once per inference (a network's weights outgrow the caches):
// each 4-k block (two cache lines of them) asks for the lines 4 KiB ahead, far enough to cover
// memory latency. (Past the end of the weights this is harmless: a prefetch never faults.)
constexpr size_t kPrefetchFloats = 1024;

// Clang defines these intrinsics as macros, which a fold expression cannot expand through.
inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
template <int kLane>
inline float32x4_t fma_lane(float32x4_t acc, float32x4_t b, float32x4_t a) {
  return vfmaq_laneq_f32(acc, b, a, kLane);
}
inline float32x4_t fma_scalar(float32x4_t acc, float32x4_t b, float a) { return vfmaq_n_f32(acc, b, a); }

// k step `kLane` of a 4-k block: weights row w[kLane], A's lane kLane.
template <int kLane, size_t... I>
inline void lane_step(std::index_sequence<I...>, const float* w, const float32x4_t* a,
                      float32x4_t* lo, float32x4_t* hi) {
  const float32x4_t b_lo = vld1q_f32(w + 8 * kLane), b_hi = vld1q_f32(w + 8 * kLane + 4);
  ((lo[I] = fma_lane<kLane>(lo[I], b_lo, a[I])), ...);
  ((hi[I] = fma_lane<kLane>(hi[I], b_hi, a[I])), ...);
}

inline void store8(float* c, float32x4_t lo, float32x4_t hi, size_t columns) {
  if (columns >= 8) {
    vst1q_f32(c, lo);
    vst1q_f32(c + 4, hi);
  } else if (columns >= 4) {
    vst1q_f32(c, lo);
    neon::store_partial(c + 4, hi, columns - 4);
  } else {
    neon::store_partial(c, lo, columns);
  }
}

// One 8-column panel for rows I..., storing its first `columns` (1..8) columns.
template <class Output, size_t... I>
inline void panel8(std::index_sequence<I...> rows, size_t kc, size_t ks, const float* const* a,
                   const float* w, float* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  const float32x4_t bias_lo = vld1q_f32(w), bias_hi = vld1q_f32(w + 4);
  float32x4_t lo[kRows] = {(static_cast<void>(I), bias_lo)...};
  float32x4_t hi[kRows] = {(static_cast<void>(I), bias_hi)...};
  w += 8;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    size_t k = 0;
    for (; k + 4 <= kc; k += 4, w += 32) {
      __builtin_prefetch(w + kPrefetchFloats);
      __builtin_prefetch(w + kPrefetchFloats + 16);
      const float32x4_t a4[kRows] = {load4(row[I] + k)...};
      lane_step<0>(rows, w, a4, lo, hi);
      lane_step<1>(rows, w, a4, lo, hi);
      lane_step<2>(rows, w, a4, lo, hi);
      lane_step<3>(rows, w, a4, lo, hi);
    }
    for (; k < kc; ++k, w += 8) {
      const float32x4_t b_lo = vld1q_f32(w), b_hi = vld1q_f32(w + 4);
      ((lo[I] = fma_scalar(lo[I], b_lo, row[I][k])), ...);
      ((hi[I] = fma_scalar(hi[I], b_hi, row[I][k])), ...);
    }
  }
  (store8(c[I], output(lo[I]), output(hi[I]), columns), ...);
}

// kPanels full 8-column panels at once, for one or two rows: alone they would leave the FMA
// units waiting on their accumulators' latency (two chains per row); several panels give
// eight independent chains and as many weight streams, while every output's sum keeps its
// order (results do not depend on how rows were tiled).
template <class Output, size_t... P, size_t... I>
inline void panels8(std::index_sequence<P...>, std::index_sequence<I...> rows, size_t kc, size_t ks,
                    const float* const* a, const float* w, size_t panel_floats, float* const* c,
                    const Output& output) {
  constexpr size_t kRows = sizeof...(I), kPanels = sizeof...(P);
  float32x4_t lo[kPanels][kRows], hi[kPanels][kRows];
  const auto start = [&](auto p) {
    constexpr size_t kP = decltype(p)::value;
    ((lo[kP][I] = vld1q_f32(w + kP * panel_floats)), ...);
    ((hi[kP][I] = vld1q_f32(w + kP * panel_floats + 4)), ...);
  };
  (start(std::integral_constant<size_t, P>()), ...);
  w += 8;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    size_t k = 0;
    for (; k + 4 <= kc; k += 4, w += 32) {
      const float32x4_t a4[kRows] = {load4(row[I] + k)...};
      const auto block = [&](auto p) {
        constexpr size_t kP = decltype(p)::value;
        const float* wp = w + kP * panel_floats;
        __builtin_prefetch(wp + kPrefetchFloats);
        __builtin_prefetch(wp + kPrefetchFloats + 16);
        lane_step<0>(rows, wp, a4, lo[kP], hi[kP]);
        lane_step<1>(rows, wp, a4, lo[kP], hi[kP]);
        lane_step<2>(rows, wp, a4, lo[kP], hi[kP]);
        lane_step<3>(rows, wp, a4, lo[kP], hi[kP]);
      };
      (block(std::integral_constant<size_t, P>()), ...);
    }
    for (; k < kc; ++k, w += 8) {
      const auto step = [&](auto p) {
        constexpr size_t kP = decltype(p)::value;
        const float32x4_t b_lo = vld1q_f32(w + kP * panel_floats), b_hi = vld1q_f32(w + kP * panel_floats + 4);
        ((lo[kP][I] = fma_scalar(lo[kP][I], b_lo, row[I][k])), ...);
        ((hi[kP][I] = fma_scalar(hi[kP][I], b_hi, row[I][k])), ...);
      };
      (step(std::integral_constant<size_t, P>()), ...);
    }
  }
  const auto finish = [&](auto p) {
    constexpr size_t kP = decltype(p)::value;
    (store8(c[I] + 8 * kP, output(lo[kP][I]), output(hi[kP][I]), 8), ...);
  };
  (finish(std::integral_constant<size_t, P>()), ...);
}

template <size_t kRows, bool kHardSwish>
void igemm_rows(size_t nc, size_t kc, size_t ks, const float* const* a, const float* w,
                float* c, size_t c_stride, Clamp clamp) {
  const auto rows = std::make_index_sequence<kRows>();
  const OutputStage<neon::Simd, kHardSwish> output(clamp);
  float* c_row[kRows];
  for (size_t i = 0; i < kRows; ++i) c_row[i] = c + i * c_stride;
  const size_t panel_floats = (1 + ks * kc) * 8;
  if constexpr (kRows <= 2) {
    constexpr size_t kPanels = 4 / kRows;
    for (; nc >= 8 * kPanels; nc -= 8 * kPanels, w += kPanels * panel_floats) {
      panels8(std::make_index_sequence<kPanels>(), rows, kc, ks, a, w, panel_floats, c_row, output);
      for (size_t i = 0; i < kRows; ++i) c_row[i] += 8 * kPanels;
    }
  }
  for (; nc != 0; nc = nc > 8 ? nc - 8 : 0, w += panel_floats) {
    panel8(rows, kc, ks, a, w, c_row, nc, output);
    for (size_t i = 0; i < kRows; ++i) c_row[i] += 8;
  }
}

}  // namespace

void f32_igemm_6x8__neon(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                         const float* w, float* c, size_t c_stride, Clamp clamp) {
  with_hard_swish(clamp, [&](auto hard_swish) {
    dispatch_rows(mr, [&](auto rows) {
      igemm_rows<decltype(rows)::value, decltype(hard_swish)::value>(nc, kc, ks, a, w, c, c_stride, clamp);
    });
  });
}

void f32_gemm_6x8__neon(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                        const float* w, float* c, size_t c_stride, Clamp clamp) {
  gemm_via_igemm<f32_igemm_6x8__neon, 6>(mr, nc, kc, a, a_stride, w, c, c_stride, clamp);
}

}  // namespace mnengine
