// tests/conformance.hpp — the typed conformance suite every layer is instantiated in.
//
// A layer joins by defining a case type with
//   template <class T> static L<T> make();   // the same layer for float and double
// and optionally `static constexpr double float_tolerance` (relative, default 1e-4),
// `static constexpr double reference_tolerance` (relative, against to_reference(); default
// 1e-9, more for a layer that rounds its activations),
// `static slimnn::gradient_check_config gradient_config()` and `template <class L> static
// void as_trained(L&)` (the layer whose function the gradient checks differentiate, for a
// layer whose forward() rounds what forward_train keeps exact); then, in its own test file:
//   INSTANTIATE_TYPED_TEST_SUITE_P(dense, conformance, ::testing::Types<dense_case>);
// A layer with save/load (a SaveableLayer, core/tensor_io.hpp) also round-trips through a
// safetensors buffer to bit-identical outputs (layer_file.hpp); others skip that test.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "layer_file.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/parallel.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/net/network.hpp"
#include "slimnn/train/gradient_check.hpp"
#include "test_util.hpp"

namespace slimnn::testing {

template <class Case>
constexpr double float_tolerance() {
  if constexpr (requires { Case::float_tolerance; }) return Case::float_tolerance;
  else return 1e-4;
}

template <class Case>
constexpr double reference_tolerance() {
  if constexpr (requires { Case::reference_tolerance; }) return Case::reference_tolerance;
  else return 1e-9;
}

template <class Case, class L>
void as_trained(L& layer) {
  if constexpr (requires { Case::as_trained(layer); }) Case::as_trained(layer);
}

template <class Case>
gradient_check_config gradient_config() {
  if constexpr (requires { Case::gradient_config(); }) return Case::gradient_config();
  else return {};
}

}  // namespace slimnn::testing

template <class Case>
class conformance : public ::testing::Test {
 protected:
  using layer_f = decltype(Case::template make<float>());
  using layer_d = decltype(Case::template make<double>());
};
TYPED_TEST_SUITE_P(conformance);

TYPED_TEST_P(conformance, output_has_declared_shape) {
  const auto layer = TypeParam::template make<float>();
  static_assert(slimnn::Layer<std::remove_cvref_t<decltype(layer)>>);
  slimnn::matrix<float> y;
  layer.forward(slimnn::testing::random_matrix<float>(layer.input_shape().size(), 3), y);
  EXPECT_EQ(y.rows(), layer.output_shape().size());
  EXPECT_EQ(y.cols(), 3);
  EXPECT_TRUE(y.allFinite());
  EXPECT_FALSE(layer.name().empty());
}

TYPED_TEST_P(conformance, rejects_wrong_input_rows) {
  const auto layer = TypeParam::template make<float>();
  slimnn::matrix<float> y;
  const auto x = slimnn::testing::random_matrix<float>(layer.input_shape().size() + 1, 2);
  EXPECT_THROW(layer.forward(x, y), slimnn::shape_error);
}

TYPED_TEST_P(conformance, forward_is_deterministic) {
  const auto layer = TypeParam::template make<float>();
  const auto x = slimnn::testing::random_matrix<float>(layer.input_shape().size(), 4);
  slimnn::matrix<float> a, b;
  layer.forward(x, a);
  layer.forward(x, b);
  EXPECT_EQ(a, b);
}

TYPED_TEST_P(conformance, concurrent_forward_matches_serial) {
  const auto layer = TypeParam::template make<float>();
  const auto x = slimnn::testing::random_matrix<float>(layer.input_shape().size(), 2);
  slimnn::matrix<float> expected;
  layer.forward(x, expected);
  constexpr int threads = 4, repeats = 8;
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      slimnn::matrix<float> y;
      for (int r = 0; r < repeats; ++r) {
        layer.forward(x, y);
        mismatches[std::size_t(t)] += (y != expected);
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(mismatches[std::size_t(t)], 0) << "thread " << t;
}

TYPED_TEST_P(conformance, bit_identical_on_any_thread_count) {
  const auto layer = TypeParam::template make<float>();
  slimnn::thread_pool one(1), two(2), three(3);
  for (const slimnn::index_t batch : {1, 7, 63, 64, 100, 160}) {
    const auto x = slimnn::testing::random_matrix<float>(layer.input_shape().size(), batch, std::uint64_t(batch));
    slimnn::matrix<float> expected, direct, y;
    slimnn::parallel_forward(layer, one, x, expected);
    layer.forward(x, direct);  // the batch as a whole: the same up to rounding
    EXPECT_LT(slimnn::testing::relative_error(direct.template cast<double>(), expected.template cast<double>()), 1e-5);
    for (auto* pool : {&two, &three}) {
      slimnn::parallel_forward(layer, *pool, x, y);
      EXPECT_TRUE(y == expected) << "batch " << batch << " on " << pool->size() << " threads";
    }
  }
}

TYPED_TEST_P(conformance, forward_into_column_views) {
  const auto layer = TypeParam::template make<float>();
  const auto n = layer.input_shape().size(), m = layer.output_shape().size();
  const auto x = slimnn::testing::random_matrix<float>(n, 5);
  slimnn::matrix<float> left, right;
  layer.forward(x.leftCols(2), left);
  layer.forward(x.rightCols(3), right);
  // Two callers' column blocks of one output; the other columns stay as they were.
  slimnn::matrix<float> y = slimnn::matrix<float>::Constant(m, 7, -3.0f);
  layer.forward(x.leftCols(2), y.middleCols(1, 2));
  layer.forward(x.rightCols(3), slimnn::matrix_view<float>(y.middleCols(3, 3)));
  // (Equal up to rounding: Eigen's small products peel unaligned destination rows.)
  const slimnn::matrix<float> got_left = y.middleCols(1, 2), got_right = y.middleCols(3, 3);
  EXPECT_LT(slimnn::testing::relative_error(got_left.template cast<double>(), left.template cast<double>()), 1e-6);
  EXPECT_LT(slimnn::testing::relative_error(got_right.template cast<double>(), right.template cast<double>()), 1e-6);
  EXPECT_TRUE((y.col(0).array() == -3.0f).all() && (y.col(6).array() == -3.0f).all());
  const std::string who = slimnn::describe(layer);
  slimnn::matrix<float> small(m, 4);
  slimnn::testing::expect_throw_message<slimnn::shape_error>(
      [&] { layer.forward(x, slimnn::matrix_view<float>(small)); },
      "slimnn: " + who + ": the output view is " + std::to_string(m) + " x 4, expected " + std::to_string(m) + " x 5");
  slimnn::matrix<float> tall(m + 1, 5);
  slimnn::testing::expect_throw_message<slimnn::shape_error>(
      [&] { layer.forward(x, tall.topRows(m)); },
      "slimnn: " + who + ": the output view's columns are " + std::to_string(m + 1) + " values apart, not " + std::to_string(m) +
          " (take whole columns: a matrix or middleCols)");
}

TYPED_TEST_P(conformance, workspace_bytes_is_what_a_thread_takes) {
  const auto layer = TypeParam::template make<float>();
  for (const slimnn::index_t batch : {1, 7, 64}) {
    const auto x = slimnn::testing::random_matrix<float>(layer.input_shape().size(), batch);
    std::uint64_t first = 0, second = 0;
    std::thread([&] {  // a new thread starts with an empty workspace
      slimnn::matrix<float> y;
      layer.forward(x, y);
      first = slimnn::detail::workspace_held();
      layer.forward(x, y);
      second = slimnn::detail::workspace_held();
    }).join();
    // A chain adds up its layers' figures, an upper bound where layers of one kind share buffers.
    if constexpr (requires { layer.set_threads(1); }) EXPECT_LE(first, slimnn::workspace_bytes(layer, batch));
    else EXPECT_EQ(first, slimnn::workspace_bytes(layer, batch)) << "batch " << batch;
    EXPECT_EQ(second, first) << "batch " << batch << ": a warm forward grew the workspace";
  }
}

TYPED_TEST_P(conformance, strided_view_matches_contiguous) {
  const auto layer = TypeParam::template make<float>();
  const auto n = layer.input_shape().size();
  const auto big = slimnn::testing::random_matrix<float>(n + 5, 7);
  const slimnn::matrix<float> copy = big.block(2, 1, n, 3);
  slimnn::matrix<float> from_view, from_copy;
  layer.forward(big.block(2, 1, n, 3), from_view);
  layer.forward(copy, from_copy);
  EXPECT_EQ(from_view, from_copy);
}

TYPED_TEST_P(conformance, batch_matches_single_samples) {
  const auto layer = TypeParam::template make<double>();
  const auto x = slimnn::testing::random_matrix<double>(layer.input_shape().size(), 5);
  slimnn::matrix<double> batch, single;
  layer.forward(x, batch);
  for (slimnn::index_t b = 0; b < x.cols(); ++b) {
    layer.forward(x.col(b), single);
    EXPECT_LT(slimnn::testing::relative_error(single.col(0), batch.col(b)), 1e-12) << "sample " << b;
  }
}

TYPED_TEST_P(conformance, float_matches_double) {
  const auto lf = TypeParam::template make<float>();
  const auto ld = TypeParam::template make<double>();
  const auto xd = slimnn::testing::random_matrix<double>(ld.input_shape().size(), 3);
  const slimnn::matrix<float> xf = xd.template cast<float>();
  slimnn::matrix<float> yf;
  slimnn::matrix<double> yd;
  lf.forward(xf, yf);
  ld.forward(xd, yd);
  EXPECT_LT(slimnn::testing::relative_error(yf.template cast<double>(), yd),
            slimnn::testing::float_tolerance<TypeParam>());
  EXPECT_EQ(lf.cost().macs, ld.cost().macs);
}

TYPED_TEST_P(conformance, same_output_inside_a_network) {
  const auto layer = TypeParam::template make<float>();
  slimnn::network<float> net;
  net << layer;
  const auto x = slimnn::testing::random_matrix<float>(layer.input_shape().size(), 3);
  slimnn::matrix<float> direct, through;
  layer.forward(x, direct);
  net.forward(x, through);
  EXPECT_EQ(direct, through);
  EXPECT_EQ(net.cost(), layer.cost());
}

TYPED_TEST_P(conformance, gradients_match_finite_differences) {
  using layer_d = typename TestFixture::layer_d;
  if constexpr (slimnn::TrainableLayer<layer_d>) {
    auto layer = TypeParam::template make<double>();
    slimnn::testing::as_trained<TypeParam>(layer);
    const auto result = slimnn::check_gradients(layer, slimnn::testing::gradient_config<TypeParam>());
    EXPECT_TRUE(result.ok) << result.worst << " (error ratio " << result.worst_error << ")";
    EXPECT_GT(result.checked, 0);
  } else {
    GTEST_SKIP() << "inference-only layer";
  }
}

// The lossless activation store keeps the same values in less room (bit masks, window
// codes, borrowed inputs): backward must give the same gradients.
TYPED_TEST_P(conformance, gradients_match_with_a_lossless_store) {
  using layer_d = typename TestFixture::layer_d;
  if constexpr (slimnn::TrainableLayer<layer_d> &&
                requires(layer_d& l, const slimnn::activation_store& s) { l.set_activation_store(s); }) {
    auto layer = TypeParam::template make<double>();
    slimnn::testing::as_trained<TypeParam>(layer);
    layer.set_activation_store({slimnn::activation_mode::lossless});
    const auto result = slimnn::check_gradients(layer, slimnn::testing::gradient_config<TypeParam>());
    EXPECT_TRUE(result.ok) << result.worst << " (error ratio " << result.worst_error << ")";
    EXPECT_GT(result.checked, 0);
  } else {
    GTEST_SKIP() << "no activation store";
  }
}

TYPED_TEST_P(conformance, backward_rejects_wrong_gradient_shape) {
  using layer_f = typename TestFixture::layer_f;
  if constexpr (slimnn::TrainableLayer<layer_f>) {
    auto layer = TypeParam::template make<float>();
    slimnn::matrix<float> y, dx;
    layer.forward_train(slimnn::testing::random_matrix<float>(layer.input_shape().size(), 2), y);
    const slimnn::matrix<float> bad = slimnn::matrix<float>::Zero(y.rows() + 1, 2);
    EXPECT_THROW(layer.backward(bad, dx), slimnn::shape_error);
  } else {
    GTEST_SKIP() << "inference-only layer";
  }
}

TYPED_TEST_P(conformance, save_load_round_trip) {
  using layer_f = typename TestFixture::layer_f;
  if constexpr (slimnn::SaveableLayer<layer_f>) {
    slimnn::testing::expect_round_trip(TypeParam::template make<float>());
    slimnn::testing::expect_round_trip(TypeParam::template make<double>(), "block.3.");
  } else {
    GTEST_SKIP() << "no layer save/load (whole networks round-trip in network_io_test)";
  }
}

// The cost model (core/cost.hpp): param_bytes is exactly the bytes of the saved tensors.
TYPED_TEST_P(conformance, param_bytes_are_the_files_tensor_bytes) {
  using layer_f = typename TestFixture::layer_f;
  if constexpr (slimnn::SaveableLayer<layer_f>) {
    const auto f = TypeParam::template make<float>();
    EXPECT_EQ(f.cost().param_bytes, slimnn::testing::file_tensor_bytes(f));
    const auto d = TypeParam::template make<double>();
    EXPECT_EQ(d.cost().param_bytes, slimnn::testing::file_tensor_bytes(d));
  } else {
    GTEST_SKIP() << "no layer save/load";
  }
}

// A compressed layer's to_reference() is the dense<T> / conv2d<T> that computes the same
// function, with the same shapes.
TYPED_TEST_P(conformance, to_reference_computes_the_same_function) {
  using layer_d = typename TestFixture::layer_d;
  if constexpr (requires(const layer_d& l) { l.to_reference(); }) {
    const auto layer = TypeParam::template make<double>();
    const auto reference = layer.to_reference();
    EXPECT_EQ(reference.input_shape(), layer.input_shape());
    EXPECT_EQ(reference.output_shape(), layer.output_shape());
    const auto x = slimnn::testing::random_matrix<double>(layer.input_shape().size(), 3, 5);
    slimnn::matrix<double> y, expected;
    layer.forward(x, y);
    reference.forward(x, expected);
    EXPECT_LT(slimnn::testing::relative_error(y, expected), slimnn::testing::reference_tolerance<TypeParam>());
  } else {
    GTEST_SKIP() << "not a compressed layer";
  }
}

REGISTER_TYPED_TEST_SUITE_P(conformance, output_has_declared_shape, rejects_wrong_input_rows,
                            forward_is_deterministic, concurrent_forward_matches_serial, bit_identical_on_any_thread_count,
                            forward_into_column_views, workspace_bytes_is_what_a_thread_takes,
                            strided_view_matches_contiguous, batch_matches_single_samples,
                            float_matches_double, same_output_inside_a_network,
                            gradients_match_finite_differences, gradients_match_with_a_lossless_store,
                            backward_rejects_wrong_gradient_shape,
                            save_load_round_trip, param_bytes_are_the_files_tensor_bytes,
                            to_reference_computes_the_same_function);
