// slimnn/kernels/complex_gemm.hpp — the frequency-domain products of the block-circulant
// layers: a complex matrix product summed over panels, portable, AVX2 and AVX-512,
// dispatched at run time by kernel path.
//
//   C (m x n) = sum over panels t of A_t (m x k) B_t (k x n)
// All matrices are complex, column-major in m: A_t's column kk starts at a_t + kk * lda
// (contiguous in m), C's column j at c + j * ldc; B_t's entry (kk, j) is at
// b_t + kk * ldb_k + j * ldb_n, and ldb_k or ldb_n must be 1. The dense layer's Y_f = S_f
// X_f is one panel (A = S_f, B = the batch's spectra); the stride-1 convolution is one
// panel per kernel position (A = the spectrum image shifted by the position, B = that
// position's weights), so its sum over positions stays in registers.
// Vector variants (float): a tile of C (AVX-512: 16 complex rows x 6 columns; AVX2: 8 x 3)
// keeps two accumulators per vector, A's interleaved (re, im) values times B's real part
// and times its imaginary part, both broadcast; at the end the imaginary one is swapped
// within each pair and added with alternating signs (re = ar*br - ai*bi, im = ai*br +
// ar*bi), so each complex MAC costs two vector-lane FMAs on two lanes, the full FMA rate.
// A single column (a batch of one) takes taller tiles instead (AVX-512: 8 vectors, 64
// rows; AVX2: 4 vectors, 16 rows), for enough independent accumulators and contiguous
// reads of A. Rows past the last full tile are masked. The portable variant is Eigen's
// product (also the path for double). The variants sum in different orders (they agree
// to rounding).
// Cost: 4 m n k real MACs per panel; reads each A tile once per column block.
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <complex>
#include <type_traits>

#include "slimnn/core/types.hpp"
#include "slimnn/kernels/isa.hpp"

namespace slimnn::kernels {

/// Where panel t's A and B start (see the header comment).
template <class T>
struct complex_panel {
  const std::complex<T>* a;
  const std::complex<T>* b;
};

/// The sizes and strides shared by every panel of a complex_panel_gemm, in complex values.
struct complex_gemm_shape {
  index_t m, n, k;
  index_t lda, ldb_k, ldb_n, ldc;
};

/// Eigen's product, panel by panel (the reference).
template <class T>
void complex_panel_gemm_portable(const complex_gemm_shape& s, const complex_panel<T>* panels, index_t count,
                                 std::complex<T>* c) {
  using cmatrix = matrix<std::complex<T>>;
  using strided = Eigen::Map<const cmatrix, 0, Eigen::OuterStride<>>;
  Eigen::Map<cmatrix, 0, Eigen::OuterStride<>> C(c, s.m, s.n, Eigen::OuterStride<>(s.ldc));
  if (count == 0) C.setZero();
  for (index_t t = 0; t < count; ++t) {
    const strided A(panels[t].a, s.m, s.k, Eigen::OuterStride<>(s.lda));
    if (s.ldb_k == 1) {
      const strided Bm(panels[t].b, s.k, s.n, Eigen::OuterStride<>(s.ldb_n));
      if (t == 0) C.noalias() = A * Bm;
      else C.noalias() += A * Bm;
    } else {
      const strided Bt(panels[t].b, s.n, s.k, Eigen::OuterStride<>(s.ldb_k));
      if (t == 0) C.noalias() = A * Bt.transpose();
      else C.noalias() += A * Bt.transpose();
    }
  }
}

#if defined(SLIMNN_X86_KERNELS)
namespace avx512 {
SLIMNN_TARGET_AVX512

/// C rows [row, row + 8 MR) (vector r masked by masks[r]) x columns [col, col + NR).
template <int MR, int NR, bool Masked>
inline void complex_gemm_tile(const complex_gemm_shape& s, const complex_panel<float>* panels, index_t count,
                              index_t row, index_t col, const __mmask16* masks, std::complex<float>* c) {
  __m512 re[MR][NR], im[MR][NR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) re[r][j] = im[r][j] = _mm512_setzero_ps();
  for (index_t t = 0; t < count; ++t) {
    const float* a = reinterpret_cast<const float*>(panels[t].a + row);
    const float* b = reinterpret_cast<const float*>(panels[t].b + col * s.ldb_n);
    for (index_t kk = 0; kk < s.k; ++kk, a += 2 * s.lda, b += 2 * s.ldb_k) {
      __m512 x[MR];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) x[r] = Masked ? _mm512_maskz_loadu_ps(masks[r], a + 16 * r) : _mm512_loadu_ps(a + 16 * r);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __m512 br = _mm512_set1_ps(b[2 * j * s.ldb_n]), bi = _mm512_set1_ps(b[2 * j * s.ldb_n + 1]);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          re[r][j] = _mm512_fmadd_ps(x[r], br, re[r][j]);
          im[r][j] = _mm512_fmadd_ps(x[r], bi, im[r][j]);
        }
      }
    }
  }
  const __m512 one = _mm512_set1_ps(1.0f);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j)
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 y = _mm512_fmaddsub_ps(one, re[r][j], _mm512_permute_ps(im[r][j], 0xB1));
      float* out = reinterpret_cast<float*>(c + (col + j) * s.ldc + row) + 16 * r;
      if (Masked) _mm512_mask_storeu_ps(out, masks[r], y);
      else _mm512_storeu_ps(out, y);
    }
}

template <int MR, int NR>
inline void complex_gemm_columns(const complex_gemm_shape& s, const complex_panel<float>* panels, index_t count,
                                 index_t col, std::complex<float>* c) {
  __mmask16 full[MR];
  for (int r = 0; r < MR; ++r) full[r] = 0xFFFF;
  index_t row = 0;
  for (; row + 8 * MR <= s.m; row += 8 * MR) complex_gemm_tile<MR, NR, false>(s, panels, count, row, col, full, c);
  if (row < s.m) {
    __mmask16 masks[MR];
    for (int r = 0; r < MR; ++r) {
      const index_t left = std::max<index_t>(0, std::min<index_t>(8, s.m - row - 8 * r));
      masks[r] = __mmask16((1u << (2 * left)) - 1u);
    }
    complex_gemm_tile<MR, NR, true>(s, panels, count, row, col, masks, c);
  }
}

inline void complex_panel_gemm(const complex_gemm_shape& s, const complex_panel<float>* panels, index_t count,
                               std::complex<float>* c) {
  constexpr index_t NR = 6;
  index_t col = 0;
  for (; col + NR <= s.n; col += NR) complex_gemm_columns<2, NR>(s, panels, count, col, c);
  switch (s.n - col) {
    case 5: return complex_gemm_columns<2, 5>(s, panels, count, col, c);
    case 4: return complex_gemm_columns<2, 4>(s, panels, count, col, c);
    case 3: return complex_gemm_columns<2, 3>(s, panels, count, col, c);
    case 2: return complex_gemm_columns<2, 2>(s, panels, count, col, c);
    case 1: return complex_gemm_columns<8, 1>(s, panels, count, col, c);
    default: return;
  }
}

SLIMNN_TARGET_END
}  // namespace avx512

namespace avx2 {
SLIMNN_TARGET_AVX2

/// C rows [row, row + 4 MR) (vector r masked by masks[r]) x columns [col, col + NR).
template <int MR, int NR, bool Masked>
inline void complex_gemm_tile(const complex_gemm_shape& s, const complex_panel<float>* panels, index_t count,
                              index_t row, index_t col, const __m256i* masks, std::complex<float>* c) {
  __m256 re[MR][NR], im[MR][NR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) re[r][j] = im[r][j] = _mm256_setzero_ps();
  for (index_t t = 0; t < count; ++t) {
    const float* a = reinterpret_cast<const float*>(panels[t].a + row);
    const float* b = reinterpret_cast<const float*>(panels[t].b + col * s.ldb_n);
    for (index_t kk = 0; kk < s.k; ++kk, a += 2 * s.lda, b += 2 * s.ldb_k) {
      __m256 x[MR];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) x[r] = Masked ? _mm256_maskload_ps(a + 8 * r, masks[r]) : _mm256_loadu_ps(a + 8 * r);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __m256 br = _mm256_broadcast_ss(b + 2 * j * s.ldb_n), bi = _mm256_broadcast_ss(b + 2 * j * s.ldb_n + 1);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          re[r][j] = _mm256_fmadd_ps(x[r], br, re[r][j]);
          im[r][j] = _mm256_fmadd_ps(x[r], bi, im[r][j]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j)
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 y = _mm256_addsub_ps(re[r][j], _mm256_permute_ps(im[r][j], 0xB1));
      float* out = reinterpret_cast<float*>(c + (col + j) * s.ldc + row) + 8 * r;
      if (Masked) _mm256_maskstore_ps(out, masks[r], y);
      else _mm256_storeu_ps(out, y);
    }
}

template <int MR, int NR>
inline void complex_gemm_columns(const complex_gemm_shape& s, const complex_panel<float>* panels, index_t count,
                                 index_t col, std::complex<float>* c) {
  index_t row = 0;
  for (; row + 4 * MR <= s.m; row += 4 * MR) complex_gemm_tile<MR, NR, false>(s, panels, count, row, col, nullptr, c);
  if (row < s.m) {
    __m256i masks[MR];
    for (int r = 0; r < MR; ++r) {
      const index_t left = std::max<index_t>(0, std::min<index_t>(4, s.m - row - 4 * r));
      masks[r] = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(2 * left)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    complex_gemm_tile<MR, NR, true>(s, panels, count, row, col, masks, c);
  }
}

inline void complex_panel_gemm(const complex_gemm_shape& s, const complex_panel<float>* panels, index_t count,
                               std::complex<float>* c) {
  constexpr index_t NR = 3;
  index_t col = 0;
  for (; col + NR <= s.n; col += NR) complex_gemm_columns<2, NR>(s, panels, count, col, c);
  switch (s.n - col) {
    case 2: return complex_gemm_columns<2, 2>(s, panels, count, col, c);
    case 1: return complex_gemm_columns<4, 1>(s, panels, count, col, c);
    default: return;
  }
}

SLIMNN_TARGET_END
}  // namespace avx2
#endif

/// C = sum over the `count` panels of A_t B_t (see the header comment) on `path`.
template <class T>
void complex_panel_gemm(isa path, const complex_gemm_shape& s, const complex_panel<T>* panels, index_t count,
                        std::complex<T>* c) {
#if defined(SLIMNN_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    if (path == isa::avx512) return avx512::complex_panel_gemm(s, panels, count, c);
    if (path == isa::avx2) return avx2::complex_panel_gemm(s, panels, count, c);
  }
#endif
  (void)path;
  complex_panel_gemm_portable(s, panels, count, c);
}

}  // namespace slimnn::kernels
