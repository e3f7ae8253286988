// tests/test_util.hpp — random inputs, error measures and exact-message checks shared by
// the tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "slimnn/core/types.hpp"

namespace slimnn::testing {


template <class T>
matrix<T> random_matrix(index_t rows, index_t cols, std::uint64_t seed = 1) {
  rng_t rng(seed);
  std::normal_distribution<double> normal;
  matrix<T> m(rows, cols);
  for (index_t i = 0; i < m.size(); ++i) m.data()[i] = T(normal(rng));
  return m;
}

/// max |a - b| / max(1, max |b|): a relative error that tolerates zeros.
template <class A, class B>
double relative_error(const A& a, const B& b) {
  const double scale = std::max(1.0, double(b.cwiseAbs().maxCoeff()));
  return double((a - b).cwiseAbs().maxCoeff()) / scale;
}

/// Expects f() to throw an Error whose what() is exactly `message`.
template <class Error, class F>
void expect_throw_message(F&& f, const std::string& message) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

}  // namespace slimnn::testing
