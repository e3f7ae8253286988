// slimnn/compress/plan.hpp — which layers of a network to compress, and how: a list of
// rules, each a layer selector and a scheme setting.
//
//   conv2d:kdconv:m4-d30; dense[0:-1]:block_circulant:k64; dense[-1]:crew:u16; fine_tune:e2
//
// A selector names a kind and, optionally, an index or a range among the layers of that
// kind, counted in network order:
//   dense | conv2d | layer     every dense layer, every conv2d, every layer
//   dense[i]                   the i-th dense layer; negative i counts from the end
//   dense[a:b]                 the dense layers a..b-1 (either end may be left out;
//                              negative ends count from the end)
// "layer" counts every layer of the network, so layer[3] is the network's layer 3.
// A plan may also carry its fine-tuning, "fine_tune:<recipe>" (train/recipe.hpp, e.g.
// fine_tune:e2-lr0.0005), which train(result.net, plan.fine_tune, data) applies after
// compress(). plan::parse reads rules separated by ';' (spaces around parts are ignored);
// str() writes them back in canonical form, the recipe last (parse(str()) == the plan). Layers no rule selects
// stay as they are. select() raises config_error naming the rule when it selects no
// layer of the network; a malformed rule raises config_error naming it.
// Cost: O(rules * layers). Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slimnn/compress/scheme_setting.hpp"
#include "slimnn/core/error.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/net/network.hpp"
#include "slimnn/train/recipe.hpp"

namespace slimnn {

/// Which layers a rule applies to: a kind and an index or range among that kind's layers.
struct layer_selector {
  enum class kind { dense, conv2d, layer };
  kind of = kind::layer;
  bool ranged = false;                  ///< [a:b] rather than [i]
  std::optional<index_t> first, last;   ///< [i]: first = i; [a:b]: first = a, last = b; none: every layer

  static layer_selector parse(std::string_view text) {
    layer_selector s;
    const auto bracket = text.find('[');
    const auto name = text.substr(0, bracket);
    if (name == "dense") s.of = kind::dense;
    else if (name == "conv2d") s.of = kind::conv2d;
    else if (name == "layer") s.of = kind::layer;
    else throw config_error(detail::cat("layer selector '", text, "': unknown kind '", name,
                                        "' (known: dense, conv2d, layer)"));
    if (bracket == std::string_view::npos) return s;
    detail::require<config_error>(text.back() == ']', "layer selector '", text, "': expected ", name,
                                  "[i] or ", name, "[a:b]");
    const auto inside = text.substr(bracket + 1, text.size() - bracket - 2);
    const auto colon = inside.find(':');
    const auto bound = [&](std::string_view part) -> std::optional<index_t> {
      if (part.empty()) return std::nullopt;
      const auto v = detail::parse_int(part);
      detail::require<config_error>(v.has_value(), "layer selector '", text, "': '", part,
                                    "' is not a whole number");
      return index_t(*v);
    };
    if (colon == std::string_view::npos) {
      s.first = bound(inside);
      detail::require<config_error>(s.first.has_value(), "layer selector '", text, "': empty index");
    } else {
      s.ranged = true;
      s.first = bound(inside.substr(0, colon));
      s.last = bound(inside.substr(colon + 1));
    }
    return s;
  }

  std::string str() const {
    std::string out = of == kind::dense ? "dense" : of == kind::conv2d ? "conv2d" : "layer";
    const auto num = [](const std::optional<index_t>& v) { return v ? std::to_string(*v) : std::string(); };
    if (ranged) out += detail::cat('[', num(first), ':', num(last), ']');
    else if (first) out += detail::cat('[', num(first), ']');
    return out;
  }

  /// The network indices this selector picks in `net`, in order (possibly none).
  template <class T>
  std::vector<std::size_t> select(const network<T>& net) const {
    std::vector<std::size_t> candidates;
    for (std::size_t i = 0; i < net.size(); ++i)
      if (of == kind::layer || (of == kind::dense && net[i].template get<dense<T>>()) ||
          (of == kind::conv2d && net[i].template get<conv2d<T>>()))
        candidates.push_back(i);
    const auto n = index_t(candidates.size());
    const auto resolve = [n](index_t v) { return v < 0 ? v + n : v; };
    index_t begin = 0, end = n;
    if (ranged) {
      if (first) begin = std::clamp<index_t>(resolve(*first), 0, n);
      if (last) end = std::clamp<index_t>(resolve(*last), 0, n);
    } else if (first) {
      begin = resolve(*first);
      end = begin + 1;
      if (begin < 0 || begin >= n) return {};
    }
    std::vector<std::size_t> out;
    for (index_t i = begin; i < end; ++i) out.push_back(candidates[std::size_t(i)]);
    return out;
  }
};

/// One rule of a plan: "dense[-1]:crew:u16".
struct plan_rule {
  layer_selector selector;
  scheme_setting setting;

  static plan_rule parse(std::string_view text) {
    // The selector ends at the first ':' after its brackets (a range has a ':' inside).
    const auto bracket = text.find('[');
    const auto close = bracket < text.find(':') ? text.find(']', bracket) : std::string_view::npos;
    const auto a = text.find(':', close == std::string_view::npos ? 0 : close);
    const auto b = a == std::string_view::npos ? a : text.find(':', a + 1);
    detail::require<config_error>(b != std::string_view::npos, "plan rule '", text,
                                  "': expected <selector>:<scheme>:<setting>, e.g. dense[-1]:crew:u16");
    return {layer_selector::parse(text.substr(0, a)), scheme_setting::parse(text.substr(a + 1, b - a - 1),
                                                                            text.substr(b + 1))};
  }
  std::string str() const { return selector.str() + ":" + setting.scheme() + ":" + setting.str(); }
};

/// Rules applied in order (each layer may be selected by at most one rule), and the
/// recipe that fine-tunes the compressed network.
struct plan {
  std::vector<plan_rule> rules;
  training_recipe fine_tune;  ///< "fine_tune:e2"; 0 epochs (the default): none

  /// "rule; rule; ...[; fine_tune:<recipe>]" (an empty string is the empty plan).
  static plan parse(std::string_view text) {
    plan p;
    bool recipe = false;
    std::size_t start = 0;
    while (start <= text.size()) {
      const auto end = std::min(text.find(';', start), text.size());
      const auto rule = trim(text.substr(start, end - start));
      if (rule.starts_with("fine_tune:")) {
        detail::require<config_error>(!recipe, "plan '", text, "': fine_tune is given twice");
        p.fine_tune = training_recipe::parse(rule.substr(10));
        recipe = true;
      } else if (!rule.empty()) {
        p.rules.push_back(plan_rule::parse(rule));
      } else {
        detail::require<config_error>(end == text.size(), "plan '", text, "': empty rule");
      }
      start = end + 1;
    }
    return p;
  }
  std::string str() const {
    std::string out;
    for (const auto& r : rules) out += (out.empty() ? "" : "; ") + r.str();
    if (fine_tune.epochs > 0) out += (out.empty() ? "" : "; ") + std::string("fine_tune:") + fine_tune.str();
    return out;
  }

 private:
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  }
};

}  // namespace slimnn
