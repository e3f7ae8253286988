// slimnn/detail/activation_buffers.hpp — per-thread buffers for the intermediate
// activations of a const forward pass through a chain of layers.
//
// Each layer of the chain writes its own buffer (an Eigen matrix reallocates whenever its
// size changes, so buffers shared by layers of different widths would reallocate on every
// pass). Each nesting level (a network inside a network) gets its own set, taken from a
// thread_local deque (references stay valid as it grows), so forward() of a chain is
// reentrant, thread-safe and allocation-free once warmed up at a given batch size.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <deque>
#include <vector>

#include "slimnn/core/types.hpp"

namespace slimnn::detail {

template <class T>
class activation_buffers {
 public:
  /// Buffers for a chain of `layers` layers.
  explicit activation_buffers(std::size_t layers) : level_(depth()++) {
    auto& pool = storage();
    while (pool.size() <= level_) pool.emplace_back();
    if (pool[level_].size() < layers) pool[level_].resize(layers);
  }
  ~activation_buffers() { --depth(); }
  activation_buffers(const activation_buffers&) = delete;
  activation_buffers& operator=(const activation_buffers&) = delete;

  /// The output buffer of layer i.
  matrix<T>& operator[](std::size_t i) { return storage()[level_][i]; }

 private:
  static std::size_t& depth() {
    thread_local std::size_t d = 0;
    return d;
  }
  static std::deque<std::vector<matrix<T>>>& storage() {
    thread_local std::deque<std::vector<matrix<T>>> pool;
    return pool;
  }
  std::size_t level_;
};

}  // namespace slimnn::detail
