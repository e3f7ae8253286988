// slimnn/kdconv/decomposition.hpp — converts a trained conv2d into a kdconv_conv2d
// (ESCALATE kernel decomposition) and reports what the conversion cost.
//
// Per basis group (one input channel, or all channels when the basis is shared) the
// N x k^2 matrix K of its kernels (rows W[n, c] flattened in (i, j) order, stacked over
// the group's channels) is decomposed by an uncentred SVD, K = U S V^T; the basis is the
// first M right singular vectors (sign fixed so each one's largest entry is positive),
// exact for M = k^2. The basis is rounded to fixed point, and the coefficients refitted
// by least squares against the rounded basis (so M = k^2 stays exact). Coefficients are
// then pruned by |a| (never by signed value): to a target density, or those with
// |a| <= std_multiple * std(A); with group_size > 1 whole runs of output channels in one
// (c, m) column are kept or dropped together, scored by their RMS. Finally the kept
// coefficients are quantized (pow2 / k-means / float) by the layer.
// Report (core/conversion.hpp): the common fields, and the details basis_error (after the
// rank-M basis, rounded, and least-squares coefficients), pruned_error (after pruning,
// before coefficient quantization), density (nonzeros / (N * C * M)) and nonzeros.
// Cost: C SVDs of N x k^2 matrices, O(C N k^4); the pruning sort O(N C M log(N C M)).
// Thread safety: a pure function of its arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "slimnn/core/conversion.hpp"
#include "slimnn/kdconv/kdconv_conv2d.hpp"

namespace slimnn {

namespace detail {

/// keep[i] for scores[i]: the `count` largest scores (ties broken by lower index).
inline std::vector<bool> keep_largest(const std::vector<double>& scores, std::size_t count) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  count = std::min(count, order.size());
  std::nth_element(order.begin(), order.begin() + long(count), order.end(), [&](std::size_t a, std::size_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<bool> keep(scores.size(), false);
  for (std::size_t i = 0; i < count; ++i) keep[order[i]] = true;
  return keep;
}

/// Pruning mask of A (N x C*M) by |a|: per element, or per run of `group_size` output
/// channels in one column (scored by RMS), to a density or above std_multiple * std(A).
inline matrix<double> prune_mask(const matrix<double>& a, const kdconv_settings& s) {
  const index_t N = a.rows(), columns = a.cols(), gs = s.group_size, runs = (N + gs - 1) / gs;
  std::vector<double> scores;
  scores.reserve(std::size_t(runs * columns));
  for (index_t col = 0; col < columns; ++col)
    for (index_t r = 0; r < runs; ++r) {
      const index_t first = r * gs, size = std::min(gs, N - first);
      scores.push_back(std::sqrt(a.col(col).segment(first, size).squaredNorm() / double(size)));
    }
  std::vector<bool> keep;
  if (s.std_multiple > 0) {
    const double mean = a.mean();
    const double sd = std::sqrt(std::max(0.0, a.squaredNorm() / double(a.size()) - mean * mean));
    keep.resize(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) keep[i] = scores[i] > s.std_multiple * sd;
  } else {
    const auto count = std::max<std::size_t>(1, std::size_t(std::llround(s.density * double(scores.size()))));
    keep = keep_largest(scores, count);
  }
  matrix<double> mask = matrix<double>::Zero(N, columns);
  for (index_t col = 0; col < columns; ++col)
    for (index_t r = 0; r < runs; ++r)
      if (keep[std::size_t(col * runs + r)]) {
        const index_t first = r * gs;
        mask.col(col).segment(first, std::min(gs, N - first)).setOnes();
      }
  return mask;
}

}  // namespace detail

/// The kernel-decomposition convolution of `conv` (see the top); config_error for
/// settings the layer cannot take.
template <class T>
conversion<kdconv_conv2d<T>> compress(const conv2d<T>& conv, const kdconv_settings& s) {
  s.validate(conv.kernel(), conv.out_channels());
  const index_t k = conv.kernel(), kk = k * k, C = conv.input_shape().c, N = conv.out_channels(), M = s.bases;
  const index_t G = s.shared_basis ? 1 : C, per_group = C / G;
  const matrix<double> w = conv.weight().template cast<double>();  // (C*k*k) x N
  // K_g: (per_group * N) x kk, rows (c, n) of the group's kernels.
  auto kernels_of = [&](index_t g) {
    matrix<double> K(per_group * N, kk);
    for (index_t c = 0; c < per_group; ++c)
      K.middleRows(c * N, N) = w.middleRows((g * per_group + c) * kk, kk).transpose();
    return K;
  };

  // Basis: the leading right singular vectors of each group, then rounded.
  matrix<T> latent_basis(kk, G * M);
  for (index_t g = 0; g < G; ++g) {
    Eigen::JacobiSVD<matrix<double>> svd(kernels_of(g), Eigen::ComputeFullV);
    for (index_t m = 0; m < M; ++m) {
      vector<double> v = svd.matrixV().col(m);
      index_t largest = 0;
      v.cwiseAbs().maxCoeff(&largest);
      if (v[largest] < 0) v = -v;
      latent_basis.col(g * M + m) = v.cast<T>();
    }
  }
  matrix<T> used_basis = latent_basis;
  for (index_t g = 0; g < G; ++g)
    detail::quantize_basis_group<T>(s.basis_bits, std::span<const T>(latent_basis.col(g * M).data(), std::size_t(kk * M)),
                                    std::span<T>(used_basis.col(g * M).data(), std::size_t(kk * M)));

  // Coefficients: least squares against the rounded basis, A(n, c*M + m).
  matrix<double> a(N, C * M), approx = matrix<double>::Zero(C * kk, N);
  for (index_t g = 0; g < G; ++g) {
    const matrix<double> b = used_basis.middleCols(g * M, M).template cast<double>();
    const matrix<double> fit = b.colPivHouseholderQr().solve(kernels_of(g).transpose());  // M x (per_group*N)
    for (index_t c = 0; c < per_group; ++c) {
      const index_t channel = g * per_group + c;
      a.middleCols(channel * M, M) = fit.middleCols(c * N, N).transpose();
    }
  }
  auto reconstruct = [&](const matrix<double>& coefficients) {
    for (index_t c = 0; c < C; ++c) {
      const matrix<double> b = used_basis.middleCols((s.shared_basis ? 0 : c) * M, M).template cast<double>();
      approx.middleRows(c * kk, kk) = b * coefficients.middleCols(c * M, M).transpose();
    }
    return slimnn::detail::relative_error(approx, w);
  };
  const double basis_error = reconstruct(a);
  const matrix<double> pruned = a.cwiseProduct(detail::prune_mask(a, s));
  const double pruned_error = reconstruct(pruned);

  kdconv_sparse_coefficients<T> coefficients;
  coefficients.row_start.assign(1, 0);
  std::vector<T> values;
  for (index_t n = 0; n < N; ++n) {
    for (index_t col = 0; col < C * M; ++col)
      if (pruned(n, col) != 0) {
        coefficients.column.push_back(std::int32_t(col));
        values.push_back(T(pruned(n, col)));
      }
    coefficients.row_start.push_back(std::int32_t(coefficients.column.size()));
  }
  coefficients.value = Eigen::Map<const vector<T>>(values.data(), index_t(values.size()));

  kdconv_conv2d<T> layer(conv.geometry(), N, s, std::move(latent_basis), std::move(coefficients), conv.bias());
  auto report = make_conversion_report(conv, layer,
                                       {{"basis_error", basis_error},
                                        {"pruned_error", pruned_error},
                                        {"density", layer.density()},
                                        {"nonzeros", double(layer.nonzeros())}});
  return {std::move(layer), std::move(report)};
}

}  // namespace slimnn
