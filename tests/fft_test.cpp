#include "slimnn/circulant/fft.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace slimnn;

/// Naive DFT in double: S[f] = sum_t x[t] e^{-2 pi i f t / n}.
std::vector<std::complex<double>> naive_dft(const std::vector<double>& x) {
  const auto n = x.size();
  std::vector<std::complex<double>> s(n / 2 + 1);
  for (std::size_t f = 0; f < s.size(); ++f)
    for (std::size_t t = 0; t < n; ++t)
      s[f] += x[t] * std::polar(1.0, -2 * std::numbers::pi * double(f * t % n) / double(n));
  return s;
}

template <class T>
class fft_typed : public ::testing::Test {};
using scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(fft_typed, scalars);

TYPED_TEST(fft_typed, batched_r2c_matches_naive_dft_and_c2r_inverts_it) {
  using T = TypeParam;
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-11;
  for (index_t n : {1, 2, 3, 5, 8, 16, 64}) {
    const index_t count = 3, F = n / 2 + 1;
    // Blocks contiguous on the real side; frequency-major spectrum (S_j[f] at f*count + j).
    const fft_layout layout{.length = n, .real_stride = 1, .spectrum_stride = count, .batch = {{count, n, 1}}};
    EXPECT_EQ(layout.real_extent(), n * count);
    EXPECT_EQ(layout.spectrum_extent(), F * count);
    const real_fft<T> r2c(layout, real_fft<T>::direction::forward);
    const real_fft<T> c2r(layout, real_fft<T>::direction::inverse);
    const auto values = slimnn::testing::random_matrix<double>(n * count, 1, std::uint64_t(n));
    fft_vector<T> x(std::size_t(n * count)), back(x.size());
    fft_vector<std::complex<T>> s(std::size_t(F * count));
    for (index_t i = 0; i < n * count; ++i) x[std::size_t(i)] = T(values(i));
    r2c.forward(x.data(), s.data());
    for (index_t j = 0; j < count; ++j) {
      std::vector<double> block(static_cast<std::size_t>(n));
      for (index_t t = 0; t < n; ++t) block[std::size_t(t)] = double(x[std::size_t(j * n + t)]);
      const auto expected = naive_dft(block);
      for (index_t f = 0; f < F; ++f) {
        const auto got = s[std::size_t(f * count + j)];
        EXPECT_NEAR(got.real(), expected[std::size_t(f)].real(), tol * n) << "n " << n << " block " << j << " f " << f;
        EXPECT_NEAR(got.imag(), expected[std::size_t(f)].imag(), tol * n) << "n " << n << " block " << j << " f " << f;
      }
    }
    c2r.inverse(s.data(), back.data());  // destroys s
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], T(n) * x[i], tol * n * n) << "n " << n;
  }
}

TYPED_TEST(fft_typed, two_batch_dimensions_cover_channel_blocks_of_every_pixel) {
  using T = TypeParam;
  // An image of C = k*q channels and P pixels (CHW): transform each pixel's channel blocks.
  const index_t k = 4, q = 3, P = 5, F = k / 2 + 1;
  const fft_layout layout{.length = k,
                          .real_stride = P,
                          .spectrum_stride = q * P,
                          .batch = {{q, k * P, P}, {P, 1, 1}}};
  const real_fft<T> r2c(layout, real_fft<T>::direction::forward);
  fft_vector<T> x(std::size_t(k * q * P));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(std::sin(double(i) * 0.7) + 0.1 * double(i % 3));
  fft_vector<std::complex<T>> s(std::size_t(layout.spectrum_extent()));
  r2c.forward(x.data(), s.data());
  for (index_t j = 0; j < q; ++j)
    for (index_t pix = 0; pix < P; ++pix) {
      std::vector<double> block(static_cast<std::size_t>(k));
      for (index_t t = 0; t < k; ++t) block[std::size_t(t)] = double(x[std::size_t((j * k + t) * P + pix)]);
      const auto expected = naive_dft(block);
      for (index_t f = 0; f < F; ++f) {
        const auto got = s[std::size_t(f * q * P + j * P + pix)];
        EXPECT_NEAR(got.real(), expected[std::size_t(f)].real(), 1e-5);
        EXPECT_NEAR(got.imag(), expected[std::size_t(f)].imag(), 1e-5);
      }
    }
}

TEST(fft, measure_planning_gives_the_same_transform) {
  const fft_layout layout{.length = 16, .real_stride = 1, .spectrum_stride = 1, .batch = {{2, 16, 9}}};
  const real_fft<double> estimate(layout, real_fft<double>::direction::forward);
  const real_fft<double> measure(layout, real_fft<double>::direction::forward, fft_planning::measure);
  fft_vector<double> x(32);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(double(i));
  fft_vector<std::complex<double>> a(18), b(18);
  estimate.forward(x.data(), a.data());
  measure.forward(x.data(), b.data());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(std::abs(a[i] - b[i]), 0.0, 1e-12);
}

TEST(fft, plans_made_and_run_on_many_threads_agree) {
  const fft_layout layout{.length = 32, .real_stride = 1, .spectrum_stride = 8, .batch = {{8, 32, 1}}};
  fft_vector<float> x(256);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i) * 0.3));
  fft_vector<std::complex<float>> expected(17 * 8);
  real_fft<float>(layout, real_fft<float>::direction::forward).forward(x.data(), expected.data());
  constexpr int threads = 6;
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> pool;
  const real_fft<float> shared(layout, real_fft<float>::direction::forward);
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r) {
        // Planning (guarded by the process-wide mutex) interleaved with shared execution.
        const real_fft<float> own(layout, real_fft<float>::direction::forward);
        fft_vector<std::complex<float>> a(expected.size()), b(expected.size());
        own.forward(x.data(), a.data());
        shared.forward(x.data(), b.data());
        mismatches[std::size_t(t)] += (a != expected) + (b != expected);
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(mismatches[std::size_t(t)], 0) << "thread " << t;
  EXPECT_EQ(&detail::fft_planner_mutex(), &detail::fft_planner_mutex());
}

TEST(fft, copies_share_the_plan) {
  const fft_layout layout{.length = 8, .real_stride = 1, .spectrum_stride = 1, .batch = {}};
  real_fft<double> a(layout, real_fft<double>::direction::forward);
  const real_fft<double> b = a;
  a = real_fft<double>(layout, real_fft<double>::direction::forward);
  fft_vector<double> x(8, 1.0);
  fft_vector<std::complex<double>> s(5);
  b.forward(x.data(), s.data());
  EXPECT_DOUBLE_EQ(s[0].real(), 8.0);
  EXPECT_DOUBLE_EQ(std::abs(s[1]), 0.0);
}

TEST(fft, buffers_are_aligned_and_misaligned_ones_are_rejected) {
  fft_vector<float> x(64);
  fft_vector<std::complex<float>> s(40);
  EXPECT_EQ(fftwf_alignment_of(x.data()), 0);
  EXPECT_EQ(fft_padded<float>(17), 32);
  EXPECT_EQ(fft_padded<std::complex<double>>(5), 8);
  const real_fft<float> r2c({.length = 16, .real_stride = 1, .spectrum_stride = 1, .batch = {}},
                            real_fft<float>::direction::forward);
  EXPECT_THAT([&] { r2c.forward(x.data() + 1, s.data()); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: fft: buffers must be aligned like fftw_malloc's (use fft_vector)")));
}

TEST(fft, rejects_bad_layouts) {
  EXPECT_THAT([] { real_fft<float>({.length = 0, .real_stride = 1, .spectrum_stride = 1, .batch = {}}, real_fft<float>::direction::forward); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: fft: transform length must be >= 1, got 0")));
  EXPECT_THAT(
      [] {
        real_fft<double>({.length = 4, .real_stride = 1, .spectrum_stride = 1, .batch = {{1, 4, 3}, {1, 4, 3}, {1, 4, 3}}},
                         real_fft<double>::direction::inverse);
      },
      ::testing::ThrowsMessage<config_error>(::testing::StrEq("slimnn: fft: at most 2 batch dimensions, got 3")));
  EXPECT_THAT([] { real_fft<float>({.length = 4, .real_stride = 1, .spectrum_stride = 1, .batch = {{0, 4, 3}}}, real_fft<float>::direction::forward); },
              ::testing::ThrowsMessage<config_error>(::testing::StrEq("slimnn: fft: batch counts must be >= 1, got 0")));
}

}  // namespace
