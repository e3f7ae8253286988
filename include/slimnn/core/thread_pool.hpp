// slimnn/core/thread_pool.hpp — a small fixed pool of threads for data-parallel work.
//
//   thread_pool pool(4);                      // the caller plus 3 worker threads
//   pool.run(n, [&](index_t i) { ... });      // task(0..n-1), returns when all are done
// run() hands the task indices out one at a time (an atomic counter) to the workers and
// to the calling thread, which takes part, so thread_pool(1) runs everything inline and
// starts no thread. Which thread runs which index is not fixed; callers that need
// reproducible results make each index's work independent of the thread (the trainer
// gives task i its own model replica and sums the results in index order).
// Exceptions: the one thrown by the lowest failing index is rethrown by run(), after
// every started task has finished. Between runs a worker polls for the next one for
// 100 us (so that forwards called in a loop hand over in about a microsecond), then
// blocks on a condition variable; the caller waits for the workers the same way.
// Thread safety: run() may be called from several threads; calls are serialised. A task
// must not call run() on its own pool (config_error); inside_task() tells a task apart.
//
// Component: slimnn::core (standard library only).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

class thread_pool {
 public:
  /// `threads` >= 1 threads in all, counting the caller of run().
  explicit thread_pool(int threads) {
    detail::require<config_error>(threads >= 1 && threads <= 1024, "thread_pool: threads must be in [1, 1024], got ",
                                  threads);
    workers_.reserve(std::size_t(threads - 1));
    for (int w = 1; w < threads; ++w) workers_.emplace_back([this] { work(); });
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  /// Threads in all, counting the caller.
  int size() const { return int(workers_.size()) + 1; }

  /// Whether the calling thread is running a task of some thread_pool (work started
  /// from there runs inline rather than on another pool's threads).
  static bool inside_task() { return active_pool() != nullptr; }

  /// Runs task(i) for every i in [0, count) and returns when all have finished.
  template <class Task>
  void run(index_t count, Task&& task) {
    if (count <= 0) return;
    detail::require<config_error>(active_pool() != this, "thread_pool: run() called from inside one of its own tasks");
    std::lock_guard serial(run_mutex_);
    job_ = {count, &task, [](const void* f, index_t i) { (*static_cast<const std::remove_reference_t<Task>*>(f))(i); }};
    next_.store(0);
    failed_at_ = count;
    failure_ = nullptr;
    if (!workers_.empty()) {
      {
        std::lock_guard lock(mutex_);
        busy_.store(int(workers_.size()));
        generation_.fetch_add(1);
      }
      wake_.notify_all();
    }
    take_tasks();
    if (!workers_.empty()) {
      spin_until([&] { return busy_.load(std::memory_order_acquire) == 0; });
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return busy_.load() == 0; });
    }
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  struct job {
    index_t count = 0;
    const void* task = nullptr;
    void (*call)(const void*, index_t) = nullptr;
  };

  /// The pool whose task this thread is running (null outside tasks).
  static const thread_pool*& active_pool() {
    thread_local const thread_pool* active = nullptr;
    return active;
  }

  void take_tasks() {
    const thread_pool* outer = std::exchange(active_pool(), this);
    for (index_t i; (i = next_.fetch_add(1)) < job_.count;) {
      try {
        job_.call(job_.task, i);
      } catch (...) {
        std::lock_guard lock(failure_mutex_);
        if (i < failed_at_) failed_at_ = i, failure_ = std::current_exception();
      }
    }
    active_pool() = outer;
  }

  /// Waits up to spin_time for done() by polling, so that a run following closely on the
  /// last one (a forward called in a loop) hands over without a sleep and a wake-up, which
  /// cost tens of microseconds each; the callers then block on a condition variable.
  template <class Done>
  static void spin_until(Done&& done) {
    constexpr auto spin_time = std::chrono::microseconds(100);
    const auto deadline = std::chrono::steady_clock::now() + spin_time;
    for (int i = 1; !done(); ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) return;
    }
  }

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
        if (stopping_) return;
        seen = generation_.load();
      }
      take_tasks();
      bool last;
      {
        std::lock_guard lock(mutex_);
        last = busy_.fetch_sub(1) == 1;
      }
      if (last) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_, failure_mutex_;
  std::condition_variable wake_, done_;
  std::atomic<std::uint64_t> generation_{0};  // written under mutex_, polled without it
  std::atomic<int> busy_{0};                   // the same
  bool stopping_ = false;
  job job_;
  std::atomic<index_t> next_{0};
  index_t failed_at_ = 0;
  std::exception_ptr failure_;
};

}  // namespace slimnn
