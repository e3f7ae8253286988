// slimnn/train/optimizer.hpp — SGD with momentum and Adam(W) over parameter views.
//
//   sgd:  v = mu v + (g + wd w);            w -= lr * s * v
//   adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//         w -= lr * s * (m_hat / (sqrt(v_hat) + eps) + wd w)     (decoupled decay)
// where s is the parameter's lr_scale (block-circulant layers use it for their shared
// weights) and weight decay applies only to parameters with decay = true.
// step() applies the update, zeroes the gradients and calls the model's after_update()
// hook, so structured layers can restore their structure. State is kept per parameter
// position: the parameter list must keep its order and sizes (checked).
// Thread safety: one optimizer per training thread.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cmath>
#include <vector>

#include "slimnn/core/layer.hpp"

namespace slimnn {

namespace detail {

/// Per-parameter state arrays plus the model-level step shared by the optimizers
/// (Derived provides step(const std::vector<parameter<T>>&)).
template <class Derived, class T>
class optimizer_state {
 public:
  /// One update of every parameter of `model`, then its after_update() hook.
  template <class Model>
    requires requires(Model& m) { m.parameters(); }
  void step(Model& model) {
    static_cast<Derived&>(*this).step(model.parameters());
    if constexpr (requires { model.after_update(); }) model.after_update();
  }

 protected:
  /// Sizes `slots` state arrays per parameter on first use; throws if the list changed.
  void bind(const std::vector<parameter<T>>& params, int slots, const char* who) {
    if (state_.empty()) {
      for (const auto& p : params)
        for (int s = 0; s < slots; ++s) state_.push_back(vector<T>::Zero(p.size));
      return;
    }
    require<config_error>(state_.size() == params.size() * std::size_t(slots), who,
                          ": the parameter list changed between steps (", state_.size() / slots,
                          " parameters before, ", params.size(), " now)");
    for (std::size_t i = 0; i < params.size(); ++i)
      require<config_error>(state_[i * slots].size() == params[i].size, who, ": parameter '",
                            params[i].name, "' changed size between steps");
  }
  vector<T>& state(std::size_t param, int slot, int slots) { return state_[param * slots + slot]; }

 private:
  std::vector<vector<T>> state_;
};

template <class T>
using param_map = Eigen::Map<vector<T>>;

}  // namespace detail

template <class T>
class sgd : public detail::optimizer_state<sgd<T>, T> {
 public:
  using detail::optimizer_state<sgd<T>, T>::step;
  struct config {
    T learning_rate = T(0.01);
    T momentum = T(0.9);
    T weight_decay = T(0);
  };
  explicit sgd(config c) : config_(c) {
    detail::require<config_error>(c.learning_rate > 0, "sgd: learning_rate must be > 0");
    detail::require<config_error>(c.momentum >= 0 && c.momentum < 1, "sgd: momentum must be in [0, 1)");
    detail::require<config_error>(c.weight_decay >= 0, "sgd: weight_decay must be >= 0");
  }

  /// Multiplies the learning rate (the trainer's schedule sets it).
  T lr_multiplier = T(1);

  void step(const std::vector<parameter<T>>& params) {
    this->bind(params, 1, "sgd");
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      detail::param_map<T> w(p.value, p.size), g(p.grad, p.size);
      auto& v = this->state(i, 0, 1);
      const T decay = p.decay ? config_.weight_decay : T(0);
      v = config_.momentum * v + g + decay * w;
      w -= (config_.learning_rate * lr_multiplier * p.lr_scale) * v;
      g.setZero();
    }
  }

 private:
  config config_;
};

template <class T>
class adam : public detail::optimizer_state<adam<T>, T> {
 public:
  using detail::optimizer_state<adam<T>, T>::step;
  struct config {
    T learning_rate = T(1e-3);
    T beta1 = T(0.9);
    T beta2 = T(0.999);
    T epsilon = T(1e-8);
    T weight_decay = T(0);  ///< decoupled (AdamW)
  };
  explicit adam(config c) : config_(c) {
    detail::require<config_error>(c.learning_rate > 0, "adam: learning_rate must be > 0");
    detail::require<config_error>(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1,
                                  "adam: beta1 and beta2 must be in [0, 1)");
    detail::require<config_error>(c.epsilon > 0, "adam: epsilon must be > 0");
    detail::require<config_error>(c.weight_decay >= 0, "adam: weight_decay must be >= 0");
  }

  T lr_multiplier = T(1);

  void step(const std::vector<parameter<T>>& params) {
    this->bind(params, 2, "adam");
    ++steps_;
    const T c1 = T(1) - std::pow(config_.beta1, T(steps_));
    const T c2 = T(1) - std::pow(config_.beta2, T(steps_));
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      detail::param_map<T> w(p.value, p.size), g(p.grad, p.size);
      auto& m = this->state(i, 0, 2);
      auto& v = this->state(i, 1, 2);
      m = config_.beta1 * m + (T(1) - config_.beta1) * g;
      v = config_.beta2 * v + (T(1) - config_.beta2) * g.cwiseAbs2();
      const T lr = config_.learning_rate * lr_multiplier * p.lr_scale;
      const T decay = p.decay ? config_.weight_decay : T(0);
      w.array() -= lr * ((m.array() / c1) / ((v.array() / c2).sqrt() + config_.epsilon) + decay * w.array());
      g.setZero();
    }
  }

 private:
  config config_;
  long steps_ = 0;
};

}  // namespace slimnn
