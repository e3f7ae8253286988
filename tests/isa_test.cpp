// Kernel paths (kernels/isa.hpp): names, the SLIMNN_ISA switch, forcing, and every kernel
// family on every supported path against the portable one. This file is built without
// -march=native, as a consumer's plain build would be, so it also shows that the SIMD
// variants are compiled and chosen at run time.
#include "slimnn/kernels/isa.hpp"

#include <gmock/gmock.h>

#include <array>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <random>

#include "kernel_paths.hpp"
#include "slimnn/kernels/complex_gemm.hpp"
#include "slimnn/kernels/crew.hpp"
#include "slimnn/kernels/kdconv.hpp"
#include "slimnn/kernels/pool.hpp"
#include "slimnn/kernels/smartdeal.hpp"

namespace {

using namespace slimnn;
using ::testing::StrEq;
using ::testing::ThrowsMessage;

TEST(isa, names_round_trip_and_unknown_names_are_rejected) {
  for (const isa path : {isa::portable, isa::avx2, isa::avx512}) EXPECT_EQ(parse_isa(isa_name(path)), path);
  EXPECT_THAT([] { parse_isa("sse4"); },
              ThrowsMessage<config_error>(StrEq("slimnn: unknown instruction set 'sse4' (expected portable, avx2 or avx512)")));
  EXPECT_THAT([] { parse_isa("AVX2"); }, ThrowsMessage<config_error>(::testing::HasSubstr("'AVX2'")));
}

TEST(isa, supported_paths_start_portable_and_end_with_the_best) {
  const auto paths = supported_isas();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), isa::portable);
  EXPECT_EQ(paths.back(), best_isa());
  for (const isa path : paths) EXPECT_TRUE(isa_supported(path));
  if (isa_supported(isa::avx512)) {
    EXPECT_TRUE(isa_supported(isa::avx2));
  }
}

TEST(isa, settings_choose_a_path_or_say_what_is_wrong) {
  EXPECT_EQ(detail::isa_from_setting(nullptr), best_isa());
  EXPECT_EQ(detail::isa_from_setting(""), best_isa());
  EXPECT_EQ(detail::isa_from_setting("portable"), isa::portable);
  EXPECT_THAT([] { detail::isa_from_setting("neon"); },
              ThrowsMessage<config_error>(StrEq("slimnn: unknown instruction set 'neon' (expected portable, avx2 or avx512)")));
  for (const isa path : {isa::avx2, isa::avx512}) {
    if (isa_supported(path)) {
      EXPECT_EQ(detail::isa_from_setting(isa_name(path)), path);
      continue;
    }
    std::string supported;
    for (const isa p : supported_isas()) supported += std::string(supported.empty() ? "" : ", ") + isa_name(p);
    const std::string name = isa_name(path);
    EXPECT_THAT([&] { detail::isa_from_setting(name.c_str()); },
                ThrowsMessage<config_error>(StrEq("slimnn: SLIMNN_ISA=" + name + ": this CPU cannot run the " + name +
                                                  " kernels (supported: " + supported + ")")));
    EXPECT_THAT([&] { set_isa(path); }, ThrowsMessage<config_error>(StrEq("slimnn: set_isa: this CPU cannot run the " +
                                                                          name + " kernels")));
  }
}

TEST(isa, the_environment_chooses_the_path) {
  // ctest runs this test with SLIMNN_ISA set to each supported path (tests/CMakeLists.txt).
  const char* value = std::getenv("SLIMNN_ISA");
  EXPECT_EQ(active_isa(), value == nullptr || *value == '\0' ? best_isa() : parse_isa(value));
}

TEST(isa, scoped_isa_forces_and_restores) {
  const isa before = active_isa();
  for (const isa path : supported_isas()) {
    {
      const scoped_isa use(path);
      EXPECT_EQ(active_isa(), path);
      const scoped_isa inner(isa::portable);
      EXPECT_EQ(active_isa(), isa::portable);
    }
    EXPECT_EQ(active_isa(), before);
  }
}

// --- every kernel family on every path ---------------------------------------------------

std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

TEST(kernel_paths, smartdeal_sparse_stage_agrees_with_portable_on_every_path) {
  // Rows of 0..70 units (segments of 8 and single nonzeros) hit every unrolled loop and tail.
  const index_t rows = 71, z_size = 4096;
  std::mt19937_64 rng(7);
  for (const index_t width : {1, 8, 3}) {
    std::vector<index_t> start(rows + 1, 0);
    for (index_t o = 0; o < rows; ++o) start[std::size_t(o) + 1] = start[std::size_t(o)] + o;
    std::vector<std::uint32_t> offset(std::size_t(start.back()));
    for (auto& off : offset) off = std::uint32_t(rng() % std::uint64_t(z_size - width));
    const auto coef = random_floats(std::size_t(start.back() * width), 1);
    const auto z = random_floats(std::size_t(z_size), 2);
    std::vector<float> reference(rows), y(rows);
    kernels::smartdeal_gemv(isa::portable, rows, width, start.data(), offset.data(), coef.data(), z.data(),
                            reference.data());
    for (const isa path : supported_isas()) {
      kernels::smartdeal_gemv(path, rows, width, start.data(), offset.data(), coef.data(), z.data(), y.data());
      for (index_t o = 0; o < rows; ++o)
        ASSERT_NEAR(y[std::size_t(o)], reference[std::size_t(o)], 1e-5f * (1.0f + float(o)))
            << isa_name(path) << ", width " << width << ", row " << o;
    }
    if (width != 8) continue;
    // The same segments as exponent codes of +-2^e, e in -6..1 (e_max = 1): each path's
    // coded kernel equals its float kernel on the decoded values exactly.
    std::vector<std::int8_t> codes(coef.size());
    std::vector<float> powers(coef.size());
    for (std::size_t k = 0; k < coef.size(); ++k) {
      const int e = int(rng() % 8) - 6;
      powers[k] = k % 5 == 2 ? 0.0f : (k % 2 ? -1.0f : 1.0f) * std::ldexp(1.0f, e);
      codes[k] = kernels::exponent_code(powers[k], 1);
      ASSERT_EQ(kernels::decode_exponent_code(codes[k]) * 2.0f, powers[k]) << k;
    }
    for (const isa path : supported_isas()) {
      kernels::smartdeal_gemv(path, rows, 8, start.data(), offset.data(), powers.data(), z.data(), reference.data());
      kernels::smartdeal_gemv_s8_codes(path, rows, start.data(), offset.data(), codes.data(), z.data(), 2.0f, y.data());
      EXPECT_EQ(y, reference) << isa_name(path);
    }
  }
}

TEST(kernel_paths, smartdeal_batched_stage_agrees_with_portable_on_every_path) {
  // Batches around the 32- and 64-sample tiles (100: one of each, then a masked step),
  // segments of 8, single nonzeros and width 3.
  const index_t rows = 23, columns = 200;
  std::mt19937_64 rng(9);
  for (const index_t width : {1, 3, 8}) {
    std::vector<index_t> start(rows + 1, 0);
    for (index_t o = 0; o < rows; ++o) start[std::size_t(o) + 1] = start[std::size_t(o)] + (o * 5) % 13;
    std::vector<std::uint32_t> offset(std::size_t(start.back()));
    for (auto& off : offset) off = std::uint32_t(rng() % std::uint64_t(columns - width));
    const auto coef = random_floats(std::size_t(start.back() * width), 4);
    for (const index_t n : {1, 5, 8, 31, 32, 64, 70, 100, 131}) {
      const auto zc = random_floats(std::size_t(n * columns), 5);
      std::vector<float> reference(std::size_t(n * rows)), yt(std::size_t(n * rows), -1.0f);
      kernels::smartdeal_gemm(isa::portable, rows, width, start.data(), offset.data(), coef.data(), zc.data(), n,
                              reference.data());
      for (const isa path : supported_isas()) {
        kernels::smartdeal_gemm(path, rows, width, start.data(), offset.data(), coef.data(), zc.data(), n, yt.data());
        for (std::size_t k = 0; k < yt.size(); ++k)
          ASSERT_NEAR(yt[k], reference[k], 1e-5f * (1.0f + std::abs(reference[k])))
              << isa_name(path) << ", width " << width << ", batch " << n << ", entry " << k;
      }
    }
  }
}

TEST(kernel_paths, crew_gathers_and_decodes_are_bit_identical_on_every_path) {
  std::mt19937_64 rng(11);
  // One input in 9 inactive: AVX2's int8 path decodes every input; one in 3: it gathers the
  // 401 active ones (> 256: it flushes its 16-bit sums).
  for (const index_t zero_every : {9, 3}) {
    for (const int width : {1, 2, 4})
      for (const index_t outputs : {1, 64, 203, 300}) {
        const index_t inputs = zero_every == 9 ? 301 : 601;
        const std::uint32_t unique = 1u << width;
        std::vector<std::uint32_t> offsets(std::size_t(inputs) + 1), counts(std::size_t(inputs), unique);
        for (index_t i = 0; i < inputs; ++i) offsets[std::size_t(i) + 1] = offsets[std::size_t(i)] + unique;
        std::vector<std::int8_t> codes(offsets.back() + 16, 0);
        for (std::uint32_t k = 0; k < offsets.back(); ++k) codes[k] = std::int8_t(int(rng() % 255) - 127);
        std::vector<std::int8_t> x(static_cast<std::size_t>(inputs));
        std::vector<std::int32_t> active;
        for (index_t i = 0; i < inputs; ++i) {
          x[std::size_t(i)] = i % zero_every == 1 ? 0 : std::int8_t(int(rng() % 256) - 128);
          if (x[std::size_t(i)] != 0) active.push_back(std::int32_t(i));
        }
        std::vector<std::vector<std::uint32_t>> index(static_cast<std::size_t>(outputs),
                                                      std::vector<std::uint32_t>(static_cast<std::size_t>(inputs)));
        for (auto& row : index)
          for (auto& v : row) v = std::uint32_t(rng() % unique);
        std::vector<std::int32_t> expected(std::size_t(outputs), 0);
        for (index_t j = 0; j < outputs; ++j)
          for (const std::int32_t i : active)
            expected[std::size_t(j)] += std::int32_t(x[std::size_t(i)]) *
                                        codes[offsets[std::size_t(i)] + index[std::size_t(j)][std::size_t(i)]];
        const auto table = random_floats(offsets.back() + 16, 3);  // SIMD lookups read 16 entries past an offset
        std::vector<float> float_reference(std::size_t(outputs), 0.0f);
        for (index_t j = 0; j < outputs; ++j)
          for (const std::int32_t i : active)
            float_reference[std::size_t(j)] += table[offsets[std::size_t(i)] + index[std::size_t(j)][std::size_t(i)]];
        for (const isa path : supported_isas()) {
          SCOPED_TRACE(::testing::Message() << isa_name(path) << ", width " << width << ", outputs " << outputs);
          kernels::crew_lanes lanes(inputs, outputs, width, kernels::crew_lanes_group(path));
          for (index_t j = 0; j < outputs; ++j)
            for (index_t i = 0; i < inputs; ++i) lanes.set(j, i, index[std::size_t(j)][std::size_t(i)]);
          std::vector<std::uint8_t> workspace(kernels::crew_int8_workspace_bytes(lanes, offsets.back()) + 64);
          std::vector<std::uint8_t> planes(kernels::crew_gather_workspace_bytes(lanes));
          // All blocks at once, and in two ranges of blocks (as threads cut a layer's outputs).
          const index_t blocks = lanes.blocks();
          for (const index_t cut : {blocks, blocks / 2}) {
            SCOPED_TRACE(::testing::Message() << "blocks cut at " << cut << " of " << blocks);
            std::vector<std::int32_t> acc(std::size_t(outputs), 0);
            std::vector<float> sums(std::size_t(outputs), 0.0f);
            for (const auto& [first, last] : {std::pair{index_t(0), cut}, std::pair{cut, blocks}}) {
              std::vector<std::int32_t> scratch_active = active;
              kernels::crew_gather_int8(path, lanes, x.data(), offsets.data(), counts.data(), codes.data(),
                                        scratch_active.data(), index_t(active.size()), workspace.data(), acc.data(),
                                        first, last);
              kernels::crew_gather(path, lanes, offsets.data(), table.data(), active.data(), index_t(active.size()),
                                   planes.data(), sums.data(), first, last);
            }
            EXPECT_EQ(acc, expected);
            EXPECT_EQ(sums, float_reference);  // the same additions in the same order
          }
          // The decoded weights of the active inputs, for the blocks [1, blocks) or all.
          const index_t first_block = blocks > 1 ? 1 : 0, rows = (blocks - first_block) * lanes.block_outputs();
          std::vector<float> tile(std::size_t(rows) * active.size(), -1.0f);
          kernels::crew_decode(path, lanes, offsets.data(), table.data(), active.data(), index_t(active.size()),
                               first_block, blocks, tile.data(), rows);
          for (std::size_t k = 0; k < active.size(); ++k)
            for (index_t r = 0; r < rows; ++r) {
              const index_t j = first_block * lanes.block_outputs() + r, i = active[k];
              const std::uint32_t u = j < outputs ? index[std::size_t(j)][std::size_t(i)] : 0;  // padding: index 0
              ASSERT_EQ(tile[k * std::size_t(rows) + std::size_t(r)], table[offsets[std::size_t(i)] + u])
                  << "input " << i << ", output " << j;
            }
        }
      }
  }
}

TEST(kernel_paths, circulant_complex_products_match_the_double_sum_on_every_path) {
  // Row counts around the 4-, 8-, 16- and 32-row tiles, column counts around the 3- and
  // 6-column tiles, 0 to 3 panels, both layouts of B, strides wider than the matrices.
  // Entries of C's padding rows must stay untouched.
  using cf = std::complex<float>;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const bool b_transposed : {false, true})
    for (const index_t m : {1, 3, 4, 7, 9, 16, 17, 37, 64, 100})
      for (const index_t n : {1, 2, 3, 4, 5, 6, 7, 10, 13})
        for (const index_t count : {0, 1, 3}) {
          const index_t k = 5, lda = m + 3, ldc = m + 2;
          const index_t ldb_k = b_transposed ? n + 1 : 1, ldb_n = b_transposed ? 1 : k + 2;
          const std::size_t a_size = std::size_t(lda * k + 4), b_size = std::size_t(k * ldb_k + n * ldb_n + 4);
          std::vector<cf> a(a_size * std::size_t(std::max<index_t>(count, 1))), b(b_size * a.size() / a_size);
          for (auto& v : a) v = {u(rng), u(rng)};
          for (auto& v : b) v = {u(rng), u(rng)};
          std::vector<kernels::complex_panel<float>> panels;
          for (index_t t = 0; t < count; ++t)
            panels.push_back({a.data() + std::size_t(t) * a_size + std::size_t(t), b.data() + std::size_t(t) * b_size});
          const kernels::complex_gemm_shape shape{.m = m, .n = n, .k = k, .lda = lda, .ldb_k = ldb_k, .ldb_n = ldb_n,
                                                  .ldc = ldc};
          for (const isa path : supported_isas()) {
            const cf sentinel(-7.0f, 7.0f);
            std::vector<cf> c(std::size_t(ldc * n), sentinel);
            kernels::complex_panel_gemm(path, shape, panels.data(), count, c.data());
            for (index_t j = 0; j < n; ++j)
              for (index_t r = 0; r < ldc; ++r) {
                const cf got = c[std::size_t(j * ldc + r)];
                if (r >= m) {
                  ASSERT_EQ(got, sentinel) << isa_name(path) << ": padding row " << r << " written";
                  continue;
                }
                std::complex<double> want = 0.0;
                for (const auto& panel : panels)
                  for (index_t kk = 0; kk < k; ++kk)
                    want += std::complex<double>(panel.a[kk * lda + r]) *
                            std::complex<double>(panel.b[kk * ldb_k + j * ldb_n]);
                ASSERT_NEAR(got.real(), want.real(), 1e-5) << isa_name(path) << ", m " << m << ", n " << n << ", ("
                                                            << r << ", " << j << ")";
                ASSERT_NEAR(got.imag(), want.imag(), 1e-5) << isa_name(path) << ", m " << m << ", n " << n << ", ("
                                                            << r << ", " << j << ")";
              }
          }
        }
}

TEST(kernel_paths, kdconv_stages_match_the_double_sums_on_every_path) {
  // Stage 1 for 1-4 bases x 1-4 tiles over 9 taps, stage 2's row blocks (2-4 channels)
  // and jobs for tiles of 16-64 positions with partial stores, against sums in double.
  const index_t taps = 9, stride = 80, columns = 12, row = kernels::kdconv_row_tile;
  const auto input = random_floats(4096, 12), basis = random_floats(4 * taps, 13);
  const auto responses = random_floats(std::size_t(stride * columns), 14), coef = random_floats(64, 15);
  std::vector<index_t> offset(static_cast<std::size_t>(taps));
  for (index_t tap = 0; tap < taps; ++tap) offset[std::size_t(tap)] = (tap / 3) * 100 + tap % 3;
  for (const isa path : supported_isas()) {
    for (int bases = 1; bases <= 4; ++bases)
      for (int tiles = 1; tiles <= 4; ++tiles) {
        const index_t out_stride = tiles * row + 5;
        std::vector<float> out(std::size_t(bases * out_stride), 0.0f);
        const float* src[4];
        float* dst[4];
        for (int v = 0; v < tiles; ++v) src[v] = input.data() + 300 * v + 7, dst[v] = out.data() + v * row;
        kernels::kdconv_basis_tiles(path, bases, tiles, src, dst, basis.data(), offset.data(), taps, out_stride);
        for (int mm = 0; mm < bases; ++mm)
          for (int v = 0; v < tiles; ++v)
            for (index_t t = 0; t < row; ++t) {
              double want = 0.0;
              for (index_t tap = 0; tap < taps; ++tap)
                want += double(basis[std::size_t(mm * taps + tap)]) * double(src[v][offset[std::size_t(tap)] + t]);
              ASSERT_NEAR(dst[v][mm * out_stride + t], want, 1e-5) << isa_name(path) << ": " << bases << " bases, "
                                                                   << tiles << " tiles, basis " << mm << ", tile "
                                                                   << v << ", position " << t;
            }
      }
    const std::int32_t column[6] = {3, 0, 7, 11, 7, 2}, nnz = 6;
    const float bias[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    for (const index_t count : {5, 16, 17, 33, 48, 64}) {
      const int width = int((count + row - 1) / row * row);
      const index_t positions = 70;
      for (int rows = 2; rows <= 4; ++rows) {
        std::vector<float> out(std::size_t(4 * positions), -3.0f);
        kernels::kdconv_combine_rows(path, width, rows, responses.data(), stride, count, column, nnz, coef.data(),
                                     bias, out.data(), positions);
        for (int r = 0; r < rows; ++r)
          for (index_t t = 0; t < positions; ++t) {
            double want = bias[r];
            for (int e = 0; e < nnz; ++e)
              want += double(coef[std::size_t(r * nnz + e)]) * double(responses[std::size_t(column[e] * stride + t)]);
            if (t >= count) want = -3.0;  // not stored
            ASSERT_NEAR(out[std::size_t(r * positions + t)], want, 1e-5)
                << isa_name(path) << ": " << rows << " rows, count " << count << ", row " << r << ", position " << t;
          }
      }
      // Two jobs on channel 1 (3 slots padded with a zero, then 2) and one on channel 0.
      const kernels::kdconv_job jobs[3] = {{1, 0, 3}, {0, 3, 2}, {1, 5, 2}};
      const std::int32_t slots[8] = {3, 0, 7, 7, 11, 2, 5, 9};
      const float values[8] = {0.5f, -0.25f, 2.0f, 0.0f, 1.5f, -1.0f, 0.75f, -2.0f};
      std::vector<float> sums(std::size_t(2 * 64), 1.0f);
      kernels::kdconv_combine_jobs(path, width, responses.data(), stride, jobs, 3, slots, values, sums.data(), 64);
      const auto r = [&](int slot, index_t t) {
        return double(values[slot]) * double(responses[std::size_t(slots[slot] * stride + t)]);
      };
      for (index_t t = 0; t < 64; ++t) {
        const double want0 = t < width ? 1.0 + r(4, t) + r(5, t) : 1.0;
        const double want1 = t < width ? 1.0 + r(0, t) + r(1, t) + r(2, t) + r(6, t) + r(7, t) : 1.0;
        ASSERT_NEAR(sums[std::size_t(t)], want0, 1e-5) << isa_name(path) << ", width " << width << ", position " << t;
        ASSERT_NEAR(sums[std::size_t(64 + t)], want1, 1e-5) << isa_name(path) << ", width " << width << ", position "
                                                            << t;
      }
    }
  }
}

TEST(kernel_paths, max_pool_2x2_is_bit_identical_to_the_window_rule_on_every_path) {
  // Small integers (many ties), signed zeros and NaNs, with odd rows and columns (not
  // read) and rows of 1-33 outputs; outputs beyond the planes stay untouched.
  std::mt19937 gen(21);
  std::uniform_int_distribution<int> pick(-3, 12);
  const float special[3] = {-0.0f, 0.0f, std::nanf("")};
  for (const auto& dims : {std::array<index_t, 3>{3, 28, 28}, {2, 14, 14}, {1, 5, 7}, {2, 2, 2}, {1, 3, 67},
                           {2, 9, 33}, {1, 4, 34}, {1, 2, 3}}) {
    const index_t channels = dims[0], h = dims[1], w = dims[2];  // (lambdas below capture them)
    std::vector<float> x(std::size_t(channels * h * w));
    for (auto& v : x) {
      const int k = pick(gen);
      v = k >= 10 ? special[k - 10] : float(k);
    }
    const index_t out_h = h / 2, out_w = w / 2, size = channels * out_h * out_w;
    std::vector<float> want(static_cast<std::size_t>(size));
    for (index_t c = 0; c < channels; ++c)
      for (index_t i = 0; i < out_h; ++i)
        for (index_t j = 0; j < out_w; ++j) {
          const auto at = [&](index_t di, index_t dj) { return x[std::size_t((c * h + 2 * i + di) * w + 2 * j + dj)]; };
          float best = at(0, 0);
          for (const float v : {at(0, 1), at(1, 0), at(1, 1)})
            if (v > best) best = v;
          want[std::size_t((c * out_h + i) * out_w + j)] = best;
        }
    for (const isa path : supported_isas()) {
      std::vector<float> y(std::size_t(size + 16), 7.5f);
      kernels::max_pool_2x2(path, x.data(), channels, h, w, y.data());
      EXPECT_EQ(std::memcmp(y.data(), want.data(), std::size_t(size) * sizeof(float)), 0)
          << isa_name(path) << ": " << channels << "x" << h << "x" << w;
      for (index_t k = size; k < size + 16; ++k) ASSERT_EQ(y[std::size_t(k)], 7.5f) << isa_name(path);
    }
  }
}

}  // namespace
