// slimnn/kernels/pool.hpp — the 2x2, stride-2 max pool of inference (layers/pool2d.hpp),
// portable, AVX2 and AVX-512, dispatched at run time.
//
//   y[c][oh][ow] = the maximum of a = x[c][2oh][2ow], b = x[c][2oh][2ow+1],
//                  c = x[c][2oh+1][2ow], d = x[c][2oh+1][2ow+1]
// taken as best = a, then best = v > best ? v : best for v = b, c, d: the first maximum
// on ties, and the same result for NaNs and signed zeros on every path (the vector
// paths deinterleave each row into even and odd columns and apply the same selects, as
// `max` instructions whose second operand is `best`). So every path is bit-identical.
// Shapes: x is channels planes of in_h x in_w (row-major, one sample); y is channels
// planes of (in_h / 2) x (in_w / 2); an odd last row or column is not read.
// Cost: 3 compares per output; one pass over x. Vector paths: 16 (AVX-512) or 8 (AVX2)
// outputs per step, masked loads and stores at the end of a row (AVX-512 runs rows of at
// most 8 outputs as AVX2 does: one step, with in-lane shuffles instead of permutes).
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "slimnn/core/types.hpp"
#include "slimnn/kernels/isa.hpp"

namespace slimnn::kernels {

namespace portable {
template <class T>
void max_pool_2x2(const T* x, index_t channels, index_t in_h, index_t in_w, T* y) {
  const index_t out_h = in_h / 2, out_w = in_w / 2;
  for (index_t c = 0; c < channels; ++c)
    for (index_t oh = 0; oh < out_h; ++oh) {
      const T* r0 = x + (c * in_h + 2 * oh) * in_w;
      const T* r1 = r0 + in_w;
      T* dst = y + (c * out_h + oh) * out_w;
      for (index_t ow = 0; ow < out_w; ++ow) {
        T best = r0[2 * ow];
        best = r0[2 * ow + 1] > best ? r0[2 * ow + 1] : best;
        best = r1[2 * ow] > best ? r1[2 * ow] : best;
        dst[ow] = r1[2 * ow + 1] > best ? r1[2 * ow + 1] : best;
      }
    }
}
}  // namespace portable

#if defined(SLIMNN_X86_KERNELS)
namespace avx2 {
SLIMNN_TARGET_AVX2
/// `count` (<= 8) lanes on, the rest off, as a maskload / maskstore mask.
inline __m256i pool_lanes(index_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Even and odd columns of 2 * count (<= 16) floats at p, each in the lane order
/// 0 2 8 10 4 6 12 14 / 1 3 9 11 5 7 13 15 (put right by one permute at the end).
inline void pool_deinterleave(const float* p, index_t count, __m256& even, __m256& odd) {
  const __m256 lo = count >= 4 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, pool_lanes(2 * count));
  const __m256 hi = count >= 8 ? _mm256_loadu_ps(p + 8)
                               : _mm256_maskload_ps(p + 8, pool_lanes(std::max<index_t>(2 * count - 8, 0)));
  even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  odd = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}

inline void max_pool_2x2(const float* x, index_t channels, index_t in_h, index_t in_w, float* y) {
  const index_t out_h = in_h / 2, out_w = in_w / 2;
  for (index_t c = 0; c < channels; ++c)
    for (index_t oh = 0; oh < out_h; ++oh) {
      const float* r0 = x + (c * in_h + 2 * oh) * in_w;
      const float* r1 = r0 + in_w;
      float* dst = y + (c * out_h + oh) * out_w;
      for (index_t ow = 0; ow < out_w; ow += 8) {
        const index_t count = std::min<index_t>(8, out_w - ow);
        __m256 a, b, c0, d;
        pool_deinterleave(r0 + 2 * ow, count, a, b);
        pool_deinterleave(r1 + 2 * ow, count, c0, d);
        __m256 best = _mm256_max_ps(b, a);  // b > a ? b : a
        best = _mm256_max_ps(c0, best);
        best = _mm256_max_ps(d, best);
        best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
        if (count == 8) _mm256_storeu_ps(dst + ow, best);
        else _mm256_maskstore_ps(dst + ow, pool_lanes(count), best);
      }
    }
}
SLIMNN_TARGET_END
}  // namespace avx2

namespace avx512 {
SLIMNN_TARGET_AVX512
/// `count` (<= 16) lanes on, the rest off.
inline __mmask16 pool_lanes(index_t count) { return __mmask16(count >= 16 ? 0xFFFFu : (1u << count) - 1); }

inline void max_pool_2x2(const float* x, index_t channels, index_t in_h, index_t in_w, float* y) {
  const index_t out_h = in_h / 2, out_w = in_w / 2;
  if (out_w <= 8) return avx2::max_pool_2x2(x, channels, in_h, in_w, y);  // one 8-lane step a row
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (index_t c = 0; c < channels; ++c)
    for (index_t oh = 0; oh < out_h; ++oh) {
      const float* r0 = x + (c * in_h + 2 * oh) * in_w;
      const float* r1 = r0 + in_w;
      float* dst = y + (c * out_h + oh) * out_w;
      for (index_t ow = 0; ow < out_w; ow += 16) {
        const index_t count = std::min<index_t>(16, out_w - ow);
        const __mmask16 lo = pool_lanes(2 * count), hi = pool_lanes(std::max<index_t>(2 * count - 16, 0));
        const __m512 p0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ow), p1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ow + 16);
        const __m512 q0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ow), q1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ow + 16);
        __m512 best = _mm512_max_ps(_mm512_permutex2var_ps(p0, odd, p1), _mm512_permutex2var_ps(p0, even, p1));
        best = _mm512_max_ps(_mm512_permutex2var_ps(q0, even, q1), best);
        best = _mm512_max_ps(_mm512_permutex2var_ps(q0, odd, q1), best);
        _mm512_mask_storeu_ps(dst + ow, pool_lanes(count), best);
      }
    }
}
SLIMNN_TARGET_END
}  // namespace avx512
#endif

/// y = the 2x2, stride-2 max pool of x on `path` (see the top); float runs the vector
/// paths, other types the portable loop.
template <class T>
void max_pool_2x2(isa path, const T* x, index_t channels, index_t in_h, index_t in_w, T* y) {
#if defined(SLIMNN_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    if (path == isa::avx512) return avx512::max_pool_2x2(x, channels, in_h, in_w, y);
    if (path == isa::avx2) return avx2::max_pool_2x2(x, channels, in_h, in_w, y);
  }
#endif
  (void)path;
  portable::max_pool_2x2(x, channels, in_h, in_w, y);
}

}  // namespace slimnn::kernels
