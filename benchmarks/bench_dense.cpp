// bench_dense — the uncompressed baselines on their own: Eigen dense GEMV (batch 1,
// memory-bound once the weights outgrow the caches: 4096x4096 floats are 64 MiB) and
// GEMM (batch 64, compute-bound), and the reference conv2d (im2col + GEMM).
// dense_gemv/4096x4096/t2 is the GEMV on 2 threads (target: >= 1.4x the 1-thread row).
#include "dense_baselines.hpp"

int main(int argc, char** argv) {
  for (auto [in, out] : {std::pair<int, int>{784, 1024}, {1024, 1024}, {4096, 4096}}) {
    bench::register_dense_gemv(in, out);
    bench::register_dense_gemm(in, out, 64);
  }
  bench::register_dense_gemv(4096, 4096, 2);  // the batch-1 rows cut over 2 threads
  bench::register_dense_conv(128, 128, 28, 1);
  return bench::run(argc, argv);
}
