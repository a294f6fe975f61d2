// The output stage of the f32 convolution kernels over one vector register: the optional
// hard-swish of a Clamp (common.h), then the clamp. A kernel branches once per call on
// clamp.hard_swish (with_hard_swish) into code instantiated for each case, so the
// clamp-only path (ReLU, ReLU6, linear) compiles to what it was without hard-swish.
//
// Simd provides Vec, dup(x), clamp(x, lo, hi) propagating NaN and hard_swish(x): the scalar
// reference's t = min(max(x + 3, 0), 6); x * t * (1/6), one IEEE operation at a time, so every
// instruction set rounds as the reference does (kernels/scalar/scalar.h, hard_swish_value).
#pragma once

#include <type_traits>

#include "../common.h"

namespace mnengine {

template <class Simd, bool kHardSwish>
struct OutputStage {
  using Vec = typename Simd::Vec;

  explicit OutputStage(Clamp clamp) : min(Simd::dup(clamp.min)), max(Simd::dup(clamp.max)) {}

  Vec operator()(Vec y) const {
    if constexpr (kHardSwish) y = Simd::hard_swish(y);
    return Simd::clamp(y, min, max);
  }

  Vec min, max;
};

// body(std::true_type()) if clamp.hard_swish, else body(std::false_type()): the kernel's one
// branch, after which OutputStage<Simd, decltype(flag)::value> is a compile-time choice.
template <class Body>
inline void with_hard_swish(Clamp clamp, Body&& body) {
  if (clamp.hard_swish) {
    body(std::true_type());
  } else {
    body(std::false_type());
  }
}

}  // namespace mnengine
