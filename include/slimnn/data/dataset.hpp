// slimnn/data/dataset.hpp — a labelled data set held in memory.
//
// x holds one sample per column (features x samples, features ordered CHW as given by
// sample_shape); y[i] in [0, classes) is the label of column i.
// subset copies a contiguous range of samples: O(count * features).
// Thread safety: plain data; concurrent reads are safe.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/shape.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

template <class T>
struct dataset {
  matrix<T> x;          ///< sample_shape.size() x size()
  std::vector<int> y;   ///< one label per column of x
  shape sample_shape;   ///< shape of one sample
  index_t classes = 0;    ///< labels are in [0, classes)

  index_t size() const { return x.cols(); }
};

/// Samples [first, first + count) of `data`. Throws config_error for a negative first or
/// count, shape_error if the range does not fit or x and y disagree.
template <class T>
dataset<T> subset(const dataset<T>& data, index_t first, index_t count) {
  detail::require<config_error>(first >= 0 && count >= 0, "subset: first (", first, ") and count (",
                                count, ") must be >= 0");
  detail::require<shape_error>(index_t(data.y.size()) == data.size(), "subset: data set has ",
                               data.size(), " samples but ", data.y.size(), " labels");
  detail::require<shape_error>(count <= data.size() - first, "subset: ", count, " samples from index ", first,
                               " out of range for a data set of ", data.size(), " samples");
  dataset<T> out;
  out.x = data.x.middleCols(first, count);
  out.y.assign(data.y.begin() + first, data.y.begin() + first + count);
  out.sample_shape = data.sample_shape;
  out.classes = data.classes;
  return out;
}

}  // namespace slimnn
