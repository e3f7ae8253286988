// slimnn/kernels/kdconv.hpp — the two stages of the kernel-decomposition convolution
// (kdconv/kdconv_conv2d.hpp), portable, AVX2 and AVX-512, dispatched at run time.
//
// Stage 1 (kdconv_basis_tiles): MB <= 4 basis kernels over NV <= 4 tiles of
// kdconv_row_tile = 16 output positions: dst[v][mm * out_stride + t] = sum over taps of
// basis[mm * taps + tap] * src[v][offset[tap] + t]; every loaded input vector feeds all MB
// kernels.
// Stage 2 (kdconv_combine_rows): RB <= 4 output channels with the same nonzero columns
// over a tile of W <= 64 positions (a multiple of 16): out[r * positions + t] = bias[r] +
// sum_e coef[r * nnz + e] * responses[column[e] * stride + t], the first `count`
// positions stored. kdconv_combine_jobs: each job (a channel's nonzeros in one column
// chunk: `count` of them, its slots padded to an even number with a zero coefficient)
// adds its sum to sums[channel * sums_stride + t], two slots per step.
// One body (kernels/kdconv_stages.inc) is compiled three times on a SIMD vector of 16, 32
// or 64 bytes (GCC / Clang vector extensions); each tile's accumulators are sized to the
// path's registers (16 on AVX2: a 4-basis tile runs one 16-position tile per pass, a
// 4-channel row block 16 positions per pass; 32 on AVX-512: whole tiles). A job tile of
// fewer than 8 vectors adds its two slots per step into two accumulator sets, a wider one
// into one (so the paths sum the jobs in different orders); the paths agree to rounding.
// Cost: stage 1 MB * NV * 16 * taps MACs; stage 2 one MAC per slot and position.
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "slimnn/core/types.hpp"
#include "slimnn/kernels/isa.hpp"

namespace slimnn::kernels {

/// Output positions per stage-1 tile (and the granularity of stage-2 tiles).
inline constexpr index_t kdconv_row_tile = 16;

/// One channel's nonzeros within a column chunk of stage 2 (`count` of them; the job slot
/// arrays hold them padded to an even number).
struct kdconv_job {
  std::int32_t channel, first, count;  ///< output channel; its nonzeros first .. first + count - 1
};

namespace portable {
#if defined(__GNUC__) || defined(__clang__)
template <class T>
struct kd_vector;
template <>
struct kd_vector<float> {
  typedef float type __attribute__((vector_size(16)));
};
template <>
struct kd_vector<double> {
  typedef double type __attribute__((vector_size(16)));
};
#else
/// Four values with the operators the stage body uses (compilers without vector extensions).
template <class T>
struct kd_vector {
  struct type {
    T v[4] = {};
    friend type operator+(type a, const type& b) {
      for (int i = 0; i < 4; ++i) a.v[i] += b.v[i];
      return a;
    }
    friend type operator+(type a, T b) {
      for (int i = 0; i < 4; ++i) a.v[i] += b;
      return a;
    }
    friend type operator*(type a, T b) {
      for (int i = 0; i < 4; ++i) a.v[i] *= b;
      return a;
    }
    type& operator+=(const type& b) { return *this = *this + b; }
  };
};
#endif
inline constexpr int kd_registers = 16;
template <class V>
inline V kd_in_register(V v) {
  return v;
}
#include "slimnn/kernels/kdconv_stages.inc"
}  // namespace portable

#if defined(SLIMNN_X86_KERNELS)
namespace avx2 {
SLIMNN_TARGET_AVX2
template <class T>
struct kd_vector;
template <>
struct kd_vector<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct kd_vector<double> {
  typedef double type __attribute__((vector_size(32)));
};
inline constexpr int kd_registers = 16;
template <class V>
inline V kd_in_register(V v) {
  __asm__("" : "+x"(v));  // an empty asm that takes v in a vector register
  return v;
}
#include "slimnn/kernels/kdconv_stages.inc"
SLIMNN_TARGET_END
}  // namespace avx2

namespace avx512 {
SLIMNN_TARGET_AVX512
template <class T>
struct kd_vector;
template <>
struct kd_vector<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct kd_vector<double> {
  typedef double type __attribute__((vector_size(64)));
};
inline constexpr int kd_registers = 32;
template <class V>
inline V kd_in_register(V v) {
  __asm__("" : "+v"(v));  // an empty asm that takes v in a vector register (zmm0-31)
  return v;
}
#include "slimnn/kernels/kdconv_stages.inc"
SLIMNN_TARGET_END
}  // namespace avx512
#endif

#if defined(SLIMNN_X86_KERNELS)
#define SLIMNN_KD_DISPATCH(path, call)                   \
  do {                                                   \
    if ((path) == isa::avx512) return avx512::call;      \
    if ((path) == isa::avx2) return avx2::call;          \
    return portable::call;                               \
  } while (false)
#else
#define SLIMNN_KD_DISPATCH(path, call) \
  do {                                 \
    (void)(path);                      \
    return portable::call;             \
  } while (false)
#endif

/// Stage 1: `bases` (1-4) basis responses of `tiles` (1-4) position tiles (see above).
template <class T>
void kdconv_basis_tiles(isa path, int bases, int tiles, const T* const* src, T* const* dst, const T* basis,
                        const index_t* offset, index_t taps, index_t out_stride) {
  SLIMNN_KD_DISPATCH(path, kdconv_basis_tiles(bases, tiles, src, dst, basis, offset, taps, out_stride));
}

/// Stage 2: `rows` (2-4) channels with the same columns over `width` positions (16, 32,
/// 48 or 64), the first `count` stored.
template <class T>
void kdconv_combine_rows(isa path, int width, int rows, const T* responses, index_t stride, index_t count,
                         const std::int32_t* column, std::int32_t nnz, const T* coef, const T* bias, T* out,
                         index_t positions) {
  SLIMNN_KD_DISPATCH(path, kdconv_combine_rows(width, rows, responses, stride, count, column, nnz, coef, bias, out,
                                               positions));
}

/// Stage 2: every job's slots (columns `column`, values `coef`, consecutive job after job)
/// added into its channel's `width` sums.
template <class T>
void kdconv_combine_jobs(isa path, int width, const T* responses, index_t stride, const kdconv_job* jobs,
                         index_t job_count, const std::int32_t* column, const T* coef, T* sums, index_t sums_stride) {
  SLIMNN_KD_DISPATCH(path,
                     kdconv_combine_jobs(width, responses, stride, jobs, job_count, column, coef, sums, sums_stride));
}

#undef SLIMNN_KD_DISPATCH

}  // namespace slimnn::kernels
