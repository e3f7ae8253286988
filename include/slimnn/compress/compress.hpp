// slimnn/compress/compress.hpp — compress(network, plan): a new network in which every
// layer a plan's rule selects is converted with that rule's scheme setting, plus a
// report per converted layer.
//
//   auto result = compress(net, plan::parse("conv2d:kdconv:m4-d30; dense[-1]:crew:u16"));
//   result.net        the compressed network (the layers no rule selects are copies)
//   result.layers     per converted layer: index, rule, relative_error, stored_bytes,
//                     macs and the original's dense_bytes, dense_macs
//
// The conversions (what each scheme takes):
//   block_circulant  dense, conv2d   project(): Frobenius-nearest block-circulant layer
//   smartdeal        dense, conv2d   smartdeal::decompose() (a conv2d needs s = kernel)
//   crew             dense           make_crew_dense() (k-means values are capped at the
//                                    layer's outputs: a column has no more distinct weights)
//   kdconv           conv2d          kdconv::decompose()
// relative_error = ||W' - W||_F / ||W||_F of the converted layer's dense expansion W'
// against the original weight W; stored_bytes and macs are the converted layer's cost()
// (param_bytes, macs), dense_bytes and dense_macs the original's.
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
#include <string>
#include <vector>

#include "slimnn/circulant/block_circulant_conv2d.hpp"
#include "slimnn/circulant/block_circulant_dense.hpp"
#include "slimnn/compress/plan.hpp"
#include "slimnn/crew/crew_dense.hpp"
#include "slimnn/kdconv/decompose.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"

namespace slimnn {

/// What converting one layer did.
struct layer_compression {
  std::size_t index = 0;            ///< the layer's index in the network
  std::string rule;                 ///< the plan rule that selected it (canonical form)
  std::string before, after;        ///< describe() of the original and the converted layer
  double relative_error = 0;        ///< ||W' - W||_F / ||W||_F
  std::uint64_t stored_bytes = 0;   ///< the converted layer's cost().param_bytes
  std::uint64_t macs = 0;           ///< the converted layer's cost().macs per sample
  std::uint64_t dense_bytes = 0;    ///< the original layer's cost().param_bytes
  std::uint64_t dense_macs = 0;     ///< the original layer's cost().macs per sample
};

template <class T>
struct compressed_network {
  network<T> net;
  std::vector<layer_compression> layers;

  /// One line per converted layer: "layer 3 conv2d<float>(...) -> ...: error 0.41, 5081 bytes (14.6x smaller), ...".
  std::string summary() const {
    std::string out;
    for (const auto& l : layers)
      out += detail::cat("layer ", l.index, " [", l.rule, "] ", l.before, " -> ", l.after, ": error ",
                         l.relative_error, ", ", l.stored_bytes, " bytes (",
                         double(l.dense_bytes) / double(std::max<std::uint64_t>(l.stored_bytes, 1)),
                         "x smaller), ", l.macs, " MACs (", l.dense_macs, " dense)\n");
    return out;
  }
};

namespace detail {

/// The converted layer and its relative weight error; config_error when the setting's
/// scheme cannot take `layer`.
template <class T>
std::pair<any_layer<T>, double> convert_layer(const any_layer<T>& layer, const scheme_setting& setting,
                                              const std::string& rule, std::size_t index) {
  const auto* d = layer.template get<dense<T>>();
  const auto* c = layer.template get<conv2d<T>>();
  const auto cannot = [&] {
    return config_error(cat("plan rule '", rule, "': ", setting.scheme(), " cannot take layer ", index, " (",
                            describe(layer), ")"));
  };
  if (const auto* s = setting.get<block_circulant_settings>()) {
    if (d) {
      auto out = project(*d, s->block);
      const double e =
          relative_error(out.to_dense().weight().template cast<double>(), d->weight().template cast<double>());
      return {any_layer<T>(std::move(out)), e};
    }
    if (c) {
      auto out = project(*c, s->block);
      const double e =
          relative_error(out.to_dense().weight().template cast<double>(), c->weight().template cast<double>());
      return {any_layer<T>(std::move(out)), e};
    }
  } else if (const auto* s = setting.get<smartdeal_settings>()) {
    if (d) {
      auto r = smartdeal::decompose(*d, *s);
      return {any_layer<T>(std::move(r.layer)), r.report.relative_error};
    }
    if (c) {
      auto r = smartdeal::decompose(*c, *s);
      return {any_layer<T>(std::move(r.layer)), r.report.relative_error};
    }
  } else if (const auto* s = setting.get<crew_config>()) {
    if (d) {
      crew_config config = *s;
      config.clusters = int(std::min<index_t>(config.clusters, d->weight().rows()));
      auto out = make_crew_dense(*d, config);
      const double e = relative_error(out.dequantized(), d->weight().template cast<double>());
      return {any_layer<T>(std::move(out)), e};
    }
  } else if (const auto* s = setting.get<kdconv::settings>()) {
    if (c) {
      auto r = kdconv::decompose(*c, *s);
      return {any_layer<T>(std::move(r.layer)), r.report.error};
    }
  }
  throw cannot();
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
    auto [layer, error] = detail::convert_layer(net[i], chosen[i]->setting, rule, i);
    const auto before = net[i].cost(), after = layer.cost();
    out.layers.push_back({i, rule, describe(net[i]), describe(layer), error, after.param_bytes, after.macs,
                          before.param_bytes, before.macs});
    out.net << std::move(layer);
  }
  return out;
}

}  // namespace slimnn
