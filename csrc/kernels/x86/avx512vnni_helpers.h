// Inline helpers for the AVX-512 VNNI int8 kernels; included only by files compiled with
// -mavx512f -mavx512bw -mavx512vnni. Everything here has internal linkage, so no function
// compiled for AVX-512 can be picked by the linker for code that runs on other CPUs.
#pragma once

// GCC 12 reports the _mm512_undefined_* placeholders of the conversion intrinsics as used
// uninitialized where they are inlined (GCC bug 105593, fixed in GCC 13); the diagnostic state
// that counts is the one at the intrinsics' definitions.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "avx512vnni.h"

namespace mnengine {
namespace avx512vnni {
namespace {

// The first `count` (0..64) of 64 byte lanes.
inline __mmask64 byte_mask(size_t count) {
  return count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
}

// Requantization of int32 sums, 64 outputs at a time (Qs8Output in kernels.h):
// float(sum) * scale, clamped above at max in float (a float beyond int32 would convert to
// INT32_MIN), rounded to nearest even by VCVTPS2DQ; packed with signed saturation to int16,
// plus the zero point with saturation, packed to int8 and clamped to the output range there.
// Since the range's bounds are integers and every step is monotonic, that is the reference's
// clamp, round, add (a sum below -2^31 saturates to the lower bound, as there).
struct Requantization {
  __m512 max;           // output maximum less zero point
  __m512i zero_point;   // in 32 int16 lanes
  __m512i low, high;    // output range, in 64 int8 lanes
  __m512i order;        // the dword permutation that undoes the packs' 128-bit lane interleave

  explicit Requantization(const Qs8Output& output)
      : max(_mm512_set1_ps(output.max)),
        zero_point(_mm512_set1_epi16(static_cast<int16_t>(output.zero_point))),
        low(_mm512_set1_epi8(static_cast<char>(static_cast<int32_t>(output.min) + output.zero_point))),
        high(_mm512_set1_epi8(static_cast<char>(static_cast<int32_t>(output.max) + output.zero_point))),
        order(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)) {}

  // kClampAbove false is for scales below 1: then |float(sum) * scale| stays below 2^31 (float(sum)
  // is at most 2^31 and the product rounds to at most 2^31 - 128), the conversion cannot
  // overflow and the saturating packs and the int8 clamp do all of the clamping.
  template <bool kClampAbove = true>
  __m512i to_int32(__m512i sum, __m512 scale) const {
    const __m512 value = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), scale);
    return _mm512_cvtps_epi32(kClampAbove ? _mm512_min_ps(value, max) : value);
  }

  // Whether every lane of `scales` is below 1, so that to_int32<false> may be used.
  static bool below_one(const __m512* scales, size_t count) {
    __mmask16 all = 0xFFFF;
    for (size_t i = 0; i < count; ++i) all &= _mm512_cmp_ps_mask(scales[i], _mm512_set1_ps(1.0f), _CMP_LT_OQ);
    return all == 0xFFFF;
  }

  // Four vectors of 16 int32 outputs (columns 0-15, 16-31, 32-47, 48-63) as 64 int8 in order.
  // VPACKSSDW and VPACKSSWB interleave their operands per 128-bit lane: lane L ends up with
  // q0[4L..4L+3], q1[4L..4L+3], q2[...], q3[...], which `order` puts back in column order.
  __m512i pack(__m512i q0, __m512i q1, __m512i q2, __m512i q3) const {
    return _mm512_permutexvar_epi32(order, pack_lanes(q0, q1, q2, q3));
  }

  // The same for vectors whose lane L holds outputs 16L + 4m .. 16L + 4m + 3 (q_m), as
  // VPUNPCK[LH]BW then VPUNPCK[LH]WD leave 64 channels of four rows: then the packs' interleave
  // is the one that puts them in order.
  __m512i pack_lanes(__m512i q0, __m512i q1, __m512i q2, __m512i q3) const {
    const __m512i q01 = _mm512_adds_epi16(_mm512_packs_epi32(q0, q1), zero_point);
    const __m512i q23 = _mm512_adds_epi16(_mm512_packs_epi32(q2, q3), zero_point);
    return _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(q01, q23), low), high);
  }
};

}  // namespace
}  // namespace avx512vnni
}  // namespace mnengine
