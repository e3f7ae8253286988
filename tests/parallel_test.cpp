// Inference on several threads (core/parallel.hpp): bit-identical results for any thread
// count, whether a batch is cut into blocks of columns or a layer's outputs into ranges;
// nesting runs inline; bad thread counts are refused. (Every layer kind is also checked
// on 2 and 3 threads by the conformance suite.)
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "slimnn/slimnn.hpp"
#include "test_util.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

/// y = f() with no pool, then with pools of 2 and 3 threads lent to the layer calls.
template <class F>
void expect_same_in_scope(F&& f, const char* what) {
  const auto expected = f();
  for (int threads : {2, 3}) {
    thread_pool pool(threads);
    parallel_scope scope(pool);
    EXPECT_TRUE(f() == expected) << what << " differs on " << threads << " threads";
  }
}

TEST(parallel_inference, large_dense_layer_cuts_its_rows_bit_identically) {
  rng_t rng(5);
  // 1000 rows (not a multiple of the 256-row cut) x 700 inputs: 3 ranges on 3 threads.
  const dense<float> layer(700, 1000, rng);
  const auto x = random_matrix<float>(700, 1, 2);
  expect_same_in_scope([&] {
    matrix<float> y;
    layer.forward(x, y);
    return y;
  }, "dense 700->1000 at batch 1");
  matrix<float> y;
  layer.forward(x, y);
  const matrix<double> reference = (layer.weight().cast<double>() * x.cast<double>()).colwise() + layer.bias().cast<double>();
  EXPECT_LT(slimnn::testing::relative_error(y.cast<double>(), reference), 1e-5);
}

TEST(parallel_inference, large_crew_layer_cuts_its_outputs_bit_identically) {
  rng_t rng(6);
  const dense<float> source(900, 1100, rng);
  for (const auto layout : {crew_index_layout::lanes, crew_index_layout::per_input}) {
    const auto layer = compress(source, crew_settings{.layout = layout}).layer;
    SCOPED_TRACE(describe(layer));
    auto int8_activations = layer;
    int8_activations.set_activations(crew_activations::int8);
    for (const index_t batch : {1, 3, 8, 19}) {
      const auto x = random_matrix<float>(900, batch, 3).cwiseMax(0.f).eval();  // relu-like: inactive inputs
      expect_same_in_scope([&] {
        matrix<float> y;
        layer.forward(x, y);
        return y;
      }, "crew forward");
      expect_same_in_scope([&] {
        matrix<float> y;
        int8_activations.forward(x, y);
        return y;
      }, "crew forward with int8 activations");
      const int8_matrix xq = layer.quantize_activations(x, 0.05f);
      expect_same_in_scope([&] {
        int32_matrix acc;
        layer.forward_int8(xq, acc);
        return acc;
      }, "crew forward_int8");
      int32_matrix acc;
      layer.forward_int8(xq, acc);
      EXPECT_TRUE(acc == (layer.codes().cast<std::int32_t>() * xq.cast<std::int32_t>()).eval());
    }
  }
}

network<float> mixed_network(rng_t& rng) {
  network<float> net;
  conv2d<float> conv(shape{2, 12, 12}, {.out_channels = 6, .kernel = 3, .padding = 1}, rng);
  max_pool2d<float> pool(conv.output_shape(), 2);
  dense<float> head(pool.output_shape().size(), 600, rng);
  net << conv << relu<float>(conv.output_shape()) << pool << flatten<float>(pool.output_shape()) << head
      << relu<float>(shape::flat(600)) << compress(dense<float>(600, 700, rng), crew_settings{}).layer << dense<float>(700, 10, rng);
  return net;
}

TEST(parallel_inference, network_is_bit_identical_on_any_thread_count) {
  rng_t rng(7);
  const auto net = mixed_network(rng);
  for (const index_t batch : {1, 2, 5, 31, 64, 77, 200}) {
    const auto x = random_matrix<float>(net.input_shape().size(), batch, std::uint64_t(batch));
    matrix<float> expected;
    net.forward(x, expected);
    for (int threads : {2, 3, 4}) {
      auto threaded = net;
      threaded.set_threads(threads);
      EXPECT_EQ(threaded.threads(), threads);
      matrix<float> y;
      threaded.forward(x, y);
      EXPECT_TRUE(y == expected) << "batch " << batch << ", " << threads << " threads";
      thread_pool pool(threads);
      matrix<float> z;
      net.forward(x, z, pool);  // per call
      EXPECT_TRUE(z == expected) << "batch " << batch << ", per-call pool of " << threads;
    }
  }
}

TEST(parallel_inference, sequential_is_bit_identical_on_any_thread_count) {
  rng_t rng(8);
  sequential net(dense<float>(64, 600, rng), relu<float>(shape::flat(600)), dense<float>(600, 900, rng));
  const auto x = random_matrix<float>(64, 96, 4);
  matrix<float> expected, y;
  net.forward(x, expected);
  net.set_threads(3);
  EXPECT_EQ(net.threads(), 3);
  net.forward(x, y);
  EXPECT_TRUE(y == expected);
  net.forward(x.leftCols(1), y);
  net.set_threads(1);
  matrix<float> single;
  net.forward(x.leftCols(1), single);
  EXPECT_TRUE(y == single);
}

TEST(parallel_inference, nested_and_concurrent_use_runs_inline_and_agrees) {
  rng_t rng(9);
  auto inner = mixed_network(rng);
  inner.set_threads(2);
  network<float> outer;
  outer << inner << relu<float>(shape::flat(10));
  outer.set_threads(2);
  const auto x = random_matrix<float>(outer.input_shape().size(), 70, 5);
  rng_t same_seed(9);
  network<float> serial;
  serial << mixed_network(same_seed) << relu<float>(shape::flat(10));
  matrix<float> expected, expected_b2;
  serial.forward(x, expected);
  serial.forward(x.leftCols(2), expected_b2);
  // Several caller threads share the outer pool (its runs take turns) and the inner one.
  std::vector<int> bad(3, 0);
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&, t] {
      matrix<float> y;
      for (int r = 0; r < 4; ++r) {
        outer.forward(r % 2 ? x : x.leftCols(2), y);
        bad[std::size_t(t)] += y != (r % 2 ? expected : expected_b2);
      }
    });
  for (auto& c : callers) c.join();
  for (int t = 0; t < 3; ++t) EXPECT_EQ(bad[std::size_t(t)], 0) << "caller " << t;
}

TEST(parallel_inference, bad_thread_counts_and_inputs_are_refused) {
  rng_t rng(10);
  network<float> net;
  net << dense<float>(8, 4, rng);
  for (int threads : {0, -2, 1025}) {
    try {
      net.set_threads(threads);
      ADD_FAILURE() << threads;
    } catch (const config_error& e) {
      EXPECT_EQ(std::string(e.what()), "slimnn: network: threads must be in [1, 1024], got " + std::to_string(threads));
    }
  }
  EXPECT_EQ(net.threads(), 1);
  thread_pool pool(2);
  matrix<float> y;
  try {
    net.forward(random_matrix<float>(9, 16), y, pool);
    ADD_FAILURE();
  } catch (const shape_error& e) {
    EXPECT_EQ(std::string(e.what()), "slimnn: dense<float>, 8->4: expects 8 inputs, got 9 rows");
  }
  try {
    parallel_forward(net[0], pool, random_matrix<float>(7, 16), y);
    ADD_FAILURE();
  } catch (const shape_error& e) {
    EXPECT_EQ(std::string(e.what()), "slimnn: dense<float>, 8->4: expects 8 inputs, got 7 rows");
  }
  sequential seq(dense<float>(8, 4, rng));
  try {
    seq.set_threads(0);
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()), "slimnn: sequential: threads must be in [1, 1024], got 0");
  }
}

}  // namespace
