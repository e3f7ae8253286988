// slimnn/kernels/crew.hpp — CREW's gather kernels, dispatched at run time by kernel path.
//
// acc_j += sum over the active inputs i (x_i != 0, ascending) of P_i[idx(j, i)], with
// P_i[u] = x_i * U_i[u]: from float tables (crew_gather) or, exactly in int32, from int8
// activations and int8 codes (crew_gather_int8). The variants (crew_lanes.hpp portable,
// crew_avx2.hpp, crew_avx512.hpp) each read one interleave of the lanes layout; a layer
// keeps the interleave of the path that was active when it was built or loaded
// (crew_lanes_group), and a path whose kernel reads another interleave falls back to the
// portable kernel, which reads both. Every path gives the same results (see the variants).
// Cost: sum_i u_i table entries, then one lookup and one add per active input and output.
// crew_decode expands the indices of some outputs and inputs into float weights (one
// lookup per weight), for the batched forward's GEMM; crew_gemm_int8 decodes int8 codes
// and multiplies them by a batch of int8 activations exactly (AVX-512 and AVX2 kernels).
// Thread safety: pure functions of their arguments (the workspace is the caller's).
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "slimnn/kernels/crew_avx2.hpp"
#include "slimnn/kernels/crew_avx512.hpp"
#include "slimnn/kernels/crew_lanes.hpp"
#include "slimnn/kernels/isa.hpp"

namespace slimnn::kernels {

/// The lanes interleave the path's SIMD kernels read: 4 inputs per word for AVX-512, 1 else.
inline int crew_lanes_group(isa path) { return path == isa::avx512 ? 4 : 1; }

/// Bytes of workspace crew_gather needs: the AVX2 float kernel's byte planes of the
/// active inputs' tables (64 bytes per input).
inline std::size_t crew_gather_workspace_bytes(const crew_lanes& lanes) { return std::size_t(lanes.inputs) * 64; }

/// acc[j] += P[offsets[i] + idx(j, i)] over the `count` active inputs, in order, for the
/// outputs j of lanes blocks [first_block, last_block). `P` must be readable 16 entries
/// past every offset (the SIMD kernels load whole tables); `workspace` holds
/// crew_gather_workspace_bytes bytes.
template <class T>
void crew_gather(isa path, const crew_lanes& lanes, const std::uint32_t* offsets, const T* P,
                 const std::int32_t* active, index_t count, void* workspace, T* acc, index_t first_block,
                 index_t last_block) {
#if defined(SLIMNN_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    if (path == isa::avx512 && lanes.group == 4)
      return avx512::crew_gather_lanes(lanes, offsets, P, active, count, acc, first_block, last_block);
    if (path >= isa::avx2 && lanes.group == 1) {
      auto* planes = static_cast<std::uint8_t*>(workspace);
      avx2::crew_float_planes(offsets, P, active, count, planes);
      return avx2::crew_gather_planes(lanes, planes, active, count, acc, first_block, last_block);
    }
  }
#endif
  (void)path, (void)workspace;
  crew_gather_lanes(lanes, offsets, P, active, count, acc, first_block, last_block);
}

/// The decoded weights of lanes blocks [first_block, last_block) for inputs[0..count), as
/// crew_decode_lanes (crew_lanes.hpp) writes them: tile[k * ld + r], whole blocks. `V`
/// must be readable 16 entries past every offset.
template <class T>
void crew_decode(isa path, const crew_lanes& lanes, const std::uint32_t* offsets, const T* V,
                 const std::int32_t* inputs, index_t count, index_t first_block, index_t last_block, T* tile,
                 index_t ld) {
#if defined(SLIMNN_X86_KERNELS)
  if constexpr (std::is_same_v<T, float>) {
    if (path == isa::avx512 && lanes.group == 4)
      return avx512::crew_decode_lanes(lanes, offsets, V, inputs, count, first_block, last_block, tile, ld);
    if (path >= isa::avx2 && lanes.group == 1)
      return avx2::crew_decode_lanes(lanes, offsets, V, inputs, count, first_block, last_block, tile, ld);
  }
#endif
  (void)path;
  crew_decode_lanes(lanes, offsets, V, inputs, count, first_block, last_block, tile, ld);
}

/// The int32 product tables of the portable int8 kernels: table[offsets[i] + u] =
/// x_i * codes[offsets[i] + u] for the active inputs.
inline void crew_int8_table(const std::int8_t* x, const std::uint32_t* offsets, const std::uint32_t* unique,
                            const std::int8_t* codes, const std::int32_t* active, index_t count,
                            std::int32_t* table) {
  for (index_t k = 0; k < count; ++k) {
    const auto i = std::size_t(active[k]);
    for (std::uint32_t u = 0; u < unique[i]; ++u)
      table[offsets[i] + u] = std::int32_t(x[i]) * std::int32_t(codes[offsets[i] + u]);
  }
}

/// Bytes of workspace crew_gather_int8 needs for a layer with `table_entries` = sum u_i.
inline std::size_t crew_int8_workspace_bytes(const crew_lanes& lanes, std::size_t table_entries) {
  const std::size_t inputs = std::size_t(lanes.inputs);
  return std::max({inputs * 32, std::size_t(lanes.groups_of_4()) * 128, (table_entries + 16) * sizeof(std::int32_t)});
}

/// acc[j] += sum over the active inputs of x_i * codes[offsets[i] + idx(j, i)], exactly,
/// for the outputs j of lanes blocks [first_block, last_block). `active` lists the `count`
/// active inputs (ascending) and may be overwritten; `codes` must be readable 16 bytes
/// past every offset; `workspace` holds crew_int8_workspace_bytes bytes, aligned for int32.
inline void crew_gather_int8(isa path, const crew_lanes& lanes, const std::int8_t* x, const std::uint32_t* offsets,
                             const std::uint32_t* unique, const std::int8_t* codes, std::int32_t* active,
                             index_t count, void* workspace, std::int32_t* acc, index_t first_block,
                             index_t last_block) {
#if defined(SLIMNN_X86_KERNELS)
  auto* bytes = static_cast<std::uint8_t*>(workspace);
  if (path == isa::avx512 && lanes.group == 4) {
    std::int32_t* groups = active;  // the groups of 4 inputs with an active input
    const index_t group_count = avx512::crew_int8_tables(x, lanes.inputs, offsets, codes, groups, bytes);
    return avx512::crew_gather_int8(lanes, bytes, groups, group_count, acc, first_block, last_block);
  }
  if (path >= isa::avx2 && lanes.group == 1) {
    if (5 * count >= 4 * lanes.inputs) {  // few zeros: decode every input (crew_avx2.hpp)
      std::uint8_t* magnitude = bytes + lanes.groups_of_4() * 64;
      avx2::crew_int8_signed_tables(x, lanes.inputs, offsets, codes, bytes, magnitude);
      return avx2::crew_int8_decoded(lanes, bytes, magnitude, acc, first_block, last_block);
    }
    avx2::crew_int8_tables(x, offsets, codes, active, count, bytes);
    return avx2::crew_gather_int8(lanes, bytes, active, count, acc, first_block, last_block);
  }
#endif
  (void)path;
  auto* table = static_cast<std::int32_t*>(workspace);
  crew_int8_table(x, offsets, unique, codes, active, count, table);
  crew_gather_lanes(lanes, offsets, table, active, count, acc, first_block, last_block);
}

/// Whether `path` has a batched int8 kernel (crew_gemm_int8) for this interleave: AVX-512
/// (VBMI + VNNI) with the group-4 layout, AVX2 or AVX-512 with the group-1 layout.
inline bool crew_has_int8_gemm(isa path, const crew_lanes& lanes) {
#if defined(SLIMNN_X86_KERNELS)
  return (path == isa::avx512 && lanes.group == 4) || (path >= isa::avx2 && lanes.group == 1);
#else
  (void)path, (void)lanes;
  return false;
#endif
}

/// Bytes of the code tables crew_gemm_int8 reads (16 per input, padded to groups of 4).
inline std::size_t crew_code_table_bytes(const crew_lanes& lanes) { return std::size_t(lanes.groups_of_4()) * 64; }

/// The code tables crew_gemm_int8 reads (crew_code_table_bytes), built once per forward
/// and shared by every thread: per input 16 bytes, its codes then zeros (padding inputs to
/// a multiple of 4: zeros), plus 128 for the group-4 (AVX-512) kernel, which multiplies
/// them as unsigned bytes. `codes` must be readable 16 bytes past every offset. Only
/// where crew_has_int8_gemm(path, lanes).
inline void crew_code_tables(isa path, const crew_lanes& lanes, const std::uint32_t* offsets,
                             const std::uint32_t* unique, const std::int8_t* codes, std::uint8_t* tables) {
  if (!crew_has_int8_gemm(path, lanes)) throw error("crew_code_tables: no batched int8 kernel on this path");
  const std::uint8_t bias = lanes.group == 4 ? 128 : 0;
  for (index_t i = 0; i < lanes.groups_of_4() * 4; ++i) {
    std::uint8_t t[16];
    std::memcpy(t, codes + offsets[std::min(i, lanes.inputs - 1)], 16);
    const std::uint32_t present = i < lanes.inputs ? unique[i] : 0;
    for (std::uint32_t u = 0; u < 16; ++u) tables[i * 16 + u] = std::uint8_t((u < present ? t[u] : 0) + bias);
  }
}

/// Bytes of the per-thread workspace of crew_gemm_int8 for `batch` samples: two units'
/// decoded codes (one is decoded while the other is multiplied) and, on AVX2, the
/// activations' magnitudes (4 groups_of_4() bytes per sample, whatever x's stride) and
/// whether each sample has a negative one (a byte per sample).
inline std::size_t crew_gemm_int8_workspace_bytes(const crew_lanes& lanes, index_t batch) {
  return std::size_t(lanes.groups_of_4()) * std::size_t(256 + 4 * batch) + std::size_t(batch);
}

/// Outputs per unit of crew_gemm_int8's range.
inline constexpr index_t crew_gemm_int8_unit = 32;

/// acc = codes x x for `batch` samples at once, exactly (see avx512::crew_gemm_int8 and
/// avx2::crew_gemm_int8), for the outputs of units [first_unit, last_unit)
/// (crew_gemm_int8_unit outputs each), from the tables of crew_code_tables; x_stride >= 4
/// lanes.groups_of_4(), the bytes past the inputs zero; x_sums[s] = the sum of sample s's
/// activations (read by the group-4 kernel only); `workspace`
/// (crew_gemm_int8_workspace_bytes) the calling thread's own: only where
/// crew_has_int8_gemm(path, lanes). A batch of 0 does nothing.
inline void crew_gemm_int8(isa path, const crew_lanes& lanes, const std::uint8_t* tables, const std::int8_t* x,
                           index_t x_stride, const std::int32_t* x_sums, index_t batch, std::int32_t* acc,
                           index_t acc_stride, index_t first_unit, index_t last_unit, std::uint8_t* workspace) {
#if defined(SLIMNN_X86_KERNELS)
  if (crew_has_int8_gemm(path, lanes)) {
    if (lanes.group == 4)
      return avx512::crew_gemm_int8(lanes, tables, x, x_stride, x_sums, batch, acc, acc_stride, first_unit, last_unit,
                                    workspace);
    return avx2::crew_gemm_int8(lanes, tables, x, x_stride, batch, acc, acc_stride, first_unit, last_unit, workspace);
  }
#endif
  (void)path, (void)tables, (void)x, (void)x_stride, (void)x_sums, (void)batch, (void)acc, (void)acc_stride,
      (void)first_unit, (void)last_unit, (void)workspace;
  throw error("crew_gemm_int8: no batched int8 kernel on this path");
}

}  // namespace slimnn::kernels
