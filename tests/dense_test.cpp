#include "slimnn/layers/dense.hpp"

#include <gmock/gmock.h>

#include "conformance.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

struct dense_case {
  template <class T>
  static dense<T> make() {
    rng_t rng(42);
    return dense<T>(7, 5, rng);
  }
};
INSTANTIATE_TYPED_TEST_SUITE_P(dense, conformance, ::testing::Types<dense_case>);

TEST(dense, forward_matches_naive_sum_in_double) {
  rng_t rng(3);
  dense<float> layer(13, 9, rng);
  layer.bias() = random_matrix<float>(9, 1, 5);
  const auto x = random_matrix<float>(13, 4, 6);
  matrix<float> y;
  layer.forward(x, y);
  for (index_t b = 0; b < 4; ++b)
    for (index_t o = 0; o < 9; ++o) {
      double expected = layer.bias()[o];
      for (index_t i = 0; i < 13; ++i) expected += double(layer.weight()(o, i)) * double(x(i, b));
      EXPECT_NEAR(y(o, b), expected, 1e-5) << "output " << o << " sample " << b;
    }
}

TEST(dense, cost_counts_weights_and_bias) {
  const dense<float> layer(784, 1024);
  const auto c = layer.cost();
  EXPECT_EQ(c.param_bytes, (784u * 1024u + 1024u) * 4u);
  EXPECT_EQ(c.macs, 784u * 1024u);
  EXPECT_EQ(c.bytes_read, c.param_bytes + 784u * 4u);
}

TEST(dense, rejects_bad_sizes_with_clear_messages) {
  EXPECT_THAT([] { dense<float>(0, 3); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: dense: sizes must be positive, got 0 inputs and 3 outputs")));
  const dense<float> layer(4, 3);
  matrix<float> y;
  EXPECT_THAT([&] { layer.forward(matrix<float>::Zero(5, 1), y); },
              ::testing::ThrowsMessage<shape_error>(
                  ::testing::StrEq("slimnn: dense<float>, 4->3: expects 4 inputs, got 5 rows")));
  EXPECT_THROW(dense<float>(matrix<float>::Zero(3, 4), vector<float>::Zero(2)), shape_error);
}

TEST(dense, backward_accumulates_gradients) {
  rng_t rng(1);
  dense<double> layer(3, 2, rng);
  const auto x = random_matrix<double>(3, 2, 2);
  const auto dy = random_matrix<double>(2, 2, 3);
  matrix<double> y, dx;
  layer.forward_train(x, y);
  layer.backward(dy, dx);
  auto params = layer.parameters();
  const Eigen::Map<matrix<double>> dw(params[0].grad, 2, 3);
  const matrix<double> once = dw;
  layer.backward(dy, dx);
  EXPECT_LT((matrix<double>(dw) - 2 * once).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((once - dy * x.transpose()).cwiseAbs().maxCoeff(), 1e-12);
}

}  // namespace
