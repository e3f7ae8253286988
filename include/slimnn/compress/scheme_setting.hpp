// slimnn/compress/scheme_setting.hpp — one compression scheme with its settings, and the
// canonical short string that names them ("block_circulant:k64", "smartdeal:s8-seg25").
//
// A setting string is tokens joined by '-', each a prefix and a number, in any order;
// a token left out keeps the default shown in brackets:
//   block_circulant  k<block>                       k x k circulant blocks
//   smartdeal        s<width>                       basis width s (a k x k conv needs s = k)
//                    seg<percent> [100]             length-s segments kept
//                    e<bits> [4]                    exponent bits (codes are sign + e bits)
//                    r<rows> [0]                    output rows per basis (0: one basis)
//   crew             u<values> | q<bits>            k-means, at most <values> unique weights
//                                                   per input (fewer when the layer has fewer
//                                                   outputs) | uniform <bits>-bit, per row
//   kdconv           m<bases>                       basis kernels per input channel
//                    d<percent> [100]               coefficients kept (by |a|)
//                    g<size> [1]                    pruned in groups of output channels
//                    p<bits> | km<bits> | f32 [p4]  coefficient codes: power of two (sign +
//                                                   exponent bits), k-means (2^bits values)
//                                                   or float
//                    b<bits> [8]                    fixed-point basis bits (0: float)
// str() writes the tokens that differ from their defaults, in the order above, so
// parse(str()) gives the same settings and str() is the shortest string for them.
// Settings fields without a token (smartdeal's iterations, kdconv's shared_basis, ...)
// keep their defaults. parse() validates the settings; a malformed string, an unknown
// scheme or token, or an impossible value raises config_error naming the string.
// Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/crew/crew_dense.hpp"
#include "slimnn/kdconv/settings.hpp"
#include "slimnn/smartdeal/decompose.hpp"

namespace slimnn {

/// The settings of a block-circulant conversion (project): the block size k.
struct block_circulant_settings {
  index_t block = 16;

  void validate() const {
    detail::require<config_error>(block >= 1, "block_circulant: block size must be >= 1, got ", block);
  }
};

/// A scheme and its settings: one of the four settings types.
class scheme_setting {
 public:
  using value_type = std::variant<block_circulant_settings, smartdeal_settings, crew_config, kdconv::settings>;

  /// From any of the four settings types (implicit: a settings value is a scheme setting).
  template <class S>
    requires std::is_constructible_v<value_type, S>
  scheme_setting(S settings) : value_(std::move(settings)) {}  // NOLINT(google-explicit-constructor)

  /// "block_circulant" + "k64", "smartdeal" + "s8-seg25", "crew" + "u16", "kdconv" + "m4-d30".
  static scheme_setting parse(std::string_view scheme, std::string_view text) {
    const auto tokens = split(scheme, text);
    if (scheme == "block_circulant") return parse_block_circulant(text, tokens);
    if (scheme == "smartdeal") return parse_smartdeal(text, tokens);
    if (scheme == "crew") return parse_crew(text, tokens);
    return parse_kdconv(text, tokens);
  }
  /// "smartdeal:s8-seg25".
  static scheme_setting parse(std::string_view scheme_and_setting) {
    const auto colon = scheme_and_setting.find(':');
    detail::require<config_error>(colon != std::string_view::npos, "scheme setting '", scheme_and_setting,
                                  "': expected <scheme>:<setting>, e.g. crew:u16");
    return parse(scheme_and_setting.substr(0, colon), scheme_and_setting.substr(colon + 1));
  }

  static const std::vector<std::string>& schemes() {
    static const std::vector<std::string> names{"block_circulant", "smartdeal", "crew", "kdconv"};
    return names;
  }
  std::string scheme() const { return schemes()[value_.index()]; }
  /// The canonical setting string ("k64"); parse(scheme(), str()) gives these settings.
  std::string str() const {
    return std::visit([](const auto& s) { return to_string(s); }, value_);
  }
  const value_type& value() const { return value_; }
  template <class S>
  const S* get() const {
    return std::get_if<S>(&value_);
  }

 private:
  struct token {
    std::string prefix;
    double number;
  };

  /// "s8-seg25" -> {s, 8}, {seg, 25}; config_error unless every token is letters + a number.
  static std::vector<token> split(std::string_view scheme, std::string_view text) {
    const auto& known = schemes();
    if (std::find(known.begin(), known.end(), scheme) == known.end()) {
      std::string list;
      for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
      throw config_error(detail::cat("unknown scheme '", scheme, "' (known: ", list, ")"));
    }
    std::vector<token> out;
    std::size_t start = 0;
    while (start <= text.size()) {
      const auto end = std::min(text.find('-', start), text.size());
      const auto part = text.substr(start, end - start);
      std::size_t letters = 0;
      while (letters < part.size() && std::isalpha(static_cast<unsigned char>(part[letters]))) ++letters;
      const auto number = detail::parse_number<double>(part.substr(letters));
      detail::require<config_error>(letters > 0 && number && std::isfinite(*number), scheme, " setting '", text,
                                    "': '", part, "' is not a letter prefix and a number");
      out.push_back({std::string(part.substr(0, letters)), *number});
      start = end + 1;
    }
    return out;
  }

  /// Each token's prefix must be one of `allowed`, at most once; `required` must be there.
  static void check_tokens(std::string_view scheme, std::string_view text, const std::vector<token>& tokens,
                           std::initializer_list<std::string_view> allowed, std::string_view required,
                           std::string_view example) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const auto& p = tokens[i].prefix;
      detail::require<config_error>(std::find(allowed.begin(), allowed.end(), p) != allowed.end(), scheme,
                                    " setting '", text, "': unknown token '", p, "' (e.g. ", example, ")");
      for (std::size_t j = 0; j < i; ++j)
        detail::require<config_error>(tokens[j].prefix != p, scheme, " setting '", text, "': '", p,
                                      "' is given twice");
    }
    if (!required.empty())
      detail::require<config_error>(find(tokens, required) != nullptr, scheme, " setting '", text, "': needs ",
                                    required, "<n> (e.g. ", example, ")");
  }
  static const token* find(const std::vector<token>& tokens, std::string_view prefix) {
    for (const auto& t : tokens)
      if (t.prefix == prefix) return &t;
    return nullptr;
  }
  /// The token's number as a whole count; config_error naming the string otherwise.
  template <class I>
  static I whole(std::string_view scheme, std::string_view text, const token& t) {
    detail::require<config_error>(t.number == std::floor(t.number) && std::abs(t.number) < 1e9, scheme, " setting '",
                                  text, "': ", t.prefix, " needs a whole number, got ", t.number);
    return I(t.number);
  }
  /// Runs the settings' own validate() and prefixes its message with the string.
  template <class Validate>
  static void validated(std::string_view scheme, std::string_view text, Validate&& validate) {
    try {
      validate();
    } catch (const config_error& e) {
      std::string_view message = e.what();
      for (const std::string& prefix : {std::string("slimnn: "), detail::cat(scheme, ": ")})
        if (message.starts_with(prefix)) message.remove_prefix(prefix.size());
      throw config_error(detail::cat(scheme, " setting '", text, "': ", message));
    }
  }

  static scheme_setting parse_block_circulant(std::string_view text, const std::vector<token>& tokens) {
    check_tokens("block_circulant", text, tokens, {"k"}, "k", "k64");
    block_circulant_settings s;
    s.block = whole<index_t>("block_circulant", text, *find(tokens, "k"));
    validated("block_circulant", text, [&] { s.validate(); });
    return s;
  }
  static scheme_setting parse_smartdeal(std::string_view text, const std::vector<token>& tokens) {
    check_tokens("smartdeal", text, tokens, {"s", "seg", "e", "r"}, "s", "s8-seg25");
    smartdeal_settings s;
    s.basis_width = whole<index_t>("smartdeal", text, *find(tokens, "s"));
    if (const auto* t = find(tokens, "seg")) s.segment_density = t->number / 100;
    if (const auto* t = find(tokens, "e")) s.exponent_bits = whole<int>("smartdeal", text, *t);
    if (const auto* t = find(tokens, "r")) s.group_rows = whole<index_t>("smartdeal", text, *t);
    validated("smartdeal", text, [&] { s.validate(); });
    return s;
  }
  static scheme_setting parse_crew(std::string_view text, const std::vector<token>& tokens) {
    check_tokens("crew", text, tokens, {"u", "q"}, "", "u16");
    detail::require<config_error>(tokens.size() == 1, "crew setting '", text, "': needs exactly one of u<values> ",
                                  "or q<bits> (e.g. u16)");
    crew_config c;
    if (tokens[0].prefix == "u") {
      c.method = crew_config::quantizer::kmeans;
      c.scope = kmeans_scope::per_input;
      c.clusters = whole<int>("crew", text, tokens[0]);
      detail::require<config_error>(c.clusters >= 1 && c.clusters <= 256, "crew setting '", text,
                                    "': unique values must be in 1..256, got ", c.clusters);
    } else {
      c.method = crew_config::quantizer::uniform;
      c.granularity = quant_granularity::per_row;
      c.bits = whole<int>("crew", text, tokens[0]);
      detail::require<config_error>(c.bits >= 2 && c.bits <= 8, "crew setting '", text,
                                    "': uniform bits must be in 2..8, got ", c.bits);
    }
    return c;
  }
  static scheme_setting parse_kdconv(std::string_view text, const std::vector<token>& tokens) {
    check_tokens("kdconv", text, tokens, {"m", "d", "g", "p", "km", "f", "b"}, "m", "m4-d30");
    kdconv::settings s;
    s.bases = whole<index_t>("kdconv", text, *find(tokens, "m"));
    if (const auto* t = find(tokens, "d")) s.density = t->number / 100;
    if (const auto* t = find(tokens, "g")) s.group_size = whole<index_t>("kdconv", text, *t);
    if (const auto* t = find(tokens, "b")) s.basis_bits = whole<int>("kdconv", text, *t);
    const int formats = (find(tokens, "p") ? 1 : 0) + (find(tokens, "km") ? 1 : 0) + (find(tokens, "f") ? 1 : 0);
    detail::require<config_error>(formats <= 1, "kdconv setting '", text,
                                  "': give at most one of p<bits>, km<bits>, f32");
    s.coefficients = kdconv::coefficient_format::pow2;
    s.coefficient_bits = 4;
    if (const auto* t = find(tokens, "p")) s.coefficient_bits = whole<int>("kdconv", text, *t);
    if (const auto* t = find(tokens, "km")) {
      s.coefficients = kdconv::coefficient_format::kmeans;
      s.coefficient_bits = whole<int>("kdconv", text, *t);
    }
    if (const auto* t = find(tokens, "f")) {
      detail::require<config_error>(t->number == 32, "kdconv setting '", text, "': float coefficients are f32");
      s.coefficients = kdconv::coefficient_format::float32;
    }
    // The bases a kernel can take and the group size its output channels allow are
    // checked on conversion; here, with the smallest kernel and channels that allow them.
    detail::require<config_error>(s.bases >= 1, "kdconv setting '", text, "': bases must be >= 1, got ", s.bases);
    index_t kernel = 1;
    while (kernel * kernel < s.bases) ++kernel;
    validated("kdconv", text, [&] { kdconv::validate(s, kernel, std::max<index_t>(s.group_size, 1)); });
    return s;
  }

  static std::string percent(double fraction) { return detail::cat(fraction * 100); }
  static std::string to_string(const block_circulant_settings& s) { return detail::cat("k", s.block); }
  static std::string to_string(const smartdeal_settings& s) {
    std::string out = detail::cat("s", s.basis_width);
    if (s.segment_density != 1) out += "-seg" + percent(s.segment_density);
    if (s.exponent_bits != 4) out += detail::cat("-e", s.exponent_bits);
    if (s.group_rows != 0) out += detail::cat("-r", s.group_rows);
    return out;
  }
  static std::string to_string(const crew_config& c) {
    return c.method == crew_config::quantizer::kmeans ? detail::cat("u", c.clusters) : detail::cat("q", c.bits);
  }
  static std::string to_string(const kdconv::settings& s) {
    std::string out = detail::cat("m", s.bases);
    if (s.density != 1) out += "-d" + percent(s.density);
    if (s.group_size != 1) out += detail::cat("-g", s.group_size);
    if (s.coefficients == kdconv::coefficient_format::kmeans) out += detail::cat("-km", s.coefficient_bits);
    else if (s.coefficients == kdconv::coefficient_format::float32) out += "-f32";
    else if (s.coefficient_bits != 4) out += detail::cat("-p", s.coefficient_bits);
    if (s.basis_bits != 8) out += detail::cat("-b", s.basis_bits);
    return out;
  }

  value_type value_;
};

}  // namespace slimnn
