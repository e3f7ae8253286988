#include "slimnn/layers/conv2d.hpp"

#include <gmock/gmock.h>

#include "conformance.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

template <index_t C, index_t H, index_t W, index_t N, index_t K, index_t S, index_t P>
struct conv_case {
  template <class T>
  static conv2d<T> make() {
    rng_t rng(11);
    conv2d<T> layer(shape{C, H, W}, {.out_channels = N, .kernel = K, .stride = S, .padding = P}, rng);
    layer.bias() = random_matrix<T>(N, 1, 12);
    return layer;
  }
};
using conv_cases = ::testing::Types<conv_case<2, 5, 6, 3, 3, 1, 1>, conv_case<3, 7, 5, 2, 3, 2, 0>,
                                    conv_case<1, 4, 4, 2, 1, 1, 0>, conv_case<2, 6, 6, 2, 2, 2, 1>>;
INSTANTIATE_TYPED_TEST_SUITE_P(conv2d, conformance, conv_cases);

/// Direct convolution from the definition, in double.
matrix<double> naive_conv(const conv2d<float>& layer, const matrix<float>& x) {
  const auto in = layer.input_shape();
  const auto out = layer.output_shape();
  const index_t k = layer.kernel(), s = layer.stride(), p = layer.padding();
  matrix<double> y(out.size(), x.cols());
  for (index_t b = 0; b < x.cols(); ++b)
    for (index_t n = 0; n < out.c; ++n)
      for (index_t oh = 0; oh < out.h; ++oh)
        for (index_t ow = 0; ow < out.w; ++ow) {
          double acc = layer.bias()[n];
          for (index_t c = 0; c < in.c; ++c)
            for (index_t i = 0; i < k; ++i)
              for (index_t j = 0; j < k; ++j) {
                const index_t ih = oh * s + i - p, iw = ow * s + j - p;
                if (ih < 0 || iw < 0 || ih >= in.h || iw >= in.w) continue;
                acc += double(layer.weight_at(n, c, i, j)) * double(x((c * in.h + ih) * in.w + iw, b));
              }
          y((n * out.h + oh) * out.w + ow, b) = acc;
        }
  return y;
}

TEST(conv2d, forward_matches_direct_convolution) {
  struct setting { index_t c, h, w, n, k, s, p; };
  for (const auto& t : {setting{1, 28, 28, 4, 3, 1, 1}, setting{3, 9, 7, 5, 3, 2, 1},
                        setting{4, 6, 6, 3, 5, 1, 2}, setting{2, 8, 8, 2, 2, 2, 0}}) {
    rng_t rng(5);
    conv2d<float> layer(shape{t.c, t.h, t.w}, {.out_channels = t.n, .kernel = t.k, .stride = t.s, .padding = t.p},
                        rng);
    layer.bias() = random_matrix<float>(t.n, 1, 9);
    const auto x = random_matrix<float>(layer.input_shape().size(), 3, 4);
    matrix<float> y;
    layer.forward(x, y);
    const auto expected = naive_conv(layer, x);
    EXPECT_LT((y.cast<double>() - expected).cwiseAbs().maxCoeff(), 1e-4)
        << layer.settings();
  }
}

TEST(conv2d, output_shape_and_cost) {
  const conv2d<float> layer(shape{128, 28, 28}, {.out_channels = 128, .kernel = 3, .padding = 1});
  EXPECT_EQ(layer.output_shape(), (shape{128, 28, 28}));
  EXPECT_EQ(layer.cost().macs, 128u * 128u * 9u * 28u * 28u);
  EXPECT_EQ(layer.cost().param_bytes, (128u * 128u * 9u + 128u) * 4u);
  const conv2d<float> strided(shape{3, 9, 9}, {.out_channels = 2, .kernel = 3, .stride = 2});
  EXPECT_EQ(strided.output_shape(), (shape{2, 4, 4}));
  // Designated initialisers that leave padding at its default: GCC 12 with
  // -march=native on AVX-512 once made this 2x6x6 (see slimnn::native in CMakeLists.txt).
  const conv2d<float> halving(shape{3, 8, 8}, {.out_channels = 2, .kernel = 2, .stride = 2});
  EXPECT_EQ(halving.output_shape(), (shape{2, 4, 4}));
}

TEST(conv2d, rejects_impossible_settings) {
  EXPECT_THAT([] { conv2d<float>(shape{1, 4, 4}, {.out_channels = 2, .kernel = 0}); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: conv2d<float>: kernel must be >= 1, got 0")));
  EXPECT_THAT([] { conv2d<float>(shape{1, 4, 4}, {.out_channels = 2, .kernel = 7, .padding = 1}); },
              ::testing::ThrowsMessage<config_error>(::testing::StrEq(
                  "slimnn: conv2d<float>: kernel 7 does not fit input 1x4x4 with padding 1")));
  EXPECT_THROW(conv2d<float>(shape{1, 4, 4}, {.out_channels = 0}), config_error);
  EXPECT_THROW(conv2d<float>(shape{1, 4, 4}, {.out_channels = 1, .stride = 0}), config_error);
  EXPECT_THROW(conv2d<float>(shape{0, 4, 4}, {.out_channels = 1}), config_error);
}

TEST(conv2d, large_batch_spans_several_im2col_chunks) {
  rng_t rng(8);
  conv2d<float> layer(shape{16, 28, 28}, {.out_channels = 4, .kernel = 3, .padding = 1}, rng);
  const auto x = random_matrix<float>(layer.input_shape().size(), 40, 3);
  matrix<float> all, one;
  layer.forward(x, all);
  for (index_t b : {0, 17, 39}) {
    layer.forward(x.col(b), one);
    EXPECT_LT((one.col(0) - all.col(b)).cwiseAbs().maxCoeff(), 1e-5) << "sample " << b;
  }
}

}  // namespace
