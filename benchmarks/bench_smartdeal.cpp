// bench_smartdeal — SmartDeal dense layers at batch 1 beside the Eigen dense GEMV and an
// Eigen sparse SpMV of the same density, and at batch 64 beside the Eigen dense GEMM, all
// timed in this process, single-threaded.
//
//   dense_gemv/4096x4096                      64 MiB of float weights: memory-bound
//   dense_gemm/4096x4096/b64                  the same weights at batch 64: compute-bound
//   smartdeal/4096x4096/s8/seg10/b1           10 % of the length-8 segments kept, full
//                                             segments, 4-bit exponent codes (segment
//                                             layout: int8 exponent codes, 2.5 MB streamed)
//   smartdeal/4096x4096/s8/seg10/b64          the same layer at batch 64 (basis transform
//                                             as small GEMMs, then the coefficients over
//                                             tiles of 32 samples)
//   smartdeal/4096x4096/s8/seg10/b64/t2       the same batch on 2 threads (>= 1.7x)
//   smartdeal_unstructured/4096x4096/s8/el10/b1   10 % of the coefficients nonzero at
//                                             random (no segment structure; element layout,
//                                             value + 32-bit offset per nonzero, gathers)
//   eigen_sparse_spmv/4096x4096/el10          Eigen row-major SparseMatrix<float> with 10 %
//                                             random nonzeros, y = A x (value + int index)
//   dense_conv/128x128/28x28/b<B>             Eigen im2col + GEMM 3x3 convolution
//   smartdeal_conv/128x128/28x28/s3/seg25/b<B>  the same convolution with SmartDeal
//                                             filters (basis width 3, 25 % of the
//                                             segments kept); the context line
//                                             smartdeal_conv_mac_ratio is the dense MACs
//                                             over SmartDeal's (target: >= half of it)
// Each SmartDeal layer has one random 8 x 8 basis and random +-2^e coefficients, e in
// -15..0. Counters: FLOPs (2 per MAC of the layer's cost model) and bytes read.
#include <Eigen/SparseCore>

#include "dense_baselines.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"

namespace {

using namespace slimnn;

/// rows x cols_pad power-of-two coefficients: whole segments kept with probability
/// `segments` (all s elements nonzero), or, when `elements` > 0, single elements.
smartdeal_coefficients coefficients(index_t rows, index_t cols, index_t s, double segments, double elements) {
  rng_t rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> e(-15, 0);
  std::vector<Eigen::Triplet<double, std::int64_t>> entries;
  auto value = [&] { return (u(rng) < 0.5 ? -1.0 : 1.0) * std::ldexp(1.0, e(rng)); };
  for (index_t o = 0; o < rows; ++o)
    for (index_t c = 0; c < cols; c += s) {
      if (elements > 0) {
        for (index_t j = 0; j < s; ++j)
          if (u(rng) < elements) entries.emplace_back(o, c + j, value());
      } else if (u(rng) < segments) {
        for (index_t j = 0; j < s; ++j) entries.emplace_back(o, c + j, value());
      }
    }
  smartdeal_coefficients m(rows, cols);
  m.setFromTriplets(entries.begin(), entries.end());
  return m;
}

smartdeal_dense<float> layer(index_t n, index_t s, double segments, double elements) {
  const matrix<float> basis = bench::random_input(s, s, 9);
  return smartdeal_dense<float>(smartdeal_matrix<float>(n, n, s, 0, pow2_quantizer::with_bits(4, 0), basis,
                                                        coefficients(n, n, s, segments, elements)),
                                vector<float>::Zero(n));
}

void register_eigen_spmv(index_t n, double density) {
  rng_t rng(6);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::bernoulli_distribution keep(density);
  std::vector<Eigen::Triplet<float>> entries;
  for (index_t r = 0; r < n; ++r)
    for (index_t c = 0; c < n; ++c)
      if (keep(rng)) entries.emplace_back(int(r), int(c), u(rng));
  Eigen::SparseMatrix<float, Eigen::RowMajor> a(n, n);
  a.setFromTriplets(entries.begin(), entries.end());
  a.makeCompressed();
  benchmark::RegisterBenchmark(detail::cat("eigen_sparse_spmv/", n, 'x', n, "/el", int(density * 100)).c_str(),
                               [a = std::move(a), n](benchmark::State& state) {
                                 const matrix<float> x = bench::random_input(n, 1);
                                 vector<float> y(n);
                                 for (auto _ : state) {
                                   y.noalias() = a * x.col(0);
                                   benchmark::DoNotOptimize(y.data());
                                   benchmark::ClobberMemory();
                                 }
                                 cost c;
                                 c.macs = std::uint64_t(a.nonZeros());
                                 c.param_bytes = std::uint64_t(a.nonZeros()) * 8 + std::uint64_t(n + 1) * 4;
                                 c.bytes_read = c.param_bytes + std::uint64_t(n) * 4;
                                 bench::set_counters(state, c, 1);
                               })
      ->Unit(benchmark::kMicrosecond);
}

/// A 3x3 convolution (pad 1) of `channels` -> `channels` on size x size images whose
/// filters are SmartDeal factors: basis width 3, one basis, `segments` of the segments kept.
smartdeal_conv2d<float> conv_layer(index_t channels, index_t size, double segments) {
  const index_t cols = channels * 9;
  const matrix<float> basis = bench::random_input(3, 3, 9);
  return smartdeal_conv2d<float>(shape{channels, size, size}, {.out_channels = channels, .kernel = 3, .padding = 1},
                                 smartdeal_matrix<float>(channels, cols, 3, 0, pow2_quantizer::with_bits(4, 0), basis,
                                                         coefficients(channels, cols, 3, segments, 0)),
                                 vector<float>::Zero(channels));
}

/// smartdeal_conv beside dense_conv at `batch`.
void register_conv(index_t batch) {
  bench::register_dense_conv(128, 128, 28, batch);
  bench::register_forward(detail::cat("smartdeal_conv/128x128/28x28/s3/seg25/b", batch), conv_layer(128, 28, 0.25),
                          batch);
}

}  // namespace

int main(int argc, char** argv) {
  const index_t n = 4096;
  bench::register_dense_gemv(n, n);
  bench::register_forward("smartdeal/4096x4096/s8/seg10/b1", layer(n, 8, 0.10, 0), 1);
  bench::register_dense_gemm(n, n, 64);
  bench::register_forward("smartdeal/4096x4096/s8/seg10/b64", layer(n, 8, 0.10, 0), 64);
  bench::register_forward("smartdeal/4096x4096/s8/seg10/b64", layer(n, 8, 0.10, 0), 64, 2);
  bench::register_forward("smartdeal_unstructured/4096x4096/s8/el10/b1", layer(n, 8, 0, 0.10), 1);
  register_eigen_spmv(n, 0.10);
  register_conv(1);
  register_conv(16);
  // The target of the conv rows is half their MAC ratio (dense MACs / SmartDeal MACs).
  const auto conv = conv_layer(128, 28, 0.25);
  benchmark::AddCustomContext("smartdeal_conv_mac_ratio",
                              detail::cat(double(128 * 1152) * 784 / double(conv.cost().macs)));
  return bench::run(argc, argv);
}
