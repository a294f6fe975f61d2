// f32-gemm 6x16 avx2-fma and f32-igemm 6x16 avx2-fma: up to 6 rows of A against 16-column
// panels of packed weights. Registers: 12 accumulators (6 rows x 2 ymm), 2 weight vectors,
// 1 broadcast of A. Each row count 1..6 has its own instantiation (no repeated rows), and a
// last panel of 8 columns or fewer computes only its low half.
//
// The per-row code is written as fold expressions over an index sequence, so every
// accumulator index is a constant from the start: with plain loops over rows GCC keeps the
// accumulator arrays in memory and stores them on every iteration.
#include <utility>

#include "../f32-output-stage.h"
#include "../gemm-rows.h"
#include "avx2_helpers.h"

namespace mnengine {
namespace {

// Weights are read from memory once per inference (a network's weights outgrow the caches), and
// a row tile consumes a cache line of them every few cycles: each step asks for the line
// 4 KiB ahead, far enough to cover memory latency, which the hardware prefetchers alone don't.
// (Past the end of the weights this is harmless: a prefetch never faults.)
// Tiles of one or two rows are the exception: they load a weight line every cycle or two, so
// a prefetch per line takes load-port slots the FMAs wait for (a 1024x1000 GEMV ran 1.4x
// slower with it), and a stream that fast is what the hardware prefetcher follows on its own.
constexpr size_t kPrefetchFloats = 1024;

template <size_t kRows>
inline void prefetch_weights(const float* w) {
  if constexpr (kRows > 2) __builtin_prefetch(w + kPrefetchFloats);
}

// Row i's step of a 16-column panel: one broadcast of A, two FMAs.
inline void step16(const float* a_ik, __m256 b_lo, __m256 b_hi, __m256& lo, __m256& hi) {
  const __m256 a = _mm256_broadcast_ss(a_ik);
  lo = _mm256_fmadd_ps(a, b_lo, lo);
  hi = _mm256_fmadd_ps(a, b_hi, hi);
}

// Masked stores are slow on AMD cores: only a partial high half uses one.
template <class Output>
inline void store16(float* c, __m256 lo, __m256 hi, size_t columns, const Output& output) {
  _mm256_storeu_ps(c, output(lo));
  if (columns >= 16) {
    _mm256_storeu_ps(c + 8, output(hi));
  } else {
    _mm256_maskstore_ps(c + 8, avx2::tail_mask(columns - 8), output(hi));
  }
}

// One 16-column panel for rows I..., storing its first `columns` (9..16) columns.
template <class Output, size_t... I>
inline void panel16(std::index_sequence<I...>, size_t kc, size_t ks, const float* const* a,
                    const float* w, float* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  const __m256 bias_lo = _mm256_load_ps(w), bias_hi = _mm256_load_ps(w + 8);
  __m256 lo[kRows] = {(static_cast<void>(I), bias_lo)...};
  __m256 hi[kRows] = {(static_cast<void>(I), bias_hi)...};
  w += 16;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    for (size_t k = 0; k < kc; ++k, w += 16) {
      prefetch_weights<kRows>(w);
      const __m256 b_lo = _mm256_load_ps(w), b_hi = _mm256_load_ps(w + 8);
      (step16(row[I] + k, b_lo, b_hi, lo[I], hi[I]), ...);
    }
  }
  (store16(c[I], lo[I], hi[I], columns, output), ...);
}

// The low half of a panel, when 8 or fewer columns are left: half the multiply-adds.
template <class Output, size_t... I>
inline void panel8(std::index_sequence<I...>, size_t kc, size_t ks, const float* const* a,
                   const float* w, float* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  const __m256 bias = _mm256_load_ps(w);
  __m256 lo[kRows] = {(static_cast<void>(I), bias)...};
  w += 16;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    for (size_t k = 0; k < kc; ++k, w += 16) {
      prefetch_weights<kRows>(w);
      const __m256 b = _mm256_load_ps(w);
      ((lo[I] = _mm256_fmadd_ps(_mm256_broadcast_ss(row[I] + k), b, lo[I])), ...);
    }
  }
  if (columns == 8) {
    (_mm256_storeu_ps(c[I], output(lo[I])), ...);
  } else {
    const __m256i mask = avx2::tail_mask(columns);
    (_mm256_maskstore_ps(c[I], mask, output(lo[I])), ...);
  }
}

// kPanels full 16-column panels at once, for one or two rows: alone they would leave the
// FMA units waiting on their accumulators' latency (two chains per row); several panels give
// eight independent chains and as many weight streams, while every output's sum keeps its
// order (results do not depend on how rows were tiled).
template <class Output, size_t... P, size_t... I>
inline void panels16(std::index_sequence<P...>, std::index_sequence<I...>, size_t kc, size_t ks,
                     const float* const* a, const float* w, size_t panel_floats,
                     float* const* c, const Output& output) {
  constexpr size_t kRows = sizeof...(I), kPanels = sizeof...(P);
  __m256 lo[kPanels][kRows], hi[kPanels][kRows];
  const auto start = [&](auto p) {
    constexpr size_t kP = decltype(p)::value;
    ((lo[kP][I] = _mm256_load_ps(w + kP * panel_floats)), ...);
    ((hi[kP][I] = _mm256_load_ps(w + kP * panel_floats + 8)), ...);
  };
  (start(std::integral_constant<size_t, P>()), ...);
  w += 16;
  for (size_t s = 0; s < ks; ++s, a += kRows) {
    const float* row[kRows] = {a[I]...};
    for (size_t k = 0; k < kc; ++k, w += 16) {
      const auto step = [&](auto p) {
        constexpr size_t kP = decltype(p)::value;
        const float* wp = w + kP * panel_floats;
        prefetch_weights<kRows>(wp);
        const __m256 b_lo = _mm256_load_ps(wp), b_hi = _mm256_load_ps(wp + 8);
        (step16(row[I] + k, b_lo, b_hi, lo[kP][I], hi[kP][I]), ...);
      };
      (step(std::integral_constant<size_t, P>()), ...);
    }
  }
  const auto finish = [&](auto p) {
    constexpr size_t kP = decltype(p)::value;
    (store16(c[I] + 16 * kP, lo[kP][I], hi[kP][I], 16, output), ...);
  };
  (finish(std::integral_constant<size_t, P>()), ...);
}

template <size_t kRows, bool kHardSwish>
void igemm_rows(size_t nc, size_t kc, size_t ks, const float* const* a, const float* w,
                float* c, size_t c_stride, Clamp clamp) {
  const auto rows = std::make_index_sequence<kRows>();
  const OutputStage<avx2::Simd, kHardSwish> output(clamp);
  float* c_row[kRows];
  for (size_t i = 0; i < kRows; ++i) c_row[i] = c + i * c_stride;
  const size_t panel_floats = (1 + ks * kc) * 16;
  if constexpr (kRows <= 2) {
    constexpr size_t kPanels = 4 / kRows;
    for (; nc >= 16 * kPanels; nc -= 16 * kPanels, w += kPanels * panel_floats) {
      panels16(std::make_index_sequence<kPanels>(), rows, kc, ks, a, w, panel_floats, c_row, output);
      for (size_t i = 0; i < kRows; ++i) c_row[i] += 16 * kPanels;
    }
  }
  for (; nc > 8; nc = nc > 16 ? nc - 16 : 0, w += panel_floats) {
    panel16(rows, kc, ks, a, w, c_row, nc, output);
    for (size_t i = 0; i < kRows; ++i) c_row[i] += 16;
  }
  if (nc != 0) panel8(rows, kc, ks, a, w, c_row, nc, output);
}

}  // namespace

void f32_igemm_6x16__avx2_fma(size_t mr, size_t nc, size_t kc, size_t ks, const float* const* a,
                              const float* w, float* c, size_t c_stride, Clamp clamp) {
  with_hard_swish(clamp, [&](auto hard_swish) {
    dispatch_rows(mr, [&](auto rows) {
      igemm_rows<decltype(rows)::value, decltype(hard_swish)::value>(nc, kc, ks, a, w, c, c_stride, clamp);
    });
  });
}

void f32_gemm_6x16__avx2_fma(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                             const float* w, float* c, size_t c_stride, Clamp clamp) {
  gemm_via_igemm<f32_igemm_6x16__avx2_fma, 6>(mr, nc, kc, a, a_stride, w, c, c_stride, clamp);
}

}  // namespace mnengine
