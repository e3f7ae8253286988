// slimnn/kernels/crew_avx512.hpp — CREW's AVX-512 gather kernels (group-4 lanes layout,
// kernels/crew_lanes.hpp: 4 inputs x 16 positions per 64-byte row), compiled for
// AVX-512 F/BW/VL/DQ + VBMI + VNNI whatever the translation unit's flags.
//
// Float: vpermps on 16-float tables, 16 outputs per instruction, in active-input order
// (identical to the portable kernel).
// Int8: per group of 4 inputs, a 64-byte table of the low product bytes and one of the
// high bytes (16 per input, p = x_i * code in int16, no bias); one vpermb per table looks
// up 16 outputs x 4 inputs, and vpdpbusd adds each output's 4 bytes straight into int32
// (low as unsigned, high as signed bytes; total = low + 256 high): 11 vector instructions
// per 128 products at w = 4, against 10 per 64 for AVX2's vpshufb. It runs w blocks at
// once: w concurrent index streams (one sequential stream cannot be fetched fast enough
// from L3) sharing each table load. Integer sums are exact: bit-identical to the portable
// kernel.
// Int8 batches (crew_gemm_int8): each 32 outputs' codes decoded once for the batch
// (vpermb, 16 outputs x 4 inputs) while the previous 32 are multiplied by 8 samples at a
// time with vpdpbusd (codes + 128 unsigned, activations signed; exact, see that section).
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "slimnn/kernels/crew_lanes.hpp"
#include "slimnn/kernels/isa.hpp"

#if defined(SLIMNN_X86_KERNELS)
namespace slimnn::kernels::avx512 {
SLIMNN_TARGET_AVX512

/// acc += the products of w's unsigned and x's signed bytes, 4 per int32 lane (vpdpbusd),
/// in place: GCC's register allocation of the intrinsic copies the accumulators of a
/// register tile around (and spills some) every step.
inline void dot_bytes_accumulate(__m512i& acc, __m512i w, __m512i x) {
#if defined(__GNUC__) && !defined(__clang__)
  __asm__("vpdpbusd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(w), "v"(x));  // AT&T | Intel syntax
#else
  acc = _mm512_dpbusd_epi32(acc, w, x);
#endif
}

/// Float: per 16 outputs (a "slice": field f of block b, outputs 16 (b F + f) ..), index of
/// input i = (row word >> (8 (i % 4) + f w)) & mask, looked up with vpermps in the 16
/// floats of P_i. Four slices per pass over the active inputs keep four add chains in
/// flight; every output adds its products in active-input order, as the portable kernel.
inline void crew_gather_lanes(const crew_lanes& lanes, const std::uint32_t* offsets, const float* P,
                                     const std::int32_t* active, index_t active_count, float* acc,
                                     index_t first_block, index_t last_block) {
  constexpr int slices_per_pass = 4;
  const __m512i mask = _mm512_set1_epi32((1 << lanes.width) - 1);
  const index_t slices = std::min<index_t>((lanes.outputs + 15) / 16, last_block * lanes.fields());
  for (index_t s0 = first_block * lanes.fields(); s0 < slices; s0 += slices_per_pass) {
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

/// Float decode (crew_decode_lanes in crew_lanes.hpp): per input, block and field, 16
/// weights from one vpermps lookup; identical to the portable decode.
inline void crew_decode_lanes(const crew_lanes& lanes, const std::uint32_t* offsets, const float* V,
                              const std::int32_t* inputs, index_t count, index_t first_block, index_t last_block,
                              float* tile, index_t ld) {
  const __m512i mask = _mm512_set1_epi32((1 << lanes.width) - 1);
  const int fields = lanes.fields(), width = lanes.width;
  const index_t block_outputs = lanes.block_outputs(), block_stride = lanes.groups() * 64;
  const std::uint8_t* first_row = lanes.bytes.data() + first_block * block_stride;
  const index_t blocks = last_block - first_block;
  for (index_t k = 0; k < count; ++k) {
    const index_t i = inputs[k];
    const __m512 table = _mm512_loadu_ps(V + offsets[i]);
    const int input_shift = 8 * int(i % 4);
    const std::uint8_t* row = first_row + i / 4 * 64;
    float* column = tile + k * ld;
    for (index_t b = 0; b < blocks; ++b, row += block_stride, column += block_outputs) {
      const __m512i words = _mm512_loadu_si512(row);
      for (int f = 0; f < fields; ++f) {
        const __m512i idx = _mm512_and_si512(_mm512_srl_epi32(words, _mm_cvtsi32_si128(input_shift + f * width)), mask);
        _mm512_storeu_ps(column + f * 16, _mm512_permutexvar_ps(idx, table));
      }
    }
  }
}

/// Int8 tables, one 128-byte entry per group of 4 inputs with an active input: the low
/// bytes (unsigned) and then the high bytes (signed) of p = x_i * code in int16, input
/// 4 g + r at bytes 16 r of each half; inactive and padding inputs hold 0. Lists the groups
/// in `groups` and returns their number. `codes` must be readable 16 bytes past every offset.
inline index_t crew_int8_tables(const std::int8_t* x, index_t inputs, const std::uint32_t* offsets,
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
void crew_int8_blocks(const std::uint8_t* block, index_t block_bytes, const std::uint8_t* tables,
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
inline void crew_gather_int8(const crew_lanes& lanes, const std::uint8_t* tables, const std::int32_t* groups,
                                    index_t count, std::int32_t* acc, index_t first_block, index_t last_block) {
  const index_t block_bytes = lanes.groups() * 64;
  for (index_t b = first_block; b < last_block;) {
    const std::uint8_t* block = lanes.bytes.data() + b * block_bytes;
    alignas(64) std::int32_t total[4 * 32];
    const index_t left = last_block - b;
    index_t done = 1;
    switch (lanes.width) {
      case 4:
        if (left >= 4) crew_int8_blocks<4, 4>(block, block_bytes, tables, groups, count, total), done = 4;
        else crew_int8_blocks<4, 1>(block, block_bytes, tables, groups, count, total);
        break;
      case 2:
        if (left >= 2) crew_int8_blocks<2, 2>(block, block_bytes, tables, groups, count, total), done = 2;
        else crew_int8_blocks<2, 1>(block, block_bytes, tables, groups, count, total);
        break;
      default: crew_int8_blocks<1, 1>(block, block_bytes, tables, groups, count, total); break;
    }
    const index_t first = b * lanes.block_outputs();
    const index_t n = std::min(done * lanes.block_outputs(), lanes.outputs - first);
    for (index_t p = 0; p < n; ++p) acc[first + p] += total[p];
    b += done;
  }
}

// --- int8 batches: codes decoded by vpermb, multiplied by vpdpbusd ---------------------

/// Decodes the codes + 128 of one unit of 32 outputs (fields f, f + 1 of a block), a group
/// of 4 inputs at a time: the group's index row, two vpermb lookups (16 outputs x 4 inputs
/// each) in its code table, 128 bytes stored at out + 128 q.
struct crew_int8_decoder {
  const std::uint8_t* rows;    ///< the block's first index row
  const std::uint8_t* tables;  ///< crew_code_tables
  std::uint8_t* out;
  __m512i mask, table_of_input;
  __m128i shift0, shift1;

  crew_int8_decoder(const crew_lanes& lanes, const std::uint8_t* tables_, index_t unit, std::uint8_t* out_)
      : rows(lanes.row(unit * 32 / lanes.block_outputs(), 0)),
        tables(tables_),
        out(out_),
        mask(_mm512_set1_epi8(std::int8_t((1 << lanes.width) - 1))),
        table_of_input(_mm512_set1_epi32(0x30201000)),
        shift0(_mm_cvtsi32_si128(lanes.shift(unit * 32))),
        shift1(_mm_cvtsi32_si128(lanes.shift(unit * 32 + 16))) {}
  void group(index_t q) const { decode_group(rows, tables, out, mask, table_of_input, shift0, shift1, q); }

  static void decode_group(const std::uint8_t* rows, const std::uint8_t* tables, std::uint8_t* out, __m512i mask,
                           __m512i table_of_input, __m128i shift0, __m128i shift1, index_t q) {
    constexpr index_t prefetch_distance = 8;  // groups ahead
    _mm_prefetch(reinterpret_cast<const char*>(rows + (q + prefetch_distance) * 64), _MM_HINT_T0);
    const __m512i v = _mm512_loadu_si512(rows + q * 64), table = _mm512_loadu_si512(tables + q * 64);
    // index | 16 r for input r of the group: (a & b) | c
    const __m512i i0 = _mm512_ternarylogic_epi32(_mm512_srl_epi16(v, shift0), mask, table_of_input, 0xEA);
    const __m512i i1 = _mm512_ternarylogic_epi32(_mm512_srl_epi16(v, shift1), mask, table_of_input, 0xEA);
    _mm512_storeu_si512(out + q * 128, _mm512_permutexvar_epi8(i0, table));
    _mm512_storeu_si512(out + q * 128 + 64, _mm512_permutexvar_epi8(i1, table));
  }
};

/// One unit's product for NB samples: per group of 4 inputs, 2 NB vpdpbusd of the decoded
/// codes + 128 with the samples' 4 activations; then acc = sum - 128 * x_sums, stored for
/// the first `valid` outputs (of 32). Meanwhile it decodes the next unit's groups
/// [d, d_end) with `next`, one every 8 groups of its own and the rest at the end, so that
/// the decoding runs beside the multiplies (from batch 64, 8 tiles, all of it does; a
/// separate decoding pass cost 10 % of the multiplies' time). The sums wrap modulo 2^32
/// (vpdpbusd does not saturate), so acc is exact whenever the product fits int32.
template <int NB>
void crew_int8_gemm_tile(const std::uint8_t* decoded, index_t groups, const std::int8_t* x, index_t x_stride,
                         const std::int32_t* x_sums, index_t valid, std::int32_t* acc, index_t acc_stride,
                         const crew_int8_decoder& next, index_t d, index_t d_end) {
  // The decoder's fields in locals, so that they stay in registers through the loop.
  const std::uint8_t *rows = next.rows, *tables = next.tables;
  std::uint8_t* out = next.out;
  const __m512i mask = next.mask, table_of_input = next.table_of_input;
  const __m128i shift0 = next.shift0, shift1 = next.shift1;
  __m512i a0[NB], a1[NB];
#pragma GCC unroll 8
  for (int k = 0; k < NB; ++k) a0[k] = a1[k] = _mm512_setzero_si512();
  for (index_t q = 0; q < groups; ++q) {
    if (q % 8 == 0 && d < d_end)
      crew_int8_decoder::decode_group(rows, tables, out, mask, table_of_input, shift0, shift1, d++);
    const __m512i w0 = _mm512_loadu_si512(decoded + q * 128), w1 = _mm512_loadu_si512(decoded + q * 128 + 64);
#pragma GCC unroll 8
    for (int k = 0; k < NB; ++k) {
      std::int32_t four;
      std::memcpy(&four, x + k * x_stride + q * 4, 4);
      const __m512i xb = _mm512_set1_epi32(four);
      dot_bytes_accumulate(a0[k], w0, xb);
      dot_bytes_accumulate(a1[k], w1, xb);
    }
  }
  while (d < d_end) next.group(d++);
  const __mmask16 m0 = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1u);
  const __mmask16 m1 = valid >= 32 ? __mmask16(0xFFFF) : valid <= 16 ? __mmask16(0) : __mmask16((1u << (valid - 16)) - 1u);
#pragma GCC unroll 8
  for (int k = 0; k < NB; ++k) {
    const __m512i correction = _mm512_set1_epi32(std::int32_t(std::uint32_t(x_sums[k]) << 7));  // mod 2^32
    _mm512_mask_storeu_epi32(acc + k * acc_stride, m0, _mm512_sub_epi32(a0[k], correction));
    _mm512_mask_storeu_epi32(acc + k * acc_stride + 16, m1, _mm512_sub_epi32(a1[k], correction));
  }
}

/// acc[s * acc_stride + j] = sum_i x[s * x_stride + i] code(j, i), exactly, for the
/// `batch` samples and the outputs 32 first_unit .. 32 last_unit - 1 (group-4 layout).
/// `tables` from crew_code_tables; x_stride >= 4 * lanes.groups(), the bytes past the
/// inputs zero; x_sums[s] = sum_i x[s * x_stride + i]; `decoded` holds 256 *
/// lanes.groups() bytes: two units' decoded codes. The outputs go 32 at a time (a unit),
/// multiplied by the samples 8 at a time (16 accumulators; 12 were no faster), then 4,
/// then 1; the unit's sample tiles share the decoding of the next unit. Only the first
/// unit is decoded on its own.
inline void crew_gemm_int8(const crew_lanes& lanes, const std::uint8_t* tables, const std::int8_t* x,
                           index_t x_stride, const std::int32_t* x_sums, index_t batch, std::int32_t* acc,
                           index_t acc_stride, index_t first_unit, index_t last_unit, std::uint8_t* decoded) {
  const index_t groups = lanes.groups(), units = std::min((lanes.outputs + 31) / 32, last_unit);
  if (batch <= 0 || first_unit >= units) return;
  const auto buffer = [&](index_t unit) { return decoded + unit % 2 * groups * 128; };
  const crew_int8_decoder first(lanes, tables, first_unit, buffer(first_unit));
  for (index_t q = 0; q < groups; ++q) first.group(q);
  const index_t tiles = batch / 8 + batch % 8 / 4 + batch % 4;
  const index_t slice = (groups + tiles - 1) / tiles;  // groups of the next unit per tile
  for (index_t unit = first_unit; unit < units; ++unit) {
    const bool last = unit + 1 == units;
    const crew_int8_decoder next(lanes, tables, last ? unit : unit + 1, buffer(unit + 1));
    const index_t valid = lanes.outputs - unit * 32;
    index_t s = 0, tile = 0;
    const auto run = [&](auto width) {
      constexpr int nb = decltype(width)::value;
      const index_t d = last ? 0 : std::min(groups, tile * slice), d_end = last ? 0 : std::min(groups, d + slice);
      crew_int8_gemm_tile<nb>(buffer(unit), groups, x + s * x_stride, x_stride, x_sums + s, valid,
                              acc + s * acc_stride + unit * 32, acc_stride, next, d, d_end);
      s += nb, ++tile;
    };
    while (batch - s >= 8) run(std::integral_constant<int, 8>{});
    if (batch - s >= 4) run(std::integral_constant<int, 4>{});
    while (s < batch) run(std::integral_constant<int, 1>{});
  }
}

SLIMNN_TARGET_END
}  // namespace slimnn::kernels::avx512
#endif  // SLIMNN_X86_KERNELS
