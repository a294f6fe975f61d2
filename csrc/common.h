// Types shared by every layer of the core: activation clamps, aligned buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace mnengine {

// Fused activation as a clamp: ReLU6 is [0, 6], ReLU is [0, +inf), linear is (-inf, +inf).
// With `hard_swish` the f32 convolution kernels (gemm, igemm, depthwise, first convolution)
// apply MobileNetV3's hard-swish before the clamp: t = min(max(y + 3, 0), 6);
// y = y * t * (1/6), one float operation at a time (csrc/kernels/f32-output-stage.h). The
// element-wise kernels (vadd) ignore it: Network accepts it only on nodes whose kernels apply it.
struct Clamp {
  float min;
  float max;
  bool hard_swish = false;
};

// Every buffer the kernels touch starts on a cache line.
constexpr size_t kAlignment = 64;

inline size_t round_up(size_t value, size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

inline size_t divide_round_up(size_t value, size_t divisor) {
  return (value + divisor - 1) / divisor;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// A cache-line aligned array of T; zero-initialised so that padding lanes are inert.
template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(size_t count) { resize(count); }

  void resize(size_t count) {
    const size_t bytes = round_up(count * sizeof(T), kAlignment);
    void* p = bytes == 0 ? nullptr : std::aligned_alloc(kAlignment, bytes);
    if (bytes != 0 && p == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<T*>(p));
    size_ = count;
    for (size_t i = 0; i < count; ++i) data_.get()[i] = T{};
  }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<T[], AlignedFree> data_;
  size_t size_ = 0;
};

using AlignedBuffer = AlignedArray<float>;
using ByteBuffer = AlignedArray<uint8_t>;

}  // namespace mnengine
