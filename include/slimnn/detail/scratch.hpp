// slimnn/detail/scratch.hpp — the workspace of const forward passes: per-thread buffers
// that only grow.
//
// forward() is const and may run on several threads at once, so its temporaries
// cannot live in the layer. scratch_array<Tag, U, Slot, Allocator>(n) returns a pointer to
// at least n values of U in a thread_local buffer owned by (Tag, U, Slot, Allocator). The
// buffer only grows, so once it has held the largest size asked for it never allocates
// again, even when layers of one kind but different sizes take turns (a network's two
// convolutions). scratch<Tag, T, Slot>(rows, cols) is a rows x cols matrix view of such a
// buffer, aligned for Eigen; the FFT layers take theirs with FFTW's allocator
// (circulant/fft.hpp, fft_scratch). The contents are unspecified on return. Distinct tags
// (one per layer kind) keep nested users apart; a task on a pool thread gets that
// thread's buffers. workspace_held() counts the bytes the calling thread's buffers hold
// (what a layer's workspace_bytes(batch) predicts for a thread's first forward).
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "slimnn/core/types.hpp"

namespace slimnn::detail {

/// Bytes held by the calling thread's scratch buffers, all tags and slots together.
inline std::uint64_t& workspace_held() {
  thread_local std::uint64_t bytes = 0;
  return bytes;
}

template <class Tag, class U, int Slot = 0, class Allocator = std::allocator<U>>
U* scratch_array(std::size_t n) {
  thread_local std::vector<U, Allocator> buffer;
  if (buffer.size() < n) {
    workspace_held() += (n - buffer.size()) * sizeof(U);
    buffer.resize(n);
  }
  return buffer.data();
}

template <class T>
using scratch_matrix = Eigen::Map<matrix<T>, Eigen::AlignedMax>;

template <class Tag, class T, int Slot = 0>
scratch_matrix<T> scratch(index_t rows, index_t cols) {
  return {scratch_array<Tag, T, Slot, Eigen::aligned_allocator<T>>(std::size_t(rows * cols)), rows, cols};
}

}  // namespace slimnn::detail
