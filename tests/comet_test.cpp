// Tests of the activation store (core/activation_store.hpp) and COMET's error-bounded
// compressor (comet/error_bounded.hpp): the bound on every kind of input, corrupt
// streams, lossless training bit-identical to none, lossy gradients within the bound the
// analysis gives, the bytes fit reports, and exact messages.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "slimnn/circulant/block_circulant_conv2d.hpp"
#include "slimnn/circulant/block_circulant_dense.hpp"
#include "slimnn/comet/error_bounded.hpp"
#include "slimnn/data/synthetic.hpp"
#include "slimnn/kdconv/decomposition.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/net/network.hpp"
#include "slimnn/net/sequential.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/train/gradient_check.hpp"
#include "slimnn/train/optimizer.hpp"
#include "slimnn/train/trainer.hpp"
#include "small_networks.hpp"
#include "test_util.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::expect_throw_message;
using slimnn::testing::parameter_values;
using slimnn::testing::small_cnn;

const comet::error_bounded_codec codec;

/// Round trip of x at `bound`: every finite value within the bound, every non-finite one
/// bit for bit; returns the compressed size.
template <class T>
std::size_t expect_bounded(const std::vector<T>& x, double bound) {
  std::vector<std::uint8_t> packed;
  codec.compress(std::span<const T>(x), bound, packed);
  std::vector<T> back(x.size());
  codec.decompress(packed, std::span<T>(back));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isfinite(x[i])) {
      EXPECT_LE(std::abs(double(x[i]) - double(back[i])), bound) << "value " << i << ": " << x[i] << " -> " << back[i];
    } else {
      EXPECT_EQ(std::memcmp(&x[i], &back[i], sizeof(T)), 0) << "value " << i << " (" << x[i] << ") not kept exactly";
    }
  }
  return packed.size();
}

template <class T>
std::vector<T> normal_values(std::size_t n, double scale, std::uint64_t seed) {
  rng_t rng(seed);
  std::normal_distribution<double> normal(0, scale);
  std::vector<T> x(n);
  for (auto& v : x) v = T(normal(rng));
  return x;
}

TEST(error_bounded, random_values_stay_within_every_bound) {
  for (const double bound : {1e-1, 1e-3, 1e-6}) {
    expect_bounded(normal_values<float>(10000, 1.0, 1), bound);
    expect_bounded(normal_values<double>(10000, 1.0, 2), bound);
  }
  // Values many bins apart (16-bit codes) and beyond the code range (escapes).
  expect_bounded(normal_values<float>(5000, 300.0, 3), 1e-2);
  expect_bounded(normal_values<float>(5000, 1e6, 4), 1e-3);
}

TEST(error_bounded, constant_zero_denormal_and_huge_range_inputs) {
  EXPECT_LT(expect_bounded(std::vector<float>(100000, 0.0f), 1e-3), 200u) << "zeros compress to almost nothing";
  expect_bounded(std::vector<float>(4096, 3.25f), 1e-4);
  const float denormal = std::numeric_limits<float>::denorm_min();
  std::vector<float> tiny(1000);
  for (std::size_t i = 0; i < tiny.size(); ++i) tiny[i] = denormal * float(i % 7);
  expect_bounded(tiny, 1e-40);  // a bound smaller than most of the values
  expect_bounded(tiny, 1e-3);
  std::vector<float> huge = normal_values<float>(2000, 1.0, 5);
  for (std::size_t i = 0; i < huge.size(); i += 3) huge[i] *= 1e30f;
  for (std::size_t i = 1; i < huge.size(); i += 3) huge[i] *= 1e-30f;
  expect_bounded(huge, 1e-2);
  expect_bounded(huge, 1e25);
  expect_bounded(huge, 1e37);  // codes past float's range become escapes
  std::vector<double> extremes = {std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                                  std::numeric_limits<double>::min(), -0.0, 1.0};
  expect_bounded(extremes, 0.5);
}

TEST(error_bounded, non_finite_values_come_back_exactly) {
  std::vector<float> x = normal_values<float>(300, 1.0, 6);
  x[0] = std::numeric_limits<float>::quiet_NaN();
  x[7] = std::numeric_limits<float>::infinity();
  x[299] = -std::numeric_limits<float>::infinity();
  expect_bounded(x, 1e-2);
  std::vector<double> d = {std::numeric_limits<double>::quiet_NaN(), 2.0, -std::numeric_limits<double>::infinity()};
  expect_bounded(d, 1e-3);
}

TEST(error_bounded, sparse_activations_compress_well) {
  // ReLU-like maps: half exact zeros, the rest of one sign.
  std::vector<float> x = normal_values<float>(1 << 16, 1.0, 7);
  for (auto& v : x) v = std::max(v, 0.0f);
  const std::size_t bytes = expect_bounded(x, 1e-2 * 4.0);  // 1 % of a range of about 4
  EXPECT_GT(double(x.size() * sizeof(float)) / double(bytes), 8.0);
}

TEST(error_bounded, corrupt_streams_are_format_errors) {
  const auto x = normal_values<float>(100, 1.0, 8);
  std::vector<std::uint8_t> packed;
  codec.compress(std::span<const float>(x), 1e-2, packed);
  std::vector<float> out(100);
  const auto decode = [&](std::vector<std::uint8_t> bytes, std::size_t count = 100) {
    std::vector<float> values(count);
    codec.decompress(bytes, std::span<float>(values));
  };
  expect_throw_message<format_error>([&] { decode({packed.begin(), packed.begin() + 10}); },
                                     "slimnn: error_bounded stream: missing or truncated header");
  auto bad = packed;
  bad[0] = 'X';
  expect_throw_message<format_error>([&] { decode(bad); }, "slimnn: error_bounded stream: missing or truncated header");
  bad = packed;
  bad[5] = 3;
  expect_throw_message<format_error>([&] { decode(bad); },
                                     "slimnn: error_bounded stream: code width 3 bytes (expected 1 or 2)");
  expect_throw_message<format_error>([&] { decode(packed, 99); }, "slimnn: error_bounded stream: 100 values, expected 99");
  {  // an escape code without its escaped value
    std::vector<float> one = {std::numeric_limits<float>::quiet_NaN()};
    std::vector<std::uint8_t> stream;
    codec.compress(std::span<const float>(one), 1e-2, stream);
    stream[24] = 0;                                     // the escape count (header: 32 bytes)
    stream.erase(stream.begin() + 32, stream.begin() + 44);  // and its entry: index, value
    std::vector<float> back(1);
    expect_throw_message<format_error>([&] { codec.decompress(stream, std::span<float>(back)); },
                                       "slimnn: error_bounded stream: 1 escape codes for 0 escaped values");
  }
  std::vector<double> wide(100);
  expect_throw_message<format_error>([&] { codec.decompress(packed, std::span<double>(wide)); },
                                     "slimnn: error_bounded stream: 4-byte values, read as 8-byte");
  expect_throw_message<format_error>([&] { decode({packed.begin(), packed.end() - 3}); },
                                     "slimnn: error_bounded stream: zstd: Src size is incorrect");
  expect_throw_message<config_error>(
      [&] { codec.compress(std::span<const float>(x), 0.0, packed); },
      "slimnn: error_bounded: the error bound must be positive and finite, got 0");
}

TEST(activation_store, settings_are_checked) {
  activation_store lossy{activation_mode::lossy, 1e-2, nullptr};
  expect_throw_message<config_error>(
      [&] { lossy.validate(); },
      "slimnn: activation_store: lossy mode needs a codec (slimnn::comet::error_bounded() from "
      "slimnn/comet/error_bounded.hpp, component slimnn::comet)");
  expect_throw_message<config_error>([&] { (void)comet::lossy_store(1.5); },
                                     "slimnn: activation_store: relative_bound must be in (0, 1), got 1.5");
  expect_throw_message<config_error>([&] { (void)comet::adaptive_store(-0.1); },
                                     "slimnn: activation_store: gradient_target must be in [0, 1), got -0.1");
  expect_throw_message<config_error>([&] { (void)comet::adaptive_store(0.02, 0.01, 0); },
                                     "slimnn: activation_store: calibration_interval must be >= 1, got 0");
  EXPECT_EQ(comet::adaptive_store(0.02).str(), "lossy adaptive 0.02");
  EXPECT_EQ(comet::lossy_store(0.01).str(), "lossy 0.01");
  EXPECT_EQ(activation_store{activation_mode::lossless}.str(), "lossless");
}

TEST(activation_store, kept_tensors_copy_borrow_or_compress) {
  const auto x = slimnn::testing::random_matrix<float>(50, 8);
  kept_tensor<float> none, lossless, lossy;
  lossless.set_store({activation_mode::lossless});
  lossy.set_store(comet::lossy_store(1e-3));
  none.keep(x);
  lossless.keep(x);
  lossy.keep(x);
  EXPECT_TRUE(none.get() == x);
  EXPECT_NE(none.get().data(), x.data());
  EXPECT_EQ(lossless.get().data(), x.data()) << "lossless borrows the caller's tensor";
  const double range = x.maxCoeff() - x.minCoeff();
  EXPECT_LE((lossy.get() - x).cwiseAbs().maxCoeff(), 1e-3 * range);
  EXPECT_EQ(none.memory().bytes, 50u * 8u * sizeof(float));
  EXPECT_EQ(lossless.memory().raw_bytes, none.memory().bytes);
  EXPECT_LT(lossy.memory().bytes, none.memory().bytes / 2);
}

TEST(activation_store, kept_tensors_fall_back_to_a_copy_where_they_must) {
  // Separated columns cannot be borrowed; a range past double's limits has no finite bound.
  const auto big = slimnn::testing::random_matrix<double>(12, 5);
  kept_tensor<double> lossless;
  lossless.set_store({activation_mode::lossless});
  lossless.keep(big.topRows(10));
  EXPECT_TRUE(lossless.get() == big.topRows(10));
  EXPECT_NE(lossless.get().data(), big.data());
  matrix<double> extreme = slimnn::testing::random_matrix<double>(8, 3);
  extreme(0, 0) = std::numeric_limits<double>::max();
  extreme(1, 0) = std::numeric_limits<double>::lowest();
  kept_tensor<double> lossy;
  lossy.set_store(comet::lossy_store(1e-2));
  lossy.keep(extreme);
  EXPECT_TRUE(lossy.get() == extreme);
  EXPECT_EQ(lossy.memory().bytes, lossy.memory().raw_bytes);
  // A constant tensor is bounded by its magnitude, not by 1.
  const matrix<double> constant = matrix<double>::Constant(4, 4, 1e-3);
  lossy.keep(constant);
  EXPECT_LE((lossy.get() - constant).cwiseAbs().maxCoeff(), 1e-2 * 1e-3);
}

TEST(activation_store, lossless_training_is_bit_identical_to_none) {
  rng_t data_rng(3);
  const auto data = make_blobs<double>(60, shape{1, 6, 6}, 4, 0.3, data_rng);
  const auto train = [&](activation_mode mode, int threads) {
    auto net = small_cnn(7, 8);
    net.set_activation_store({mode});
    adam<double> opt({.learning_rate = 0.01});
    const auto reports = fit(net, opt, data, nullptr,
                             {.epochs = 2, .batch_size = 16, .seed = 2, .progress = false, .threads = threads});
    return std::make_pair(parameter_values(net), reports.back());
  };
  for (const int threads : {1, 2}) {
    const auto [none, none_report] = train(activation_mode::none, threads);
    const auto [lossless, lossless_report] = train(activation_mode::lossless, threads);
    EXPECT_EQ(none, lossless) << threads << " threads";
    EXPECT_EQ(none_report.train_loss, lossless_report.train_loss);
    // The same tensors are kept, the flags and positions in fewer bytes.
    EXPECT_EQ(none_report.activation_raw_bytes, lossless_report.activation_raw_bytes);
    EXPECT_EQ(none_report.activation_peak_bytes, none_report.activation_raw_bytes);
    EXPECT_LT(lossless_report.activation_peak_bytes, none_report.activation_peak_bytes);
  }
  auto start = small_cnn(7, 8);
  EXPECT_NE(train(activation_mode::lossless, 1).first, parameter_values(start)) << "training moved the parameters";
}

TEST(activation_store, fit_reports_kept_bytes_per_layer_and_codec_time) {
  rng_t data_rng(4);
  const auto data = make_blobs<double>(64, shape{1, 6, 6}, 4, 0.3, data_rng);
  auto net = small_cnn(9, 8);
  net.set_activation_store(comet::lossy_store(1e-2));
  adam<double> opt({.learning_rate = 0.01});
  const auto report = fit(net, opt, data, nullptr, {.epochs = 1, .batch_size = 32, .progress = false}).back();
  ASSERT_EQ(report.activation_layers.size(), net.size());
  kept_memory sum;
  for (const auto& layer : report.activation_layers) sum += layer;
  EXPECT_EQ(sum.bytes, report.activation_peak_bytes);
  EXPECT_EQ(sum.raw_bytes, report.activation_raw_bytes);
  // conv's input, relu's mask, pool's positions, dense inputs: each layer that keeps
  // something keeps less than mode none; flatten keeps nothing.
  for (const std::size_t i : {0u, 1u, 2u, 4u, 5u, 6u})
    EXPECT_LT(report.activation_layers[i].bytes, report.activation_layers[i].raw_bytes) << "layer " << i;
  EXPECT_EQ(report.activation_layers[3].raw_bytes, 0u);
  EXPECT_GT(report.codec_seconds, 0.0);
}

/// The weight gradients of one step of a dense layer (outputs x inputs) with x kept
/// exactly and with x kept as `store` says.
std::pair<matrix<double>, matrix<double>> exact_and_kept_gradients(index_t inputs, index_t outputs,
                                                                   const matrix<double>& x, const matrix<double>& dy,
                                                                   const activation_store& store) {
  rng_t rng(5);
  dense<double> exact(inputs, outputs, rng);
  dense<double> kept = exact;
  kept.set_activation_store(store);
  matrix<double> y, dx;
  for (auto* layer : {&exact, &kept}) {
    zero_grad(layer->parameters());
    layer->forward_train(x, y);
    layer->backward(dy, dx);
  }
  const auto gradient = [&](dense<double>& l) {
    return Eigen::Map<const matrix<double>>(l.parameters()[0].grad, outputs, inputs).eval();
  };
  return {gradient(exact), gradient(kept)};
}

TEST(activation_store, lossy_weight_gradients_stay_within_the_analysis_bound) {
  // dW = dy x^T, so with |x - x'| <= eb pointwise, |dW - dW'|_ij <= eb * sum_b |dy_ib|.
  const auto x = slimnn::testing::random_matrix<double>(40, 16, 11);
  const auto dy = slimnn::testing::random_matrix<double>(6, 16, 12);
  const double range = x.maxCoeff() - x.minCoeff();
  for (const double relative : {1e-2, 1e-3}) {
    const auto [exact, lossy] = exact_and_kept_gradients(40, 6, x, dy, comet::lossy_store(relative));
    const matrix<double> difference = (lossy - exact).cwiseAbs();
    const vector<double> limit = relative * range * dy.cwiseAbs().rowwise().sum();
    for (index_t j = 0; j < 40; ++j)
      for (index_t i = 0; i < 6; ++i) EXPECT_LE(difference(i, j), limit[i] * (1 + 1e-9)) << i << ", " << j;
    EXPECT_GT(difference.maxCoeff(), 0.0) << "the lossy input differs from the exact one";
  }
}

TEST(activation_store, the_error_model_predicts_the_measured_gradient_error) {
  // COMET's model: relative error of dW about eb * sqrt(fan_in / 3) * |dy| / |dW|.
  const auto x = slimnn::testing::random_matrix<double>(200, 64, 13);
  const auto dy = slimnn::testing::random_matrix<double>(30, 64, 14);
  const double relative = 1e-2, eb = relative * (x.maxCoeff() - x.minCoeff());
  const auto [exact, lossy] = exact_and_kept_gradients(200, 30, x, dy, comet::lossy_store(relative));
  const double measured = (lossy - exact).norm() / exact.norm();
  const double predicted = eb * std::sqrt(200.0 / 3) * dy.norm() / exact.norm();
  EXPECT_GT(measured / predicted, 0.7);
  EXPECT_LT(measured / predicted, 1.3);
}

TEST(activation_store, the_adaptive_bound_moves_towards_the_gradient_target) {
  rng_t data_rng(9);
  const auto data = make_blobs<double>(256, shape{1, 6, 6}, 4, 0.3, data_rng);
  const auto bound_after = [&](double start, double target) {
    auto net = small_cnn(7, 8);
    net.set_activation_store(comet::adaptive_store(target, start, 1));
    adam<double> opt({.learning_rate = 0.01});
    fit(net, opt, data, nullptr, {.epochs = 1, .batch_size = 32, .progress = false});
    return std::make_pair(net[0].get<conv2d<double>>()->kept_input().relative_bound(),
                          net[4].get<dense<double>>()->kept_input().relative_bound());
  };
  // 8 steps from a bound far too loose for a tight target, and far too tight for a loose one.
  const auto [conv_tight, dense_tight] = bound_after(0.2, 1e-4);
  const auto [conv_loose, dense_loose] = bound_after(1e-4, 0.5);
  EXPECT_LT(conv_tight, 0.2 / 8);
  EXPECT_LT(dense_tight, 0.2 / 8);
  EXPECT_GT(conv_loose, 1e-4 * 8);
  EXPECT_GT(dense_loose, 1e-4 * 8);
}

TEST(activation_store, lossless_gradients_match_finite_differences) {
  rng_t rng(6);
  conv2d<double> conv(shape{2, 5, 5}, {.out_channels = 3, .kernel = 3, .padding = 1}, rng);
  max_pool2d<double> pool(shape{2, 6, 6}, 2);
  relu<double> r(shape{2, 5, 5});
  dense<double> d(7, 3, rng);
  conv.set_activation_store({activation_mode::lossless});
  pool.set_activation_store({activation_mode::lossless});
  r.set_activation_store({activation_mode::lossless});
  d.set_activation_store({activation_mode::lossless});
  EXPECT_TRUE(check_gradients(conv).ok);
  EXPECT_TRUE(check_gradients(pool).ok);
  EXPECT_TRUE(check_gradients(r).ok);
  EXPECT_TRUE(check_gradients(d).ok);
}

TEST(activation_store, a_layer_without_a_store_refuses_other_modes) {
  struct keeps_itself {  // a trainable layer of a program's own, without set_activation_store
    using scalar_type = float;
    shape input_shape() const { return shape::flat(2); }
    shape output_shape() const { return shape::flat(2); }
    std::string name() const { return "keeps_itself"; }
    void forward(const_matrix_ref<float> x, matrix_view<float> y) const { y = x; }
    void forward_train(const_matrix_ref<float> x, matrix<float>& y) { y = x; }
    void backward(const_matrix_ref<float> dy, matrix<float>& dx) { dx = dy; }
    std::vector<parameter<float>> parameters() { return {}; }
    slimnn::cost cost() const { return {}; }
  };
  network<float> net;
  net << dense<float>(2, 2) << keeps_itself{};
  net.set_activation_store({activation_mode::none});
  expect_throw_message<config_error>(
      [&] { net.set_activation_store({activation_mode::lossless}); },
      "slimnn: network: layer 1 (keeps_itself) has no activation store; it keeps its activations only in mode none");
  sequential seq(dense<float>(2, 2), keeps_itself{});
  expect_throw_message<config_error>(
      [&] { seq.set_activation_store({activation_mode::lossless}); },
      "slimnn: sequential: layer 1 (keeps_itself) has no activation store; it keeps its activations only in mode none");
}

/// 2x6x6 -> block-circulant conv (4 channels, block 2) -> relu -> SmartDeal conv 4->4 ->
/// relu -> max_pool 2 -> flatten -> SmartDeal dense 36->8 -> relu -> block-circulant
/// dense 8->4 (block 4): every layer kind that recomputes derived tensors in backward.
network<double> compressed_cnn(std::uint64_t seed) {
  rng_t rng(seed);
  network<double> net;
  block_circulant_conv2d<double> first(shape{2, 6, 6}, {.out_channels = 4, .kernel = 3, .padding = 1}, 2, rng);
  const conv2d<double> second(first.output_shape(), {.out_channels = 4, .kernel = 3, .padding = 1}, rng);
  max_pool2d<double> pool(second.output_shape(), 2);
  const dense<double> head(pool.output_shape().size(), 8, rng);
  net << first << relu<double>(first.output_shape())
      << compress(second, smartdeal_settings{.basis_width = 3, .segment_density = 0.7}).layer
      << relu<double>(second.output_shape()) << pool << flatten<double>(pool.output_shape())
      << compress(head, smartdeal_settings{.basis_width = 4, .segment_density = 0.7}).layer << relu<double>(shape::flat(8))
      << block_circulant_dense<double>(8, 4, 4, rng);
  return net;
}

TEST(activation_store, compressed_layers_train_bit_identically_with_a_lossless_store) {
  rng_t data_rng(21);
  const auto data = make_blobs<double>(48, shape{2, 6, 6}, 4, 0.3, data_rng);
  const auto train = [&](const activation_store& store) {
    auto net = compressed_cnn(22);
    net.set_activation_store(store);
    adam<double> opt({.learning_rate = 0.01});
    const auto report =
        fit(net, opt, data, nullptr, {.epochs = 2, .batch_size = 16, .seed = 2, .progress = false}).back();
    return std::make_pair(parameter_values(net), report);
  };
  const auto [none, none_report] = train({activation_mode::none});
  const auto [lossless, lossless_report] = train({activation_mode::lossless});
  EXPECT_EQ(none, lossless);
  EXPECT_EQ(none_report.train_loss, lossless_report.train_loss);
  auto start = compressed_cnn(22);
  EXPECT_NE(none, parameter_values(start)) << "training moved the parameters";
  // Each compressed layer keeps its input, nothing derived from it.
  for (const std::size_t i : {0u, 2u, 6u, 8u})
    EXPECT_EQ(none_report.activation_layers[i].raw_bytes, 16 * start[i].input_shape().size() * sizeof(double))
        << "layer " << i;
  const auto [lossy, lossy_report] = train(comet::lossy_store(1e-2));
  EXPECT_TRUE(std::isfinite(lossy_report.train_loss));
  for (const std::size_t i : {0u, 2u, 6u, 8u})
    EXPECT_LT(lossy_report.activation_layers[i].bytes, lossy_report.activation_layers[i].raw_bytes) << "layer " << i;
}

/// The relative error of the first parameter's gradient (the weights that multiply the
/// kept input) after one backward with the input kept under `store`, against mode none.
template <class Layer>
double relative_gradient_error(const Layer& layer, const activation_store& store, const matrix<double>& x,
                               const matrix<double>& dy) {
  Layer exact = layer, kept = layer;
  kept.set_activation_store(store);
  std::vector<std::vector<double>> gradients;
  for (auto* l : {&exact, &kept}) {
    zero_grad(l->parameters());
    matrix<double> y, dx;
    l->forward_train(x, y);
    l->backward(dy, dx);
    const auto p = l->parameters().front();
    gradients.emplace_back(p.grad, p.grad + p.size);
  }
  const Eigen::Map<const vector<double>> e(gradients[0].data(), index_t(gradients[0].size()));
  const Eigen::Map<const vector<double>> k(gradients[1].data(), index_t(gradients[1].size()));
  return (k - e).norm() / e.norm();
}

/// Adapts the bound on one fixed batch (calibrating every step), then measures the
/// gradient error at that bound: COMET's model, with each layer's fan-in and |dy|, must
/// land the measured error within 1.5x of the target (on these shapes it lands within
/// 15 %).
template <class Layer>
void expect_the_adapted_bound_meets_the_target(Layer layer, const char* what) {
  const double target = 2e-2;
  const auto x = slimnn::testing::random_matrix<double>(layer.input_shape().size(), 32, 31);
  const auto dy = slimnn::testing::random_matrix<double>(layer.output_shape().size(), 32, 32);
  Layer adapting = layer;
  adapting.set_activation_store(comet::adaptive_store(target, 0.2, 1));
  for (int step = 0; step < 12; ++step) {
    zero_grad(adapting.parameters());
    matrix<double> y, dx;
    adapting.forward_train(x, y);
    adapting.backward(dy, dx);
  }
  const double bound = adapting.kept_input().relative_bound();
  EXPECT_LT(bound, 0.2) << what;
  const double measured = relative_gradient_error(layer, comet::lossy_store(bound), x, dy);
  EXPECT_GT(measured, target / 1.5) << what << " at bound " << bound;
  EXPECT_LT(measured, target * 1.5) << what << " at bound " << bound;
}

TEST(activation_store, every_layer_adapts_its_bound_to_the_gradient_target) {
  rng_t rng(33);
  const dense<double> d(96, 40, rng);
  const conv2d<double> c(shape{6, 8, 8}, {.out_channels = 8, .kernel = 3, .padding = 1}, rng);
  expect_the_adapted_bound_meets_the_target(d, "dense");
  expect_the_adapted_bound_meets_the_target(c, "conv2d");
  expect_the_adapted_bound_meets_the_target(compress(d, smartdeal_settings{.basis_width = 8, .segment_density = 0.5}).layer,
                                            "smartdeal_dense");
  expect_the_adapted_bound_meets_the_target(compress(c, smartdeal_settings{.basis_width = 3, .segment_density = 0.5}).layer,
                                            "smartdeal_conv2d");
  expect_the_adapted_bound_meets_the_target(block_circulant_dense<double>(96, 40, 8, rng), "block_circulant_dense");
  expect_the_adapted_bound_meets_the_target(
      block_circulant_conv2d<double>(shape{6, 8, 8}, {.out_channels = 8, .kernel = 3, .padding = 1}, 2, rng),
      "block_circulant_conv2d");
}

}  // namespace
