// slimnn/layers/dense.hpp — the reference fully connected layer.
//
//   y = W x + b,   W: outputs x inputs (column-major), b: outputs
// Shapes: x (inputs x batch) -> y (outputs x batch).
// Cost: inputs*outputs MACs per sample; batch 1 is an Eigen GEMV (memory-bound once W
// outgrows the caches; inside a parallel_scope, a layer of at least 512 outputs and 2^18
// weights cuts its rows over the threads), batch > 1 a GEMM.
// Backward: dW += dy x^T, db += sum of dy over the batch, dx = W^T dy.
// File (core/tensor_io.hpp): "<prefix>weight" [outputs, inputs] row-major and "<prefix>bias"
// [outputs], exactly as torch.nn.Linear stores them; settings inputs, outputs.
// Thread safety: forward is const and reentrant; training members are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/parallel.hpp"
#include "slimnn/core/tensor_io.hpp"

namespace slimnn {

template <class T>
class dense {
 public:
  using scalar_type = T;

  /// A layer with He-uniform weights (suited to a following relu) and zero bias.
  dense(index_t inputs, index_t outputs, rng_t& rng) : dense(inputs, outputs) {
    const double bound = std::sqrt(6.0 / double(inputs));
    std::uniform_real_distribution<double> u(-bound, bound);
    for (index_t i = 0; i < weight_.size(); ++i) weight_.data()[i] = T(u(rng));
  }
  /// A layer with all-zero weights and bias.
  dense(index_t inputs, index_t outputs) {
    detail::require<config_error>(inputs > 0 && outputs > 0, "dense: sizes must be positive, got ",
                                  inputs, " inputs and ", outputs, " outputs");
    weight_ = matrix<T>::Zero(outputs, inputs);
    bias_ = vector<T>::Zero(outputs);
    weight_grad_ = matrix<T>::Zero(outputs, inputs);
    bias_grad_ = vector<T>::Zero(outputs);
  }
  /// A layer with the given weights (outputs x inputs) and bias (outputs).
  dense(matrix<T> weight, vector<T> bias) : dense(weight.cols(), weight.rows()) {
    detail::require<shape_error>(bias.size() == weight.rows(), "dense: bias has ", bias.size(),
                                 " values, weight has ", weight.rows(), " rows");
    weight_ = std::move(weight);
    bias_ = std::move(bias);
  }

  shape input_shape() const { return shape::flat(weight_.cols()); }
  shape output_shape() const { return shape::flat(weight_.rows()); }
  std::string name() const { return std::string("dense<") + scalar_name<T>() + ">"; }
  std::string settings() const { return detail::cat(weight_.cols(), "->", weight_.rows()); }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    if (x.cols() == 1)  // a large layer cuts its rows over a lent pool (core/parallel.hpp)
      detail::split_range(weight_.rows(), 256, std::max<index_t>(256, (index_t(1) << 17) / weight_.cols()),
                          [&](index_t begin, index_t end) {
                            y.col(0).segment(begin, end - begin).noalias() =
                                weight_.middleRows(begin, end - begin) * x.col(0);
                          });
    else
      y.noalias() = weight_ * x;
    y.colwise() += bias_;
  }

  /// None: Eigen's GEMM packs its blocks in buffers of its own (from malloc).
  std::uint64_t workspace_bytes(index_t) const { return 0; }

  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    forward(x, y);
    input_.keep(x);
  }
  /// How forward_train keeps the input for backward (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) { input_.set_store(store); }
  kept_memory kept() const { return input_.memory(); }
  /// The kept input (its mode and, lossy, the bound in force).
  const kept_tensor<T>& kept_input() const { return input_; }

  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), input_.cols());
    const auto x = input_.get();
    if (input_.calibrating()) {  // this step's gradient apart, for the adaptive bound
      const matrix<T> step = dy * x.transpose();
      weight_grad_ += step;
      input_.adapt(weight_.cols(), dy.norm(), step.norm());
    } else {
      weight_grad_.noalias() += dy * x.transpose();
    }
    bias_grad_ += dy.rowwise().sum();
    dx.resize(weight_.cols(), dy.cols());
    dx.noalias() = weight_.transpose() * dy;
  }

  std::vector<parameter<T>> parameters() {
    return {{"weight", weight_.data(), weight_grad_.data(), weight_.size()},
            {"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false}};
  }

  slimnn::cost cost() const {
    const auto n = std::uint64_t(weight_.size()), out = std::uint64_t(weight_.rows());
    slimnn::cost c;
    c.param_bytes = (n + out) * sizeof(T);
    c.mults = n;
    c.adds = n;
    c.macs = n;
    c.bytes_read = c.param_bytes + std::uint64_t(weight_.cols()) * sizeof(T);
    return c;
  }

  static constexpr const char* kind = "dense";
  void save(tensor_sink& out, const std::string& prefix) const {
    out.put_setting(prefix + "inputs", weight_.cols());
    out.put_setting(prefix + "outputs", weight_.rows());
    out.put_matrix(prefix + "weight", weight_);
    out.put_vector(prefix + "bias", bias_);
  }
  /// Sizes come from the settings when present (a slimnn file), else from the weight's
  /// shape (a PyTorch file); the bias must match.
  static dense load(const tensor_source& in, const std::string& prefix) {
    const std::string w = prefix + "weight";
    const auto& s = in.shape_of(w, 2, "[outputs, inputs]");
    constexpr std::int64_t limit = std::int64_t(1) << 40;
    const auto outputs = in.optional_int(prefix + "outputs", 1, limit).value_or(std::int64_t(s[0]));
    const auto inputs = in.optional_int(prefix + "inputs", 1, limit).value_or(std::int64_t(s[1]));
    if (outputs < 1 || inputs < 1) in.fail(w, detail::cat("shape ", shape_string(s), " is empty"));
    return dense(in.get_matrix<T>(w, outputs, inputs), in.get_vector<T>(prefix + "bias", outputs));
  }

  const matrix<T>& weight() const { return weight_; }
  const vector<T>& bias() const { return bias_; }
  matrix<T>& weight() { return weight_; }
  vector<T>& bias() { return bias_; }

 private:
  matrix<T> weight_, weight_grad_;
  vector<T> bias_, bias_grad_;
  kept_tensor<T> input_;  // kept by forward_train
};

static_assert(TrainableLayer<dense<float>>);
static_assert(TrainableLayer<dense<double>>);

}  // namespace slimnn
