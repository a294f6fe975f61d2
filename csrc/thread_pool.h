// A persistent pool of worker threads that run the tasks of one operator at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace mnengine {

// Sets flush-to-zero and denormals-are-zero for the calling thread while it lives:
// denormal activations are numerically irrelevant and cost ~100x per operation on x86.
class DenormalsFlushed {
 public:
  DenormalsFlushed();
  ~DenormalsFlushed();
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;

 private:
  uint64_t saved_;
};

class ThreadPool {
 public:
  // `threads` counts the calling thread: threads - 1 workers are started.
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t threads() const { return workers_.size() + 1; }

  // Calls task(context, index, thread) for every index in [0, count) and returns when all
  // are done; `thread` in [0, threads()) tells which scratch space to use. Not reentrant:
  // one caller at a time (the Network serialises access).
  //
  // Thread t first runs the t-th contiguous share of the indices, then helps the others
  // with what remains of theirs. Consecutive operators split their rows alike, so each
  // thread mostly reads activations it wrote itself, from its own core's cache. The call
  // returns as soon as every index has run, whoever ran it: a worker that the system has not
  // scheduled (other programs busy on the cores) leaves its share to the others instead of
  // holding up the caller.
  using TaskFn = void (*)(const void* context, size_t index, size_t thread);
  void run(size_t count, TaskFn task, const void* context);

 private:
  void worker_loop(size_t thread);
  void run_tasks(size_t thread);

  // The indices of one thread's share not yet taken, [next, end), as one word (end in the
  // high half) on a cache line of its own. An index is taken by a compare-and-swap of the
  // whole word, so a thread that wakes up late can only take indices of the job published
  // now, never of one that has ended.
  struct alignas(64) Share {
    std::atomic<uint64_t> word{0};
  };

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  // The current job, published before its shares: a thread reads these only after taking an
  // index, and the job cannot end (nor these change) before that index has run.
  TaskFn task_ = nullptr;
  const void* context_ = nullptr;
  std::vector<Share> shares_;
  std::atomic<size_t> tasks_done_{0};
};

}  // namespace mnengine
