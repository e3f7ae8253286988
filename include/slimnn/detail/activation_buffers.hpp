// slimnn/detail/activation_buffers.hpp — per-thread buffers for the intermediate
// activations of a const forward pass through a chain of layers.
//
// Each layer of the chain writes its own buffer, a grow-only array viewed as a rows x
// batch matrix (layers of different widths, or batches of different sizes, never make
// each other reallocate). Each nesting level (a network inside a network) gets its own
// set, taken from a thread_local deque (references stay valid as it grows), so forward()
// of a chain is reentrant, thread-safe and allocation-free once warmed up at its largest
// batch. Growth is counted in workspace_held() (detail/scratch.hpp).
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <deque>
#include <vector>

#include "slimnn/core/types.hpp"
#include "slimnn/detail/scratch.hpp"

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

  /// The output buffer of layer i, as a rows x cols matrix (contents unspecified).
  scratch_matrix<T> view(std::size_t i, index_t rows, index_t cols) {
    auto& buffer = storage()[level_][i];
    const auto n = std::size_t(rows * cols);
    if (buffer.size() < n) {
      workspace_held() += (n - buffer.size()) * sizeof(T);
      buffer.resize(n);
    }
    return {buffer.data(), rows, cols};
  }

 private:
  using buffer_t = std::vector<T, Eigen::aligned_allocator<T>>;
  static std::size_t& depth() {
    thread_local std::size_t d = 0;
    return d;
  }
  static std::deque<std::vector<buffer_t>>& storage() {
    thread_local std::deque<std::vector<buffer_t>> pool;
    return pool;
  }
  std::size_t level_;
};

}  // namespace slimnn::detail
