#include "slimnn/circulant/block_circulant_dense.hpp"

#include <gmock/gmock.h>

#include <cstring>
#include <thread>

#include "conformance.hpp"
#include "kernel_paths.hpp"
#include "slimnn/train/optimizer.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;
using slimnn::testing::relative_error;

template <index_t In, index_t Out, index_t K>
struct circulant_case {
  template <class T>
  static block_circulant_dense<T> make() {
    rng_t rng(42);
    block_circulant_dense<T> layer(In, Out, K, rng);
    layer.bias() = random_matrix<T>(Out, 1, 9);
    return layer;
  }
};
using cases = ::testing::Types<circulant_case<10, 7, 4>, circulant_case<7, 8, 3>, circulant_case<6, 5, 1>,
                               circulant_case<16, 16, 8>>;
INSTANTIATE_TYPED_TEST_SUITE_P(block_circulant_dense, conformance, cases);

/// W[r][s] = c_ij[(r - s) mod k] for block (i, j) = (r / k, s / k), built independently
/// of the library from the first-column definition.
matrix<double> explicit_circulant(const matrix<double>& c, index_t m, index_t n, index_t k) {
  const index_t p = (m + k - 1) / k;
  matrix<double> w(m, n);
  for (index_t r = 0; r < m; ++r)
    for (index_t s = 0; s < n; ++s) {
      const index_t i = r / k, j = s / k, rr = r % k, ss = s % k;
      w(r, s) = c((rr - ss + k) % k, i + p * j);
    }
  return w;
}

TEST(block_circulant_dense, forward_matches_explicit_circulant_matrix_and_to_dense) {
  for (index_t k : {1, 2, 3, 8, 16, 64}) {
    // equal to k, below k (in one dimension), above, multiples, not multiples.
    const std::vector<std::pair<index_t, index_t>> sizes{
        {k, k}, {std::max<index_t>(1, k / 2), k}, {k, std::max<index_t>(1, k - 1)}, {2 * k + 1, 3 * k - 1}, {2 * k, 3 * k}};
    for (auto [n, m] : sizes) {
      SCOPED_TRACE(detail::cat("k ", k, ", ", n, "->", m));
      rng_t rng(std::uint64_t(k * 1000 + n * 10 + m));
      block_circulant_dense<double> layer(n, m, k, rng);
      layer.bias() = random_matrix<double>(m, 1, 4);
      const matrix<double> w = explicit_circulant(layer.first_columns(), m, n, k);
      EXPECT_LT((layer.to_reference().weight() - w).cwiseAbs().maxCoeff(), 1e-12);
      for (index_t batch : {1, 5}) {
        const auto x = random_matrix<double>(n, batch, 7);
        matrix<double> y;
        layer.forward(x, y);
        const matrix<double> expected = (w * x).colwise() + layer.bias();
        EXPECT_LT(relative_error(y, expected), 1e-12) << "batch " << batch;
      }
      // The float layer against its own to_dense() evaluated in double.
      block_circulant_dense<float> lf(n, m, k);
      lf.set_first_columns(layer.first_columns().cast<float>());
      lf.bias() = layer.bias().cast<float>();
      const dense<float> df = lf.to_reference();
      for (const index_t batch : {1, 3, 7}) {  // one column, and tiles of 3 and 6 plus a rest
        const auto x = random_matrix<float>(n, batch, 8);
        const matrix<double> ref =
            (df.weight().cast<double>() * x.cast<double>()).colwise() + df.bias().cast<double>();
        slimnn::testing::for_each_isa([&](isa) {
          matrix<float> y;
          lf.forward(x, y);
          EXPECT_LT(relative_error(y.cast<double>(), ref), 2e-5) << "batch " << batch;
        });
      }
    }
  }
}

TEST(block_circulant_dense, block_one_reproduces_the_dense_layer) {
  rng_t rng(5);
  dense<float> d(13, 9, rng);
  d.bias() = random_matrix<float>(9, 1, 2);
  const auto layer = compress(d, block_circulant_settings{1}).layer;
  EXPECT_EQ(layer.to_reference().weight(), d.weight());
  EXPECT_EQ(layer.to_reference().bias(), d.bias());
  const auto x = random_matrix<float>(13, 4, 3);
  matrix<float> a, b;
  layer.forward(x, a);
  d.forward(x, b);
  EXPECT_LT(relative_error(a, b), 1e-6);
  EXPECT_EQ(layer.cost().macs, d.cost().macs);
  EXPECT_EQ(layer.cost().param_bytes, d.cost().param_bytes);
}

TEST(block_circulant_dense, projection_is_optimal_idempotent_and_exact_on_circulants) {
  const index_t m = 19, n = 13, k = 4, p = 5, q = 4;
  const auto a = random_matrix<double>(m, n, 11);
  const matrix<double> c = circulant_project<double>(a, k);
  const matrix<double> pa = circulant_expand<double>(c, m, n, k);
  // idempotent
  EXPECT_LT((circulant_project<double>(pa, k) - c).cwiseAbs().maxCoeff(), 1e-14);
  // exact on circulant input
  const auto c0 = random_matrix<double>(k, p * q, 12);
  const matrix<double> e0 = explicit_circulant(c0, m, n, k);
  const matrix<double> back = circulant_project<double>(e0, k);
  // Cropped blocks do not determine every diagonal: compare the expansions.
  EXPECT_LT((explicit_circulant(back, m, n, k) - e0).cwiseAbs().maxCoeff(), 1e-14);
  EXPECT_LT((back.leftCols(p - 1) - c0.leftCols(p - 1)).cwiseAbs().maxCoeff(), 1e-14);  // full blocks
  // the residual is orthogonal to every (cropped) shift matrix
  const matrix<double> residual = a - pa;
  for (index_t i = 0; i < p; ++i)
    for (index_t j = 0; j < q; ++j)
      for (index_t d = 0; d < k; ++d) {
        double dot = 0;
        for (index_t r = i * k; r < std::min(m, (i + 1) * k); ++r)
          for (index_t s = j * k; s < std::min(n, (j + 1) * k); ++s)
            if ((r - s - d) % k == 0) dot += residual(r, s);
        EXPECT_NEAR(dot, 0.0, 1e-12) << "block " << i << "," << j << " shift " << d;
      }
  // the projection of a layer keeps its bias and matches the projected matrix
  dense<double> dl(a, random_matrix<double>(m, 1, 13).col(0));
  const auto layer = compress(dl, block_circulant_settings{k}).layer;
  EXPECT_LT((layer.to_reference().weight() - pa).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_EQ(layer.bias(), dl.bias());
  // full blocks use the averaged-diagonal formula c[d] = (1/k) sum_r A[(r + d) mod k][r]
  for (index_t d = 0; d < k; ++d) {
    double s = 0;
    for (index_t r = 0; r < k; ++r) s += a((r + d) % k, r);
    EXPECT_NEAR(c(d, 0), s / k, 1e-14);
  }
}

TEST(block_circulant_dense, spectra_are_frequency_major_and_self_conjugate_bins_real) {
  rng_t rng(3);
  block_circulant_dense<double> layer(24, 16, 8, rng);
  EXPECT_EQ(layer.frequencies(), 5);
  EXPECT_EQ(layer.block_rows(), 2);
  EXPECT_EQ(layer.block_cols(), 3);
  const matrix<double> c = layer.first_columns();
  for (index_t f = 0; f < 5; ++f) {
    const auto s = layer.spectrum(f);
    for (index_t j = 0; j < 3; ++j)
      for (index_t i = 0; i < 2; ++i) {
        std::complex<double> expected = 0;
        for (index_t t = 0; t < 8; ++t)
          expected += c(t, i + 2 * j) * std::polar(1.0, -2 * std::numbers::pi * double(f * t) / 8);
        EXPECT_NEAR(std::abs(s(i, j) - expected), 0, 1e-12);
      }
  }
  EXPECT_EQ(layer.spectrum(0).imag().cwiseAbs().maxCoeff(), 0.0);
  EXPECT_EQ(layer.spectrum(4).imag().cwiseAbs().maxCoeff(), 0.0);
  // an optimizer step keeps them real and only moves the spectra by lr * lr_scale
  auto params = layer.parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "spectra");
  EXPECT_EQ(params[0].size, 2 * 5 * 2 * 3);
  EXPECT_DOUBLE_EQ(params[0].lr_scale, 1.0 / 8);
  EXPECT_FALSE(params[1].decay);
  matrix<double> y, dx;
  layer.forward_train(random_matrix<double>(24, 4, 1), y);
  layer.backward(random_matrix<double>(16, 4, 2), dx);
  const Eigen::Map<const matrix<std::complex<double>>> g0(
      reinterpret_cast<const std::complex<double>*>(params[0].grad), 2, 3);
  EXPECT_EQ(g0.imag().cwiseAbs().maxCoeff(), 0.0);
  params[0].value[1] = 0.5;  // Im of the DC bin of block (0, 0)
  sgd<double> opt({.learning_rate = 0.1});
  opt.step(layer);
  EXPECT_EQ(layer.spectrum(0).imag().cwiseAbs().maxCoeff(), 0.0);
}

TEST(block_circulant_dense, training_from_scratch_fits_a_block_circulant_target) {
  rng_t rng(8);
  block_circulant_dense<double> target(32, 16, 8, rng), layer(32, 16, 8, rng);
  target.bias() = random_matrix<double>(16, 1, 3);
  adam<double> opt({.learning_rate = 0.02});
  layer.set_lr_scale(1.0);
  auto loss = [&](const matrix<double>& x) {
    matrix<double> a, b;
    layer.forward(x, a);
    target.forward(x, b);
    return (a - b).squaredNorm() / double(x.cols());
  };
  const auto probe = random_matrix<double>(32, 64, 99);
  const double before = loss(probe);
  for (int step = 0; step < 300; ++step) {
    const auto x = random_matrix<double>(32, 16, std::uint64_t(step));
    matrix<double> y, t, dx;
    layer.forward_train(x, y);
    target.forward(x, t);
    layer.backward(2 * (y - t) / 16.0, dx);
    opt.step(layer);
  }
  EXPECT_LT(loss(probe), 1e-3 * before);
}

TEST(block_circulant_dense, fixed_point_error_decreases_with_bits) {
  rng_t rng(4);
  const block_circulant_dense<double> layer(64, 48, 16, rng);
  const auto x = random_matrix<double>(64, 8, 5);
  matrix<double> exact;
  layer.forward(x, exact);
  double previous = 1e300;
  for (int bits : {8, 10, 12, 14, 16}) {
    auto q = layer;
    q.quantize_spectra(bits);
    EXPECT_EQ(q.spectrum_bits(), bits);
    matrix<double> y;
    q.forward(x, y);
    const double err = relative_error(y, exact);
    EXPECT_LT(err, previous) << bits << " bits";
    if (bits == 16) {
      EXPECT_LT(err, 1e-3);
    }
    previous = err;
    // every stored value sits on the Q-format grid
    const auto params = q.parameters();
    const double scale = [&] {
      double largest = 0;
      for (index_t i = 0; i < params[0].size; ++i) largest = std::max(largest, std::abs(params[0].value[i]));
      return std::ldexp(1.0, -int(std::floor(std::log2(double((1 << (bits - 1)) - 1) / largest))));
    }();
    for (index_t i = 0; i < params[0].size; ++i)
      EXPECT_NEAR(params[0].value[i] / scale, std::round(params[0].value[i] / scale), 1e-9);
    EXPECT_EQ(q.cost().param_bytes, std::uint64_t(3 * 4 * 16 * bits / 8 + 48 * 8));
    EXPECT_EQ(q.cost().param_bytes, slimnn::testing::file_tensor_bytes(q));
  }
  auto q = layer;
  EXPECT_THAT([&] { q.quantize_spectra(17); },
              ::testing::ThrowsMessage<config_error>(::testing::StrEq(
                  "slimnn: block_circulant_dense<double>: fixed-point bits must be in 2..16 (or 0 for floating point), "
                  "got 17")));
}

TEST(block_circulant_dense, cost_counts_k_values_per_block) {
  const block_circulant_dense<float> layer(1024, 1024, 64);
  const auto c = layer.cost();
  EXPECT_EQ(c.param_bytes, (16u * 16u * 64u + 1024u) * 4u);
  EXPECT_EQ(c.macs, 16u * 16u * (4u * 31u + 2u));
  EXPECT_EQ(c.bytes_read, c.param_bytes + 1024u * 4u);
  EXPECT_EQ(layer.settings(), "1024->1024, block 64");
}

TEST(block_circulant_dense, rejects_bad_settings_with_clear_messages) {
  using ::testing::StrEq;
  using ::testing::ThrowsMessage;
  EXPECT_THAT([] { block_circulant_dense<float>(784, 1024, 0); },
              ThrowsMessage<config_error>(StrEq("slimnn: block_circulant_dense<float>: block size must be >= 1, got 0")));
  EXPECT_THAT([] { block_circulant_dense<float>(784, 1024, 2048); },
              ThrowsMessage<config_error>(StrEq("slimnn: block_circulant_dense<float>: block size 2048 is larger than "
                                                "both dimensions (784 inputs, 1024 outputs)")));
  EXPECT_THAT([] { block_circulant_dense<double>(0, 3, 2); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: block_circulant_dense<double>: sizes must be positive, got 0 inputs and 3 outputs")));
  const block_circulant_dense<float> layer(16, 8, 4);
  matrix<float> y;
  EXPECT_THAT([&] { layer.forward(matrix<float>::Zero(15, 1), y); },
              ThrowsMessage<shape_error>(
                  StrEq("slimnn: block_circulant_dense<float>, 16->8, block 4: expects 16 inputs, got 15 rows")));
  auto l2 = layer;
  EXPECT_THAT([&] { l2.set_lr_scale(0); },
              ThrowsMessage<config_error>(StrEq("slimnn: block_circulant_dense<float>: lr_scale must be > 0, got 0")));
}

TEST(block_circulant_dense, concurrent_batch_one_forward_on_a_large_layer) {
  rng_t rng(6);
  const block_circulant_dense<float> layer(1000, 700, 64, rng);
  constexpr int threads = 4;
  std::vector<matrix<float>> inputs, expected(threads);
  for (int t = 0; t < threads; ++t) {
    inputs.push_back(random_matrix<float>(1000, t % 2 ? 1 : 3, std::uint64_t(t)));
    layer.forward(inputs.back(), expected[std::size_t(t)]);
  }
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      matrix<float> y;
      for (int r = 0; r < 50; ++r) {
        layer.forward(inputs[std::size_t(t)], y);
        mismatches[std::size_t(t)] += (y != expected[std::size_t(t)]);
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(mismatches[std::size_t(t)], 0) << "thread " << t;
}

// --- file format -------------------------------------------------------------------------

TEST(block_circulant_dense, file_holds_k_reals_per_block_or_fixed_point_codes) {
  using slimnn::testing::expect_round_trip;
  auto layer = circulant_case<10, 7, 4>::make<float>();  // p = 2, q = 3
  layer.set_lr_scale(0.3f);
  auto file = slimnn::testing::saved(layer);
  const auto& spectra = file.tensors.at("spectra");
  EXPECT_EQ(spectra.shape, (std::vector<std::uint64_t>{4, 3, 2}));  // [k, q, p]: r0, r1, i1, r2
  float v = 0;
  std::memcpy(&v, spectra.bytes.data() + ((2 * 3 + 1) * 2 + 0) * sizeof(float), sizeof v);
  EXPECT_EQ(v, layer.spectrum(1)(0, 1).imag());  // value 2 (i1) of block (0, 1)
  EXPECT_EQ(file.settings.at("lr_scale"), "0.3");
  EXPECT_EQ(file.settings.at("spectrum_bits"), "0");
  expect_round_trip(layer);
  layer.quantize_spectra(6);
  expect_round_trip(layer);
  file = slimnn::testing::saved(layer);
  EXPECT_EQ(file.tensors.at("spectra_codes").shape, (std::vector<std::uint64_t>{4 * 3 * 2 * 6 / 8}));
  EXPECT_EQ(file.tensors.count("spectra"), 0u);
  const auto back = slimnn::testing::load_saved<block_circulant_dense<float>>(file);
  EXPECT_EQ(back.spectrum_bits(), 6);
  EXPECT_EQ(back.lr_scale(), 0.3f);
  EXPECT_EQ(back.first_columns(), layer.first_columns());
}

TEST(block_circulant_dense, corrupt_files_raise_format_error_naming_the_tensor) {
  using ::testing::StrEq;
  using ::testing::ThrowsMessage;
  using slimnn::testing::load_saved;
  using L = block_circulant_dense<float>;
  const auto msg = [](const std::string& text) { return ThrowsMessage<format_error>(StrEq("slimnn: edited: " + text)); };
  auto layer = circulant_case<10, 7, 4>::make<float>();
  const auto plain = slimnn::testing::saved(layer);
  layer.quantize_spectra(6);
  const auto fixed = slimnn::testing::saved(layer);
  auto f = fixed;
  f.tensors.at("spectra_codes").bytes[0] = std::byte(0x3f);  // value 0: code 63, one past 2 * 31
  EXPECT_THAT([&] { load_saved<L>(f); },
              msg("tensor 'spectra_codes': code 63 of value 0 is outside 0..62 (6-bit codes offset by 31)"));
  f = fixed;
  f.settings["spectrum_bits"] = "8";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'spectra_codes': shape [18], expected [24]"));
  f.settings["spectrum_bits"] = "17";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'spectrum_bits': 17 is out of range [0, 16]"));
  f = fixed;
  f.settings["spectrum_fraction_bits"] = "61";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'spectrum_fraction_bits': 61 is out of range [-60, 60]"));
  f = plain;
  f.tensors.at("spectra").shape = {4, 2, 3};
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'spectra': shape [4, 2, 3], expected [4, 3, 2]"));
  f = plain;
  f.settings["block"] = "11";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'block': 11 is out of range [1, 10]"));
  f = plain;
  f.settings["lr_scale"] = "0";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'lr_scale': 0 is out of range [1.4013e-45, 3.40282e+38]"));
  f.settings["lr_scale"] = "fast";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'lr_scale': 'fast' is not a number"));
  f = plain;
  f.tensors.erase("bias");
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'bias': missing"));
}

}  // namespace
