#include "slimnn/kdconv/decomposition.hpp"

#include <gmock/gmock.h>

#include <limits>
#include <set>

#include "conformance.hpp"
#include "kernel_paths.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

conv2d<float> random_conv(shape in, index_t n, index_t k, index_t s, index_t p, std::uint64_t seed = 5) {
  rng_t rng(seed);
  conv2d<float> conv(in, {.out_channels = n, .kernel = k, .stride = s, .padding = p}, rng);
  conv.bias() = random_matrix<float>(n, 1, seed + 1);
  return conv;
}

/// A decomposed layer from random parts (independent of the SVD): the same values for
/// float and double. Float basis and coefficients, so finite differences see every change.
template <class T>
kdconv_conv2d<T> random_layer(shape in, index_t n, index_t k, index_t s, index_t p, kdconv_settings st,
                                  std::uint64_t seed = 21) {
  const index_t M = st.bases, G = st.shared_basis ? 1 : in.c;
  rng_t rng(seed);
  std::bernoulli_distribution keep(st.density);
  kdconv_sparse_coefficients<T> coefficients;
  coefficients.row_start.push_back(0);
  std::vector<T> values;
  const auto random_values = random_matrix<double>(n, in.c * M, seed + 1);
  for (index_t o = 0; o < n; ++o) {
    for (index_t col = 0; col < in.c * M; ++col)
      if (keep(rng)) {
        coefficients.column.push_back(std::int32_t(col));
        values.push_back(T(random_values(o, col)));
      }
    coefficients.row_start.push_back(std::int32_t(coefficients.column.size()));
  }
  coefficients.value = Eigen::Map<const vector<T>>(values.data(), index_t(values.size()));
  return kdconv_conv2d<T>({in, k, s, p}, n, st, random_matrix<T>(k * k, G * M, seed + 2), std::move(coefficients),
                              random_matrix<T>(n, 1, seed + 3).col(0));
}

template <index_t C, index_t H, index_t W, index_t N, index_t K, index_t S, index_t P, index_t M, bool Shared>
struct kdconv_case {
  template <class T>
  static kdconv_conv2d<T> make() {
    return random_layer<T>(shape{C, H, W}, N, K, S, P,
                           {.bases = M, .shared_basis = Shared, .density = 0.5, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32,
                            .train_basis = true});
  }
};
using kdconv_cases = ::testing::Types<kdconv_case<3, 7, 6, 4, 3, 1, 1, 4, false>, kdconv_case<2, 9, 8, 3, 3, 2, 0, 2, true>,
                                      kdconv_case<2, 5, 19, 3, 3, 2, 1, 9, false>, kdconv_case<1, 6, 6, 2, 1, 1, 0, 1, false>>;
INSTANTIATE_TYPED_TEST_SUITE_P(kdconv, conformance, kdconv_cases);

/// W[n][c][i][j] = sum_m A[n, c, m] * B[g(c), m][i][j] and the direct convolution with it, in double.
template <class T>
matrix<double> reference_forward(const kdconv_conv2d<T>& layer, const matrix<T>& x) {
  const auto& g = layer.geometry();
  const auto out = layer.output_shape();
  const index_t k = g.kernel, s = g.stride, p = g.padding, M = layer.bases();
  const matrix<double> basis = layer.basis_used().template cast<double>();
  matrix<double> y(out.size(), x.cols());
  for (index_t b = 0; b < x.cols(); ++b)
    for (index_t n = 0; n < out.c; ++n)
      for (index_t oh = 0; oh < out.h; ++oh)
        for (index_t ow = 0; ow < out.w; ++ow) {
          double acc = double(layer.bias()[n]);
          for (index_t c = 0; c < g.in.c; ++c)
            for (index_t m = 0; m < M; ++m) {
              const double a = double(layer.coefficient(n, c, m));
              if (a == 0) continue;
              const index_t col = (layer.config().shared_basis ? 0 : c) * M + m;
              for (index_t i = 0; i < k; ++i)
                for (index_t j = 0; j < k; ++j) {
                  const index_t ih = oh * s + i - p, iw = ow * s + j - p;
                  if (ih < 0 || iw < 0 || ih >= g.in.h || iw >= g.in.w) continue;
                  acc += a * basis(i * k + j, col) * double(x((c * g.in.h + ih) * g.in.w + iw, b));
                }
            }
          y((n * out.h + oh) * out.w + ow, b) = acc;
        }
  return y;
}

TEST(kdconv, both_orders_match_the_reconstructed_dense_conv) {
  struct setting { index_t c, h, w, n, k; };
  slimnn::testing::for_each_isa([](isa) {
    for (const auto& t : {setting{3, 9, 17, 5, 3}, setting{4, 12, 33, 7, 3}, setting{2, 7, 7, 3, 5}})
      for (index_t stride : {1, 2})
        for (index_t pad : {0, 1})
          for (bool shared : {false, true})
            for (index_t band : {0, 1, 2})
              for (index_t group : {1, 3}) {  // 3: blocks of 3 output channels share columns
                const auto conv = random_conv(shape{t.c, t.h, t.w}, t.n, t.k, stride, pad);
                const auto d = compress(conv, kdconv_settings{.bases = 4, .shared_basis = shared, .density = 0.4,
                                                        .group_size = group, .coefficients = kdconv_coefficient_format::pow2,
                                                        .coefficient_bits = 5, .band_rows = band});
                const auto x = random_matrix<float>(conv.input_shape().size(), 2, 7);
                const auto expected = reference_forward(d.layer, x);
                // The response buffer (per-thread scratch slot 0) starts full of NaN: an output
                // that combines a response position this forward did not write comes out NaN.
                const auto poison_responses = [&](kdconv_dataflow order) {
                  const auto values = index_t(d.layer.peak_intermediate_bytes(order) / sizeof(float));
                  slimnn::detail::scratch<kdconv_conv2d<float>, float, 0>(values, 1)
                      .setConstant(std::numeric_limits<float>::quiet_NaN());
                };
                matrix<float> streamed, materialised;
                poison_responses(kdconv_dataflow::basis_first);
                d.layer.forward(x, streamed);
                poison_responses(kdconv_dataflow::materialised);
                d.layer.forward(x, materialised, kdconv_dataflow::materialised);
                const std::string where = d.layer.settings() + ", band " + std::to_string(band);
                if (group > 1) {
                  EXPECT_EQ(d.layer.column()[0], d.layer.column()[std::size_t(d.layer.row_start()[1])]) << where;
                }
                EXPECT_LT(slimnn::testing::relative_error(streamed.cast<double>(), expected), 1e-5) << where;
                EXPECT_LT(slimnn::testing::relative_error(materialised.cast<double>(), expected), 1e-5) << where;
              }
  });
}

/// A layer wide enough for several column chunks of the sparse stage (128 columns in float,
/// 64 in double): 70 channels x 4 bases, 9 output channels. Channel 0 has no nonzero,
/// channel 1 one in the last column, channels 2-4 share their columns (a row block), the
/// others are random.
template <class T>
kdconv_conv2d<T> wide_layer(kdconv_settings st) {
  const shape in{70, 5, 6};
  const index_t N = 9, columns = in.c * st.bases;
  rng_t rng(3);
  std::bernoulli_distribution keep(0.3);
  std::uniform_real_distribution<double> value(-1, 1);
  const auto random_columns = [&] {
    std::vector<std::int32_t> out;
    for (index_t col = 0; col < columns; ++col)
      if (keep(rng)) out.push_back(std::int32_t(col));
    return out;
  };
  const auto shared = random_columns();
  kdconv_sparse_coefficients<T> a;
  a.row_start.push_back(0);
  std::vector<T> values;
  for (index_t n = 0; n < N; ++n) {
    const auto row = n == 0 ? std::vector<std::int32_t>{}
                     : n == 1 ? std::vector<std::int32_t>{std::int32_t(columns - 1)}
                     : n <= 4 ? shared
                              : random_columns();
    for (const std::int32_t col : row) {
      a.column.push_back(col);
      values.push_back(T(value(rng)));
    }
    a.row_start.push_back(std::int32_t(a.column.size()));
  }
  a.value = Eigen::Map<const vector<T>>(values.data(), index_t(values.size()));
  return kdconv_conv2d<T>({in, 3, 1, 1}, N, st, random_matrix<T>(9, in.c * st.bases, 4), std::move(a),
                              random_matrix<T>(N, 1, 5).col(0));
}

template <class T>
void expect_both_orders_match_reference(const kdconv_conv2d<T>& layer, double tolerance) {
  const auto x = random_matrix<T>(layer.input_shape().size(), 2, 6);
  const auto expected = reference_forward(layer, x);
  matrix<T> streamed, materialised;
  layer.forward(x, streamed);
  layer.forward(x, materialised, kdconv_dataflow::materialised);
  EXPECT_LT(slimnn::testing::relative_error(streamed.template cast<double>(), expected), tolerance);
  EXPECT_LT(slimnn::testing::relative_error(materialised.template cast<double>(), expected), tolerance);
}

TEST(kdconv, sparse_stage_matches_the_reference_across_column_chunks) {
  slimnn::testing::for_each_isa([](isa) {
    expect_both_orders_match_reference(wide_layer<float>({.bases = 4, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32}), 1e-5);
    expect_both_orders_match_reference(wide_layer<double>({.bases = 4, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32}), 1e-12);
    expect_both_orders_match_reference(wide_layer<float>({.bases = 4, .coefficients = kdconv_coefficient_format::float32, .band_rows = 1}), 1e-5);
  });
}

TEST(kdconv, forward_follows_coefficient_changes) {
  // float32 coefficients are the parameters: forward sees a change at once.
  auto layer = wide_layer<float>({.bases = 4, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  auto coefficients = layer.parameters()[0];
  for (index_t e = 0; e < coefficients.size; ++e) coefficients.value[e] = 0.5f - coefficients.value[e];
  expect_both_orders_match_reference(layer, 1e-5);
  // Quantized coefficients: forward sees the codes after_update() makes.
  auto pow2 = wide_layer<float>({.bases = 4, .coefficients = kdconv_coefficient_format::pow2});
  const vector<float> before = pow2.coef_used();
  coefficients = pow2.parameters()[0];
  for (index_t e = 0; e < coefficients.size; ++e) coefficients.value[e] *= -3;
  pow2.after_update();
  EXPECT_NE(pow2.coef_used(), before);
  expect_both_orders_match_reference(pow2, 1e-5);
}

TEST(kdconv, double_layer_matches_reference_tightly) {
  const auto layer = random_layer<double>(shape{3, 11, 21}, 6, 3, 1, 1, {.bases = 5, .density = 0.3, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  const auto x = random_matrix<double>(layer.input_shape().size(), 3, 9);
  matrix<double> y;
  layer.forward(x, y);
  EXPECT_LT(slimnn::testing::relative_error(y, reference_forward(layer, x)), 1e-12);
  layer.forward(x, y, kdconv_dataflow::materialised);
  EXPECT_LT(slimnn::testing::relative_error(y, reference_forward(layer, x)), 1e-12);
}

TEST(kdconv, full_rank_without_pruning_reproduces_the_original_conv) {
  for (bool shared : {false, true})
    for (int basis_bits : {0, 8}) {
      const auto conv = random_conv(shape{4, 10, 10}, 6, 3, 1, 1);
      const auto d = compress(conv, kdconv_settings{.bases = 9, .shared_basis = shared, .basis_bits = basis_bits, .coefficients = kdconv_coefficient_format::float32});
      EXPECT_EQ(d.layer.nonzeros(), 6 * 4 * 9);
      EXPECT_LT(d.report.relative_error, 1e-5) << d.report.str();
      const auto x = random_matrix<float>(conv.input_shape().size(), 2, 3);
      matrix<float> y, expected;
      d.layer.forward(x, y);
      conv.forward(x, expected);
      EXPECT_LT(slimnn::testing::relative_error(y, expected), 1e-5) << d.layer.settings();
      const auto dense = d.layer.to_reference();
      EXPECT_LT((dense.weight() - conv.weight()).cwiseAbs().maxCoeff(), 1e-5);
    }
}

TEST(kdconv, basis_is_the_leading_singular_subspace) {
  // A rank-2 layer: each channel's kernels span two fixed 3x3 patterns, so M = 2 is exact.
  const index_t C = 3, N = 5;
  conv2d<float> conv(shape{C, 6, 6}, {.out_channels = N, .kernel = 3, .padding = 1});
  const auto patterns = random_matrix<float>(9, 2 * C, 4), mix = random_matrix<float>(N, 2 * C, 5);
  for (index_t n = 0; n < N; ++n)
    for (index_t c = 0; c < C; ++c)
      conv.weight().col(n).segment(c * 9, 9) = mix(n, 2 * c) * patterns.col(2 * c) + mix(n, 2 * c + 1) * patterns.col(2 * c + 1);
  const auto d = compress(conv, kdconv_settings{.bases = 2, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  EXPECT_LT(d.report.figure("basis_error"), 1e-6);
  EXPECT_LT(d.report.relative_error, 1e-6);
  // The basis columns are orthonormal.
  for (index_t c = 0; c < C; ++c) {
    const matrix<float> b = d.layer.basis_used().middleCols(2 * c, 2);
    EXPECT_LT((b.transpose() * b - matrix<float>::Identity(2, 2)).cwiseAbs().maxCoeff(), 1e-5);
  }
  // One basis for all channels cannot be exact here: its error is larger.
  const auto shared = compress(conv, kdconv_settings{.bases = 2, .shared_basis = true, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  EXPECT_GT(shared.report.figure("basis_error"), 1e-3);
}

/// A 1x1 conv with one input channel: the basis is [1] and A[n] = W[n], so pruning is visible.
conv2d<float> pointwise(const std::vector<float>& weights) {
  conv2d<float> conv(shape{1, 2, 2}, {.out_channels = index_t(weights.size()), .kernel = 1});
  for (std::size_t n = 0; n < weights.size(); ++n) conv.weight()(0, index_t(n)) = weights[n];
  return conv;
}

std::vector<index_t> kept_outputs(const kdconv_conv2d<float>& layer) {
  std::vector<index_t> kept;
  for (index_t n = 0; n < layer.out_channels(); ++n)
    if (layer.coefficient(n, 0, 0) != 0) kept.push_back(n);
  return kept;
}

TEST(kdconv, pruning_ranks_by_absolute_value) {
  const auto conv = pointwise({-5.f, 0.1f, 4.f, -0.2f, 3.f, -6.f});
  const auto d = compress(conv, kdconv_settings{.bases = 1, .density = 0.5, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  EXPECT_THAT(kept_outputs(d.layer), ::testing::ElementsAre(0, 2, 5));
  EXPECT_FLOAT_EQ(d.layer.coefficient(5, 0, 0), -6.f);
  EXPECT_DOUBLE_EQ(d.report.figure("density"), 0.5);
  // std multiple: std of these values is ~3.9; 0.5 std keeps |a| > ~1.95.
  const auto by_std = compress(conv, kdconv_settings{.bases = 1, .std_multiple = 0.5, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  EXPECT_THAT(kept_outputs(by_std.layer), ::testing::ElementsAre(0, 2, 4, 5));
  // Groups of two output channels, scored by RMS: (-5, 0.1) 3.5, (4, -0.2) 2.8, (3, -6) 4.7.
  const auto grouped = compress(conv, kdconv_settings{.bases = 1, .density = 0.34, .group_size = 2, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  EXPECT_THAT(kept_outputs(grouped.layer), ::testing::ElementsAre(4, 5));
  EXPECT_GT(grouped.report.figure("pruned_error"), grouped.report.figure("basis_error"));
}

TEST(kdconv, density_is_met_and_errors_grow_with_each_step) {
  const auto conv = random_conv(shape{16, 16, 16}, 32, 3, 1, 1);
  const auto d = compress(conv, kdconv_settings{.bases = 6, .density = 0.1, .coefficients = kdconv_coefficient_format::pow2});
  EXPECT_EQ(d.layer.nonzeros(), std::llround(0.1 * 32 * 16 * 6));
  EXPECT_LE(d.report.figure("basis_error"), d.report.figure("pruned_error"));
  EXPECT_GT(d.report.relative_error, 0);
  EXPECT_LT(d.report.relative_error, 1);
  const std::uint64_t P = 256;
  EXPECT_EQ(d.report.macs, (16u * 6u * 9u + std::uint64_t(d.layer.nonzeros())) * P);
  EXPECT_EQ(d.report.dense_macs, 32u * 16u * 9u * P);
  EXPECT_GT(d.report.mac_ratio(), 3.5);
  EXPECT_GT(d.report.compression(), 10);
  EXPECT_EQ(d.layer.cost().mults, 16u * 6u * 9u * P);  // power-of-two coefficients are shifts
  EXPECT_LT(d.layer.peak_intermediate_bytes(kdconv_dataflow::basis_first),
            d.layer.peak_intermediate_bytes(kdconv_dataflow::materialised));
}

TEST(kdconv, pow2_coefficients_are_signed_powers_within_a_third) {
  const auto conv = random_conv(shape{8, 6, 6}, 16, 3, 1, 1);
  const auto d = compress(conv, kdconv_settings{.bases = 4, .density = 0.5, .coefficients = kdconv_coefficient_format::pow2,
                                          .coefficient_bits = 4});
  const auto& latent = d.layer.coefficients_latent();
  const auto& used = d.layer.coef_used();
  const double largest = latent.cwiseAbs().maxCoeff();
  const double smallest_power = std::ldexp(1.0, int(std::lround(std::log2(largest))) - 7);
  for (index_t e = 0; e < latent.size(); ++e) {
    const double v = latent[e], q = used[e];
    int exponent = 0;
    EXPECT_EQ(std::frexp(std::abs(q), &exponent), 0.5) << q;
    EXPECT_EQ(std::signbit(v), std::signbit(q));
    if (std::abs(v) >= smallest_power) EXPECT_LE(std::abs(q - v), std::abs(v) / 3 + 1e-7) << v << " -> " << q;
    else EXPECT_EQ(std::abs(q), smallest_power);
  }
}

TEST(kdconv, kmeans_coefficients_use_the_nearest_of_at_most_2_pow_bits_values) {
  const auto conv = random_conv(shape{8, 6, 6}, 16, 3, 1, 1);
  const auto d = compress(conv, kdconv_settings{.bases = 4, .density = 0.5, .coefficients = kdconv_coefficient_format::kmeans,
                                          .coefficient_bits = 3});
  const auto& latent = d.layer.coefficients_latent();
  const auto& used = d.layer.coef_used();
  const std::set<float> codebook(used.data(), used.data() + used.size());
  EXPECT_LE(codebook.size(), 8u);
  EXPECT_GE(codebook.size(), 2u);
  for (index_t e = 0; e < latent.size(); ++e)
    for (float centroid : codebook) EXPECT_LE(std::abs(used[e] - latent[e]), std::abs(centroid - latent[e]) + 1e-6f);
}

TEST(kdconv, basis_is_fixed_point_within_half_a_step) {
  const auto conv = random_conv(shape{4, 6, 6}, 8, 3, 1, 1);
  for (int bits : {4, 8}) {
    const auto d = compress(conv, kdconv_settings{.bases = 5, .basis_bits = bits, .coefficients = kdconv_coefficient_format::float32});
    for (index_t g = 0; g < d.layer.groups(); ++g) {
      const matrix<float> latent = d.layer.basis_latent().middleCols(g * 5, 5);
      const matrix<float> used = d.layer.basis_used().middleCols(g * 5, 5);
      const int qmax = (1 << (bits - 1)) - 1;
      const double step = std::ldexp(1.0, -int(std::floor(std::log2(qmax / double(latent.cwiseAbs().maxCoeff())))));
      for (index_t i = 0; i < latent.size(); ++i) {
        const double code = used.data()[i] / step;
        EXPECT_EQ(code, std::nearbyint(code));
        EXPECT_LE(std::abs(code), qmax);
        EXPECT_LE(std::abs(used.data()[i] - latent.data()[i]), step / 2 + 1e-7);
      }
    }
  }
}

TEST(kdconv, quantized_training_passes_gradients_straight_through) {
  const auto conv = random_conv(shape{3, 6, 6}, 4, 3, 1, 1);
  auto d = compress(conv, kdconv_settings{.bases = 3, .density = 0.6, .basis_bits = 8,
                                    .coefficients = kdconv_coefficient_format::pow2, .train_basis = true});
  auto& layer = d.layer;
  const auto x = random_matrix<float>(layer.input_shape().size(), 2, 3);
  const auto dy = random_matrix<float>(layer.output_shape().size(), 2, 4);
  matrix<float> y, dx;
  auto params = layer.parameters();
  ASSERT_EQ(params.size(), 3u);
  EXPECT_EQ(params[0].name, "coefficients");
  EXPECT_EQ(params[1].name, "basis");
  zero_grad(params);
  layer.forward_train(x, y);
  layer.backward(dy, dx);
  // The gradient of each used coefficient equals that of the reference conv's weights projected on its basis.
  auto dense = layer.to_reference();
  matrix<float> y_dense, dx_dense;
  dense.forward_train(x, y_dense);
  dense.backward(dy, dx_dense);
  EXPECT_LT(slimnn::testing::relative_error(dx, dx_dense), 1e-5);
  const matrix<float> dw = Eigen::Map<const matrix<float>>(dense.parameters()[0].grad, 27, 4);
  for (index_t n = 0; n < 4; ++n)
    for (std::int32_t e = layer.row_start()[n]; e < layer.row_start()[n + 1]; ++e) {
      const index_t c = layer.column()[e] / 3, m = layer.column()[e] % 3;
      const float expected = dw.col(n).segment(c * 9, 9).dot(layer.basis_used().col(c * 3 + m));
      EXPECT_NEAR(params[0].grad[e], expected, 1e-4f * std::max(1.f, std::abs(expected)));
    }
  // after_update() re-quantizes a changed latent value.
  params[0].value[0] = 3.1f;
  layer.after_update();
  EXPECT_EQ(std::abs(layer.coef_used()[0]), 4.f);
  params[1].value[0] = 0.3f;  // the basis too, when it is trained
  layer.after_update();
  EXPECT_NEAR(layer.basis_used()(0, 0), 0.3f, 1.f / 128);
}

TEST(kdconv, backward_accumulates_and_checks_its_input) {
  auto layer = random_layer<double>(shape{2, 5, 5}, 3, 3, 1, 1, {.bases = 3, .density = 0.7, .basis_bits = 0, .coefficients = kdconv_coefficient_format::float32});
  const auto x = random_matrix<double>(layer.input_shape().size(), 2, 2);
  const auto dy = random_matrix<double>(layer.output_shape().size(), 2, 3);
  matrix<double> y, dx;
  auto params = layer.parameters();
  EXPECT_EQ(params.size(), 2u);  // the basis is fixed unless train_basis
  zero_grad(params);
  layer.forward_train(x, y);
  layer.backward(dy, dx);
  const vector<double> once = Eigen::Map<vector<double>>(params[0].grad, params[0].size);
  layer.backward(dy, dx);
  EXPECT_LT((Eigen::Map<vector<double>>(params[0].grad, params[0].size) - 2 * once).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_THROW(layer.backward(matrix<double>::Zero(dy.rows(), 3), dx), shape_error);
}

TEST(kdconv, rejects_bad_settings_with_clear_messages) {
  using ::testing::StrEq;
  using ::testing::ThrowsMessage;
  const auto conv = random_conv(shape{2, 5, 5}, 3, 3, 1, 1);
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 0}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: bases must be in 1..9 for a 3x3 kernel, got 0")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 10}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: bases must be in 1..9 for a 3x3 kernel, got 10")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 4, .density = 0}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: density must be in (0, 1], got 0")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 4, .density = 1.5}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: density must be in (0, 1], got 1.5")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 4, .std_multiple = -1}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: std_multiple must be >= 0, got -1")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 4, .group_size = 4}); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: kdconv: group_size must be in 1..3 (the output channels), got 4")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.bases = 4, .basis_bits = 1}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: basis_bits must be 0 (float) or in 2..16, got 1")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.coefficients = kdconv_coefficient_format::pow2, .coefficient_bits = 1}); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: kdconv: pow2 coefficients need 2..8 bits (sign + exponent), got 1")));
  EXPECT_THAT([&] { compress(conv, kdconv_settings{.coefficients = kdconv_coefficient_format::kmeans, .coefficient_bits = 9}); },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv: kmeans coefficients need 1..8 bits, got 9")));
  // Inconsistent parts and inputs.
  kdconv_sparse_coefficients<float> bad{{0, 1, 1, 1}, {7}, vector<float>::Ones(1)};
  EXPECT_THAT([&] {
    kdconv_conv2d<float>({shape{2, 5, 5}, 3, 1, 1}, 3, {.bases = 2, .coefficients = kdconv_coefficient_format::float32}, matrix<float>::Zero(9, 4), bad,
                             vector<float>::Zero(3));
  },
              ThrowsMessage<config_error>(StrEq("slimnn: kdconv_conv2d<float>: coefficient columns of row 0 must "
                                                "be ascending and in 0..3")));
  EXPECT_THROW(kdconv_conv2d<float>({shape{2, 5, 5}, 3, 1, 1}, 3, {.bases = 2, .coefficients = kdconv_coefficient_format::float32}, matrix<float>::Zero(9, 3),
                                        kdconv_sparse_coefficients<float>{{0, 0, 0, 0}, {}, {}}, vector<float>::Zero(3)),
               shape_error);
  const auto d = compress(conv, kdconv_settings{.bases = 4, .density = 0.5, .coefficients = kdconv_coefficient_format::float32});
  matrix<float> y;
  EXPECT_THAT([&] { d.layer.forward(matrix<float>::Zero(7, 1), y); },
              ThrowsMessage<shape_error>(StrEq("slimnn: kdconv_conv2d<float>, 2->3, 3x3, stride 1, pad 1, m4, d0.5, "
                                               "basis 8-bit: expects input 2x5x5 (50 values), got 7 rows")));
}

// --- file format -------------------------------------------------------------------------

TEST(kdconv_file, quantized_formats_round_trip_to_identical_outputs) {
  const auto conv = random_conv(shape{3, 7, 6}, 5, 3, 1, 1);
  const std::vector<kdconv_settings> settings = {
      {.bases = 4, .density = 0.5, .basis_bits = 8, .coefficients = kdconv_coefficient_format::pow2, .coefficient_bits = 4},
      {.bases = 3, .shared_basis = true, .density = 0.7, .basis_bits = 6, .coefficients = kdconv_coefficient_format::kmeans,
       .coefficient_bits = 3},
      {.bases = 9, .std_multiple = 0.5, .group_size = 5, .basis_bits = 0, .coefficients = kdconv_coefficient_format::kmeans,
       .coefficient_bits = 1, .train_basis = true, .band_rows = 2},
      {.bases = 2, .density = 0.3, .basis_bits = 2, .coefficients = kdconv_coefficient_format::pow2, .coefficient_bits = 6,
       .train_basis = true},
  };
  for (const auto& st : settings) {
    SCOPED_TRACE(st.str());
    auto layer = compress(conv, st).layer;
    slimnn::testing::expect_round_trip(layer);
    for (const auto& p : layer.parameters())  // a training step: the latent values move
      for (index_t k = 0; k < p.size; ++k) p.value[k] *= 1.1f;
    layer.after_update();
    slimnn::testing::expect_round_trip(layer);
    const auto file = slimnn::testing::saved(layer);
    const auto back = slimnn::testing::load_saved<kdconv_conv2d<float>>(file);
    EXPECT_EQ(back.coef_used(), layer.coef_used());
    EXPECT_EQ(back.basis_used(), layer.basis_used());
    std::uint64_t bytes = 0;
    for (const auto& [name, t] : file.tensors) bytes += t.bytes.size();
    EXPECT_EQ(bytes, layer.stored_bytes());
    EXPECT_EQ(bytes, layer.cost().param_bytes);
  }
}

TEST(kdconv_file, corrupt_files_raise_format_error_naming_the_tensor) {
  using ::testing::HasSubstr;
  using ::testing::StrEq;
  using ::testing::ThrowsMessage;
  using L = kdconv_conv2d<float>;
  using slimnn::testing::load_saved;
  const auto msg = [](const std::string& text) { return ThrowsMessage<format_error>(StrEq("slimnn: edited: " + text)); };
  // C*M = 9 columns (4-bit indices), every coefficient kept: row 0 holds columns 0..8.
  const auto conv = random_conv(shape{3, 6, 6}, 4, 3, 1, 1);
  const auto kmeans = slimnn::testing::saved(
      compress(conv, kdconv_settings{.bases = 3, .density = 1, .basis_bits = 8, .coefficients = kdconv_coefficient_format::kmeans,
                               .coefficient_bits = 3}).layer);
  auto f = kmeans;
  auto& column = f.tensors.at("columns").bytes[0];
  column = std::byte((std::uint8_t(column) & 0xf0u) | 15u);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'columns': row 0: column 15 is out of range 0..8"));
  column = std::byte((std::uint8_t(column) & 0xf0u) | 1u);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'columns': row 0: columns are not in ascending order"));
  f = kmeans;
  f.set<std::int32_t>("row_start", 1, -1);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'row_start': offsets decrease at row 0 (0, then -1)"));
  f.set<std::int32_t>("row_start", 0, 1);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'row_start': starts at 1, not 0"));
  f = kmeans;
  f.set<std::int8_t>("basis_fraction_bits", 0, 100);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'basis_fraction_bits': group 0: 100 is out of range [-60, 60]"));
  f = kmeans;
  f.tensors.at("basis_codes").bytes[0] = std::byte(0xff);
  EXPECT_THAT([&] { load_saved<L>(f); },
              msg("tensor 'basis_codes': code 255 of value 0 is outside 0..254 (8-bit codes offset by 127)"));
  f = kmeans;
  auto& codebook = f.tensors.at("coefficient_codebook");
  codebook.shape = {2};
  codebook.bytes.resize(2 * sizeof(float));
  EXPECT_THAT([&] { load_saved<L>(f); },
              ThrowsMessage<format_error>(::testing::AllOf(HasSubstr("slimnn: edited: tensor 'coefficient_codes': code "),
                                                           HasSubstr(" is not below the 2 codebook values"))));
  f = kmeans;
  f.settings["coefficient_bits"] = "9";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'coefficient_bits': 9 is out of range [1, 8]"));
  f.settings["coefficients"] = "int4";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'coefficients': 'int4' is not float, pow2 or kmeans"));
  f = kmeans;
  f.settings["basis_bits"] = "1";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'basis_bits': 1 is neither 0 (float) nor in 2..16"));
  auto pow2 = slimnn::testing::saved(
      compress(conv, kdconv_settings{.bases = 3, .coefficients = kdconv_coefficient_format::pow2, .coefficient_bits = 4}).layer);
  pow2.settings["coefficient_max_exponent"] = "127";
  EXPECT_THAT([&] { load_saved<L>(pow2); }, msg("setting 'coefficient_max_exponent': 127 is out of range [-118, 126]"));
}

}  // namespace
