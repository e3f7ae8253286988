// network<T> (run time) and sequential<...> (compile time) over the same layers.
#include <gmock/gmock.h>

#include <thread>

#include "conformance.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/net/network.hpp"
#include "slimnn/net/sequential.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

template <class T>
auto make_cnn_layers() {
  rng_t rng(21);
  conv2d<T> conv(shape{1, 8, 8}, {.out_channels = 3, .kernel = 3, .padding = 1}, rng);
  relu<T> act(conv.output_shape());
  max_pool2d<T> pool(act.output_shape(), 2);
  flatten<T> flat(pool.output_shape());
  dense<T> head(flat.output_shape().size(), 4, rng);
  return std::make_tuple(conv, act, pool, flat, head);
}

template <class T>
network<T> make_network() {
  auto [conv, act, pool, flat, head] = make_cnn_layers<T>();
  network<T> net;
  net << conv << act << pool << flat << head;
  return net;
}

template <class T>
auto make_sequential() {
  auto [conv, act, pool, flat, head] = make_cnn_layers<T>();
  return sequential(conv, act, pool, flat, head);
}

struct network_case {
  template <class T>
  static network<T> make() { return make_network<T>(); }
};
struct sequential_case {
  template <class T>
  static auto make() { return make_sequential<T>(); }
};
using composition_cases = ::testing::Types<network_case, sequential_case>;
INSTANTIATE_TYPED_TEST_SUITE_P(composition, conformance, composition_cases);

TEST(composition, network_and_sequential_agree) {
  const auto net = make_network<float>();
  const auto seq = make_sequential<float>();
  const auto x = random_matrix<float>(64, 5);
  matrix<float> a, b;
  net.forward(x, a);
  seq.forward(x, b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(net.cost(), seq.cost());
}

TEST(composition, training_gradients_agree) {
  auto net = make_network<double>();
  auto seq = make_sequential<double>();
  const auto x = random_matrix<double>(64, 3);
  const auto dy = random_matrix<double>(4, 3, 9);
  matrix<double> y1, y2, dx1, dx2;
  net.forward_train(x, y1);
  seq.forward_train(x, y2);
  net.backward(dy, dx1);
  seq.backward(dy, dx2);
  EXPECT_LT((dx1 - dx2).cwiseAbs().maxCoeff(), 1e-12);
  const auto p1 = net.parameters(), p2 = seq.parameters();
  ASSERT_EQ(p1.size(), p2.size());
  for (std::size_t i = 0; i < p1.size(); ++i) {
    EXPECT_EQ(p1[i].name, p2[i].name);
    for (index_t j = 0; j < p1[i].size; ++j) EXPECT_DOUBLE_EQ(p1[i].grad[j], p2[i].grad[j]);
  }
  EXPECT_EQ(p1[0].name, "0.weight");
  EXPECT_EQ(p1.back().name, "4.bias");
}

TEST(composition, mismatched_layers_raise_naming_both_sides) {
  rng_t rng(1);
  network<float> net;
  net << dense<float>(784, 1024, rng) << relu<float>(shape::flat(1024));
  EXPECT_THAT([&] { net << dense<float>(512, 10, rng); },
              ::testing::ThrowsMessage<shape_error>(::testing::StrEq(
                  "slimnn: layer 2 (dense<float>, 512->10): expects 512 inputs, layer 1 (relu<float>, "
                  "1024) gives 1024")));
  EXPECT_EQ(net.size(), 2u);
  EXPECT_THAT(
      [&] { sequential(conv2d<float>(shape{1, 8, 8}, {.out_channels = 2}), dense<float>(72, 3)); },
      ::testing::ThrowsMessage<shape_error>(::testing::StrEq(
          "slimnn: layer 1 (dense<float>, 72->3): expects 72 inputs, layer 0 (conv2d<float>, 1->2, 3x3, "
          "stride 1, pad 0) gives 2x6x6 (72 values)")));
}

TEST(composition, empty_network_raises) {
  const network<float> net;
  matrix<float> y;
  EXPECT_THROW(net.forward(matrix<float>::Zero(3, 1), y), config_error);
}

struct frozen_layer {  // an inference-only Layer
  using scalar_type = float;
  shape input_shape() const { return shape::flat(2); }
  shape output_shape() const { return shape::flat(2); }
  std::string name() const { return "frozen"; }
  void forward(const_matrix_ref<float> x, matrix_view<float> y) const { y = 2 * x; }
  slimnn::cost cost() const { return {}; }
};
static_assert(Layer<frozen_layer> && !TrainableLayer<frozen_layer>);

TEST(composition, inference_only_layers_run_but_refuse_training) {
  network<float> net;
  net << frozen_layer{};
  matrix<float> y;
  net.forward(matrix<float>::Ones(2, 1), y);
  EXPECT_EQ(y, matrix<float>::Constant(2, 1, 2));
  EXPECT_FALSE(net[0].trainable());
  EXPECT_THAT([&] { net.forward_train(matrix<float>::Ones(2, 1), y); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: frozen: this layer is inference-only and cannot be trained")));
}

TEST(composition, networks_nest_and_copy_deeply) {
  const auto inner = make_network<float>();
  network<float> outer;
  outer << inner << relu<float>(shape::flat(4));
  const auto x = random_matrix<float>(64, 2);
  matrix<float> a, b;
  inner.forward(x, a);
  outer.forward(x, b);
  EXPECT_EQ(matrix<float>(a.cwiseMax(0.f)), b);
  network<float> copy = outer;
  copy[0].get<network<float>>()->operator[](4).get<dense<float>>()->bias().setConstant(100.f);
  matrix<float> c;
  outer.forward(x, c);
  EXPECT_EQ(b, c) << "copies must not share layers";
}

TEST(composition, assigning_a_layer_of_the_same_type_copies_in_place) {
  rng_t rng(2);
  any_layer<float> target = dense<float>(6, 3, rng), source = dense<float>(6, 3, rng);
  const float* storage = target.get<dense<float>>()->weight().data();
  target = source;
  EXPECT_EQ(target.get<dense<float>>()->weight(), source.get<dense<float>>()->weight());
  EXPECT_EQ(target.get<dense<float>>()->weight().data(), storage) << "same type, same size: storage reused";
  source.get<dense<float>>()->bias().setConstant(5.f);
  EXPECT_NE(target.get<dense<float>>()->bias(), source.get<dense<float>>()->bias()) << "still a copy";
  const any_layer<float> other = relu<float>(shape::flat(6));
  target = other;  // another type: cloned

  EXPECT_EQ(target.get<dense<float>>(), nullptr);
  EXPECT_NE(target.get<relu<float>>(), nullptr);
}

TEST(composition, concurrent_forward_through_a_network) {
  const auto net = make_network<float>();
  const auto x = random_matrix<float>(64, 3);
  matrix<float> expected;
  net.forward(x, expected);
  std::vector<int> bad(4, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      matrix<float> y;
      for (int r = 0; r < 20; ++r) {
        net.forward(x, y);
        bad[std::size_t(t)] += y != expected;
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[std::size_t(t)], 0);
}

}  // namespace
