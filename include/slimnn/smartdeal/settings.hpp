// slimnn/smartdeal/settings.hpp — the settings of a SmartDeal conversion.
//
// compress(dense | conv2d, smartdeal_settings) factors the weight as W ~ Ce . B
// (smartdeal/factorize.hpp): a basis of width s per group of rows, and power-of-two
// coefficients Ce of code_bits bits each (1 sign bit + code_bits - 1 exponent bits; the
// range is the 2^(code_bits-1) exponents ending at max_exponent), kept in the
// segment_density fraction of length-s segments. Invalid settings raise config_error.
//
// Canonical string (str / parse): tokens joined by '-', defaults in brackets left out:
//   s<width>  seg<percent> [100]  p<code bits> [5]  r<rows per basis> [0: one basis]
// e.g. "s8-seg25", "s3-seg50-p4". iterations, max_exponent and element_threshold have no
// token and keep their defaults. Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>
#include <string_view>

#include "slimnn/core/error.hpp"
#include "slimnn/core/quantize.hpp"
#include "slimnn/core/types.hpp"
#include "slimnn/detail/setting_tokens.hpp"

namespace slimnn {

struct smartdeal_settings {
  index_t basis_width = 8;         ///< s; for a k x k convolution it must be k
  index_t group_rows = 0;          ///< output rows sharing one basis; 0 = all rows
  int code_bits = 5;               ///< bits per coefficient code: 1 sign + code_bits - 1 exponent, 2..8
  int max_exponent = 0;            ///< largest magnitude 2^max_exponent
  double element_threshold = 0;    ///< zero |c| < threshold * max |c| of the group, in [0, 1)
  double segment_density = 1;      ///< fraction of length-s segments kept, in (0, 1]
  int iterations = 8;              ///< alternating rounds, >= 1

  /// Throws config_error naming the bad setting.
  void validate() const {
    detail::require<config_error>(basis_width >= 1, "smartdeal: basis width must be >= 1, got ", basis_width);
    detail::require<config_error>(group_rows >= 0, "smartdeal: rows per basis must be >= 0 (0 = one basis for all ",
                                  "rows), got ", group_rows);
    detail::require<config_error>(code_bits >= 2 && code_bits <= 8,
                                  "smartdeal: code bits must be in 2..8 (sign + exponent), got ", code_bits);
    detail::require<config_error>(max_exponent >= -32 && max_exponent <= 32,
                                  "smartdeal: max exponent must be in -32..32, got ", max_exponent);
    detail::require<config_error>(element_threshold >= 0 && element_threshold < 1,
                                  "smartdeal: element threshold must be in [0, 1), got ", element_threshold);
    detail::require<config_error>(segment_density > 0 && segment_density <= 1,
                                  "smartdeal: segment density must be in (0, 1], got ", segment_density);
    detail::require<config_error>(iterations >= 1, "smartdeal: iterations must be >= 1, got ", iterations);
  }
  pow2_quantizer quantizer() const { return pow2_quantizer::with_bits(code_bits - 1, max_exponent); }

  /// "s8-seg25": the tokens that differ from their defaults.
  std::string str() const {
    std::string out = detail::cat("s", basis_width);
    if (segment_density != 1) out += "-seg" + detail::percent_text(segment_density);
    if (code_bits != 5) out += detail::cat("-p", code_bits);
    if (group_rows != 0) out += detail::cat("-r", group_rows);
    return out;
  }
  /// From "s8-seg25"; config_error naming the string when it is malformed or invalid.
  static smartdeal_settings parse(std::string_view text) {
    const detail::setting_tokens tokens("smartdeal", text, {"s", "seg", "p", "r"}, "s", "s8-seg25");
    smartdeal_settings s;
    s.basis_width = *tokens.whole<index_t>("s");
    if (const auto seg = tokens.number("seg")) s.segment_density = *seg / 100;
    if (const auto p = tokens.whole<int>("p")) s.code_bits = *p;
    if (const auto r = tokens.whole<index_t>("r")) s.group_rows = *r;
    tokens.validated([&] { s.validate(); });
    return s;
  }
  friend bool operator==(const smartdeal_settings&, const smartdeal_settings&) = default;
};

}  // namespace slimnn
