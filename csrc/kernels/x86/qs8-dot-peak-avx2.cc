// qs8-dot-peak avx2: the AVX2 int8 GEMM's step on registers, VPMADDWD (16 int16 products
// summed in pairs) then VPADDD into one of 12 independent accumulators, as the kernel issues
// them per 16 multiply-adds. Counting VPMADDWD alone would overstate what the kernel can reach:
// the add takes a vector port too.
#include "avx2_helpers.h"

namespace mnengine {
namespace {

// acc += madd(a, b), in assembly so that GCC neither merges the identical products of one
// round nor hoists them out of the loop.
inline void madd_add(__m256i& acc, __m256i a, __m256i b) {
  __m256i product;
  __asm__ volatile("vpmaddwd %[b], %[a], %[product]\n\tvpaddd %[product], %[acc], %[acc]"
                   : [acc] "+x"(acc), [product] "=&x"(product)
                   : [a] "x"(a), [b] "x"(b));
}

}  // namespace

uint64_t qs8_dot_peak__avx2(uint64_t iterations, int32_t* sink) {
  const __m256i a = _mm256_set1_epi16(3), b = _mm256_set1_epi16(-5);
  // Named rather than an array, which GCC kept on the stack.
  __m256i s0 = _mm256_set1_epi32(0), s1 = _mm256_set1_epi32(1), s2 = _mm256_set1_epi32(2);
  __m256i s3 = _mm256_set1_epi32(3), s4 = _mm256_set1_epi32(4), s5 = _mm256_set1_epi32(5);
  __m256i s6 = _mm256_set1_epi32(6), s7 = _mm256_set1_epi32(7), s8 = _mm256_set1_epi32(8);
  __m256i s9 = _mm256_set1_epi32(9), s10 = _mm256_set1_epi32(10), s11 = _mm256_set1_epi32(11);
  for (uint64_t it = 0; it < iterations; ++it) {
    madd_add(s0, a, b); madd_add(s1, a, b); madd_add(s2, a, b); madd_add(s3, a, b);
    madd_add(s4, a, b); madd_add(s5, a, b); madd_add(s6, a, b); madd_add(s7, a, b);
    madd_add(s8, a, b); madd_add(s9, a, b); madd_add(s10, a, b); madd_add(s11, a, b);
  }
  const __m256i sum = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3)),
                       _mm256_add_epi32(_mm256_add_epi32(s4, s5), _mm256_add_epi32(s6, s7))),
      _mm256_add_epi32(_mm256_add_epi32(s8, s9), _mm256_add_epi32(s10, s11)));
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  uint32_t total = 0;  // wraps: only its dependence on every chain matters
  for (int32_t lane : lanes) total += static_cast<uint32_t>(lane);
  *sink = static_cast<int32_t>(total);
  return iterations * 12 * 16;
}

}  // namespace mnengine
