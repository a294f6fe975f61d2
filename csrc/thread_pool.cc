#include "thread_pool.h"

#include <cstdint>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace mnengine {
namespace {

// Spin this many polls before sleeping: long enough to bridge the gap between two
// operators of one inference (microseconds), short enough not to burn a core when idle.
constexpr int kSpinPolls = 20000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

DenormalsFlushed::DenormalsFlushed() {
#if defined(__x86_64__) || defined(_M_X64)
  saved_ = _mm_getcsr();
  _mm_setcsr(static_cast<unsigned>(saved_) | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#elif defined(__aarch64__)
  asm volatile("mrs %0, fpcr" : "=r"(saved_));
  asm volatile("msr fpcr, %0" : : "r"(saved_ | (uint64_t{1} << 24)));  // FZ
#else
  saved_ = 0;
#endif
}

DenormalsFlushed::~DenormalsFlushed() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_setcsr(static_cast<unsigned>(saved_));
#elif defined(__aarch64__)
  asm volatile("msr fpcr, %0" : : "r"(saved_));
#endif
}

ThreadPool::ThreadPool(size_t threads) : shares_(threads) {
  for (size_t t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run_tasks(size_t thread) {
  const size_t threads = shares_.size();
  for (size_t k = 0; k < threads; ++k) {
    std::atomic<uint64_t>& word = shares_[(thread + k) % threads].word;
    uint64_t taken = word.load(std::memory_order_acquire);
    for (;;) {
      const size_t next = static_cast<uint32_t>(taken), end = static_cast<size_t>(taken >> 32);
      if (next >= end) break;
      if (!word.compare_exchange_weak(taken, taken + 1, std::memory_order_acq_rel)) continue;
      task_(context_, next, thread);
      tasks_done_.fetch_add(1, std::memory_order_release);
      taken = word.load(std::memory_order_acquire);
    }
  }
}

void ThreadPool::run(size_t count, TaskFn task, const void* context) {
  if (workers_.empty() || count <= 1) {
    for (size_t i = 0; i < count; ++i) task(context, i, 0);
    return;
  }
  if (count > UINT32_MAX) throw std::length_error("too many tasks for the thread pool");
  task_ = task;
  context_ = context;
  tasks_done_.store(0, std::memory_order_relaxed);
  const size_t threads = shares_.size();
  for (size_t t = 0; t < threads; ++t) {
    const uint64_t begin = count * t / threads, end = count * (t + 1) / threads;
    shares_[t].word.store(end << 32 | begin, std::memory_order_release);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_tasks(0);
  for (int polls = 0; tasks_done_.load(std::memory_order_acquire) != count; ++polls) {
    if (polls < kSpinPolls) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::worker_loop(size_t thread) {
  DenormalsFlushed flushed;
  uint64_t seen = 0;
  for (;;) {
    for (int polls = 0; polls < kSpinPolls && generation_.load(std::memory_order_acquire) == seen &&
                        !stopping_.load(std::memory_order_relaxed);
         ++polls) {
      cpu_relax();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
    }
    if (stopping_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_tasks(thread);
  }
}

}  // namespace mnengine
