// slimnn/detail/activation_buffers.hpp — per-thread ping-pong buffers for the
// intermediate activations of a const forward pass through a chain of layers.
//
// Each nesting level (a network inside a network) gets its own pair, taken from a
// thread_local deque (references stay valid as it grows), so forward() of a chain is
// reentrant, thread-safe and allocation-free once warmed up.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <deque>

#include "slimnn/core/types.hpp"

namespace slimnn::detail {

template <class T>
class activation_buffers {
 public:
  activation_buffers() : level_(depth()++) {
    auto& pool = storage();
    while (pool.size() < 2 * (level_ + 1)) pool.emplace_back();
  }
  ~activation_buffers() { --depth(); }
  activation_buffers(const activation_buffers&) = delete;
  activation_buffers& operator=(const activation_buffers&) = delete;

  /// Buffer i % 2 of this level.
  matrix<T>& operator[](std::size_t i) { return storage()[2 * level_ + (i % 2)]; }

 private:
  static std::size_t& depth() {
    thread_local std::size_t d = 0;
    return d;
  }
  static std::deque<matrix<T>>& storage() {
    thread_local std::deque<matrix<T>> pool;
    return pool;
  }
  std::size_t level_;
};

}  // namespace slimnn::detail
