// examples/schemes/crew.cpp — CREW on the MLP: every dense layer's weights are
// clustered per input (k-means over each input's column, centroids on the layer's 8-bit
// grid) to at most 16 ("u16") or 4 ("u4") unique values per input, then stored as
// per-input product tables plus 4-bit / 2-bit lane indices (slimnn/crew/crew_dense.hpp).
// u16 is used as converted; u4 fine-tunes its shared values (and biases) briefly. u16-a8
// is u16 with int8 activations: each sample quantized with its own scale max |x| / 127
// and multiplied by the int8 codes exactly (crew_dense::forward_int8), as CREW's
// quantized networks run; it too is used as converted.
// Prints the mean unique weights per input and the mean index width of the converted MLP.
// The CNN's layers are mostly convolutions, which CREW does not cover: no CNN variants.

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "../scheme_registry.hpp"
#include "slimnn/crew/crew_stats.hpp"

namespace examples {

scheme crew_scheme() {
  return {"crew", [](const std::string& kind, const network<float>& baseline, const context& ctx) {
            std::vector<variant> out;
            if (kind != "mlp") return out;
            for (const std::string setting : {"u16", "u4", "u16-a8"}) {
              const crew_settings config = crew_settings::parse(setting);
              crew_stats stats;
              auto net = rebuild(baseline, [&](std::size_t, const any_layer<float>& layer) -> std::optional<any_layer<float>> {
                const auto* d = layer.get<dense<float>>();
                if (!d) return std::nullopt;
                auto crew = compress(*d, config).layer;  // (k-means values capped at the layer's outputs)
                stats += crew_stats::of(crew);
                return any_layer<float>(std::move(crew));
              });
              std::printf("  crew %s: %s\n", setting.c_str(), stats.summary().c_str());
              std::fflush(stdout);
              if (config.clusters < 16) {
                // A short fine-tuning of the shared values: a fraction of an epoch.
                recipe r{1, 128, 3e-4, 0.0};
                train_with(net, r, ctx.data.train, ctx.data.test, "crew " + setting, ctx.opt.seed + 1,
                           ctx.opt.threads, ctx.opt.quick ? 5 : 150);
              }
              out.push_back({setting, std::move(net)});
            }
            return out;
          }};
}

}  // namespace examples
