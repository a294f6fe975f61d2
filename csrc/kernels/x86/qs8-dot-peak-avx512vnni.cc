// qs8-dot-peak avx512vnni: 12 independent VPDPBUSD chains on zmm registers (latency 5 x 2
// ports = 10 needed), each instruction 64 multiply-adds: the peak the VNNI GEMM is measured
// against.
#include <immintrin.h>

#include "avx512vnni.h"

namespace mnengine {
namespace {

// acc += the dot products of a (unsigned) and b (signed), in place. Written in assembly: from
// the intrinsic, GCC 12 copies each accumulator to a new register and back around every
// VPDPBUSD of this loop, three instructions where the kernels issue one.
inline void dot(__m512i& acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
}

}  // namespace

uint64_t qs8_dot_peak__avx512vnni(uint64_t iterations, int32_t* sink) {
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
  // Named rather than an array, which GCC stored to the stack on every round.
  __m512i s0 = _mm512_set1_epi32(0), s1 = _mm512_set1_epi32(1), s2 = _mm512_set1_epi32(2);
  __m512i s3 = _mm512_set1_epi32(3), s4 = _mm512_set1_epi32(4), s5 = _mm512_set1_epi32(5);
  __m512i s6 = _mm512_set1_epi32(6), s7 = _mm512_set1_epi32(7), s8 = _mm512_set1_epi32(8);
  __m512i s9 = _mm512_set1_epi32(9), s10 = _mm512_set1_epi32(10), s11 = _mm512_set1_epi32(11);
  for (uint64_t it = 0; it < iterations; ++it) {
    dot(s0, a, b); dot(s1, a, b); dot(s2, a, b); dot(s3, a, b); dot(s4, a, b); dot(s5, a, b);
    dot(s6, a, b); dot(s7, a, b); dot(s8, a, b); dot(s9, a, b); dot(s10, a, b); dot(s11, a, b);
  }
  const __m512i sum = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
                       _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7))),
      _mm512_add_epi32(_mm512_add_epi32(s8, s9), _mm512_add_epi32(s10, s11)));
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  uint32_t total = 0;  // wraps: only its dependence on every chain matters
  for (int32_t lane : lanes) total += static_cast<uint32_t>(lane);
  *sink = static_cast<int32_t>(total);
  return iterations * 12 * 64;
}

}  // namespace mnengine
