// slimnn/kdconv/settings.hpp — the settings of an ESCALATE kernel decomposition and the
// hybrid quantization they select.
//
//   W[n, c] (k x k) = sum_m A[n, c, m] * B[g(c), m],   m < M,
//   g(c) = c (one basis of M kernels per input channel) or 0 (one basis shared by all)
// Basis kernels are stored as 8-bit fixed point (one Q-format per basis group) or float;
// the sparse coefficients A as power-of-two codes (sign + exponent), k-means codes
// (2^bits shared values per layer) or float. Pruning keeps a target density of |a| or
// the |a| above an std multiple, element-wise or by groups of output channels.
// Everything here is a plain value: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/quantize.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn::kdconv {

/// How the nonzero coefficients are stored.
enum class coefficient_format {
  float32,  ///< plain floats (32 bits each)
  pow2,     ///< sign(a) * 2^e: 1 sign bit + (bits - 1) exponent bits, range fitted per layer
  kmeans,   ///< index into 2^bits shared values found by 1-D k-means per layer
};

inline const char* format_name(coefficient_format f) {
  switch (f) {
    case coefficient_format::pow2: return "pow2";
    case coefficient_format::kmeans: return "kmeans";
    default: return "float";
  }
}

struct settings {
  index_t bases = 6;          ///< M: basis kernels per group, 1..k*k
  bool shared_basis = false;  ///< one basis for every input channel instead of one per channel
  double density = 1.0;       ///< fraction of the N*C*M coefficients kept (by |a|), in (0, 1]
  double std_multiple = 0;    ///< when > 0: keep |a| > std_multiple * std(A) instead of `density`
  index_t group_size = 1;     ///< prune whole groups of this many consecutive output channels
                              ///< (per (c, m) column, scored by their L2 norm); 1 = element-wise
  int basis_bits = 8;         ///< 2..16: fixed-point basis; 0: float basis
  coefficient_format coefficients = coefficient_format::float32;
  int coefficient_bits = 4;   ///< pow2: 2..8 (sign + exponent); kmeans: 1..8 (2^bits values)
  bool train_basis = false;   ///< expose the basis as a trainable parameter too
  index_t band_rows = 0;      ///< output rows per band of the basis-first dataflow; 0 = automatic

  /// "m6, d0.1, basis 8-bit, pow2 4-bit" — used in layer settings and messages.
  std::string str() const {
    std::string s = slimnn::detail::cat("m", bases, shared_basis ? " shared" : "");
    if (std_multiple > 0) s += slimnn::detail::cat(", |a| > ", std_multiple, " std");
    else s += slimnn::detail::cat(", d", density);
    if (group_size > 1) s += slimnn::detail::cat(", groups of ", group_size);
    s += basis_bits > 0 ? slimnn::detail::cat(", basis ", basis_bits, "-bit") : std::string(", float basis");
    if (coefficients != coefficient_format::float32)
      s += slimnn::detail::cat(", ", format_name(coefficients), " ", coefficient_bits, "-bit");
    return s;
  }
};

/// Throws config_error unless `s` is usable for a k x k kernel with `out_channels` outputs.
inline void validate(const settings& s, index_t kernel, index_t out_channels) {
  const index_t kk = kernel * kernel;
  slimnn::detail::require<config_error>(s.bases >= 1 && s.bases <= kk, "kdconv: bases must be in 1..", kk, " for a ",
                                kernel, "x", kernel, " kernel, got ", s.bases);
  slimnn::detail::require<config_error>(s.density > 0 && s.density <= 1, "kdconv: density must be in (0, 1], got ",
                                s.density);
  slimnn::detail::require<config_error>(s.std_multiple >= 0 && std::isfinite(s.std_multiple),
                                "kdconv: std_multiple must be >= 0, got ", s.std_multiple);
  slimnn::detail::require<config_error>(s.group_size >= 1 && s.group_size <= out_channels,
                                "kdconv: group_size must be in 1..", out_channels, " (the output channels), got ",
                                s.group_size);
  slimnn::detail::require<config_error>(s.basis_bits == 0 || (s.basis_bits >= 2 && s.basis_bits <= 16),
                                "kdconv: basis_bits must be 0 (float) or in 2..16, got ", s.basis_bits);
  if (s.coefficients == coefficient_format::pow2)
    slimnn::detail::require<config_error>(s.coefficient_bits >= 2 && s.coefficient_bits <= 8,
                                  "kdconv: pow2 coefficients need 2..8 bits (sign + exponent), got ",
                                  s.coefficient_bits);
  if (s.coefficients == coefficient_format::kmeans)
    slimnn::detail::require<config_error>(s.coefficient_bits >= 1 && s.coefficient_bits <= 8,
                                  "kdconv: kmeans coefficients need 1..8 bits, got ", s.coefficient_bits);
  slimnn::detail::require<config_error>(s.band_rows >= 0, "kdconv: band_rows must be >= 0 (0 = automatic), got ",
                                s.band_rows);
}

namespace detail {

/// Bits per stored coefficient code (not counting its index).
inline int coefficient_code_bits(const settings& s) {
  return s.coefficients == coefficient_format::float32 ? 32 : s.coefficient_bits;
}

/// out[i] = the stored (quantized) value of latent[i] under the settings' coefficient format:
/// pow2_quantizer fitted to the layer's largest |a|, or k-means with min(2^bits, n) values.
template <class T>
void quantize_coefficients(const settings& s, std::span<const T> latent, std::span<T> out) {
  SLIMNN_ASSERT(latent.size() == out.size());
  if (s.coefficients == coefficient_format::float32 || latent.empty()) {
    std::copy(latent.begin(), latent.end(), out.begin());
    return;
  }
  const std::vector<double> values(latent.begin(), latent.end());
  if (s.coefficients == coefficient_format::pow2) {
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
}  // namespace slimnn::kdconv
