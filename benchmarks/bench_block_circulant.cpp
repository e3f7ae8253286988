// bench_block_circulant — CirCNN block-circulant layers beside their dense baselines,
// single-threaded, in one process (ratios = dense median / block-circulant median):
//   dense_gemv/4096x4096            vs block_circulant/4096x4096/k64/b1    (target >= 60x)
//   dense_gemm/4096x4096/b64        vs block_circulant/4096x4096/k64/b64   (target >= 15x)
//   dense_gemv/1024x1024            vs block_circulant/1024x1024/k16/b1    (target >= 8x)
//   dense_conv/256x256/14x14/b16    vs block_circulant_conv/256x256/14x14/k16/b16 (3x3, pad 1; >= 5x)
//   block_circulant/4096x4096/k64/b64 vs its /t2 row, the batch on 2 threads    (target >= 1.7x)
// Regimes: the dense GEMVs are memory-bound (64 MiB and 4 MiB of weights); the
// block-circulant spectra (1.1 MiB and 0.3 MiB) stay in the caches, so its batch-1 rows
// are bound by the complex GEMVs and the FFTs; the batched rows are compute-bound GEMMs.
// The FLOPs counter of a block-circulant row is the rate of its frequency-domain complex
// products (2 flops per real MAC, cost().macs); the FFTs are not counted in it.
#include "dense_baselines.hpp"
#include "slimnn/circulant/block_circulant_conv2d.hpp"
#include "slimnn/circulant/block_circulant_dense.hpp"

namespace {

void register_circulant_dense(slimnn::index_t n, slimnn::index_t k, slimnn::index_t batch, int threads = 1) {
  slimnn::rng_t rng(1);
  bench::register_forward(slimnn::detail::cat("block_circulant/", n, 'x', n, "/k", k, "/b", batch),
                          slimnn::block_circulant_dense<float>(n, n, k, rng), batch, threads);
}

void register_circulant_conv(slimnn::index_t channels, slimnn::index_t size, slimnn::index_t k,
                             slimnn::index_t batch) {
  slimnn::rng_t rng(1);
  bench::register_forward(
      slimnn::detail::cat("block_circulant_conv/", channels, 'x', channels, '/', size, 'x', size, "/k", k, "/b",
                          batch),
      slimnn::block_circulant_conv2d<float>(slimnn::shape{channels, size, size},
                                            {.out_channels = channels, .kernel = 3, .padding = 1}, k, rng),
      batch);
}

}  // namespace

int main(int argc, char** argv) {
  bench::register_dense_gemv(4096, 4096);
  register_circulant_dense(4096, 64, 1);
  bench::register_dense_gemm(4096, 4096, 64);
  register_circulant_dense(4096, 64, 64);
  register_circulant_dense(4096, 64, 64, 2);
  bench::register_dense_gemv(1024, 1024);
  register_circulant_dense(1024, 16, 1);
  bench::register_dense_conv(256, 256, 14, 16);
  register_circulant_conv(256, 14, 16, 16);
  return bench::run(argc, argv);
}
