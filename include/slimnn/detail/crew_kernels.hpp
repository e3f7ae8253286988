// slimnn/detail/crew_kernels.hpp — the gather kernels of CREW (slimnn/crew/crew_dense.hpp).
//
// Per sample, every active input i (x_i != 0) has a table of products P_i[u] = x_i * U_i[u]
// (u < u_i); the kernels compute acc_j = sum over active i, in ascending order, of
// P_i[idx(j, i)] — gathers and adds only. Two index layouts:
//
//   packed  one detail::packed_bits per input (outputs values of ceil(log2 u_i) bits, or
//           one width per layer): the compact form; portable kernel only.
//   lanes   one width w in {1, 2, 4} bits for the layer (all u_i <= 16). Outputs are cut into
//           blocks of 32 * (8 / w); block b stores, for every input i, 32 bytes at
//           bytes[(b * inputs + i) * 32]; bits [f w, (f + 1) w) of byte p hold the index of
//           output b * 32 * (8 / w) + f * 32 + p (field f). Padding outputs hold index 0.
//           A vpshufb with a 16-entry table then looks up one field of 32 outputs at once.
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
// 2 KiB ahead. Integer sums are exact, so every path agrees bit for bit.
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

/// The lanes index layout (see the header comment).
struct crew_lanes {
  int width = 4;  ///< bits per index: 1, 2 or 4
  index_t inputs = 0, outputs = 0;
  std::vector<std::uint8_t> bytes;

  crew_lanes() = default;
  crew_lanes(index_t inputs_, index_t outputs_, int width_) : width(width_), inputs(inputs_), outputs(outputs_) {
    bytes.assign(std::size_t(blocks() * inputs * 32), 0);
  }
  int fields() const { return 8 / width; }
  index_t block_outputs() const { return 32 * fields(); }
  index_t blocks() const { return (outputs + block_outputs() - 1) / block_outputs(); }
  std::size_t byte_offset(index_t j, index_t i) const {
    return std::size_t((j / block_outputs() * inputs + i) * 32 + j % 32);
  }
  int shift(index_t j) const { return int(j % block_outputs() / 32) * width; }
  std::uint32_t get(index_t j, index_t i) const {
    return (bytes[byte_offset(j, i)] >> shift(j)) & ((1u << width) - 1u);
  }
  void set(index_t j, index_t i, std::uint32_t v) {
    auto& b = bytes[byte_offset(j, i)];
    const unsigned m = ((1u << width) - 1u) << shift(j);
    b = std::uint8_t((b & ~m) | ((v << shift(j)) & m));
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
      const index_t first = b * lanes.block_outputs() + f * 32;
      const index_t count = std::min<index_t>(32, lanes.outputs - first);
      if (count <= 0) break;
      const int shift = f * lanes.width;
      Acc* out = acc + first;
      for (index_t k = 0; k < active_count; ++k) {
        const index_t i = active[k];
        const std::uint8_t* row = lanes.bytes.data() + (b * lanes.inputs + i) * 32;
        const Table* t = P + offsets[i];
        for (index_t p = 0; p < count; ++p) out[p] += Acc(t[(row[p] >> shift) & mask]);
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

#ifdef __AVX2__

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

#endif  // __AVX2__

}  // namespace slimnn::detail
