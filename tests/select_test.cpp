// Tests of slimnn/compress/select.hpp: budgets, the sensitivity table against networks
// converted and evaluated here, and the knapsack's choice against a brute force over
// the same table.
#include "slimnn/compress/select.hpp"

#include <gtest/gtest.h>

#include "slimnn/data/synthetic.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/train/optimizer.hpp"
#include "test_util.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::expect_throw_message;

TEST(Budget, ParsesAndPrints) {
  const auto b = budget::parse("bytes/32");
  EXPECT_EQ(b.of, budget::measure::bytes);
  EXPECT_EQ(b.divisor, 32);
  EXPECT_EQ(budget::parse("lat/4").of, budget::measure::latency);
  EXPECT_EQ(budget::parse("macs/2.5").divisor, 2.5);
  for (const char* text : {"bytes/32", "lat/4", "macs/2.5"}) EXPECT_EQ(budget::parse(text).str(), text);
  expect_throw_message<config_error>([] { budget::parse("memory/4"); },
                                     "slimnn: budget 'memory/4': expected bytes/N, lat/N or macs/N");
  expect_throw_message<config_error>([] { budget::parse("bytes"); },
                                     "slimnn: budget 'bytes': the divisor must be a number >= 1");
  expect_throw_message<config_error>([] { budget::parse("lat/0.5"); },
                                     "slimnn: budget 'lat/0.5': the divisor must be a number >= 1");
}

struct trained {
  network<float> net;
  dataset<float> train, validation;
};

/// 32 features -> dense 64 -> relu -> dense 64 -> relu -> dense 4, trained on blobs.
const trained& small_mlp() {
  static const trained t = [] {
    rng_t rng(5);
    auto data = make_blobs<float>(1200, shape::flat(32), 4, 1.2, rng);
    trained out{network<float>{}, subset(data, 0, 1000), subset(data, 1000, 200)};
    out.net << dense<float>(32, 64, rng) << relu<float>(shape::flat(64)) << dense<float>(64, 64, rng)
            << relu<float>(shape::flat(64)) << dense<float>(64, 4, rng);
    adam<float> opt({.learning_rate = 3e-3f});
    fit(out.net, opt, out.train, nullptr, {.epochs = 4, .batch_size = 50, .seed = 2});
    return out;
  }();
  return t;
}

selection_candidates few() {
  return {{scheme_setting::parse("block_circulant:k4"), scheme_setting::parse("block_circulant:k16"),
           scheme_setting::parse("smartdeal:s8-seg50"), scheme_setting::parse("crew:u4"),
           scheme_setting::parse("kdconv:m4")},  // not for dense layers: skipped
          {}};
}

double cost_of(const layer_option& o, budget::measure m) {
  return m == budget::measure::bytes ? double(o.bytes) : m == budget::measure::macs ? double(o.macs) : o.latency_b1_us;
}

/// The least predicted loss over every combination of options whose cost is <= limit.
double brute_force(const selection& s, budget::measure m, double limit) {
  std::vector<std::vector<const layer_option*>> by_layer;
  for (const auto& o : s.options) {
    if (by_layer.empty() || by_layer.back().front()->layer != o.layer) by_layer.emplace_back();
    by_layer.back().push_back(&o);
  }
  double best = std::numeric_limits<double>::infinity();
  std::vector<std::size_t> at(by_layer.size(), 0);
  while (true) {
    double cost = 0, loss = s.dense.loss;
    for (std::size_t l = 0; l < at.size(); ++l) {
      cost += cost_of(*by_layer[l][at[l]], m);
      loss += by_layer[l][at[l]]->loss - s.dense.loss;
    }
    if (cost <= limit) best = std::min(best, loss);
    std::size_t l = 0;
    while (l < at.size() && ++at[l] == by_layer[l].size()) at[l++] = 0;
    if (l == at.size()) break;
  }
  return best;
}

TEST(SelectPlan, MeetsAByteBudgetWithTheBestPredictedLoss) {
  const auto& t = small_mlp();
  const auto s = select_plan(t.net, t.validation, few(), budget::parse("bytes/6"), {.timing_seconds = 0.002});
  EXPECT_EQ(s.dense.bytes, t.net.cost().param_bytes);
  EXPECT_DOUBLE_EQ(s.limit, double(t.net.cost().param_bytes) / 6);
  // 3 dense layers, each kept or converted by 4 candidates (kdconv takes none of them).
  ASSERT_EQ(s.options.size(), 15u);
  for (const auto& o : s.options) {
    if (o.setting) {
      EXPECT_NE(o.setting->scheme(), "kdconv");
    }
  }

  // The prediction is the chosen options' sum, and it is what compress() gives.
  const auto result = compress(t.net, s.chosen);
  EXPECT_EQ(result.net.cost().param_bytes, s.predicted.bytes);
  EXPECT_EQ(result.net.cost().macs, s.predicted.macs);
  EXPECT_LE(double(s.predicted.bytes), s.limit);
  EXPECT_FALSE(s.chosen.rules.empty());

  // Optimal for costs rounded up to 1/4096 of the budget: no better than the exact
  // optimum, no worse than the exact optimum of a budget smaller by one unit per layer.
  const double unit = s.limit / 4096;
  EXPECT_GE(s.predicted.loss, brute_force(s, budget::measure::bytes, s.limit) - 1e-12);
  EXPECT_LE(s.predicted.loss, brute_force(s, budget::measure::bytes, s.limit - 3 * unit) + 1e-12);
}

TEST(SelectPlan, MeasuresEachOptionOnTheNetworkWithOnlyThatLayerConverted) {
  const auto& t = small_mlp();
  const auto s = select_plan(t.net, t.validation, few(), budget::parse("bytes/2"), {.timing_seconds = 0.002});
  const auto dense_eval = evaluate(t.net, t.validation);
  EXPECT_DOUBLE_EQ(s.dense.loss, dense_eval.loss);
  int checked = 0;
  for (const auto& o : s.options) {
    if (!o.setting) {
      EXPECT_DOUBLE_EQ(o.loss, dense_eval.loss);
      EXPECT_EQ(o.bytes, t.net[o.layer].cost().param_bytes);
      continue;
    }
    plan single;
    single.rules.push_back({layer_selector{layer_selector::kind::layer, false, index_t(o.layer), std::nullopt}, *o.setting});
    const auto converted = compress(t.net, single);
    const auto e = evaluate(converted.net, t.validation);
    EXPECT_DOUBLE_EQ(o.loss, e.loss) << o.layer << " " << o.setting->str();
    EXPECT_DOUBLE_EQ(o.accuracy, e.accuracy);
    EXPECT_EQ(o.bytes, converted.net[o.layer].cost().param_bytes);
    EXPECT_EQ(o.macs, converted.net[o.layer].cost().macs);
    EXPECT_GT(o.latency_b1_us, 0);
    EXPECT_GT(o.latency_b64_us, 0);
    ++checked;
  }
  EXPECT_EQ(checked, 12);
}

TEST(SelectPlan, MeetsALatencyBudgetOnTheMeasuredLatencies) {
  // Layers large enough that a block-circulant one is faster than the dense one.
  rng_t rng(6);
  const auto validation = make_blobs<float>(100, shape::flat(256), 4, 1.0, rng);
  network<float> net;
  net << dense<float>(256, 1024, rng) << relu<float>(shape::flat(1024)) << dense<float>(1024, 1024, rng)
      << relu<float>(shape::flat(1024)) << dense<float>(1024, 4, rng);
  const trained t{net, validation, validation};
  const auto s = select_plan(t.net, t.validation, few(), budget::parse("lat/1.5"), {.timing_seconds = 0.002});
  // The limit is the whole network's measured time / 1.5, not the sum of its layers'.
  EXPECT_GT(s.dense_measured_latency_b1_us, 0);
  EXPECT_DOUBLE_EQ(s.limit, s.dense_measured_latency_b1_us / 1.5);
  // The knapsack spends the same share of the dense network's sum of layer times.
  EXPECT_LE(s.predicted.latency_b1_us, s.dense.latency_b1_us / 1.5);
  // The whole compressed network, timed, meets the limit too.
  EXPECT_GT(s.measured_latency_b1_us, 0);
  EXPECT_LE(s.measured_latency_b1_us, s.limit);
  double sum = 0;
  for (const auto& o : s.options)
    if (!o.setting) sum += o.latency_b1_us;
  EXPECT_LT(sum, s.dense.latency_b1_us);  // the relus are timed too
}

TEST(SelectPlan, OneTableAnswersEveryBudget) {
  const auto& t = small_mlp();
  const auto table = measure_options(t.net, t.validation, few(), {.timing_seconds = 0.002});
  double previous_loss = -1e300;
  for (const double divisor : {1.0, 2.0, 4.0}) {
    const budget b{budget::measure::bytes, divisor};
    const auto s = choose_plan(table, b);
    EXPECT_LE(double(s.predicted.bytes), s.limit) << divisor;
    EXPECT_EQ(compress(t.net, s.chosen).net.cost().param_bytes, s.predicted.bytes);
    // A smaller budget cannot predict a lower loss (up to the rounding to 1/4096).
    EXPECT_GE(s.predicted.loss, previous_loss - 1e-3) << divisor;
    previous_loss = s.predicted.loss;
    // Half the share is the same choice as twice the divisor.
    EXPECT_EQ(choose_plan(table, b, 0.5).chosen.str(),
              choose_plan(table, {budget::measure::bytes, 2 * divisor}).chosen.str());
  }
}

TEST(SelectPlan, ABudgetThatCannotBeMetNamesBothNumbers) {
  const auto& t = small_mlp();
  try {
    select_plan(t.net, t.validation, few(), budget::parse("bytes/100000"), {.timing_seconds = 0.002});
    ADD_FAILURE() << "no exception";
  } catch (const config_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("slimnn: select_plan: budget bytes/100000 = ", 0), 0u) << what;
    EXPECT_NE(what.find(" cannot be met: the smallest choice per layer needs "), std::string::npos) << what;
  }
  network<float> only_relu;
  only_relu << relu<float>(shape::flat(32));
  expect_throw_message<config_error>(
      [&] { select_plan(only_relu, t.validation, few(), budget::parse("bytes/2"), {.timing_seconds = 0.002}); },
      "slimnn: select_plan: the network has no dense or conv2d layer");
}

}  // namespace
