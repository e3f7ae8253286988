// slimnn/compress/scheme_setting.hpp — one compression scheme with its settings, and the
// canonical short string that names them ("block_circulant:k64", "smartdeal:s8-seg25").
//
// Each scheme's settings type parses and prints its own setting string (str / parse):
//   block_circulant  block_circulant_settings  k<block>                       (circulant/settings.hpp)
//   smartdeal        smartdeal_settings        s<width>[-seg%][-p<bits>][-r<rows>]  (smartdeal/settings.hpp)
//   crew             crew_settings             u<values> | q<bits>, [-a8]     (crew/settings.hpp)
//   kdconv           kdconv_settings           m<bases>[-d%][-g<size>][-p|km<bits>|-f32][-b<bits>]
//                                                                             (kdconv/settings.hpp)
// A scheme_setting holds one of them; parse("scheme:setting") picks the type by the scheme
// name. str() writes the tokens that differ from their defaults, so parse(str()) gives
// the same settings and str() is the shortest string for them. A malformed string, an
// unknown scheme or token, or an impossible value raises config_error naming the string.
// Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "slimnn/circulant/settings.hpp"
#include "slimnn/core/error.hpp"
#include "slimnn/crew/settings.hpp"
#include "slimnn/kdconv/settings.hpp"
#include "slimnn/smartdeal/settings.hpp"

namespace slimnn {

/// A scheme and its settings: one of the four settings types.
class scheme_setting {
 public:
  using value_type = std::variant<block_circulant_settings, smartdeal_settings, crew_settings, kdconv_settings>;

  /// From any of the four settings types (implicit: a settings value is a scheme setting).
  template <class S>
    requires std::is_constructible_v<value_type, S>
  scheme_setting(S settings) : value_(std::move(settings)) {}  // NOLINT(google-explicit-constructor)

  /// "block_circulant" + "k64", "smartdeal" + "s8-seg25", "crew" + "u16", "kdconv" + "m4-d30".
  static scheme_setting parse(std::string_view scheme, std::string_view text) {
    if (scheme == "block_circulant") return block_circulant_settings::parse(text);
    if (scheme == "smartdeal") return smartdeal_settings::parse(text);
    if (scheme == "crew") return crew_settings::parse(text);
    if (scheme == "kdconv") return kdconv_settings::parse(text);
    std::string list;
    for (const auto& name : schemes()) list += (list.empty() ? "" : ", ") + name;
    throw config_error(detail::cat("unknown scheme '", scheme, "' (known: ", list, ")"));
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
    return std::visit([](const auto& s) { return s.str(); }, value_);
  }
  const value_type& value() const { return value_; }
  template <class S>
  const S* get() const {
    return std::get_if<S>(&value_);
  }

 private:
  value_type value_;
};

}  // namespace slimnn
