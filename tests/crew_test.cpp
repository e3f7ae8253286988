#include "slimnn/crew/crew_dense.hpp"

#include <gmock/gmock.h>

#include <limits>
#include <set>

#include "conformance.hpp"
#include "kernel_paths.hpp"
#include "slimnn/crew/crew_stats.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::random_matrix;
using ::testing::StrEq;
using ::testing::ThrowsMessage;

/// outputs x inputs codes with at most `unique` distinct values per input, drawn from
/// -127..127 (zero included when `with_zero`).
int8_matrix random_codes(index_t inputs, index_t outputs, int unique, std::uint64_t seed, bool with_zero = true) {
  rng_t rng(seed);
  std::vector<int> grid;
  for (int c = -127; c <= 127; ++c)
    if (with_zero || c != 0) grid.push_back(c);
  std::uniform_int_distribution<int> pick(0, unique - 1);
  int8_matrix codes(outputs, inputs);
  for (index_t i = 0; i < inputs; ++i) {
    std::shuffle(grid.begin(), grid.end(), rng);
    for (index_t j = 0; j < outputs; ++j) codes(j, i) = std::int8_t(grid[std::size_t(pick(rng))]);
  }
  return codes;
}

int8_matrix random_int8(index_t rows, index_t cols, std::uint64_t seed) {
  rng_t rng(seed);
  std::uniform_int_distribution<int> v(-128, 127);
  int8_matrix x(rows, cols);
  for (index_t k = 0; k < x.size(); ++k) x.data()[k] = std::int8_t(k % 7 == 3 ? 0 : v(rng));  // some zeros
  return x;
}

template <class T>
crew_dense<T> layer_from(const int8_matrix& codes, crew_index_layout layout = crew_index_layout::automatic,
                         std::uint64_t seed = 4) {
  std::vector<double> scale(std::size_t(codes.rows()));
  for (std::size_t j = 0; j < scale.size(); ++j) scale[j] = 0.01 * double(1 + j % 3);
  const vector<T> bias = random_matrix<T>(codes.rows(), 1, seed);
  return crew_dense<T>(quantized_weights{codes, scale, 127}, bias, layout);
}

// --- conformance ---------------------------------------------------------------------

struct crew_lanes_case {
  template <class T>
  static crew_dense<T> make() {
    rng_t rng(42);
    return compress(dense<T>(7, 5, rng), {.clusters = 3}).layer;
  }
};
struct crew_packed_case {
  template <class T>
  static crew_dense<T> make() {
    rng_t rng(43);
    return compress(dense<T>(9, 40, rng), {.method = crew_settings::quantizer::uniform, .bits = 8}).layer;
  }
};
/// Int8 activations ("a8"): forward() rounds each sample to steps of max |x| / 127, so it
/// matches the dense expansion only to that rounding, and its finite differences are 0
/// almost everywhere; it trains in float (forward_train), whose gradients are checked.
struct crew_int8_activations_case {
  static constexpr double reference_tolerance = 0.02;
  template <class L>
  static void as_trained(L& layer) {
    layer.set_activations(crew_activations::as_is);
  }
  template <class T>
  static crew_dense<T> make() {
    rng_t rng(44);
    return compress(dense<T>(40, 9, rng), {.clusters = 16, .activations = crew_activations::int8}).layer;
  }
};
using cases = ::testing::Types<crew_lanes_case, crew_packed_case, crew_int8_activations_case>;
INSTANTIATE_TYPED_TEST_SUITE_P(crew_dense, conformance, cases);

TEST(crew_dense, conformance_cases_cover_layouts_and_activations) {
  EXPECT_EQ(crew_lanes_case::make<float>().layout(), crew_index_layout::lanes);
  EXPECT_EQ(crew_packed_case::make<float>().layout(), crew_index_layout::per_input);
  EXPECT_EQ(crew_lanes_case::make<float>().name(), "crew_dense<float>");
  EXPECT_EQ(crew_int8_activations_case::make<float>().activations(), crew_activations::int8);
  EXPECT_EQ(crew_lanes_case::make<float>().activations(), crew_activations::as_is);
}

// --- int8 path: bit-exact against the dense integer GEMV -----------------------------

struct exact_case {
  index_t inputs, outputs;
  int unique;
  crew_index_layout layout;
};

TEST(crew_dense, int8_path_equals_dense_integer_gemv_bit_for_bit) {
  const std::vector<exact_case> cases = {
      {1, 1, 1, crew_index_layout::automatic},    {5, 31, 16, crew_index_layout::automatic},
      {33, 64, 16, crew_index_layout::automatic}, {300, 65, 16, crew_index_layout::automatic},
      {600, 130, 16, crew_index_layout::automatic}, {257, 97, 4, crew_index_layout::automatic},
      {70, 200, 2, crew_index_layout::automatic}, {40, 70, 60, crew_index_layout::automatic},
      {40, 70, 9, crew_index_layout::per_input},  {40, 70, 9, crew_index_layout::per_layer},
      {17, 300, 255, crew_index_layout::automatic}};
  for (const auto& c : cases) {
    const int8_matrix codes = random_codes(c.inputs, c.outputs, std::min(c.unique, int(c.outputs)), 7 + c.inputs);
    // Per sample below batch 4; from it, on the SIMD paths, batched: tiles of 8, 4 and 1
    // samples on AVX-512, single samples on AVX2, which share the decoding of the next 32
    // outputs (all of it inside their loops at batch 64). Every third sample has no
    // negative activation (as after a ReLU), which AVX2 multiplies without vpsignb.
    for (const index_t batch : {3, 4, 6, 29, 64}) {
      int8_matrix x = random_int8(c.inputs, batch, 9);
      for (index_t b = 0; b < batch; b += 3) x.col(b) = x.col(b).cwiseMax(std::int8_t(0));
      Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic> expected =
          codes.cast<std::int64_t>() * x.cast<std::int64_t>();
      const auto where = detail::cat(c.inputs, "x", c.outputs, " u", c.unique, ", batch ", batch);
      slimnn::testing::for_each_isa([&](isa) {
        const auto layer = layer_from<float>(codes, c.layout);  // in the interleave of this path
        int32_matrix best, portable;
        layer.forward_int8(x, best);
        layer.forward_int8(x, portable, crew_kernel::portable);
        EXPECT_EQ(best.cast<std::int64_t>(), expected) << where;
        EXPECT_EQ(portable, best) << where;
      });
    }
  }
}

TEST(crew_dense, int8_path_handles_extreme_products_and_long_inputs) {
  // Every product is -128 * 127 or 127 * 127: the largest byte sums the flushes see.
  const index_t n = 1000;
  int8_matrix codes(64, n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < 64; ++j) codes(j, i) = std::int8_t(j % 2 ? 127 : -127);
  int8_matrix x(n, 6);  // 2 samples: the per-sample path; 6: the batched one
  for (index_t b = 0; b < x.cols(); ++b) x.col(b).setConstant(std::int8_t(b % 2 ? 127 : -128));
  slimnn::testing::for_each_isa([&](isa) {
    const auto built = layer_from<float>(codes);
    int32_matrix acc;
    built.forward_int8(x.leftCols(2), acc);
    EXPECT_EQ(acc, (codes.cast<std::int32_t>() * x.leftCols(2).cast<std::int32_t>()).eval());
    built.forward_int8(x, acc);
    EXPECT_EQ(acc, (codes.cast<std::int32_t>() * x.cast<std::int32_t>()).eval());
  });
}

TEST(crew_dense, int8_with_activation_scale_dequantizes) {
  const int8_matrix codes = random_codes(20, 9, 5, 3);
  const auto layer = layer_from<double>(codes);
  const matrix<double> x = random_matrix<double>(20, 2, 5);
  const double scale = x.cwiseAbs().maxCoeff() / 127;
  matrix<double> y;
  layer.forward_int8(x, scale, y);
  const int8_matrix xq = layer.quantize_activations(x, scale);
  const matrix<double> expected =
      (scale * layer.row_scale().asDiagonal() * (codes.cast<double>() * xq.cast<double>())).colwise() + layer.bias();
  EXPECT_LT(slimnn::testing::relative_error(y, expected), 1e-14);
  // and close to the float path (activation rounding only)
  matrix<double> yf;
  layer.forward(x, yf);
  EXPECT_LT(slimnn::testing::relative_error(y, yf), 0.05);
}

// --- int8 activations (settings "a8") -----------------------------------------------------

/// What forward() with int8 activations computes, written out: each sample's scale
/// max |x| / 127 and its rounding in float as documented, the integer sums in double.
matrix<double> int8_activations_reference(const crew_dense<float>& layer, const matrix<float>& x) {
  const matrix<double> codes = layer.codes().cast<double>();
  matrix<double> y(layer.outputs(), x.cols());
  for (index_t b = 0; b < x.cols(); ++b) {
    const float largest = x.col(b).cwiseAbs().maxCoeff();
    const float scale = largest > 0 ? largest / 127 : 1.0f, inverse = 1 / scale;
    vector<double> q(x.rows());
    for (index_t i = 0; i < x.rows(); ++i) q[i] = std::nearbyint(x(i, b) * inverse);
    EXPECT_LE(q.cwiseAbs().maxCoeff(), 127);
    const vector<double> sums = codes * q;
    for (index_t j = 0; j < layer.outputs(); ++j)
      y(j, b) = double(scale) * double(layer.row_scale()[j]) * sums[j] + double(layer.bias()[j]);
  }
  return y;
}

TEST(crew_dense, int8_activations_quantize_each_sample_with_its_own_scale) {
  // Batches below and from decoded_min_batch (the per-sample and batched int8 kernels),
  // the lanes layout (u <= 16) and the packed one (u = 40), on every kernel path.
  for (const int unique : {4, 16, 40})
    for (const index_t batch : {1, 3, 4, 37}) {
      SCOPED_TRACE(detail::cat("u", unique, ", batch ", batch));
      auto layer = layer_from<float>(random_codes(300, 77, unique, 21));
      layer.set_activations(crew_activations::int8);
      matrix<float> x = random_matrix<float>(300, batch, 8);
      x.middleRows(100, 50).col(0).setZero();  // inactive inputs
      x.col(batch - 1) *= 40.0f;              // samples of different ranges
      if (batch > 2) x.col(1).setZero();      // an all-zero sample: y = b
      const matrix<double> expected = int8_activations_reference(layer, x);
      matrix<float> portable;
      layer.forward(x, portable, crew_kernel::portable);
      EXPECT_LT(slimnn::testing::relative_error(portable.cast<double>(), expected), 1e-6);
      if (batch > 2) {
        EXPECT_EQ(portable.col(1), layer.bias());
      }
      slimnn::testing::for_each_isa([&](isa) {
        matrix<float> y;
        layer.forward(x, y);
        EXPECT_EQ(y, portable);  // exact integer sums, the same float epilogue
      });
      // Only the activations' rounding differs from the float path.
      layer.set_activations(crew_activations::as_is);
      matrix<float> as_is;
      layer.forward(x, as_is);
      EXPECT_LT(slimnn::testing::relative_error(portable.cast<double>(), as_is.cast<double>()), 0.02);
      EXPECT_GT(slimnn::testing::relative_error(portable.cast<double>(), as_is.cast<double>()), 0.0);
    }
}

TEST(crew_dense, int8_activations_come_from_the_settings_and_round_trip) {
  rng_t rng(7);
  const dense<float> d(40, 30, rng);
  const auto layer = compress(d, crew_settings::parse("u8-a8")).layer;
  EXPECT_EQ(layer.activations(), crew_activations::int8);
  EXPECT_EQ(layer.settings(), "40->30, u<=8, 4-bit lanes, int8 activations");
  EXPECT_EQ(compress(d, crew_settings::parse("u8")).layer.activations(), crew_activations::as_is);
  slimnn::testing::expect_round_trip(layer);
  auto file = slimnn::testing::saved(layer);
  EXPECT_EQ(file.settings.at("activations"), "int8");
  const matrix<float> x = random_matrix<float>(40, 5, 2);
  matrix<float> y, back;
  layer.forward(x, y);
  slimnn::testing::load_saved<crew_dense<float>>(file).forward(x, back);
  EXPECT_EQ(y, back);
  file.settings.erase("activations");  // files written before the setting existed: float
  EXPECT_EQ(slimnn::testing::load_saved<crew_dense<float>>(file).activations(), crew_activations::as_is);
  file.settings["activations"] = "int4";
  EXPECT_THAT([&] { slimnn::testing::load_saved<crew_dense<float>>(file); },
              ThrowsMessage<format_error>(StrEq("slimnn: edited: setting 'activations': 'int4' is not float or int8")));
}

TEST(crew_errors, int8_activations_need_finite_inputs) {
  auto layer = layer_from<float>(random_codes(3, 2, 2, 1));
  layer.set_activations(crew_activations::int8);
  matrix<float> x(3, 2), y;
  x << 0.5f, 1.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f, 0.0f;
  EXPECT_THAT([&] { layer.forward(x, y); },
              ThrowsMessage<config_error>(StrEq("slimnn: crew_dense<float>, 3->2, u<=2, 1-bit lanes, int8 activations: "
                                                "activation nan (input 1, sample 1) is not finite; int8 activations "
                                                "need finite inputs")));
}

// --- float path ------------------------------------------------------------------------

TEST(crew_dense, float_path_matches_dequantized_product_in_double) {
  // Below decoded_min_batch per sample (tables and gathers), from it decoded tiles and
  // GEMMs: 300 inputs make two tiles of inputs, 77 and 300 outputs one and two of outputs.
  static_assert(crew_dense<float>::decoded_min_batch == 4);
  for (const int unique : {2, 4, 16, 40})
    for (const index_t outputs : {77, 300})
      for (const index_t batch : {1, 3, 4, 37}) {
        const int8_matrix codes = random_codes(300, outputs, unique, 21);
        const auto layer = layer_from<float>(codes);
        matrix<float> x = random_matrix<float>(300, batch, 8);
        x.row(5).setZero();  // an input that is zero in every sample
        x.middleRows(100, 50).col(0).setZero();
        matrix<float> y;
        layer.forward(x, y);
        const matrix<double> expected =
            (layer.dequantized() * x.cast<double>()).colwise() + layer.bias().cast<double>();
        EXPECT_LT(slimnn::testing::relative_error(y.cast<double>(), expected), 1e-5)
            << "u" << unique << ", " << outputs << " outputs, batch " << batch;
      }
}

TEST(crew_dense, batched_forward_agrees_with_each_sample_on_every_path) {
  for (const int unique : {2, 4, 16, 40}) {
    const int8_matrix codes = random_codes(270, 203, unique, 40 + unique);
    matrix<float> x = random_matrix<float>(270, 9, 3);
    x.row(0).setZero();
    x.bottomRows(30).setZero();  // a layer's trailing inputs all inactive
    matrix<float> reference, single;
    layer_from<float>(codes).forward(x, reference, crew_kernel::portable);
    slimnn::testing::for_each_isa([&](isa path) {
      const auto layer = layer_from<float>(codes);
      matrix<float> y;
      layer.forward(x, y);
      EXPECT_EQ(y, reference) << "u" << unique;  // the decoded weights are exact on every path
      for (index_t b = 0; b < x.cols(); ++b) {
        layer.forward(x.col(b), single);
        EXPECT_LT(slimnn::testing::relative_error(single.cast<double>(), y.col(b).cast<double>()), 1e-6)
            << "u" << unique << ", sample " << b << ", " << isa_name(path);
      }
    });
    matrix<float> none = matrix<float>::Zero(270, 5), y;  // no active input: y = b
    layer_from<float>(codes).forward(none, y);
    EXPECT_EQ(y, layer_from<float>(codes).bias().replicate(1, 5)) << "u" << unique;
  }
}

TEST(crew_dense, every_kernel_path_matches_the_portable_kernel_exactly) {
  for (const int unique : {1, 2, 3, 4, 7, 16}) {
    const int8_matrix codes = random_codes(61, 203, unique, 30 + unique);
    matrix<float> x = random_matrix<float>(61, 3, 2);
    x.col(1).head(20).setZero();  // skipped inputs
    const int8_matrix xq = random_int8(61, 3, 4);
    matrix<float> reference;
    layer_from<float>(codes).forward(x, reference, crew_kernel::portable);
    slimnn::testing::for_each_isa([&](isa path) {
      const auto layer = layer_from<float>(codes);  // in the interleave of this path
      matrix<float> y, portable;
      layer.forward(x, y);
      layer.forward(x, portable, crew_kernel::portable);
      EXPECT_EQ(y, reference) << "u" << unique;
      EXPECT_EQ(portable, reference) << "u" << unique;
      int32_matrix acc;
      layer.forward_int8(xq, acc);
      EXPECT_EQ(acc, (codes.cast<std::int32_t>() * xq.cast<std::int32_t>()).eval()) << "u" << unique;
      // A layer built on one path runs on every other one too.
      for (const isa other : supported_isas()) {
        const scoped_isa run(other);
        layer.forward(x, y);
        EXPECT_EQ(y, reference) << "u" << unique << ", built on " << isa_name(path) << ", run on " << isa_name(other);
      }
    });
  }
}

// --- storage ---------------------------------------------------------------------------

TEST(crew_lanes, both_interleaves_place_indices_as_documented) {
  for (const int width : {1, 2, 4})
    for (const int group : {1, 4}) {
      const index_t inputs = 7, outputs = 150;  // padding inputs (group 4) and outputs
      kernels::crew_lanes lanes(inputs, outputs, width, group);
      const std::uint32_t mask = (1u << width) - 1u;
      const auto value = [&](index_t j, index_t i) { return std::uint32_t(j * 7 + i * 3) & mask; };
      for (index_t i = 0; i < inputs; ++i)
        for (index_t j = 0; j < outputs; ++j) lanes.set(j, i, value(j, i));
      const index_t positions = group == 1 ? 32 : 16, block = positions * (8 / width);
      const index_t rows = (inputs + group - 1) / group, blocks = (outputs + block - 1) / block;
      ASSERT_EQ(lanes.bytes.size(), std::size_t(blocks * rows * positions * group));
      for (index_t i = 0; i < inputs; ++i)
        for (index_t j = 0; j < outputs; ++j) {
          const std::uint8_t byte =
              lanes.bytes[std::size_t((j / block * rows + i / group) * positions * group + j % positions * group + i % group)];
          ASSERT_EQ((byte >> (j % block / positions * width)) & mask, value(j, i)) << width << " " << group;
        }
      const kernels::crew_lanes other = lanes.regrouped(5 - group);
      EXPECT_EQ(other.group, 5 - group);
      EXPECT_EQ(other.regrouped(group).bytes, lanes.bytes);
      for (index_t i = 0; i < inputs; ++i)
        for (index_t j = 0; j < outputs; ++j) ASSERT_EQ(other.get(j, i), value(j, i));
    }
}

TEST(crew_dense, int8_kernels_skip_inactive_inputs_exactly) {
  const int8_matrix codes = random_codes(45, 77, 16, 8);
  int8_matrix x = random_int8(45, 4, 3);
  x.col(0).setZero();                  // no active input
  x.col(1).segment(4, 12).setZero();   // whole groups of 4 inactive
  x.col(2).segment(5, 9).setZero();    // groups partly active
  x(44, 3) = 0;                        // the last, partial group
  slimnn::testing::for_each_isa([&](isa) {
    const auto layer = layer_from<float>(codes);
    int32_matrix best, portable;
    layer.forward_int8(x, best);
    layer.forward_int8(x, portable, crew_kernel::portable);
    EXPECT_EQ(best, (codes.cast<std::int32_t>() * x.cast<std::int32_t>()).eval());
    EXPECT_EQ(portable, best);
  });
}

TEST(crew_dense, indices_round_trip_in_every_layout) {
  const int8_matrix codes = random_codes(23, 45, 9, 5);
  for (const auto layout : {crew_index_layout::lanes, crew_index_layout::per_input, crew_index_layout::per_layer}) {
    const auto layer = layer_from<float>(codes, layout);
    EXPECT_EQ(layer.codes(), codes);
    for (index_t i = 0; i < codes.cols(); ++i) {
      const auto u = layer.unique_codes(i);
      EXPECT_TRUE(std::is_sorted(u.begin(), u.end()));
      EXPECT_EQ(std::set<int>(codes.col(i).data(), codes.col(i).data() + codes.rows()).size(), u.size());
      const int width = layout == crew_index_layout::lanes       ? 4
                        : layout == crew_index_layout::per_input ? detail::bits_for(u.size())
                                                                 : detail::bits_for(std::uint64_t(layer.max_unique()));
      EXPECT_EQ(layer.index_width(i), width);
    }
  }
}

TEST(crew_dense, per_input_packing_uses_ceil_log2_bits) {
  int8_matrix codes(100, 3);
  for (index_t j = 0; j < 100; ++j) {
    codes(j, 0) = 5;                          // u = 1: 0 bits
    codes(j, 1) = std::int8_t(j % 3 - 1);     // u = 3: 2 bits
    codes(j, 2) = std::int8_t(j % 17 - 8);    // u = 17: 5 bits
  }
  const auto layer = layer_from<float>(codes, crew_index_layout::per_input);
  EXPECT_EQ(layer.index_width(0), 0);
  EXPECT_EQ(layer.index_width(1), 2);
  EXPECT_EQ(layer.index_width(2), 5);
  EXPECT_EQ(layer.index_bytes(), 0u + 25 + 63);  // 200 and 500 bits, as the file holds them
  EXPECT_EQ(layer.codes(), codes);
  const auto stats = crew_stats::of(layer);
  EXPECT_DOUBLE_EQ(stats.mean_index_width(), (0 + 2 + 5) / 3.0);
  EXPECT_DOUBLE_EQ(stats.mean_unique(), (1 + 3 + 17) / 3.0);
  EXPECT_EQ(stats.unique_histogram[1], 1u);
  EXPECT_EQ(stats.unique_histogram[3], 1u);
  EXPECT_EQ(stats.unique_histogram[17], 1u);
}

TEST(crew_dense, multiply_count_is_sum_of_unique_counts) {
  const int8_matrix codes = random_codes(50, 40, 6, 8, /*with_zero=*/false);
  const auto layer = layer_from<float>(codes);
  std::uint64_t sum = 0;
  for (index_t i = 0; i < 50; ++i) sum += std::uint64_t(layer.unique_count(i));
  EXPECT_EQ(layer.multiplies(), sum);
  EXPECT_EQ(layer.table_entries(), sum);
  EXPECT_EQ(layer.cost().mults, sum + 40);  // plus one row scale per output
  const auto stats = crew_stats::of(layer);
  EXPECT_EQ(stats.multiplies, sum);
  EXPECT_EQ(stats.dense_multiplies, 50u * 40u);
  // A zero code costs no multiply.
  int8_matrix with_zero = codes;
  with_zero.col(0).setZero();
  EXPECT_EQ(layer_from<float>(with_zero).multiplies(), sum - std::uint64_t(layer.unique_count(0)));
}

TEST(crew_dense, cost_counts_every_stored_byte) {
  const int8_matrix codes = random_codes(100, 70, 16, 3);
  // lanes, 4-bit, as the file holds them: one input per row, ceil(70 / 64) = 2 blocks x 100
  // inputs x 32 bytes, whatever interleave the kernel path keeps in memory (AVX-512: 4
  // inputs per row, 3 blocks x 25 rows x 64 bytes).
  const std::uint64_t index = 2u * 100u * 32u;
  slimnn::testing::for_each_isa([&](isa) {
    const auto layer = layer_from<float>(codes);
    EXPECT_EQ(layer.index_bytes(), index);
    // values (4 bytes each), one unique count per input, row scales and bias.
    EXPECT_EQ(layer.cost().param_bytes, index + layer.table_entries() * 4 + 100 + 2 * 70 * 4);
    EXPECT_EQ(layer.cost().param_bytes, slimnn::testing::file_tensor_bytes(layer));
  });
}

TEST(crew_dense, edge_cases_single_value_zero_columns_one_input) {
  int8_matrix codes(37, 4);
  codes.col(0).setConstant(-3);  // u = 1
  codes.col(1).setZero();        // all zero
  for (index_t j = 0; j < 37; ++j) codes(j, 2) = std::int8_t(j % 2 ? 9 : 0), codes(j, 3) = std::int8_t(j % 5 - 2);
  for (const auto layout : {crew_index_layout::automatic, crew_index_layout::per_input}) {
    const auto layer = layer_from<double>(codes, layout);
    EXPECT_EQ(layer.unique_count(0), 1);
    EXPECT_EQ(layer.unique_count(1), 1);
    const matrix<double> x = random_matrix<double>(4, 2, 3);
    matrix<double> y;
    layer.forward(x, y);
    EXPECT_LT(slimnn::testing::relative_error(y, ((layer.dequantized() * x).colwise() + layer.bias()).eval()), 1e-14);
    int32_matrix acc;
    const int8_matrix xq = random_int8(4, 2, 1);
    layer.forward_int8(xq, acc);
    EXPECT_EQ(acc, (codes.cast<std::int32_t>() * xq.cast<std::int32_t>()).eval());
  }
  // one input, lanes with u = 1
  const int8_matrix one = int8_matrix::Constant(5, 1, 7);
  const auto layer = layer_from<float>(one);
  EXPECT_EQ(layer.layout(), crew_index_layout::lanes);
  int32_matrix acc;
  layer.forward_int8(int8_matrix::Constant(1, 1, -2), acc);
  EXPECT_EQ(acc, int32_matrix::Constant(5, 1, -14));
}

// --- quantization ------------------------------------------------------------------------

TEST(crew_quantization, uniform_per_layer_and_per_row_use_the_shared_quantizer) {
  const matrix<float> w = random_matrix<float>(6, 11, 2);
  const auto layer_q = quantize_uniform(w, 4, quant_granularity::per_layer);
  const auto u = uniform_quantizer::fit(detail::as_doubles(w), 4);
  EXPECT_EQ(layer_q.max_code, 7);
  for (index_t j = 0; j < 6; ++j) {
    EXPECT_DOUBLE_EQ(layer_q.row_scale[std::size_t(j)], u.scale());
    for (index_t i = 0; i < 11; ++i) EXPECT_EQ(layer_q.codes(j, i), u.encode(w(j, i)));
  }
  const auto row_q = quantize_uniform(w, 8, quant_granularity::per_row);
  for (index_t j = 0; j < 6; ++j) {
    const auto r = uniform_quantizer::fit(detail::as_doubles(w.row(j)), 8);
    EXPECT_DOUBLE_EQ(row_q.row_scale[std::size_t(j)], r.scale());
    EXPECT_EQ(row_q.codes.row(j).cwiseAbs().maxCoeff(), 127);
  }
  EXPECT_LT((row_q.dequantized() - w.cast<double>()).cwiseAbs().maxCoeff(), 0.5 * w.cwiseAbs().maxCoeff() / 127 + 1e-12);
}

TEST(crew_quantization, kmeans_limits_unique_codes) {
  const matrix<float> w = random_matrix<float>(50, 8, 6);
  const auto per_input = quantize_kmeans(w, 4, kmeans_scope::per_input);
  for (index_t i = 0; i < 8; ++i)
    EXPECT_LE(std::set<int>(per_input.codes.col(i).data(), per_input.codes.col(i).data() + 50).size(), 4u);
  const auto per_layer = quantize_kmeans(w, 5, kmeans_scope::per_layer);
  EXPECT_LE(std::set<int>(per_layer.codes.data(), per_layer.codes.data() + per_layer.codes.size()).size(), 5u);
  // More clusters per input fit the weights better.
  auto mean_error = [&](int clusters) {
    return (quantize_kmeans(w, clusters, kmeans_scope::per_input).dequantized() - w.cast<double>()).cwiseAbs().mean();
  };
  EXPECT_LT(mean_error(16), mean_error(4));
  EXPECT_LT(mean_error(4), mean_error(1));
}

// --- training ------------------------------------------------------------------------------

TEST(crew_dense, value_gradient_sums_the_weight_gradients) {
  const int8_matrix codes = random_codes(6, 9, 3, 2);
  auto layer = layer_from<double>(codes);
  const matrix<double> x = random_matrix<double>(6, 2, 1), dy = random_matrix<double>(9, 2, 2);
  matrix<double> y, dx;
  layer.forward_train(x, y);
  layer.backward(dy, dx);
  const matrix<double> dw = dy * x.transpose();
  const auto params = layer.parameters();
  for (index_t i = 0; i < 6; ++i)
    for (index_t u = 0; u < layer.unique_count(i); ++u) {
      double expected = 0;
      for (index_t j = 0; j < 9; ++j)
        if (layer.index(j, i) == std::uint32_t(u)) expected += layer.row_scale()[j] * dw(j, i);
      const auto k = std::size_t(layer.unique_values(i).data() - params[0].value) + std::size_t(u);
      EXPECT_NEAR(params[0].grad[k], expected, 1e-12);
    }
  EXPECT_LT((dx - layer.dequantized().transpose() * dy).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(crew_dense, after_update_rounds_values_to_codes) {
  int8_matrix codes(4, 3);
  codes << 1, 2, 3, -5, 2, 3, 1, 2, 3, -5, 2, 3;
  auto layer = layer_from<float>(codes);
  auto params = layer.parameters();
  params[0].value[0] = 300.f;  // clamped to the grid
  params[0].value[1] += 0.6f;
  const int before = layer.unique_codes(0)[1];
  layer.after_update();
  EXPECT_EQ(layer.unique_codes(0)[0], 127);
  EXPECT_EQ(layer.unique_codes(0)[1], std::clamp(before + 1, -127, 127));
}

// --- file format -------------------------------------------------------------------------------

TEST(crew_file, every_layout_and_fine_tuned_values_round_trip) {
  using layout = crew_index_layout;
  for (int unique : {2, 4, 5, 40})
    for (auto l : {layout::lanes, layout::per_input, layout::per_layer}) {
      if (l == layout::lanes && unique > 16) continue;
      SCOPED_TRACE(detail::cat("unique ", unique, ", layout ", int(l)));
      auto layer = layer_from<float>(random_codes(37, 70, unique, 3), l);
      slimnn::testing::expect_round_trip(layer);
      auto params = layer.parameters();  // fine-tuned values; the codes follow (after_update)
      for (index_t k = 0; k < params[0].size; ++k) params[0].value[k] += 0.3f * float(k % 3) - 0.4f;
      layer.after_update();
      slimnn::testing::expect_round_trip(layer);
      const auto file = slimnn::testing::saved(layer);
      const auto file_bytes = file.tensors.at("index").bytes.size();
      if (l == layout::lanes) {  // one input per 32-byte row, ceil(70 / (32 * 8 / w)) blocks
        EXPECT_EQ(file_bytes, std::size_t((70 + 256 / layer.index_width(0) - 1) / (256 / layer.index_width(0)) * 37 * 32));
      }
      EXPECT_EQ(file_bytes, layer.index_bytes());
      EXPECT_EQ(layer.cost().param_bytes, slimnn::testing::file_tensor_bytes(layer));
      const auto back = slimnn::testing::load_saved<crew_dense<float>>(file);
      EXPECT_EQ(back.layout(), layer.layout());
      EXPECT_EQ(back.index_width(3), layer.index_width(3));
      EXPECT_EQ(back.codes(), layer.codes());
      const int8_matrix xq = random_int8(37, 3, 5);
      int32_matrix a, b;
      layer.forward_int8(xq, a);
      back.forward_int8(xq, b);
      EXPECT_EQ(a, b);
    }
}

TEST(crew_file, corrupt_files_raise_format_error_naming_the_tensor) {
  using L = crew_dense<float>;
  using slimnn::testing::load_saved;
  const auto msg = [](const std::string& text) { return ThrowsMessage<format_error>(StrEq("slimnn: edited: " + text)); };
  int8_matrix codes(4, 2);  // u = 3 and 1: 2-bit lanes, index of output j, input 0 in byte j
  codes << 1, 5, 2, 5, 3, 5, 1, 5;
  const auto lanes = slimnn::testing::saved(layer_from<float>(codes));
  auto f = lanes;
  f.tensors.at("index").bytes[0] = std::byte(3);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'index': index 3 of output 0, input 0 is not below u_i = 3"));
  f = lanes;
  f.tensors.at("index").bytes[4] = std::byte(1);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'index': padding output 4 of input 0 has index 1, not 0"));
  f = lanes;
  f.settings["index_bits"] = "1";
  EXPECT_THAT([&] { load_saved<L>(f); },
              msg("setting 'index_bits': 1 is not a lanes width (1, 2 or 4) of at least 2 bits"));
  f.settings["index_bits"] = "3";
  EXPECT_THAT([&] { load_saved<L>(f); },
              msg("setting 'index_bits': 3 is not a lanes width (1, 2 or 4) of at least 2 bits"));
  f = lanes;
  f.set<std::uint8_t>("unique_counts", 0, 5);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'unique_counts': input 0 has 5 unique codes, expected 1..4"));
  f = lanes;
  f.set<float>("values", 1, std::numeric_limits<float>::infinity());
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'values': value 1 is not finite"));
  f = lanes;
  f.settings["layout"] = "packed";
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("setting 'layout': 'packed' is not lanes, per_input or per_layer"));
  // Packed: 3 outputs of input 0 in 6 bits of byte 0, then input 1 (0 bits).
  const auto packed = slimnn::testing::saved(layer_from<float>(codes.topRows(3), crew_index_layout::per_input));
  f = packed;
  f.tensors.at("index").bytes[0] |= std::byte(0xc0);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'index': input 0: padding bits after the last index are not zero"));
  f = packed;
  f.tensors.at("index").bytes[0] |= std::byte(0x30);
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'index': index 3 of output 2, input 0 is not below u_i = 3"));
  f = packed;
  f.tensors.at("row_scale").shape = {1, 3};
  EXPECT_THAT([&] { load_saved<L>(f); }, msg("tensor 'row_scale': shape [1, 3], expected [3]"));
  auto layered = slimnn::testing::saved(layer_from<float>(codes, crew_index_layout::per_layer));
  layered.settings["index_bits"] = "9";
  EXPECT_THAT([&] { load_saved<L>(layered); }, msg("setting 'index_bits': 9 is out of range [2, 8]"));
}

// --- errors ----------------------------------------------------------------------------------

TEST(crew_errors, bad_settings_raise_clear_messages) {
  const matrix<float> w = random_matrix<float>(5, 7, 1);
  EXPECT_THAT([&] { quantize_uniform(w, 9, quant_granularity::per_row); },
              ThrowsMessage<config_error>(StrEq("slimnn: crew: weight bits must be in 2..8, got 9")));
  EXPECT_THAT([&] { quantize_uniform(w, 1, quant_granularity::per_layer); },
              ThrowsMessage<config_error>(StrEq("slimnn: crew: weight bits must be in 2..8, got 1")));
  EXPECT_THAT([&] { quantize_kmeans(w, 36, kmeans_scope::per_layer); },
              ThrowsMessage<config_error>(StrEq("slimnn: kmeans: 36 clusters is more than the 35 values")));
  EXPECT_THAT([&] { quantize_kmeans(w, 6, kmeans_scope::per_input); },
              ThrowsMessage<config_error>(StrEq("slimnn: kmeans: 6 clusters is more than the 5 values")));
  EXPECT_THAT([&] { quantize_kmeans(w, 0); },
              ThrowsMessage<config_error>(StrEq("slimnn: crew: clusters must be in 1..255 (8-bit codes), got 0")));
  int8_matrix codes(30, 4);
  for (index_t j = 0; j < 30; ++j) codes.row(j).setConstant(std::int8_t(4 * j - 60));
  EXPECT_THAT([&] { layer_from<float>(codes, crew_index_layout::lanes); },
              ThrowsMessage<config_error>(StrEq(
                  "slimnn: crew_dense: the lanes layout needs at most 16 unique codes per input, the largest u_i is 30")));
  EXPECT_THAT([&] { crew_dense<float>(quantized_weights{codes, std::vector<double>(30, 1.0), 7}, vector<float>::Zero(30)); },
              ThrowsMessage<config_error>(::testing::StartsWith("slimnn: crew_dense: code ")));
}

TEST(crew_errors, int8_activations_out_of_range_raise) {
  const auto layer = layer_from<float>(random_codes(3, 2, 2, 1));
  matrix<float> x(3, 1), y;
  x << 0.5f, -1.0f, 2.0f;
  EXPECT_THAT([&] { layer.forward_int8(x, 0.01f, y); },
              ThrowsMessage<config_error>(StrEq("slimnn: crew_dense<float>, 3->2, u<=2, 1-bit lanes: activation 2 "
                                                "(input 2, sample 0) is outside the int8 range of scale 0.01 "
                                                "(|x| <= 1.27)")));
  EXPECT_THAT([&] { layer.forward_int8(x, 0.0f, y); },
              ThrowsMessage<config_error>(StrEq("slimnn: crew_dense<float>, 3->2, u<=2, 1-bit lanes: activation "
                                                "scale must be positive and finite, got 0")));
  int32_matrix acc;
  EXPECT_THAT([&] { layer.forward_int8(int8_matrix::Zero(4, 1), acc); },
              ThrowsMessage<shape_error>(StrEq("slimnn: crew_dense<float>, 3->2, u<=2, 1-bit lanes: expects 3 "
                                               "inputs, got 4 rows")));
  EXPECT_NO_THROW(layer.forward_int8(x, 2.0f / 127, y));
}

}  // namespace
