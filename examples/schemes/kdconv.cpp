// examples/schemes/kdconv.cpp — ESCALATE kernel decomposition on the CNN's conv layers.
//
// Each conv2d becomes a kdconv_conv2d: M basis kernels per input channel (8-bit
// fixed point) and a sparse coefficient matrix pruned by |a|, then the network is
// fine-tuned for two epochs (coefficients with a fixed mask, plus the
// dense layers and biases). Settings:
//   m4-d30   4 bases per channel, 30 % of the coefficients kept, 4-bit power-of-two codes
//   m6-d15-g4  6 bases per channel, 15 % kept in groups of 4 output channels (each kept
//            (c, m) column is kept for all 4; the sparse stage then feeds every loaded
//            response to 4 accumulators), 4-bit k-means codes (16 shared values)
// The first conv has a single input channel: its 32 x M coefficients are few, every
// output channel needs some, and a rank-4 basis of its 32 kernels loses too much. It
// uses 6 bases and keeps every coefficient; the setting applies to the other conv layers.
// Both settings need >= 4x fewer conv MACs than dense. The MLP has no conv layers.

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "../scheme_registry.hpp"
#include "slimnn/kdconv/decomposition.hpp"

namespace examples {

/// Fine-tuning epochs per setting.
inline constexpr int kdconv_fine_tune_epochs = 2;

scheme kdconv_scheme() {
  return {"kdconv", [](const std::string& kind, const network<float>& baseline, const context& ctx) {
            std::vector<variant> out;
            if (kind != "cnn") return out;
            const std::pair<std::string, kdconv_settings> settings[] = {
                {"m4-d30",
                 {.bases = 4, .density = 0.30, .coefficients = kdconv_coefficient_format::pow2, .coefficient_bits = 4}},
                {"m6-d15-g4",
                 {.bases = 6, .density = 0.15, .group_size = 4, .coefficients = kdconv_coefficient_format::kmeans,
                  .coefficient_bits = 4}},
            };
            for (const auto& [label, s] : settings) {
              network<float> net = rebuild(baseline, [&](std::size_t i, const any_layer<float>& layer) {
                std::optional<any_layer<float>> swapped;
                if (const auto* conv = layer.get<conv2d<float>>()) {
                  auto layer_settings = s;
                  if (conv->input_shape().c == 1) {
                    layer_settings.bases = std::max<index_t>(layer_settings.bases, 6);
                    layer_settings.density = 1;
                  }
                  auto d = compress(*conv, layer_settings);
                  std::printf("  %s layer %zu: %s\n", label.c_str(), i, d.report.str().c_str());
                  swapped = any_layer<float>(std::move(d.layer));
                }
                return swapped;
              });
              recipe r = cnn_recipe();
              r.epochs = kdconv_fine_tune_epochs;
              r.learning_rate = 1e-3;
              ctx.fine_tune(net, r, "kdconv " + label);
              out.push_back({label, std::move(net)});
            }
            return out;
          }};
}

}  // namespace examples
