// examples/schemes/smartdeal.cpp — the SmartDeal scheme in compare_schemes.
//
// MLP: both hidden dense layers (784->1024, 1024->1024) become smartdeal_dense with an
// 8 x 8 basis shared by all rows, 4-bit exponent codes and 25 % / 10 % of the length-8
// segments kept ("s8-seg25", "s8-seg10"); the 1024->10 classifier stays dense.
// CNN: the second 3x3 convolution (32->64) becomes smartdeal_conv2d (s = 3, one segment
// per input channel and kernel row) with 50 % / 25 % of the segments kept; the dense head
// stays, and so does the first convolution (one input channel, 288 weights): its 3 rows
// of one channel leave SmartDeal nothing to share, and converted it took 9.5 us at batch
// 1 against 6.4 dense (the row transform and the sparse stage's per-row overhead cost
// more than half the MACs save), as much as the whole network's gain elsewhere.
// Each variant is decomposed, then fine-tuned with the mask fixed (straight-through
// power-of-two coefficients, Adam with cosine decay): the MLP's for three (25 %) and two
// (10 %) epochs, the CNN's for 100 batches, so that the scheme stays within its time budget.

#include <chrono>
#include <cstdio>
#include <optional>

#include "../scheme_registry.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"

namespace examples {

namespace smartdeal_example {

struct setting {
  const char* label;
  smartdeal_settings settings;
};

/// Replaces the hidden dense layers (all but the last dense) or the conv layers with more
/// than one input channel.
inline network<float> convert(const network<float>& baseline, const smartdeal_settings& settings, bool convs) {
  std::size_t last_dense = 0;
  for (std::size_t i = 0; i < baseline.size(); ++i)
    if (baseline[i].get<dense<float>>()) last_dense = i;
  return rebuild(baseline, [&](std::size_t i, const any_layer<float>& layer) -> std::optional<any_layer<float>> {
    if (const auto* d = layer.get<dense<float>>(); d && !convs && i != last_dense) {
      auto r = compress(*d, settings);
      std::printf("  layer %zu %s: error %.3f, segments %.1f %%, elements %.1f %%, %llu bytes\n", i,
                  describe(r.layer).c_str(), r.report.relative_error, 100 * r.report.figure("segment_density"),
                  100 * r.report.figure("element_density"), (unsigned long long)r.report.stored_bytes);
      return any_layer<float>(std::move(r.layer));
    }
    if (const auto* c = layer.get<conv2d<float>>(); c && convs && c->input_shape().c > 1) {
      auto r = compress(*c, settings);
      std::printf("  layer %zu %s: error %.3f, segments %.1f %%, elements %.1f %%, %llu bytes\n", i,
                  describe(r.layer).c_str(), r.report.relative_error, 100 * r.report.figure("segment_density"),
                  100 * r.report.figure("element_density"), (unsigned long long)r.report.stored_bytes);
      return any_layer<float>(std::move(r.layer));
    }
    return std::nullopt;
  });
}

}  // namespace smartdeal_example

scheme smartdeal_scheme() {
  return {"smartdeal", [](const std::string& kind, const network<float>& baseline, const context& ctx) {
            using smartdeal_example::setting;
            const bool mlp = kind == "mlp";
            const std::vector<setting> settings =
                mlp ? std::vector<setting>{{"s8-seg25", {.basis_width = 8, .segment_density = 0.25}},
                                           {"s8-seg10", {.basis_width = 8, .segment_density = 0.10}}}
                    : std::vector<setting>{{"s3-seg50", {.basis_width = 3, .segment_density = 0.50}},
                                           {"s3-seg25", {.basis_width = 3, .segment_density = 0.25}}};
            // Fine-tuning budget per variant: the MLP's variants get three and two epochs;
            // the CNN's (whose SmartDeal convolutions train slowly) part of one epoch.
            std::vector<variant> out;
            for (const auto& s : settings) {
              const bool first = &s == &settings.front();
              const recipe r = mlp ? recipe{first ? 3 : 2, 128, 1e-3, 1e-4} : recipe{1, 64, 1e-3, 1e-4};
              const index_t batches = ctx.opt.quick ? 5 : mlp ? 0 : 100;
              const auto start = std::chrono::steady_clock::now();
              auto net = smartdeal_example::convert(baseline, s.settings, !mlp);
              train_with(net, r, ctx.data.train, ctx.data.test, kind + " smartdeal " + s.label, ctx.opt.seed + 1,
                         ctx.opt.threads, batches);
              std::printf("  %s: converted and fine-tuned in %.1f s\n", s.label,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
              out.push_back({s.label, std::move(net)});
            }
            return out;
          }};
}

}  // namespace examples
