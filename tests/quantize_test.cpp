#include "slimnn/core/quantize.hpp"

#include <gmock/gmock.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

namespace {

using namespace slimnn;

TEST(pow2_quantizer, rounds_to_nearest_power_and_clips) {
  const pow2_quantizer q(-3, 1);  // 1/8 .. 2
  EXPECT_EQ(q.round(1.0), 1.0);
  EXPECT_EQ(q.round(1.4), 1.0);
  EXPECT_EQ(q.round(1.6), 2.0);
  EXPECT_EQ(q.round(-0.3), -0.25);
  EXPECT_EQ(q.round(100.0), 2.0);
  EXPECT_EQ(q.round(1e-6), 0.125);
  EXPECT_EQ(q.exponent_bits(), 3);
  EXPECT_EQ(q.code_bits(), 4);
}

/// The definition with the C library: 2^e <= |v| < 2^(e+1), one up from 1.5 * 2^e;
/// an infinity is above every power, so it rounds to the largest.
double reference_pow2_round(double v, int lo, int hi) {
  const double a = std::abs(v);
  if (!(a > 0)) return std::copysign(std::ldexp(1.0, lo), v);
  if (std::isinf(a)) return std::copysign(std::ldexp(1.0, hi), v);
  int e = std::ilogb(a);
  if (a >= 1.5 * std::ldexp(1.0, e)) ++e;
  return std::copysign(std::ldexp(1.0, std::clamp(e, lo, hi)), v);
}

TEST(pow2_quantizer, rounding_from_the_bits_matches_the_library_definition) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> log_magnitude(-1100, 1100);
  std::vector<double> values{0.0, -0.0, 1.5, -1.5, std::nextafter(1.5, 0.0), 3.0, 0.75,
                             std::numeric_limits<double>::denorm_min(), 1.5 * std::numeric_limits<double>::min(),
                             std::numeric_limits<double>::min(), std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (int i = 0; i < 200000; ++i) values.push_back((i % 2 ? -1 : 1) * std::exp2(log_magnitude(rng)));
  for (const auto& [lo, hi] : {std::pair{-8, 0}, std::pair{-40, 32}, std::pair{-125, 2}, std::pair{-1, 126}}) {
    const pow2_quantizer q(lo, hi);
    for (const double v : values) {
      const double expected = reference_pow2_round(v, lo, hi);
      ASSERT_EQ(std::bit_cast<std::uint64_t>(q.round(v)), std::bit_cast<std::uint64_t>(expected))
          << v << " in [" << lo << ", " << hi << "]";
    }
  }
}

TEST(pow2_quantizer, codes_round_trip_exactly) {
  const auto q = pow2_quantizer::with_bits(4, 0);
  EXPECT_EQ(q.min_exponent(), -15);
  for (int e = -15; e <= 0; ++e)
    for (double sign : {1.0, -1.0}) {
      const double v = sign * std::ldexp(1.0, e);
      EXPECT_EQ(q.decode(q.encode(v)), v) << v;
      EXPECT_LT(q.encode(v), 32);
    }
  EXPECT_THROW(q.decode(200), format_error);
}

TEST(pow2_quantizer, relative_error_is_bounded_inside_the_range) {
  const pow2_quantizer q(-10, 10);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-8, 8);
  for (int i = 0; i < 1000; ++i) {
    const double v = std::ldexp(1.0, int(u(rng))) * (1 + std::abs(u(rng)) / 8);
    EXPECT_LE(std::abs(q.round(v) - v), 0.5 * std::abs(v) + 1e-12) << v;
  }
}

TEST(pow2_quantizer, rejects_bad_ranges) {
  EXPECT_THAT([] { pow2_quantizer(2, 1); }, ::testing::ThrowsMessage<config_error>(::testing::StrEq(
                                                 "slimnn: pow2_quantizer: min_exponent 2 is above max_exponent 1")));
  EXPECT_THROW(pow2_quantizer::with_bits(0, 0), config_error);
  EXPECT_THROW(pow2_quantizer::with_bits(9, 0), config_error);
}

TEST(uniform_quantizer, symmetric_fit_error_is_half_a_step) {
  const std::vector<double> values{-0.9, -0.1, 0.0, 0.33, 0.7};
  for (int bits = 2; bits <= 8; ++bits) {
    const auto q = uniform_quantizer::fit(values, bits);
    EXPECT_NEAR(q.scale() * q.max_code(), 0.9, 1e-12);
    EXPECT_EQ(q.round(0.0), 0.0);
    for (double v : values) EXPECT_LE(std::abs(q.round(v) - v), q.scale() / 2 + 1e-12) << bits;
  }
}

TEST(uniform_quantizer, fixed_point_uses_a_power_of_two_scale_that_fits) {
  const std::vector<double> values{0.3, -1.7, 0.01};
  const auto q = uniform_quantizer::fixed_point(values, 8);
  EXPECT_EQ(q.scale(), 1.0 / 64);  // 1.7 * 64 = 108.8 <= 127, * 128 would not fit
  EXPECT_EQ(q.encode(-1.7), -109);
  EXPECT_THROW(uniform_quantizer(1, 1.0), config_error);
  EXPECT_THROW(uniform_quantizer(8, 0.0), config_error);
}

TEST(kmeans_1d, finds_separated_clusters_and_checks_counts) {
  std::vector<double> values;
  for (double centre : {-1.0, 0.0, 2.0})
    for (int i = 0; i < 20; ++i) values.push_back(centre + 0.01 * (i - 10));
  const auto r = kmeans_1d(values, 3);
  ASSERT_EQ(r.centroids.size(), 3u);
  EXPECT_NEAR(r.centroids[0], -1.005, 1e-9);
  EXPECT_NEAR(r.centroids[1], -0.005, 1e-9);
  EXPECT_NEAR(r.centroids[2], 1.995, 1e-9);
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(r.index[i], i / 20);
  EXPECT_THAT([&] { kmeans_1d(std::span(values).first(2), 3); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: kmeans: 3 clusters is more than the 2 values")));
}

}  // namespace
