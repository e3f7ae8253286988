// slimnn/compress/select.hpp — select_plan: one scheme setting (or none) per layer,
// chosen to lose the least validation loss within a budget of stored bytes, batch-1
// latency measured on this machine, or MACs.
//
//   auto s = select_plan(net, validation, selection_candidates::defaults(), budget::parse("bytes/32"));
//   auto result = compress(net, s.chosen);        // then fine-tune result.net with fit
//
// 1. Sensitivity: for every dense / conv2d layer i and every candidate c of its kind that
//    the layer can take, the network with only layer i converted by c is evaluated on the
//    validation set: loss L(i,c) and accuracy A(i,c) (L0, A0 for the network as it is).
// 2. Cost: each converted layer's exact stored bytes and MACs (cost()), and its forward
//    time in place, at batch 1 and 64, on the dense network's own activations at that
//    layer (medians, one thread); every other layer is timed once the same way.
// 3. Choice: a multiple-choice knapsack over the layers, keeping a layer as it is being
//    one of its options: minimise the predicted loss L0 + sum_i (L(i,c_i) - L0) subject to
//    sum_i cost(i,c_i) <= the budget (costs rounded up to 1/4096 of the budget, so the
//    dynamic programme's choice is feasible in exact costs, and optimal for the rounded).
// The prediction adds the layers' effects independently; fine-tuning (with fit) then
// recovers much of the loss, so the achieved accuracy is usually above the predicted.
// 4. For a latency budget, the chosen network is timed whole; if it misses the limit,
//    the knapsack chooses again within a share shrunk by the overshoot.
// A budget is relative to the network as given: "bytes/32" is its stored bytes / 32,
// "lat/4" its measured batch-1 latency / 4, "macs/8" its MACs / 8.
// measure_options does steps 1 and 2 once; choose_plan then answers any budget from its
// table (select_plan does both).
// Errors: config_error for a malformed budget, no convertible layer, or a budget that
// even the smallest choice per layer exceeds (naming both numbers).
// Cost: (layers x candidates) conversions and validation passes, plus about
// `timing_seconds` of timing per measured layer and batch.
// Thread safety: reads `net`; the validation passes run on `options.threads` threads.
//
// Component: slimnn::circulant (adds FFTW, which is GPL-licensed), as compress.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "slimnn/compress/compress.hpp"
#include "slimnn/data/dataset.hpp"
#include "slimnn/train/trainer.hpp"

namespace slimnn {

/// What a selection may spend: the network's own total of one measure, divided.
struct budget {
  enum class measure { bytes, latency, macs };
  measure of = measure::bytes;
  double divisor = 1;

  /// "bytes/32", "lat/4", "macs/8".
  static budget parse(std::string_view text) {
    const auto slash = text.find('/');
    const auto name = text.substr(0, std::min(slash, text.size()));
    budget b;
    if (name == "bytes") b.of = measure::bytes;
    else if (name == "lat") b.of = measure::latency;
    else if (name == "macs") b.of = measure::macs;
    else throw config_error(detail::cat("budget '", text, "': expected bytes/N, lat/N or macs/N"));
    const auto d = slash == std::string_view::npos ? std::nullopt : detail::parse_number<double>(text.substr(slash + 1));
    detail::require<config_error>(d && std::isfinite(*d) && *d >= 1, "budget '", text,
                                  "': the divisor must be a number >= 1");
    b.divisor = *d;
    return b;
  }
  std::string str() const {
    return detail::cat(of == measure::bytes ? "bytes" : of == measure::latency ? "lat" : "macs", "/", divisor);
  }
};

/// The settings tried for each kind of layer; a setting a layer cannot take is skipped.
struct selection_candidates {
  std::vector<scheme_setting> dense, conv2d;

  /// Every scheme at a few strengths (the ones compare_schemes reports, and more).
  static selection_candidates defaults() {
    const auto parse_all = [](std::initializer_list<const char*> items) {
      std::vector<scheme_setting> out;
      for (const char* item : items) out.push_back(scheme_setting::parse(item));
      return out;
    };
    return {parse_all({"block_circulant:k8", "block_circulant:k16", "block_circulant:k64", "smartdeal:s8-seg50",
                       "smartdeal:s8-seg25", "smartdeal:s8-seg10", "crew:u16", "crew:u4"}),
            parse_all({"kdconv:m6", "kdconv:m4-d30", "kdconv:m6-d15-g4-km4", "smartdeal:s3-seg50",
                       "smartdeal:s3-seg25", "block_circulant:k4", "block_circulant:k8"})};
  }
};

struct selection_options {
  int threads = 1;                ///< validation passes
  double timing_seconds = 0.02;   ///< per timed layer and batch
  bool verbose = false;           ///< a line per measurement on stdout
};

/// One option of one layer, as measured.
struct layer_option {
  std::size_t layer = 0;
  std::optional<scheme_setting> setting;   ///< none: the layer as it is
  double loss = 0, accuracy = 0;           ///< validation, only this layer converted
  std::uint64_t bytes = 0, macs = 0;
  double latency_b1_us = 0, latency_b64_us = 0;
};

/// The predicted totals of a network (the sum of its layers' measures).
struct network_prediction {
  double loss = 0, accuracy = 0;
  std::uint64_t bytes = 0, macs = 0;
  double latency_b1_us = 0, latency_b64_us = 0;
};

/// Steps 1 and 2: every option of every layer, measured once for any number of budgets.
struct option_table {
  std::vector<layer_option> options;   ///< per dense / conv2d layer, in layer order: kept first
  network_prediction dense;            ///< the network as given
  network_prediction fixed;            ///< the layers without options (activations, pooling)
  double seconds = 0;                  ///< time the measurements took
};

struct selection {
  plan chosen;                          ///< one rule per converted layer ("layer[i]:...")
  std::vector<layer_option> options;    ///< every measured option, the kept ones included
  network_prediction dense, predicted;  ///< the network as given, and with `chosen`
  double limit = 0;                     ///< the budget in its measure's unit (B, us, MACs)
  double measured_latency_b1_us = 0;    ///< a latency budget's check of the whole network
  double seconds = 0;                   ///< time the measurements and the choice took
};

namespace detail {

/// Median time of f() in microseconds: one untimed call, then calls for about `seconds`.
template <class F>
double median_us(F&& f, double seconds) {
  f();
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  do {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds &&
           times.size() < 1000);
  std::nth_element(times.begin(), times.begin() + long(times.size() / 2), times.end());
  return times[times.size() / 2];
}

/// The cost the budget counts.
inline double budget_cost(budget::measure m, std::uint64_t bytes, std::uint64_t macs, double latency_b1_us) {
  return m == budget::measure::bytes ? double(bytes) : m == budget::measure::macs ? double(macs) : latency_b1_us;
}

}  // namespace detail

/// Steps 1 and 2 (see the top): the sensitivity and cost of every option of every layer.
template <class T>
option_table measure_options(const network<T>& net, const dataset<T>& validation,
                             const selection_candidates& candidates, const selection_options& options = {}) {
  const auto start = std::chrono::steady_clock::now();
  detail::require<config_error>(net.size() > 0 && validation.size() > 0,
                                "select_plan: needs a network and validation samples");
  // The dense network's activations at every layer, for timing each layer in place.
  std::vector<matrix<T>> inputs(net.size() + 1);
  inputs[0] = validation.x.leftCols(std::min<index_t>(64, validation.size()));
  for (std::size_t i = 0; i < net.size(); ++i) net[i].forward(inputs[i], inputs[i + 1]);
  const auto time_layer = [&](const any_layer<T>& layer, std::size_t i, index_t batch) {
    matrix<T> y;
    const matrix<T> x = inputs[i].leftCols(std::min<index_t>(batch, inputs[i].cols()));
    return detail::median_us([&] { layer.forward(x, y); }, options.timing_seconds);
  };
  const auto measure = [&](std::size_t i, const any_layer<T>& layer, std::optional<scheme_setting> setting,
                           const evaluation& e) {
    const auto c = layer.cost();
    return layer_option{i, std::move(setting), e.loss, e.accuracy, c.param_bytes, c.macs, time_layer(layer, i, 1),
                        time_layer(layer, i, 64)};
  };
  const auto add = [](network_prediction& to, const layer_option& o) {
    to.bytes += o.bytes;
    to.macs += o.macs;
    to.latency_b1_us += o.latency_b1_us;
    to.latency_b64_us += o.latency_b64_us;
  };

  option_table out;
  const evaluation base = evaluate(net, validation, 500, 0, options.threads);
  out.dense.loss = out.fixed.loss = base.loss;
  out.dense.accuracy = out.fixed.accuracy = base.accuracy;
  bool any = false;
  for (std::size_t i = 0; i < net.size(); ++i) {
    const bool is_dense = net[i].template get<dense<T>>() != nullptr;
    const bool is_conv = net[i].template get<conv2d<T>>() != nullptr;
    auto kept = measure(i, net[i], std::nullopt, base);
    add(out.dense, kept);
    if (!is_dense && !is_conv) {
      add(out.fixed, kept);
      continue;
    }
    any = true;
    out.options.push_back(std::move(kept));
    for (const auto& setting : is_dense ? candidates.dense : candidates.conv2d) {
      plan single;
      single.rules.push_back({layer_selector{layer_selector::kind::layer, false, index_t(i), std::nullopt}, setting});
      std::optional<compressed_network<T>> converted;
      try {
        converted = compress(net, single);
      } catch (const config_error&) {
        continue;  // this layer cannot take this setting (e.g. a basis wider than its kernel)
      }
      const evaluation e = evaluate(converted->net, validation, 500, 0, options.threads);
      out.options.push_back(measure(i, converted->net[i], setting, e));
      if (options.verbose) {
        const auto& o = out.options.back();
        std::printf("  select: layer %zu %s:%s: loss %+.4f, accuracy %.2f %%, %llu B, b1 %.1f us\n", i,
                    setting.scheme().c_str(), setting.str().c_str(), o.loss - base.loss, 100 * o.accuracy,
                    (unsigned long long)o.bytes, o.latency_b1_us);
        std::fflush(stdout);
      }
    }
  }
  detail::require<config_error>(any, "select_plan: the network has no dense or conv2d layer");
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

/// Step 3 (see the top): the options of least predicted loss within `limit`; the
/// knapsack may spend `share` (in (0, 1]) of it.
inline selection choose_plan(const option_table& table, const budget& limit, double share = 1) {
  const auto start = std::chrono::steady_clock::now();
  const auto cost = [&](const auto& o) { return detail::budget_cost(limit.of, o.bytes, o.macs, o.latency_b1_us); };
  selection out;
  out.options = table.options;
  out.dense = table.dense;
  out.limit = cost(table.dense) / limit.divisor;
  const double usable = out.limit * share;
  // The options grouped by layer, in layer order.
  std::vector<std::vector<std::size_t>> layers;
  for (std::size_t k = 0; k < table.options.size(); ++k) {
    if (k == 0 || table.options[k].layer != table.options[k - 1].layer) layers.emplace_back();
    layers.back().push_back(k);
  }
  const double base_loss = table.dense.loss;
  const double room = usable - cost(table.fixed);
  double smallest = cost(table.fixed);
  for (const auto& layer : layers) {
    double least = std::numeric_limits<double>::infinity();
    for (const auto k : layer) least = std::min(least, cost(table.options[k]));
    smallest += least;
  }
  detail::require<config_error>(room > 0 && smallest <= usable, "select_plan: budget ", limit.str(), " = ",
                                usable, " cannot be met: the smallest choice per layer needs ", smallest);
  // The knapsack, in units of 1/4096 of the room the layers with options have.
  constexpr std::size_t units = 4096;
  const double unit = room / double(units);
  const auto weight = [&](std::size_t k) { return std::size_t(std::ceil(cost(table.options[k]) / unit - 1e-9)); };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> best(units + 1, inf);
  best[0] = 0;
  std::vector<std::vector<std::size_t>> choice(layers.size(), std::vector<std::size_t>(units + 1, 0));
  for (std::size_t l = 0; l < layers.size(); ++l) {
    std::vector<double> next(units + 1, inf);
    for (const auto k : layers[l]) {
      const std::size_t w = weight(k);
      const double delta = table.options[k].loss - base_loss;
      for (std::size_t b = 0; w <= units && b + w <= units; ++b)
        if (best[b] < inf && best[b] + delta < next[b + w]) {
          next[b + w] = best[b] + delta;
          choice[l][b + w] = k;
        }
    }
    best = std::move(next);
  }
  std::size_t at = std::size_t(std::min_element(best.begin(), best.end()) - best.begin());
  detail::require<config_error>(best[at] < inf, "select_plan: budget ", limit.str(), " = ", usable,
                                " cannot be met at the knapsack's resolution; the smallest choice needs ", smallest);
  out.predicted = table.fixed;
  for (std::size_t l = layers.size(); l-- > 0;) {
    const auto& o = table.options[choice[l][at]];
    at -= weight(choice[l][at]);
    out.predicted.loss += o.loss - base_loss;
    out.predicted.accuracy += o.accuracy - table.dense.accuracy;
    out.predicted.bytes += o.bytes;
    out.predicted.macs += o.macs;
    out.predicted.latency_b1_us += o.latency_b1_us;
    out.predicted.latency_b64_us += o.latency_b64_us;
    if (o.setting)
      out.chosen.rules.insert(out.chosen.rules.begin(),
                              {layer_selector{layer_selector::kind::layer, false, index_t(o.layer), std::nullopt},
                               *o.setting});
  }
  out.seconds = table.seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

/// choose_plan, and for a latency budget a check on the whole compressed network: its
/// measured batch-1 latency (on `sample`, one column) must meet the limit too. The sum
/// of layers timed alone can miss it (caches warm with one layer's data, call overheads);
/// then the knapsack's share shrinks by the overshoot and it chooses again (4 times at
/// most; config_error naming the numbers if it still does not fit).
template <class T>
selection select_plan(const network<T>& net, const option_table& table, const budget& limit,
                      const matrix<T>& sample, const selection_options& options = {}) {
  double share = 1;
  for (int attempt = 0;; ++attempt) {
    selection s = choose_plan(table, limit, share);
    if (limit.of != budget::measure::latency) return s;
    const auto compressed = compress(net, s.chosen).net;
    matrix<T> y;
    const matrix<T> x = sample.leftCols(1);
    s.measured_latency_b1_us = detail::median_us([&] { compressed.forward(x, y); }, 10 * options.timing_seconds);
    if (s.measured_latency_b1_us <= s.limit) return s;
    detail::require<config_error>(attempt < 3, "select_plan: budget ", limit.str(), " = ", s.limit,
                                  " us: the network chosen last measures ", s.measured_latency_b1_us, " us");
    share *= 0.97 * s.limit / s.measured_latency_b1_us;
    if (options.verbose)
      std::printf("  select: %s measured %.1f us > %.1f us; choosing within %.0f %% of it\n", limit.str().c_str(),
                  s.measured_latency_b1_us, s.limit, 100 * share);
  }
}

/// measure_options, then select_plan on its table: see the top of this header.
template <class T>
selection select_plan(const network<T>& net, const dataset<T>& validation, const selection_candidates& candidates,
                      const budget& limit, const selection_options& options = {}) {
  return select_plan(net, measure_options(net, validation, candidates, options), limit, validation.x, options);
}

}  // namespace slimnn
