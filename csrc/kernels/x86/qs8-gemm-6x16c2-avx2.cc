// qs8-gemm 6x16c2 avx2 and qs8-gemm-f32 6x16c2 avx2 (the same sums, dequantized to float32
// outputs): up to 6 rows of A against 16-column panels of weights packed with
// KR = 2 (each column's 2 consecutive k side by side). AVX2 has no int8 dot product that
// cannot saturate (VPMADDUBSW sums two u8 x s8 products into int16, which 2 x 255 x 127
// overflows), so both operands are sign-extended to int16 and multiplied with VPMADDWD, which
// sums each pair of k into an exact int32: a weight vector is 8 columns x 2 k (16 bytes,
// VPMOVSXBW'd on load), A a broadcast (a[k], a[k+1]) pair. Registers: 12 accumulators
// (6 rows x 2 ymm of 8 columns), 2 weight vectors, 1 broadcast of A.
//
// A is sign-extended into a stack buffer of int16 that the broadcasts read: once per call for
// all its panels when K fits the buffer (every MobileNet layer does), else per panel a segment
// of K at a time. Widening per panel and 16 k, as this kernel first did, ran at 78-80% of the
// VPMADDWD peak on a Zen 3 where the bare multiply loop reaches 95%: 6 stores and a restart of
// the k loop every 8 blocks. Weights stay int8 in the packing: int16 weights, saving the
// VPMOVSXBW of 2 loads per 12 VPMADDWD, ran no faster (Zen 3, bare loop) for twice the bytes.
// 4x24 and 3x32 tiles ran no faster than 6x16.
//
// Each row count 1..6 has its own instantiation, and a last panel of 8 columns or fewer
// computes only its low half. The k tail of a row is widened from a byte-by-byte copy (AVX2 has
// no byte-masked load) and zeros follow it, which meet zero weights past kc.
#include <cstring>
#include <type_traits>
#include <utility>

#include "../gemm-rows.h"
#include "avx2_helpers.h"

namespace mnengine {
namespace {

using avx2::load_tail;
using avx2::Qs8Requantization;
using avx2::store_tail;

constexpr size_t kNR = 16;                   // columns per panel: 2 ymm of 8 int32 sums
constexpr size_t kKR = 2;                    // k per int32 lane of VPMADDWD
constexpr size_t kBlockBytes = kNR * kKR;    // one k block of a panel's weights
constexpr size_t kSegment = 2048;            // k of a row sign-extended into the buffer at a time
constexpr size_t kRowPadding = 32;           // int16 between widened rows: 64 bytes, so that the rows
                                             // fall in different L1 sets rather than 4 KB apart

// Sign-extends a[0, count) into `out`, zeros after, up to a multiple of 16 elements.
inline void widen(const int8_t* a, size_t count, int16_t* out) {
  for (size_t k = 0; k < count; k += 16, out += 16) {
    const __m128i bytes =
        count - k >= 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + k)) : load_tail(a + k, count - k);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_cvtepi8_epi16(bytes));
  }
}

// Whether all of K fits one segment, widened once per call for every panel rather than per panel.
inline bool widened_once(size_t kc) { return kc <= kSegment; }

// Rows of A as int16, a segment of K at a time.
template <size_t kRows>
struct WidenedRows {
  alignas(32) int16_t k[kRows][kSegment + kRowPadding];

  void load(const int8_t* const* a, size_t k0, size_t count) {
    for (size_t i = 0; i < kRows; ++i) widen(a[i] + k0, count, k[i]);
  }
};

inline void store_row(int8_t* c, __m128i out, size_t columns) {
  if (columns >= kNR) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c), out);
  } else {
    store_tail(c, out, columns);
  }
}

// The output stages: a panel's sums requantized to int8, or dequantized to float32 (each sum
// times its scale, then clamped).
struct Int8Output {
  using Type = int8_t;
  Qs8Requantization rq;
};

struct FloatOutput {
  using Type = float;
  __m256 min, max;

  // Vector v (8 columns) of a row's sums into c[8v, ...), of which `columns` are stored.
  void store(float* c, size_t v, __m256i sums, __m256 scale, size_t columns) const {
    const __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(sums), scale);
    const __m256 clamped = _mm256_min_ps(_mm256_max_ps(value, min), max);
    const size_t left = columns > 8 * v ? columns - 8 * v : 0;
    if (left >= 8) {
      _mm256_storeu_ps(c + 8 * v, clamped);
    } else if (left != 0) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, clamped);
      std::memcpy(c + 8 * v, lanes, left * sizeof(float));
    }
  }
};

// One panel for rows I..., its first 8 * sizeof...(V) columns computed and the first
// `columns` stored by the output stage.
template <class Output, size_t... I, size_t... V>
inline void panel(std::index_sequence<I...>, std::index_sequence<V...>, size_t kc,
                  const int8_t* const* a, WidenedRows<sizeof...(I)>& widened, const uint8_t* w,
                  typename Output::Type* const* c, size_t columns, const Output& output) {
  constexpr size_t kRows = sizeof...(I), kVectors = sizeof...(V);
  const auto for_rows = [](auto&& f) { (f(std::integral_constant<size_t, I>()), ...); };
  __m256i acc[kRows * kVectors];
  {
    const __m256i bias[kVectors] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w) + V)...};
    for_rows([&](auto row) {
      constexpr size_t i = decltype(row)::value;
      ((acc[i * kVectors + V] = bias[V]), ...);
    });
  }
  w += kNR * sizeof(int32_t);

  for (size_t k0 = 0; k0 < kc; k0 += kSegment) {
    const size_t segment = kc - k0 < kSegment ? kc - k0 : kSegment;
    if (!widened_once(kc)) widened.load(a, k0, segment);
    const size_t blocks = (segment + kKR - 1) / kKR;
    for (size_t b = 0; b < blocks; ++b, w += kBlockBytes) {
      const __m256i weights[kVectors] = {
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w) + V))...};
      for_rows([&](auto row) {
        constexpr size_t i = decltype(row)::value;
        int32_t pair;
        std::memcpy(&pair, widened.k[i] + b * kKR, sizeof(pair));
        const __m256i x = _mm256_set1_epi32(pair);
        ((acc[i * kVectors + V] = _mm256_add_epi32(acc[i * kVectors + V], _mm256_madd_epi16(x, weights[V]))), ...);
      });
    }
  }

  const __m256 scale[kVectors] = {_mm256_loadu_ps(reinterpret_cast<const float*>(w) + 8 * V)...};
  // Each row's vectors by constant index (a loop over a pointer to the accumulators made GCC keep
  // them in memory through the k loop: 1.2x the time).
  if constexpr (std::is_same_v<Output, FloatOutput>) {
    for_rows([&](auto row) {
      constexpr size_t i = decltype(row)::value;
      (output.store(c[i], V, acc[i * kVectors + V], scale[V], columns), ...);
    });
  } else {
    const auto store_rows = [&](auto clamp_above) {
      for_rows([&](auto row) {
        constexpr size_t i = decltype(row)::value;
        __m256i q[2];
        ((q[V] = output.rq.template to_int32<decltype(clamp_above)::value>(acc[i * kVectors + V], scale[V])), ...);
        if constexpr (kVectors == 1) q[1] = q[0];  // lanes that are not stored
        store_row(c[i], output.rq.pack(q[0], q[1]), columns);
      });
    };
    // Requantization scales are typically far below 1, where the float clamp above is not needed.
    if (Qs8Requantization::below_one(scale, kVectors)) {
      store_rows(std::false_type());
    } else {
      store_rows(std::true_type());
    }
  }
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
  WidenedRows<kRows> widened;
  if (widened_once(kc)) widened.load(a_row, 0, kc);
  const size_t panel_bytes = kNR * (2 * sizeof(int32_t) + (kc + kKR - 1) / kKR * kKR);
  for (; nc > 8; nc = nc > kNR ? nc - kNR : 0, w += panel_bytes) {
    panel(rows, std::make_index_sequence<2>(), kc, a_row, widened, w, c_row, nc, output);
    for (size_t i = 0; i < kRows; ++i) c_row[i] += kNR;
  }
  if (nc != 0) panel(rows, std::make_index_sequence<1>(), kc, a_row, widened, w, c_row, nc, output);
}

}  // namespace

void qs8_gemm_6x16c2__avx2(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                           const void* packed_w, int8_t* c, size_t c_stride, const Qs8Output& output) {
  const Int8Output stage{Qs8Requantization(output)};
  const auto* w = static_cast<const uint8_t*>(packed_w);
  dispatch_rows<6>(mr, [&](auto rows) { gemm_rows<decltype(rows)::value>(nc, kc, a, a_stride, w, c, c_stride, stage); });
}

void qs8_gemm_f32_6x16c2__avx2(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                               const void* packed_w, float* c, size_t c_stride, Clamp clamp) {
  const FloatOutput stage{_mm256_set1_ps(clamp.min), _mm256_set1_ps(clamp.max)};
  const auto* w = static_cast<const uint8_t*>(packed_w);
  dispatch_rows<6>(mr, [&](auto rows) { gemm_rows<decltype(rows)::value>(nc, kc, a, a_stride, w, c, c_stride, stage); });
}

}  // namespace mnengine
