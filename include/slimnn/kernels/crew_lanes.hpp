// slimnn/kernels/crew_lanes.hpp — CREW's SIMD index layout and its portable gather kernels
// (the reference for crew_avx2.hpp and crew_avx512.hpp; crew.hpp chooses among them).
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
//           G = 4 is the AVX-512 one (vpermb looks up 16 outputs x 4 inputs).
// Portable kernels: acc (float, double or int32) += the table entries, in active-input
// order, so the SIMD kernels that keep that order give identical results.
// Cost: one table read and one add per active input and output.
// Thread safety: pure functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "slimnn/core/types.hpp"
#include "slimnn/detail/bitpack.hpp"

namespace slimnn::kernels {

using detail::packed_bits;

/// The lanes index layout (see the header comment).
struct crew_lanes {
  int width = 4;  ///< bits per index: 1, 2 or 4
  int group = 1;  ///< inputs interleaved per 4-byte word: 1 or 4
  index_t inputs = 0, outputs = 0;
  std::vector<std::uint8_t> bytes;

  crew_lanes() = default;
  crew_lanes(index_t inputs_, index_t outputs_, int width_, int group_)
      : width(width_), group(group_), inputs(inputs_), outputs(outputs_) {
    bytes.assign(std::size_t(blocks() * groups() * row_bytes()), 0);
  }
  int fields() const { return 8 / width; }
  index_t positions() const { return group == 1 ? 32 : 16; }  ///< outputs per field
  index_t row_bytes() const { return positions() * group; }    ///< 32 or 64
  index_t groups() const { return (inputs + group - 1) / group; }
  index_t groups_of_4() const { return (inputs + 3) / 4; }  ///< the batched int8 kernels' step
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
  /// Bytes of the group-1 form (the file layout), whatever the interleave in memory:
  /// what cost().param_bytes counts, so it does not depend on the kernel path.
  std::uint64_t file_bytes() const {
    const index_t block = 32 * fields();
    return std::uint64_t((outputs + block - 1) / block) * std::uint64_t(inputs) * 32u;
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

/// acc[j] += P[offsets[i] + idx(j, i)] for every active input i, in order, and every
/// output j of the blocks [first_block, last_block); lanes layout.
template <class Acc, class Table>
void crew_gather_lanes(const crew_lanes& lanes, const std::uint32_t* offsets, const Table* P,
                       const std::int32_t* active, index_t active_count, Acc* acc, index_t first_block,
                       index_t last_block) {
  const unsigned mask = (1u << lanes.width) - 1u;
  for (index_t b = first_block; b < last_block; ++b)
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

/// The decoded weights of lanes blocks [first_block, last_block) for the inputs
/// inputs[0..count): tile[k * ld + r] = V[offsets[i_k] + idx(first_block * B + r, i_k)]
/// for every output row r of the blocks (B = block_outputs(); padding outputs decode
/// index 0), so ld >= (last_block - first_block) * B.
template <class T>
void crew_decode_lanes(const crew_lanes& lanes, const std::uint32_t* offsets, const T* V, const std::int32_t* inputs,
                       index_t count, index_t first_block, index_t last_block, T* tile, index_t ld) {
  const unsigned mask = (1u << lanes.width) - 1u;
  for (index_t k = 0; k < count; ++k) {
    const index_t i = inputs[k];
    const T* t = V + offsets[i];
    T* column = tile + k * ld;
    for (index_t b = first_block; b < last_block; ++b) {
      const std::uint8_t* row = lanes.row(b, i);
      for (int f = 0; f < lanes.fields(); ++f) {
        T* out = column + (b - first_block) * lanes.block_outputs() + f * lanes.positions();
        const int shift = f * lanes.width;
        for (index_t p = 0; p < lanes.positions(); ++p) out[p] = t[(row[p * lanes.group] >> shift) & mask];
      }
    }
  }
}

/// The same for the packed layout, outputs [first, last): tile[k * ld + j - first].
template <class T>
void crew_decode_packed(const std::vector<packed_bits>& index, const std::uint32_t* offsets, const T* V,
                        const std::int32_t* inputs, index_t count, index_t first, index_t last, T* tile, index_t ld) {
  for (index_t k = 0; k < count; ++k) {
    const index_t i = inputs[k];
    const packed_bits& idx = index[std::size_t(i)];
    const T* t = V + offsets[i];
    for (index_t j = first; j < last; ++j) tile[k * ld + j - first] = t[idx.get(std::size_t(j))];
  }
}

/// The same for the packed layout (one packed_bits per input), outputs [first, last).
template <class Acc, class Table>
void crew_gather_packed(const std::vector<packed_bits>& index, const std::uint32_t* offsets, const Table* P,
                        const std::int32_t* active, index_t active_count, Acc* acc, index_t first, index_t last) {
  for (index_t k = 0; k < active_count; ++k) {
    const index_t i = active[k];
    const packed_bits& idx = index[std::size_t(i)];
    const Table* t = P + offsets[i];
    for (index_t j = first; j < last; ++j) acc[j] += Acc(t[idx.get(std::size_t(j))]);
  }
}

}  // namespace slimnn::kernels
