#include <gmock/gmock.h>

#include <limits>
#include <random>

#include "conformance.hpp"
#include "kernel_paths.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"
#include "slimnn/train/optimizer.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;
using ::testing::StrEq;
using ::testing::ThrowsMessage;

/// Random power-of-two coefficients (exponents -4..0): each segment kept with
/// probability `segments`, each element of a kept segment nonzero with probability
/// `elements` (at least one per kept segment).
smartdeal_coefficients random_coefficients(index_t rows, index_t cols_pad, index_t s, double segments,
                                           double elements, std::uint64_t seed) {
  rng_t rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> e(-4, 0);
  std::vector<Eigen::Triplet<double, std::int64_t>> entries;
  for (index_t o = 0; o < rows; ++o)
    for (index_t r = 0; r < cols_pad / s; ++r) {
      if (u(rng) >= segments) continue;
      const index_t forced = std::uniform_int_distribution<index_t>(0, s - 1)(rng);
      for (index_t j = 0; j < s; ++j)
        if (j == forced || u(rng) < elements)
          entries.emplace_back(o, r * s + j, (u(rng) < 0.5 ? -1.0 : 1.0) * std::ldexp(1.0, e(rng)));
    }
  smartdeal_coefficients c(rows, cols_pad);
  c.setFromTriplets(entries.begin(), entries.end());
  return c;
}

template <class T>
smartdeal_matrix<T> random_factors(index_t rows, index_t cols, index_t s, index_t group_rows, double segments,
                                   double elements, std::uint64_t seed = 1) {
  const index_t S = (cols + s - 1) / s, groups = group_rows ? (rows + group_rows - 1) / group_rows : 1;
  const matrix<T> bases = random_matrix<T>(s, s * groups, seed + 100) / T(std::sqrt(double(s)));
  return smartdeal_matrix<T>(rows, cols, s, group_rows, pow2_quantizer::with_bits(4, 0), bases,
                             random_coefficients(rows, S * s, s, segments, elements, seed));
}

template <class T>
smartdeal_dense<T> random_dense(index_t in, index_t out, index_t s, index_t group_rows, double segments,
                                double elements, std::uint64_t seed = 1) {
  return smartdeal_dense<T>(random_factors<T>(out, in, s, group_rows, segments, elements, seed),
                            random_matrix<T>(out, 1, seed + 7).col(0));
}

template <class T>
smartdeal_conv2d<T> random_conv(std::uint64_t seed = 1) {
  const shape in{3, 6, 5};
  const conv2d_config config{.out_channels = 4, .kernel = 3, .stride = 1, .padding = 1};
  return smartdeal_conv2d<T>(in, config, random_factors<T>(4, 27, 3, 0, 0.6, 0.8, seed),
                             random_matrix<T>(4, 1, seed + 7).col(0));
}

// --- conformance: segment layout, element layout with groups, convolution --------------

struct segment_layout_case {
  template <class T>
  static smartdeal_dense<T> make() { return random_dense<T>(21, 6, 8, 0, 0.5, 0.9); }
};
struct element_layout_case {
  template <class T>
  static smartdeal_dense<T> make() { return random_dense<T>(19, 7, 4, 3, 0.9, 0.1, 5); }
};
struct conv_case {
  template <class T>
  static smartdeal_conv2d<T> make() { return random_conv<T>(); }
};
using cases = ::testing::Types<segment_layout_case, element_layout_case, conv_case>;
INSTANTIATE_TYPED_TEST_SUITE_P(smartdeal, conformance, cases);

TEST(smartdeal_matrix, layouts_follow_the_sparsity_pattern) {
  EXPECT_TRUE(segment_layout_case::make<float>().factors().segment_layout());
  EXPECT_FALSE(element_layout_case::make<float>().factors().segment_layout());
  EXPECT_EQ(element_layout_case::make<float>().factors().groups(), 3);
}

// --- forward against the dense expansion in double ---------------------------------------

template <class T>
void expect_forward_matches_to_dense(const smartdeal_dense<T>& layer, double tolerance) {
  const matrix<double> w = layer.factors().to_dense();
  for (index_t batch : {1, 5}) {
    const auto x = random_matrix<T>(layer.input_shape().size(), batch, 11);
    matrix<T> y;
    layer.forward(x, y);
    matrix<double> expected = w * x.template cast<double>();
    expected.colwise() += layer.bias().template cast<double>();
    EXPECT_LT(slimnn::testing::relative_error(y.template cast<double>(), expected), tolerance) << "batch " << batch;
  }
}

TEST(smartdeal_dense, forward_equals_to_dense_in_double) {
  for (index_t s : {1, 3, 8, 16}) {
    SCOPED_TRACE(s);
    // segment layout (dense segments), element layout (sparse segments), several bases
    expect_forward_matches_to_dense(random_dense<float>(123, 37, s, 0, 0.3, 0.9), 1e-5);
    expect_forward_matches_to_dense(random_dense<float>(123, 37, s, 10, 0.8, 0.1), 1e-5);
    expect_forward_matches_to_dense(random_dense<double>(123, 37, s, 7, 0.3, 0.9), 1e-13);
    expect_forward_matches_to_dense(random_dense<double>(123, 37, s, 0, 0.8, 0.1), 1e-13);
  }
}

TEST(smartdeal_dense, every_kernel_path_and_tail_matches_the_dense_expansion) {
  // Rows of 0 to ~65 units exercise the unrolled loops of every path and all their tails
  // (segments of 8, and single nonzeros).
  slimnn::testing::for_each_isa([](isa) {
    for (index_t in : {8, 40, 520}) {
      SCOPED_TRACE(in);
      expect_forward_matches_to_dense(random_dense<float>(in, 40, 8, 0, 0.5, 0.95, 3), 1e-5);
      expect_forward_matches_to_dense(random_dense<float>(in, 40, 8, 0, 1.0, 0.07, 4), 1e-5);
      expect_forward_matches_to_dense(random_dense<float>(in, 23, 8, 5, 0.7, 0.2, 5), 1e-5);
    }
  });
}

TEST(smartdeal_dense, exponent_coded_forward_equals_the_float_coefficient_forward) {
  // Float segments of 8 run from int8 exponent codes; parameters() sets them aside until
  // after_update(), and the float coefficients must then give the same outputs.
  slimnn::testing::for_each_isa([](isa) {
    for (const int max_exponent : {0, 3, -20}) {
      SCOPED_TRACE(max_exponent);
      const index_t in = 200, out = 64, S = (in + 7) / 8;
      auto coefficients = random_coefficients(out, S * 8, 8, 0.6, 0.9, 7);
      coefficients *= std::ldexp(1.0, max_exponent);  // exponents max - 4 .. max
      const matrix<float> basis = random_matrix<float>(8, 8, 3);
      smartdeal_dense<float> layer(smartdeal_matrix<float>(out, in, 8, 0, pow2_quantizer::with_bits(4, max_exponent),
                                                           basis, coefficients),
                                   random_matrix<float>(out, 1, 9).col(0));
      ASSERT_TRUE(layer.factors().segment_layout());
      const matrix<float> x = random_matrix<float>(in, 1, 5);
      matrix<float> coded, plain, again;
      layer.forward(x, coded);
      auto params = layer.parameters();
      layer.forward(x, plain);
      EXPECT_EQ(coded, plain);
      // A coefficient changed through parameters() shows at once, and after after_update().
      float* c = params[1].value;
      index_t k = 0;
      while (c[k] == 0.0f || std::abs(c[k]) > std::ldexp(1.0f, max_exponent - 1)) ++k;  // doubled, still in range
      c[k] *= 2.0f;
      layer.forward(x, plain);
      EXPECT_NE(plain, coded);
      layer.after_update();
      layer.forward(x, again);
      EXPECT_EQ(again, plain);
      expect_forward_matches_to_dense(layer, 1e-5);
    }
  });
}

TEST(smartdeal_conv2d, forward_equals_conv2d_with_to_dense_weights) {
  // Stride 1 transforms whole input rows, other strides im2col rows: every kernel size,
  // padding, basis group count and coefficient layout, against the dense convolution.
  for (const index_t kernel : {1, 3, 5})
    for (const index_t stride : {1, 2})
      for (const index_t padding : {0, 1, 2})
        for (const auto& [segments, elements] : {std::pair{0.7, 0.7}, std::pair{0.9, 0.2}}) {
          const shape in{3, 7, 6};
          const conv2d_config config{.out_channels = 5, .kernel = kernel, .stride = stride, .padding = padding};
          const smartdeal_conv2d<double> layer(
              in, config, random_factors<double>(5, 3 * kernel * kernel, kernel, 2, segments, elements, 9),
              random_matrix<double>(5, 1, 3).col(0));
          conv2d<double> reference(in, config);
          reference.weight() = layer.factors().to_dense().transpose();
          reference.bias() = layer.bias();
          const auto x = random_matrix<double>(in.size(), 3, 4);
          matrix<double> y, expected;
          layer.forward(x, y);
          reference.forward(x, expected);
          EXPECT_LT(slimnn::testing::relative_error(y, expected), 1e-13)
              << "kernel " << kernel << ", stride " << stride << ", padding " << padding << ", "
              << (layer.factors().segment_layout() ? "segment" : "element") << " layout";
        }
}

TEST(smartdeal_conv2d, float_forward_matches_double_on_every_path) {
  for (const double elements : {0.7, 0.2}) {  // segment and element layouts
    const shape in{16, 11, 13};
    const conv2d_config config{.out_channels = 20, .kernel = 3, .padding = 1};
    const smartdeal_conv2d<float> layer(in, config, random_factors<float>(20, 16 * 9, 3, 8, 0.6, elements, 5),
                                        random_matrix<float>(20, 1, 6).col(0));
    conv2d<double> reference(in, config);
    reference.weight() = layer.factors().to_dense().transpose();
    reference.bias() = layer.bias().cast<double>();
    const auto x = random_matrix<float>(in.size(), 2, 7);
    matrix<double> expected;
    reference.forward(x.cast<double>(), expected);
    slimnn::testing::for_each_isa([&](isa) {
      matrix<float> y;
      layer.forward(x, y);
      EXPECT_LT(slimnn::testing::relative_error(y.cast<double>(), expected), 1e-5) << "elements " << elements;
    });
  }
}

// --- decomposition -----------------------------------------------------------------------

TEST(smartdeal_decompose, recovers_exact_factors_with_a_diagonal_basis) {
  // W = Ce B with B diagonal (scales in the rounding window, not powers of two): the
  // alternating method starting from the identity finds Ce and B exactly.
  const index_t rows = 40, cols = 64, s = 8;
  const auto ce = random_coefficients(rows, cols, s, 1.0, 1.0, 21);
  matrix<double> b = matrix<double>::Zero(s, s);
  for (index_t j = 0; j < s; ++j) b(j, j) = 0.8 + 0.08 * double(j);
  const smartdeal_matrix<double> truth(rows, cols, s, 0, pow2_quantizer::with_bits(4, 0), b, ce);
  const matrix<double> w = truth.to_dense();
  const auto d = smartdeal_factorize<float>(w, {.basis_width = s, .iterations = 3});
  EXPECT_LT(d.relative_error, 1e-6);
  EXPECT_EQ(d.factors.element_density(), 1.0);
  EXPECT_EQ(d.factors.segment_density(), 1.0);
  EXPECT_EQ(matrix<double>(d.factors.coefficients()), matrix<double>(ce));
}

TEST(smartdeal_decompose, recovers_exact_factors_from_their_basis) {
  // A dense random basis and sparse power-of-two coefficients, several groups: started
  // from the true basis, the rounding and both refits are exact.
  const index_t rows = 30, cols = 45, s = 5;
  const smartdeal_matrix<double> truth = random_factors<double>(rows, cols, s, 0, 1.0, 0.7, 8);
  const auto d = smartdeal_factorize<double>(truth.to_dense(), {.basis_width = s, .iterations = 2}, truth.bases());
  EXPECT_LT(d.relative_error, 1e-10);
  EXPECT_EQ(d.factors.nonzeros(), truth.nonzeros());
  EXPECT_LT((d.factors.to_dense() - truth.to_dense()).cwiseAbs().maxCoeff(), 1e-10);
}

TEST(smartdeal_decompose, error_falls_as_threshold_falls_and_density_rises) {
  const matrix<double> w = random_matrix<double>(48, 80, 5);
  double previous = 2;
  for (double density : {0.1, 0.25, 0.5, 1.0}) {
    const auto d = smartdeal_factorize<float>(w, {.basis_width = 8, .segment_density = density});
    EXPECT_LT(d.relative_error, previous) << "segment density " << density;
    EXPECT_NEAR(d.factors.segment_density(), density, 0.01);
    EXPECT_LE(d.factors.element_density(), d.factors.segment_density());
    previous = d.relative_error;
  }
  EXPECT_LT(previous, 0.3);  // pow2 codes in an 8x8 basis, nothing pruned
  previous = 2;
  double density = 0;
  for (double threshold : {0.5, 0.3, 0.1, 0.0}) {
    const auto d = smartdeal_factorize<float>(w, {.basis_width = 8, .group_rows = 16,
                                                   .element_threshold = threshold});
    EXPECT_LT(d.relative_error, previous) << "threshold " << threshold;
    EXPECT_GT(d.factors.element_density(), density) << "threshold " << threshold;
    previous = d.relative_error;
    density = d.factors.element_density();
  }
}

TEST(smartdeal_decompose, converts_layers_and_reports_their_bytes) {
  rng_t rng(4);
  const dense<float> reference(100, 60, rng);
  const auto d = compress(reference, smartdeal_settings{.basis_width = 8, .segment_density = 0.25});
  EXPECT_EQ(d.report.stored_bytes, d.layer.cost().param_bytes);
  EXPECT_LT(d.report.relative_error, 1.0);
  EXPECT_EQ(d.layer.bias(), reference.bias());
  const auto c = d.layer.factors().coefficients();
  for (index_t k = 0; k < c.outerSize(); ++k)
    for (smartdeal_coefficients::InnerIterator it(c, k); it; ++it)
      EXPECT_EQ(std::abs(it.value()), std::ldexp(1.0, std::ilogb(it.value())));
  EXPECT_LE(d.layer.factors().quantizer().max_exponent(), 0);

  const conv2d<float> conv(shape{4, 8, 8}, {.out_channels = 6, .kernel = 3, .padding = 1}, rng);
  const auto dc = compress(conv, smartdeal_settings{.basis_width = 3, .segment_density = 0.5});
  EXPECT_EQ(dc.layer.output_shape(), conv.output_shape());
  EXPECT_NEAR(dc.report.figure("segment_density"), 0.5, 0.01);
  const double error = (dc.layer.factors().to_dense().transpose() - conv.weight().cast<double>()).norm() / conv.weight().cast<double>().norm();
  EXPECT_NEAR(error, dc.report.relative_error, 1e-6);
}

// --- storage ----------------------------------------------------------------------------

TEST(smartdeal_storage, codes_round_trip_exactly) {
  const auto q = pow2_quantizer::with_bits(4, 0);
  for (int code = 0; code < 32; ++code) EXPECT_EQ(q.encode(q.decode(std::uint8_t(code))), code);

  for (auto layer : {random_dense<float>(70, 13, 8, 4, 0.4, 0.8, 2), random_dense<float>(70, 13, 7, 0, 1.0, 0.2, 3)}) {
    const auto& f = layer.factors();
    const auto packed = f.pack();
    EXPECT_EQ(packed.bytes(), f.stored_bytes());
    EXPECT_EQ(layer.cost().param_bytes, f.stored_bytes() + 13 * sizeof(float));
    EXPECT_EQ(packed.codes.width(), 5);
    EXPECT_EQ(packed.codes.size(), std::size_t(f.nonzeros()));
    const auto back = smartdeal_matrix<float>::unpack(packed);
    EXPECT_EQ(matrix<double>(back.coefficients()), matrix<double>(f.coefficients()));
    EXPECT_EQ(back.bases(), f.bases());
    EXPECT_EQ(back.segment_layout(), f.segment_layout());
    const smartdeal_dense<float> rebuilt(back, layer.bias());
    const auto x = random_matrix<float>(70, 3);
    matrix<float> a, b;
    layer.forward(x, a);
    rebuilt.forward(x, b);
    EXPECT_EQ(a, b);
  }
}

TEST(smartdeal_storage, cost_counts_every_packed_byte) {
  // 16 rows, 32 inputs, s 8: 4 segments per row, every element nonzero.
  const auto layer = random_dense<float>(32, 16, 8, 0, 1.0, 1.0);
  const auto& f = layer.factors();
  ASSERT_EQ(f.kept_segments(), 64);
  ASSERT_EQ(f.nonzeros(), 512);
  // bases 8*8*4; counts 16 x 3 bits -> 6 bytes; indices 64 x 2 bits -> 16 bytes;
  // masks 512 bits -> 64 bytes; codes 512 x 5 bits -> 320 bytes; bias 16*4.
  EXPECT_EQ(layer.cost().param_bytes, 256u + 6u + 16u + 64u + 320u + 64u);
  EXPECT_EQ(layer.cost().param_bytes, slimnn::testing::file_tensor_bytes(layer));
  EXPECT_EQ(layer.cost().macs, 32u * 8u + 512u);
  EXPECT_EQ(layer.cost().mults, 32u * 8u);
}

// --- training ----------------------------------------------------------------------------

TEST(smartdeal_training, steps_keep_a_valid_smartdeal_layer) {
  auto layer = random_dense<float>(40, 12, 8, 0, 0.5, 0.7, 6);
  const auto mask_before = layer.factors().coefficients();
  sgd<float> opt({.learning_rate = 0.002f, .momentum = 0.f});
  const auto x = random_matrix<float>(40, 8, 1);
  const auto target = random_matrix<float>(12, 8, 2);
  matrix<float> y, dx;
  double first_loss = 0, loss = 0;
  for (int step = 0; step < 60; ++step) {
    layer.forward_train(x, y);
    loss = (y - target).squaredNorm();
    if (step == 0) first_loss = loss;
    layer.backward(y - target, dx);
    opt.step(layer);
    const auto c = layer.factors().coefficients();
    ASSERT_EQ(c.nonZeros(), mask_before.nonZeros());
    for (index_t k = 0; k < c.outerSize(); ++k) {
      smartdeal_coefficients::InnerIterator a(c, k), b(mask_before, k);
      for (; a && b; ++a, ++b) {
        ASSERT_EQ(a.col(), b.col());
        ASSERT_EQ(std::abs(a.value()), std::ldexp(1.0, std::ilogb(a.value())));
        ASSERT_GE(std::ilogb(a.value()), -15);
        ASSERT_LE(std::ilogb(a.value()), 0);
      }
    }
  }
  EXPECT_LT(loss, 0.5 * first_loss);
  // Some coefficients moved to another power of two through their latent values.
  EXPECT_NE(matrix<double>(layer.factors().coefficients()), matrix<double>(mask_before));
}

TEST(smartdeal_training, straight_through_accumulates_small_steps) {
  // One coefficient 2^-1, nudged up by 0.02 per step: it must reach 2^0 once its latent
  // value passes 0.75 (13 steps), not stay stuck at 2^-1.
  std::vector<Eigen::Triplet<double, std::int64_t>> one{{0, 1, 0.5}};
  smartdeal_coefficients c(1, 4);
  c.setFromTriplets(one.begin(), one.end());
  smartdeal_dense<double> layer(smartdeal_matrix<double>(1, 4, 4, 0, pow2_quantizer::with_bits(4, 0),
                                                         matrix<double>::Identity(4, 4), c),
                                vector<double>::Zero(1));
  auto params = layer.parameters();
  ASSERT_EQ(params[1].name, "coefficients");
  int steps = 0;
  while (layer.factors().coefficients().coeff(0, 1) == 0.5 && steps < 50) {
    for (index_t i = 0; i < params[1].size; ++i)
      if (params[1].value[i] != 0) params[1].value[i] += 0.02;
    layer.after_update();
    ++steps;
  }
  EXPECT_EQ(layer.factors().coefficients().coeff(0, 1), 1.0);
  EXPECT_EQ(steps, 13);
}

// --- errors ----------------------------------------------------------------------------

TEST(smartdeal_settings, bad_settings_raise_clear_messages) {
  const matrix<double> w = random_matrix<double>(8, 16);
  auto msg = [](const char* text) { return ThrowsMessage<config_error>(StrEq(text)); };
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.basis_width = 0}); },
              msg("slimnn: smartdeal: basis width must be >= 1, got 0"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.basis_width = 32}); },
              msg("slimnn: smartdeal: basis width 32 is larger than the 16 inputs of a row"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.group_rows = -2}); },
              msg("slimnn: smartdeal: rows per basis must be >= 0 (0 = one basis for all rows), got -2"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.code_bits = 9}); },
              msg("slimnn: smartdeal: code bits must be in 2..8 (sign + exponent), got 9"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.max_exponent = 40}); },
              msg("slimnn: smartdeal: max exponent must be in -32..32, got 40"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.element_threshold = 1.5}); },
              msg("slimnn: smartdeal: element threshold must be in [0, 1), got 1.5"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.segment_density = 0}); },
              msg("slimnn: smartdeal: segment density must be in (0, 1], got 0"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.segment_density = std::nan("")}); },
              msg("slimnn: smartdeal: segment density must be in (0, 1], got nan"));
  EXPECT_THAT([&] { smartdeal_factorize<float>(w, {.iterations = 0}); },
              msg("slimnn: smartdeal: iterations must be >= 1, got 0"));
  matrix<double> bad = w;
  bad(1, 2) = std::numeric_limits<double>::infinity();
  EXPECT_THAT([&] { smartdeal_factorize<float>(bad, {}); },
              msg("slimnn: smartdeal: the weights contain NaN or infinite values"));

  rng_t rng(1);
  const conv2d<float> conv(shape{2, 5, 5}, {.out_channels = 3, .kernel = 3}, rng);
  EXPECT_THAT([&] { compress(conv, smartdeal_settings{.basis_width = 8}); },
              msg("slimnn: smartdeal_conv2d<float>: basis width 8 must equal the kernel size 3"));

  std::vector<Eigen::Triplet<double, std::int64_t>> entries{{0, 1, 0.3}};
  smartdeal_coefficients c(2, 8);
  c.setFromTriplets(entries.begin(), entries.end());
  EXPECT_THAT([&] { smartdeal_matrix<float>(2, 8, 4, 0, pow2_quantizer::with_bits(4, 0), matrix<float>::Identity(4, 4), c); },
              msg("slimnn: smartdeal: coefficient 0.3 at (0, 1) is not a power of two in [2^-15, 2^0]"));
  EXPECT_THROW(smartdeal_matrix<float>(2, 8, 4, 0, pow2_quantizer::with_bits(4, 0), matrix<float>::Identity(3, 3), c),
               shape_error);
  EXPECT_THROW(smartdeal_dense<float>(random_factors<float>(4, 8, 4, 0, 1, 1), vector<float>::Zero(3)), shape_error);

  const auto layer = random_dense<float>(10, 4, 4, 0, 1, 1);
  matrix<float> y;
  EXPECT_THAT([&] { layer.forward(matrix<float>::Zero(9, 1), y); },
              ThrowsMessage<shape_error>(StrEq(
                  "slimnn: smartdeal_dense<float>, 10->4, s 4, 1 basis, segment density 1: expects 10 inputs, got 9 rows")));
}

// --- file format -------------------------------------------------------------------------

TEST(smartdeal_file, trained_layers_round_trip_and_store_packed_factors) {
  auto layer = random_dense<float>(40, 12, 8, 0, 0.5, 0.7, 6);
  sgd<float> opt({.learning_rate = 0.002f, .momentum = 0.f});
  matrix<float> y, dx;
  for (int step = 0; step < 5; ++step) {
    layer.forward_train(random_matrix<float>(40, 4, 1), y);
    layer.backward(y, dx);
    opt.step(layer);
  }
  slimnn::testing::expect_round_trip(layer);
  const auto file = slimnn::testing::saved(layer);
  const auto p = layer.factors().pack();
  EXPECT_EQ(file.tensors.at("basis").shape, (std::vector<std::uint64_t>{8, 8}));
  const auto& codes = file.tensors.at("codes").bytes;
  const auto packed = p.codes.to_bytes();
  EXPECT_TRUE(std::equal(codes.begin(), codes.end(), packed.begin(), packed.end(),
                         [](std::byte a, std::uint8_t b) { return std::uint8_t(a) == b; }));
  EXPECT_EQ(file.tensors.at("codes").type, dtype::u8);
  EXPECT_EQ(file.settings.at("min_exponent"), "-15");
  std::uint64_t bytes = 0;
  for (const auto& [name, t] : file.tensors) bytes += t.bytes.size();
  EXPECT_EQ(bytes, layer.cost().param_bytes);
}

TEST(smartdeal_file, corrupt_files_raise_format_error_naming_the_tensor) {
  using L = smartdeal_dense<float>;
  using slimnn::testing::load_saved;
  const auto msg = [](const std::string& text) { return ThrowsMessage<format_error>(StrEq("slimnn: edited: " + text)); };
  // Every segment kept (S = 3, 2-bit segment indices: row 0 holds 0, 1, 2); exponents -4..0
  // (5 levels in 3-bit fields, 4-bit codes).
  const smartdeal_dense<float> layer(
      smartdeal_matrix<float>(6, 21, 8, 0, pow2_quantizer(-4, 0), random_matrix<float>(8, 8, 3),
                              random_coefficients(6, 24, 8, 1.0, 0.9, 1)),
      random_matrix<float>(6, 1, 2).col(0));
  const auto good = slimnn::testing::saved(layer);
  auto f = good;
  auto& index = f.tensors.at("segment_index").bytes[0];
  index = std::byte((std::uint8_t(index) & ~3u) | 3u);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'segment_index': row 0: segment 3 is out of range 0..2"));
  index = std::byte((std::uint8_t(index) & ~3u) | 2u);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'segment_index': row 0: segments are not in ascending order"));
  f = good;
  auto& code = f.tensors.at("codes").bytes[0];
  code = std::byte((std::uint8_t(code) & 0xf0u) | 7u);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'codes': code 7 of nonzero 0 is outside the 5 exponents -4..0"));
  f = good;
  f.tensors.at("element_mask").bytes[0] = std::byte(0);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'element_mask': kept segment 0 has no nonzero element"));
  f = good;
  f.set<float>("basis", 5, std::numeric_limits<float>::quiet_NaN());
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'basis': contains NaN or infinite values"));
  f = good;
  f.settings["max_exponent"] = "200";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'max_exponent': 200 is out of range [-4, 123]"));
  f = good;
  f.settings["basis_width"] = "4";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'basis': shape [8, 8], expected [4, 4]"));
  f = good;
  f.tensors.at("codes").bytes.pop_back();
  f.tensors.at("codes").shape[0] -= 1;
  EXPECT_THAT([&] { load_saved<L>(f); }, ThrowsMessage<format_error>(::testing::HasSubstr("tensor 'codes': shape [")));
  // The convolution checks its factors against its geometry.
  auto conv = slimnn::testing::saved(random_conv<float>());
  conv.settings["out_channels"] = "5";
  EXPECT_THAT([&] { load_saved<smartdeal_conv2d<float>>(conv); }, msg("tensor 'basis': shape [3, 3], expected [3, 6]"));
}

}  // namespace
