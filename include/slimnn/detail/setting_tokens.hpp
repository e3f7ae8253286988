// slimnn/detail/setting_tokens.hpp — the tokens of a scheme's canonical setting string.
//
// A setting string is tokens joined by '-', each a letter prefix and a number, in any
// order ("s8-seg25", "m4-d30-g4"). setting_tokens splits one, checks that every prefix is
// one the scheme allows, that none is given twice and that the required one is there,
// and reads the numbers. Every error is a config_error that names the scheme and the
// string: "smartdeal setting 's8-x2': unknown token 'x' (e.g. s8-seg25)". Each settings
// type's parse() is written with it. Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/tensor_io.hpp"

namespace slimnn::detail {

class setting_tokens {
 public:
  /// Splits `text`; `allowed` prefixes, `required` ("" for none), `example` for messages.
  setting_tokens(std::string_view scheme, std::string_view text, std::initializer_list<std::string_view> allowed,
                 std::string_view required, std::string_view example)
      : scheme_(scheme), text_(text) {
    std::size_t start = 0;
    while (start <= text.size()) {
      const auto end = std::min(text.find('-', start), text.size());
      const auto part = text.substr(start, end - start);
      std::size_t letters = 0;
      while (letters < part.size() && std::isalpha(static_cast<unsigned char>(part[letters]))) ++letters;
      const auto number = parse_number<double>(part.substr(letters));
      require<config_error>(letters > 0 && number && std::isfinite(*number), scheme, " setting '", text, "': '",
                            part, "' is not a letter prefix and a number");
      tokens_.push_back({std::string(part.substr(0, letters)), *number});
      start = end + 1;
    }
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const auto& p = tokens_[i].prefix;
      require<config_error>(std::find(allowed.begin(), allowed.end(), p) != allowed.end(), scheme, " setting '",
                            text, "': unknown token '", p, "' (e.g. ", example, ")");
      for (std::size_t j = 0; j < i; ++j)
        require<config_error>(tokens_[j].prefix != p, scheme, " setting '", text, "': '", p, "' is given twice");
    }
    if (!required.empty())
      require<config_error>(has(required), scheme, " setting '", text, "': needs ", required, "<n> (e.g. ",
                            example, ")");
  }

  std::size_t size() const { return tokens_.size(); }
  std::string_view prefix(std::size_t i) const { return tokens_[i].prefix; }
  bool has(std::string_view prefix) const { return find(prefix) != nullptr; }
  /// The number after `prefix`, if the string has it.
  std::optional<double> number(std::string_view prefix) const {
    const auto* t = find(prefix);
    return t ? std::optional<double>(t->number) : std::nullopt;
  }
  /// The number after `prefix` as a whole count, if the string has it.
  template <class I>
  std::optional<I> whole(std::string_view prefix) const {
    const auto* t = find(prefix);
    if (!t) return std::nullopt;
    require<config_error>(t->number == std::floor(t->number) && std::abs(t->number) < 1e9, scheme_, " setting '",
                          text_, "': ", t->prefix, " needs a whole number, got ", t->number);
    return I(t->number);
  }
  /// config_error "<scheme> setting '<text>': <what>" unless `ok`.
  template <class... Parts>
  void require_that(bool ok, const Parts&... what) const {
    require<config_error>(ok, scheme_, " setting '", text_, "': ", what...);
  }
  /// Runs the settings' own validate() and puts the string in front of its message.
  template <class Validate>
  void validated(Validate&& validate) const {
    try {
      validate();
    } catch (const config_error& e) {
      std::string_view message = e.what();
      for (const std::string& prefix : {std::string("slimnn: "), cat(scheme_, ": ")})
        if (message.starts_with(prefix)) message.remove_prefix(prefix.size());
      throw config_error(cat(scheme_, " setting '", text_, "': ", message));
    }
  }

 private:
  struct token {
    std::string prefix;
    double number;
  };
  const token* find(std::string_view prefix) const {
    for (const auto& t : tokens_)
      if (t.prefix == prefix) return &t;
    return nullptr;
  }

  std::string scheme_, text_;
  std::vector<token> tokens_;
};

/// A fraction written as a percentage ("0.25" -> "25").
inline std::string percent_text(double fraction) { return cat(fraction * 100); }

}  // namespace slimnn::detail
