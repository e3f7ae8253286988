// slimnn/detail/scratch.hpp — per-thread scratch matrices for const forward passes.
//
// forward() is const and may run on several threads at once, so its temporaries
// cannot live in the layer. scratch<Tag, T, Slot>(rows, cols) returns a thread_local
// matrix owned by (Tag, Slot): after the first call with a given size it never
// allocates again. Distinct tags (one per layer kind) keep nested users apart.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include "slimnn/core/types.hpp"

namespace slimnn::detail {

template <class Tag, class T, int Slot = 0>
matrix<T>& scratch(index_t rows, index_t cols) {
  thread_local matrix<T> buffer;
  buffer.resize(rows, cols);
  return buffer;
}

}  // namespace slimnn::detail
