// slimnn/net/layer_registry.hpp — layer kinds -> loaders, for rebuilding networks from files.
//
// layer_registry<T>::instance() maps a layer kind (L::kind, e.g. "crew_dense") to a
// function that rebuilds the layer from a tensor_source (L::load), so a network file
// (slimnn/io/network_io.hpp) can name its layers by kind. The registry starts with the
// core kinds (add_core_layers below, one line per kind). Kinds of other components
// register themselves when their header is part of the program: the block-circulant
// headers do so with
//   inline const bool registered = register_layer_kind<block_circulant_dense>();
// and a program adds its own kinds at run time with
//   slimnn::layer_registry<float>::instance().add<my_layer<float>>();
// unknown_kind_hint() names the header of a slimnn kind that is not registered because
// its component is not included.
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
#include "slimnn/kdconv/decomposed_conv2d.hpp"
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
  registry.template add<kdconv::decomposed_conv2d<T>>();
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

/// Registers Layer<float> and Layer<double>; returns true (for an inline variable that
/// registers a kind when its header is part of the program).
template <template <class> class Layer>
bool register_layer_kind() {
  layer_registry<float>::instance().template add<Layer<float>>();
  layer_registry<double>::instance().template add<Layer<double>>();
  return true;
}

/// For a slimnn kind outside the core, ": include <its header> and link <its component>";
/// else "".
inline std::string unknown_kind_hint(std::string_view kind) {
  if (kind == "block_circulant_dense" || kind == "block_circulant_conv2d")
    return detail::cat(": include slimnn/circulant/", kind, ".hpp and link slimnn::circulant");
  return "";
}

}  // namespace slimnn
