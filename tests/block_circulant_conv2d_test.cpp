#include "slimnn/circulant/block_circulant_conv2d.hpp"

#include <gmock/gmock.h>

#include "conformance.hpp"
#include "kernel_paths.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;
using slimnn::testing::relative_error;

template <index_t C, index_t N, index_t K, index_t Stride, index_t Pad, index_t Block>
struct conv_case {
  template <class T>
  static block_circulant_conv2d<T> make() {
    rng_t rng(42);
    block_circulant_conv2d<T> layer(shape{C, 5, 6}, {.out_channels = N, .kernel = K, .stride = Stride, .padding = Pad},
                                    Block, rng);
    layer.bias() = random_matrix<T>(N, 1, 9);
    return layer;
  }
};
using cases = ::testing::Types<conv_case<6, 4, 3, 1, 1, 4>, conv_case<3, 5, 2, 2, 0, 3>, conv_case<4, 4, 3, 1, 1, 1>>;
INSTANTIATE_TYPED_TEST_SUITE_P(block_circulant_conv2d, conformance, cases);

/// Direct convolution in double with W[n][c][i][j] = c_{ib, jb, (i,j)}[(n - c) mod k],
/// built from the first-column definition without the library's expansion.
matrix<double> reference_conv(const block_circulant_conv2d<double>& layer, const matrix<double>& x) {
  const auto g = layer.geometry();
  const index_t k = layer.block(), p = layer.block_rows(), K = g.kernel, taps = K * K;
  const index_t C = g.in.c, N = layer.out_channels(), ho = g.out_h(), wo = g.out_w();
  const matrix<double> c = layer.first_columns();
  matrix<double> y(N * ho * wo, x.cols());
  for (index_t b = 0; b < x.cols(); ++b)
    for (index_t n = 0; n < N; ++n)
      for (index_t oh = 0; oh < ho; ++oh)
        for (index_t ow = 0; ow < wo; ++ow) {
          double s = layer.bias()[n];
          for (index_t ch = 0; ch < C; ++ch)
            for (index_t i = 0; i < K; ++i)
              for (index_t j = 0; j < K; ++j) {
                const index_t ih = oh * g.stride + i - g.padding, iw = ow * g.stride + j - g.padding;
                if (ih < 0 || ih >= g.in.h || iw < 0 || iw >= g.in.w) continue;
                const double w = c(((n % k) - (ch % k) + k) % k, n / k + p * ((ch / k) * taps + i * K + j));
                s += w * x((ch * g.in.h + ih) * g.in.w + iw, b);
              }
          y((n * ho + oh) * wo + ow, b) = s;
        }
  return y;
}

TEST(block_circulant_conv2d, forward_matches_direct_convolution_and_to_dense) {
  struct setting {
    index_t c, n, k, kernel, stride, pad;
  };
  for (const auto s : {setting{8, 8, 8, 3, 1, 1}, setting{5, 12, 4, 3, 1, 1}, setting{16, 6, 16, 1, 1, 0},
                       setting{7, 9, 3, 3, 2, 1}, setting{2, 3, 2, 2, 1, 0}, setting{4, 4, 1, 3, 1, 1},
                       setting{20, 40, 16, 3, 1, 1}}) {
    SCOPED_TRACE(detail::cat(s.c, "->", s.n, " k ", s.k, " kernel ", s.kernel, " stride ", s.stride));
    rng_t rng(std::uint64_t(s.c * 100 + s.n));
    const shape in{s.c, 7, 6};
    block_circulant_conv2d<double> layer(in, {.out_channels = s.n, .kernel = s.kernel, .stride = s.stride, .padding = s.pad},
                                         s.k, rng);
    layer.bias() = random_matrix<double>(s.n, 1, 3);
    for (index_t batch : {1, 3}) {
      const auto x = random_matrix<double>(in.size(), batch, 5);
      matrix<double> y, yd;
      layer.forward(x, y);
      EXPECT_LT(relative_error(y, reference_conv(layer, x)), 1e-12) << "batch " << batch;
      layer.to_reference().forward(x, yd);
      EXPECT_LT(relative_error(y, yd), 1e-12) << "batch " << batch;
    }
  }
}

TEST(block_circulant_conv2d, float_layer_matches_its_expansion_in_double) {
  // Stride 1 (shifted products) and 2 (im2col of the spectra), on every kernel path.
  for (const index_t stride : {1, 2}) {
    rng_t rng(2);
    const conv2d_config config{.out_channels = 64, .kernel = 3, .stride = stride, .padding = 1};
    const block_circulant_conv2d<float> layer(shape{32, 14, 14}, config, 8, rng);
    const conv2d<float> d = layer.to_reference();
    conv2d<double> dd(d.input_shape(), config);
    dd.weight() = d.weight().cast<double>();
    dd.bias() = d.bias().cast<double>();
    const auto x = random_matrix<float>(32 * 14 * 14, 2, 4);
    matrix<double> ref;
    dd.forward(x.cast<double>(), ref);
    slimnn::testing::for_each_isa([&](isa) {
      matrix<float> y;
      layer.forward(x, y);
      EXPECT_LT(relative_error(y.cast<double>(), ref), 2e-5) << "stride " << stride;
    });
  }
}

TEST(block_circulant_conv2d, projection_is_idempotent_and_block_one_is_the_reference) {
  rng_t rng(3);
  const conv2d<double> ref(shape{6, 5, 5}, {.out_channels = 10, .kernel = 3, .padding = 1}, rng);
  const auto once = compress(ref, block_circulant_settings{4}).layer;
  const auto twice = compress(once.to_reference(), block_circulant_settings{4}).layer;
  EXPECT_LT((once.to_reference().weight() - twice.to_reference().weight()).cwiseAbs().maxCoeff(), 1e-12);
  // per kernel position, each channel matrix is the dense projection of the original's
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 3; ++j) {
      matrix<double> a(10, 6), e(10, 6);
      for (index_t n = 0; n < 10; ++n)
        for (index_t ch = 0; ch < 6; ++ch) {
          a(n, ch) = ref.weight_at(n, ch, i, j);
          e(n, ch) = once.to_reference().weight_at(n, ch, i, j);
        }
      const matrix<double> pa = circulant_expand<double>(circulant_project<double>(a, 4), 10, 6, 4);
      EXPECT_LT((pa - e).cwiseAbs().maxCoeff(), 1e-12);
    }
  const auto identity = compress(ref, block_circulant_settings{1}).layer;
  EXPECT_LT((identity.to_reference().weight() - ref.weight()).cwiseAbs().maxCoeff(), 1e-15);
  const auto x = random_matrix<double>(6 * 25, 2, 1);
  matrix<double> a, b;
  identity.forward(x, a);
  ref.forward(x, b);
  EXPECT_LT(relative_error(a, b), 1e-12);
}

TEST(block_circulant_conv2d, fixed_point_error_decreases_with_bits) {
  rng_t rng(4);
  const block_circulant_conv2d<double> layer(shape{16, 6, 6}, {.out_channels = 16, .kernel = 3, .padding = 1}, 8, rng);
  const auto x = random_matrix<double>(16 * 36, 2, 5);
  matrix<double> exact;
  layer.forward(x, exact);
  double previous = 1e300;
  for (int bits : {8, 10, 12, 14, 16}) {
    auto q = layer;
    q.quantize_spectra(bits);
    matrix<double> y;
    q.forward(x, y);
    const double err = relative_error(y, exact);
    EXPECT_LT(err, previous) << bits << " bits";
    previous = err;
  }
}

TEST(block_circulant_conv2d, cost_and_settings) {
  const block_circulant_conv2d<float> layer(shape{32, 14, 14}, {.out_channels = 64, .kernel = 3, .padding = 1}, 8);
  const auto c = layer.cost();
  EXPECT_EQ(c.param_bytes, (8u * 4u * 9u * 8u + 64u) * 4u);
  EXPECT_EQ(c.macs, 196u * 8u * 4u * 9u * (4u * 3u + 2u));
  EXPECT_EQ(layer.settings(), "32->64, 3x3, stride 1, pad 1, block 8");
}

TEST(block_circulant_conv2d, rejects_bad_settings_with_clear_messages) {
  using ::testing::StrEq;
  using ::testing::ThrowsMessage;
  EXPECT_THAT([] { block_circulant_conv2d<float>(shape{32, 14, 14}, {.out_channels = 64, .kernel = 3}, 0); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: block_circulant_conv2d<float>: block size must be >= 1, got 0")));
  EXPECT_THAT([] { block_circulant_conv2d<float>(shape{1, 28, 28}, {.out_channels = 32, .kernel = 3}, 64); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: block_circulant_conv2d<float>: block size 64 is larger than both channel counts "
                        "(1 in, 32 out), so the channels cannot be blocked")));
  EXPECT_THAT([] { block_circulant_conv2d<float>(shape{4, 2, 2}, {.out_channels = 4, .kernel = 5}, 2); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: block_circulant_conv2d<float>: kernel 5 does not fit input 4x2x2 with padding 0")));
  const block_circulant_conv2d<float> layer(shape{4, 3, 3}, {.out_channels = 4, .kernel = 3, .padding = 1}, 2);
  matrix<float> y;
  EXPECT_THAT([&] { layer.forward(matrix<float>::Zero(35, 1), y); },
              ThrowsMessage<shape_error>(StrEq("slimnn: block_circulant_conv2d<float>, 4->4, 3x3, stride 1, pad 1, "
                                               "block 2: expects input 4x3x3 (36 values), got 35 rows")));
}

TEST(block_circulant_conv2d, file_round_trips_in_floating_and_fixed_point) {
  auto layer = conv_case<6, 4, 3, 1, 1, 4>::make<float>();  // p = 1, q = 2, 3x3 kernel
  layer.set_lr_scale(0.125f);
  const auto file = slimnn::testing::saved(layer);
  EXPECT_EQ(file.tensors.at("spectra").shape, (std::vector<std::uint64_t>{4, 2 * 9, 1}));  // [k, q*K*K, p]
  EXPECT_EQ(file.settings.at("input"), "6x5x6");
  slimnn::testing::expect_round_trip(layer);
  layer.quantize_spectra(8);
  slimnn::testing::expect_round_trip(layer);
  const auto back = slimnn::testing::load_saved<block_circulant_conv2d<float>>(slimnn::testing::saved(layer));
  EXPECT_EQ(back.spectrum_bits(), 8);
  EXPECT_EQ(back.lr_scale(), 0.125f);
}

TEST(block_circulant_conv2d, corrupt_files_raise_format_error_naming_the_tensor) {
  using ::testing::StrEq;
  using ::testing::ThrowsMessage;
  using L = block_circulant_conv2d<float>;
  const auto msg = [](const std::string& text) { return ThrowsMessage<format_error>(StrEq("slimnn: edited: " + text)); };
  const auto good = slimnn::testing::saved(conv_case<6, 4, 3, 1, 1, 4>::make<float>());
  auto f = good;
  f.tensors.at("spectra").shape = {4, 9, 2};
  EXPECT_THAT([&] { slimnn::testing::load_saved<L>(f); }, msg("tensor 'spectra': shape [4, 9, 2], expected [4, 18, 1]"));
  f = good;
  f.tensors.at("bias").shape = {2, 2};
  EXPECT_THAT([&] { slimnn::testing::load_saved<L>(f); }, msg("tensor 'bias': shape [2, 2], expected [4]"));
  f = good;
  f.settings["kernel"] = "8";
  EXPECT_THAT([&] { slimnn::testing::load_saved<L>(f); },
              msg("setting 'kernel': 8 does not fit input 6x5x6 with padding 1"));
  f = good;
  f.settings["block"] = "7";
  EXPECT_THAT([&] { slimnn::testing::load_saved<L>(f); }, msg("setting 'block': 7 is out of range [1, 6]"));
}

}  // namespace
