// f32-gemm 7x32 avx512f and f32-igemm 7x32 avx512f: up to 7 rows of A against 32-column
// panels of packed weights. Registers: 14 accumulators (7 rows x 2 zmm), 2 weight vectors,
// 1 broadcast of A, out of 32. Against the 6x16 AVX2 kernel a step issues half the
// instructions for the same multiply-adds (a zmm FMA does two ymm FMAs' work) and loads
// 9 values per 14 FMAs instead of 8 per 12, which leaves the core room to run ahead into the
// next weights. Each row count 1..7 has its own instantiation, and a last panel of 16 columns
// or fewer computes only its low half. Column tails use AVX-512 masks.
//
// Unlike the AVX2 kernel this one issues no software prefetch: with the hardware prefetchers
// alone MobileNet v1 ran 1-2% faster (its 7x7 layers up to 12%) than with both weight lines
// prefetched 4 KiB ahead.
//
// As in the AVX2 kernel, the per-row code is written as fold expressions over an index
// sequence, so every accumulator index is a constant and the accumulators stay in registers.
#include <utility>

#include "../f32-output-stage.h"
#include "../gemm-rows.h"
#include "avx512_helpers.h"

namespace mnengine {
namespace {

using avx512::lanes_mask;

// Row i's step of a 32-column panel: one broadcast of A, two FMAs.
inline void step32(const float* a_ik, __m512 b_lo, __m512 b_hi, __m512& lo, __m512& hi) {
  const __m512 a = _mm512_set1_ps(*a_ik);
  lo = _mm512_fmadd_ps(a, b_lo, lo);
  hi = _mm512_fmadd_ps(a, b_hi, hi);
}

template <class Output>
inline void store32(float* c, __m512 lo, __m512 hi, size_t columns, const Output& output) {
  _mm512_storeu_ps(c, output(lo));
  if (columns >= 32) {
    _mm512_storeu_ps(c + 16, output(hi));
  } else {
    _mm512_mask_storeu_ps(c + 16, lanes_mask(columns - 16), output(hi));
  }
}

// One 32-column panel for rows I..., storing its first `columns` (17..32) columns.
template <class Output, size_t... I>
inline void panel32(std::index_sequence<I...>, size_t kc, size_t ks, const float* const* a,
                    const float* w, float* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  const __m512 bias_lo = _mm512_load_ps(w), bias_hi = _mm512_load_ps(w + 16);
  __m512 lo[kRows] = {(static_cast<void>(I), bias_lo)...};
  __m512 hi[kRows] = {(static_cast<void>(I), bias_hi)...};
  w += 32;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    for (size_t k = 0; k < kc; ++k, w += 32) {
      const __m512 b_lo = _mm512_load_ps(w), b_hi = _mm512_load_ps(w + 16);
      (step32(row[I] + k, b_lo, b_hi, lo[I], hi[I]), ...);
    }
  }
  (store32(c[I], lo[I], hi[I], columns, output), ...);
}

// The low half of a panel, when 16 or fewer columns are left: half the multiply-adds.
template <class Output, size_t... I>
inline void panel16(std::index_sequence<I...>, size_t kc, size_t ks, const float* const* a,
                    const float* w, float* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  const __m512 bias = _mm512_load_ps(w);
  __m512 lo[kRows] = {(static_cast<void>(I), bias)...};
  w += 32;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    for (size_t k = 0; k < kc; ++k, w += 32) {
      const __m512 b = _mm512_load_ps(w);
      ((lo[I] = _mm512_fmadd_ps(_mm512_set1_ps(row[I][k]), b, lo[I])), ...);
    }
  }
  const __mmask16 mask = lanes_mask(columns);
  (_mm512_mask_storeu_ps(c[I], mask, output(lo[I])), ...);
}

// kPanels full 32-column panels at once, for one or two rows: alone they would leave the
// FMA units waiting on their accumulators' latency (two chains per row); several panels give
// eight independent chains, while every output's sum keeps its order (results do not depend
// on how rows were tiled).
template <class Output, size_t... P, size_t... I>
inline void panels32(std::index_sequence<P...>, std::index_sequence<I...>, size_t kc, size_t ks,
                     const float* const* a, const float* w, size_t panel_floats,
                     float* const* c, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  constexpr size_t kPanels = sizeof...(P);
  __m512 lo[kPanels][kRows], hi[kPanels][kRows];
  const auto start = [&](auto p) {
    constexpr size_t kP = decltype(p)::value;
    ((lo[kP][I] = _mm512_load_ps(w + kP * panel_floats)), ...);
    ((hi[kP][I] = _mm512_load_ps(w + kP * panel_floats + 16)), ...);
  };
  (start(std::integral_constant<size_t, P>()), ...);
  w += 32;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    for (size_t k = 0; k < kc; ++k, w += 32) {
      const auto step = [&](auto p) {
        constexpr size_t kP = decltype(p)::value;
        const float* wp = w + kP * panel_floats;
        const __m512 b_lo = _mm512_load_ps(wp), b_hi = _mm512_load_ps(wp + 16);
        (step32(row[I] + k, b_lo, b_hi, lo[kP][I], hi[kP][I]), ...);
      };
      (step(std::integral_constant<size_t, P>()), ...);
    }
  }
  const auto finish = [&](auto p) {
    constexpr size_t kP = decltype(p)::value;
    (store32(c[I] + 32 * kP, lo[kP][I], hi[kP][I], 32, output), ...);
  };
  (finish(std::integral_constant<size_t, P>()), ...);
}

template <size_t kRows, bool kHardSwish>
void igemm_rows(size_t nc, size_t kc, size_t ks, const float* const* a, const float* w,
                float* c, size_t c_stride, Clamp clamp) {
  const auto rows = std::make_index_sequence<kRows>();
  const OutputStage<avx512::Simd, kHardSwish> output(clamp);
  float* c_row[kRows];
  for (size_t i = 0; i < kRows; ++i) c_row[i] = c + i * c_stride;
  const size_t panel_floats = (1 + ks * kc) * 32;
  if constexpr (kRows <= 2) {
    constexpr size_t kPanels = 4 / kRows;
    for (; nc >= 32 * kPanels; nc -= 32 * kPanels, w += kPanels * panel_floats) {
      panels32(std::make_index_sequence<kPanels>(), rows, kc, ks, a, w, panel_floats, c_row, output);
      for (size_t i = 0; i < kRows; ++i) c_row[i] += 32 * kPanels;
    }
  }
  for (; nc > 16; nc = nc > 32 ? nc - 32 : 0, w += panel_floats) {
    panel32(rows, kc, ks, a, w, c_row, nc, output);
    for (size_t i = 0; i < kRows; ++i) c_row[i] += 32;
  }
  if (nc != 0) panel16(rows, kc, ks, a, w, c_row, nc, output);
}

}  // namespace

void f32_igemm_7x32__avx512f(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                             const float* w, float* c, size_t c_stride, Clamp clamp) {
  with_hard_swish(clamp, [&](auto hard_swish) {
    dispatch_rows<7>(mr, [&](auto rows) {
      igemm_rows<decltype(rows)::value, decltype(hard_swish)::value>(nc, kc, ks, a, w, c, c_stride, clamp);
    });
  });
}

void f32_gemm_7x32__avx512f(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                            const float* w, float* c, size_t c_stride, Clamp clamp) {
  gemm_via_igemm<f32_igemm_7x32__avx512f, 7>(mr, nc, kc, a, a_stride, w, c, c_stride, clamp);
}

}  // namespace mnengine
