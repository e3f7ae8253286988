// safetensors reader and writer: every dtype, files laid out by hand as the format
// specifies (including torch.nn.Linear / Conv2d state_dicts), and hostile files.
#include "slimnn/io/safetensors.hpp"

#include <gmock/gmock.h>
#include <stdlib.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "slimnn/io/pytorch.hpp"
#include "slimnn/layers/relu.hpp"
#include "test_util.hpp"

namespace {

using namespace slimnn;
using ::testing::StrEq;
using ::testing::ThrowsMessage;
namespace fs = std::filesystem;

/// A fresh directory under the system temp dir, removed at the end of the test.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "slimnn-safetensors-XXXXXX").string();
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

// --- an independent writer: bytes laid out by hand as the format specifies -----------

using bytes_t = std::vector<std::byte>;

void append_le(bytes_t& out, std::uint64_t v, int size) {
  for (int i = 0; i < size; ++i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
}
bytes_t f32(std::initializer_list<float> values) {
  bytes_t out;
  for (float v : values) append_le(out, std::bit_cast<std::uint32_t>(v), 4);
  return out;
}
bytes_t raw(std::initializer_list<std::uint64_t> values, int size) {
  bytes_t out;
  for (auto v : values) append_le(out, v, size);
  return out;
}
bytes_t operator+(bytes_t a, const bytes_t& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
/// 8-byte little-endian header length (`declared`, default the real one), header, data.
bytes_t hand_file(const std::string& header, const bytes_t& data = {},
                  std::optional<std::uint64_t> declared = std::nullopt) {
  bytes_t out;
  append_le(out, declared.value_or(header.size()), 8);
  for (char c : header) out.push_back(std::byte(c));
  return out + data;
}
fs::path write_file(const fs::path& path, const bytes_t& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return path;
}

// --- conversions ----------------------------------------------------------------------

TEST(safetensors, half_and_bfloat16_match_known_encodings) {
  using detail::float_to_bf16, detail::float_to_half, detail::half_to_float, detail::bf16_to_float;
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // halfway: to even
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // halfway: to even
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);      // halfway to the smallest subnormal
  EXPECT_EQ(float_to_half(3 * std::ldexp(1.0f, -25)), 0x0002);  // halfway: to even
  EXPECT_EQ(float_to_half(std::ldexp(1023.5f, -24)), 0x0400);   // rounds up into the normals
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x7e00, 0x7e00);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc0a0), -5.0f);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // halfway: to even
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // halfway: to even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

// --- round trips ----------------------------------------------------------------------

TEST(safetensors, every_dtype_round_trips_through_a_file) {
  const temp_dir dir;
  const std::vector<float> floats{1.5f, -2.25f, 0.0f, 1e-3f, 65504.0f, -0.5f};
  const std::vector<double> doubles{1.0 / 3.0, -1e300, 0.0, 5e-324};
  const std::vector<float> halves{1.0f, -2.0f, 0.333251953125f, std::ldexp(1.0f, -24), 65504.0f, 0.0f};
  const std::vector<float> bhalves{1.0f, -5.0f, 3.0e38f, 0.0f};
  const std::vector<std::int8_t> i8{-128, -1, 0, 127};
  const std::vector<std::uint8_t> u8{0, 1, 200, 255};
  const std::vector<std::int32_t> i32{std::numeric_limits<std::int32_t>::min(), -1, 0, 123456789,
                                      std::numeric_limits<std::int32_t>::max()};
  safetensors_writer out;
  out.put_array("f32", {2, 3}, floats);
  out.put_array("f64", {4}, doubles);
  out.put_array("f16", {3, 2}, halves, dtype::f16);
  out.put_array("bf16", {2, 1, 2}, std::vector<float>{1.0f, -5.0f, 2.99255e38f, 0.0f}, dtype::bf16);
  out.put_array("i8", {4}, i8);
  out.put_array("u8", {2, 2}, u8);
  out.put_array("i32", {5}, i32);
  out.put_array("scalar", {}, std::vector<float>{7.0f});
  out.put_array("empty", {0, 3}, std::vector<float>{});
  out.put_setting("note", "round trip");
  out.put_setting("count", 42);
  out.write(dir / "all.safetensors");

  const safetensors_file in(dir / "all.safetensors");
  EXPECT_TRUE(in.mapped());
  EXPECT_EQ(in.size(), 9u);
  EXPECT_EQ(in.get<float>("f32", {2, 3}), floats);
  EXPECT_EQ(in.get<double>("f64", {4}), doubles);
  EXPECT_EQ(in.get<float>("f16", {3, 2}), halves);
  EXPECT_EQ(in.get<float>("i8", {4}), std::vector<float>({-128, -1, 0, 127}));
  EXPECT_EQ(in.get<std::int8_t>("i8", {4}), i8);
  EXPECT_EQ(in.get<std::uint8_t>("u8", {2, 2}), u8);
  EXPECT_EQ(in.get<std::int32_t>("i32", {5}), i32);
  EXPECT_EQ(in.get<double>("i32", {5})[0], -2147483648.0);
  EXPECT_EQ(in.get<float>("scalar", {}), std::vector<float>{7.0f});
  EXPECT_TRUE(in.get<float>("empty", {0, 3}).empty());
  const auto b = in.get<float>("bf16", {2, 1, 2});
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -5.0f);
  EXPECT_EQ(b[3], 0.0f);
  EXPECT_EQ(detail::float_to_bf16(b[2]), detail::float_to_bf16(2.99255e38f));
  EXPECT_EQ(in.tensor("f16").type, dtype::f16);
  EXPECT_EQ(in.tensor("bf16").type, dtype::bf16);
  EXPECT_EQ(in.tensor("u8").type, dtype::u8);
  EXPECT_EQ(in.tensor("f64").type, dtype::f64);
  EXPECT_EQ(in.setting("note"), "round trip");
  EXPECT_EQ(in.setting_int("count", 0, 100), 42);
  // The in-memory constructor sees the same file.
  const safetensors_file memory(safetensors_writer(out).bytes(), "memory");
  EXPECT_FALSE(memory.mapped());
  EXPECT_EQ(memory.names(), in.names());
  EXPECT_EQ(memory.get<double>("f64"), doubles);
}

TEST(safetensors, writer_lays_out_the_format) {
  safetensors_writer out;
  out.put_array("b", {3}, std::vector<std::uint8_t>{1, 2, 3});
  out.put_array("a", {1}, std::vector<double>{2.0});
  out.put_setting("k", "v");
  const auto bytes = out.bytes();
  const std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"data_offsets":[0,8],"dtype":"F64","shape":[1]},)"
      R"("b":{"data_offsets":[8,11],"dtype":"U8","shape":[3]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  EXPECT_EQ(bytes, hand_file(padded, raw({std::bit_cast<std::uint64_t>(2.0)}, 8) + raw({1, 2, 3}, 1)));
  EXPECT_EQ((8 + padded.size()) % 8, 0u);  // data starts 8-byte aligned; widest dtype first
}

TEST(safetensors, writer_rejects_misuse) {
  safetensors_writer out;
  out.put_array("a", {1}, std::vector<float>{1});
  EXPECT_THAT([&] { out.put_array("a", {1}, std::vector<float>{1}); },
              ThrowsMessage<config_error>(StrEq("slimnn: safetensors_writer: tensor 'a' is stored twice")));
  EXPECT_THAT([&] { out.put_array("b", {2, 2}, std::vector<float>{1}); },
              ThrowsMessage<config_error>(StrEq("slimnn: tensor_sink: tensor 'b' of F32[2, 2] needs 16 bytes, got 4")));
  EXPECT_THAT([&] { out.put_array("c", {1}, std::vector<std::int8_t>{1}, dtype::f16); },
              ThrowsMessage<config_error>(StrEq("slimnn: tensor_sink: tensor 'c': cannot store I8 values as F16")));
  EXPECT_THAT([&] { out.put_array("__metadata__", {1}, std::vector<float>{1}); },
              ThrowsMessage<config_error>(StrEq("slimnn: safetensors_writer: '__metadata__' is reserved")));
}

// --- files written by hand ----------------------------------------------------------------

TEST(safetensors, reads_a_hand_written_file_of_every_readable_dtype) {
  const std::string header =
      R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},)"
      R"( "h": {"dtype": "F16", "shape": [2], "data_offsets": [16, 20]},)"
      R"( "b": {"dtype": "BF16", "shape": [2], "data_offsets": [20, 24]},)"
      R"( "i": {"dtype": "I32", "shape": [1], "data_offsets": [24, 28]},)"
      R"( "s": {"dtype": "I8", "shape": [2], "data_offsets": [28, 30]},)"
      R"( "u": {"dtype": "U8", "shape": [1], "data_offsets": [30, 31]},)"
      R"( "d": {"dtype": "F64", "shape": [1], "data_offsets": [31, 39]},)"
      R"( "__metadata__": {"format": "pt"}})";
  const auto data = f32({1, 2, 3, 4}) + raw({0x3c00, 0xc000}, 2) + raw({0x3f80, 0xc0a0}, 2) +
                    raw({0xfffffffe}, 4) + raw({0xff, 0x05}, 1) + raw({250}, 1) +
                    raw({std::bit_cast<std::uint64_t>(0.1)}, 8);
  const safetensors_file in(hand_file(header, data), "hand");
  EXPECT_EQ(in.get<float>("w", {2, 2}), std::vector<float>({1, 2, 3, 4}));
  EXPECT_EQ(in.get<float>("h", {2}), std::vector<float>({1, -2}));
  EXPECT_EQ(in.get<double>("b", {2}), std::vector<double>({1, -5}));
  EXPECT_EQ(in.get<std::int32_t>("i", {1}), std::vector<std::int32_t>{-2});
  EXPECT_EQ(in.get<std::int8_t>("s", {2}), std::vector<std::int8_t>({-1, 5}));
  EXPECT_EQ(in.get<std::uint8_t>("u", {1}), std::vector<std::uint8_t>{250});
  EXPECT_EQ(in.get<double>("d", {1}), std::vector<double>{0.1});
  EXPECT_EQ(in.get<float>("d", {1}), std::vector<float>{0.1f});
  EXPECT_EQ(in.metadata().at("format"), "pt");
  // Unaligned data (this writer does not pad) is read byte by byte.
  EXPECT_EQ(in.tensor("d").bytes.size(), 8u);
  const auto m = in.get_matrix<float>("w", 2, 2);  // row-major [2, 2] -> matrix
  EXPECT_EQ(m(0, 1), 2.0f);
  EXPECT_EQ(m(1, 0), 3.0f);
}

TEST(safetensors, torch_linear_state_dict_loads_into_dense) {
  // nn.Linear(3, 2): weight [out=2, in=3] row-major, bias [2].
  const std::string header =
      R"({"fc.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},)"
      R"("fc.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  const safetensors_file in(hand_file(header, f32({1, 2, 3, 4, 5, 6}) + f32({0.5f, -1})), "linear.safetensors");
  const auto layer = pytorch::load_linear<float>(in, "fc", 3, 2);
  EXPECT_EQ(layer.input_shape().size(), 3);
  EXPECT_EQ(layer.output_shape().size(), 2);
  EXPECT_EQ(layer.weight()(0, 2), 3.0f);
  EXPECT_EQ(layer.weight()(1, 0), 4.0f);
  matrix<float> x(3, 1), y;
  x << 1, 10, 100;
  layer.forward(x, y);
  EXPECT_EQ(y(0, 0), 1 + 20 + 300 + 0.5f);
  EXPECT_EQ(y(1, 0), 4 + 50 + 600 - 1.0f);
  EXPECT_THAT([&] { pytorch::load_linear<float>(in, "fc", 4, 2); },
              ThrowsMessage<format_error>(
                  StrEq("slimnn: linear.safetensors: tensor 'fc.weight': shape [2, 3], expected [2, 4]")));
  EXPECT_THAT([&] { pytorch::load_linear<float>(in, "fc2"); },
              ThrowsMessage<format_error>(StrEq("slimnn: linear.safetensors: tensor 'fc2.weight': missing")));
}

TEST(safetensors, torch_conv2d_state_dict_loads_into_conv2d) {
  // nn.Conv2d(2, 3, 2): weight [3, 2, 2, 2] (element n*8 + c*4 + i*2 + j = value), bias [3].
  bytes_t weight;
  for (int e = 0; e < 24; ++e) weight = weight + f32({float(e) * 0.25f - 3.0f});
  const std::string header =
      R"({"conv.weight":{"dtype":"F32","shape":[3,2,2,2],"data_offsets":[0,96]},)"
      R"("conv.bias":{"dtype":"F32","shape":[3],"data_offsets":[96,108]}})";
  const safetensors_file in(hand_file(header, weight + f32({1, 2, 3})), "conv.safetensors");
  const auto layer = pytorch::load_conv2d<double>(in, "conv", shape{2, 5, 4}, 2, 1);
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) EXPECT_EQ(layer.weight_at(n, c, i, j), (n * 8 + c * 4 + i * 2 + j) * 0.25 - 3.0);
  // Against the definition, y[n][oh][ow] = b[n] + sum W[n][c][i][j] x[c][oh*2+i-1][ow*2+j-1].
  const auto x = slimnn::testing::random_matrix<double>(40, 1);
  matrix<double> y;
  layer.forward(x, y);
  const shape out = layer.output_shape();
  ASSERT_EQ(out, (shape{3, 3, 3}));
  for (int n = 0; n < 3; ++n)
    for (int oh = 0; oh < 3; ++oh)
      for (int ow = 0; ow < 3; ++ow) {
        double expected = n + 1;
        for (int c = 0; c < 2; ++c)
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
              const int h = oh * 2 + i - 1, w = ow * 2 + j - 1;
              if (h >= 0 && h < 5 && w >= 0 && w < 4)
                expected += ((n * 8 + c * 4 + i * 2 + j) * 0.25 - 3.0) * x((c * 5 + h) * 4 + w, 0);
            }
        EXPECT_NEAR(y((n * 3 + oh) * 3 + ow, 0), expected, 1e-12);
      }
  EXPECT_THAT([&] { pytorch::load_conv2d<float>(in, "conv", shape{1, 5, 4}); },
              ThrowsMessage<format_error>(
                  StrEq("slimnn: conv.safetensors: tensor 'conv.weight': shape [3, 2, 2, 2], expected [3, 1, 2, 2]")));
}

TEST(safetensors, pytorch_names_fill_a_network) {
  // An nn.Sequential(Linear(2, 3), ReLU(), Linear(3, 1)) state_dict, and the same with named modules.
  const std::string sequential =
      R"({"0.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},)"
      R"("0.bias":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},)"
      R"("2.weight":{"dtype":"F32","shape":[1,3],"data_offsets":[36,48]},)"
      R"("2.bias":{"dtype":"F32","shape":[1],"data_offsets":[48,52]}})";
  const auto data = f32({1, 0, 0, 1, 1, 1}) + f32({0, 0, -10}) + f32({1, 2, 3}) + f32({0.5f});
  network<float> net;
  net << dense<float>(2, 3) << relu<float>(shape::flat(3)) << dense<float>(3, 1);
  pytorch::load_parameters(net, safetensors_file(hand_file(sequential, data), "seq"));
  matrix<float> x(2, 1), y;
  x << 2, 3;
  net.forward(x, y);
  EXPECT_EQ(y(0, 0), 2 + 2 * 3 + 0 + 0.5f);  // relu(2, 3, 5 - 10) = (2, 3, 0)

  std::string named = sequential;
  for (auto [from, to] : {std::pair{"\"0.", "\"fc1."}, std::pair{"\"2.", "\"fc2."}})
    for (std::size_t at; (at = named.find(from)) != std::string::npos;) named.replace(at, 3, to);
  network<float> net2;
  net2 << dense<float>(2, 3) << relu<float>(shape::flat(3)) << dense<float>(3, 1);
  const safetensors_file file(hand_file(named, data), "named");
  pytorch::load_parameters(net2, file, {"fc1", "fc2"});
  net2.forward(x, y);
  EXPECT_EQ(y(0, 0), 8.5f);
  EXPECT_THAT([&] { pytorch::load_parameters(net2, file, {"fc1"}); },
              ThrowsMessage<config_error>(
                  StrEq("slimnn: pytorch::load_parameters: 1 module names for 2 layers with parameters")));
  network<float> wider;
  wider << dense<float>(2, 4) << relu<float>(shape::flat(4)) << dense<float>(4, 1);
  EXPECT_THAT([&] { pytorch::load_parameters(wider, file, {"fc1", "fc2"}); },
              ThrowsMessage<format_error>(StrEq("slimnn: named: tensor 'fc1.weight': shape [3, 2], expected [4, 2]")));
}

// --- hostile files -------------------------------------------------------------------------

struct hostile_case {
  const char* label;
  bytes_t bytes;
  std::string problem;  ///< the message after "slimnn: <path>: "
};

std::vector<hostile_case> hostile_cases() {
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const auto two = f32({1, 2});
  std::string many_ones;  // 64 more extents of 1: 65 dimensions
  for (int i = 0; i < 64; ++i) many_ones += ",1";
  return {
      {"empty", {}, "truncated: 0 bytes, but a safetensors file starts with an 8-byte header length"},
      {"short", raw({1, 2, 3}, 1), "truncated: 3 bytes, but a safetensors file starts with an 8-byte header length"},
      {"length_beyond_file", hand_file("{}", {}, 1000), "header length 1000 exceeds the 2 bytes after it (truncated file?)"},
      {"absurd_length", hand_file("{}", {}, std::uint64_t(1) << 62),
       "header length 4611686018427387904 exceeds the limit of 104857600 bytes"},
      {"truncated_data", hand_file("{" + ok_entry + "}", f32({1})),
       "tensor 'a': data_offsets [0, 8] exceed the 4-byte data buffer"},
      {"malformed_json", hand_file(R"({"a":{"dtype":"F32",})"),
       "header is not valid JSON: parse error at line 1, column 21: syntax error while parsing object key - "
       "unexpected '}'; expected string literal"},
      {"not_utf8", hand_file("{\"\xff\":{}}"),
       "header is not valid JSON: parse error at line 1, column 3: syntax error while parsing object key - invalid "
       "string: ill-formed UTF-8 byte; last read: '\"\xff'; expected string literal"},
      {"trailing_garbage", hand_file("{} x"),
       "header is not valid JSON: parse error at line 1, column 4: syntax error while parsing value - invalid "
       "literal; last read: '{} x'; expected end of input"},
      {"not_an_object", hand_file("[1]"), "header must be a JSON object, found an array"},
      {"entry_not_object", hand_file(R"({"a":[1]})"),
       "tensor 'a': must be an object with dtype, shape and data_offsets, found an array"},
      {"unknown_dtype", hand_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", two),
       "tensor 'a': unknown dtype 'F33'"},
      {"dtype_not_string", hand_file(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", two),
       "tensor 'a': dtype must be a string, found a number"},
      {"missing_shape", hand_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", two), "tensor 'a': has no 'shape'"},
      {"missing_offsets", hand_file(R"({"a":{"dtype":"F32","shape":[2]}})", two), "tensor 'a': has no 'data_offsets'"},
      {"unknown_field", hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", two),
       "tensor 'a': unexpected field 'x' (a tensor has dtype, shape and data_offsets)"},
      {"repeated_field", hand_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", two),
       "tensor 'a': field 'dtype' appears twice"},
      {"repeated_tensor", hand_file("{" + ok_entry + "," + ok_entry + "}", two), "tensor 'a': appears twice in the header"},
      {"negative_extent", hand_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", two),
       "tensor 'a': 'shape' holds the negative number -2, expected non-negative integer extents"},
      {"fractional_offset", hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}})", two),
       "tensor 'a': 'data_offsets' holds 8.5, expected [begin, end] in bytes"},
      {"nested_shape", hand_file(R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", two),
       "tensor 'a': 'shape' holds an array, expected non-negative integer extents"},
      {"three_offsets", hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", two),
       "tensor 'a': data_offsets must be [begin, end]"},
      {"one_offset", hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", two),
       "tensor 'a': data_offsets must be [begin, end]"},
      {"reversed_offsets", hand_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", two),
       "tensor 'a': data_offsets [8, 0] are reversed"},
      {"offsets_out_of_range", hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", two),
       "tensor 'a': data_offsets [4, 12] exceed the 8-byte data buffer"},
      {"huge_offsets", hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,0]}})", two),
       "tensor 'a': data_offsets [18446744073709551608, 0] are reversed"},
      {"count_mismatch", hand_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", two),
       "tensor 'a': shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] hold 8"},
      {"absurd_shape", hand_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", two),
       "tensor 'a': shape [4294967296, 4294967296] has too many elements"},
      {"overlap",
       hand_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 two),
       "tensor 'b': data_offsets [4, 8] overlap tensor 'a' [0, 8]"},
      {"hole",
       hand_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 f32({1, 2, 3})),
       "tensor 'b': data_offsets [8, 12] leave bytes [4, 8) of the data buffer unused"},
      {"unused_tail", hand_file("{" + ok_entry + "}", f32({1, 2, 3})),
       "bytes [8, 12) of the data buffer belong to no tensor"},
      {"metadata_not_strings", hand_file(R"({"__metadata__":{"k":1}})"),
       "__metadata__ value of 'k' must be a string, found a number"},
      {"metadata_not_object", hand_file(R"({"__metadata__":"k"})"),
       "__metadata__ must be an object of strings, found a string"},
      {"metadata_twice", hand_file(R"({"__metadata__":{},"__metadata__":{}})"), "__metadata__ appears twice"},
      {"deep_rank", hand_file(R"({"a":{"dtype":"U8","shape":[1)" + many_ones + R"(],"data_offsets":[0,1]}})", raw({1}, 1)),
       "tensor 'a': shape has more than 64 dimensions"},
  };
}

TEST(safetensors, hostile_files_raise_format_error_naming_file_tensor_and_problem) {
  const temp_dir dir;
  for (const auto& c : hostile_cases()) {
    const auto path = write_file(dir / (std::string(c.label) + ".safetensors"), c.bytes);
    EXPECT_THAT([&] { safetensors_file{path}; },
                ThrowsMessage<format_error>(StrEq("slimnn: " + path.string() + ": " + c.problem)))
        << c.label;
    EXPECT_THAT([&] { safetensors_file(c.bytes, "memory"); },
                ThrowsMessage<format_error>(StrEq("slimnn: memory: " + c.problem)))
        << c.label;
  }
}

TEST(safetensors, missing_and_unreadable_files) {
  const temp_dir dir;
  const auto missing = (dir / "missing.safetensors").string();
  EXPECT_THAT([&] { safetensors_file{missing}; },
              ThrowsMessage<format_error>(StrEq("slimnn: " + missing + ": cannot open file: No such file or directory")));
  fs::create_directory(dir / "folder");
  const auto folder = (dir / "folder").string();
  EXPECT_THAT([&] { safetensors_file{folder}; },
              ThrowsMessage<format_error>(StrEq("slimnn: " + folder + ": not a regular file")));
}

TEST(safetensors, tensor_requests_check_name_shape_and_type) {
  safetensors_writer out;
  out.put_array("w", {2, 3}, std::vector<float>(6, 1.0f));
  out.put_array("big", {2}, std::vector<std::int32_t>{1, 300});
  out.put("counter", dtype::i64, {1}, raw({5}, 8));
  out.put_setting("stride", "two");
  out.put_setting("kernel", "9");
  out.put_setting("input", "3x0x4");
  const safetensors_file in(out.bytes(), "t.safetensors");
  const auto throws = [](const std::string& message) {
    return ThrowsMessage<format_error>(StrEq("slimnn: t.safetensors: " + message));
  };
  EXPECT_THAT([&] { in.get<float>("v", {2, 3}); }, throws("tensor 'v': missing"));
  EXPECT_THAT([&] { in.get<float>("w", {3, 2}); }, throws("tensor 'w': shape [2, 3], expected [3, 2]"));
  EXPECT_THAT([&] { in.get<float>("w", {6}); }, throws("tensor 'w': shape [2, 3], expected [6]"));
  EXPECT_THAT([&] { in.shape_of("w", 4, "[n, c, k, k]"); }, throws("tensor 'w': shape [2, 3], expected [n, c, k, k]"));
  EXPECT_THAT([&] { in.get<std::int8_t>("big", {2}); }, throws("tensor 'big': element 1 = 300 does not fit I8"));
  EXPECT_THAT([&] { in.get<std::int32_t>("w"); }, throws("tensor 'w': dtype F32, expected an integer dtype (I32)"));
  EXPECT_THAT([&] { in.get<float>("counter"); },
              throws("tensor 'counter': dtype I64 is not supported (slimnn reads F32, F64, F16, BF16, I8, U8 and I32)"));
  EXPECT_THAT([&] { in.setting("padding"); }, throws("setting 'padding': missing"));
  EXPECT_THAT([&] { in.setting_int("stride", 1, 10); }, throws("setting 'stride': 'two' is not an integer"));
  EXPECT_THAT([&] { in.setting_int("kernel", 1, 5); }, throws("setting 'kernel': 9 is out of range [1, 5]"));
  EXPECT_THAT([&] { in.setting_shape("input"); },
              throws("setting 'input': '3x0x4' is not a shape (C, or CxHxW with extents from 1 to 16777216)"));
  EXPECT_EQ(in.get<std::int32_t>("big", {2}), std::vector<std::int32_t>({1, 300}));
}

TEST(safetensors, shape_settings_parse_and_bound) {
  safetensors_writer out;
  out.put_setting("flat", shape::flat(784));
  out.put_setting("image", shape{3, 28, 28});
  out.put_setting("huge", "16777216x16777216x16777216");
  out.put_setting("two", "3x4");
  const safetensors_file in(out.bytes(), "s");
  EXPECT_EQ(in.setting_shape("flat"), shape::flat(784));
  EXPECT_EQ(in.setting_shape("image"), (shape{3, 28, 28}));
  EXPECT_THAT([&] { in.setting_shape("huge"); },
              ThrowsMessage<format_error>(
                  StrEq("slimnn: s: setting 'huge': shape 16777216x16777216x16777216 has more than 2^40 values")));
  EXPECT_THROW(in.setting_shape("two"), format_error);
}

}  // namespace
