// slimnn/smartdeal/smartdeal_dense.hpp — a fully connected layer with SmartDeal weights.
//
//   y = W x + b,  W (outputs x inputs) = per output row o: Ce_o . B_g  (smartdeal_matrix)
// computed in the basis domain: z_r = B_g x_r for every length-s input segment r, then
// y_o = sum of Ce_o(r, j) z_r[j] over the nonzero coefficients (+ b_o).
// Shapes: x (inputs x batch) -> y (outputs x batch).
// Work per sample: G*inputs_pad*s MACs for z plus one MAC per sparse-stage slot
// (smartdeal_matrix::coefficient_macs: every slot of a kept segment, or one per nonzero).
// Batch 1 uses the vectorized gather kernels (smartdeal_matrix::gemv); a batch is
// transposed so every coefficient becomes one axpy over the batch.
// compress(dense, smartdeal_settings) converts a trained dense layer (core/conversion.hpp;
// details: element_density, segment_density); to_reference() is the equivalent dense
// layer, factors().to_dense() its weight exactly in double.
// Training: "basis", "coefficients" (straight-through, see smartdeal_matrix.hpp), "bias";
// after_update() keeps the layer a valid SmartDeal layer with a fixed mask. forward_train
// keeps only the input, through an activation store (core/activation_store.hpp), and
// backward recomputes the basis transform from it.
// File (core/tensor_io.hpp): the packed factors (smartdeal_matrix::save: "<prefix>basis" in T,
// bit-packed U8 "segment_counts", "segment_index", "element_mask", "codes") and
// "<prefix>bias" [outputs]; settings inputs, outputs, basis_width, group_rows,
// min_exponent, max_exponent.
// Thread safety: forward is const and reentrant (per-thread scratch); training members
// are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/layers/dense.hpp"
#include "slimnn/core/conversion.hpp"
#include "slimnn/smartdeal/factorize.hpp"

namespace slimnn {

template <class T>
class smartdeal_dense {
 public:
  using scalar_type = T;

  /// The layer y = factors x + bias (bias: factors.rows() values).
  smartdeal_dense(smartdeal_matrix<T> factors, vector<T> bias) : factors_(std::move(factors)), bias_(std::move(bias)) {
    detail::require<shape_error>(bias_.size() == factors_.rows(), "smartdeal_dense: bias has ", bias_.size(),
                                 " values, the weights have ", factors_.rows(), " rows");
    bias_grad_ = vector<T>::Zero(bias_.size());
  }

  shape input_shape() const { return shape::flat(factors_.cols()); }
  shape output_shape() const { return shape::flat(factors_.rows()); }
  std::string name() const { return std::string("smartdeal_dense<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    return detail::cat(factors_.cols(), "->", factors_.rows(), ", s ", factors_.basis_width(), ", ",
                       factors_.groups(), factors_.groups() == 1 ? " basis" : " bases", ", segment density ",
                       factors_.segment_density());
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    if (x.cols() == 1) {
      factors_.gemv(x.col(0).data(), y.data());
      y.col(0) += bias_;
      return;
    }
    auto xt = detail::scratch<smartdeal_dense, T, 0>(x.cols(), factors_.padded_cols());
    auto zc = detail::scratch<smartdeal_dense, T, 1>(x.cols(), factors_.groups() * factors_.padded_cols());
    auto yt = detail::scratch<smartdeal_dense, T, 2>(x.cols(), factors_.rows());
    transpose_padded(x, xt);
    factors_.transform(xt, zc);
    factors_.apply(zc, yt);
    y = yt.transpose();
    y.colwise() += bias_;
  }

  /// Batch 1: the padded input and its basis transform (smartdeal_matrix::gemv); a batch:
  /// its transpose, basis transform and transposed output.
  std::uint64_t workspace_bytes(index_t batch) const {
    const auto z = std::uint64_t(factors_.groups() * factors_.padded_cols());
    if (batch == 1) return (std::uint64_t(factors_.padded_cols()) + z) * sizeof(T);
    return std::uint64_t(batch) * (std::uint64_t(factors_.padded_cols()) + z + std::uint64_t(factors_.rows())) *
           sizeof(T);
  }

  /// Keeps the input as the activation store says; backward recomputes its basis
  /// transform (G*inputs_pad*s MACs per sample) rather than keeping it.
  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    forward(x, y);
    input_.keep(x);
  }
  /// How forward_train keeps the input for backward (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) { input_.set_store(store); }
  kept_memory kept() const { return input_.memory(); }
  /// The kept input (its mode and, lossy, the bound in force).
  const kept_tensor<T>& kept_input() const { return input_; }

  /// On a calibration step of an adaptive lossy store, the basis gradient's error model
  /// (fan-in s, |dL/dZc|; smartdeal_matrix::backward) adapts the bound.
  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), input_.cols());
    transpose_padded(input_.get(), xt_);
    factors_.transform(xt_, zc_);
    yt_ = dy.transpose();
    const gradient_step<T> step(input_, factors_.basis_gradient());
    const double dz2 = factors_.backward(xt_, zc_, yt_, dxt_);
    if (step.active()) input_.adapt(factors_.basis_width(), std::sqrt(dz2), step.norm());
    bias_grad_ += dy.rowwise().sum();
    dx = dxt_.leftCols(factors_.cols()).transpose();
  }

  std::vector<parameter<T>> parameters() {
    auto p = factors_.parameters();
    p.push_back({"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false});
    return p;
  }
  void after_update() { factors_.after_update(); }

  /// Stored bytes: the packed factors plus the bias. MACs: basis transform plus one per
  /// nonzero; mults counts only the basis products (the power-of-two products are
  /// exponent adds in the SmartDeal cost model, although this CPU code multiplies).
  slimnn::cost cost() const {
    const auto sparse = factors_.coefficient_macs(), basis = factors_.basis_macs();
    slimnn::cost c;
    c.param_bytes = factors_.stored_bytes() + std::uint64_t(bias_.size()) * sizeof(T);
    c.mults = basis;  // a power-of-two coefficient counts as a shift
    c.adds = basis + sparse;
    c.macs = basis + sparse;
    c.bytes_read = c.param_bytes + std::uint64_t(factors_.cols()) * sizeof(T);
    return c;
  }

  static constexpr const char* kind = "smartdeal_dense";
  void save(tensor_sink& out, const std::string& prefix) const {
    out.put_setting(prefix + "inputs", factors_.cols());
    out.put_setting(prefix + "outputs", factors_.rows());
    out.put_setting(prefix + "basis_width", factors_.basis_width());
    factors_.save(out, prefix);
    out.put_vector(prefix + "bias", bias_);
  }
  static smartdeal_dense load(const tensor_source& in, const std::string& prefix) {
    constexpr std::int64_t limit = std::int64_t(1) << 40;
    const index_t inputs = in.setting_int(prefix + "inputs", 1, limit);
    const index_t outputs = in.setting_int(prefix + "outputs", 1, limit);
    const index_t s = in.setting_int(prefix + "basis_width", 1, inputs);
    auto factors = smartdeal_matrix<T>::load(in, prefix, outputs, inputs, s);
    return smartdeal_dense(std::move(factors), in.get_vector<T>(prefix + "bias", outputs));
  }

  const smartdeal_matrix<T>& factors() const { return factors_; }
  const vector<T>& bias() const { return bias_; }
  vector<T>& bias() { return bias_; }
  /// The equivalent dense layer (the expanded weight rounded to T, the same bias).
  dense<T> to_reference() const { return dense<T>(factors_.to_dense().template cast<T>(), bias_); }

 private:
  template <class X, class Xt>
  void transpose_padded(const X& x, Xt& xt) const {
    xt.resize(x.cols(), factors_.padded_cols());
    xt.leftCols(factors_.cols()) = x.transpose();
    xt.rightCols(factors_.padded_cols() - factors_.cols()).setZero();
  }

  smartdeal_matrix<T> factors_;
  vector<T> bias_, bias_grad_;
  kept_tensor<T> input_;          // kept by forward_train
  matrix<T> xt_, zc_, yt_, dxt_;  // backward scratch
};

static_assert(TrainableLayer<smartdeal_dense<float>>);
static_assert(TrainableLayer<smartdeal_dense<double>>);

/// The SmartDeal layer of `layer`: its weight factored (smartdeal_factorize), its bias kept.
template <class T>
conversion<smartdeal_dense<T>> compress(const dense<T>& layer, const smartdeal_settings& settings) {
  auto f = smartdeal_factorize<T>(layer.weight().template cast<double>(), settings);
  smartdeal_dense<T> out(std::move(f.factors), layer.bias());
  auto report = make_conversion_report(layer, out, detail::smartdeal_details(out.factors()));
  return {std::move(out), std::move(report)};
}

}  // namespace slimnn
