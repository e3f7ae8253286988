// slimnn/net/layer_registry.hpp — layer kinds -> loaders, for rebuilding networks from files.
//
// layer_registry<T>::instance() maps a layer kind (L::kind, e.g. "crew_dense") to a
// function that rebuilds the layer from a tensor_source (L::load), so a network file
// (slimnn/io/network_io.hpp) can name its layers by kind. The registry starts with the
// core kinds (add_core_layers below, one line per kind). Kinds of other components,
// and a program's own, are registered once at run time, before loading:
//   slimnn::register_layer_kind<slimnn::block_circulant_dense<float>>();
// Registration is explicit, not done by static initialisers in headers, so that a
// translation unit compiles the code of a layer kind only if it builds, registers or
// loads that kind (each registered kind instantiates all of its layer's members).
// unknown_kind_hint() says how to register a slimnn kind from outside the core.
// Complexity: lookups are O(log kinds). Thread safety: every member is synchronised.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "slimnn/core/tensor_io.hpp"
#include "slimnn/crew/crew_dense.hpp"
#include "slimnn/kdconv/kdconv_conv2d.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/net/any_layer.hpp"
#include "slimnn/smartdeal/smartdeal_conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"

namespace slimnn {

template <class T>
class layer_registry;

/// The core layer kinds; a new core kind is one line here (and its include above).
template <class T>
void add_core_layers(layer_registry<T>& registry) {
  registry.template add<dense<T>>();
  registry.template add<conv2d<T>>();
  registry.template add<relu<T>>();
  registry.template add<flatten<T>>();
  registry.template add<max_pool2d<T>>();
  registry.template add<avg_pool2d<T>>();
  registry.template add<smartdeal_dense<T>>();
  registry.template add<smartdeal_conv2d<T>>();
  registry.template add<crew_dense<T>>();
  registry.template add<kdconv_conv2d<T>>();
}

/// Layer kinds -> loaders, for networks of scalar T.
template <class T>
class layer_registry {
 public:
  using loader = std::function<any_layer<T>(const tensor_source& in, const std::string& prefix)>;

  /// The process-wide registry, holding the core kinds and those registered since.
  static layer_registry& instance() {
    static layer_registry registry = [] {
      layer_registry r;
      add_core_layers(r);
      return r;
    }();
    return registry;
  }

  /// Registers L under L::kind (replacing an earlier loader of that kind).
  template <SaveableLayer L>
    requires std::is_same_v<typename L::scalar_type, T>
  void add() {
    add(std::string(L::kind), [](const tensor_source& in, const std::string& prefix) {
      return any_layer<T>(L::load(in, prefix));
    });
  }
  void add(const std::string& kind, loader load) {
    std::lock_guard lock(mutex_);
    loaders_[kind] = std::move(load);
  }
  /// The loader of `kind`, or an empty function.
  loader find(const std::string& kind) const {
    std::lock_guard lock(mutex_);
    const auto it = loaders_.find(kind);
    return it == loaders_.end() ? loader() : it->second;
  }
  /// "avg_pool2d, conv2d, dense, ...".
  std::string kinds() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [kind, load] : loaders_) out += (out.empty() ? "" : ", ") + kind;
    return out;
  }

  layer_registry() = default;
  layer_registry(const layer_registry& o) : loaders_(o.loaders_) {}
  layer_registry(layer_registry&& o) noexcept : loaders_(std::move(o.loaders_)) {}

 private:
  mutable std::mutex mutex_;
  std::map<std::string, loader, std::less<>> loaders_;
};

/// Registers L (e.g. block_circulant_dense<float>) in layer_registry<L::scalar_type>,
/// so network files of that scalar type may name L::kind.
template <SaveableLayer L>
void register_layer_kind() {
  layer_registry<typename L::scalar_type>::instance().template add<L>();
}

/// For a slimnn kind outside the core, how to register it (networks of `scalar`);
/// else "".
inline std::string unknown_kind_hint(std::string_view kind, std::string_view scalar) {
  if (kind == "block_circulant_dense" || kind == "block_circulant_conv2d")
    return detail::cat(": register it first with slimnn::register_layer_kind<slimnn::", kind, "<", scalar,
                       ">>() from slimnn/circulant/", kind, ".hpp (link slimnn::circulant)");
  return "";
}

}  // namespace slimnn
