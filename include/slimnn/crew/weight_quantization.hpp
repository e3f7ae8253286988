// slimnn/crew/weight_quantization.hpp — integer codes for the weights of a trained
// dense layer, the input of CREW (slimnn/crew/crew_dense.hpp).
//
// Every weight becomes an integer code on a symmetric grid: w(j, i) ~ row_scale[j] * code(j, i),
// |code| <= max_code <= 127 (so codes fit int8 and the int8 path is exact). Three ways:
//   quantize_uniform(w, bits, per_layer)   uniform_quantizer::fit over the whole matrix
//   quantize_uniform(w, bits, per_row)     one uniform_quantizer per output row (row_scale[j])
//   quantize_kmeans(w, clusters, scope)    weight sharing: kmeans_1d over all weights
//                                          (per_layer) or over each input's column (per_input),
//                                          centroids then rounded to the layer's 8-bit grid, so
//                                          at most `clusters` distinct codes per layer / per input.
// Uniqueness is always counted on these codes, never on float equality.
// Shapes: w is outputs x inputs (as dense::weight()); codes the same, column-major.
// Cost: uniform O(m n); k-means O(iterations * m n log k). Errors: bits outside 2..8,
// clusters outside 1..255 or above the number of weights clustered -> config_error.
// Thread safety: pure functions.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "slimnn/core/quantize.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

/// Integer codes of a weight matrix: w(j, i) ~ row_scale[j] * codes(j, i).
struct quantized_weights {
  Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic> codes;  ///< outputs x inputs
  std::vector<double> row_scale;                                     ///< one per output row
  int max_code = 127;  ///< the grid: |code| <= max_code (2^(bits-1) - 1)

  index_t outputs() const { return codes.rows(); }
  index_t inputs() const { return codes.cols(); }
  /// The dequantized matrix row_scale[j] * codes(j, i), in double.
  matrix<double> dequantized() const {
    matrix<double> w = codes.cast<double>();
    for (index_t j = 0; j < w.rows(); ++j) w.row(j) *= row_scale[std::size_t(j)];
    return w;
  }
};

enum class quant_granularity { per_layer, per_row };
enum class kmeans_scope { per_layer, per_input };

namespace detail {

inline void require_crew_bits(int bits) {
  require<config_error>(bits >= 2 && bits <= 8, "crew: weight bits must be in 2..8, got ", bits);
}

template <class Derived>
std::vector<double> as_doubles(const Eigen::MatrixBase<Derived>& m) {
  std::vector<double> v(std::size_t(m.size()));
  index_t k = 0;
  for (index_t c = 0; c < m.cols(); ++c)
    for (index_t r = 0; r < m.rows(); ++r) v[std::size_t(k++)] = double(m(r, c));
  return v;
}

}  // namespace detail

/// Uniform symmetric quantization to `bits` (2..8), one scale per layer or per output row.
template <class T>
quantized_weights quantize_uniform(const matrix<T>& w, int bits, quant_granularity granularity) {
  detail::require_crew_bits(bits);
  quantized_weights q;
  q.codes.resize(w.rows(), w.cols());
  q.row_scale.assign(std::size_t(w.rows()), 1.0);
  auto encode_rows = [&](const uniform_quantizer& u, index_t first, index_t last) {
    for (index_t j = first; j < last; ++j) {
      q.row_scale[std::size_t(j)] = u.scale();
      for (index_t i = 0; i < w.cols(); ++i) q.codes(j, i) = std::int8_t(u.encode(double(w(j, i))));
    }
  };
  if (granularity == quant_granularity::per_layer) {
    encode_rows(uniform_quantizer::fit(detail::as_doubles(w), bits), 0, w.rows());
  } else {
    for (index_t j = 0; j < w.rows(); ++j) encode_rows(uniform_quantizer::fit(detail::as_doubles(w.row(j)), bits), j, j + 1);
  }
  q.max_code = (1 << (bits - 1)) - 1;
  return q;
}

/// Weight sharing: k-means with `clusters` centroids over all weights (per_layer) or
/// over each input's column (per_input; then clusters <= outputs), centroids rounded to
/// one 8-bit grid for the layer. Duplicate codes after rounding merge.
template <class T>
quantized_weights quantize_kmeans(const matrix<T>& w, int clusters, kmeans_scope scope = kmeans_scope::per_layer) {
  detail::require<config_error>(clusters >= 1 && clusters <= 255, "crew: clusters must be in 1..255 (8-bit codes), got ",
                                clusters);
  const auto all = detail::as_doubles(w);
  const uniform_quantizer grid = uniform_quantizer::fit(all, 8);
  quantized_weights q;
  q.codes.resize(w.rows(), w.cols());
  q.row_scale.assign(std::size_t(w.rows()), grid.scale());
  auto encode = [&](std::span<const double> values, index_t first_col) {
    const kmeans_result r = kmeans_1d(values, clusters);
    for (std::size_t k = 0; k < values.size(); ++k) {
      const index_t col = first_col + index_t(k) / w.rows(), row = index_t(k) % w.rows();
      q.codes(row, col) = std::int8_t(grid.encode(r.centroids[r.index[k]]));
    }
  };
  if (scope == kmeans_scope::per_layer) {
    encode(all, 0);
  } else {
    for (index_t i = 0; i < w.cols(); ++i)
      encode(std::span<const double>(all).subspan(std::size_t(i * w.rows()), std::size_t(w.rows())), i);
  }
  q.max_code = grid.max_code();
  return q;
}

}  // namespace slimnn
