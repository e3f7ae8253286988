// benchmarks/dense_baselines.hpp — the uncompressed baselines every scheme's benchmark
// registers beside itself, so that speed is always a ratio against a baseline timed in
// the same process.
//
//   dense_gemv/<in>x<out>            reference dense layer at batch 1 (Eigen GEMV)
//   dense_gemm/<in>x<out>/b<B>       the same layer at batch B (Eigen GEMM)
//   dense_conv/<cin>x<cout>/<h>x<w>/b<B>   reference conv2d 3x3, pad 1 (im2col + GEMM)
// Counters: GFLOP/s (2 flops per MAC) and GB/s of parameters plus activations read.
// Every benchmark runs single-threaded, except those named "<name>/t<N>": the same
// benchmark on N threads (parallel_forward), beside "<name>" for the speed-up ratio. bench::run defaults to 5 repetitions with
// aggregates only (pass --benchmark_repetitions to change it), so the names stay exact
// and the median is the "<name>_median" row. The context lines at the top name the
// slimnn kernel path (slimnn_isa: SLIMNN_ISA or the CPU's best) and the instruction sets
// Eigen's baselines were compiled for (eigen_simd: the benchmarks' -march).
#pragma once

#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <vector>

#include "slimnn/core/parallel.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/kernels/isa.hpp"
#include "slimnn/layers/dense.hpp"

namespace bench {

using namespace slimnn;

inline matrix<float> random_input(index_t rows, index_t cols, std::uint64_t seed = 3) {
  rng_t rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  matrix<float> x(rows, cols);
  for (index_t i = 0; i < x.size(); ++i) x.data()[i] = u(rng);
  return x;
}

/// Counter `name`: `per_call` units per call, shown as a rate (e.g. "bytes=6.08G/s").
inline void set_rate(benchmark::State& state, const char* name, double per_call) {
  state.counters[name] = benchmark::Counter(per_call, benchmark::Counter::kIsIterationInvariantRate,
                                            benchmark::Counter::OneK::kIs1000);
}

/// Sets the FLOP rate (2 per MAC) and byte rate (parameters once, activations per
/// sample) of one forward pass over `batch` samples; shown as e.g. "FLOPs=32.7G/s".
inline void set_counters(benchmark::State& state, const cost& c, index_t batch) {
  set_rate(state, "FLOPs", 2.0 * double(c.macs) * double(batch));
  set_rate(state, "bytes", double(c.param_bytes) + double(c.bytes_read - c.param_bytes) * double(batch));
}

/// "<name>" on one thread, "<name>/t<threads>" on more.
inline std::string threaded_name(const std::string& name, int threads) {
  return threads == 1 ? name : detail::cat(name, "/t", threads);
}

/// Registers a benchmark of layer.forward on a random batch; the layer is built once.
/// With threads > 1 the name gains "/t<threads>" and the forward runs through
/// parallel_forward on a pool of that many threads (core/parallel.hpp).
template <class Layer>
benchmark::internal::Benchmark* register_forward(const std::string& name, Layer layer, index_t batch,
                                                 int threads = 1) {
  return benchmark::RegisterBenchmark(
             threaded_name(name, threads).c_str(),
             [layer = std::move(layer), batch, threads](benchmark::State& state) {
               const auto x = random_input(layer.input_shape().size(), batch);
               matrix<float> y;
               thread_pool pool(threads);
               const auto forward = [&] {  // one thread: the layer itself, on the batch as a whole
                 if (threads == 1) layer.forward(x, y);
                 else parallel_forward(layer, pool, x, y);
               };
               forward();
               for (auto _ : state) {
                 forward();
                 benchmark::DoNotOptimize(y.data());
                 benchmark::ClobberMemory();
               }
               set_counters(state, layer.cost(), batch);
             })
      ->Unit(benchmark::kMicrosecond);
}

inline void register_dense_gemv(index_t inputs, index_t outputs, int threads = 1) {
  rng_t rng(1);
  register_forward(detail::cat("dense_gemv/", inputs, 'x', outputs), dense<float>(inputs, outputs, rng), 1, threads);
}

inline void register_dense_gemm(index_t inputs, index_t outputs, index_t batch) {
  rng_t rng(1);
  register_forward(detail::cat("dense_gemm/", inputs, 'x', outputs, "/b", batch),
                   dense<float>(inputs, outputs, rng), batch);
}

inline void register_dense_conv(index_t in_channels, index_t out_channels, index_t size, index_t batch) {
  rng_t rng(1);
  register_forward(detail::cat("dense_conv/", in_channels, 'x', out_channels, '/', size, 'x', size, "/b", batch),
                   conv2d<float>(shape{in_channels, size, size}, {.out_channels = out_channels, .kernel = 3, .padding = 1},
                                 rng),
                   batch);
}

/// Runs the registered benchmarks; adds --benchmark_repetitions=5 and
/// --benchmark_report_aggregates_only=true unless the command line sets them.
inline int run(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  auto given = [&](std::string_view flag) {
    for (int i = 1; i < argc; ++i)
      if (std::string_view(argv[i]).starts_with(flag)) return true;
    return false;
  };
  static char repetitions[] = "--benchmark_repetitions=5";
  static char aggregates[] = "--benchmark_report_aggregates_only=true";
  if (!given("--benchmark_repetitions")) args.push_back(repetitions);
  if (!given("--benchmark_report_aggregates_only")) args.push_back(aggregates);
  int count = int(args.size());
  // One thread for Eigen's own products too, whatever the order or filter: a program
  // built with OpenMP (bench_crew, for oneDNN) would otherwise run them on every core.
  Eigen::setNbThreads(1);
  benchmark::AddCustomContext("slimnn_isa", isa_name(active_isa()));
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
