// qs8-gemm 6x64c4 avx512vnni and qs8-gemm-f32 6x64c4 avx512vnni (the same sums, dequantized
// to float32 outputs): up to 6 rows of A against 64-column panels of weights packed
// with KR = 4 (each column's 4 consecutive k in one dword, as VPDPBUSD sums them). Registers:
// 24 accumulators (6 rows x 4 zmm of 16 columns), 4 weight vectors, 1 broadcast of A. A step of
// 4 k issues 24 VPDPBUSD for 4 weight loads and 6 broadcasts, so the loads stay well under the
// two the core can do per cycle while the dot products use both of their ports.
//
// VPDPBUSD multiplies unsigned bytes by signed ones: A is read as a + 128 (XOR 0x80) and the
// packing folds -128 * sum_k w into the bias (gemm_input_offset = 128). On zmm registers VPXORD
// competes with VPDPBUSD for the same two ports, so XOR-ing every broadcast of A would cost one
// slot in five; instead each row's next 64 k are XOR-ed once into a stack buffer that the
// broadcasts read. In a cache-resident microbenchmark of the inner loop (6x64, K = 64-1024)
// that ran 301-337 G multiply-adds/s against 267-284 for an XOR per broadcast; storing the
// weights as unsigned w + 128 and correcting each row by 128 * sum_k a instead (A then needs
// no XOR at all) ran 276-331, and 7x48 and 8x48 tiles no faster than 6x64, whose 64 columns
// divide MobileNet's channel counts.
//
// Each row count 1..6 and each panel width of 1..4 vectors has its own instantiation (a last
// panel of fewer than 64 columns computes only the vectors it stores). The k tail is read with a
// byte-masked load: its missing bytes become 0x80 in the buffer and meet zero weights.
#include <cstring>
#include <utility>

#include "../gemm-rows.h"
#include "avx512vnni_helpers.h"

namespace mnengine {
namespace {

using avx512vnni::byte_mask;
using avx512vnni::Requantization;

constexpr size_t kNR = 64;                   // columns per panel: 4 zmm of 16 int32 sums
constexpr size_t kKR = 4;                    // k per dword of packed weights
constexpr size_t kBlockBytes = kNR * kKR;    // one k block of a panel's weights
constexpr size_t kChunk = 64;                // k of a row XOR-ed into the buffer at a time

// The dword at p in every lane (a broadcast load).
inline __m512i broadcast(const uint8_t* p) {
  int32_t quad;
  std::memcpy(&quad, p, sizeof(quad));
  return _mm512_set1_epi32(quad);
}

// Vector kV of the kVectors a panel computes, from 64-byte vectors at p; zero past them (not
// read).
template <size_t kVectors, size_t kV>
inline __m512i vector_at(const uint8_t* p) {
  if constexpr (kV < kVectors) {
    return _mm512_loadu_si512(p + 64 * kV);
  } else {
    return _mm512_setzero_si512();
  }
}

template <size_t kVectors>
struct PanelVectors {
  __m512i v[4];
  explicit PanelVectors(const uint8_t* p)
      : v{vector_at<kVectors, 0>(p), vector_at<kVectors, 1>(p), vector_at<kVectors, 2>(p), vector_at<kVectors, 3>(p)} {}
};

// A row's step of 4 k: the broadcast dword of a + 128 against kVectors weight vectors.
template <size_t kVectors>
inline void step(__m512i x, const __m512i* w, __m512i& s0, __m512i& s1, __m512i& s2, __m512i& s3) {
  s0 = _mm512_dpbusd_epi32(s0, x, w[0]);
  if constexpr (kVectors > 1) s1 = _mm512_dpbusd_epi32(s1, x, w[1]);
  if constexpr (kVectors > 2) s2 = _mm512_dpbusd_epi32(s2, x, w[2]);
  if constexpr (kVectors > 3) s3 = _mm512_dpbusd_epi32(s3, x, w[3]);
}

// A row's sums requantized, its first `columns` outputs stored.
template <size_t kVectors, bool kClampAbove>
inline void store_row(int8_t* c, __m512i s0, __m512i s1, __m512i s2, __m512i s3, const __m512* scale,
                      size_t columns, const Requantization& rq) {
  const __m512i q0 = rq.to_int32<kClampAbove>(s0, scale[0]);
  // q0 stands in for the vectors not computed, whose lanes are not stored.
  const __m512i q1 = kVectors > 1 ? rq.to_int32<kClampAbove>(s1, scale[1]) : q0;
  const __m512i q2 = kVectors > 2 ? rq.to_int32<kClampAbove>(s2, scale[2]) : q0;
  const __m512i q3 = kVectors > 3 ? rq.to_int32<kClampAbove>(s3, scale[3]) : q0;
  const __m512i out = rq.pack(q0, q1, q2, q3);
  if (columns >= kNR) {
    _mm512_storeu_si512(c, out);
  } else {
    _mm512_mask_storeu_epi8(c, byte_mask(columns), out);
  }
}

// The int8 output stage: a panel's rows requantized.
struct Int8Output {
  using Type = int8_t;
  Requantization rq;

  template <size_t kVectors, size_t... I>
  void store(std::index_sequence<I...>, int8_t* const* c, const __m512i (*sums)[4], const __m512* scale,
             size_t columns) const {
    // Requantization scales are typically far below 1, where the float clamp above is not needed.
    if (Requantization::below_one(scale, kVectors)) {
      (store_row<kVectors, false>(c[I], sums[I][0], sums[I][1], sums[I][2], sums[I][3], scale, columns, rq), ...);
    } else {
      (store_row<kVectors, true>(c[I], sums[I][0], sums[I][1], sums[I][2], sums[I][3], scale, columns, rq), ...);
    }
  }
};

// The float32 output stage: each sum times its scale, clamped (product, then clamp).
struct FloatOutput {
  using Type = float;
  __m512 min, max;

  template <size_t kVectors, size_t... I>
  void store(std::index_sequence<I...>, float* const* c, const __m512i (*sums)[4], const __m512* scale,
             size_t columns) const {
    const auto row = [&](float* out, const __m512i* row_sums) {
      for (size_t v = 0; v < kVectors; ++v) {
        const __m512 value = _mm512_mul_ps(_mm512_cvtepi32_ps(row_sums[v]), scale[v]);
        const __m512 clamped = _mm512_min_ps(_mm512_max_ps(value, min), max);
        const size_t left = columns > 16 * v ? columns - 16 * v : 0;
        if (left >= 16) {
          _mm512_storeu_ps(out + 16 * v, clamped);
        } else {
          _mm512_mask_storeu_ps(out + 16 * v, static_cast<__mmask16>((1u << left) - 1), clamped);
        }
      }
    };
    (row(c[I], sums[I]), ...);
  }
};

// One panel for rows I..., its first 16 * kVectors columns computed and the first `columns`
// stored by the output stage. The accumulators are indexed by constants only (fold expressions
// over the rows, the vectors written out), so that GCC keeps them in registers: with loops over
// the vectors it kept them on the stack.
template <size_t kVectors, class Output, size_t... I>
inline void panel(std::index_sequence<I...> rows, size_t kc, const int8_t* const* a, const uint8_t* w,
                  typename Output::Type* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I);
  __m512i acc[4][kRows];  // [vector of 16 columns][row]
  {
    const PanelVectors<kVectors> bias(w);
    ((acc[0][I] = bias.v[0]), ...);
    ((acc[1][I] = bias.v[1]), ...);
    ((acc[2][I] = bias.v[2]), ...);
    ((acc[3][I] = bias.v[3]), ...);
  }
  w += kNR * sizeof(int32_t);

  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  alignas(64) uint8_t shifted[kRows][kChunk];  // a + 128 of the chunk being multiplied
  for (size_t k0 = 0; k0 < kc; k0 += kChunk) {
    const size_t chunk = kc - k0 < kChunk ? kc - k0 : kChunk;
    const __mmask64 mask = byte_mask(chunk);
    ((_mm512_store_si512(shifted[I], _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, a[I] + k0), sign))), ...);
    // Left to itself GCC keeps the chunk in registers and extracts each dword (VPEXTRD, then
    // VPBROADCASTD from a general register: three uops where a broadcast load is one).
    __asm__ volatile("" : "+m"(shifted));
    const size_t blocks = (chunk + kKR - 1) / kKR;
    for (size_t b = 0; b < blocks; ++b, w += kBlockBytes) {
      const PanelVectors<kVectors> weights(w);
      (step<kVectors>(broadcast(shifted[I] + b * kKR), weights.v, acc[0][I], acc[1][I], acc[2][I], acc[3][I]), ...);
    }
  }

  // The sums reach the requantization through the stack: with 24 accumulators live, its
  // constants do not fit in registers too, and GCC's register allocator then stored every
  // accumulator to the stack on every step of the k loop (half the speed).
  alignas(64) __m512i sums[kRows][4];
  ((_mm512_store_si512(&sums[I][0], acc[0][I]), _mm512_store_si512(&sums[I][1], acc[1][I]),
    _mm512_store_si512(&sums[I][2], acc[2][I]), _mm512_store_si512(&sums[I][3], acc[3][I])), ...);
  __asm__ volatile("" : "+m"(sums));
  const PanelVectors<kVectors> scale_bits(w);
  __m512 scale[4];
  for (size_t v = 0; v < 4; ++v) scale[v] = _mm512_castsi512_ps(scale_bits.v[v]);
  output.template store<kVectors>(rows, c, sums, scale, columns);
}

template <size_t kRows, class Output>
void gemm_rows(size_t nc, size_t kc, const int8_t* a, size_t a_stride, const uint8_t* w,
               typename Output::Type* c, size_t c_stride, const Output& output) {
  const auto rows = std::make_index_sequence<kRows>();
  const int8_t* a_row[kRows];
  typename Output::Type* c_row[kRows];
  for (size_t i = 0; i < kRows; ++i) {
    a_row[i] = a + i * a_stride;
    c_row[i] = c + i * c_stride;
  }
  const size_t panel_bytes = kNR * (2 * sizeof(int32_t) + (kc + kKR - 1) / kKR * kKR);
  for (; nc >= kNR; nc -= kNR, w += panel_bytes) {
    panel<4>(rows, kc, a_row, w, c_row, kNR, output);
    for (size_t i = 0; i < kRows; ++i) c_row[i] += kNR;
  }
  switch ((nc + 15) / 16) {
    case 0: return;
    case 1: return panel<1>(rows, kc, a_row, w, c_row, nc, output);
    case 2: return panel<2>(rows, kc, a_row, w, c_row, nc, output);
    case 3: return panel<3>(rows, kc, a_row, w, c_row, nc, output);
    default: return panel<4>(rows, kc, a_row, w, c_row, nc, output);
  }
}

}  // namespace

void qs8_gemm_6x64c4__avx512vnni(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                 const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output) {
  const Int8Output stage{Requantization(output)};
  const auto* w = static_cast<const uint8_t*>(packed_w);
  dispatch_rows<6>(mr, [&](auto rows) { gemm_rows<decltype(rows)::value>(nc, kc, a, a_stride, w, c, c_stride, stage); });
}

void qs8_gemm_f32_6x64c4__avx512vnni(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                     const void* packed_w, float* c, size_t c_stride, Clamp clamp) {
  const FloatOutput stage{_mm512_set1_ps(clamp.min), _mm512_set1_ps(clamp.max)};
  const auto* w = static_cast<const uint8_t*>(packed_w);
  dispatch_rows<6>(mr, [&](auto rows) { gemm_rows<decltype(rows)::value>(nc, kc, a, a_stride, w, c, c_stride, stage); });
}

}  // namespace mnengine
