// slimnn/crew/settings.hpp — the settings of a CREW conversion.
//
// compress(dense, crew_settings) quantizes the weights to integer codes (k-means or
// uniform, crew/weight_quantization.hpp) and builds the crew_dense layer that multiplies
// each input once by each of its unique weights. "bits" are total bits per code.
// k-means values are capped at the layer's outputs (a column has no more distinct weights).
//
// Canonical string (str / parse): exactly one token,
//   u<values>   k-means per input, at most <values> unique weights per input (1..256)
//   q<bits>     uniform <bits>-bit codes, one scale per output row (2..8)
// e.g. "u16", "q8". The other fields (layout, per-layer scopes) have no token and keep
// their defaults. Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>
#include <string_view>

#include "slimnn/core/error.hpp"
#include "slimnn/crew/weight_quantization.hpp"
#include "slimnn/detail/setting_tokens.hpp"

namespace slimnn {

/// How the weight indices are stored.
enum class crew_index_layout {
  automatic,  ///< lanes when every u_i <= 16, else per_input
  lanes,      ///< one width w in {1, 2, 4} for the layer, laid out for the SIMD kernels
  per_input,  ///< ceil(log2 u_i) bits per weight of input i, bit-packed per input
  per_layer,  ///< ceil(log2 max u_i) bits per weight, bit-packed per input
};

struct crew_settings {
  enum class quantizer { uniform, kmeans };
  quantizer method = quantizer::kmeans;
  int bits = 8;                                                   ///< uniform: bits per code, 2..8
  quant_granularity granularity = quant_granularity::per_row;     ///< uniform
  int clusters = 16;                                              ///< kmeans: unique values, 1..256
  kmeans_scope scope = kmeans_scope::per_input;                   ///< kmeans
  crew_index_layout layout = crew_index_layout::automatic;

  /// Throws config_error naming the bad setting.
  void validate() const {
    if (method == quantizer::uniform)
      detail::require<config_error>(bits >= 2 && bits <= 8, "crew: uniform bits must be in 2..8, got ", bits);
    else
      detail::require<config_error>(clusters >= 1 && clusters <= 256, "crew: unique values must be in 1..256, got ",
                                    clusters);
  }
  /// "u16" or "q8".
  std::string str() const { return method == quantizer::kmeans ? detail::cat("u", clusters) : detail::cat("q", bits); }
  /// From "u16" or "q8"; config_error naming the string when it is malformed or invalid.
  static crew_settings parse(std::string_view text) {
    const detail::setting_tokens tokens("crew", text, {"u", "q"}, "", "u16");
    tokens.require_that(tokens.size() == 1, "needs exactly one of u<values> or q<bits> (e.g. u16)");
    crew_settings c;
    if (tokens.prefix(0) == "u") {
      c.method = quantizer::kmeans;
      c.scope = kmeans_scope::per_input;
      c.clusters = *tokens.whole<int>("u");
    } else {
      c.method = quantizer::uniform;
      c.granularity = quant_granularity::per_row;
      c.bits = *tokens.whole<int>("q");
    }
    tokens.validated([&] { c.validate(); });
    return c;
  }
  friend bool operator==(const crew_settings&, const crew_settings&) = default;
};

}  // namespace slimnn
