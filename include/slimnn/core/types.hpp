// slimnn/core/types.hpp — the matrix types every layer speaks.
//
// Activations are column-major Eigen matrices with one sample per column
// (features x batch). Inputs are taken as Eigen::Ref<const matrix<T>> so that
// blocks, maps and plain matrices all work without copies; inference outputs go into a
// matrix_view<T> (Eigen::Ref<matrix<T>>): a sized matrix or a block of its columns.
// detail::relative_error measures an approximated weight against the original.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <random>

namespace slimnn {

using index_t = Eigen::Index;

template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class T>
using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using const_matrix_ref = Eigen::Ref<const matrix<T>>;
/// A writable view of an output: a whole matrix or a block of its columns, already sized.
template <class T>
using matrix_view = Eigen::Ref<matrix<T>>;

/// The random engine used for initialisation and shuffling (seeded, reproducible).
using rng_t = std::mt19937_64;

/// Human-readable scalar name, used in layer names ("dense<float>").
template <class T>
constexpr const char* scalar_name() {
  if constexpr (std::is_same_v<T, float>) return "float";
  else if constexpr (std::is_same_v<T, double>) return "double";
  else return "scalar";
}

namespace detail {
/// Relative Frobenius error of `approx` against `exact` (the absolute error if exact is 0).
inline double relative_error(const matrix<double>& approx, const matrix<double>& exact) {
  const double norm = exact.norm();
  return norm > 0 ? (approx - exact).norm() / norm : (approx - exact).norm();
}
}  // namespace detail

}  // namespace slimnn
