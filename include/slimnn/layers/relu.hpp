// slimnn/layers/relu.hpp — elementwise max(x, 0).
// Shapes: any shape, unchanged. Cost: one compare per value, no parameters.
// Backward: dx = dy where the forward input was positive, else 0. forward_train keeps
// the sign flags: one byte each in activation mode none, one bit otherwise
// (core/activation_store.hpp).
// File (core/tensor_io.hpp): no tensors; setting input (the shape).
// Thread safety: forward is const and reentrant.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"

namespace slimnn {

template <class T>
class relu {
 public:
  using scalar_type = T;

  explicit relu(shape s) : shape_(s) { require_valid(s, "relu"); }

  shape input_shape() const { return shape_; }
  shape output_shape() const { return shape_; }
  std::string name() const { return std::string("relu<") + scalar_name<T>() + ">"; }
  std::string settings() const { return shape_.str(); }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    y = x.cwiseMax(T(0));
  }
  std::uint64_t workspace_bytes(index_t) const { return 0; }
  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    forward(x, y);
    batch_ = x.cols();
    packed_ = store_.mode != activation_mode::none;  // how this step's flags are kept
    if (!packed_) {
      positive_ = (x.array() > T(0));
      return;
    }
    mask_.reset(std::size_t(x.size()), 1);  // 64 flags a word
    if (x.outerStride() == x.rows()) {       // whole words at a time
      const T* v = x.data();
      std::uint64_t* words = mask_.words();
      for (index_t k = 0; k < x.size(); k += 64) {
        std::uint64_t word = 0;
        for (index_t j = 0, n = std::min<index_t>(64, x.size() - k); j < n; ++j)
          word |= std::uint64_t(v[k + j] > T(0)) << j;
        words[k / 64] = word;
      }
      return;
    }
    bit_codes::cursor at;
    for (index_t b = 0; b < x.cols(); ++b)
      for (index_t i = 0; i < x.rows(); ++i) mask_.put(at, x(i, b) > T(0));
  }
  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), batch_);
    if (!packed_) {
      dx = (positive_.template cast<T>() * dy.array()).matrix();
      return;
    }
    dx.resize(dy.rows(), dy.cols());  // flag * dy, as mode none computes it
    if (dy.outerStride() == dy.rows()) {
      const T* g = dy.data();
      T* out = dx.data();
      const std::uint64_t* words = mask_.words();
      for (index_t k = 0; k < dy.size(); k += 64) {
        const std::uint64_t word = words[k / 64];
        for (index_t j = 0, n = std::min<index_t>(64, dy.size() - k); j < n; ++j)
          out[k + j] = T((word >> j) & 1) * g[k + j];
      }
      return;
    }
    bit_codes::cursor at;
    for (index_t b = 0; b < dy.cols(); ++b)
      for (index_t i = 0; i < dy.rows(); ++i) dx(i, b) = T(mask_.take(at)) * dy(i, b);
  }
  /// Mode none keeps one byte per flag, the others one bit (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) {
    store.validate();
    store_ = store;
  }
  kept_memory kept() const {
    const auto flags = std::uint64_t(shape_.size() * batch_);
    return {packed_ ? mask_.bytes() : flags, flags};
  }
  std::vector<parameter<T>> parameters() { return {}; }

  static constexpr const char* kind = "relu";
  void save(tensor_sink& out, const std::string& prefix) const { out.put_setting(prefix + "input", shape_); }
  static relu load(const tensor_source& in, const std::string& prefix) {
    return relu(in.setting_shape(prefix + "input"));
  }

  slimnn::cost cost() const {
    slimnn::cost c;
    c.bytes_read = std::uint64_t(shape_.size()) * sizeof(T);
    return c;
  }

 private:
  shape shape_;
  index_t batch_ = 0;
  activation_store store_;
  bool packed_ = false;  // the last forward_train kept bits (mask_), not bytes (positive_)
  Eigen::Array<bool, Eigen::Dynamic, Eigen::Dynamic> positive_;  // mode none
  bit_codes mask_;                                               // other modes
};

static_assert(TrainableLayer<relu<float>>);

}  // namespace slimnn
