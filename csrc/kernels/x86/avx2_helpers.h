// Inline helpers for the AVX2 kernels; included only by files compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "avx2_fma.h"

namespace mnengine {
namespace avx2 {

// Lane mask selecting the first `count` (0..8) of 8 floats, for maskload/maskstore tails.
static inline __m256i tail_mask(size_t count) {
  alignas(32) static const int kTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                             0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTable + 8 - count));
}

// max(lo, x) then min(hi, x): the operand order makes NaN propagate, as in the scalar path.
static inline __m256 clamp(__m256 x, __m256 lo, __m256 hi) {
  return _mm256_min_ps(hi, _mm256_max_ps(lo, x));
}

// Hard-swish (Clamp in common.h): t = min(max(x + 3, 0), 6), then x * t * (1/6), as the scalar
// reference rounds it. A NaN x makes t 0 (MAXPS returns its second operand on NaN) and x * t
// NaN: NaN propagates.
static inline __m256 hard_swish(__m256 x) {
  const __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(x, _mm256_set1_ps(3.0f)), _mm256_setzero_ps()),
                                 _mm256_set1_ps(6.0f));
  return _mm256_mul_ps(_mm256_mul_ps(x, t), _mm256_set1_ps(1.0f / 6.0f));
}

// One ymm of float channels, as the shared tilings (../f32-dwconv3x3-tiled.h,
// ../f32-conv3x3s2c3-tiled.h) and output stage (../f32-output-stage.h) describe a vector
// register. Channel tails use maskload/maskstore.
struct Simd {
  using Vec = __m256;
  static constexpr size_t kLanes = 8;
  struct Full {
    Vec load(const float* p) const { return _mm256_loadu_ps(p); }
    void store(float* p, Vec v) const { _mm256_storeu_ps(p, v); }
  };
  struct Tail {
    __m256i mask;
    Vec load(const float* p) const { return _mm256_maskload_ps(p, mask); }
    void store(float* p, Vec v) const { _mm256_maskstore_ps(p, mask, v); }
  };
  static Tail tail(size_t count) { return Tail{tail_mask(count)}; }
  static Vec weights(const float* p) { return _mm256_load_ps(p); }
  static Vec broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Vec dup(float x) { return _mm256_set1_ps(x); }
  static Vec fma(Vec acc, Vec x, Vec w) { return _mm256_fmadd_ps(x, w, acc); }
  static Vec clamp(Vec x, Vec lo, Vec hi) { return avx2::clamp(x, lo, hi); }
  static Vec hard_swish(Vec x) { return avx2::hard_swish(x); }
};

// Requantization of int32 sums, 16 outputs at a time (Qs8Output in kernels.h): float(sum) *
// scale, clamped above at max in float (a float beyond int32 would convert to INT32_MIN),
// rounded to nearest even by VCVTPS2DQ; packed with signed saturation to int16, plus the zero
// point with saturation, packed to int8 and clamped to the output range there. Since the
// range's bounds are integers and every step is monotonic, that is the reference's clamp,
// round, add (a sum below -2^31 saturates to the lower bound, as there). In an anonymous
// namespace, as every inline function of an ISA's kernels should be, so that the linker cannot
// pick one compiled for AVX2 for code that runs on other CPUs.
namespace {

struct Qs8Requantization {
  __m256 max;           // output maximum less zero point
  __m256i zero_point;   // in 16 int16 lanes
  __m128i low, high;    // output range, in 16 int8 lanes
  __m256i order;        // the dword permutation that undoes the packs' 128-bit lane interleave

  explicit Qs8Requantization(const Qs8Output& output)
      : max(_mm256_set1_ps(output.max)),
        zero_point(_mm256_set1_epi16(static_cast<int16_t>(output.zero_point))),
        low(_mm_set1_epi8(static_cast<char>(static_cast<int32_t>(output.min) + output.zero_point))),
        high(_mm_set1_epi8(static_cast<char>(static_cast<int32_t>(output.max) + output.zero_point))),
        order(_mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)) {}

  // A requantized value before the zero point: clamped above, rounded to nearest even.
  __m256i round(__m256 value) const { return _mm256_cvtps_epi32(_mm256_min_ps(value, max)); }

  // kClampAbove false is for scales below 1: then |float(sum) * scale| stays below 2^31 (float(sum)
  // is at most 2^31 and the product rounds to at most 2^31 - 128), the conversion cannot
  // overflow and the saturating packs and the int8 clamp do all of the clamping.
  template <bool kClampAbove = true>
  __m256i to_int32(__m256i sum, __m256 scale) const {
    const __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), scale);
    return kClampAbove ? round(value) : _mm256_cvtps_epi32(value);
  }

  // Whether every lane of `scales` is below 1, so that to_int32<false> may be used.
  static bool below_one(const __m256* scales, size_t count) {
    int all = 0xFF;
    for (size_t i = 0; i < count; ++i) all &= _mm256_movemask_ps(_mm256_cmp_ps(scales[i], _mm256_set1_ps(1.0f), _CMP_LT_OQ));
    return all == 0xFF;
  }

  // Outputs 0-7 (q0) and 8-15 (q1) as 16 int8 in order. VPACKSSDW and VPACKSSWB interleave
  // their operands per 128-bit lane (q0[0..3], q1[0..3] low; q0[4..7], q1[4..7] high), which
  // `order` puts back in column order.
  __m128i pack(__m256i q0, __m256i q1) const {
    const __m256i words = _mm256_adds_epi16(_mm256_packs_epi32(q0, q1), zero_point);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words, words), order);
    return clamp(_mm256_castsi256_si128(bytes));
  }

  // 16 outputs whose int32 lanes hold channels 0-3 and 8-11 (lo) and 4-7 and 12-15 (hi), as
  // VPUNPCK[LH]WD leave int16 pairs, as 16 int8 in order: VPACKSSDW's own lane interleave puts
  // them back in order, and VPACKSSWB leaves channels 0-7 and 8-15 in qwords 0 and 2.
  __m128i pack_lanes(__m256i lo, __m256i hi) const {
    const __m256i words = _mm256_adds_epi16(_mm256_packs_epi32(lo, hi), zero_point);
    const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(words, words), 0x08);
    return clamp(_mm256_castsi256_si128(bytes));
  }

  __m128i clamp(__m128i bytes) const { return _mm_min_epi8(_mm_max_epi8(bytes, low), high); }
};

// 16 channels' int32 sums (or int16 pairs) as VPUNPCK[LH]WD of two vectors of 16 int16 leave
// them: the interleave works within 128-bit lanes. Qs8Requantization::pack_lanes undoes it.
struct Qs8Pairs {
  __m256i lo;  // channels 0-3, 8-11
  __m256i hi;  // channels 4-7, 12-15
};

// 16 consecutive 4-byte values (biases, scales) rearranged into the lo/hi order of Qs8Pairs.
inline Qs8Pairs split_lanes(const uint8_t* p) {
  const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i second = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
  return {_mm256_permute2x128_si256(first, second, 0x20), _mm256_permute2x128_si256(first, second, 0x31)};
}

// acc + madd(x, w). The empty asm makes each sum a value of its own: integer adds associate, and
// GCC otherwise regrouped a block's sums so that all its products were live at once, spilled to
// the stack (the first-layer kernel ran 1.3x slower than the float one that way).
inline __m256i madd_add(__m256i acc, __m256i x, __m256i w) {
  acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, w));
  __asm__("" : "+x"(acc));
  return acc;
}

// Bytes [0, count) of p (count < 16) in the low lanes, zeros after: AVX2 has no byte-masked
// load, and reading a whole vector could cross into an unmapped page. Pieces of 1, 2, 4 and 8
// bytes from the end down, each shifted up by the next (a memcpy of `count` bytes to the stack
// and a vector load back was a library call and a store-forwarding stall: the AVX2 GEMM ran a
// 56x56 24->144 layer, a 16-deep chunk and a tail of 8 per row, 1.5x slower than float).
inline __m128i load_tail(const int8_t* p, size_t count) {
  __m128i v = _mm_setzero_si128();
  size_t offset = count;
  if (count & 1) {
    offset -= 1;
    v = _mm_cvtsi32_si128(static_cast<uint8_t>(p[offset]));
  }
  if (count & 2) {
    offset -= 2;
    uint16_t pair;
    std::memcpy(&pair, p + offset, sizeof(pair));
    v = _mm_or_si128(_mm_slli_si128(v, 2), _mm_cvtsi32_si128(pair));
  }
  if (count & 4) {
    offset -= 4;
    v = _mm_or_si128(_mm_slli_si128(v, 4), _mm_loadu_si32(p + offset));
  }
  if (count & 8) v = _mm_or_si128(_mm_slli_si128(v, 8), _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return v;
}

// The low `count` (< 16) bytes of v to p, in pieces of 8, 4, 2 and 1 bytes.
inline void store_tail(int8_t* p, __m128i v, size_t count) {
  if (count & 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), v);
    v = _mm_srli_si128(v, 8);
    p += 8;
  }
  if (count & 4) {
    _mm_storeu_si32(p, v);
    v = _mm_srli_si128(v, 4);
    p += 4;
  }
  if (count & 2) {
    _mm_storeu_si16(p, v);
    v = _mm_srli_si128(v, 2);
    p += 2;
  }
  if (count & 1) *p = static_cast<int8_t>(_mm_cvtsi128_si32(v));
}

}  // namespace
}  // namespace avx2
}  // namespace mnengine
