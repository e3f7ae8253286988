// forward allocates nothing once warm: this translation unit replaces the global
// operator new / delete with counting versions, warms every layer kind (and networks of
// mixed layers, on 1 to 3 threads) up at a batch size, then requires that further
// forwards at that batch size make no allocation at all. Eigen's matrices take their
// memory from malloc, not operator new; their reuse is what the grow-only per-thread
// buffers (detail/scratch.hpp, detail/activation_buffers.hpp) provide.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "slimnn/slimnn.hpp"
#include "test_util.hpp"

// The replacements below take their memory from malloc, so free is the matching release;
// GCC cannot see that through the replaced operator new and warns at every delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t align = std::size_t(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;

/// Allocations made by `forward` over three calls once warm: the fewest over up to 20
/// windows of three calls, after two warm-up calls. Buffers are per thread, and which
/// pool thread takes which block varies, so on a loaded machine a thread may meet a block
/// first (and grow its buffers) only after the warm-up; growth stops once every thread
/// has, while a forward that allocates on every call allocates in every window.
long allocations_once_warm(const std::function<void()>& forward) {
  forward();
  forward();
  long fewest = -1;
  for (int window = 0; window < 20 && fewest != 0; ++window) {
    const long before = allocations.load();
    for (int i = 0; i < 3; ++i) forward();
    const long made = allocations.load() - before;
    fewest = fewest < 0 ? made : std::min(fewest, made);
  }
  return fewest;
}

template <class L>
void expect_no_allocation(const L& layer, const std::string& label) {
  for (const index_t batch : {1, 5, 64}) {
    const auto x = random_matrix<float>(layer.input_shape().size(), batch, 3).cwiseMax(-0.5f).eval();
    matrix<float> y;
    EXPECT_EQ(allocations_once_warm([&] { layer.forward(x, y); }), 0) << label << ", batch " << batch;
  }
}

TEST(allocation, reference_layers_allocate_nothing_once_warm) {
  rng_t rng(1);
  const shape image{3, 10, 10};
  expect_no_allocation(dense<float>(40, 30, rng), "dense");
  expect_no_allocation(dense<float>(700, 1000, rng), "dense large enough to cut its rows");
  expect_no_allocation(conv2d<float>(image, {.out_channels = 5, .kernel = 3, .padding = 1}, rng), "conv2d");
  expect_no_allocation(conv2d<float>(image, {.out_channels = 4, .kernel = 3, .stride = 2}, rng), "conv2d stride 2");
  expect_no_allocation(relu<float>(image), "relu");
  expect_no_allocation(flatten<float>(image), "flatten");
  expect_no_allocation(max_pool2d<float>(image, 2), "max_pool2d");
  expect_no_allocation(max_pool2d<float>(image, 3, 2), "max_pool2d 3x3 stride 2");
  expect_no_allocation(avg_pool2d<float>(image, 2), "avg_pool2d");
}

TEST(allocation, compressed_layers_allocate_nothing_once_warm) {
  rng_t rng(2);
  const dense<float> d(48, 40, rng);
  const conv2d<float> c(shape{4, 9, 9}, {.out_channels = 6, .kernel = 3, .padding = 1}, rng);
  expect_no_allocation(block_circulant_dense<float>(48, 40, 8, rng), "block_circulant_dense");
  expect_no_allocation(block_circulant_conv2d<float>(shape{4, 9, 9}, {.out_channels = 8, .kernel = 3, .padding = 1}, 4,
                                                     rng),
                       "block_circulant_conv2d");
  expect_no_allocation(compress(d, smartdeal_settings{.basis_width = 8, .segment_density = 0.5}).layer, "smartdeal_dense");
  expect_no_allocation(compress(d, smartdeal_settings{.basis_width = 4, .element_threshold = 0.3}).layer,
                       "smartdeal_dense element layout");
  expect_no_allocation(compress(c, smartdeal_settings{.basis_width = 3, .segment_density = 0.5}).layer, "smartdeal_conv2d");
  expect_no_allocation(compress(d, crew_settings{}).layer, "crew_dense lanes");
  expect_no_allocation(compress(d, crew_settings{.method = crew_settings::quantizer::uniform, .bits = 8}).layer, "crew_dense packed");
  expect_no_allocation(compress(dense<float>(900, 1100, rng), crew_settings{}).layer, "crew_dense large enough to cut its outputs");
  expect_no_allocation(compress(d, crew_settings::parse("u16-a8")).layer, "crew_dense int8 activations");
  expect_no_allocation(compress(d, crew_settings::parse("q8-a8")).layer, "crew_dense packed, int8 activations");
  for (const auto format : {kdconv_coefficient_format::float32, kdconv_coefficient_format::pow2})
    expect_no_allocation(compress(c, kdconv_settings{.bases = 4, .density = 0.5, .coefficients = format}).layer,
                         "kdconv_conv2d");
  expect_no_allocation(compress(c, kdconv_settings{.bases = 4, .density = 0.5, .group_size = 2}).layer,
                       "kdconv_conv2d grouped");
}

TEST(allocation, crew_int8_paths_allocate_nothing_once_warm) {
  rng_t rng(3);
  const auto layer = compress(dense<float>(64, 50, rng), crew_settings{}).layer;
  for (const index_t batch : {1, 20}) {
    const auto x = random_matrix<float>(64, batch, 4).cwiseMax(0.f).eval();
    const int8_matrix xq = layer.quantize_activations(x, 0.05f);
    int32_matrix acc;
    matrix<float> y;
    EXPECT_EQ(allocations_once_warm([&] { layer.forward_int8(xq, acc); }), 0) << "batch " << batch;
    EXPECT_EQ(allocations_once_warm([&] { layer.forward_int8(x, 0.05f, y); }), 0) << "batch " << batch;
  }
}

TEST(allocation, networks_of_mixed_layers_allocate_nothing_once_warm_on_any_thread_count) {
  rng_t rng(4);
  network<float> net;
  conv2d<float> conv(shape{2, 12, 12}, {.out_channels = 6, .kernel = 3, .padding = 1}, rng);
  max_pool2d<float> pool(conv.output_shape(), 2);
  const conv2d<float> conv2(pool.output_shape(), {.out_channels = 6, .kernel = 3, .padding = 1}, rng);
  net << conv << relu<float>(conv.output_shape()) << pool << compress(conv2, kdconv_settings{.bases = 3, .density = 0.6}).layer
      << flatten<float>(pool.output_shape()) << dense<float>(pool.output_shape().size(), 600, rng)
      << relu<float>(shape::flat(600)) << compress(dense<float>(600, 700, rng), crew_settings{}).layer
      << compress(dense<float>(700, 40, rng), {.basis_width = 4, .segment_density = 0.5}).layer
      << block_circulant_dense<float>(40, 10, 5, rng);
  for (const int threads : {1, 2, 3}) {
    net.set_threads(threads);
    for (const index_t batch : {1, 7, 64, 100}) {
      const auto x = random_matrix<float>(net.input_shape().size(), batch, 5);
      matrix<float> y;
      EXPECT_EQ(allocations_once_warm([&] { net.forward(x, y); }), 0) << threads << " threads, batch " << batch;
    }
  }
}

TEST(allocation, the_counter_counts) {
  const long before = allocations.load();
  void* p = ::operator new(64);  // a call, which the compiler may not elide as it may a new-expression
  ::operator delete(p);
  EXPECT_EQ(allocations.load() - before, 1);
}

}  // namespace
