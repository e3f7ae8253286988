// slimnn/smartdeal/factorize.hpp — SmartDeal's alternating factorization W ~ Ce . B of
// a weight matrix, which compress(dense | conv2d, smartdeal_settings) runs.
//
// Settings (smartdeal/settings.hpp): basis width s, rows per shared basis (0 = one basis
// for the whole matrix), the power-of-two codes' bits and largest exponent (the bases
// absorb the overall scale, so the default max_exponent 0 loses nothing), the element
// threshold, the target segment density and the number of alternating rounds.
//
// Algorithm (per basis group, in double; R stacks the length-s segments of the group's
// rows, one per line, so that R ~ Ce B with Ce having one line per segment):
//   start from B = I (or a given basis); repeat `iterations` times:
//     1. refit Ce by least squares, Ce = R pinv(B);
//     2. rescale Ce by a power of two so its largest entry rounds to 2^max_exponent
//        (B takes the inverse scale; exact);
//     3. zero entries with |c| < element_threshold * max |c| of the group, and entries
//        nearer to zero than to the smallest power (|c| < 2^(min_exponent - 1));
//     4. segment mask: keep the segment_density fraction of all segments (over the whole
//        matrix) with the largest reconstructed norm |c_seg B|, zero the rest;
//     5. round every nonzero to the nearest power of two, clipped to the range;
//     6. refit B by least squares, (Ce^T Ce + eps I) B = Ce^T R.
//   The last round's steps 5-6 are the final rounding and refit of B.
// Cost: O(iterations * rows * cols * s) plus a sort of the segment norms per round.
// It is a local method: W = Ce B is recovered exactly when the starting basis is right
// up to per-column scales within the rounding window (e.g. B diagonal), not in general.
// Result: the factors and the relative Frobenius error ||W - W_hat|| / ||W|| (W_hat with
// the bases in T); the factors report their element density (nonzeros / (rows * S * s))
// and segment density (kept / (rows * S)).
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "slimnn/smartdeal/settings.hpp"
#include "slimnn/smartdeal/smartdeal_matrix.hpp"

namespace slimnn {

template <class T>
struct smartdeal_factorization {
  smartdeal_matrix<T> factors;
  double relative_error = 0;  ///< ||W - W_hat||_F / ||W||_F, W_hat with the bases in T
};

/// Factors W (rows x cols) with `settings`; initial_basis (s x s, optional) is the
/// starting basis of every group instead of the identity.
template <class T>
smartdeal_factorization<T> smartdeal_factorize(const matrix<double>& weights, const smartdeal_settings& settings,
                                     const matrix<double>& initial_basis = {}) {
  settings.validate();
  const index_t m = weights.rows(), n = weights.cols(), s = settings.basis_width;
  detail::require<config_error>(m > 0 && n > 0, "smartdeal: sizes must be positive, got ", m, " rows and ", n,
                                " columns");
  detail::require<config_error>(s <= n, "smartdeal: basis width ", s, " is larger than the ", n,
                                " inputs of a row");
  detail::require<config_error>(weights.allFinite(), "smartdeal: the weights contain NaN or infinite values");
  detail::require<shape_error>(initial_basis.size() == 0 || (initial_basis.rows() == s && initial_basis.cols() == s),
                               "smartdeal: the initial basis is ", initial_basis.rows(), " x ", initial_basis.cols(),
                               ", expected ", s, " x ", s);
  const index_t S = (n + s - 1) / s, per = settings.group_rows == 0 ? m : std::min(settings.group_rows, m);
  const index_t G = (m + per - 1) / per, lines = m * S;
  const pow2_quantizer q = settings.quantizer();

  // R: line o*S + r holds segment r of row o (zero-padded).
  matrix<double> R = matrix<double>::Zero(lines, s);
  for (index_t c = 0; c < n; ++c)
    for (index_t o = 0; o < m; ++o) R(o * S + c / s, c % s) = weights(o, c);
  auto first_line = [&](index_t g) { return g * per * S; };
  auto group_lines = [&](index_t g) { return std::min(per, m - g * per) * S; };

  std::vector<matrix<double>> B(std::size_t(G), initial_basis.size() ? initial_basis : matrix<double>::Identity(s, s));
  matrix<double> C(lines, s);
  std::vector<double> importance(static_cast<std::size_t>(lines));
  std::vector<index_t> order(static_cast<std::size_t>(lines));
  const index_t keep = std::clamp<index_t>(index_t(std::llround(settings.segment_density * double(lines))), 1, lines);

  for (int it = 0; it < settings.iterations; ++it) {
    for (index_t g = 0; g < G; ++g) {
      auto c = C.middleRows(first_line(g), group_lines(g));
      const matrix<double>& b = B[std::size_t(g)];
      c.noalias() = R.middleRows(first_line(g), group_lines(g)) * b.completeOrthogonalDecomposition().pseudoInverse();
      // 2. power-of-two rescale, 3. element threshold
      const double top = c.cwiseAbs().maxCoeff();
      if (!(top > 0)) continue;
      int e = std::ilogb(top);  // nearest power of two of top, as pow2_quantizer rounds
      if (top >= std::ldexp(1.5, e)) ++e;
      const double scale = std::ldexp(1.0, settings.max_exponent - e);
      c *= scale;
      B[std::size_t(g)] /= scale;
      const double cut = std::max(settings.element_threshold * top * scale, std::ldexp(1.0, q.min_exponent() - 1));
      c = c.unaryExpr([cut](double v) { return std::abs(v) < cut ? 0.0 : v; });
    }
    // 4. segment mask over the whole matrix, by reconstructed norm.
    for (index_t line = 0; line < lines; ++line)
      importance[std::size_t(line)] = (C.row(line) * B[std::size_t(line / (per * S))]).norm();
    if (keep < lines) {
      std::iota(order.begin(), order.end(), index_t(0));
      std::nth_element(order.begin(), order.begin() + keep, order.end(), [&](index_t a, index_t b) {
        const double ia = importance[std::size_t(a)], ib = importance[std::size_t(b)];
        return ia != ib ? ia > ib : a < b;
      });
      for (auto i = order.begin() + keep; i != order.end(); ++i) C.row(*i).setZero();
    }
    // 5. rounding, 6. refit of B
    C = C.unaryExpr([&q](double v) { return v == 0 ? 0.0 : q.round(v); });
    for (index_t g = 0; g < G; ++g) {
      const auto c = C.middleRows(first_line(g), group_lines(g));
      matrix<double> gram = c.transpose() * c;
      if (!(gram.diagonal().maxCoeff() > 0)) continue;
      gram.diagonal().array() += 1e-12 * gram.diagonal().maxCoeff();
      B[std::size_t(g)] = gram.ldlt().solve(c.transpose() * R.middleRows(first_line(g), group_lines(g)));
    }
  }

  std::vector<Eigen::Triplet<double, std::int64_t>> entries;
  for (index_t line = 0; line < lines; ++line)
    for (index_t j = 0; j < s; ++j)
      if (C(line, j) != 0) entries.emplace_back(line / S, (line % S) * s + j, C(line, j));
  smartdeal_coefficients coefficients(m, S * s);
  coefficients.setFromTriplets(entries.begin(), entries.end());
  matrix<T> bases(s, s * G);
  for (index_t g = 0; g < G; ++g) bases.middleCols(g * s, s) = B[std::size_t(g)].template cast<T>();

  smartdeal_matrix<T> factors(m, n, s, settings.group_rows, q, std::move(bases), coefficients);
  const double error = detail::relative_error(factors.to_dense(), weights);
  return {std::move(factors), error};
}

namespace detail {
/// The figures a SmartDeal conversion reports beside the common ones.
template <class T>
std::vector<std::pair<std::string, double>> smartdeal_details(const smartdeal_matrix<T>& factors) {
  return {{"element_density", factors.element_density()}, {"segment_density", factors.segment_density()}};
}
}  // namespace detail

}  // namespace slimnn
