// benchmarks/bench_comet.cpp — COMET's activation compressors on tensors the example CNN
// keeps for backward: slimnn's error-bounded quantizer + zstd (comet/error_bounded.hpp)
// and, when built with ZFP (Debian libzfp-dev; CMake finds it by itself), ZFP's
// fixed-accuracy mode at the same tolerance, as the other candidate for the store.
//
// Tensors, from 256 Fashion-MNIST training images (synthetic blobs of the same shape if
// the set is not installed):
//   images  the first convolution's input, 1x28x28 per sample;
//   pooled  max_pool2(relu(conv 1->32, 3x3, pad 1)) of the images with He-uniform
//           weights, 32x14x14 per sample: the second convolution's input.
// The bound is `eb` times the tensor's value range, as the store sets it. ZFP reads each
// tensor as a 3-D field (W x H x channels*samples), so it can use the spatial correlation.
// Each benchmark compresses and decompresses the whole tensor once per iteration;
// counters: ratio (raw bytes over compressed bytes), worst (the largest |x - x'| over the
// bound: above 1 breaks the guarantee) and bytes_per_second of raw input.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "slimnn/comet/error_bounded.hpp"
#include "slimnn/data/fashion_mnist.hpp"
#include "slimnn/data/synthetic.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"

#if defined(SLIMNN_BENCH_WITH_ZFP)
#include <zfp.h>
#endif

namespace {

using namespace slimnn;

struct activation_tensor {
  std::string name;
  matrix<float> values;  // sample_shape.size() x samples
  shape sample_shape;
};

std::vector<activation_tensor> make_tensors() {
  constexpr index_t samples = 256;
  rng_t rng(1);
  matrix<float> images;
  try {
    images = load_fashion_mnist<float>().train.x.leftCols(samples);
  } catch (const error&) {
    images = make_blobs<float>(samples, shape{1, 28, 28}, 10, 0.3, rng).x;
  }
  const conv2d<float> conv(shape{1, 28, 28}, {.out_channels = 32, .kernel = 3, .padding = 1}, rng);
  const relu<float> activation(conv.output_shape());
  const max_pool2d<float> pool(conv.output_shape(), 2);
  matrix<float> a, b, pooled;
  conv.forward(images, a);
  activation.forward(a, b);
  pool.forward(b, pooled);
  return {{"images", images, shape{1, 28, 28}}, {"pooled", pooled, pool.output_shape()}};
}

const std::vector<activation_tensor>& tensors() {
  static const std::vector<activation_tensor> t = make_tensors();
  return t;
}

double absolute_bound(const matrix<float>& x, double relative) {
  return relative * (double(x.maxCoeff()) - double(x.minCoeff()));
}

void report(benchmark::State& state, const matrix<float>& x, const matrix<float>& back, std::size_t packed,
            double bound) {
  state.counters["ratio"] = double(x.size()) * sizeof(float) / double(packed);
  state.counters["worst"] = (x - back).cwiseAbs().maxCoeff() / bound;
  state.SetBytesProcessed(std::int64_t(state.iterations()) * x.size() * std::int64_t(sizeof(float)));
}

void quantizer_zstd(benchmark::State& state, const activation_tensor& t, double relative) {
  const comet::error_bounded_codec codec;
  const double bound = absolute_bound(t.values, relative);
  std::vector<std::uint8_t> packed;
  matrix<float> back(t.values.rows(), t.values.cols());
  for (auto _ : state) {
    codec.compress(std::span<const float>(t.values.data(), std::size_t(t.values.size())), bound, packed);
    codec.decompress(packed, std::span<float>(back.data(), std::size_t(back.size())));
    benchmark::DoNotOptimize(back.data());
  }
  report(state, t.values, back, packed.size(), bound);
}

#if defined(SLIMNN_BENCH_WITH_ZFP)
void zfp_accuracy(benchmark::State& state, const activation_tensor& t, double relative) {
  const double bound = absolute_bound(t.values, relative);
  matrix<float> input = t.values, back(t.values.rows(), t.values.cols());
  const auto nx = std::size_t(t.sample_shape.w), ny = std::size_t(t.sample_shape.h);
  const auto nz = std::size_t(t.sample_shape.c * t.values.cols());
  zfp_field* field = zfp_field_3d(input.data(), zfp_type_float, nx, ny, nz);
  zfp_field* out_field = zfp_field_3d(back.data(), zfp_type_float, nx, ny, nz);
  zfp_stream* zfp = zfp_stream_open(nullptr);
  zfp_stream_set_accuracy(zfp, bound);
  std::vector<unsigned char> buffer(zfp_stream_maximum_size(zfp, field));
  bitstream* bits = stream_open(buffer.data(), buffer.size());
  zfp_stream_set_bit_stream(zfp, bits);
  std::size_t packed = 0;
  for (auto _ : state) {
    zfp_stream_rewind(zfp);
    packed = zfp_compress(zfp, field);
    zfp_stream_rewind(zfp);
    if (packed == 0 || zfp_decompress(zfp, out_field) == 0) {
      state.SkipWithError("zfp failed");
      break;
    }
    benchmark::DoNotOptimize(back.data());
  }
  if (packed > 0) report(state, t.values, back, packed, bound);
  zfp_field_free(field);
  zfp_field_free(out_field);
  zfp_stream_close(zfp);
  stream_close(bits);
}
#endif

const int registered = [] {
  for (std::size_t i = 0; i < tensors().size(); ++i)
    for (const double relative : {1e-2, 1e-3}) {
      const auto& t = tensors()[i];
      const std::string suffix = t.name + "/eb" + (relative == 1e-2 ? "0.01" : "0.001");
      benchmark::RegisterBenchmark(("comet/quantizer_zstd/" + suffix).c_str(),
                                   [&t, relative](benchmark::State& s) { quantizer_zstd(s, t, relative); })
          ->Unit(benchmark::kMillisecond);
#if defined(SLIMNN_BENCH_WITH_ZFP)
      benchmark::RegisterBenchmark(("comet/zfp_accuracy/" + suffix).c_str(),
                                   [&t, relative](benchmark::State& s) { zfp_accuracy(s, t, relative); })
          ->Unit(benchmark::kMillisecond);
#endif
    }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
