// slimnn/layers/flatten.hpp — reinterprets a C x H x W activation as a flat vector.
// Features are stored CHW in every column, so this is a copy with a new shape; it
// exists so that shape checks between a conv stack and a dense layer are explicit.
// File (core/tensor_io.hpp): no tensors; setting input (the shape).
// Thread safety: forward is const and reentrant.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"

namespace slimnn {

template <class T>
class flatten {
 public:
  using scalar_type = T;

  explicit flatten(shape s) : shape_(s) { require_valid(s, "flatten"); }

  shape input_shape() const { return shape_; }
  shape output_shape() const { return shape::flat(shape_.size()); }
  std::string name() const { return std::string("flatten<") + scalar_name<T>() + ">"; }
  std::string settings() const { return shape_.str() + "->" + std::to_string(shape_.size()); }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    y = x;
  }
  std::uint64_t workspace_bytes(index_t) const { return 0; }
  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    forward(x, y);
    batch_ = x.cols();
  }
  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), batch_);
    dx = dy;
  }
  std::vector<parameter<T>> parameters() { return {}; }
  /// Keeps only the batch size, in every activation mode (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) { store.validate(); }

  static constexpr const char* kind = "flatten";
  void save(tensor_sink& out, const std::string& prefix) const { out.put_setting(prefix + "input", shape_); }
  static flatten load(const tensor_source& in, const std::string& prefix) {
    return flatten(in.setting_shape(prefix + "input"));
  }
  slimnn::cost cost() const { return {}; }

 private:
  shape shape_;
  index_t batch_ = 0;
};

static_assert(TrainableLayer<flatten<float>>);

}  // namespace slimnn
