// The scalar form of qs8 requantization (see Qs8Output in kernels.h), shared by the portable
// kernels and the scalar tails of SIMD ones.
#pragma once

#include <cmath>
#include <cstdint>

#include "../kernels.h"

namespace mnengine {

// float(acc) * scale clamped to [min, max] (a NaN becomes min, as the SIMD max instructions
// make it), rounded to nearest even, plus the zero point.
inline int8_t qs8_requantize_float(float value, const Qs8Output& output) {
  value = value > output.min ? value : output.min;
  value = value < output.max ? value : output.max;
  return static_cast<int8_t>(static_cast<int32_t>(std::nearbyint(value)) + output.zero_point);
}

inline int8_t qs8_requantize(int32_t acc, float scale, const Qs8Output& output) {
  return qs8_requantize_float(static_cast<float>(acc) * scale, output);
}

}  // namespace mnengine
