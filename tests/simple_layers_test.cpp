// relu, flatten, max_pool2d and avg_pool2d.
#include <gmock/gmock.h>

#include "conformance.hpp"
#include "kernel_paths.hpp"
#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

struct relu_case {
  template <class T>
  static relu<T> make() { return relu<T>(shape{2, 3, 3}); }
};
struct flatten_case {
  template <class T>
  static flatten<T> make() { return flatten<T>(shape{2, 3, 4}); }
};
struct max_pool_case {
  template <class T>
  static max_pool2d<T> make() { return max_pool2d<T>(shape{2, 6, 5}, 2); }
};
struct max_pool_overlap_case {
  template <class T>
  static max_pool2d<T> make() { return max_pool2d<T>(shape{1, 7, 7}, 3, 2); }
};
struct avg_pool_case {
  template <class T>
  static avg_pool2d<T> make() { return avg_pool2d<T>(shape{3, 4, 6}, 2); }
};
using simple_cases =
    ::testing::Types<relu_case, flatten_case, max_pool_case, max_pool_overlap_case, avg_pool_case>;
INSTANTIATE_TYPED_TEST_SUITE_P(simple, conformance, simple_cases);

TEST(relu, clamps_negatives) {
  const relu<float> layer(shape::flat(4));
  matrix<float> x(4, 1), y;
  x << -1, 0, 2, -3;
  layer.forward(x, y);
  EXPECT_EQ(y, (matrix<float>(4, 1) << 0, 0, 2, 0).finished());
}

TEST(pool2d, max_and_average_of_windows) {
  // one channel, 4x4 ramp 0..15, 2x2 windows
  matrix<float> x(16, 1);
  for (int i = 0; i < 16; ++i) x(i, 0) = float(i);
  matrix<float> y;
  max_pool2d<float>(shape{1, 4, 4}, 2).forward(x, y);
  EXPECT_EQ(y, (matrix<float>(4, 1) << 5, 7, 13, 15).finished());
  avg_pool2d<float>(shape{1, 4, 4}, 2).forward(x, y);
  EXPECT_EQ(y, (matrix<float>(4, 1) << 2.5, 4.5, 10.5, 12.5).finished());
}

TEST(pool2d, max_2x2_inference_equals_training_forward_on_every_path) {
  // forward runs kernels/pool.hpp; forward_train the loop that records positions.
  max_pool2d<float> pool(shape{3, 10, 9}, 2);
  const matrix<float> x = slimnn::testing::random_matrix<float>(pool.input_shape().size(), 3);
  matrix<float> trained;
  pool.forward_train(x, trained);
  slimnn::testing::for_each_isa([&](isa) {
    matrix<float> y;
    pool.forward(x, y);
    EXPECT_EQ(y, trained);
  });
}

TEST(pool2d, max_2x2_routes_each_gradient_to_the_first_maximum_of_its_window) {
  // Values from {0, 1, 2}: most windows hold ties. Odd height and width: the last row and
  // column are dropped (floor mode).
  const shape in{2, 5, 7};
  rng_t rng(3);
  std::uniform_int_distribution<int> level(0, 2);
  matrix<double> x(in.size(), 3);
  for (index_t i = 0; i < x.size(); ++i) x.data()[i] = level(rng);
  max_pool2d<double> pool(in, 2);
  matrix<double> y, dx;
  pool.forward_train(x, y);
  const matrix<double> dy = matrix<double>::Random(y.rows(), y.cols());
  pool.backward(dy, dx);
  matrix<double> want_y(y.rows(), y.cols()), want_dx = matrix<double>::Zero(x.rows(), x.cols());
  for (index_t b = 0; b < x.cols(); ++b)
    for (index_t c = 0; c < in.c; ++c)
      for (index_t oh = 0; oh < 2; ++oh)
        for (index_t ow = 0; ow < 3; ++ow) {
          index_t best = -1;
          for (index_t i = 0; i < 2; ++i)  // row-major scan: the first maximum wins
            for (index_t j = 0; j < 2; ++j) {
              const index_t at = (c * in.h + 2 * oh + i) * in.w + 2 * ow + j;
              if (best < 0 || x(at, b) > x(best, b)) best = at;
            }
          const index_t o = (c * 2 + oh) * 3 + ow;
          want_y(o, b) = x(best, b);
          want_dx(best, b) += dy(o, b);
        }
  EXPECT_EQ(y, want_y);
  EXPECT_EQ(dx, want_dx);
}

TEST(pool2d, floor_mode_output_shape_and_errors) {
  EXPECT_EQ(max_pool2d<float>(shape{3, 7, 5}, 2).output_shape(), (shape{3, 3, 2}));
  EXPECT_THAT([] { max_pool2d<float>(shape{1, 3, 3}, 4); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: max_pool2d: kernel 4 does not fit input 1x3x3")));
  EXPECT_THROW(avg_pool2d<float>(shape{1, 3, 3}, 0), config_error);
  EXPECT_THROW(relu<float>(shape{0, 1, 1}), config_error);
}

TEST(flatten, keeps_values_and_changes_shape) {
  const flatten<float> layer(shape{2, 2, 2});
  EXPECT_EQ(layer.output_shape(), shape::flat(8));
  const auto x = random_matrix<float>(8, 2);
  matrix<float> y;
  layer.forward(x, y);
  EXPECT_EQ(y, x);
}

}  // namespace
