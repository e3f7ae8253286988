// slimnn/kernels/crew_avx2.hpp — CREW's AVX2 gather kernels (group-1 lanes layout,
// kernels/crew_lanes.hpp), compiled for AVX2 + FMA whatever the translation unit's flags.
//
// Float gathers: each active input's 16-entry table is split once into 4 byte planes
// (64 bytes); per 32 outputs, 4 vpshufb look up the 4 bytes of their entries and 8 byte
// and word unpacks put each float together: 18 instructions per 32 outputs, against 32
// for vpermps lookups (two and a blend per 8 outputs for u_i > 8). The same additions in
// the same order as the portable kernel, so both give identical results.
// Float decode (the batched forward's weight tiles): per 8 outputs, vpermps lookups.
// Int8: x_i int8, codes int8, products exact in 16 bits: p in [-16256, 16256]. p' = p +
// 32768 (unsigned 16 bits) is split into a low-byte table and a high-byte table (16 entries
// each, 32 bytes per active input). vpshufb gathers the bytes of 32 outputs; 16-bit
// accumulators keep, per 16-bit lane, the lane sum (even byte + 256 * odd byte, mod 2^16)
// and the odd-byte sum (vpmaddubsw with (0, 1)), which give both byte sums exactly for up
// to 256 inputs; every 256 inputs they are flushed to int32 as low + 256 * high - 32768 *
// count. One pass handles two fields (64 outputs) in two 256-bit vectors. The index stream
// is prefetched 2 KiB ahead. Integer sums are exact: bit-identical to the portable kernel.
// Int8, a sample with few zeros (crew_int8_decoded): every input's codes decoded by
// vpshufb from a table of sign(x_i) * codes and multiplied by |x| with vpmaddubsw, about
// 7.5 instructions per input and 32 outputs against 9.5 for the gathers, which skip zeros.
// Int8 batches (crew_gemm_int8): each 32 outputs' codes decoded once for the batch
// (vpshufb, then unpacks to 4 inputs per output) while the previous 32 are multiplied,
// with vpsignb + vpmaddubsw + vpmaddwd, exactly (see that section): 4 instructions per 32
// products, 3 for samples without negative activations.
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "slimnn/kernels/crew_lanes.hpp"
#include "slimnn/kernels/isa.hpp"

#if defined(SLIMNN_X86_KERNELS)
namespace slimnn::kernels::avx2 {
SLIMNN_TARGET_AVX2
// --- AVX2 float: vpshufb lookups of byte planes, 32 outputs (one field) per pass --------

/// The table entries of 8 outputs: index bytes at `row`, field (byte >> shift) & mask,
/// looked up in the 16 floats lo, hi (hi only when `wide`: u_i > 8).
inline __m256 lookup8(const std::uint8_t* row, __m128i shift, __m256i mask, __m256 lo, __m256 hi, bool wide) {
  const __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row));
  const __m256i idx = _mm256_and_si256(_mm256_srl_epi32(_mm256_cvtepu8_epi32(raw), shift), mask);
  const __m256 v = _mm256_permutevar8x32_ps(lo, idx);
  if (!wide) return v;
  return _mm256_blendv_ps(v, _mm256_permutevar8x32_ps(hi, idx), _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

/// The byte planes of the active inputs' tables, 64 bytes per input: [planes 0 | 2] then
/// [planes 1 | 3], plane b holding byte b of the 16 entries. `P` must be readable 16
/// entries past every offset.
inline void crew_float_planes(const std::uint32_t* offsets, const float* P, const std::int32_t* active, index_t count,
                              std::uint8_t* planes) {
  // Per 128-bit lane, byte b of its 4 floats side by side; then dwords in the order that
  // puts the two lanes' plane b in one qword.
  const __m256i bytes = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9,
                                         13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i dwords = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (index_t k = 0; k < count; ++k) {
    const float* t = P + offsets[active[k]];
    __m256i half[2];  // qword b: plane b of 8 entries
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + 8 * h));
      half[h] = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, bytes), dwords);
    }
    const __m256i first = half[0], second = half[1];
    auto* out = reinterpret_cast<__m256i*>(planes + k * 64);
    _mm256_storeu_si256(out, _mm256_unpacklo_epi64(first, second));
    _mm256_storeu_si256(out + 1, _mm256_unpackhi_epi64(first, second));
  }
}

/// The 32 sums (int32 or float) of 32 outputs in order, from accumulators a[v] holding
/// outputs 4 v .. 4 v + 3 in their low lane and 16 + 4 v .. in their high one.
[[gnu::always_inline]] inline void store_in_order(const __m256i a[4], void* out) {
  auto* o = static_cast<__m256i*>(out);
  _mm256_storeu_si256(o, _mm256_permute2x128_si256(a[0], a[1], 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(a[2], a[3], 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(a[0], a[1], 0x31));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(a[2], a[3], 0x31));
}

/// 16 bytes at p in both lanes.
inline __m256i broadcast16(const std::uint8_t* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

/// acc[j] += P[offsets[i] + idx(j, i)] over the active inputs, in order, from the byte
/// planes of crew_float_planes. Vector v of a pass holds outputs 4 v .. 4 v + 3 in its low
/// lane and 16 + 4 v .. in its high one (store_in_order).
inline void crew_gather_planes(const crew_lanes& lanes, const std::uint8_t* planes, const std::int32_t* active,
                               index_t active_count, float* acc, index_t first_block, index_t last_block) {
  const __m256i mask = _mm256_set1_epi8(std::int8_t((1 << lanes.width) - 1));
  for (index_t b = first_block; b < last_block; ++b)
    for (int f = 0; f < lanes.fields(); ++f) {
      const index_t first = b * lanes.block_outputs() + f * 32;
      if (first >= lanes.outputs) break;
      const __m128i shift = _mm_cvtsi32_si128(lanes.shift(first));
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      const std::uint8_t* block = lanes.row(b, 0);
      for (index_t k = 0; k < active_count; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + index_t(active[k]) * 32));
        const __m256i idx = _mm256_and_si256(_mm256_srl_epi16(v, shift), mask);
        const std::uint8_t* p = planes + k * 64;
        const __m256i b0 = _mm256_shuffle_epi8(broadcast16(p), idx), b2 = _mm256_shuffle_epi8(broadcast16(p + 16), idx);
        const __m256i b1 = _mm256_shuffle_epi8(broadcast16(p + 32), idx);
        const __m256i b3 = _mm256_shuffle_epi8(broadcast16(p + 48), idx);
        const __m256i low01 = _mm256_unpacklo_epi8(b0, b1), high01 = _mm256_unpackhi_epi8(b0, b1);
        const __m256i low23 = _mm256_unpacklo_epi8(b2, b3), high23 = _mm256_unpackhi_epi8(b2, b3);
        a0 = _mm256_add_ps(a0, _mm256_castsi256_ps(_mm256_unpacklo_epi16(low01, low23)));
        a1 = _mm256_add_ps(a1, _mm256_castsi256_ps(_mm256_unpackhi_epi16(low01, low23)));
        a2 = _mm256_add_ps(a2, _mm256_castsi256_ps(_mm256_unpacklo_epi16(high01, high23)));
        a3 = _mm256_add_ps(a3, _mm256_castsi256_ps(_mm256_unpackhi_epi16(high01, high23)));
      }
      alignas(32) float out[32];
      const __m256i sums[4] = {_mm256_castps_si256(a0), _mm256_castps_si256(a1), _mm256_castps_si256(a2),
                               _mm256_castps_si256(a3)};
      store_in_order(sums, out);
      const index_t count = std::min<index_t>(32, lanes.outputs - first);
      for (index_t p = 0; p < count; ++p) acc[first + p] += out[p];
    }
}

/// Float decode (crew_decode_lanes in crew_lanes.hpp): per input and field, 32 weights
/// from four vpermps lookups (and blends for u_i > 8); identical to the portable decode.
inline void crew_decode_lanes(const crew_lanes& lanes, const std::uint32_t* offsets, const float* V,
                              const std::int32_t* inputs, index_t count, index_t first_block, index_t last_block,
                              float* tile, index_t ld) {
  const __m256i mask = _mm256_set1_epi32((1 << lanes.width) - 1);
  const bool wide = lanes.width == 4;
  const int fields = lanes.fields(), width = lanes.width;
  const index_t block_outputs = lanes.block_outputs(), block_stride = lanes.inputs * 32;
  const std::uint8_t* first_row = lanes.bytes.data() + first_block * block_stride;
  const index_t blocks = last_block - first_block;
  for (index_t k = 0; k < count; ++k) {
    const index_t i = inputs[k];
    const __m256 lo = _mm256_loadu_ps(V + offsets[i]);
    const __m256 hi = wide ? _mm256_loadu_ps(V + offsets[i] + 8) : lo;
    const std::uint8_t* row = first_row + i * 32;
    float* column = tile + k * ld;
    for (index_t b = 0; b < blocks; ++b, row += block_stride, column += block_outputs)
      for (int f = 0; f < fields; ++f) {
        const __m128i shift = _mm_cvtsi32_si128(f * width);
        for (int g = 0; g < 4; ++g) {
          _mm256_storeu_ps(column + f * 32 + 8 * g, lookup8(row + 8 * g, shift, mask, lo, hi, wide));
        }
      }
  }
}

// --- AVX2 int8: vpshufb lookups of low / high product bytes ------------------------------

/// The 32-byte tables of the active inputs: [low bytes of p' | high bytes of p'] with
/// p' = x_i * code + 32768. `codes` must be readable 16 bytes past every offset.
inline void crew_int8_tables(const std::int8_t* x, const std::uint32_t* offsets, const std::int8_t* codes,
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

/// out[0..31] = the 16-bit lanes of a, then of b.
inline void store_pair(std::uint16_t* out, __m256i a, __m256i b) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), a);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 16), b);
}

/// Sums over `count` active inputs (at most 256) of fields F and F + 1 of block b (64
/// outputs), from the tables above, added to total[0..63] exactly. The byte sums live in
/// 16-bit lanes: q in 0..31 covers outputs 2q (even byte) and 2q + 1 (odd byte).
template <int W, int F>
void crew_int8_field_pair(const std::uint8_t* block, const std::uint8_t* tables, const std::int32_t* active,
                          index_t count, std::int32_t* total) {
  constexpr index_t prefetch_distance = 64;  // inputs ahead (2 KiB of the index stream)
  alignas(64) std::uint16_t low[32], low_odd[32], high[32], high_odd[32];
  const __m256i mask = _mm256_set1_epi8(std::int8_t((1 << W) - 1));
  const __m256i odd = _mm256_set1_epi16(0x0100);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  for (index_t k = 0; k < count; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(block + (index_t(active[k]) + prefetch_distance) * 32), _MM_HINT_T0);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + index_t(active[k]) * 32));
    const __m256i ia = _mm256_and_si256(_mm256_srli_epi16(v, F * W), mask);
    const __m256i ib = _mm256_and_si256(_mm256_srli_epi16(v, (F + 1) * W), mask);
    const std::uint8_t* t = tables + k * 32;
    const __m256i tl = broadcast16(t), th = broadcast16(t + 16);
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
  store_pair(low, s0, s4);
  store_pair(low_odd, s1, s5);
  store_pair(high, s2, s6);
  store_pair(high_odd, s3, s7);
  const std::int32_t offset = std::int32_t(32768 * count);
  for (int q = 0; q < 32; ++q) {
    const std::int32_t low_even = std::uint16_t(low[q] - (low_odd[q] << 8));
    const std::int32_t high_even = std::uint16_t(high[q] - (high_odd[q] << 8));
    total[2 * q] += low_even + 256 * high_even - offset;
    total[2 * q + 1] += std::int32_t(low_odd[q]) + 256 * std::int32_t(high_odd[q]) - offset;
  }
}

/// instance(W, F) for index width w and first field f of a pair (W, F as
/// std::integral_constant): the int8 kernels' templates on both, chosen at run time.
template <class Instance>
auto for_field_pair(int width, int f, Instance instance) {
  using std::integral_constant;
  switch (width * 8 + f) {
    case 32: return instance(integral_constant<int, 4>{}, integral_constant<int, 0>{});
    case 16: return instance(integral_constant<int, 2>{}, integral_constant<int, 0>{});
    case 18: return instance(integral_constant<int, 2>{}, integral_constant<int, 2>{});
    case 8: return instance(integral_constant<int, 1>{}, integral_constant<int, 0>{});
    case 10: return instance(integral_constant<int, 1>{}, integral_constant<int, 2>{});
    case 12: return instance(integral_constant<int, 1>{}, integral_constant<int, 4>{});
    default: return instance(integral_constant<int, 1>{}, integral_constant<int, 6>{});
  }
}

/// The field-pair kernel of width w starting at field f.
inline auto field_pair_for(int width, int f) {
  return for_field_pair(width, f, [](auto w, auto first) {
    return &crew_int8_field_pair<decltype(w)::value, decltype(first)::value>;
  });
}

/// acc[j] += the sums that pair(block_rows, f, total) adds into total[0..63] (zeroed first)
/// for fields f and f + 1 (64 outputs) of each block in [first_block, last_block), for
/// the outputs that exist: the int8 kernels' walk over the lanes layout.
template <class Pair>
void add_field_pairs(const crew_lanes& lanes, index_t first_block, index_t last_block, std::int32_t* acc, Pair pair) {
  for (index_t b = first_block; b < last_block; ++b)
    for (int f = 0; f < lanes.fields(); f += 2) {
      const index_t first = b * lanes.block_outputs() + f * 32;
      if (first >= lanes.outputs) break;
      alignas(32) std::int32_t total[64] = {};
      pair(lanes.row(b, 0), f, total);
      const index_t count = std::min<index_t>(64, lanes.outputs - first);
      for (index_t p = 0; p < count; ++p) acc[first + p] += total[p];
    }
}

/// acc[j] += sum over active inputs of x_i * U_i[idx(j, i)], exactly, from the tables above.
inline void crew_gather_int8(const crew_lanes& lanes, const std::uint8_t* tables, const std::int32_t* active,
                                  index_t active_count, std::int32_t* acc, index_t first_block, index_t last_block) {
  constexpr index_t chunk = 256;  // byte sums stay below 2^16
  add_field_pairs(lanes, first_block, last_block, acc, [&](const std::uint8_t* block, int f, std::int32_t* total) {
    const auto kernel = field_pair_for(lanes.width, f);
    for (index_t k0 = 0; k0 < active_count; k0 += chunk)
      kernel(block, tables + k0 * 32, active + k0, std::min(chunk, active_count - k0), total);
  });
}

// --- AVX2 int8 batches: codes decoded by vpshufb, multiplied by vpmaddubsw ------------
//
// vpmaddubsw multiplies unsigned by signed bytes and adds pairs into 16 bits with
// saturation. With |x| as the unsigned operand and sign(x) * code as the signed one, a
// pair is at most 2 * 128 * 127 = 32512 in magnitude: exact (|code| <= 127, so vpsignb
// never overflows; x may be -128). vpmaddwd by ones then adds the pairs into int32.

/// out[i] = |x[i]| for i < n; whether some x[i] is negative.
inline bool magnitudes_of(const std::int8_t* x, index_t n, std::uint8_t* out) {
  index_t i = 0;
  __m256i any = _mm256_setzero_si256();
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    any = _mm256_or_si256(any, v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_abs_epi8(v));
  }
  bool negative = _mm256_movemask_epi8(any) != 0;
  for (; i < n; ++i) {
    negative = negative || x[i] < 0;
    out[i] = std::uint8_t(std::abs(int(x[i])));
  }
  return negative;
}

/// The codes of 32 outputs x 4 inputs (c0..c3: each input's codes of the 32 outputs, in
/// order) as 4 inputs per output: w_v holds outputs 4 v .. 4 v + 3 in its low lane and
/// 16 + 4 v .. 16 + 4 v + 3 in its high lane, each output's 4 codes side by side.
[[gnu::always_inline]] inline void four_inputs_per_output(__m256i c0, __m256i c1, __m256i c2, __m256i c3, __m256i& w0,
                                                          __m256i& w1, __m256i& w2, __m256i& w3) {
  const __m256i low01 = _mm256_unpacklo_epi8(c0, c1), high01 = _mm256_unpackhi_epi8(c0, c1);
  const __m256i low23 = _mm256_unpacklo_epi8(c2, c3), high23 = _mm256_unpackhi_epi8(c2, c3);
  w0 = _mm256_unpacklo_epi16(low01, low23);
  w1 = _mm256_unpackhi_epi16(low01, low23);
  w2 = _mm256_unpacklo_epi16(high01, high23);
  w3 = _mm256_unpackhi_epi16(high01, high23);
}

/// Decodes the codes of one unit of 32 outputs (field f of a block), a group of 4 inputs
/// at a time, 128 bytes per group at out + 128 q: per input one vpshufb of its index row
/// in its codes, then byte and word unpacks put each output's 4 codes side by side.
/// Vector v of a group holds outputs 4 v .. 4 v + 3 in its low lane and 16 + 4 v ..
/// 16 + 4 v + 3 in its high lane.
struct crew_int8_decoder {
  const std::uint8_t* block;   ///< the unit's block of index rows
  const std::uint8_t* tables;  ///< crew_code_tables
  std::uint8_t* out;
  index_t inputs;
  int shift, width;

  crew_int8_decoder(const crew_lanes& lanes, const std::uint8_t* tables_, index_t unit, std::uint8_t* out_)
      : block(lanes.row(unit * 32 / lanes.block_outputs(), 0)),
        tables(tables_),
        out(out_),
        inputs(lanes.inputs),
        shift(lanes.shift(unit * 32)),
        width(lanes.width) {}

  void group(index_t q) const {
    const __m128i count = _mm_cvtsi32_si128(shift);
    const __m256i mask = _mm256_set1_epi8(std::int8_t((1 << width) - 1));
    __m256i c[4];
    for (index_t r = 0; r < 4; ++r) {
      const index_t i = 4 * q + r;
      c[r] = _mm256_setzero_si256();
      if (i >= inputs) continue;
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + i * 32));
      const __m256i table = broadcast16(tables + i * 16);
      c[r] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srl_epi16(v, count), mask));
    }
    __m256i w0, w1, w2, w3;
    four_inputs_per_output(c[0], c[1], c[2], c[3], w0, w1, w2, w3);
    auto* o = reinterpret_cast<__m256i*>(out + q * 128);
    _mm256_storeu_si256(o, w0);
    _mm256_storeu_si256(o + 1, w1);
    _mm256_storeu_si256(o + 2, w2);
    _mm256_storeu_si256(o + 3, w3);
  }
};

/// One sample x one unit's 32 decoded outputs: per group of 4 inputs, one broadcast of
/// the 4 activations and one of their magnitudes and, per vector of 8 outputs, vpsignb,
/// vpmaddubsw, vpmaddwd and vpaddd; stored for the first `valid` outputs, in order.
/// `magnitude` holds |x|. A sample without negative activations (Signed false: x = |x|,
/// as after a ReLU) skips vpsignb: 3 instructions per 32 products instead of 4, as
/// exact (a pair is at most 2 * 127 * 127). Meanwhile it decodes the next unit's groups [d, d_end) with
/// `next`, one every 16 groups of its own and the rest at the end, so that the decoding
/// runs beside the multiplies. (A sample at a time keeps every value in a register; tiles
/// of 2 to 4 samples sharing the code loads ran no faster.)
template <bool Signed>
void crew_int8_gemm_sample(const std::uint8_t* decoded, index_t groups, const std::int8_t* x,
                                  const std::uint8_t* magnitude, index_t valid, std::int32_t* acc,
                                  const crew_int8_decoder& next, index_t d, index_t d_end) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 2
  for (index_t q = 0; q < groups; ++q) {
    if (q % 16 == 0 && d < d_end) next.group(d++);
    std::int32_t four = 0, four_magnitudes;
    if constexpr (Signed) std::memcpy(&four, x + q * 4, 4);
    std::memcpy(&four_magnitudes, magnitude + q * 4, 4);
    const __m256i xb = _mm256_set1_epi32(four), mb = _mm256_set1_epi32(four_magnitudes);
    const auto* codes = reinterpret_cast<const __m256i*>(decoded + q * 128);
    for (int v = 0; v < 4; ++v) {
      __m256i c = _mm256_loadu_si256(codes + v);
      if constexpr (Signed) c = _mm256_sign_epi8(c, xb);
      a[v] = _mm256_add_epi32(a[v], _mm256_madd_epi16(_mm256_maddubs_epi16(mb, c), ones));
    }
  }
  while (d < d_end) next.group(d++);
  alignas(32) std::int32_t out[32];
  store_in_order(a, out);
  std::copy_n(out, std::min<index_t>(valid, 32), acc);
}

/// acc[s * acc_stride + j] = sum_i x[s * x_stride + i] code(j, i), exactly, for the
/// `batch` samples and the outputs 32 first_unit .. 32 last_unit - 1 (group-1 layout),
/// from the tables of crew_code_tables; x_stride >= inputs rounded up to 4, the bytes past
/// the inputs zero; `workspace` holds 256 bytes per group of 4 inputs (two units' codes)
/// and 4 bytes per group and sample more (|x|, computed first, 4 groups bytes apart), and
/// a byte per sample (whether it has a negative activation).
/// Each unit's codes are decoded once for the batch, by its predecessor's samples, and
/// multiplied by each sample's activations.
inline void crew_gemm_int8(const crew_lanes& lanes, const std::uint8_t* tables, const std::int8_t* x,
                           index_t x_stride, index_t batch, std::int32_t* acc, index_t acc_stride, index_t first_unit,
                           index_t last_unit, std::uint8_t* workspace) {
  const index_t groups = lanes.groups_of_4(), units = std::min((lanes.outputs + 31) / 32, last_unit);
  if (batch <= 0 || first_unit >= units) return;
  std::uint8_t* magnitudes = workspace + groups * 256;
  std::uint8_t* has_negative = magnitudes + batch * groups * 4;  // per sample
  for (index_t s = 0; s < batch; ++s)
    has_negative[s] = magnitudes_of(x + s * x_stride, groups * 4, magnitudes + s * groups * 4);
  const auto buffer = [&](index_t unit) { return workspace + unit % 2 * groups * 128; };
  const crew_int8_decoder first(lanes, tables, first_unit, buffer(first_unit));
  for (index_t q = 0; q < groups; ++q) first.group(q);
  const index_t slice = (groups + batch - 1) / batch;  // groups of the next unit per sample
  for (index_t unit = first_unit; unit < units; ++unit) {
    const bool last = unit + 1 == units;
    const crew_int8_decoder next(lanes, tables, last ? unit : unit + 1, buffer(unit + 1));
    for (index_t s = 0; s < batch; ++s) {
      const index_t d = last ? 0 : std::min(groups, s * slice), d_end = last ? 0 : std::min(groups, d + slice);
      const auto sample = has_negative[s] ? crew_int8_gemm_sample<true> : crew_int8_gemm_sample<false>;
      sample(buffer(unit), groups, x + s * x_stride, magnitudes + s * groups * 4, lanes.outputs - unit * 32,
             acc + s * acc_stride + unit * 32, next, d, d_end);
    }
  }
}

// --- AVX2 int8, one sample with few zeros: codes decoded and multiplied -----------------
//
// The gathers above cost about 9.5 instructions per input and 32 outputs but skip the
// inputs whose activation is 0. Decoding instead costs about 7.5 whatever the zeros: per
// input, a vpshufb of its index row in its codes times sign(x_i) (a table built per
// sample); per group of 4 inputs, the unpacks to 4 inputs per output, then vpmaddubsw by
// |x| (a pair is at most 2 * 128 * 127: exact), vpmaddwd and vpaddd. crew.hpp takes it
// when at least 4 in 5 inputs are active.

/// The per-sample tables of crew_int8_decoded: signed[16 i + u] = sign(x_i) codes[offsets[i]
/// + u] and magnitude[i] = |x_i| for the inputs padded to groups of 4 (the padding zeros).
/// `codes` must be readable 16 bytes past every offset.
inline void crew_int8_signed_tables(const std::int8_t* x, index_t inputs, const std::uint32_t* offsets,
                                    const std::int8_t* codes, std::uint8_t* signed_codes, std::uint8_t* magnitude) {
  const index_t padded = (inputs + 3) / 4 * 4;
  for (index_t i = 0; i < inputs; ++i) {
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + offsets[i]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(signed_codes + 16 * i), _mm_sign_epi8(c, _mm_set1_epi8(x[i])));
  }
  magnitudes_of(x, inputs, magnitude);
  std::fill(signed_codes + 16 * inputs, signed_codes + 16 * padded, std::uint8_t(0));
  std::fill(magnitude + inputs, magnitude + padded, std::uint8_t(0));
}

/// Fields F and F + 1 (64 outputs) of one block: out[0..63] = their sums, from the tables
/// above. Rows past the last input are not read (zero codes).
template <int W, int F>
void crew_int8_decoded_pair(const std::uint8_t* block, index_t inputs, const std::uint8_t* signed_codes,
                            const std::uint8_t* magnitude, std::int32_t* out) {
  const __m256i mask = _mm256_set1_epi8(std::int8_t((1 << W) - 1)), ones = _mm256_set1_epi16(1);
  __m256i a[2][4];
  for (auto& field : a)
    for (auto& v : field) v = _mm256_setzero_si256();
  for (index_t q = 0; q < (inputs + 3) / 4; ++q) {
    __m256i c[2][4];
    for (int r = 0; r < 4; ++r) {
      const index_t i = 4 * q + r;
      c[0][r] = c[1][r] = _mm256_setzero_si256();
      if (i >= inputs) continue;
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + i * 32));
      const __m256i table = broadcast16(signed_codes + 16 * i);
      c[0][r] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, F * W), mask));
      c[1][r] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, (F + 1) * W), mask));
    }
    std::int32_t four;
    std::memcpy(&four, magnitude + 4 * q, 4);
    const __m256i mb = _mm256_set1_epi32(four);
    for (int f = 0; f < 2; ++f) {
      __m256i w[4];
      four_inputs_per_output(c[f][0], c[f][1], c[f][2], c[f][3], w[0], w[1], w[2], w[3]);
      for (int v = 0; v < 4; ++v)
        a[f][v] = _mm256_add_epi32(a[f][v], _mm256_madd_epi16(_mm256_maddubs_epi16(mb, w[v]), ones));
    }
  }
  store_in_order(a[0], out);
  store_in_order(a[1], out + 32);
}

/// The decoded-pair kernel of width w starting at field f.
inline auto decoded_pair_for(int width, int f) {
  return for_field_pair(width, f, [](auto w, auto first) {
    return &crew_int8_decoded_pair<decltype(w)::value, decltype(first)::value>;
  });
}

/// acc[j] += sum over all inputs of x_i * code(j, i), exactly, for the outputs of blocks
/// [first_block, last_block), from the tables of crew_int8_signed_tables.
inline void crew_int8_decoded(const crew_lanes& lanes, const std::uint8_t* signed_codes, const std::uint8_t* magnitude,
                              std::int32_t* acc, index_t first_block, index_t last_block) {
  add_field_pairs(lanes, first_block, last_block, acc, [&](const std::uint8_t* block, int f, std::int32_t* total) {
    decoded_pair_for(lanes.width, f)(block, lanes.inputs, signed_codes, magnitude, total);
  });
}

SLIMNN_TARGET_END
}  // namespace slimnn::kernels::avx2
#endif  // SLIMNN_X86_KERNELS
