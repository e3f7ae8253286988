// slimnn/compress/compress.hpp — compress(network, plan): a new network in which every
// layer a plan's rule selects is converted with that rule's scheme setting, plus a
// report per converted layer.
//
//   auto result = compress(net, plan::parse("conv2d:kdconv:m4-d30; dense[-1]:crew:u16"));
//   result.net        the compressed network (the layers no rule selects are copies)
//   result.layers     per converted layer: index, rule, and the conversion_report
//                     (core/conversion.hpp: relative_error, stored_bytes, macs,
//                     dense_bytes, dense_macs, details)
//
// Each layer is converted by compress(layer, settings), the one conversion verb; what
// each scheme takes:
//   block_circulant  dense, conv2d   Frobenius-nearest block-circulant layer
//   smartdeal        dense, conv2d   (a conv2d needs basis width = kernel)
//   crew             dense           (k-means values are capped at the layer's outputs)
//   kdconv           conv2d
// A rule that selects no layer, a layer that two rules select, and a scheme that cannot
// take a selected layer each raise config_error naming the rule (and the layer).
// Cost: the conversions' own (SmartDeal's and kdconv's alternating fits dominate).
// Thread safety: reads `net` only; the result is a new network.
//
// Component: slimnn::circulant (adds FFTW, which is GPL-licensed): it converts to
// block-circulant layers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "slimnn/circulant/block_circulant_conv2d.hpp"
#include "slimnn/circulant/block_circulant_dense.hpp"
#include "slimnn/compress/plan.hpp"
#include "slimnn/crew/crew_dense.hpp"
#include "slimnn/kdconv/decomposition.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"

namespace slimnn {

/// What converting one layer did: where, by which rule, and the conversion's report.
struct layer_compression {
  std::size_t index = 0;        ///< the layer's index in the network
  std::string rule;             ///< the plan rule that selected it (canonical form)
  std::string before, after;    ///< describe() of the original and the converted layer
  conversion_report report;     ///< relative_error, stored_bytes, macs, dense_bytes, dense_macs, details
};

template <class T>
struct compressed_network {
  network<T> net;
  std::vector<layer_compression> layers;

  /// One line per converted layer: "layer 3 [dense[0]:crew:u16] dense<float>(...) -> ...: error 0.41, ...".
  std::string summary() const {
    std::string out;
    for (const auto& l : layers)
      out += detail::cat("layer ", l.index, " [", l.rule, "] ", l.before, " -> ", l.after, ": ", l.report.str(), "\n");
    return out;
  }
};

namespace detail {

/// compress(layer, settings) when the scheme of `settings` takes layers of type L.
template <class L, class S>
concept convertible_by = requires(const L& layer, const S& settings) { compress(layer, settings); };

/// `layer` converted by `setting`, and the report; config_error when the setting's
/// scheme cannot take the layer.
template <class T>
std::pair<any_layer<T>, conversion_report> convert_layer(const any_layer<T>& layer, const scheme_setting& setting,
                                                         const std::string& rule, std::size_t index) {
  std::optional<std::pair<any_layer<T>, conversion_report>> out;
  const auto try_kind = [&]<class L>(const L* original) {
    if (!original || out) return;
    std::visit(
        [&]<class S>(const S& settings) {
          if constexpr (convertible_by<L, S>) {
            auto c = compress(*original, settings);
            out.emplace(any_layer<T>(std::move(c.layer)), std::move(c.report));
          }
        },
        setting.value());
  };
  try_kind(layer.template get<dense<T>>());
  try_kind(layer.template get<conv2d<T>>());
  if (!out)
    throw config_error(cat("plan rule '", rule, "': ", setting.scheme(), " cannot take layer ", index, " (",
                           describe(layer), ")"));
  return std::move(*out);
}

}  // namespace detail

/// `net` with every layer a rule of `p` selects converted by that rule (see the top).
template <class T>
compressed_network<T> compress(const network<T>& net, const plan& p) {
  std::vector<const plan_rule*> chosen(net.size(), nullptr);
  for (const auto& rule : p.rules) {
    const auto picked = rule.selector.select(net);
    detail::require<config_error>(!picked.empty(), "plan rule '", rule.str(), "' selects no layer of this ",
                                  net.size(), "-layer network");
    for (const auto i : picked) {
      detail::require<config_error>(chosen[i] == nullptr, "plan rules '", chosen[i] ? chosen[i]->str() : "",
                                    "' and '", rule.str(), "' both select layer ", i, " (", describe(net[i]), ")");
      chosen[i] = &rule;
    }
  }
  compressed_network<T> out;
  for (std::size_t i = 0; i < net.size(); ++i) {
    if (!chosen[i]) {
      out.net << net[i];
      continue;
    }
    const std::string rule = chosen[i]->str();
    auto [layer, report] = detail::convert_layer(net[i], chosen[i]->setting, rule, i);
    out.layers.push_back({i, rule, describe(net[i]), describe(layer), std::move(report)});
    out.net << std::move(layer);
  }
  return out;
}

}  // namespace slimnn
