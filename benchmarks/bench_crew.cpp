// bench_crew — CREW beside its baselines, single-threaded, in one process:
//
//   dense_gemv/<n>x<n>                 Eigen float GEMV (dense_baselines.hpp)
//   int8_gemv/<n>x<n>                  dense int8 GEMV, AVX2 vpmaddubsw (row-major codes,
//                                      4 rows x 32 inputs per step, exact int32 sums)
//   int8_gemm/<n>x<n>/b64              oneDNN's u8 x s8 -> s32 inner product on the same
//                                      codes (when oneDNN is installed; one thread)
//   crew_int8/<n>x<n>/u16/b<B>         crew_dense::forward_int8 on the same codes, at most
//                                      16 unique codes per input (4-bit lanes; vpermb +
//                                      vpdpbusd with AVX-512 VBMI + VNNI, else vpshufb)
//                                      batches above 1 get the activations oneDNN gets
//                                      (magnitudes 1..127, as after a ReLU), b1 signed ones
//   crew_int8/4096x4096/u16/b64/signed the same batch with random signs (AVX2: one vpsignb
//                                      more per 32 products)
//   crew_int8/<n>x<n>/u4/b1            at most 4 unique codes per input (2-bit lanes)
//   dense_gemm/<n>x<n>/b64             Eigen float GEMM (dense_baselines.hpp)
//   crew_float/<n>x<n>/u16/b<B>        crew_dense::forward: at b1 float tables and vpermps
//                                      gathers; from b4, weight tiles decoded with vpermps
//                                      and multiplied by Eigen's GEMM (>= 1.0x dense_gemm)
//   crew_a8/<n>x<n>/u16/b<B>           crew_dense::forward with int8 activations (settings
//                                      "a8"): float in, each sample quantized with its own
//                                      scale, the int8 path above, float out (vs dense_gemv
//                                      at b1, dense_gemm at b64)
//   vnni_peak/<n>x<n>/b64              the n n 64 / 64 vpdpbusd of a b64 int8 product,
//                                      from registers alone (16 independent accumulators,
//                                      no loads): the core's ceiling for int8_gemm and
//                                      crew_int8 at b64 (AVX-512 path, VNNI builds only)
//   .../t2                             the same on 2 threads (a parallel_scope): b64 cuts
//                                      the batch, b1 each sample's outputs (>= 1.7x at
//                                      4096 b64, >= 1.4x at 8192 b1)
// Regimes: 4096x4096 float weights (64 MiB) stream from DRAM; the int8 codes (16 MiB) and
// the CREW indices (8 MiB) may sit in a large L3; 8192x8192 int8 (64 MiB) against CREW
// (32 MiB) is memory-bound, where moving half the bytes shows.
// Counters: bytes = parameter bytes read per call (codes, indices, tables) per second.
#include <cstdlib>
#include <memory>
#include <random>
#include <unordered_map>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "dense_baselines.hpp"
#include "slimnn/crew/crew_dense.hpp"

#ifdef SLIMNN_BENCH_WITH_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

using namespace slimnn;

/// An outputs x inputs code matrix with `unique` distinct codes (from -127..127) per input.
int8_matrix random_codes(index_t inputs, index_t outputs, int unique, std::uint64_t seed) {
  rng_t rng(seed);
  int8_matrix codes(outputs, inputs);
  std::vector<int> grid(255);
  for (int c = 0; c < 255; ++c) grid[std::size_t(c)] = c - 127;
  std::uniform_int_distribution<int> pick(0, unique - 1);
  for (index_t i = 0; i < inputs; ++i) {
    std::shuffle(grid.begin(), grid.end(), rng);
    for (index_t j = 0; j < outputs; ++j) codes(j, i) = std::int8_t(grid[std::size_t(pick(rng))]);
  }
  return codes;
}

/// Activations of magnitude 1..127, of random signs or (`nonnegative`, as after a ReLU)
/// their magnitudes: the values oneDNN's u8 source gets.
int8_matrix random_activations(index_t inputs, index_t batch, bool nonnegative = false) {
  rng_t rng(5);
  std::uniform_int_distribution<int> v(1, 127), sign(0, 1);
  int8_matrix x(inputs, batch);
  for (index_t k = 0; k < x.size(); ++k) {
    const int magnitude = v(rng), negative = sign(rng);
    x.data()[k] = std::int8_t(negative && !nonnegative ? -magnitude : magnitude);
  }
  return x;
}

/// A dense int8 layer: y = W x with W row-major (each output's codes contiguous).
struct int8_dense {
  index_t inputs, outputs;
  std::vector<std::int8_t> w;  // outputs x inputs, row-major

  explicit int8_dense(const int8_matrix& codes) : inputs(codes.cols()), outputs(codes.rows()) {
    w.resize(std::size_t(inputs * outputs));
    for (index_t j = 0; j < outputs; ++j)
      for (index_t i = 0; i < inputs; ++i) w[std::size_t(j * inputs + i)] = codes(j, i);
  }

  void gemv(const std::int8_t* x, std::int32_t* y) const {
    index_t j = 0;
#ifdef __AVX2__
    const index_t vec = inputs / 32 * 32;
    const __m256i ones = _mm256_set1_epi16(1);
    // maddubs(|x|, sign(w, x)) = pairs of x * w in 16 bits (|pair| <= 2 * 128 * 127, no
    // saturation), madd with ones widens to int32.
    auto step = [&](__m256i acc, const std::int8_t* row, __m256i ax, __m256i xv) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv, xv)), ones));
    };
    auto hsum = [](__m256i v) {
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
      return _mm_cvtsi128_si32(s);
    };
    for (; j + 4 <= outputs; j += 4) {
      const std::int8_t* r0 = w.data() + j * inputs;
      __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
      for (index_t i = 0; i < vec; i += 32) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
        const __m256i ax = _mm256_abs_epi8(xv);
        a0 = step(a0, r0 + i, ax, xv);
        a1 = step(a1, r0 + inputs + i, ax, xv);
        a2 = step(a2, r0 + 2 * inputs + i, ax, xv);
        a3 = step(a3, r0 + 3 * inputs + i, ax, xv);
      }
      y[j] = hsum(a0), y[j + 1] = hsum(a1), y[j + 2] = hsum(a2), y[j + 3] = hsum(a3);
      for (index_t i = vec; i < inputs; ++i)
        for (int r = 0; r < 4; ++r) y[j + r] += std::int32_t(r0[r * inputs + i]) * x[i];
    }
#endif
    for (; j < outputs; ++j) {
      std::int32_t s = 0;
      for (index_t i = 0; i < inputs; ++i) s += std::int32_t(w[std::size_t(j * inputs + i)]) * x[i];
      y[j] = s;
    }
  }
};

void register_int8_gemv(const int8_matrix& codes) {
  auto layer = std::make_shared<int8_dense>(codes);
  benchmark::RegisterBenchmark(detail::cat("int8_gemv/", codes.cols(), 'x', codes.rows()).c_str(),
                               [layer](benchmark::State& state) {
                                 const int8_matrix x = random_activations(layer->inputs, 1);
                                 std::vector<std::int32_t> y(std::size_t(layer->outputs));
                                 for (auto _ : state) {
                                   layer->gemv(x.data(), y.data());
                                   benchmark::DoNotOptimize(y.data());
                                   benchmark::ClobberMemory();
                                 }
                                 bench::set_rate(state, "bytes", double(layer->w.size()));
                               })
      ->Unit(benchmark::kMicrosecond);
}

/// Activations for crew_int8: `signed_` ones (a /signed suffix at batches above 1) or
/// those oneDNN gets, their magnitudes.
void register_crew_int8(const int8_matrix& codes, const std::string& unique, index_t batch, int threads = 1,
                        bool signed_ = false) {
  auto layer = std::make_shared<crew_dense<float>>(
      quantized_weights{codes, std::vector<double>(std::size_t(codes.rows()), 1.0), 127}, vector<float>::Zero(codes.rows()));
  // The int8 path must agree with the dense integer GEMV before it is timed.
  const int8_matrix x = random_activations(codes.cols(), batch, batch > 1 && !signed_);
  int32_matrix acc;
  layer->forward_int8(x, acc);
  const int32_matrix expected = codes.cast<std::int32_t>() * x.cast<std::int32_t>();
  detail::require<error>(acc == expected, "bench_crew: crew_int8 disagrees with the dense integer product");
  const auto name =
      detail::cat("crew_int8/", codes.cols(), 'x', codes.rows(), '/', unique, "/b", batch, signed_ ? "/signed" : "");
  benchmark::RegisterBenchmark(bench::threaded_name(name, threads).c_str(),
                               [layer, x, threads](benchmark::State& state) {
                                 thread_pool pool(threads);
                                 parallel_scope scope(pool);  // forward_int8 cuts its work over the pool
                                 int32_matrix y;
                                 layer->forward_int8(x, y);
                                 for (auto _ : state) {
                                   layer->forward_int8(x, y);
                                   benchmark::DoNotOptimize(y.data());
                                   benchmark::ClobberMemory();
                                 }
                                 bench::set_rate(state, "bytes", double(layer->cost().param_bytes));
                               })
      ->Unit(benchmark::kMicrosecond);
}

void register_crew_float(const int8_matrix& codes, const std::string& unique, index_t batch = 1) {
  crew_dense<float> layer(quantized_weights{codes, std::vector<double>(std::size_t(codes.rows()), 0.01), 127},
                          vector<float>::Zero(codes.rows()));
  bench::register_forward(detail::cat("crew_float/", codes.cols(), 'x', codes.rows(), '/', unique, "/b", batch),
                          std::move(layer), batch);
}

/// forward() of a layer set to int8 activations: what a network with "u16-a8" runs.
void register_crew_a8(const int8_matrix& codes, const std::string& unique, index_t batch) {
  crew_dense<float> layer(quantized_weights{codes, std::vector<double>(std::size_t(codes.rows()), 0.01), 127},
                          vector<float>::Zero(codes.rows()));
  layer.set_activations(crew_activations::int8);
  bench::register_forward(detail::cat("crew_a8/", codes.cols(), 'x', codes.rows(), '/', unique, "/b", batch),
                          std::move(layer), batch);
}

#if defined(__AVX512VNNI__) && defined(__GNUC__)
/// 16 independent vpdpbusd on registers alone (zmm0-15 += zmm17 x zmm16).
inline void sixteen_vpdpbusd() {
  __asm__ volatile(
      "vpdpbusd %%zmm16, %%zmm17, %%zmm0\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm1\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm2\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm3\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm4\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm5\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm6\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm7\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm8\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm9\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm10\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm11\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm12\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm13\n\t"
      "vpdpbusd %%zmm16, %%zmm17, %%zmm14\n\tvpdpbusd %%zmm16, %%zmm17, %%zmm15" ::
          : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
            "xmm12", "xmm13", "xmm14", "xmm15");
}

/// As many vpdpbusd as an n x n int8 product at `batch` samples (64 multiply-adds each),
/// with no loads: the time is the core's issue rate for the instruction and nothing else.
void register_vnni_peak(index_t n, index_t batch) {
  benchmark::RegisterBenchmark(detail::cat("vnni_peak/", n, 'x', n, "/b", batch).c_str(),
                               [n, batch](benchmark::State& state) {
                                 const std::int64_t steps = std::int64_t(n) * n * batch / 64 / 16;
                                 for (auto _ : state)
                                   for (std::int64_t k = 0; k < steps; ++k) sixteen_vpdpbusd();
                                 bench::set_rate(state, "vpdpbusd", double(steps * 16));
                               })
      ->Unit(benchmark::kMicrosecond);
}
#endif

#ifdef SLIMNN_BENCH_WITH_DNNL
/// oneDNN's int8 inner product, u8 activations x s8 weights -> s32, on the codes: weights
/// reordered once into oneDNN's own blocked layout, one thread, and on the AVX2 path
/// limited to AVX2 (dnnl::set_max_cpu_isa), as on an AVX2 machine.
void register_int8_gemm(const int8_matrix& codes, index_t batch) {
  benchmark::RegisterBenchmark(
      detail::cat("int8_gemm/", codes.cols(), 'x', codes.rows(), "/b", batch).c_str(),
      [codes, batch](benchmark::State& state) {
        using namespace dnnl;
        using tag = memory::format_tag;
        using dt = memory::data_type;
        omp_set_num_threads(1);
        const memory::dim n = codes.cols(), m = codes.rows(), b = batch;
        engine cpu(engine::kind::cpu, 0);
        stream s(cpu);
        const memory::desc src_md({b, n}, dt::u8, tag::nc), dst_md({b, m}, dt::s32, tag::nc);
        const inner_product_forward::primitive_desc pd(
            inner_product_forward::desc(prop_kind::forward_inference, src_md,
                                        memory::desc({m, n}, dt::s8, tag::any), dst_md),
            cpu);
        memory user_weights({{m, n}, dt::s8, tag::oi}, cpu), weights(pd.weights_desc(), cpu);
        memory src(src_md, cpu), dst(dst_md, cpu);
        auto* w = static_cast<std::int8_t*>(user_weights.get_data_handle());
        for (index_t j = 0; j < m; ++j)
          for (index_t i = 0; i < n; ++i) w[j * n + i] = codes(j, i);
        reorder(user_weights, weights).execute(s, user_weights, weights);
        const int8_matrix x = random_activations(n, batch);
        auto* u = static_cast<std::uint8_t*>(src.get_data_handle());
        for (index_t c = 0; c < batch; ++c)
          for (index_t i = 0; i < n; ++i) u[c * n + i] = std::uint8_t(std::abs(int(x(i, c))));
        const inner_product_forward ip(pd);
        const std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
        ip.execute(s, args);
        s.wait();
        // It must compute the product before it is timed: check one sample's outputs.
        const auto* y = static_cast<const std::int32_t*>(dst.get_data_handle());
        for (index_t j = 0; j < m; ++j) {
          std::int64_t expected = 0;
          for (index_t i = 0; i < n; ++i) expected += std::int64_t(u[i]) * codes(j, i);
          detail::require<slimnn::error>(y[j] == expected, "bench_crew: oneDNN's int8 inner product disagrees at output ", j);
        }
        for (auto _ : state) {
          ip.execute(s, args);
          s.wait();
        }
        bench::set_rate(state, "bytes", double(m * n));
      })
      ->Unit(benchmark::kMicrosecond);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bench::register_dense_gemv(4096, 4096);
  {
    const int8_matrix codes = random_codes(4096, 4096, 16, 11);
    register_int8_gemv(codes);
    register_crew_int8(codes, "u16", 1);
    register_crew_int8(codes, "u16", 8);
#ifdef SLIMNN_BENCH_WITH_DNNL
    if (active_isa() == isa::avx2) dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx2);
    register_int8_gemm(codes, 64);
#endif
    register_crew_int8(codes, "u16", 64);
#if defined(__AVX512VNNI__) && defined(__GNUC__)
    if (active_isa() == isa::avx512) register_vnni_peak(4096, 64);
#endif
    register_crew_int8(codes, "u16", 64, 1, /*signed_=*/true);
    register_crew_int8(codes, "u16", 64, 2);
    register_crew_float(codes, "u16");
    bench::register_dense_gemm(4096, 4096, 64);
    register_crew_float(codes, "u16", 8);
    register_crew_float(codes, "u16", 64);
    register_crew_a8(codes, "u16", 1);
    register_crew_a8(codes, "u16", 64);
    register_crew_int8(random_codes(4096, 4096, 4, 12), "u4", 1);
  }
  {
    const int8_matrix codes = random_codes(8192, 8192, 16, 13);
    register_int8_gemv(codes);
    register_crew_int8(codes, "u16", 1);
    register_crew_int8(codes, "u16", 1, 2);
  }
  bench::register_dense_gemv(1024, 1024);
  register_crew_float(random_codes(1024, 1024, 16, 14), "u16");
  return bench::run(argc, argv);
}
