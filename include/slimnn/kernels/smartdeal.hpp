// slimnn/kernels/smartdeal.hpp — SmartDeal's sparse stage (smartdeal/smartdeal_matrix.hpp),
// portable, AVX2 and AVX-512, dispatched at run time by kernel path.
//
// y[o] = sum over the units u of row o (start[o] <= u < start[o + 1]), j < width, of
// coef[u * width + j] * z[offset[u] + j]: a unit is a kept segment of `width` = s
// coefficients (segment layout) or one nonzero (width 1, element layout), z the basis
// transform of the input. Vector variants for float: segments of s = 8 (AVX2: one 8-wide
// FMA per segment, 4 chains; AVX-512: two segments per 16-wide FMA) and single nonzeros
// (both paths: 8-lane gathers beside scalar FMAs); everything else runs the portable
// loop. The vector variants sum in another order than the portable one
// (they agree to rounding).
// Exponent codes (smartdeal_gemv_s8_codes): power-of-two coefficients c = +-2^e with
// e <= e_max stored as one int8 each, v = sign << 7 | (e - e_max + 127) (0 for a pruned
// element; needs e_max - e_min <= 126), a quarter of the float bytes. Decoding is the
// float's bit pattern (int32(v) << 23) & ~(1 << 30) = c / 2^e_max, so the sums are those
// of the float coefficients scaled by exactly 2^-e_max; y is multiplied back by
// scale = 2^e_max. Each path gives the same values as its float-coefficient kernel.
// Batches (smartdeal_gemm): Yt (n x rows, column-major) from Zc (n x K, column-major: z
// entry k of every sample contiguous), Yt[t, o] = sum over row o's slots of coef * Zc[t,
// offset + j]; tiles of 64 samples (AVX-512: 4 x 16 lanes; AVX2: 2 passes of 4 x 8) keep
// 8 accumulators per row (below), each coefficient broadcast once per tile (AVX-512 then
// runs a tile of 32 samples, as 4 sets of 2 vectors); the samples past the last full tile
// are masked.
// Full tiles walk the columns in blocks (row_block_walk, column_block) of at least 96
// (AVX-512, 64 samples: 24 KiB of z) or 128 (AVX2, 32 samples: 16 KiB) columns, up to 4x
// that where the rows are sparse, keeping each row's partial sums in Yt between blocks.
// Both add a row's slots in turn into sets of accumulators (AVX2: 2 sets of 4; AVX-512:
// 2 of 4 or 4 of 2; 8 FMA chains in flight, where 4 waited on the FMA latency) and add the
// sets when the row's block ends, so their sums differ from the portable loop's by
// rounding. Each row's coefficients are prefetched four rows ahead in the walk.
// Cost: one MAC per stored coefficient, reads coef, offset and the z values it names.
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "slimnn/core/types.hpp"
#include "slimnn/kernels/isa.hpp"

namespace slimnn::kernels {

/// Coefficient readers: slot k's value, and (SIMD) 8 or 16 values from slot k on.
template <class T>
struct float_coefficients {
  const T* values;
  T operator[](index_t k) const { return values[k]; }
};
/// The float c / 2^e_max of an exponent code (see the header comment).
inline float decode_exponent_code(std::int8_t v) {
  const std::uint32_t bits = (std::uint32_t(std::int32_t(v)) << 23) & ~(std::uint32_t(1) << 30);
  return std::bit_cast<float>(bits);
}
struct coded_coefficients {
  const std::int8_t* codes;
  float operator[](index_t k) const { return decode_exponent_code(codes[k]); }
};

/// The portable loop (the reference); y[o] is the sum times `scale`.
template <class T, class Coefficients>
void smartdeal_gemv_portable(index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                             Coefficients coef, const T* z, T scale, T* y) {
  for (index_t o = 0; o < rows; ++o) {
    T acc = T(0);
    for (index_t u = start[o]; u < start[o + 1]; ++u) {
      const T* zz = z + offset[u];
      for (index_t j = 0; j < width; ++j) acc += coef[u * width + j] * zz[j];
    }
    y[o] = acc * scale;
  }
}

/// Where the batched stage reads the z values of slot u: its j-th column starts at
/// at(u) + j * step, sample t at + t. Column-major Zc (n x K): base = the slots' column
/// offsets, scale = step = n (column_z_source). Other layouts give each slot its own
/// start (scale 1) and a column step, e.g. smartdeal_conv2d's planes of row transforms.
template <class T>
struct z_source {
  const T* z;
  const std::uint32_t* base;
  index_t scale, step;
  const T* at(index_t u) const { return z + index_t(base[u]) * scale; }
};
template <class T>
z_source<T> column_z_source(const T* zc, const std::uint32_t* offset, index_t n) {
  return {zc, offset, n, n};
}

/// The batched stage, portable (see the header comment).
template <class T>
void smartdeal_gemm_portable(index_t rows, index_t width, const index_t* start, const T* coef, z_source<T> zs,
                             index_t n, T* yt) {
  for (index_t o = 0; o < rows; ++o) {
    T* y = yt + o * n;
    std::fill(y, y + n, T(0));
    for (index_t u = start[o]; u < start[o + 1]; ++u)
      for (index_t j = 0; j < width; ++j) {
        const T c = coef[u * width + j];
        const T* z = zs.at(u) + j * zs.step;
        for (index_t t = 0; t < n; ++t) y[t] += c * z[t];
      }
  }
}

/// The exponent code of c = 0 or +-2^e, e_max - 126 <= e <= e_max.
inline std::int8_t exponent_code(float c, int max_exponent) {
  if (c == 0.0f) return 0;
  const int field = int((std::bit_cast<std::uint32_t>(c) >> 23) & 0xFFu);  // ilogb(c) + 127 when normal
  const int biased = (field > 0 ? field - 127 : std::ilogb(c)) - max_exponent + 127;
  return std::int8_t(std::uint8_t((c < 0 ? 0x80 : 0) | biased));
}

/// Columns per block of the batched stage's tiles, whole slots of `width`: at least
/// `l1_columns` (whose z values fill about half of L1 at the path's tile of samples), more
/// where the rows are sparse, up to 4 x that (the z values then come from L2): enough for
/// 8 slots per row on average, since each visit of a row in a block loads and stores its
/// accumulators. (4096 x 4096 at 10 % of the segments: 1.6 slots per row in 128 columns,
/// and AVX2's batch of 64 took 6.4 ms, 4.8 in 512.)
inline index_t column_block(index_t width, index_t l1_columns, index_t rows, const index_t* start,
                            const std::uint32_t* offset) {
  index_t span = 0;
  for (index_t r = 0; r < rows; ++r)
    if (start[r + 1] > start[r]) span = std::max(span, index_t(offset[start[r + 1] - 1]) + width);
  const index_t slots = start[rows] - start[0];
  const index_t wanted = slots > 0 ? (8 * span * rows + slots - 1) / slots : l1_columns;
  const index_t target = std::clamp(wanted, l1_columns, 4 * l1_columns);
  return std::max(width, target / width * width);
}

/// The batched stage's walk over one tile of samples, blocked so that the z values one
/// block of columns holds stay in L1: for rows in groups of 256 and blocks of `block`
/// columns, next() yields every row o with slots in the block, with [first, last) its
/// next slots whose offset lies below the block's end (so every row still takes its
/// slots in order) and `begin` set when they are its first. A row without slots is
/// yielded once, empty, with `begin` set. (A class, not a callback: the SIMD kernels
/// call it from their target regions, where lambdas would not get the region's target.)
class row_block_walk {
 public:
  row_block_walk(index_t rows, const index_t* start, const std::uint32_t* offset, index_t block)
      : rows_(rows), block_(block), start_(start), offset_(offset) {}

  /// Prefetches the coefficients of upcoming()'s first 8 slots of `width` and their
  /// offsets, which come from L3 or memory: a row's slots in a block are a few hundred
  /// cycles of work, memory about as far. (Two rows ahead and 2 slots' worth, a third of
  /// AVX2's batch-64 profile waited on a row's first coefficient, a fifth now: 4096 x 4096
  /// at seg10 runs about 15 % faster on AVX2 and 10 % on AVX-512 (medians of 7-15 runs
  /// each, on a noisy host).) Always inlined: GCC takes a function that only prefetches for
  /// pure and drops the call.
  [[gnu::always_inline]] void prefetch_upcoming(const float* coef, index_t width) const {
    const index_t ahead = upcoming();
    if (ahead < 0) return;
    for (index_t k = 0; k < 8 * width; k += 16) __builtin_prefetch(coef + ahead * width + k);  // 64-byte lines
    __builtin_prefetch(offset_ + ahead);
  }

  bool next(index_t& o, index_t& first, index_t& last, bool& begin) {
    for (;;) {
      if (o0_ >= rows_) return false;
      if (!ready_) start_group();
      while (empty_scan_ && row_ < o1_) {
        const index_t r = row_++;
        if (start_[r + 1] == start_[r]) {
          o = r, first = last = start_[r], begin = true;
          return true;
        }
      }
      if (empty_scan_) empty_scan_ = false, row_ = o0_;
      while (pending_ > 0) {
        while (row_ < o1_) {
          const index_t r = row_++;
          index_t u = cursor_[r - o0_];
          const index_t from = u, to = start_[r + 1];
          while (u < to && index_t(offset_[u]) < end_) ++u;
          if (u == from) continue;
          cursor_[r - o0_] = u;
          pending_ -= u == to;
          o = r, first = from, last = u, begin = from == start_[r];
          return true;
        }
        end_ += block_, row_ = o0_;
      }
      o0_ += group, ready_ = false;
    }
  }

 private:
  static constexpr index_t group = 256;
  /// The first slot that the fourth row after the one just yielded will take in this
  /// block (-1 near a group's end).
  index_t upcoming() const { return row_ + 3 < o1_ ? cursor_[row_ + 3 - o0_] : -1; }
  void start_group() {
    o1_ = std::min(rows_, o0_ + group), pending_ = 0, row_ = o0_, end_ = block_;
    for (index_t r = o0_; r < o1_; ++r) {
      cursor_[r - o0_] = start_[r];
      pending_ += start_[r + 1] > start_[r];
    }
    ready_ = empty_scan_ = true;
  }

  index_t rows_, block_;
  const index_t* start_;
  const std::uint32_t* offset_;
  index_t o0_ = 0, o1_ = 0, row_ = 0, end_ = 0, pending_ = 0, cursor_[group] = {};
  bool ready_ = false, empty_scan_ = false;
};

#if defined(SLIMNN_X86_KERNELS)

namespace avx2 {
SLIMNN_TARGET_AVX2

inline float horizontal_sum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/// 8 coefficients from slot k on.
inline __m256 load8(float_coefficients<float> c, index_t k) { return _mm256_loadu_ps(c.values + k); }
inline __m256 load8(coded_coefficients c, index_t k) {
  const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c.codes + k)));
  return _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(v, 23), _mm256_set1_epi32(~(1 << 30))));
}

/// Segment layout with s = 8: one segment per FMA, four chains.
template <class Coefficients>
void smartdeal_gemv_s8(index_t rows, const index_t* start, const std::uint32_t* offset, Coefficients coef,
                       const float* z, float scale, float* y) {
  for (index_t o = 0; o < rows; ++o) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    index_t u = start[o];
    const index_t end = start[o + 1];
    for (; u + 4 <= end; u += 4) {
      a0 = _mm256_fmadd_ps(load8(coef, u * 8), _mm256_loadu_ps(z + offset[u]), a0);
      a1 = _mm256_fmadd_ps(load8(coef, u * 8 + 8), _mm256_loadu_ps(z + offset[u + 1]), a1);
      a2 = _mm256_fmadd_ps(load8(coef, u * 8 + 16), _mm256_loadu_ps(z + offset[u + 2]), a2);
      a3 = _mm256_fmadd_ps(load8(coef, u * 8 + 24), _mm256_loadu_ps(z + offset[u + 3]), a3);
    }
    for (; u < end; ++u) a0 = _mm256_fmadd_ps(load8(coef, u * 8), _mm256_loadu_ps(z + offset[u]), a0);
    y[o] = horizontal_sum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) * scale;
  }
}

/// The batched stage's full tiles of 32 samples: per row, 2 sets of 4 x 8-lane
/// accumulators (even and odd slots). Width: the slot width if known at compile time
/// (the segments of s = 3 and 8 unroll), else 0 and `runtime_width`.
template <int Width>
void smartdeal_gemm_tiles(index_t rows, index_t runtime_width, const index_t* start, const std::uint32_t* offset,
                          const float* coef, z_source<float> zs, index_t n, float* yt) {
  const index_t width = Width > 0 ? Width : runtime_width, full = n / 32 * 32;
  const index_t block = column_block(width, 128, rows, start, offset);  // 128 x 32 samples: 16 KiB
  index_t o, first, last;
  bool begin;
  for (index_t t = 0; t < full; t += 32)
    for (row_block_walk walk(rows, start, offset, block); walk.next(o, first, last, begin);) {
      walk.prefetch_upcoming(coef, width);
      float* y = yt + o * n + t;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      if (!begin) a0 = _mm256_loadu_ps(y), a1 = _mm256_loadu_ps(y + 8), a2 = _mm256_loadu_ps(y + 16), a3 = _mm256_loadu_ps(y + 24);
      index_t u = first;
      for (; u + 1 < last; u += 2) {  // two slots at a time, into two sets: 8 FMA chains
        const float* z = zs.at(u) + t;
        const float* w = zs.at(u + 1) + t;
        for (index_t j = 0; j < width; ++j, z += zs.step, w += zs.step) {
          const __m256 c = _mm256_broadcast_ss(coef + u * width + j);
          const __m256 d = _mm256_broadcast_ss(coef + (u + 1) * width + j);
          a0 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z), a0);
          a1 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z + 8), a1);
          a2 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z + 16), a2);
          a3 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z + 24), a3);
          b0 = _mm256_fmadd_ps(d, _mm256_loadu_ps(w), b0);
          b1 = _mm256_fmadd_ps(d, _mm256_loadu_ps(w + 8), b1);
          b2 = _mm256_fmadd_ps(d, _mm256_loadu_ps(w + 16), b2);
          b3 = _mm256_fmadd_ps(d, _mm256_loadu_ps(w + 24), b3);
        }
      }
      if (u < last) {
        const float* z = zs.at(u) + t;
        for (index_t j = 0; j < width; ++j, z += zs.step) {
          const __m256 c = _mm256_broadcast_ss(coef + u * width + j);
          a0 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z), a0);
          a1 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z + 8), a1);
          a2 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z + 16), a2);
          a3 = _mm256_fmadd_ps(c, _mm256_loadu_ps(z + 24), a3);
        }
      }
      _mm256_storeu_ps(y, _mm256_add_ps(a0, b0)), _mm256_storeu_ps(y + 8, _mm256_add_ps(a1, b1));
      _mm256_storeu_ps(y + 16, _mm256_add_ps(a2, b2)), _mm256_storeu_ps(y + 24, _mm256_add_ps(a3, b3));
    }
}

/// The batched stage: full tiles of 32 samples (above), then the rest in masked 8-lane
/// steps.
inline void smartdeal_gemm(index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                           const float* coef, z_source<float> zs, index_t n, float* yt) {
  if (width == 3) smartdeal_gemm_tiles<3>(rows, width, start, offset, coef, zs, n, yt);
  else if (width == 8) smartdeal_gemm_tiles<8>(rows, width, start, offset, coef, zs, n, yt);
  else smartdeal_gemm_tiles<0>(rows, width, start, offset, coef, zs, n, yt);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (index_t t = n / 32 * 32; t < n; t += 8) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - t)), lane);
    for (index_t o = 0; o < rows; ++o) {
      __m256 a = _mm256_setzero_ps();
      for (index_t u = start[o]; u < start[o + 1]; ++u) {
        const float* z = zs.at(u) + t;
        for (index_t j = 0; j < width; ++j, z += zs.step)
          a = _mm256_fmadd_ps(_mm256_broadcast_ss(coef + u * width + j), _mm256_maskload_ps(z, m), a);
      }
      _mm256_maskstore_ps(yt + o * n + t, m, a);
    }
  }
}

/// Element layout: per 16 nonzeros, one 8-lane gather + FMA and 8 scalar FMAs (4 chains),
/// so that the gather unit and the scalar loads work side by side; the last < 16 scalar.
/// (Gathers alone took 1.5x as long on Zen 5, and 16-lane AVX-512 gathers 1.1x: AMD's
/// gathers are microcoded; scalar loads alone 1.1x.)
inline void smartdeal_gemv_e1(index_t rows, const index_t* start, const std::uint32_t* offset, const float* coef,
                              const float* z, float* y) {
  for (index_t o = 0; o < rows; ++o) {
    __m256 v = _mm256_setzero_ps();
    __m128 a[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    index_t u = start[o];
    const index_t end = start[o + 1];
    for (; u + 16 <= end; u += 16) {
      const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(offset + u));
      v = _mm256_fmadd_ps(_mm256_loadu_ps(coef + u), _mm256_i32gather_ps(z, idx, 4), v);
#pragma GCC unroll 8
      for (int k = 8; k < 16; ++k)
        a[k % 4] = _mm_fmadd_ss(_mm_load_ss(coef + u + k), _mm_load_ss(z + offset[u + k]), a[k % 4]);
    }
    for (; u + 4 <= end; u += 4)
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) a[k] = _mm_fmadd_ss(_mm_load_ss(coef + u + k), _mm_load_ss(z + offset[u + k]), a[k]);
    for (; u < end; ++u) a[0] = _mm_fmadd_ss(_mm_load_ss(coef + u), _mm_load_ss(z + offset[u]), a[0]);
    const __m128 scalar = _mm_add_ss(_mm_add_ss(a[0], a[1]), _mm_add_ss(a[2], a[3]));
    y[o] = _mm_cvtss_f32(scalar) + horizontal_sum(v);
  }
}

SLIMNN_TARGET_END
}  // namespace avx2

namespace avx512 {
SLIMNN_TARGET_AVX512

inline __m512 segment_pair(const float* z, const std::uint32_t* offset, index_t u) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(z + offset[u])), _mm256_loadu_ps(z + offset[u + 1]),
                            1);
}

/// 16 coefficients (two segments) from slot k on.
inline __m512 load16(float_coefficients<float> c, index_t k) { return _mm512_loadu_ps(c.values + k); }
inline __m512 load16(coded_coefficients c, index_t k) {
  const __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c.codes + k)));
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(v, 23), _mm512_set1_epi32(~(1 << 30))));
}

/// Segment layout with s = 8: two segments per 16-lane FMA.
template <class Coefficients>
void smartdeal_gemv_s8(index_t rows, const index_t* start, const std::uint32_t* offset, Coefficients coef,
                       const float* z, float scale, float* y) {
  for (index_t o = 0; o < rows; ++o) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    index_t u = start[o];
    const index_t end = start[o + 1];
    for (; u + 4 <= end; u += 4) {
      acc0 = _mm512_fmadd_ps(load16(coef, u * 8), segment_pair(z, offset, u), acc0);
      acc1 = _mm512_fmadd_ps(load16(coef, u * 8 + 16), segment_pair(z, offset, u + 2), acc1);
    }
    if (u + 2 <= end) {
      acc0 = _mm512_fmadd_ps(load16(coef, u * 8), segment_pair(z, offset, u), acc0);
      u += 2;
    }
    if (u < end)
      acc1 = _mm512_add_ps(acc1, _mm512_zextps256_ps512(
                                     _mm256_mul_ps(avx2::load8(coef, u * 8), _mm256_loadu_ps(z + offset[u]))));
    y[o] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) * scale;
  }
}

/// The batched stage: per row and tile of 64 samples, 4 x 16-lane accumulators; the
/// samples past the last full tile in masked 16-lane steps.
/// The batched stage's full tiles of 16 V samples (V = 4 or 2 vectors) from sample t0 on:
/// per row, 8 / V sets of V 16-lane accumulators (slots in turn), 8 FMA chains in all;
/// Width as for AVX2.
template <int Width, int V>
void smartdeal_gemm_tiles(index_t rows, index_t runtime_width, const index_t* start, const std::uint32_t* offset,
                          const float* coef, z_source<float> zs, index_t n, index_t t0, index_t t1, float* yt) {
  constexpr int S = 8 / V;
  if (t1 - t0 < 16 * V) return;  // no full tile (and no column_block scan of the rows)
  const index_t width = Width > 0 ? Width : runtime_width;
  const index_t block = column_block(width, 384 / V, rows, start, offset);  // 24 KiB of z at least
  index_t o, first, last;
  bool begin;
  for (index_t t = t0; t + 16 * V <= t1; t += 16 * V)
    for (row_block_walk walk(rows, start, offset, block); walk.next(o, first, last, begin);) {
      walk.prefetch_upcoming(coef, width);
      float* y = yt + o * n + t;
      __m512 acc[S][V];
      for (int set = 0; set < S; ++set)
        for (int v = 0; v < V; ++v) acc[set][v] = begin || set > 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(y + 16 * v);
      index_t u = first;
      for (; u + S <= last; u += S) {
        const float* z[S];
        for (int set = 0; set < S; ++set) z[set] = zs.at(u + set) + t;
        for (index_t j = 0; j < width; ++j)
          for (int set = 0; set < S; ++set) {
            const __m512 c = _mm512_set1_ps(coef[(u + set) * width + j]);
            for (int v = 0; v < V; ++v)
              acc[set][v] = _mm512_fmadd_ps(c, _mm512_loadu_ps(z[set] + j * zs.step + 16 * v), acc[set][v]);
          }
      }
      for (; u < last; ++u) {
        const float* z = zs.at(u) + t;
        for (index_t j = 0; j < width; ++j) {
          const __m512 c = _mm512_set1_ps(coef[u * width + j]);
          for (int v = 0; v < V; ++v) acc[0][v] = _mm512_fmadd_ps(c, _mm512_loadu_ps(z + j * zs.step + 16 * v), acc[0][v]);
        }
      }
      for (int v = 0; v < V; ++v) {
        __m512 sum = acc[0][v];
        for (int set = 1; set < S; ++set) sum = _mm512_add_ps(sum, acc[set][v]);
        _mm512_storeu_ps(y + 16 * v, sum);
      }
    }
}

template <int V>
void smartdeal_gemm_tiles(index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                          const float* coef, z_source<float> zs, index_t n, index_t t0, index_t t1, float* yt) {
  if (width == 3) smartdeal_gemm_tiles<3, V>(rows, width, start, offset, coef, zs, n, t0, t1, yt);
  else if (width == 8) smartdeal_gemm_tiles<8, V>(rows, width, start, offset, coef, zs, n, t0, t1, yt);
  else smartdeal_gemm_tiles<0, V>(rows, width, start, offset, coef, zs, n, t0, t1, yt);
}

/// The batched stage: full tiles of 64 samples, a tile of 32, then masked steps.
inline void smartdeal_gemm(index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                           const float* coef, z_source<float> zs, index_t n, float* yt) {
  const index_t full = n / 64 * 64;
  smartdeal_gemm_tiles<4>(rows, width, start, offset, coef, zs, n, 0, full, yt);
  smartdeal_gemm_tiles<2>(rows, width, start, offset, coef, zs, n, full, n, yt);
  index_t t = full + (n - full) / 32 * 32;
  for (; t < n; t += 16) {
    const __mmask16 m = n - t >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - t)) - 1u);
    for (index_t o = 0; o < rows; ++o) {
      __m512 a = _mm512_setzero_ps();
      for (index_t u = start[o]; u < start[o + 1]; ++u) {
        const float* z = zs.at(u) + t;
        for (index_t j = 0; j < width; ++j, z += zs.step)
          a = _mm512_fmadd_ps(_mm512_set1_ps(coef[u * width + j]), _mm512_maskz_loadu_ps(m, z), a);
      }
      _mm512_mask_storeu_ps(yt + o * n + t, m, a);
    }
  }
}

SLIMNN_TARGET_END
}  // namespace avx512

#endif  // SLIMNN_X86_KERNELS

/// The sparse stage on the given path (see the header comment).
template <class T>
void smartdeal_gemv(isa path, index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                    const T* coef, const T* z, T* y) {
#if defined(SLIMNN_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    const float_coefficients<float> c{coef};
    if (path == isa::avx512 && width == 8) return avx512::smartdeal_gemv_s8(rows, start, offset, c, z, 1.0f, y);
    if (path == isa::avx2 && width == 8) return avx2::smartdeal_gemv_s8(rows, start, offset, c, z, 1.0f, y);
    if (path >= isa::avx2 && width == 1) return avx2::smartdeal_gemv_e1(rows, start, offset, coef, z, y);  // both paths
  }
#endif
  (void)path;
  smartdeal_gemv_portable(rows, width, start, offset, float_coefficients<T>{coef}, z, T(1), y);
}

/// The batched stage on the given path (see the header comment).
/// `offset` holds the slots' column offsets (the SIMD kernels block the columns by them);
/// `zs` says where their z values are.
template <class T>
void smartdeal_gemm(isa path, index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                    const T* coef, z_source<T> zs, index_t n, T* yt) {
#if defined(SLIMNN_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    if (path == isa::avx512) return avx512::smartdeal_gemm(rows, width, start, offset, coef, zs, n, yt);
    if (path == isa::avx2) return avx2::smartdeal_gemm(rows, width, start, offset, coef, zs, n, yt);
  }
#endif
  (void)path, (void)offset;
  smartdeal_gemm_portable(rows, width, start, coef, zs, n, yt);
}
/// The same over a column-major Zc (n x K).
template <class T>
void smartdeal_gemm(isa path, index_t rows, index_t width, const index_t* start, const std::uint32_t* offset,
                    const T* coef, const T* zc, index_t n, T* yt) {
  smartdeal_gemm(path, rows, width, start, offset, coef, column_z_source(zc, offset, n), n, yt);
}

/// Segments of 8 exponent-coded coefficients on the given path (see the header comment).
inline void smartdeal_gemv_s8_codes(isa path, index_t rows, const index_t* start, const std::uint32_t* offset,
                                    const std::int8_t* codes, const float* z, float scale, float* y) {
  const coded_coefficients c{codes};
#if defined(SLIMNN_X86_KERNELS)
  if (path == isa::avx512) return avx512::smartdeal_gemv_s8(rows, start, offset, c, z, scale, y);
  if (path == isa::avx2) return avx2::smartdeal_gemv_s8(rows, start, offset, c, z, scale, y);
#endif
  (void)path;
  smartdeal_gemv_portable(rows, 8, start, offset, c, z, scale, y);
}

}  // namespace slimnn::kernels
