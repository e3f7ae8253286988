// slimnn/io/network_io.hpp — whole networks (and single layers) in safetensors files.
//
//   slimnn::save(net, "model.safetensors");                  // or net.save(path)
//   auto net = slimnn::network<float>::load("model.safetensors");   // or load_network<float>
//
// A network file holds layer i's tensors under "<i>." (so dense and conv2d weights are
// named like an nn.Sequential's state_dict: "0.weight", "0.bias", ...) and, in
// __metadata__,
//   "slimnn.architecture": [{"kind": "conv2d", "settings": {"input": "1x28x28", ...}}, ...]
//   "slimnn.scalar": "float"
// Loading rebuilds each layer through layer_registry<T> (slimnn/net/layer_registry.hpp),
// which maps a kind to the layer's static load(): the core kinds always; the
// block-circulant kinds and a program's own kinds once registered, e.g.
//   slimnn::register_layer_kind<slimnn::block_circulant_dense<float>>();
// Any problem in the file (missing or mis-shaped tensor, unknown kind, bad settings,
// layers that do not connect, tensors no layer uses) raises format_error naming the file.
// Complexity: one pass over the parameters. Thread safety: loading and saving are
// reentrant; registering kinds is synchronised.
//
// Component: slimnn::io (adds nlohmann-json).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/core/tensor_io.hpp"
#include "slimnn/io/safetensors.hpp"
#include "slimnn/net/any_layer.hpp"
#include "slimnn/net/layer_registry.hpp"
#include "slimnn/net/network.hpp"

namespace slimnn {

/// Longest "slimnn.architecture" accepted (1 MiB: tens of thousands of layers).
inline constexpr std::size_t max_architecture_bytes = std::size_t(1) << 20;

namespace detail {

/// Passes tensors through and gathers one layer's settings (names without the prefix).
class layer_settings_sink : public tensor_sink {
 public:
  layer_settings_sink(tensor_sink& out, std::string prefix, std::string layer)
      : out_(out), prefix_(std::move(prefix)), layer_(std::move(layer)) {}
  std::map<std::string, std::string> settings;

 protected:
  void do_put(const std::string& name, dtype type, std::vector<std::uint64_t> shape,
              std::span<const std::byte> bytes) override {
    check(name, "tensor");
    out_.put(name, type, std::move(shape), bytes);
  }
  void do_put_setting(const std::string& key, const std::string& value) override {
    check(key, "setting");
    detail::require<config_error>(settings.emplace(key.substr(prefix_.size()), value).second, layer_,
                                  ": setting '", key, "' is stored twice");
  }

 private:
  void check(const std::string& name, const char* what) const {
    detail::require<config_error>(name.size() > prefix_.size() && name.compare(0, prefix_.size(), prefix_) == 0,
                                  layer_, ": ", what, " '", name, "' does not start with the layer's prefix '",
                                  prefix_, "'");
  }
  tensor_sink& out_;
  std::string prefix_, layer_;
};

/// One layer's view of a network file: its settings come from the architecture, its
/// tensors from the file; remembers which tensors were read.
class layer_source : public tensor_source {
 public:
  layer_source(const tensor_source& file, std::string prefix, const std::map<std::string, std::string>& settings,
               std::set<std::string>& used)
      : file_(file), prefix_(std::move(prefix)), settings_(settings), used_(used) {}
  std::string origin() const override { return file_.origin(); }
  std::vector<std::string> tensor_names() const override { return file_.tensor_names(); }

 protected:
  const tensor_view* do_find(const std::string& name) const override {
    const tensor_view* t = file_.find(name);
    if (t) used_.insert(name);
    return t;
  }
  const std::string* do_find_setting(const std::string& key) const override {
    if (key.compare(0, prefix_.size(), prefix_) != 0) return file_.find_setting(key);
    const auto it = settings_.find(key.substr(prefix_.size()));
    return it == settings_.end() ? nullptr : &it->second;
  }

 private:
  const tensor_source& file_;
  std::string prefix_;
  const std::map<std::string, std::string>& settings_;
  std::set<std::string>& used_;
};

/// "slimnn: x" -> "x".
inline std::string without_prefix(const std::string& what) {
  return what.rfind("slimnn: ", 0) == 0 ? what.substr(8) : what;
}

struct architecture_entry {
  std::string kind;
  std::map<std::string, std::string> settings;
};

/// Parses and checks "slimnn.architecture".
inline std::vector<architecture_entry> parse_architecture(const tensor_source& in) {
  const std::string key = "slimnn.architecture";
  const std::string* text = in.find_setting(key);
  if (!text)
    throw format_error(cat(in.origin(), ": no '", key,
                           "' in __metadata__: not a network saved by slimnn (PyTorch weights load with "
                           "slimnn/io/pytorch.hpp)"));
  if (text->size() > max_architecture_bytes)
    in.fail_setting(key, cat("is ", text->size(), " bytes long, more than the limit of ", max_architecture_bytes));
  const auto json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded()) in.fail_setting(key, "is not valid JSON");
  if (!json.is_array()) in.fail_setting(key, "must be a JSON array of {\"kind\", \"settings\"} objects");
  std::vector<architecture_entry> layers;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const auto& entry = json[i];
    const auto bad = [&](const std::string& problem) { in.fail_setting(key, cat("layer ", i, ": ", problem)); };
    if (!entry.is_object()) bad("must be an object with \"kind\" and \"settings\"");
    for (const auto& [name, value] : entry.items())
      if (name != "kind" && name != "settings") bad(cat("unexpected field '", name, "'"));
    const auto kind = entry.find("kind");
    if (kind == entry.end() || !kind->is_string()) bad("\"kind\" must be a string");
    architecture_entry layer{kind->get<std::string>(), {}};
    const auto settings = entry.find("settings");
    if (settings != entry.end()) {
      if (!settings->is_object()) bad("\"settings\" must be an object of strings");
      for (const auto& [name, value] : settings->items()) {
        if (!value.is_string()) bad(cat("setting '", name, "' must be a string"));
        layer.settings.emplace(name, value.get<std::string>());
      }
    }
    layers.push_back(std::move(layer));
  }
  return layers;
}

}  // namespace detail

/// Writes `net` into `out`: layer i under "<i>.", the architecture in settings.
template <class T>
void write_network(const network<T>& net, tensor_sink& out) {
  nlohmann::json architecture = nlohmann::json::array();
  for (std::size_t i = 0; i < net.size(); ++i) {
    const auto& layer = net[i];
    const std::string who = detail::cat("layer ", i, " (", describe(layer), ")");
    detail::require<config_error>(layer.saveable(), who,
                                  ": cannot be saved (its type has no save/load members, see slimnn/core/tensor_io.hpp)");
    const std::string prefix = std::to_string(i) + ".";
    detail::layer_settings_sink sink(out, prefix, who);
    layer.save(sink, prefix);
    architecture.push_back({{"kind", layer.kind()}, {"settings", sink.settings}});
  }
  out.put_setting("slimnn.architecture", architecture.dump());
  out.put_setting("slimnn.scalar", scalar_name<T>());
}

/// Writes `net` to a safetensors file at `path`.
template <class T>
void save(const network<T>& net, const std::filesystem::path& path) {
  safetensors_writer out;
  write_network(net, out);
  out.write(path);
}

/// Rebuilds a network from tensors and an architecture written by write_network. The
/// file's scalar type may differ from T (values are converted).
template <class T>
network<T> load_network(const tensor_source& in) {
  const auto architecture = detail::parse_architecture(in);
  const auto& registry = layer_registry<T>::instance();
  std::set<std::string> used;
  network<T> net;
  for (std::size_t i = 0; i < architecture.size(); ++i) {
    const auto& entry = architecture[i];
    const std::string prefix = std::to_string(i) + ".";
    const auto load = registry.find(entry.kind);
    if (!load)
      throw format_error(detail::cat(in.origin(), ": layer ", i, ": unknown layer kind '", entry.kind,
                                     "'", unknown_kind_hint(entry.kind, scalar_name<T>()),
                                     " (known: ", registry.kinds(), ")"));
    detail::layer_source source(in, prefix, entry.settings, used);
    std::optional<any_layer<T>> layer;
    try {
      layer.emplace(load(source, prefix));
    } catch (const format_error&) {
      throw;
    } catch (const error& e) {
      throw format_error(detail::cat(in.origin(), ": layer ", i, " (", entry.kind, "): ", detail::without_prefix(e.what())));
    }
    try {
      net.add(std::move(*layer));
    } catch (const error& e) {
      throw format_error(detail::cat(in.origin(), ": ", detail::without_prefix(e.what())));
    }
  }
  for (const auto& name : in.tensor_names())
    if (!used.count(name)) in.fail(name, "is not used by any layer of the architecture");
  return net;
}

/// Rebuilds the network saved in the safetensors file at `path`.
template <class T>
network<T> load_network(const std::filesystem::path& path) {
  return load_network<T>(safetensors_file(path));
}

/// Writes one layer to `path`: its tensors and settings unprefixed, and "slimnn.kind".
template <SaveableLayer L>
void save_layer(const L& layer, const std::filesystem::path& path) {
  safetensors_writer out;
  layer.save(out, "");
  out.put_setting("slimnn.kind", std::string(L::kind));
  out.write(path);
}

/// Reads a layer written by save_layer; format_error if the file holds another kind.
template <SaveableLayer L>
L load_layer(const std::filesystem::path& path) {
  const safetensors_file in(path);
  const std::string& kind = in.setting("slimnn.kind");
  if (kind != L::kind) in.fail_setting("slimnn.kind", detail::cat("'", kind, "', expected '", L::kind, "'"));
  return L::load(in, "");
}

namespace detail {

/// What network<T>::save and network<T>::load call.
template <class T>
struct network_io<network<T>> {
  static void save(const network<T>& net, const std::filesystem::path& path) { slimnn::save(net, path); }
  static network<T> load(const std::filesystem::path& path) { return load_network<T>(path); }
};

}  // namespace detail
}  // namespace slimnn
