// slimnn/detail/scratch.hpp — per-thread scratch matrices for const forward passes.
//
// forward() is const and may run on several threads at once, so its temporaries
// cannot live in the layer. scratch<Tag, T, Slot>(rows, cols) returns a rows x cols view
// of a thread_local buffer owned by (Tag, Slot). The buffer only grows, so once it has
// held the largest size asked for it never allocates again, even when layers of one kind
// but different sizes take turns (a network's two convolutions). The contents are
// unspecified on return. Distinct tags (one per layer kind) keep nested users apart.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include "slimnn/core/types.hpp"

namespace slimnn::detail {

template <class T>
using scratch_matrix = Eigen::Map<matrix<T>, Eigen::AlignedMax>;

template <class Tag, class T, int Slot = 0>
scratch_matrix<T> scratch(index_t rows, index_t cols) {
  thread_local matrix<T> buffer;
  if (buffer.size() < rows * cols) buffer.resize(rows * cols, 1);
  return {buffer.data(), rows, cols};
}

}  // namespace slimnn::detail
