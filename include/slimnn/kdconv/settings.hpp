// slimnn/kdconv/settings.hpp — the settings of an ESCALATE kernel decomposition and the
// hybrid quantization they select.
//
//   W[n, c] (k x k) = sum_m A[n, c, m] * B[g(c), m],   m < M,
//   g(c) = c (one basis of M kernels per input channel) or 0 (one basis shared by all)
// Basis kernels are stored as 8-bit fixed point (one Q-format per basis group) or float;
// the sparse coefficients A as power-of-two codes (sign + exponent), k-means codes
// (2^bits shared values per layer) or float. Pruning keeps a target density of |a| or
// the |a| above an std multiple, element-wise or by groups of output channels.
// compress(conv2d, kdconv_settings) runs the decomposition (kdconv/decomposition.hpp).
// "bits" are total bits per code: coefficient_bits = 4 is a 4-bit code (pow2: sign + 3
// exponent bits).
//
// Canonical string (str / parse): tokens joined by '-', defaults in brackets left out:
//   m<bases>  d<percent kept> [100]  g<group size> [1]
//   p<bits> | km<bits> | f32 [p4]    coefficient codes: power of two, k-means or float
//   b<bits> [8]                      fixed-point basis bits (0: float)
// e.g. "m4-d30", "m6-d15-g4-km4". shared_basis, std_multiple, train_basis and band_rows
// have no token and keep their defaults; description() names every field.
// Everything here is a plain value: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/quantize.hpp"
#include "slimnn/core/types.hpp"
#include "slimnn/detail/setting_tokens.hpp"

namespace slimnn {

/// How the nonzero coefficients are stored.
enum class kdconv_coefficient_format {
  float32,  ///< plain floats (32 bits each)
  pow2,     ///< sign(a) * 2^e: 1 sign bit + (bits - 1) exponent bits, range fitted per layer
  kmeans,   ///< index into 2^bits shared values found by 1-D k-means per layer
};

inline const char* kdconv_format_name(kdconv_coefficient_format f) {
  switch (f) {
    case kdconv_coefficient_format::pow2: return "pow2";
    case kdconv_coefficient_format::kmeans: return "kmeans";
    default: return "float";
  }
}

struct kdconv_settings {
  index_t bases = 6;          ///< M: basis kernels per group, 1..k*k
  bool shared_basis = false;  ///< one basis for every input channel instead of one per channel
  double density = 1.0;       ///< fraction of the N*C*M coefficients kept (by |a|), in (0, 1]
  double std_multiple = 0;    ///< when > 0: keep |a| > std_multiple * std(A) instead of `density`
  index_t group_size = 1;     ///< prune whole groups of this many consecutive output channels
                              ///< (per (c, m) column, scored by their L2 norm); 1 = element-wise
  int basis_bits = 8;         ///< 2..16: fixed-point basis; 0: float basis
  kdconv_coefficient_format coefficients = kdconv_coefficient_format::pow2;
  int coefficient_bits = 4;   ///< bits per code; pow2: 2..8 (sign + exponent); kmeans: 1..8 (2^bits values)
  bool train_basis = false;   ///< expose the basis as a trainable parameter too
  index_t band_rows = 0;      ///< output rows per band of the basis-first dataflow; 0 = automatic

  /// "m6, d0.1, basis 8-bit, pow2 4-bit": every field, for layer descriptions and messages.
  std::string description() const {
    std::string s = slimnn::detail::cat("m", bases, shared_basis ? " shared" : "");
    if (std_multiple > 0) s += slimnn::detail::cat(", |a| > ", std_multiple, " std");
    else s += slimnn::detail::cat(", d", density);
    if (group_size > 1) s += slimnn::detail::cat(", groups of ", group_size);
    s += basis_bits > 0 ? slimnn::detail::cat(", basis ", basis_bits, "-bit") : std::string(", float basis");
    if (coefficients != kdconv_coefficient_format::float32)
      s += slimnn::detail::cat(", ", kdconv_format_name(coefficients), " ", coefficient_bits, "-bit");
    return s;
  }

  /// Throws config_error unless the settings are usable for some convolution.
  void validate() const {
    slimnn::detail::require<config_error>(bases >= 1, "kdconv: bases must be >= 1, got ", bases);
    index_t kernel = 1;  // the smallest kernel with this many taps
    while (kernel * kernel < bases) ++kernel;
    validate(kernel, std::max<index_t>(group_size, 1));
  }
  /// Throws config_error unless the settings are usable for a k x k kernel with `out_channels` outputs.
  void validate(index_t kernel, index_t out_channels) const {
    const index_t kk = kernel * kernel;
    slimnn::detail::require<config_error>(bases >= 1 && bases <= kk, "kdconv: bases must be in 1..", kk, " for a ",
                                          kernel, "x", kernel, " kernel, got ", bases);
    slimnn::detail::require<config_error>(density > 0 && density <= 1, "kdconv: density must be in (0, 1], got ",
                                          density);
    slimnn::detail::require<config_error>(std_multiple >= 0 && std::isfinite(std_multiple),
                                          "kdconv: std_multiple must be >= 0, got ", std_multiple);
    slimnn::detail::require<config_error>(group_size >= 1 && group_size <= out_channels,
                                          "kdconv: group_size must be in 1..", out_channels,
                                          " (the output channels), got ", group_size);
    slimnn::detail::require<config_error>(basis_bits == 0 || (basis_bits >= 2 && basis_bits <= 16),
                                          "kdconv: basis_bits must be 0 (float) or in 2..16, got ", basis_bits);
    if (coefficients == kdconv_coefficient_format::pow2)
      slimnn::detail::require<config_error>(coefficient_bits >= 2 && coefficient_bits <= 8,
                                            "kdconv: pow2 coefficients need 2..8 bits (sign + exponent), got ",
                                            coefficient_bits);
    if (coefficients == kdconv_coefficient_format::kmeans)
      slimnn::detail::require<config_error>(coefficient_bits >= 1 && coefficient_bits <= 8,
                                            "kdconv: kmeans coefficients need 1..8 bits, got ", coefficient_bits);
    slimnn::detail::require<config_error>(band_rows >= 0, "kdconv: band_rows must be >= 0 (0 = automatic), got ",
                                          band_rows);
  }

  /// "m4-d30-g4": the tokens that differ from their defaults (see the top).
  std::string str() const {
    std::string out = slimnn::detail::cat("m", bases);
    if (density != 1) out += "-d" + slimnn::detail::percent_text(density);
    if (group_size != 1) out += slimnn::detail::cat("-g", group_size);
    if (coefficients == kdconv_coefficient_format::kmeans) out += slimnn::detail::cat("-km", coefficient_bits);
    else if (coefficients == kdconv_coefficient_format::float32) out += "-f32";
    else if (coefficient_bits != 4) out += slimnn::detail::cat("-p", coefficient_bits);
    if (basis_bits != 8) out += slimnn::detail::cat("-b", basis_bits);
    return out;
  }
  /// From "m4-d30-g4"; config_error naming the string when it is malformed or invalid.
  /// The bases a kernel takes and the group size its outputs allow are checked on
  /// conversion; here, against the smallest kernel and outputs that allow them.
  static kdconv_settings parse(std::string_view text) {
    const slimnn::detail::setting_tokens tokens("kdconv", text, {"m", "d", "g", "p", "km", "f", "b"}, "m",
                                                "m4-d30");
    kdconv_settings s;
    s.bases = *tokens.whole<index_t>("m");
    if (const auto d = tokens.number("d")) s.density = *d / 100;
    if (const auto g = tokens.whole<index_t>("g")) s.group_size = *g;
    if (const auto b = tokens.whole<int>("b")) s.basis_bits = *b;
    tokens.require_that(int(tokens.has("p")) + int(tokens.has("km")) + int(tokens.has("f")) <= 1,
                        "give at most one of p<bits>, km<bits>, f32");
    if (const auto p = tokens.whole<int>("p")) s.coefficient_bits = *p;
    if (const auto km = tokens.whole<int>("km")) {
      s.coefficients = kdconv_coefficient_format::kmeans;
      s.coefficient_bits = *km;
    }
    if (const auto f = tokens.number("f")) {
      tokens.require_that(*f == 32, "float coefficients are f32");
      s.coefficients = kdconv_coefficient_format::float32;
    }
    tokens.validated([&] { s.validate(); });
    return s;
  }
  friend bool operator==(const kdconv_settings&, const kdconv_settings&) = default;
};

namespace detail {

/// Bits per stored coefficient code (not counting its index).
inline int coefficient_code_bits(const kdconv_settings& s) {
  return s.coefficients == kdconv_coefficient_format::float32 ? 32 : s.coefficient_bits;
}

/// out[i] = the stored (quantized) value of latent[i] under the settings' coefficient format:
/// pow2_quantizer fitted to the layer's largest |a|, or k-means with min(2^bits, n) values.
template <class T>
void quantize_coefficients(const kdconv_settings& s, std::span<const T> latent, std::span<T> out) {
  SLIMNN_ASSERT(latent.size() == out.size());
  if (s.coefficients == kdconv_coefficient_format::float32 || latent.empty()) {
    std::copy(latent.begin(), latent.end(), out.begin());
    return;
  }
  const std::vector<double> values(latent.begin(), latent.end());
  if (s.coefficients == kdconv_coefficient_format::pow2) {
    const auto q = pow2_quantizer::fit(values, s.coefficient_bits - 1);
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = T(q.round(values[i]));
  } else {
    const int clusters = int(std::min<std::size_t>(std::size_t(1) << s.coefficient_bits, values.size()));
    const auto r = kmeans_1d(values, clusters);
    for (std::size_t i = 0; i < values.size(); ++i) out[i] = T(r.centroids[r.index[i]]);
  }
}

/// Rounds one basis group (its M kernels) to `bits`-bit fixed point, in place.
template <class T>
void quantize_basis_group(int bits, std::span<const T> latent, std::span<T> out) {
  SLIMNN_ASSERT(latent.size() == out.size());
  if (bits == 0) {
    std::copy(latent.begin(), latent.end(), out.begin());
    return;
  }
  const std::vector<double> values(latent.begin(), latent.end());
  const auto q = uniform_quantizer::fixed_point(values, bits);
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = T(q.round(values[i]));
}

}  // namespace detail
}  // namespace slimnn
