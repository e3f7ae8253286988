// examples/schemes/auto.cpp — per-layer schemes chosen by select_plan
// (slimnn/compress/select.hpp) under a budget, for both networks:
//   bytes/16, bytes/32   at most 1/16, 1/32 of the dense network's stored bytes
//   lat/4                at most 1/4 of its batch-1 latency, as measured here
// Every dense and conv2d layer is measured once with every default candidate
// (selection_candidates::defaults()): validation loss with only that layer converted,
// exact bytes, and single-thread latency in place. The validation split is the last 5000
// training images (never the test set). For each budget the knapsack picks one option
// per layer (for lat/4 the chosen network is also timed whole and, if it misses, chosen
// again within less), the plan is applied with compress(), and the network is fine-tuned
// with the plan's recipe (auto_fine_tune: the baseline's Adam and cosine decay, 8 epochs
// for the MLP, 3 for the CNN), which the printed plan carries as its fine_tune rule.

#include <cstdio>

#include "../scheme_registry.hpp"
#include "slimnn/compress/select.hpp"

namespace examples {

/// The fine-tuning of a chosen plan: the baseline's own recipe (the MLP's 8 epochs, 3 of
/// the CNN's 4). One epoch left the MLP's bytes/32 plan at 87.1 % and the CNN's lat/4
/// plans at 89-90 %; Adam at the CNN's 2e-3 gained 0.6 points over 1e-3 in 3 epochs.
inline recipe auto_fine_tune(const std::string& kind) {
  recipe r = kind == "mlp" ? mlp_recipe() : cnn_recipe();
  if (kind != "mlp") r.epochs = 3;
  return r;
}

scheme auto_scheme() {
  return {"auto", [](const std::string& kind, const network<float>& baseline, const context& ctx) {
            std::vector<variant> out;
            const index_t n = ctx.opt.quick ? 500 : 5000;
            const auto validation = subset(ctx.data.train, ctx.data.train.size() - n, n);
            set_threads(1);  // layer latencies on one thread, as compare_schemes reports them
            const selection_options options{.threads = ctx.opt.threads, .timing_seconds = ctx.opt.quick ? 0.002 : 0.02};
            const auto table = measure_options(baseline, validation, selection_candidates::defaults(), options);
            std::printf("  measured %zu options of %s's layers in %.1f s (validation: %ld training images)\n",
                        table.options.size(), kind.c_str(), table.seconds, long(n));
            for (const char* text : {"bytes/16", "bytes/32", "lat/4"}) {
              const auto b = budget::parse(text);
              selection s;
              try {
                s = select_plan(baseline, table, b, validation.x, options);
              } catch (const config_error& e) {
                std::printf("  %s: %s\n", text, e.what());
                continue;
              }
              std::printf("  %s (limit %.6g): %s\n    predicted: validation accuracy %.2f %%, %llu B, b1 %.1f us\n",
                          text, s.limit, s.chosen.str().c_str(), 100 * s.predicted.accuracy,
                          (unsigned long long)s.predicted.bytes, s.predicted.latency_b1_us);
              if (s.measured_latency_b1_us > 0)
                std::printf("    the whole network measured: b1 %.1f us\n", s.measured_latency_b1_us);
              s.chosen.fine_tune = auto_fine_tune(kind);
              auto result = compress(baseline, s.chosen);
              ctx.fine_tune(result.net, s.chosen.fine_tune, kind + " auto " + text);
              const auto achieved = evaluate(result.net, validation, 500, 0, ctx.opt.threads);
              std::printf("    achieved: validation accuracy %.2f %% after fine-tuning, %llu B\n",
                          100 * achieved.accuracy, (unsigned long long)result.net.cost().param_bytes);
              out.push_back({text, std::move(result.net)});
            }
            return out;
          }};
}

}  // namespace examples
