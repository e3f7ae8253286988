// slimnn/net/any_layer.hpp — a type-erased layer, so a program can choose layers and
// schemes at run time (network<T> holds a list of them).
//
// any_layer<T> wraps any Layer with scalar T by value. Training members forward to
// the wrapped layer when it is a TrainableLayer and throw config_error otherwise; save
// forwards to the wrapped layer when it is a SaveableLayer (core/tensor_io.hpp).
// Copying clones the wrapped layer; assigning a layer of the same type copies it in place.
// Thread safety: as the wrapped layer.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"

namespace slimnn {

template <class T>
class any_layer {
 public:
  using scalar_type = T;

  template <Layer L>
    requires(!std::is_same_v<std::remove_cvref_t<L>, any_layer> &&
             std::is_same_v<typename std::remove_cvref_t<L>::scalar_type, T>)
  any_layer(L layer)  // NOLINT: implicit by design, so `net << dense<float>(...)` works
      : impl_(std::make_unique<model<L>>(std::move(layer))) {}

  any_layer(const any_layer& o) : impl_(o.impl_->clone()) {}
  any_layer(any_layer&&) noexcept = default;
  /// Copies o's layer; into a layer of the same type it assigns in place, reusing the
  /// storage (the trainer refreshes its replicas this way on every step).
  any_layer& operator=(const any_layer& o) {
    if (this != &o && !impl_->assign(*o.impl_)) *this = any_layer(o);
    return *this;
  }
  any_layer& operator=(any_layer&&) noexcept = default;

  shape input_shape() const { return impl_->input_shape(); }
  shape output_shape() const { return impl_->output_shape(); }
  std::string name() const { return impl_->name(); }
  std::string settings() const { return impl_->settings(); }
  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const { impl_->forward(x, y); }
  std::uint64_t workspace_bytes(index_t batch) const { return impl_->workspace_bytes(batch); }
  slimnn::cost cost() const { return impl_->cost(); }

  bool trainable() const { return impl_->trainable(); }
  void forward_train(const_matrix_ref<T> x, matrix<T>& y) { impl_->forward_train(x, y); }
  void backward(const_matrix_ref<T> dy, matrix<T>& dx) { impl_->backward(dy, dx); }
  std::vector<parameter<T>> parameters() { return impl_->parameters(); }
  void after_update() { impl_->after_update(); }
  /// Whether the wrapped layer has set_activation_store (core/activation_store.hpp).
  bool has_activation_store() const { return impl_->has_activation_store(); }
  /// Sets the wrapped layer's store; config_error for a layer without one unless mode none.
  void set_activation_store(const activation_store& store) { impl_->set_activation_store(store); }
  /// What the wrapped layer keeps for backward (zero for a layer that does not say).
  kept_memory kept() const { return impl_->kept(); }

  /// The wrapped layer's file kind (L::kind; its name without "<T>" if it has none).
  std::string kind() const { return impl_->kind(); }
  /// Whether the wrapped layer can be saved (it is a SaveableLayer).
  bool saveable() const { return impl_->saveable(); }
  /// Saves the wrapped layer under `prefix`; config_error if it is not saveable.
  void save(tensor_sink& out, const std::string& prefix) const { impl_->save(out, prefix); }

  /// The wrapped layer if it is an L, else nullptr.
  template <class L>
  L* get() {
    auto* m = dynamic_cast<model<L>*>(impl_.get());
    return m ? &m->layer : nullptr;
  }
  template <class L>
  const L* get() const {
    auto* m = dynamic_cast<const model<L>*>(impl_.get());
    return m ? &m->layer : nullptr;
  }

 private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual std::unique_ptr<concept_t> clone() const = 0;
    virtual bool assign(const concept_t& o) = 0;  // false: o holds another type
    virtual shape input_shape() const = 0;
    virtual shape output_shape() const = 0;
    virtual std::string name() const = 0;
    virtual std::string settings() const = 0;
    virtual void forward(const_matrix_ref<T> x, matrix_view<T> y) const = 0;
    virtual std::uint64_t workspace_bytes(index_t batch) const = 0;
    virtual slimnn::cost cost() const = 0;
    virtual bool trainable() const = 0;
    virtual void forward_train(const_matrix_ref<T> x, matrix<T>& y) = 0;
    virtual void backward(const_matrix_ref<T> dy, matrix<T>& dx) = 0;
    virtual std::vector<parameter<T>> parameters() = 0;
    virtual void after_update() = 0;
    virtual bool has_activation_store() const = 0;
    virtual void set_activation_store(const activation_store& store) = 0;
    virtual kept_memory kept() const = 0;
    virtual std::string kind() const = 0;
    virtual bool saveable() const = 0;
    virtual void save(tensor_sink& out, const std::string& prefix) const = 0;
  };

  template <class L>
  struct model final : concept_t {
    L layer;
    explicit model(L l) : layer(std::move(l)) {}
    std::unique_ptr<concept_t> clone() const override { return std::make_unique<model>(layer); }
    bool assign(const concept_t& o) override {
      if constexpr (std::is_copy_assignable_v<L>) {
        if (const auto* same = dynamic_cast<const model*>(&o)) {
          layer = same->layer;
          return true;
        }
      }
      return false;
    }
    shape input_shape() const override { return layer.input_shape(); }
    shape output_shape() const override { return layer.output_shape(); }
    std::string name() const override { return layer.name(); }
    std::string settings() const override {
      if constexpr (requires { layer.settings(); }) return std::string(layer.settings());
      else return {};
    }
    void forward(const_matrix_ref<T> x, matrix_view<T> y) const override { layer.forward(x, y); }
    std::uint64_t workspace_bytes(index_t batch) const override { return slimnn::workspace_bytes(layer, batch); }
    slimnn::cost cost() const override { return layer.cost(); }
    bool trainable() const override { return TrainableLayer<L>; }
    void forward_train(const_matrix_ref<T> x, matrix<T>& y) override {
      if constexpr (TrainableLayer<L>) layer.forward_train(x, y);
      else not_trainable();
    }
    void backward(const_matrix_ref<T> dy, matrix<T>& dx) override {
      if constexpr (TrainableLayer<L>) layer.backward(dy, dx);
      else not_trainable();
    }
    std::vector<parameter<T>> parameters() override {
      if constexpr (TrainableLayer<L>) return layer.parameters();
      else return {};
    }
    void after_update() override {
      if constexpr (requires { layer.after_update(); }) layer.after_update();
    }
    bool has_activation_store() const override {
      return requires(L& l, const activation_store& s) { l.set_activation_store(s); };
    }
    void set_activation_store(const activation_store& store) override {
      if constexpr (requires { layer.set_activation_store(store); }) layer.set_activation_store(store);
      else if (store.mode != activation_mode::none)
        throw config_error(describe(layer) + ": keeps its activations only in mode none (it has no "
                           "set_activation_store)");
    }
    kept_memory kept() const override {
      if constexpr (requires { { layer.kept() } -> std::same_as<kept_memory>; }) return layer.kept();
      else return {};
    }
    std::string kind() const override {
      if constexpr (requires { L::kind; }) {
        return std::string(L::kind);
      } else {
        const std::string n = layer.name();
        return n.substr(0, n.find('<'));
      }
    }
    bool saveable() const override { return SaveableLayer<L>; }
    void save(tensor_sink& out, const std::string& prefix) const override {
      if constexpr (SaveableLayer<L>) layer.save(out, prefix);
      else throw config_error(describe(layer) + ": cannot be saved (its type has no save/load members, see "
                              "slimnn/core/tensor_io.hpp)");
    }
    [[noreturn]] void not_trainable() const {
      throw config_error(describe(layer) + ": this layer is inference-only and cannot be trained");
    }
  };

  std::unique_ptr<concept_t> impl_;
};

static_assert(TrainableLayer<any_layer<float>>);

}  // namespace slimnn
