// Tests of slimnn/compress: setting strings, plans and compress(network, plan), checked
// against the per-scheme conversion functions and dense expansions computed here.
#include "slimnn/compress/compress.hpp"

#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/relu.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::expect_throw_message;
using slimnn::testing::random_matrix;

// --- setting strings ---------------------------------------------------------------

TEST(SchemeSetting, ParsesEachSchemesTokens) {
  EXPECT_EQ(scheme_setting::parse("block_circulant", "k64").get<block_circulant_settings>()->block, 64);

  const auto sd = *scheme_setting::parse("smartdeal", "seg25-s8-p4-r16").get<smartdeal_settings>();
  EXPECT_EQ(sd.basis_width, 8);
  EXPECT_DOUBLE_EQ(sd.segment_density, 0.25);
  EXPECT_EQ(sd.code_bits, 4);
  EXPECT_EQ(sd.group_rows, 16);

  const auto u = *scheme_setting::parse("crew:u16").get<crew_settings>();
  EXPECT_EQ(u.method, crew_settings::quantizer::kmeans);
  EXPECT_EQ(u.scope, kmeans_scope::per_input);
  EXPECT_EQ(u.clusters, 16);
  const auto q = *scheme_setting::parse("crew", "q6").get<crew_settings>();
  EXPECT_EQ(q.method, crew_settings::quantizer::uniform);
  EXPECT_EQ(q.bits, 6);
  EXPECT_EQ(q.activations, crew_activations::as_is);
  const auto a8 = *scheme_setting::parse("crew", "a8-q6").get<crew_settings>();  // tokens in any order
  EXPECT_EQ(a8.bits, 6);
  EXPECT_EQ(a8.activations, crew_activations::int8);
  EXPECT_EQ(a8.str(), "q6-a8");

  const auto kd = *scheme_setting::parse("kdconv", "m6-d15-g4-km4").get<kdconv_settings>();
  EXPECT_EQ(kd.bases, 6);
  EXPECT_DOUBLE_EQ(kd.density, 0.15);
  EXPECT_EQ(kd.group_size, 4);
  EXPECT_EQ(kd.coefficients, kdconv_coefficient_format::kmeans);
  EXPECT_EQ(kd.coefficient_bits, 4);
  EXPECT_EQ(kd.basis_bits, 8);
  const auto kp = *scheme_setting::parse("kdconv", "m4-d30").get<kdconv_settings>();
  EXPECT_EQ(kp.coefficients, kdconv_coefficient_format::pow2);
  EXPECT_EQ(kp.coefficient_bits, 4);
  EXPECT_EQ(scheme_setting::parse("kdconv", "m4-f32-b0").get<kdconv_settings>()->coefficients,
            kdconv_coefficient_format::float32);
}

TEST(SchemeSetting, PrintsTheCanonicalStringThatParsesBack) {
  const std::pair<const char*, const char*> cases[] = {
      {"block_circulant", "k64"},    {"smartdeal", "s8-seg25"}, {"smartdeal", "s3"},
      {"smartdeal", "s8-seg2.5-p4-r16"}, {"crew", "u16"},       {"crew", "q8"}, {"crew", "u4-a8"},
      {"kdconv", "m4-d30"},          {"kdconv", "m6-d15-g4-km4"}, {"kdconv", "m9-f32-b0"},
      {"kdconv", "m2-p6-b12"}};
  for (const auto& [scheme, text] : cases) {
    const auto s = scheme_setting::parse(scheme, text);
    EXPECT_EQ(s.scheme(), scheme);
    EXPECT_EQ(s.str(), text);
    EXPECT_EQ(scheme_setting::parse(s.scheme(), s.str()).str(), text);
  }
  // Defaults are left out, and tokens come in canonical order.
  EXPECT_EQ(scheme_setting::parse("smartdeal", "seg100-p5-s8").str(), "s8");
  EXPECT_EQ(scheme_setting::parse("kdconv", "p4-d100-m5-g1-b8").str(), "m5");
  EXPECT_EQ(scheme_setting(smartdeal_settings{.basis_width = 3, .segment_density = 0.5}).str(), "s3-seg50");
}

TEST(Plan, CarriesItsFineTuningRecipe) {
  const auto p = plan::parse("dense[-1]:crew:u16 ; fine_tune:lr0.0005-e2");
  EXPECT_EQ(p.rules.size(), 1u);
  EXPECT_EQ(p.fine_tune, (training_recipe{.epochs = 2, .learning_rate = 0.0005}));
  EXPECT_EQ(p.str(), "dense[-1]:crew:u16; fine_tune:e2-lr0.0005");
  EXPECT_EQ(plan::parse(p.str()).str(), p.str());
  EXPECT_EQ(plan::parse("dense:crew:u4").fine_tune.epochs, 0);
  EXPECT_EQ(plan::parse("dense:crew:u4").str(), "dense:crew:u4");  // no recipe, none printed
  expect_throw_message<config_error>([] { plan::parse("fine_tune:e1; dense:crew:u4; fine_tune:e2"); },
                                     "slimnn: plan 'fine_tune:e1; dense:crew:u4; fine_tune:e2': fine_tune is given twice");
  expect_throw_message<config_error>([] { plan::parse("dense:crew:u4; fine_tune:2"); },
                                     "slimnn: training recipe setting '2': '2' is not a letter prefix and a number");
}

TEST(SchemeSetting, BadStringsNameWhatIsWrong) {
  expect_throw_message<config_error>([] { scheme_setting::parse("svd", "r8"); },
                                     "slimnn: unknown scheme 'svd' (known: block_circulant, smartdeal, crew, kdconv)");
  expect_throw_message<config_error>([] { scheme_setting::parse("crew16"); },
                                     "slimnn: scheme setting 'crew16': expected <scheme>:<setting>, e.g. crew:u16");
  expect_throw_message<config_error>([] { scheme_setting::parse("block_circulant", "x64"); },
                                     "slimnn: block_circulant setting 'x64': unknown token 'x' (e.g. k64)");
  expect_throw_message<config_error>([] { scheme_setting::parse("block_circulant", "k"); },
                                     "slimnn: block_circulant setting 'k': 'k' is not a letter prefix and a number");
  expect_throw_message<config_error>([] { scheme_setting::parse("block_circulant", "k0"); },
                                     "slimnn: block_circulant setting 'k0': block size must be >= 1, got 0");
  expect_throw_message<config_error>([] { scheme_setting::parse("block_circulant", "k6.5"); },
                                     "slimnn: block_circulant setting 'k6.5': k needs a whole number, got 6.5");
  expect_throw_message<config_error>([] { scheme_setting::parse("smartdeal", "seg25"); },
                                     "slimnn: smartdeal setting 'seg25': needs s<n> (e.g. s8-seg25)");
  expect_throw_message<config_error>([] { scheme_setting::parse("smartdeal", "s8-seg0"); },
                                     "slimnn: smartdeal setting 's8-seg0': segment density must be in (0, 1], got 0");
  expect_throw_message<config_error>([] { scheme_setting::parse("smartdeal", "s8-s4"); },
                                     "slimnn: smartdeal setting 's8-s4': 's' is given twice");
  expect_throw_message<config_error>([] { scheme_setting::parse("smartdeal", "s8--seg25"); },
                                     "slimnn: smartdeal setting 's8--seg25': '' is not a letter prefix and a number");
  expect_throw_message<config_error>([] { scheme_setting::parse("crew", "u16-q8"); },
                                     "slimnn: crew setting 'u16-q8': needs exactly one of u<values> or q<bits>, then "
                                     "optionally a8 (e.g. u16-a8)");
  expect_throw_message<config_error>([] { scheme_setting::parse("crew", "a8"); },
                                     "slimnn: crew setting 'a8': needs exactly one of u<values> or q<bits>, then "
                                     "optionally a8 (e.g. u16-a8)");
  expect_throw_message<config_error>([] { scheme_setting::parse("crew", "u16-a4"); },
                                     "slimnn: crew setting 'u16-a4': a4: the activations can only be int8 (a8)");
  expect_throw_message<config_error>([] { scheme_setting::parse("crew", "q9"); },
                                     "slimnn: crew setting 'q9': uniform bits must be in 2..8, got 9");
  expect_throw_message<config_error>([] { scheme_setting::parse("kdconv", "m4-p4-km4"); },
                                     "slimnn: kdconv setting 'm4-p4-km4': give at most one of p<bits>, km<bits>, f32");
  expect_throw_message<config_error>([] { scheme_setting::parse("kdconv", "m0"); },
                                     "slimnn: kdconv setting 'm0': bases must be >= 1, got 0");
  expect_throw_message<config_error>([] { scheme_setting::parse("kdconv", "m4-d130"); },
                                     "slimnn: kdconv setting 'm4-d130': density must be in (0, 1], got 1.3");
  expect_throw_message<config_error>([] { scheme_setting::parse("kdconv", "m4-km9"); },
                                     "slimnn: kdconv setting 'm4-km9': kmeans coefficients need 1..8 bits, got 9");
}

// --- plans ---------------------------------------------------------------------------

/// 1x8x8 -> conv 3x3 (4 channels) -> relu -> conv 3x3 (8 channels) -> relu -> flatten
///   -> dense 512->32 -> relu -> dense 32->32 -> relu -> dense 32->10
network<float> small_cnn() {
  rng_t rng(3);
  network<float> net;
  conv2d<float> a(shape{1, 8, 8}, {.out_channels = 4, .kernel = 3, .padding = 1}, rng);
  conv2d<float> b(a.output_shape(), {.out_channels = 8, .kernel = 3, .padding = 1}, rng);
  a.bias() = random_matrix<float>(4, 1, 7);
  b.bias() = random_matrix<float>(8, 1, 8);
  net << a << relu<float>(a.output_shape()) << b << relu<float>(b.output_shape()) << flatten<float>(b.output_shape())
      << dense<float>(512, 32, rng) << relu<float>(shape::flat(32)) << dense<float>(32, 32, rng)
      << relu<float>(shape::flat(32)) << dense<float>(32, 10, rng);
  return net;
}

std::vector<std::size_t> picks(const char* selector) { return layer_selector::parse(selector).select(small_cnn()); }

TEST(Plan, SelectorsPickByKindIndexAndRange) {
  using v = std::vector<std::size_t>;
  EXPECT_EQ(picks("dense"), (v{5, 7, 9}));
  EXPECT_EQ(picks("conv2d"), (v{0, 2}));
  EXPECT_EQ(picks("dense[0]"), (v{5}));
  EXPECT_EQ(picks("dense[-1]"), (v{9}));
  EXPECT_EQ(picks("dense[0:-1]"), (v{5, 7}));
  EXPECT_EQ(picks("dense[1:]"), (v{7, 9}));
  EXPECT_EQ(picks("dense[:1]"), (v{5}));
  EXPECT_EQ(picks("dense[:]"), (v{5, 7, 9}));
  EXPECT_EQ(picks("conv2d[-1]"), (v{2}));
  EXPECT_EQ(picks("layer[3]"), (v{3}));
  EXPECT_EQ(picks("layer[8:]"), (v{8, 9}));
  EXPECT_EQ(picks("dense[3]"), v{});
  EXPECT_EQ(picks("dense[-4]"), v{});
  EXPECT_EQ(picks("dense[2:1]"), v{});
}

TEST(Plan, ParsesAndPrintsBack) {
  const auto p = plan::parse("  conv2d:kdconv:m4-d30 ;dense[0:-1]:block_circulant:k64;\tdense[-1]:crew:u16; ");
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.str(), "conv2d:kdconv:m4-d30; dense[0:-1]:block_circulant:k64; dense[-1]:crew:u16");
  EXPECT_EQ(plan::parse(p.str()).str(), p.str());
  EXPECT_EQ(p.rules[1].selector.of, layer_selector::kind::dense);
  EXPECT_TRUE(p.rules[1].selector.ranged);
  EXPECT_EQ(*p.rules[1].selector.first, 0);
  EXPECT_EQ(*p.rules[1].selector.last, -1);
  EXPECT_EQ(p.rules[2].setting.scheme(), "crew");
  EXPECT_EQ(plan::parse("layer[2:]:smartdeal:s3-seg50").str(), "layer[2:]:smartdeal:s3-seg50");
  EXPECT_TRUE(plan::parse("").rules.empty());
}

TEST(Plan, BadPlansNameTheRule) {
  expect_throw_message<config_error>([] { plan::parse("dense:crew"); },
                                     "slimnn: plan rule 'dense:crew': expected <selector>:<scheme>:<setting>, e.g. "
                                     "dense[-1]:crew:u16");
  expect_throw_message<config_error>([] { plan::parse("dense:crew:u16;;conv2d:kdconv:m4"); },
                                     "slimnn: plan 'dense:crew:u16;;conv2d:kdconv:m4': empty rule");
  expect_throw_message<config_error>([] { plan::parse("linear:crew:u16"); },
                                     "slimnn: layer selector 'linear': unknown kind 'linear' (known: dense, conv2d, layer)");
  expect_throw_message<config_error>([] { plan::parse("dense[x]:crew:u16"); },
                                     "slimnn: layer selector 'dense[x]': 'x' is not a whole number");
  expect_throw_message<config_error>([] { plan::parse("dense[1:crew:u16"); },
                                     "slimnn: layer selector 'dense[1': expected dense[i] or dense[a:b]");
  expect_throw_message<config_error>([] { plan::parse("dense[]:crew:u16"); },
                                     "slimnn: layer selector 'dense[]': empty index");
  expect_throw_message<config_error>([] { plan::parse("dense:crew:u0"); },
                                     "slimnn: crew setting 'u0': unique values must be in 1..256, got 0");
}

// --- compress -------------------------------------------------------------------------

matrix<float> forward(const network<float>& net, const matrix<float>& x) {
  matrix<float> y;
  net.forward(x, y);
  return y;
}

double weight_error(const matrix<double>& approx, const matrix<double>& exact) {
  return (approx - exact).norm() / exact.norm();
}

TEST(Compress, ConvertsTheSelectedLayersAsTheSchemesOwnFunctionsDo) {
  const auto net = small_cnn();
  const auto result =
      compress(net, plan::parse("conv2d[0]:smartdeal:s3-seg50; conv2d[1]:kdconv:m4-d50; dense[0]:block_circulant:k8; "
                                "dense[1]:crew:q6; dense[-1]:crew:u4"));
  ASSERT_EQ(result.net.size(), net.size());
  ASSERT_EQ(result.layers.size(), 5u);

  // The network built by hand from the same conversions.
  const auto& c0 = *net[0].get<conv2d<float>>();
  const auto& c1 = *net[2].get<conv2d<float>>();
  const auto& d0 = *net[5].get<dense<float>>();
  const auto& d1 = *net[7].get<dense<float>>();
  const auto& d2 = *net[9].get<dense<float>>();
  auto sd = compress(c0, smartdeal_settings{.basis_width = 3, .segment_density = 0.5});
  auto kd = compress(c1, kdconv_settings{.bases = 4, .density = 0.5, .coefficients = kdconv_coefficient_format::pow2,
                                   .coefficient_bits = 4});
  const auto bc = compress(d0, block_circulant_settings{8}).layer;
  crew_settings uniform;
  uniform.method = crew_settings::quantizer::uniform;
  uniform.bits = 6;
  crew_settings kmeans;
  kmeans.clusters = 4;
  const auto crew1 = compress(d1, uniform).layer;
  const auto crew2 = compress(d2, kmeans).layer;
  network<float> expected;
  expected << sd.layer << net[1] << kd.layer << net[3] << net[4] << bc << net[6] << crew1 << net[8] << crew2;

  const auto x = random_matrix<float>(64, 5, 11);
  EXPECT_EQ(forward(result.net, x), forward(expected, x));
  for (std::size_t i = 0; i < net.size(); ++i) EXPECT_EQ(describe(result.net[i]), describe(expected[i])) << i;

  // The report: rules, costs and the dense expansions' errors.
  const std::size_t index[] = {0, 2, 5, 7, 9};
  const char* rules[] = {"conv2d[0]:smartdeal:s3-seg50", "conv2d[1]:kdconv:m4-d50", "dense[0]:block_circulant:k8",
                         "dense[1]:crew:q6", "dense[-1]:crew:u4"};
  const double errors[] = {
      weight_error(sd.layer.factors().to_dense().transpose(), c0.weight().cast<double>()),
      weight_error(kd.layer.dense_weight().cast<double>(), c1.weight().cast<double>()),
      weight_error(bc.to_reference().weight().cast<double>(), d0.weight().cast<double>()),
      weight_error(crew1.dequantized(), d1.weight().cast<double>()),
      weight_error(crew2.dequantized(), d2.weight().cast<double>())};
  for (std::size_t r = 0; r < 5; ++r) {
    const auto& l = result.layers[r];
    SCOPED_TRACE(rules[r]);
    EXPECT_EQ(l.index, index[r]);
    EXPECT_EQ(l.rule, rules[r]);
    EXPECT_EQ(l.before, describe(net[index[r]]));
    EXPECT_EQ(l.after, describe(expected[index[r]]));
    EXPECT_NEAR(l.report.relative_error, errors[r], 1e-6);
    EXPECT_GT(l.report.relative_error, 0);
    EXPECT_EQ(l.report.stored_bytes, expected[index[r]].cost().param_bytes);
    EXPECT_EQ(l.report.macs, expected[index[r]].cost().macs);
    EXPECT_EQ(l.report.dense_bytes, net[index[r]].cost().param_bytes);
    EXPECT_EQ(l.report.dense_macs, net[index[r]].cost().macs);
  }
  EXPECT_NE(result.summary().find("layer 5 [dense[0]:block_circulant:k8]"), std::string::npos);
}

TEST(Compress, LeavesUnselectedLayersAsTheyAre) {
  const auto net = small_cnn();
  const auto result = compress(net, plan::parse("dense[-1]:crew:u16"));
  ASSERT_EQ(result.layers.size(), 1u);
  for (std::size_t i = 0; i + 1 < net.size(); ++i) {
    EXPECT_EQ(describe(result.net[i]), describe(net[i]));
    EXPECT_EQ(result.net[i].cost().param_bytes, net[i].cost().param_bytes);
  }
  // 10 outputs: at most 10 distinct values per input column.
  EXPECT_TRUE(result.net[9].get<crew_dense<float>>());
  EXPECT_LE(result.net[9].get<crew_dense<float>>()->max_unique(), 10);
  const auto empty = compress(net, plan{});
  const auto x = random_matrix<float>(64, 3, 12);
  EXPECT_EQ(forward(empty.net, x), forward(net, x));
  EXPECT_TRUE(empty.layers.empty());
}

TEST(Compress, RulesThatCannotApplyNameTheRuleAndTheLayer) {
  const auto net = small_cnn();
  expect_throw_message<config_error>([&] { compress(net, plan::parse("dense[5]:crew:u16")); },
                                     "slimnn: plan rule 'dense[5]:crew:u16' selects no layer of this 10-layer network");
  expect_throw_message<config_error>([&] { compress(net, plan::parse("conv2d:crew:u16")); },
                                     "slimnn: plan rule 'conv2d:crew:u16': crew cannot take layer 0 (" + describe(net[0]) +
                                         ")");
  expect_throw_message<config_error>([&] { compress(net, plan::parse("layer[1]:kdconv:m4")); },
                                     "slimnn: plan rule 'layer[1]:kdconv:m4': kdconv cannot take layer 1 (" +
                                         describe(net[1]) + ")");
  expect_throw_message<config_error>(
      [&] { compress(net, plan::parse("dense:crew:u16; dense[-1]:smartdeal:s8")); },
      "slimnn: plan rules 'dense:crew:u16' and 'dense[-1]:smartdeal:s8' both select layer 9 (" + describe(net[9]) + ")");
  // The scheme's own check on the layer it is given.
  EXPECT_THROW(compress(net, plan::parse("conv2d[0]:smartdeal:s4")), config_error);
}

}  // namespace
