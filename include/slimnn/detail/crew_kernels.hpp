// slimnn/detail/crew_kernels.hpp — the gather kernels of CREW (slimnn/crew/crew_dense.hpp).
//
// Per sample, every active input i (x_i != 0) has a table of products P_i[u] = x_i * U_i[u]
// (u < u_i); the kernels compute acc_j = sum over active i, in ascending order, of
// P_i[idx(j, i)] — gathers and adds only. Two index layouts:
//
//   packed  one detail::packed_bits per input (outputs values of ceil(log2 u_i) bits, or
//           one width per layer): the compact form; portable kernel only.
//   lanes   one width w in {1, 2, 4} bits for the layer (all u_i <= 16), in rows of G
//           interleaved inputs x P positions (group G = 1, P = 32, rows of 32 bytes; or
//           G = 4, P = 16, rows of 64 bytes). Outputs are cut into blocks of P * (8 / w);
//           block b stores, for every group of G inputs, one row at
//           bytes[(b * ceil(inputs / G) + i / G) * P * G]; bits [f w, (f + 1) w) of row
//           byte p G + i % G hold the index of output b P (8 / w) + f P + p (field f) for
//           input i. Padding outputs and inputs hold index 0. G = 1 is the file layout and
//           the AVX2 one (a vpshufb with a 16-entry table looks up one field of 32 outputs);
//           G = 4 is the AVX-512 VBMI + VNNI one (crew_native_group says which this build
//           keeps in memory).
//
// Float path: acc (T) from tables of T. AVX2 (float only): per 8 outputs, vpermps looks up
// the table (two lookups and a blend for u_i > 8). Same additions in the same order as
// the portable kernel, so both give identical results.
// Int8 path: x_i int8, codes int8, products exact in 16 bits: p in [-16256, 16256].
// Portable: int32 tables. AVX2: p' = p + 32768 (unsigned 16 bits) is split into a low-byte
// table and a high-byte table (16 entries each, the 32 bytes stored per active input).
// vpshufb gathers the bytes of 32 outputs; 16-bit accumulators keep, per 16-bit lane,
// the lane sum (even byte + 256 * odd byte, mod 2^16) and the odd-byte sum (vpmaddubsw
// with (0, 1)), which give both byte sums exactly for up to 256 inputs; every 256 inputs
// they are flushed to int32 as low + 256 * high - 32768 * count. One pass handles two
// fields (64 outputs): two 256-bit vectors, or one 512-bit vector when the compiler targets
// AVX-512BW (the same vpshufb algorithm, twice as wide). The index stream is prefetched
// 2 KiB ahead.
// AVX-512 VBMI + VNNI (group 4): per group of 4 inputs, a 64-byte table of the low product
// bytes and one of the high bytes (16 per input, p = x_i * code in int16, no bias); one
// vpermb per table looks up 16 outputs x 4 inputs, and vpdpbusd adds each output's 4 bytes
// straight into int32 (low as unsigned, high as signed bytes; total = low + 256 high):
// 11 vector instructions per 128 products at w = 4, against 10 per 64 for vpshufb. It runs
// w blocks at once: w concurrent index streams (one sequential stream cannot be fetched
// fast enough from L3) sharing each table load. Float:
// vpermps on 16-float tables, 16 outputs per instruction. Integer sums are exact, so every
// path agrees bit for bit.
// Thread safety: pure functions of their arguments.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "slimnn/core/types.hpp"
#include "slimnn/detail/bitpack.hpp"

namespace slimnn::detail {

#if defined(__AVX512VBMI__) && defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define SLIMNN_CREW_AVX512 1
/// Inputs interleaved per 4-byte word of the in-memory lanes layout of this build (the
/// layer checks its own layout's group before taking a kernel, so translation units built
/// with different flags still agree).
inline constexpr int crew_native_group = 4;
#else
inline constexpr int crew_native_group = 1;
#endif

/// The lanes index layout (see the header comment).
struct crew_lanes {
  int width = 4;  ///< bits per index: 1, 2 or 4
  int group = 1;  ///< inputs interleaved per 4-byte word: 1 or 4
  index_t inputs = 0, outputs = 0;
  std::vector<std::uint8_t> bytes;

  crew_lanes() = default;
  crew_lanes(index_t inputs_, index_t outputs_, int width_, int group_ = crew_native_group)
      : width(width_), group(group_), inputs(inputs_), outputs(outputs_) {
    bytes.assign(std::size_t(blocks() * groups() * row_bytes()), 0);
  }
  int fields() const { return 8 / width; }
  index_t positions() const { return group == 1 ? 32 : 16; }  ///< outputs per field
  index_t row_bytes() const { return positions() * group; }    ///< 32 or 64
  index_t groups() const { return (inputs + group - 1) / group; }
  index_t block_outputs() const { return positions() * fields(); }
  index_t blocks() const { return (outputs + block_outputs() - 1) / block_outputs(); }
  /// The row of block b holding input i; position p of input i is at row(b, i)[p * group].
  const std::uint8_t* row(index_t b, index_t i) const {
    return bytes.data() + (b * groups() + i / group) * row_bytes() + i % group;
  }
  std::size_t byte_offset(index_t j, index_t i) const {
    return std::size_t((j / block_outputs() * groups() + i / group) * row_bytes() + j % positions() * group + i % group);
  }
  int shift(index_t j) const { return int(j % block_outputs() / positions()) * width; }
  std::uint32_t get(index_t j, index_t i) const {
    return (bytes[byte_offset(j, i)] >> shift(j)) & ((1u << width) - 1u);
  }
  void set(index_t j, index_t i, std::uint32_t v) {
    auto& b = bytes[byte_offset(j, i)];
    const unsigned m = ((1u << width) - 1u) << shift(j);
    b = std::uint8_t((b & ~m) | ((v << shift(j)) & m));
  }
  /// The same indices with another interleave.
  crew_lanes regrouped(int new_group) const {
    crew_lanes r(inputs, outputs, width, new_group);
    for (index_t i = 0; i < inputs; ++i)
      for (index_t j = 0; j < outputs; ++j) r.set(j, i, get(j, i));
    return r;
  }
};

/// The smallest lanes width for tables of at most `max_unique` entries (<= 16).
inline int crew_lanes_width(index_t max_unique) { return max_unique <= 2 ? 1 : max_unique <= 4 ? 2 : 4; }

// --- portable kernels (float and int8 share them through the accumulator type) ---------

/// acc[j] += P[offsets[i] + idx(j, i)] for every active input i, in order; lanes layout.
template <class Acc, class Table>
void crew_gather_lanes(const crew_lanes& lanes, const std::uint32_t* offsets, const Table* P,
                       const std::int32_t* active, index_t active_count, Acc* acc) {
  const unsigned mask = (1u << lanes.width) - 1u;
  for (index_t b = 0; b < lanes.blocks(); ++b)
    for (int f = 0; f < lanes.fields(); ++f) {
      const index_t first = b * lanes.block_outputs() + f * lanes.positions();
      const index_t count = std::min<index_t>(lanes.positions(), lanes.outputs - first);
      if (count <= 0) break;
      const int shift = f * lanes.width;
      Acc* out = acc + first;
      for (index_t k = 0; k < active_count; ++k) {
        const index_t i = active[k];
        const std::uint8_t* row = lanes.row(b, i);
        const Table* t = P + offsets[i];
        for (index_t p = 0; p < count; ++p) out[p] += Acc(t[(row[p * lanes.group] >> shift) & mask]);
      }
    }
}

/// The same for the packed layout (one packed_bits per input).
template <class Acc, class Table>
void crew_gather_packed(const std::vector<packed_bits>& index, const std::uint32_t* offsets, const Table* P,
                        const std::int32_t* active, index_t active_count, index_t outputs, Acc* acc) {
  for (index_t k = 0; k < active_count; ++k) {
    const index_t i = active[k];
    const packed_bits& idx = index[std::size_t(i)];
    const Table* t = P + offsets[i];
    for (index_t j = 0; j < outputs; ++j) acc[j] += Acc(t[idx.get(std::size_t(j))]);
  }
}

#if defined(__AVX2__) && !defined(SLIMNN_CREW_AVX512)

// --- AVX2 float: vpermps lookups, 32 outputs (one field) per pass over the inputs --------

inline void crew_gather_lanes_avx2(const crew_lanes& lanes, const std::uint32_t* offsets, const float* P,
                                   const std::int32_t* active, index_t active_count, float* acc) {
  const __m256i mask = _mm256_set1_epi32((1 << lanes.width) - 1);
  const bool wide = lanes.width == 4;  // up to 16 entries: two 8-entry lookups and a blend
  for (index_t b = 0; b < lanes.blocks(); ++b)
    for (int f = 0; f < lanes.fields(); ++f) {
      const index_t first = b * lanes.block_outputs() + f * 32;
      if (first >= lanes.outputs) break;
      const __m128i shift = _mm_cvtsi32_si128(f * lanes.width);
      __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      const std::uint8_t* block = lanes.bytes.data() + b * lanes.inputs * 32;
      for (index_t k = 0; k < active_count; ++k) {
        const index_t i = active[k];
        const std::uint8_t* row = block + i * 32;
        const float* t = P + offsets[i];
        const __m256 lo = _mm256_loadu_ps(t);
        const __m256 hi = wide ? _mm256_loadu_ps(t + 8) : lo;
        for (int g = 0; g < 4; ++g) {
          const __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * g));
          const __m256i idx = _mm256_and_si256(_mm256_srl_epi32(_mm256_cvtepu8_epi32(raw), shift), mask);
          __m256 v = _mm256_permutevar8x32_ps(lo, idx);
          if (wide)
            v = _mm256_blendv_ps(v, _mm256_permutevar8x32_ps(hi, idx), _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
          a[g] = _mm256_add_ps(a[g], v);
        }
      }
      alignas(32) float out[32];
      for (int g = 0; g < 4; ++g) _mm256_store_ps(out + 8 * g, a[g]);
      const index_t count = std::min<index_t>(32, lanes.outputs - first);
      for (index_t p = 0; p < count; ++p) acc[first + p] += out[p];
    }
}

// --- AVX2 int8: vpshufb lookups of low / high product bytes ------------------------------

/// The 32-byte tables of the active inputs: [low bytes of p' | high bytes of p'] with
/// p' = x_i * code + 32768. `codes` must be readable 16 bytes past every offset.
inline void crew_int8_tables_avx2(const std::int8_t* x, const std::uint32_t* offsets, const std::int8_t* codes,
                                  const std::int32_t* active, index_t active_count, std::uint8_t* tables) {
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12,
                                         14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i bias = _mm256_set1_epi16(std::int16_t(-32768));
  for (index_t k = 0; k < active_count; ++k) {
    const index_t i = active[k];
    const __m256i c = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + offsets[i])));
    const __m256i p = _mm256_xor_si256(_mm256_mullo_epi16(c, _mm256_set1_epi16(x[i])), bias);
    // per 128-bit lane: [8 low bytes | 8 high bytes]; then qwords 0, 2, 1, 3.
    const __m256i t = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(p, split), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tables + k * 32), t);
  }
}

/// Sums over `count` active inputs (at most 256) of fields F and F + 1 of block b (64
/// outputs), from the tables above, added to total[0..63] exactly. The byte sums live in
/// 16-bit lanes: q in 0..31 covers outputs 2q (even byte) and 2q + 1 (odd byte).
/// With AVX-512BW one 512-bit vector holds both fields, else two 256-bit vectors.
template <int W, int F>
void crew_int8_field_pair(const std::uint8_t* block, const std::uint8_t* tables, const std::int32_t* active,
                          index_t count, std::int32_t* total) {
  constexpr index_t prefetch_distance = 64;  // inputs ahead (2 KiB of the index stream)
  alignas(64) std::uint16_t low[32], low_odd[32], high[32], high_odd[32];
#ifdef __AVX512BW__
  const __m512i mask = _mm512_set1_epi8(std::int8_t((1 << W) - 1));
  const __m512i shifts = _mm512_inserti64x4(_mm512_set1_epi16(F * W), _mm256_set1_epi16((F + 1) * W), 1);
  const __m512i odd = _mm512_set1_epi16(0x0100);  // maddubs(x, odd) = the odd byte of each 16-bit lane
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  for (index_t k = 0; k < count; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(block + (index_t(active[k]) + prefetch_distance) * 32), _MM_HINT_T0);
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + index_t(active[k]) * 32)));
    const __m512i idx = _mm512_and_si512(_mm512_srlv_epi16(v, shifts), mask);
    const std::uint8_t* t = tables + k * 32;
    const __m512i l = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t))), idx);
    const __m512i h = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16))), idx);
    s0 = _mm512_add_epi16(s0, l);
    s1 = _mm512_add_epi16(s1, _mm512_maddubs_epi16(l, odd));
    s2 = _mm512_add_epi16(s2, h);
    s3 = _mm512_add_epi16(s3, _mm512_maddubs_epi16(h, odd));
  }
  _mm512_store_si512(low, s0);
  _mm512_store_si512(low_odd, s1);
  _mm512_store_si512(high, s2);
  _mm512_store_si512(high_odd, s3);
#else
  const __m256i mask = _mm256_set1_epi8(std::int8_t((1 << W) - 1));
  const __m256i odd = _mm256_set1_epi16(0x0100);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  for (index_t k = 0; k < count; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(block + (index_t(active[k]) + prefetch_distance) * 32), _MM_HINT_T0);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + index_t(active[k]) * 32));
    const __m256i ia = _mm256_and_si256(_mm256_srli_epi16(v, F * W), mask);
    const __m256i ib = _mm256_and_si256(_mm256_srli_epi16(v, (F + 1) * W), mask);
    const std::uint8_t* t = tables + k * 32;
    const __m256i tl = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
    const __m256i th = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16)));
    const __m256i la = _mm256_shuffle_epi8(tl, ia), ha = _mm256_shuffle_epi8(th, ia);
    const __m256i lb = _mm256_shuffle_epi8(tl, ib), hb = _mm256_shuffle_epi8(th, ib);
    s0 = _mm256_add_epi16(s0, la);
    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(la, odd));
    s2 = _mm256_add_epi16(s2, ha);
    s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(ha, odd));
    s4 = _mm256_add_epi16(s4, lb);
    s5 = _mm256_add_epi16(s5, _mm256_maddubs_epi16(lb, odd));
    s6 = _mm256_add_epi16(s6, hb);
    s7 = _mm256_add_epi16(s7, _mm256_maddubs_epi16(hb, odd));
  }
  auto store = [](std::uint16_t* out, __m256i a, __m256i b) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), a);
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + 16), b);
  };
  store(low, s0, s4);
  store(low_odd, s1, s5);
  store(high, s2, s6);
  store(high_odd, s3, s7);
#endif
  const std::int32_t offset = std::int32_t(32768 * count);
  for (int q = 0; q < 32; ++q) {
    const std::int32_t low_even = std::uint16_t(low[q] - (low_odd[q] << 8));
    const std::int32_t high_even = std::uint16_t(high[q] - (high_odd[q] << 8));
    total[2 * q] += low_even + 256 * high_even - offset;
    total[2 * q + 1] += std::int32_t(low_odd[q]) + 256 * std::int32_t(high_odd[q]) - offset;
  }
}

/// acc[j] = sum over active inputs of x_i * U_i[idx(j, i)], exactly, from the tables above.
inline void crew_gather_int8_avx2(const crew_lanes& lanes, const std::uint8_t* tables, const std::int32_t* active,
                                  index_t active_count, std::int32_t* acc) {
  constexpr index_t chunk = 256;  // byte sums stay below 2^16
  using pair_kernel = void (*)(const std::uint8_t*, const std::uint8_t*, const std::int32_t*, index_t, std::int32_t*);
  auto kernel_for = [&](int f) -> pair_kernel {
    switch (lanes.width * 8 + f) {
      case 32: return crew_int8_field_pair<4, 0>;
      case 16: return crew_int8_field_pair<2, 0>;
      case 18: return crew_int8_field_pair<2, 2>;
      case 8: return crew_int8_field_pair<1, 0>;
      case 10: return crew_int8_field_pair<1, 2>;
      case 12: return crew_int8_field_pair<1, 4>;
      default: return crew_int8_field_pair<1, 6>;
    }
  };
  for (index_t b = 0; b < lanes.blocks(); ++b) {
    const std::uint8_t* block = lanes.bytes.data() + b * lanes.inputs * 32;
    for (int f = 0; f < lanes.fields(); f += 2) {
      const index_t first = b * lanes.block_outputs() + f * 32;
      if (first >= lanes.outputs) break;
      const pair_kernel kernel = kernel_for(f);
      std::int32_t total[64] = {};
      for (index_t k0 = 0; k0 < active_count; k0 += chunk)
        kernel(block, tables + k0 * 32, active + k0, std::min(chunk, active_count - k0), total);
      const index_t count = std::min<index_t>(64, lanes.outputs - first);  // fields f and f + 1
      for (index_t p = 0; p < count; ++p) acc[first + p] += total[p];
    }
  }
}

#endif  // __AVX2__ && !SLIMNN_CREW_AVX512

#ifdef SLIMNN_CREW_AVX512

// --- AVX-512 (VBMI + VNNI), group-4 layout: 4 inputs x 16 positions per 64-byte row ------

/// Float: per 16 outputs (a "slice": field f of block b, outputs 16 (b F + f) ..), index of
/// input i = (row word >> (8 (i % 4) + f w)) & mask, looked up with vpermps in the 16
/// floats of P_i. Four slices per pass over the active inputs keep four add chains in
/// flight; every output adds its products in active-input order, as the portable kernel.
inline void crew_gather_lanes_avx512(const crew_lanes& lanes, const std::uint32_t* offsets, const float* P,
                                     const std::int32_t* active, index_t active_count, float* acc) {
  constexpr int slices_per_pass = 4;
  const __m512i mask = _mm512_set1_epi32((1 << lanes.width) - 1);
  const index_t slices = (lanes.outputs + 15) / 16;
  for (index_t s0 = 0; s0 < slices; s0 += slices_per_pass) {
    const int n = int(std::min<index_t>(slices_per_pass, slices - s0));
    const std::uint8_t* rows[slices_per_pass];
    int field_shift[slices_per_pass];
    for (int s = 0; s < slices_per_pass; ++s) {
      const index_t slice = std::min<index_t>(s0 + s, slices - 1);  // repeats the last slice when n < 4
      rows[s] = lanes.bytes.data() + slice / lanes.fields() * lanes.groups() * 64;
      field_shift[s] = int(slice % lanes.fields()) * lanes.width;
    }
    __m512 a[slices_per_pass] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (index_t k = 0; k < active_count; ++k) {
      const index_t i = active[k];
      const __m512 table = _mm512_loadu_ps(P + offsets[i]);
      const index_t at = i / 4 * 64;
      const int input_shift = 8 * int(i % 4);
      for (int s = 0; s < slices_per_pass; ++s) {
        const __m512i words = _mm512_loadu_si512(rows[s] + at);
        const __m512i idx = _mm512_and_si512(_mm512_srl_epi32(words, _mm_cvtsi32_si128(input_shift + field_shift[s])), mask);
        a[s] = _mm512_add_ps(a[s], _mm512_permutexvar_ps(idx, table));
      }
    }
    for (int s = 0; s < n; ++s) {
      alignas(64) float out[16];
      _mm512_store_ps(out, a[s]);
      const index_t first = (s0 + s) * 16, count = std::min<index_t>(16, lanes.outputs - first);
      for (index_t p = 0; p < count; ++p) acc[first + p] += out[p];
    }
  }
}

/// Int8 tables, one 128-byte entry per group of 4 inputs with an active input: the low
/// bytes (unsigned) and then the high bytes (signed) of p = x_i * code in int16, input
/// 4 g + r at bytes 16 r of each half; inactive and padding inputs hold 0. Lists the groups
/// in `groups` and returns their number. `codes` must be readable 16 bytes past every offset.
inline index_t crew_int8_tables_avx512(const std::int8_t* x, index_t inputs, const std::uint32_t* offsets,
                                       const std::int8_t* codes, std::int32_t* groups, std::uint8_t* tables) {
  index_t count = 0;
  for (index_t g = 0; g * 4 < inputs; ++g) {
    bool any = false;
    for (index_t i = 4 * g; i < std::min(inputs, 4 * g + 4); ++i) any |= x[i] != 0;
    if (!any) continue;
    std::uint8_t* t = tables + count * 128;
    for (index_t r = 0; r < 4; ++r) {
      const index_t i = 4 * g + r;
      const std::int16_t xi = i < inputs ? x[i] : 0;
      const __m256i c = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + offsets[std::min(i, inputs - 1)])));
      const __m256i p = _mm256_mullo_epi16(c, _mm256_set1_epi16(xi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 16 * r), _mm256_cvtepi16_epi8(p));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 64 + 16 * r), _mm256_cvtepi16_epi8(_mm256_srai_epi16(p, 8)));
    }
    groups[count++] = std::int32_t(g);
  }
  return count;
}

/// total[0 .. B 16 (8 / W)) = the sums of B consecutive blocks over the listed groups. Per
/// 64-byte row and field: the index bytes get the input's table number r in bits 4-5 (byte
/// r of each word), vpermb looks up the low and the high product bytes of 16 outputs x 4
/// inputs, and vpdpbusd adds each output's 4 bytes into its int32 lane; total = low + 256
/// high. The B blocks are B concurrent index streams sharing each table load.
template <int W, int B>
void crew_int8_blocks_avx512(const std::uint8_t* block, index_t block_bytes, const std::uint8_t* tables,
                             const std::int32_t* groups, index_t count, std::int32_t* total) {
  constexpr int fields = 8 / W;
  constexpr index_t prefetch_distance = 32;  // rows ahead (2 KiB of each index stream)
  const __m512i mask = _mm512_set1_epi8(std::int8_t((1 << W) - 1));
  const __m512i table_of_input = _mm512_set1_epi32(0x30201000);
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i low[B][fields], high[B][fields];
  for (int b = 0; b < B; ++b)
    for (int f = 0; f < fields; ++f) low[b][f] = high[b][f] = _mm512_setzero_si512();
  for (index_t k = 0; k < count; ++k) {
    const std::uint8_t* row = block + index_t(groups[k]) * 64;
    const __m512i tl = _mm512_loadu_si512(tables + k * 128), th = _mm512_loadu_si512(tables + k * 128 + 64);
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) {
      _mm_prefetch(reinterpret_cast<const char*>(row + b * block_bytes + prefetch_distance * 64), _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(row + b * block_bytes);
#pragma GCC unroll 8
      for (int f = 0; f < fields; ++f) {
        const __m512i shifted = f == 0 ? v : _mm512_srli_epi16(v, unsigned(f * W));
        const __m512i idx = _mm512_ternarylogic_epi32(shifted, mask, table_of_input, 0xEA);  // (a & b) | c
        low[b][f] = _mm512_dpbusd_epi32(low[b][f], _mm512_permutexvar_epi8(idx, tl), ones);
        high[b][f] = _mm512_dpbusd_epi32(high[b][f], ones, _mm512_permutexvar_epi8(idx, th));
      }
    }
  }
  for (int b = 0; b < B; ++b)
    for (int f = 0; f < fields; ++f)
      _mm512_storeu_si512(total + 16 * (b * fields + f), _mm512_add_epi32(low[b][f], _mm512_slli_epi32(high[b][f], 8)));
}

/// acc[j] += sum over the listed groups of x_i * U_i[idx(j, i)], exactly. Blocks go w at a
/// time (4, 2 or 1; 16 accumulators in all).
inline void crew_gather_int8_avx512(const crew_lanes& lanes, const std::uint8_t* tables, const std::int32_t* groups,
                                    index_t count, std::int32_t* acc) {
  const index_t block_bytes = lanes.groups() * 64;
  for (index_t b = 0; b < lanes.blocks();) {
    const std::uint8_t* block = lanes.bytes.data() + b * block_bytes;
    alignas(64) std::int32_t total[4 * 32];
    const index_t left = lanes.blocks() - b;
    index_t done = 1;
    switch (lanes.width) {
      case 4:
        if (left >= 4) crew_int8_blocks_avx512<4, 4>(block, block_bytes, tables, groups, count, total), done = 4;
        else crew_int8_blocks_avx512<4, 1>(block, block_bytes, tables, groups, count, total);
        break;
      case 2:
        if (left >= 2) crew_int8_blocks_avx512<2, 2>(block, block_bytes, tables, groups, count, total), done = 2;
        else crew_int8_blocks_avx512<2, 1>(block, block_bytes, tables, groups, count, total);
        break;
      default: crew_int8_blocks_avx512<1, 1>(block, block_bytes, tables, groups, count, total); break;
    }
    const index_t first = b * lanes.block_outputs();
    const index_t n = std::min(done * lanes.block_outputs(), lanes.outputs - first);
    for (index_t p = 0; p < n; ++p) acc[first + p] += total[p];
    b += done;
  }
}

#endif  // SLIMNN_CREW_AVX512

}  // namespace slimnn::detail
