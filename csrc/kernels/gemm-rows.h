// Pieces shared by the GEMM micro-kernels of every instruction set.
#pragma once

#include <cstddef>
#include <type_traits>

#include "../kernels.h"

namespace mnengine {

// Calls `kernel(std::integral_constant<size_t, mr>())` for mr in 1..kMaxRows (6 or 7), so
// that each row count is compiled as its own instantiation with every row index a constant.
template <size_t kMaxRows = 6, class Kernel>
inline void dispatch_rows(size_t mr, Kernel&& kernel) {
  static_assert(kMaxRows == 6 || kMaxRows == 7, "row tiles of 6 or 7");
  switch (mr) {
    case 1: return kernel(std::integral_constant<size_t, 1>());
    case 2: return kernel(std::integral_constant<size_t, 2>());
    case 3: return kernel(std::integral_constant<size_t, 3>());
    case 4: return kernel(std::integral_constant<size_t, 4>());
    case 5: return kernel(std::integral_constant<size_t, 5>());
    case 6: return kernel(std::integral_constant<size_t, 6>());
    default: return kernel(std::integral_constant<size_t, kMaxRows>());
  }
}

// The GEMM as the IGEMM with one segment per row: row i of A starts at a + i * a_stride.
template <IgemmFn kIgemm, size_t kMR>
inline void gemm_via_igemm(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                           const float* w, float* c, size_t c_stride, Clamp clamp) {
  const float* rows[kMR];
  for (size_t i = 0; i < mr; ++i) rows[i] = a + i * a_stride;
  kIgemm(mr, nc, kc, 1, rows, w, c, c_stride, clamp);
}

}  // namespace mnengine
