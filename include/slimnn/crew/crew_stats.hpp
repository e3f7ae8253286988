// slimnn/crew/crew_stats.hpp — what CREW finds in a layer: how many unique weights each
// input has, how wide the indices are, and how many multiplies remain.
//
//   unique_histogram[u]  number of inputs with u unique codes (u_i = u)
//   mean_unique()        mean u_i over inputs
//   mean_index_width()   mean ceil(log2 u_i) bits per weight (the per-input packed width)
//   stored_index_width() bits per weight of the layout actually stored
//   multiplies           products per sample (table entries with a nonzero code), against
//   dense_multiplies     outputs * inputs for the dense layer
// Stats of several layers add up (operator+=), weighting the means by inputs / weights.
// Cost: O(inputs) per layer. Thread safety: plain values.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "slimnn/crew/crew_dense.hpp"

namespace slimnn {

struct crew_stats {
  std::vector<std::uint64_t> unique_histogram;
  std::uint64_t inputs = 0;
  std::uint64_t weights = 0;
  std::uint64_t table_entries = 0;      ///< sum u_i
  std::uint64_t multiplies = 0;
  std::uint64_t dense_multiplies = 0;
  std::uint64_t index_bits = 0;         ///< sum over weights of ceil(log2 u_i)
  std::uint64_t stored_index_bits = 0;  ///< 8 * bytes of the stored indices

  template <class T>
  static crew_stats of(const crew_dense<T>& layer) {
    crew_stats s;
    s.unique_histogram.assign(std::size_t(layer.max_unique()) + 1, 0);
    s.inputs = std::uint64_t(layer.inputs());
    s.weights = s.inputs * std::uint64_t(layer.outputs());
    for (index_t i = 0; i < layer.inputs(); ++i) {
      const auto u = std::uint64_t(layer.unique_count(i));
      ++s.unique_histogram[u];
      s.index_bits += std::uint64_t(detail::bits_for(u)) * std::uint64_t(layer.outputs());
    }
    s.table_entries = layer.table_entries();
    s.multiplies = layer.multiplies();
    s.dense_multiplies = s.weights;
    s.stored_index_bits = 8 * layer.index_bytes();
    return s;
  }

  double mean_unique() const { return inputs ? double(table_entries) / double(inputs) : 0.0; }
  double mean_index_width() const { return weights ? double(index_bits) / double(weights) : 0.0; }
  double stored_index_width() const { return weights ? double(stored_index_bits) / double(weights) : 0.0; }
  /// multiplies / dense_multiplies.
  double multiply_ratio() const { return dense_multiplies ? double(multiplies) / double(dense_multiplies) : 0.0; }

  crew_stats& operator+=(const crew_stats& o) {
    if (o.unique_histogram.size() > unique_histogram.size()) unique_histogram.resize(o.unique_histogram.size(), 0);
    for (std::size_t u = 0; u < o.unique_histogram.size(); ++u) unique_histogram[u] += o.unique_histogram[u];
    inputs += o.inputs;
    weights += o.weights;
    table_entries += o.table_entries;
    multiplies += o.multiplies;
    dense_multiplies += o.dense_multiplies;
    index_bits += o.index_bits;
    stored_index_bits += o.stored_index_bits;
    return *this;
  }

  /// "mean u_i 14.2, index 3.9 bits (stored 4.0), multiplies 1.4% of dense".
  std::string summary() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "mean u_i %.2f, index %.2f bits (stored %.2f), multiplies %.2f%% of dense",
                  mean_unique(), mean_index_width(), stored_index_width(), 100.0 * multiply_ratio());
    return buf;
  }
};

}  // namespace slimnn
