// slimnn/core/quantize.hpp — the scalar quantizers the compression schemes share.
//
//   pow2_quantizer      v -> sign(v) * 2^e, e clipped to [min_exponent, max_exponent];
//                       code = sign bit above an (e - min_exponent) field of
//                       exponent_bits() bits. Zero is not representable (schemes keep
//                       zeros in their sparsity structure). Rounding is to the nearest
//                       power in value (|v| >= 1.5 * 2^e rounds up).
//   uniform_quantizer   v -> scale * q, q = clamp(round(v / scale), -qmax, qmax),
//                       qmax = 2^(bits-1) - 1 (symmetric, zero exact). fit() takes the
//                       scale from max |v|; fixed_point() uses scale = 2^-fraction_bits
//                       (Q-format), choosing the fraction bits so max |v| fits.
//   kmeans_1d           Lloyd's algorithm on scalars with linear initialisation between
//                       min and max (deterministic); returns sorted centroids and each
//                       value's centroid index. O(iterations * n log k).
// Invalid settings raise config_error. All are plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "slimnn/core/error.hpp"

namespace slimnn {

class pow2_quantizer {
 public:
  pow2_quantizer(int min_exponent, int max_exponent) : min_(min_exponent), max_(max_exponent) {
    detail::require<config_error>(min_exponent <= max_exponent, "pow2_quantizer: min_exponent ", min_exponent,
                                  " is above max_exponent ", max_exponent);
    detail::require<config_error>(max_exponent - min_exponent < 128 && min_exponent > -126 && max_exponent < 127,
                                  "pow2_quantizer: exponent range [", min_exponent, ", ", max_exponent,
                                  "] is too wide");
  }
  /// The 2^bits exponents ending at max_exponent (bits in 1..7).
  static pow2_quantizer with_bits(int exponent_bits, int max_exponent) {
    detail::require<config_error>(exponent_bits >= 1 && exponent_bits <= 7,
                                  "pow2_quantizer: exponent bits must be in 1..7, got ", exponent_bits);
    return {max_exponent - (1 << exponent_bits) + 1, max_exponent};
  }
  /// The same number of exponents, placed so that the largest |v| is representable.
  static pow2_quantizer fit(std::span<const double> values, int exponent_bits) {
    double largest = 0;
    for (double v : values) largest = std::max(largest, std::abs(v));
    const int top = largest > 0 ? int(std::lround(std::log2(largest))) : 0;
    return with_bits(exponent_bits, std::clamp(top, -100, 100));
  }

  int min_exponent() const { return min_; }
  int max_exponent() const { return max_; }
  int levels() const { return max_ - min_ + 1; }
  int exponent_bits() const {
    int bits = 0;
    while ((1 << bits) < levels()) ++bits;
    return std::max(bits, 1);
  }
  int code_bits() const { return exponent_bits() + 1; }

  /// Nearest exponent of |v| (v != 0), clipped to the range. For a normal double
  /// a = (1 + f) 2^e, read from its bits: e, plus 1 when f >= 1/2 (the top fraction bit),
  /// i.e. when a >= 1.5 * 2^e is nearer to 2^(e+1) (training calls this per coefficient
  /// and step, where std::ilogb and std::ldexp cost more than the rest of the update).
  int exponent(double v) const {
    const double a = std::abs(v);
    if (!(a > 0)) return min_;
    const auto bits = std::bit_cast<std::uint64_t>(a);
    int e;
    if (const int biased = int(bits >> 52); biased > 0) {
      e = biased - 1023 + int((bits >> 51) & 1u);  // infinity: 1024, clipped below
    } else {                                       // subnormal
      e = std::ilogb(a);                           // 2^e <= a < 2^(e+1)
      if (a >= 1.5 * std::ldexp(1.0, e)) ++e;
    }
    return std::clamp(e, min_, max_);
  }
  /// sign(v) * 2^exponent(v).
  double round(double v) const {
    const int e = exponent(v);
    const std::uint64_t sign = std::bit_cast<std::uint64_t>(v) & (std::uint64_t(1) << 63);
    if (e >= -1022 && e <= 1023) return std::bit_cast<double>((std::uint64_t(e + 1023) << 52) | sign);
    return std::copysign(std::ldexp(1.0, e), v);
  }
  std::uint8_t encode(double v) const {
    return std::uint8_t((std::signbit(v) ? 1u << exponent_bits() : 0u) | unsigned(exponent(v) - min_));
  }
  double decode(std::uint8_t code) const {
    const unsigned field = code & ((1u << exponent_bits()) - 1u);
    detail::require<format_error>(int(field) < levels() && code < (1u << code_bits()), "pow2_quantizer: code ",
                                  int(code), " is outside the ", code_bits(), "-bit code range");
    const double magnitude = std::ldexp(1.0, min_ + int(field));
    return (code >> exponent_bits()) & 1u ? -magnitude : magnitude;
  }

 private:
  int min_, max_;
};

class uniform_quantizer {
 public:
  uniform_quantizer(int bits, double scale) : bits_(bits), scale_(scale) {
    detail::require<config_error>(bits >= 2 && bits <= 16, "uniform_quantizer: bits must be in 2..16, got ", bits);
    detail::require<config_error>(scale > 0 && std::isfinite(scale), "uniform_quantizer: scale must be positive and "
                                                                     "finite, got ", scale);
  }
  /// Symmetric scale so that max |v| maps to qmax (scale 1 when all values are zero).
  static uniform_quantizer fit(std::span<const double> values, int bits) {
    double largest = 0;
    for (double v : values) largest = std::max(largest, std::abs(v));
    const int qmax = (1 << (std::clamp(bits, 2, 16) - 1)) - 1;
    return {bits, largest > 0 ? largest / qmax : 1.0};
  }
  /// Q-format: scale 2^-f with the most fraction bits f for which max |v| fits.
  static uniform_quantizer fixed_point(std::span<const double> values, int bits) {
    double largest = 0;
    for (double v : values) largest = std::max(largest, std::abs(v));
    const int qmax = (1 << (std::clamp(bits, 2, 16) - 1)) - 1;
    int fraction = 0;
    if (largest > 0) fraction = int(std::floor(std::log2(double(qmax) / largest)));
    return {bits, std::ldexp(1.0, -std::clamp(fraction, -60, 60))};
  }

  int bits() const { return bits_; }
  double scale() const { return scale_; }
  int max_code() const { return (1 << (bits_ - 1)) - 1; }
  int encode(double v) const {
    const double q = std::nearbyint(v / scale_);
    return int(std::clamp(q, double(-max_code()), double(max_code())));
  }
  double decode(int code) const { return scale_ * code; }
  double round(double v) const { return decode(encode(v)); }

 private:
  int bits_;
  double scale_;
};

struct kmeans_result {
  std::vector<double> centroids;    ///< sorted ascending
  std::vector<std::uint32_t> index;  ///< per value: its centroid
};

inline kmeans_result kmeans_1d(std::span<const double> values, int clusters, int iterations = 30) {
  detail::require<config_error>(clusters >= 1, "kmeans: clusters must be >= 1, got ", clusters);
  detail::require<config_error>(std::size_t(clusters) <= values.size(), "kmeans: ", clusters,
                                " clusters is more than the ", values.size(), " values");
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  kmeans_result r;
  r.centroids.resize(std::size_t(clusters));
  for (int c = 0; c < clusters; ++c)
    r.centroids[std::size_t(c)] = clusters == 1 ? (*lo + *hi) / 2 : *lo + (*hi - *lo) * c / (clusters - 1);
  r.index.assign(values.size(), 0);
  std::vector<double> sum(static_cast<std::size_t>(clusters), 0.0);
  std::vector<std::size_t> count(static_cast<std::size_t>(clusters), 0);
  auto nearest = [&](double v) {
    const auto it = std::lower_bound(r.centroids.begin(), r.centroids.end(), v);
    std::size_t i = std::size_t(it - r.centroids.begin());
    if (i == r.centroids.size()) return i - 1;
    if (i > 0 && v - r.centroids[i - 1] <= r.centroids[i] - v) return i - 1;
    return i;
  };
  for (int it = 0; it <= iterations; ++it) {
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    bool moved = false;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto c = nearest(values[i]);
      moved |= r.index[i] != c;
      r.index[i] = std::uint32_t(c);
      sum[c] += values[i];
      ++count[c];
    }
    if (it == iterations || (it > 0 && !moved)) break;
    for (std::size_t c = 0; c < sum.size(); ++c)
      if (count[c]) r.centroids[c] = sum[c] / double(count[c]);
    std::sort(r.centroids.begin(), r.centroids.end());
  }
  return r;
}

}  // namespace slimnn
