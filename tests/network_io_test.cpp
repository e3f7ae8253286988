// Saving and loading layers and whole networks: every reference layer round-trips to
// identical outputs, network<T>::load rebuilds the architecture without code, layer
// kinds register in one line, and broken network files raise format_error.
#include "slimnn/io/network_io.hpp"

#include <gmock/gmock.h>
#include <stdlib.h>

#include <filesystem>

#include "layer_file.hpp"
#include "slimnn/circulant/block_circulant_conv2d.hpp"
#include "slimnn/circulant/block_circulant_dense.hpp"
#include "slimnn/io/safetensors.hpp"
#include "slimnn/kdconv/decomposition.hpp"
#include "test_util.hpp"

namespace {

using namespace slimnn;
using slimnn::testing::expect_round_trip;
using slimnn::testing::random_matrix;
using ::testing::StrEq;
using ::testing::ThrowsMessage;
namespace fs = std::filesystem;

class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "slimnn-network-io-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// --- every reference layer round-trips (the check the conformance suite runs) ----------

struct dense_case {
  template <class T>
  static dense<T> make() {
    rng_t rng(3);
    dense<T> layer(7, 5, rng);
    layer.bias() = random_matrix<T>(5, 1, 4);
    return layer;
  }
};
struct conv2d_case {
  template <class T>
  static conv2d<T> make() {
    rng_t rng(5);
    conv2d<T> layer(shape{3, 9, 7}, {.out_channels = 4, .kernel = 3, .stride = 2, .padding = 1}, rng);
    layer.bias() = random_matrix<T>(4, 1, 6);
    return layer;
  }
};
struct relu_case {
  template <class T>
  static relu<T> make() { return relu<T>(shape{2, 3, 4}); }
};
struct flatten_case {
  template <class T>
  static flatten<T> make() { return flatten<T>(shape{2, 3, 4}); }
};
struct max_pool_case {
  template <class T>
  static max_pool2d<T> make() { return max_pool2d<T>(shape{2, 7, 6}, 3, 2); }
};
struct avg_pool_case {
  template <class T>
  static avg_pool2d<T> make() { return avg_pool2d<T>(shape{2, 6, 6}, 2); }
};

template <class Case>
class layer_file : public ::testing::Test {};
using layer_cases = ::testing::Types<dense_case, conv2d_case, relu_case, flatten_case, max_pool_case, avg_pool_case>;
TYPED_TEST_SUITE(layer_file, layer_cases);

TYPED_TEST(layer_file, round_trips_to_identical_outputs) {
  static_assert(SaveableLayer<decltype(TypeParam::template make<float>())>);
  expect_round_trip(TypeParam::template make<float>(), "");
  expect_round_trip(TypeParam::template make<double>(), "block.3.");
}

TYPED_TEST(layer_file, round_trips_through_a_file_alone) {
  const temp_dir dir;
  const auto layer = TypeParam::template make<float>();
  using L = std::remove_cvref_t<decltype(layer)>;
  save_layer(layer, dir / "layer.safetensors");
  const L back = load_layer<L>(dir / "layer.safetensors");
  const auto x = random_matrix<float>(layer.input_shape().size(), 2);
  matrix<float> a, b;
  layer.forward(x, a);
  back.forward(x, b);
  EXPECT_EQ(a, b);
}

TEST(layer_file, dense_is_stored_like_torch_linear) {
  const auto layer = dense_case::make<float>();
  safetensors_writer out;
  layer.save(out, "fc.");
  const safetensors_file in(out.bytes(), "buffer");
  EXPECT_EQ(in.shape_of("fc.weight"), (std::vector<std::uint64_t>{5, 7}));
  EXPECT_EQ(in.shape_of("fc.bias"), (std::vector<std::uint64_t>{5}));
  const auto w = in.get<float>("fc.weight");
  EXPECT_EQ(w[1 * 7 + 4], layer.weight()(1, 4));  // row-major [out, in]
  EXPECT_EQ(in.setting("fc.inputs"), "7");
  EXPECT_EQ(in.setting("fc.outputs"), "5");
}

TEST(layer_file, conv2d_is_stored_like_torch_conv2d) {
  const auto layer = conv2d_case::make<float>();
  safetensors_writer out;
  layer.save(out, "");
  const safetensors_file in(out.bytes(), "buffer");
  EXPECT_EQ(in.shape_of("weight"), (std::vector<std::uint64_t>{4, 3, 3, 3}));
  const auto w = in.get<float>("weight");
  EXPECT_EQ(w[((2 * 3 + 1) * 3 + 0) * 3 + 2], layer.weight_at(2, 1, 0, 2));  // [n, c, i, j]
  EXPECT_EQ(in.setting("input"), "3x9x7");
  EXPECT_EQ(in.setting("stride"), "2");
  EXPECT_EQ(in.setting("padding"), "1");
}

TEST(layer_file, load_layer_checks_the_kind) {
  const temp_dir dir;
  save_layer(relu<float>(shape::flat(4)), dir / "relu.safetensors");
  const auto path = (dir / "relu.safetensors").string();
  EXPECT_THAT([&] { load_layer<flatten<float>>(path); },
              ThrowsMessage<format_error>(StrEq("slimnn: " + path + ": setting 'slimnn.kind': 'relu', expected 'flatten'")));
}

// --- whole networks ----------------------------------------------------------------------

template <class T>
network<T> make_cnn() {
  rng_t rng(21);
  conv2d<T> conv(shape{1, 8, 8}, {.out_channels = 3, .kernel = 3, .padding = 1}, rng);
  relu<T> act(conv.output_shape());
  max_pool2d<T> pool(act.output_shape(), 2);
  conv2d<T> conv2(pool.output_shape(), {.out_channels = 3, .kernel = 2, .stride = 2}, rng);
  avg_pool2d<T> pool2(conv2.output_shape(), 2);
  flatten<T> flat(pool2.output_shape());
  dense<T> head(flat.output_shape().size(), 4, rng);
  head.bias() = random_matrix<T>(4, 1, 2);
  network<T> net;
  net << conv << act << pool << conv2 << pool2 << flat << head;
  return net;
}

TEST(network_file, round_trips_to_identical_outputs) {
  const temp_dir dir;
  const auto net = make_cnn<float>();
  net.save(dir / "cnn.safetensors");
  const auto back = network<float>::load(dir / "cnn.safetensors");
  ASSERT_EQ(back.size(), net.size());
  EXPECT_EQ(back.summary(), net.summary());
  const auto x = random_matrix<float>(64, 5);
  matrix<float> a, b;
  net.forward(x, a);
  back.forward(x, b);
  EXPECT_EQ(a, b);
  // The free functions are the same thing.
  save(back, dir / "again.safetensors");
  const auto again = load_network<float>(dir / "again.safetensors");
  again.forward(x, b);
  EXPECT_EQ(a, b);
}

TEST(network_file, stores_the_architecture_and_sequential_names) {
  const temp_dir dir;
  make_cnn<double>().save(dir / "cnn.safetensors");
  const safetensors_file in(dir / "cnn.safetensors");
  EXPECT_EQ(in.metadata().at("slimnn.scalar"), "double");
  EXPECT_EQ(in.metadata().at("slimnn.architecture"),
            R"([{"kind":"conv2d","settings":{"input":"1x8x8","kernel":"3","out_channels":"3","padding":"1","stride":"1"}},)"
            R"({"kind":"relu","settings":{"input":"3x8x8"}},)"
            R"({"kind":"max_pool2d","settings":{"input":"3x8x8","kernel":"2","stride":"2"}},)"
            R"({"kind":"conv2d","settings":{"input":"3x4x4","kernel":"2","out_channels":"3","padding":"0","stride":"2"}},)"
            R"({"kind":"avg_pool2d","settings":{"input":"3x2x2","kernel":"2","stride":"2"}},)"
            R"({"kind":"flatten","settings":{"input":"3"}},)"
            R"({"kind":"dense","settings":{"inputs":"3","outputs":"4"}}])");
  std::vector<std::string> names = in.tensor_names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"0.bias", "0.weight", "3.bias", "3.weight", "6.bias", "6.weight"}));
  EXPECT_EQ(in.tensor("0.weight").type, dtype::f64);
}

TEST(network_file, converts_between_scalar_types) {
  const temp_dir dir;
  const auto net = make_cnn<double>();
  save(net, dir / "cnn.safetensors");
  const auto single = load_network<float>(dir / "cnn.safetensors");
  const auto x = random_matrix<double>(64, 3);
  matrix<double> expected;
  matrix<float> got;
  net.forward(x, expected);
  single.forward(x.cast<float>(), got);
  EXPECT_LT(slimnn::testing::relative_error(got.cast<double>(), expected), 1e-5);
}

// --- networks of compressed layers -----------------------------------------------------------

TEST(network_file, compressed_networks_round_trip_to_identical_outputs) {
  rng_t rng(31);
  network<float> mlp;
  auto circulant = compress(dense<float>(12, 16, rng), block_circulant_settings{4}).layer;
  circulant.quantize_spectra(10);
  const auto smartdeal = compress(dense<float>(16, 10, rng), {.basis_width = 4}).layer;
  mlp << circulant << relu<float>(shape::flat(16)) << smartdeal << relu<float>(shape::flat(10))
      << compress(dense<float>(10, 5, rng), {.clusters = 4}).layer;
  network<float> cnn;
  const auto circulant_conv = compress(conv2d<float>(shape{1, 8, 8}, {.out_channels = 4, .kernel = 3, .padding = 1}, rng), block_circulant_settings{2}).layer;
  const auto smartdeal_conv = compress(
      conv2d<float>(shape{4, 8, 8}, {.out_channels = 4, .kernel = 3, .padding = 1}, rng), {.basis_width = 3}).layer;
  const auto decomposed = compress(conv2d<float>(shape{4, 8, 8}, {.out_channels = 3, .kernel = 3, .stride = 2}, rng),
                                            {.bases = 4, .density = 0.6, .coefficients = kdconv_coefficient_format::pow2})
                              .layer;
  cnn << circulant_conv << relu<float>(shape{4, 8, 8}) << smartdeal_conv << decomposed << flatten<float>(shape{3, 3, 3});
  const temp_dir dir;
  if (layer_registry<float>::instance().find(block_circulant_dense<float>::kind) == nullptr) {
    const auto path = (dir / "unregistered.safetensors").string();
    save(mlp, path);
    EXPECT_THAT([&] { network<float>::load(path); },
                ThrowsMessage<format_error>(::testing::HasSubstr(
                    "slimnn: " + path + ": layer 0: unknown layer kind 'block_circulant_dense': register it first with "
                    "slimnn::register_layer_kind<slimnn::block_circulant_dense<float>>() from "
                    "slimnn/circulant/block_circulant_dense.hpp (link slimnn::circulant) (known: avg_pool2d, conv2d, ")));
  }
  register_layer_kind<block_circulant_dense<float>>();
  register_layer_kind<block_circulant_conv2d<float>>();
  for (const network<float>* net : {&mlp, &cnn}) {
    const auto path = dir / "compressed.safetensors";
    save(*net, path);
    const auto back = network<float>::load(path);
    EXPECT_EQ(back.summary(), net->summary());
    EXPECT_EQ(back.cost(), net->cost());
    const auto x = random_matrix<float>(net->input_shape().size(), 4, 7);
    matrix<float> a, b;
    net->forward(x, a);
    back.forward(x, b);
    EXPECT_EQ(a, b);
  }
}

// --- a layer kind defined outside slimnn joins with the protocol and one registration ----

template <class T>
class scale {
 public:
  using scalar_type = T;
  scale(index_t n, T factor) : n_(n), factor_(factor) {}
  shape input_shape() const { return shape::flat(n_); }
  shape output_shape() const { return shape::flat(n_); }
  std::string name() const { return std::string("scale<") + scalar_name<T>() + ">"; }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const { y = x * factor_; }
  slimnn::cost cost() const { return {}; }

  static constexpr const char* kind = "test_scale";
  void save(tensor_sink& out, const std::string& prefix) const {
    out.put_setting(prefix + "size", n_);
    out.put_array(prefix + "factor", {1}, std::vector<T>{factor_});
  }
  static scale load(const tensor_source& in, const std::string& prefix) {
    return scale(in.setting_int(prefix + "size", 1, 1 << 20), in.get<T>(prefix + "factor", {1})[0]);
  }

 private:
  index_t n_;
  T factor_;
};

template <class T>
class unsaveable {
 public:
  using scalar_type = T;
  shape input_shape() const { return shape::flat(2); }
  shape output_shape() const { return shape::flat(2); }
  std::string name() const { return "unsaveable"; }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const { y = x; }
  slimnn::cost cost() const { return {}; }
};

TEST(network_file, registered_kinds_load_and_unknown_kinds_are_named) {
  const temp_dir dir;
  network<float> net;
  net << dense<float>(3, 2) << scale<float>(2, 2.5f);
  net[0].get<dense<float>>()->weight().setConstant(1.0f);
  const auto path = (dir / "scale.safetensors").string();
  save(net, path);
  if (layer_registry<float>::instance().find("test_scale") == nullptr) {  // not yet registered in this process
    const std::string circulant_kinds = layer_registry<float>::instance().find("block_circulant_dense")
                                            ? "block_circulant_conv2d, block_circulant_dense, "
                                            : "";
    EXPECT_THAT([&] { load_network<float>(path); },
                ThrowsMessage<format_error>(StrEq(
                    "slimnn: " + path +
                    ": layer 1: unknown layer kind 'test_scale' (known: avg_pool2d, " + circulant_kinds +
                    "conv2d, crew_dense, dense, flatten, kdconv_conv2d, max_pool2d, relu, smartdeal_conv2d, "
                    "smartdeal_dense)")));
  }
  register_layer_kind<scale<float>>();  // the one line a new kind needs
  const auto back = load_network<float>(path);
  matrix<float> x(3, 1), y;
  x << 1, 2, 3;
  back.forward(x, y);
  EXPECT_EQ(y, (matrix<float>(2, 1) << 15, 15).finished());
}

TEST(network_file, refuses_to_save_a_layer_without_save) {
  const temp_dir dir;
  network<float> net;
  net << dense<float>(3, 2) << unsaveable<float>();
  EXPECT_THAT([&] { net.save(dir / "x.safetensors"); },
              ThrowsMessage<config_error>(StrEq("slimnn: layer 1 (unsaveable): cannot be saved (its type has no "
                                                "save/load members, see slimnn/core/tensor_io.hpp)")));
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
}

// --- broken network files -------------------------------------------------------------------

/// A copy of `file` with tensors and metadata passed through `edit`.
template <class Edit>
void rewrite(const fs::path& from, const fs::path& to, Edit&& edit) {
  const safetensors_file in(from);
  safetensors_writer out;
  std::map<std::string, std::string> metadata(in.metadata().begin(), in.metadata().end());
  std::map<std::string, tensor_view> tensors;
  for (const auto& name : in.tensor_names()) tensors[name] = in.tensor(name);
  edit(tensors, metadata);
  for (const auto& [name, t] : tensors) out.put(name, t.type, t.shape, t.bytes);
  for (const auto& [key, value] : metadata) out.put_setting(key, value);
  out.write(to);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
}

TEST(network_file, broken_files_raise_format_error_naming_file_layer_and_problem) {
  const temp_dir dir;
  const auto good = dir / "good.safetensors";
  make_cnn<float>().save(good);
  using tensors_t = std::map<std::string, tensor_view>;
  using metadata_t = std::map<std::string, std::string>;
  const auto arch = [](metadata_t& m, const std::string& from, const std::string& to) {
    replace_all(m["slimnn.architecture"], from, to);
  };
  const std::vector<float> spare(5, 1.0f);
  const std::span<const std::byte> spare_bytes = std::as_bytes(std::span<const float>(spare));
  struct broken {
    const char* label;
    std::function<void(tensors_t&, metadata_t&)> edit;
    std::string problem;
  };
  const std::vector<broken> cases = {
      {"missing_tensor", [](tensors_t& t, metadata_t&) { t.erase("6.bias"); }, "tensor '6.bias': missing"},
      {"misshaped_bias", [&](tensors_t& t, metadata_t&) { t["6.bias"] = {dtype::f32, {5}, spare_bytes}; },
       "tensor '6.bias': shape [5], expected [4]"},
      {"misshaped_weight",
       [&](tensors_t& t, metadata_t&) { t["0.weight"] = {dtype::f32, {3, 1, 3, 3, 1}, t["0.weight"].bytes}; },
       "tensor '0.weight': shape [3, 1, 3, 3, 1], expected [out_channels, in_channels, kernel, kernel]"},
      {"weight_against_settings", [&](tensors_t&, metadata_t& m) { arch(m, "\"inputs\":\"3\"", "\"inputs\":\"5\""); },
       "tensor '6.weight': shape [4, 3], expected [4, 5]"},
      {"extra_tensor", [&](tensors_t& t, metadata_t&) { t["7.weight"] = {dtype::f32, {5}, spare_bytes}; },
       "tensor '7.weight': is not used by any layer of the architecture"},
      {"unknown_kind", [&](tensors_t&, metadata_t& m) { arch(m, "\"relu\"", "\"gelu\""); },
       "layer 1: unknown layer kind 'gelu' (known: " + layer_registry<float>::instance().kinds() + ")"},
      {"bad_setting", [&](tensors_t&, metadata_t& m) { arch(m, "\"padding\":\"0\",\"stride\":\"2\"", "\"padding\":\"0\",\"stride\":\"0\""); },
       "setting '3.stride': 0 is out of range [1, 16777216]"},
      {"missing_setting", [&](tensors_t&, metadata_t& m) { arch(m, "{\"input\":\"3x8x8\"}", "{}"); },
       "setting '1.input': missing"},
      {"impossible_layer", [&](tensors_t&, metadata_t& m) { arch(m, "\"kernel\":\"2\",\"stride\":\"2\"}}", "\"kernel\":\"9\",\"stride\":\"2\"}}"); },
       "layer 2 (max_pool2d): max_pool2d: kernel 9 does not fit input 3x8x8"},
      {"layers_do_not_connect", [&](tensors_t&, metadata_t& m) { arch(m, "\"input\":\"3x8x8\"}},{\"kind\":\"max", "\"input\":\"3x8x9\"}},{\"kind\":\"max"); },
       "layer 1 (relu<float>, 3x8x9): expects input 3x8x9 (216 values), layer 0 (conv2d<float>, 1->3, 3x3, stride 1, "
       "pad 1) gives 3x8x8 (192 values)"},
      {"no_architecture", [](tensors_t&, metadata_t& m) { m.erase("slimnn.architecture"); },
       "no 'slimnn.architecture' in __metadata__: not a network saved by slimnn (PyTorch weights load with "
       "slimnn/io/pytorch.hpp)"},
      {"architecture_not_json", [](tensors_t&, metadata_t& m) { m["slimnn.architecture"] += "]"; },
       "setting 'slimnn.architecture': is not valid JSON"},
      {"architecture_not_array", [](tensors_t&, metadata_t& m) { m["slimnn.architecture"] = "{}"; },
       "setting 'slimnn.architecture': must be a JSON array of {\"kind\", \"settings\"} objects"},
      {"architecture_bad_entry", [](tensors_t&, metadata_t& m) { m["slimnn.architecture"] = R"([{"kind":1}])"; },
       "setting 'slimnn.architecture': layer 0: \"kind\" must be a string"},
      {"architecture_bad_setting", [](tensors_t&, metadata_t& m) { m["slimnn.architecture"] = R"([{"kind":"relu","settings":{"input":3}}])"; },
       "setting 'slimnn.architecture': layer 0: setting 'input' must be a string"},
  };
  for (const auto& c : cases) {
    const auto path = dir / (std::string(c.label) + ".safetensors");
    rewrite(good, path, c.edit);
    EXPECT_THAT([&] { network<float>::load(path); },
                ThrowsMessage<format_error>(StrEq("slimnn: " + path.string() + ": " + c.problem)))
        << c.label;
  }
}

}  // namespace
