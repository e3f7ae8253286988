// tests/layer_file.hpp — layers through in-memory safetensors files: the round-trip check
// the conformance suite runs, and saved layers opened for editing (corrupt-file tests).
//
//   expect_round_trip(layer, prefix)   save, load, expect the same description and cost,
//                                      bit-identical outputs and a byte-identical re-save
//   auto file = saved(layer);          its tensors (owned, editable) and settings
//   file.set<std::uint8_t>("index", 3, 0xff);  file.settings["block"] = "0";
//   load_saved<L>(file)                loads it back from a buffer named "edited"
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/io/safetensors.hpp"
#include "test_util.hpp"

namespace slimnn::testing {

template <SaveableLayer L>
void expect_round_trip(const L& layer, const std::string& prefix = "") {
  using T = typename L::scalar_type;
  safetensors_writer out;
  layer.save(out, prefix);
  const safetensors_file in(out.bytes(), "buffer");
  const L back = L::load(in, prefix);
  EXPECT_EQ(describe(back), describe(layer));
  EXPECT_EQ(back.cost(), layer.cost());
  for (index_t batch : {1, 3}) {
    const auto x = random_matrix<T>(layer.input_shape().size(), batch, 11);
    matrix<T> expected, got;
    layer.forward(x, expected);
    back.forward(x, got);
    EXPECT_EQ(got, expected) << "batch " << batch;
  }
  for (const auto& name : in.tensor_names()) EXPECT_EQ(name.rfind(prefix, 0), 0u) << name;
  for (const auto& [key, value] : in.metadata()) EXPECT_EQ(key.rfind(prefix, 0), 0u) << key;
  safetensors_writer again;
  back.save(again, prefix);
  EXPECT_TRUE(again.bytes() == out.bytes()) << "saving the loaded layer gives another file";
}

/// A saved layer's tensors and settings, editable.
struct saved_layer {
  struct tensor {
    dtype type;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::map<std::string, tensor> tensors;
  std::map<std::string, std::string> settings;

  /// Overwrites element i of tensor `name` (whose dtype must be U's).
  template <tensor_element U>
  void set(const std::string& name, std::size_t i, U value) {
    tensor& t = tensors.at(name);
    EXPECT_EQ(t.type, dtype_of<U>()) << name;
    std::memcpy(t.bytes.data() + i * sizeof(U), &value, sizeof(U));  // little-endian hosts
  }
};

template <SaveableLayer L>
saved_layer saved(const L& layer) {
  safetensors_writer out;
  layer.save(out, "");
  const safetensors_file in(out.bytes());
  saved_layer s{{}, {in.metadata().begin(), in.metadata().end()}};
  for (const auto& name : in.tensor_names()) {
    const tensor_view& t = in.tensor(name);
    s.tensors[name] = {t.type, t.shape, {t.bytes.begin(), t.bytes.end()}};
  }
  return s;
}

/// The bytes of the tensors `layer` saves: what its cost().param_bytes must equal.
template <SaveableLayer L>
std::uint64_t file_tensor_bytes(const L& layer) {
  std::uint64_t bytes = 0;
  for (const auto& [name, t] : saved(layer).tensors) bytes += t.bytes.size();
  return bytes;
}

template <SaveableLayer L>
L load_saved(const saved_layer& s) {
  safetensors_writer out;
  for (const auto& [name, t] : s.tensors) out.put(name, t.type, t.shape, t.bytes);
  for (const auto& [key, value] : s.settings) out.put_setting(key, value);
  return L::load(safetensors_file(out.bytes(), "edited"), "");
}

}  // namespace slimnn::testing
