// slimnn/crew/settings.hpp — the settings of a CREW conversion.
//
// compress(dense, crew_settings) quantizes the weights to integer codes (k-means or
// uniform, crew/weight_quantization.hpp) and builds the crew_dense layer that multiplies
// each input once by each of its unique weights. "bits" are total bits per code.
// k-means values are capped at the layer's outputs (a column has no more distinct weights).
//
// Activations: as_is multiplies the float activations by the shared values; int8 runs
// the int8 path (crew_dense::forward_int8) on every forward, each sample quantized with
// its own scale max_i |x_i| / 127, so y_j = scale_b * s_j * sum_i q_i * code(j, i) + b_j.
//
// Canonical string (str / parse): one of
//   u<values>   k-means per input, at most <values> unique weights per input (1..256)
//   q<bits>     uniform <bits>-bit codes, one scale per output row (2..8)
// optionally followed by
//   a8          int8 activations (crew_activations::int8)
// e.g. "u16", "q8", "u16-a8". The other fields (layout, per-layer scopes) have no token
// and keep their defaults. Plain values: thread-safe to share.
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

/// What the inference forward multiplies the codes by.
enum class crew_activations {
  as_is,  ///< the float activations, times the shared values V_i
  int8,   ///< each sample quantized to int8 with scale max |x| / 127, times the int8 codes
};

struct crew_settings {
  enum class quantizer { uniform, kmeans };
  quantizer method = quantizer::kmeans;
  int bits = 8;                                                   ///< uniform: bits per code, 2..8
  quant_granularity granularity = quant_granularity::per_row;     ///< uniform
  int clusters = 16;                                              ///< kmeans: unique values, 1..256
  kmeans_scope scope = kmeans_scope::per_input;                   ///< kmeans
  crew_index_layout layout = crew_index_layout::automatic;
  crew_activations activations = crew_activations::as_is;

  /// Throws config_error naming the bad setting.
  void validate() const {
    if (method == quantizer::uniform)
      detail::require<config_error>(bits >= 2 && bits <= 8, "crew: uniform bits must be in 2..8, got ", bits);
    else
      detail::require<config_error>(clusters >= 1 && clusters <= 256, "crew: unique values must be in 1..256, got ",
                                    clusters);
  }
  /// "u16", "q8" or "u16-a8".
  std::string str() const {
    return detail::cat(method == quantizer::kmeans ? detail::cat("u", clusters) : detail::cat("q", bits),
                       activations == crew_activations::int8 ? "-a8" : "");
  }
  /// From "u16", "q8" or "u16-a8"; config_error naming the string when it is malformed or
  /// invalid.
  static crew_settings parse(std::string_view text) {
    const detail::setting_tokens tokens("crew", text, {"u", "q", "a"}, "", "u16");
    const std::size_t weights = std::size_t(tokens.has("u")) + std::size_t(tokens.has("q"));
    tokens.require_that(weights == 1 && tokens.size() == weights + tokens.has("a"),
                        "needs exactly one of u<values> or q<bits>, then optionally a8 (e.g. u16-a8)");
    crew_settings c;
    if (const auto a = tokens.whole<int>("a")) {
      tokens.require_that(*a == 8, "a", *a, ": the activations can only be int8 (a8)");
      c.activations = crew_activations::int8;
    }
    if (tokens.has("u")) {
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
