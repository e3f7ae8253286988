// softmax cross-entropy, optimizers and the trainer loop.
#include <gmock/gmock.h>

#include "small_networks.hpp"
#include "test_util.hpp"
#include "slimnn/data/synthetic.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/net/network.hpp"
#include "slimnn/train/optimizer.hpp"
#include "slimnn/train/recipe.hpp"
#include "slimnn/train/trainer.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::expect_throw_message;
using slimnn::testing::parameter_values;
using slimnn::testing::random_matrix;
using slimnn::testing::small_cnn;

TEST(softmax_cross_entropy, loss_and_gradient_match_definition) {
  const auto z = random_matrix<double>(5, 3, 4);
  const std::vector<int> labels{0, 4, 2};
  softmax_cross_entropy<double> loss;
  const double l = loss.forward(z, labels);
  double expected = 0;
  for (index_t b = 0; b < 3; ++b) {
    const double norm = z.col(b).array().exp().sum();
    expected -= std::log(std::exp(z(labels[std::size_t(b)], b)) / norm);
  }
  EXPECT_NEAR(l, expected / 3, 1e-12);
  matrix<double> g;
  loss.backward(g);
  for (index_t i = 0; i < z.size(); ++i) {  // finite differences
    auto zp = z, zm = z;
    zp.data()[i] += 1e-6;
    zm.data()[i] -= 1e-6;
    softmax_cross_entropy<double> a, b;
    EXPECT_NEAR(g.data()[i], (a.forward(zp, labels) - b.forward(zm, labels)) / 2e-6, 1e-8);
  }
}

TEST(softmax_cross_entropy, is_stable_for_huge_logits_and_checks_labels) {
  matrix<float> z(2, 1);
  z << 1000.f, -1000.f;
  softmax_cross_entropy<float> loss;
  const std::vector<int> right{0}, bad{2};
  EXPECT_NEAR(loss.forward(z, right), 0.f, 1e-6);
  EXPECT_THAT([&] { loss.forward(z, bad); },
              ::testing::ThrowsMessage<shape_error>(::testing::StrEq(
                  "slimnn: softmax_cross_entropy: label 2 at sample 0 is outside [0, 2)")));
}

TEST(optimizers, sgd_momentum_and_adam_steps_match_formulas) {
  std::vector<double> w{1.0, -2.0}, g{0.5, 0.25};
  std::vector<parameter<double>> params{{"w", w.data(), g.data(), 2}};
  sgd<double> s({.learning_rate = 0.1, .momentum = 0.5, .weight_decay = 0.1});
  s.step(params);  // v = g + 0.1 w
  EXPECT_NEAR(w[0], 1.0 - 0.1 * (0.5 + 0.1), 1e-15);
  EXPECT_EQ(g[0], 0.0) << "step zeroes gradients";
  g = {0.5, 0.25};
  const double w0 = w[0];
  s.step(params);  // v = 0.5 v_prev + g + 0.1 w
  EXPECT_NEAR(w[0], w0 - 0.1 * (0.5 * 0.6 + 0.5 + 0.1 * w0), 1e-15);

  std::vector<double> a{1.0}, ga{3.0};
  std::vector<parameter<double>> pa{{"a", a.data(), ga.data(), 1}};
  adam<double> opt({.learning_rate = 0.01});
  opt.step(pa);  // first Adam step moves by lr * sign(g)
  EXPECT_NEAR(a[0], 1.0 - 0.01, 1e-9);
}

TEST(optimizers, reject_bad_settings_and_changed_parameter_lists) {
  EXPECT_THAT([] { sgd<float>({.learning_rate = 0}); },
              ::testing::ThrowsMessage<config_error>(::testing::StrEq("slimnn: sgd: learning_rate must be > 0")));
  EXPECT_THROW(adam<float>({.beta1 = 1.0f}), config_error);
  std::vector<float> w(3), g(3);
  adam<float> opt({});
  opt.step(std::vector<parameter<float>>{{"w", w.data(), g.data(), 3}});
  EXPECT_THROW(opt.step(std::vector<parameter<float>>{{"w", w.data(), g.data(), 2}}), config_error);
}

TEST(trainer, learns_separable_blobs_reproducibly) {
  rng_t data_rng(5);
  const auto data = make_blobs<float>(600, shape::flat(10), 3, 0.2, data_rng);
  auto train_once = [&] {
    rng_t rng(9);
    network<float> net;
    net << dense<float>(10, 16, rng) << relu<float>(shape::flat(16)) << dense<float>(16, 3, rng);
    adam<float> opt({.learning_rate = 0.01f});
    const auto reports = fit(net, opt, data, &data, {.epochs = 3, .batch_size = 32, .seed = 4, .progress = false});
    return std::make_pair(reports, evaluate(net, data));
  };
  const auto [reports, final_eval] = train_once();
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_GT(final_eval.accuracy, 0.95);
  EXPECT_LT(reports.back().train_loss, reports.front().train_loss);
  EXPECT_EQ(train_once().second.loss, final_eval.loss) << "same seeds, same result";
}

TEST(training_recipe, trains_as_fit_with_adam_does) {
  rng_t data_rng(5);
  const auto data = make_blobs<double>(300, shape::flat(10), 3, 0.2, data_rng);
  const auto fresh = [] {
    rng_t rng(9);
    network<double> net;
    net << dense<double>(10, 16, rng) << relu<double>(shape::flat(16)) << dense<double>(16, 3, rng);
    return net;
  };
  const training_recipe recipe{.epochs = 2, .batch_size = 32, .learning_rate = 0.005, .weight_decay = 0.001};
  auto by_recipe = fresh();
  const auto reports = train(by_recipe, recipe, data, &data, {.seed = 4, .progress = false});
  auto by_fit = fresh();
  adam<double> opt({.learning_rate = 0.005, .weight_decay = 0.001});
  const auto expected = fit(by_fit, opt, data, &data, {.epochs = 2, .batch_size = 32, .seed = 4, .progress = false});
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports.back().train_loss, expected.back().train_loss);
  EXPECT_EQ(parameter_values(by_recipe), parameter_values(by_fit));
  // 0 epochs: nothing happens.
  auto untouched = fresh(), original = fresh();
  EXPECT_TRUE(train(untouched, training_recipe{}, data).empty());
  EXPECT_EQ(parameter_values(untouched), parameter_values(original));
}

TEST(training_recipe, strings_round_trip_and_bad_ones_name_what_is_wrong) {
  EXPECT_EQ(training_recipe::parse("e2").str(), "e2");
  EXPECT_EQ(training_recipe::parse("lr0.0005-e3-b128").str(), "e3-b128-lr0.0005");
  EXPECT_EQ(training_recipe::parse("e1-b64-lr0.001-wd0.0001").str(), "e1");
  const auto r = training_recipe::parse("e3-b128-lr0.0005-wd0");
  EXPECT_EQ(r, (training_recipe{3, 128, 0.0005, 0}));
  EXPECT_EQ(training_recipe::parse(r.str()), r);
  expect_throw_message<config_error>([] { training_recipe::parse("b64"); },
                                     "slimnn: training recipe setting 'b64': needs e<n> (e.g. e2-lr0.0005)");
  expect_throw_message<config_error>([] { training_recipe::parse("e2-m5"); },
                                     "slimnn: training recipe setting 'e2-m5': unknown token 'm' (e.g. e2-lr0.0005)");
  expect_throw_message<config_error>([] { training_recipe::parse("e2-lr0"); },
                                     "slimnn: training recipe setting 'e2-lr0': learning rate must be > 0, got 0");
  expect_throw_message<config_error>([] { training_recipe::parse("e1.5"); },
                                     "slimnn: training recipe setting 'e1.5': e needs a whole number, got 1.5");
  expect_throw_message<config_error>([] { training_recipe::parse("e2-lr1e-4"); },
                                     "slimnn: training recipe setting 'e2-lr1e-4': 'lr1e' is not a letter prefix and a number");
}

TEST(trainer, rejects_data_that_does_not_fit_the_model) {
  rng_t rng(1);
  const auto data = make_blobs<float>(10, shape::flat(5), 2, 0.1, rng);
  network<float> net;
  net << dense<float>(4, 2, rng);
  adam<float> opt({});
  EXPECT_THAT([&] { fit(net, opt, data, nullptr, {}); },
              ::testing::ThrowsMessage<shape_error>(
                  ::testing::StrEq("slimnn: fit: the model expects 4 inputs, the data has 5 features")));
  network<float> ok;
  ok << dense<float>(5, 2, rng);
  EXPECT_THROW(fit(ok, opt, data, nullptr, {.epochs = 0}), config_error);
}

// A small CNN in double: every layer kind that keeps state for backward.
TEST(trainer, data_parallel_steps_equal_the_single_thread_steps_to_rounding) {
  rng_t data_rng(3);
  // 50 samples in batches of 16: the last batch has 2 samples, fewer than 3 threads.
  const auto data = make_blobs<double>(50, shape{1, 6, 6}, 4, 0.3, data_rng);
  auto train = [&](int threads) {
    auto net = small_cnn(7);
    sgd<double> opt({.learning_rate = 0.05, .momentum = 0});
    const auto reports =
        fit(net, opt, data, nullptr, {.epochs = 2, .batch_size = 16, .seed = 2, .progress = false, .threads = threads});
    return std::make_pair(parameter_values(net), reports.back().train_loss);
  };
  const auto [one, loss_one] = train(1);
  for (int threads : {2, 3}) {
    const auto [many, loss_many] = train(threads);
    ASSERT_EQ(many.size(), one.size());
    double worst = 0;
    for (std::size_t i = 0; i < one.size(); ++i) worst = std::max(worst, std::abs(many[i] - one[i]));
    EXPECT_LT(worst, 1e-12) << threads << " threads";
    EXPECT_NEAR(loss_many, loss_one, 1e-12) << threads << " threads";
    EXPECT_EQ(train(threads).first, many) << "a given thread count is reproducible";
  }
  // Training moved the parameters: the comparison above is not between two copies of the start.
  const auto start = [&] {
    auto net = small_cnn(7);
    return parameter_values(net);
  }();
  EXPECT_NE(one, start);
}

TEST(trainer, evaluate_does_not_depend_on_the_thread_count) {
  rng_t data_rng(4);
  const auto data = make_blobs<double>(37, shape{1, 6, 6}, 4, 0.5, data_rng);
  const auto net = small_cnn(1);
  const auto one = evaluate(net, data, 5);
  for (int threads : {2, 4}) {
    const auto many = evaluate(net, data, 5, 0, threads);
    EXPECT_EQ(many.loss, one.loss);
    EXPECT_EQ(many.accuracy, one.accuracy);
    EXPECT_EQ(many.samples, 37);
  }
  EXPECT_EQ(evaluate(net, data, 500, 10, 3).samples, 10);
}

TEST(trainer, rejects_bad_thread_counts) {
  rng_t rng(1);
  const auto data = make_blobs<float>(10, shape::flat(5), 2, 0.1, rng);
  network<float> net;
  net << dense<float>(5, 2, rng);
  adam<float> opt({});
  EXPECT_THAT([&] { fit(net, opt, data, nullptr, {.progress = false, .threads = 0}); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: fit: threads must be in [1, 1024], got 0")));
  EXPECT_THAT([&] { evaluate(net, data, 500, 0, -2); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: thread_pool: threads must be in [1, 1024], got -2")));
  EXPECT_THAT([&] { evaluate(net, data, 0); },
              ::testing::ThrowsMessage<config_error>(::testing::StrEq("slimnn: evaluate: batch must be >= 1, got 0")));
}

}  // namespace
