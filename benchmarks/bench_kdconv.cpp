// bench_kdconv — the ESCALATE kernel-decomposition convolution beside the reference conv2d
// (im2col + Eigen GEMM), 3x3, stride 1, pad 1, batch 1, single thread:
//   dense_conv/128x128/28x28/b1   vs  kdconv/128x128/28x28/m6/d10/b1   (6 bases per channel)
//   dense_conv/256x256/14x14/b1   vs  kdconv/256x256/14x14/m4/d10/b1   (4 bases per channel)
// d10: 10 % of the coefficients kept, element-wise by |a|; the basis is 8-bit fixed point
// and the coefficients 4-bit powers of two (the hybrid format). The .../g4/b1 rows prune
// the same layers in groups of 4 output channels (settings::group_size), which the sparse
// stage turns into 4 FMAs per loaded response. kdconv_materialised/... runs the same layer in
// the two-stage order with all C*M response maps stored.
// Counters on the kdconv rows: mac_ratio (dense MACs / kdconv MACs); speedup (a dense
// conv timed in the same process just before each repetition, divided by this row's
// time); buf_KiB and mat_buf_KiB, the per-thread response buffer of the basis-first and
// of the materialised order. The buffers are the L1/L2-resident regime; the dense conv at
// these sizes is compute-bound (GEMM); element-wise kdconv's sparse stage reads each
// response tile from L2 once per L1-sized column chunk, grouped kdconv is bound by FMAs.
// kdconv/128x128/28x28/m6/d10/b64 and .../b64/t2: the layer at batch 64 on 1 and 2
// threads (target: >= 1.7x).
#include <chrono>
#include <cstdio>

#include "dense_baselines.hpp"
#include "slimnn/kdconv/decomposition.hpp"

namespace {

using namespace slimnn;

/// Median time of `repeats` forward calls, in microseconds.
template <class Layer>
double median_us(const Layer& layer, const matrix<float>& x, int repeats) {
  matrix<float> y;
  layer.forward(x, y);
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    layer.forward(x, y);
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(times.begin(), times.begin() + long(times.size() / 2), times.end());
  return times[times.size() / 2];
}

void register_kdconv(index_t channels, index_t size, index_t bases, int density_percent, kdconv_dataflow order,
                     index_t group_size = 1) {
  rng_t rng(1);
  const conv2d<float> conv(shape{channels, size, size}, {.out_channels = channels, .kernel = 3, .padding = 1}, rng);
  auto d = compress(conv, kdconv_settings{.bases = bases,
                                    .density = density_percent / 100.0,
                                    .group_size = group_size,
                                    .basis_bits = 8,
                                    .coefficients = kdconv_coefficient_format::pow2,
                                    .coefficient_bits = 4});
  const bool materialised = order == kdconv_dataflow::materialised;
  const auto name = slimnn::detail::cat(materialised ? "kdconv_materialised/" : "kdconv/", channels, 'x', channels,
                                        '/', size, 'x', size, "/m", bases, "/d", density_percent,
                                        group_size > 1 ? slimnn::detail::cat("/g", group_size) : std::string(), "/b1");
  if (!materialised)
    std::printf("%-34s MACs %9llu vs dense %10llu (%.2fx fewer), response buffer %7.1f KiB vs materialised %7.1f KiB, "
                "weight error %.3f\n",
                name.c_str(), (unsigned long long)d.report.macs, (unsigned long long)d.report.dense_macs,
                d.report.mac_ratio(), d.layer.peak_intermediate_bytes(kdconv_dataflow::basis_first) / 1024.0,
                d.layer.peak_intermediate_bytes(kdconv_dataflow::materialised) / 1024.0, d.report.relative_error);
  benchmark::RegisterBenchmark(name.c_str(),
                               [layer = std::move(d.layer), conv, report = d.report, order](benchmark::State& state) {
                                 const auto x = bench::random_input(layer.input_shape().size(), 1);
                                 const double dense_us = median_us(conv, x, 15);
                                 matrix<float> y;
                                 layer.forward(x, y, order);
                                 const auto t0 = std::chrono::steady_clock::now();
                                 for (auto _ : state) {
                                   layer.forward(x, y, order);
                                   benchmark::DoNotOptimize(y.data());
                                   benchmark::ClobberMemory();
                                 }
                                 const double us = std::chrono::duration<double, std::micro>(
                                                       std::chrono::steady_clock::now() - t0)
                                                       .count() /
                                                   double(std::max<benchmark::IterationCount>(state.iterations(), 1));
                                 bench::set_counters(state, layer.cost(), 1);
                                 state.counters["mac_ratio"] = report.mac_ratio();
                                 state.counters["speedup"] = dense_us / us;
                                 state.counters["buf_KiB"] =
                                     double(layer.peak_intermediate_bytes(kdconv_dataflow::basis_first)) / 1024;
                                 state.counters["mat_buf_KiB"] =
                                     double(layer.peak_intermediate_bytes(kdconv_dataflow::materialised)) / 1024;
                               })
      ->Unit(benchmark::kMicrosecond);
}

/// kdconv/<c>x<c>/<h>x<w>/m<M>/d<D>/b<B> and its /t2 row: basis-first on a batch, on 1
/// and on 2 threads (parallel_forward cuts the batch).
void register_kdconv_batch(index_t channels, index_t size, index_t bases, int density_percent, index_t batch) {
  rng_t rng(1);
  const conv2d<float> conv(shape{channels, size, size}, {.out_channels = channels, .kernel = 3, .padding = 1}, rng);
  const auto d = compress(conv, kdconv_settings{.bases = bases,
                                          .density = density_percent / 100.0,
                                          .basis_bits = 8,
                                          .coefficients = kdconv_coefficient_format::pow2,
                                          .coefficient_bits = 4});
  const auto name = slimnn::detail::cat("kdconv/", channels, 'x', channels, '/', size, 'x', size, "/m", bases, "/d",
                                        density_percent, "/b", batch);
  for (int threads : {1, 2}) bench::register_forward(name, d.layer, batch, threads);
}

}  // namespace

int main(int argc, char** argv) {
  struct shape_case { index_t channels, size, bases; };
  const shape_case shapes[] = {{128, 28, 6}, {256, 14, 4}};
  for (const auto& s : shapes) {
    bench::register_dense_conv(s.channels, s.channels, s.size, 1);
    register_kdconv(s.channels, s.size, s.bases, 10, kdconv_dataflow::basis_first);
    register_kdconv(s.channels, s.size, s.bases, 10, kdconv_dataflow::basis_first, 4);
  }
  for (const auto& s : shapes) register_kdconv(s.channels, s.size, s.bases, 10, kdconv_dataflow::materialised);
  register_kdconv_batch(128, 28, 6, 10, 64);
  return bench::run(argc, argv);
}
