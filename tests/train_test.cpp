// softmax cross-entropy, optimizers and the trainer loop.
#include <gmock/gmock.h>

#include "test_util.hpp"
#include "slimnn/data/synthetic.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/net/network.hpp"
#include "slimnn/train/optimizer.hpp"
#include "slimnn/train/trainer.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

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

}  // namespace
