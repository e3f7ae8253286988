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
//    layer (medians, one thread; batch 1 cycles through latency_samples samples, one per
//    call, since CREW's time depends on its input's zeros, each copied into a buffer
//    first, untimed, so that it is in cache as in the network); every other layer is
//    timed once the same way.
// 3. Choice: a multiple-choice knapsack over the layers, keeping a layer as it is being
//    one of its options: minimise the predicted loss L0 + sum_i (L(i,c_i) - L0) subject to
//    sum_i cost(i,c_i) <= the budget (costs rounded up to 1/4096 of the budget, so the
//    dynamic programme's choice is feasible in exact costs, and optimal for the rounded).
// The prediction adds the layers' effects independently; fine-tuning (with fit) then
// recovers much of the loss, so the achieved accuracy is usually above the predicted.
// 4. For a latency budget, the limit is that share of the dense network timed whole, and
//    the chosen network is timed whole too, in turn with the dense one, which sets the
//    limit for that check (the knapsack itself spends the same share of
//    the dense network's summed layer times: a layer timed alone pays its call's
//    overhead). The knapsack's share then moves by the measured ratio and it chooses
//    again, a few times; see select_plan.
// A budget is relative to the network as given: "bytes/32" is its stored bytes / 32,
// "lat/4" its batch-1 latency measured whole / 4, "macs/8" its MACs / 8.
// measure_options does steps 1 and 2 once; choose_plan then answers any budget from its
// table (select_plan does both).
// Errors: config_error for a malformed budget, no convertible layer, or a budget that
// even the smallest choice per layer exceeds (naming both numbers).
// Cost: (layers x candidates) conversions and validation passes, plus about
// `timing_seconds` of timing per measured layer and batch.
// Thread safety: reads `net`; the validation passes run on `options.threads` threads, and
// Eigen's products are held to one thread while timing (Eigen::setNbThreads, restored).
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
            parse_all({"kdconv:m6", "kdconv:m4-d30", "kdconv:m4-d20", "kdconv:m4-d20-g4", "kdconv:m6-d15-g4-km4",
                       "smartdeal:s3-seg50", "smartdeal:s3-seg25", "block_circulant:k4", "block_circulant:k8"})};
  }
};

/// Batch-1 latencies are medians over calls on this many validation samples in turn (on
/// Fashion-MNIST, 16 samples still left the MLP's CREW layers 14 % apart between two sets).
inline constexpr index_t latency_samples = 256;

struct selection_options {
  int threads = 1;                ///< validation passes
  double timing_seconds = 0.02;   ///< per timed layer and batch
  /// A latency budget's chosen network must measure within (1 - headroom) x the limit:
  /// room for timing noise between runs and for fine-tuning, which moves the zeros that
  /// CREW skips (the MLP's plans measured up to 9 % slower on the test set after it).
  double latency_headroom = 0.1;
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
  double measured_latency_b1_us = 0;   ///< the network as given, timed whole: a latency budget's base
  double seconds = 0;                  ///< time the measurements took
};

struct selection {
  plan chosen;                          ///< one rule per converted layer ("layer[i]:...")
  std::vector<layer_option> options;    ///< every measured option, the kept ones included
  network_prediction dense, predicted;  ///< the network as given, and with `chosen`
  double limit = 0;                     ///< the budget in its measure's unit (B, us, MACs)
  double measured_latency_b1_us = 0;    ///< a latency budget's check of the whole network
  double dense_measured_latency_b1_us = 0;  ///< the network as given, timed whole
  double seconds = 0;                   ///< time the measurements and the choice took
};

namespace detail {

/// Median time of f(k) in microseconds: one untimed call, then calls k = 0, 1, 2, ... for
/// about `seconds`, each after an untimed prepare(k).
template <class Prepare, class F>
double median_us(Prepare&& prepare, F&& f, double seconds) {
  prepare(std::size_t(0));
  f(std::size_t(0));
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  do {
    prepare(times.size());
    const auto t0 = std::chrono::steady_clock::now();
    f(times.size());
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds &&
           times.size() < 1000);
  std::nth_element(times.begin(), times.begin() + long(times.size() / 2), times.end());
  return times[times.size() / 2];
}
template <class F>
double median_us(F&& f, double seconds) {
  return median_us([](std::size_t) {}, f, seconds);
}

/// Median batch-1 latency of `model` in microseconds, each call on the next column of
/// `samples` in turn: kernels that skip zero inputs (CREW) take time that depends on the
/// sample, so one sample alone would not stand for the data.
template <class Model, class T>
double median_b1_us(const Model& model, const matrix<T>& samples, double seconds) {
  matrix<T> y;
  return median_us([&](std::size_t k) { model.forward(samples.col(index_t(k % std::size_t(samples.cols()))), y); },
                   seconds);
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
  const detail::single_threaded_eigen one_thread;  // the timings are single-thread
  // The dense network's activations at every layer, for timing each layer in place.
  std::vector<matrix<T>> inputs(net.size() + 1);
  inputs[0] = validation.x.leftCols(std::min<index_t>(std::max<index_t>(64, latency_samples), validation.size()));
  for (std::size_t i = 0; i < net.size(); ++i) net[i].forward(inputs[i], inputs[i + 1]);
  // At batch 1 each call takes the next sample's activations, copied first (untimed) into
  // one buffer: in the network a layer's input is in cache, just written by the layer
  // before it, while the stored activations of 256 samples are not.
  const auto time_layer = [&](const any_layer<T>& layer, std::size_t i, index_t batch) {
    const matrix<T> x = inputs[i].leftCols(std::min<index_t>(batch == 1 ? latency_samples : batch, inputs[i].cols()));
    matrix<T> y, sample(x.rows(), 1);
    if (batch == 1)
      return detail::median_us([&](std::size_t k) { sample = x.col(index_t(k % std::size_t(x.cols()))); },
                               [&](std::size_t) { layer.forward(sample, y); }, options.timing_seconds);
    return detail::median_us([&](std::size_t) { layer.forward(x, y); }, options.timing_seconds);
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
  out.measured_latency_b1_us =
      detail::median_b1_us(net, matrix<T>(inputs[0].leftCols(std::min<index_t>(latency_samples, inputs[0].cols()))),
                           10 * options.timing_seconds);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

namespace detail {
/// The cost of the cheapest option of every layer, the layers without options included.
inline double least_cost(const option_table& table, budget::measure m) {
  const auto cost = [&](const auto& o) { return budget_cost(m, o.bytes, o.macs, o.latency_b1_us); };
  double total = cost(table.fixed);
  for (std::size_t k = 0; k < table.options.size();) {
    double least = std::numeric_limits<double>::infinity();
    const std::size_t layer = table.options[k].layer;
    for (; k < table.options.size() && table.options[k].layer == layer; ++k) least = std::min(least, cost(table.options[k]));
    total += least;
  }
  return total;
}
}  // namespace detail

/// Step 3 (see the top): the options of least predicted loss within `limit`; the
/// knapsack may spend `share` (in (0, 1]) of it.
inline selection choose_plan(const option_table& table, const budget& limit, double share = 1) {
  const auto start = std::chrono::steady_clock::now();
  const auto cost = [&](const auto& o) { return detail::budget_cost(limit.of, o.bytes, o.macs, o.latency_b1_us); };
  selection out;
  out.options = table.options;
  out.dense = table.dense;
  out.dense_measured_latency_b1_us = table.measured_latency_b1_us;
  // The knapsack spends sums of layer costs. For latency those sums exceed the whole
  // network's time (each layer timed alone pays its call's overhead), so it spends the
  // same share of the dense network's sum, while the limit, which select_plan's check
  // of the whole chosen network must meet, is that share of the dense network timed whole.
  const double sum_limit = cost(table.dense) / limit.divisor;
  out.limit = limit.of == budget::measure::latency && table.measured_latency_b1_us > 0
                  ? table.measured_latency_b1_us / limit.divisor
                  : sum_limit;
  const double usable = sum_limit * share;
  // The options grouped by layer, in layer order.
  std::vector<std::vector<std::size_t>> layers;
  for (std::size_t k = 0; k < table.options.size(); ++k) {
    if (k == 0 || table.options[k].layer != table.options[k - 1].layer) layers.emplace_back();
    layers.back().push_back(k);
  }
  const double base_loss = table.dense.loss;
  const double room = usable - cost(table.fixed);
  const double smallest = detail::least_cost(table, limit.of);
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
/// measured batch-1 latency (over the first latency_samples columns of `sample`, one at a
/// time) must meet the limit, less options.latency_headroom. The network as given is
/// timed again with each choice, in turn with it (3 rounds each), and the limit is that
/// time / the divisor: both then see the same machine state (on a shared VM a timing
/// taken once need not hold minutes later). The knapsack's share of the dense
/// network's summed layer times is then adjusted by the measured ratio (target /
/// measured, times 0.97), down when the network missed the target, up when it had room,
/// and the knapsack chooses again (a choice already timed is not timed again: its time
/// moves the share once more); the share starts at 1, or where the cheapest choice fits.
/// Of at most 8 choices, the one of least predicted loss that met the target is returned,
/// else the fastest that met the limit itself; config_error naming the numbers when none
/// did.
template <class T>
selection select_plan(const network<T>& net, const option_table& table, const budget& limit,
                      const matrix<T>& sample, const selection_options& options = {}) {
  if (limit.of != budget::measure::latency) return choose_plan(table, limit);
  const detail::single_threaded_eigen one_thread;  // as the table's timings (after a fine-tuning on 2, say)
  const matrix<T> x = sample.leftCols(std::min<index_t>(latency_samples, sample.cols()));
  const double sum_limit = table.dense.latency_b1_us / limit.divisor;
  // (1 % above it: the knapsack rounds each cost up to 1/4096 of the room)
  const double least_share = detail::least_cost(table, limit.of) / sum_limit * 1.01;
  const double target = 1 - options.latency_headroom;
  std::optional<selection> best, fastest;  // within the headroom; else the fastest within the limit
  std::vector<std::pair<std::string, double>> tried;  // each choice timed, and its time / its limit
  double share = std::max(1.0, least_share), last_measured = 0, limit_us = 0;
  for (int attempt = 0; attempt < 8; ++attempt) {
    selection s = choose_plan(table, limit, share);
    const std::string chosen = s.chosen.str();
    const auto seen = std::find_if(tried.begin(), tried.end(), [&](const auto& t) { return t.first == chosen; });
    double ratio = 0;  // measured / limit
    if (seen != tried.end()) {
      ratio = seen->second;
    } else {
      const network<T> compressed = compress(net, s.chosen).net;
      double dense_us = 0, chosen_us = 0;
      for (int round = 0; round < 3; ++round) {
        dense_us += detail::median_b1_us(net, x, 3 * options.timing_seconds) / 3;
        chosen_us += detail::median_b1_us(compressed, x, 3 * options.timing_seconds) / 3;
      }
      s.measured_latency_b1_us = last_measured = chosen_us;
      s.dense_measured_latency_b1_us = dense_us;
      s.limit = limit_us = dense_us / limit.divisor;
      ratio = chosen_us / s.limit;
      tried.emplace_back(chosen, ratio);
      const bool fits = ratio <= target;
      if (options.verbose)
        std::printf("  select: %s within %.0f %% of the layers' sum: measured %.1f us (limit %.1f us)%s\n",
                    limit.str().c_str(), 100 * share, chosen_us, s.limit, fits ? "" : ", too slow");
      if (!fits && ratio <= 1 && (!fastest || ratio < fastest->measured_latency_b1_us / fastest->limit)) fastest = s;
      if (fits && (!best || s.predicted.loss < best->predicted.loss)) best = std::move(s);
    }
    const double next = std::max(share * 0.97 * target / ratio, least_share);
    if (std::abs(next - share) < 0.01 * share) break;
    share = next;
  }
  if (!best && fastest) return *fastest;
  detail::require<config_error>(best.has_value(), "select_plan: budget ", limit.str(), " = ", limit_us,
                                " us (", 100 * target, " % of it with the headroom): the network chosen last ",
                                "measures ", last_measured, " us");
  return *best;
}

/// measure_options, then select_plan on its table: see the top of this header.
template <class T>
selection select_plan(const network<T>& net, const dataset<T>& validation, const selection_candidates& candidates,
                      const budget& limit, const selection_options& options = {}) {
  return select_plan(net, measure_options(net, validation, candidates, options), limit, validation.x, options);
}

}  // namespace slimnn
