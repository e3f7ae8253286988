// slimnn/layers/conv2d.hpp — the reference 2-D convolution (cross-correlation).
//
//   y[n][oh][ow] = b[n] + sum_{c,i,j} W[n][c][i][j] * x[c][oh*s+i-p][ow*s+j-p]
// Shapes: x (C*H*W x batch, CHW) -> y (N*Ho*Wo x batch), Ho = (H + 2p - k)/s + 1.
// Weights are stored as a (C*k*k) x N column-major matrix, i.e. exactly the memory
// layout of PyTorch's [N, C, k, k] tensor. Forward is im2col + one Eigen GEMM per chunk
// of samples: N*C*k*k*Ho*Wo MACs per sample.
// File (core/tensor_io.hpp): "<prefix>weight" [N, C, k, k] and "<prefix>bias" [N], exactly as
// torch.nn.Conv2d stores them; settings input (CxHxW), out_channels, kernel, stride, padding.
// Thread safety: forward is const and reentrant (per-thread scratch); training members
// are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/detail/im2col.hpp"
#include "slimnn/detail/scratch.hpp"

namespace slimnn {

struct conv2d_config {
  index_t out_channels = 1;
  index_t kernel = 3;
  index_t stride = 1;
  index_t padding = 0;
};

namespace detail {

/// The settings every convolution writes: input (CxHxW), out_channels, kernel, stride, padding.
inline void put_conv_settings(tensor_sink& out, const std::string& prefix, const conv_geometry& g,
                              index_t out_channels) {
  out.put_setting(prefix + "input", g.in);
  out.put_setting(prefix + "out_channels", out_channels);
  out.put_setting(prefix + "kernel", g.kernel);
  out.put_setting(prefix + "stride", g.stride);
  out.put_setting(prefix + "padding", g.padding);
}

/// Reads them back; format_error for values out of range or a kernel that does not fit.
inline std::pair<shape, conv2d_config> get_conv_settings(const tensor_source& in, const std::string& prefix) {
  constexpr std::int64_t limit = std::int64_t(1) << 24;
  const shape input = in.setting_shape(prefix + "input");
  const conv2d_config c{.out_channels = in.setting_int(prefix + "out_channels", 1, limit),
                        .kernel = in.setting_int(prefix + "kernel", 1, limit),
                        .stride = in.setting_int(prefix + "stride", 1, limit),
                        .padding = in.setting_int(prefix + "padding", 0, limit)};
  if (c.kernel > input.h + 2 * c.padding || c.kernel > input.w + 2 * c.padding)
    in.fail_setting(prefix + "kernel", cat(c.kernel, " does not fit input ", input.str(), " with padding ", c.padding));
  return {input, c};
}

}  // namespace detail

template <class T>
class conv2d {
 public:
  using scalar_type = T;

  /// All-zero weights and bias.
  conv2d(shape input, conv2d_config config)
      : geometry_{input, config.kernel, config.stride, config.padding}, out_channels_(config.out_channels) {
    const std::string who = std::string("conv2d<") + scalar_name<T>() + ">";
    geometry_.validate(who);
    detail::require<config_error>(out_channels_ >= 1, who, ": out_channels must be >= 1, got ",
                                  out_channels_);
    weight_ = matrix<T>::Zero(geometry_.patch(), out_channels_);
    weight_grad_ = weight_;
    bias_ = vector<T>::Zero(out_channels_);
    bias_grad_ = bias_;
  }
  /// The convolution of `geometry` with these weights ((C*k*k) x N) and bias (N): what a
  /// compressed convolution's to_reference() returns.
  conv2d(const detail::conv_geometry& geometry, matrix<T> weight, vector<T> bias)
      : conv2d(geometry.in, {.out_channels = weight.cols(), .kernel = geometry.kernel, .stride = geometry.stride,
                             .padding = geometry.padding}) {
    detail::require<shape_error>(weight.rows() == geometry_.patch() && bias.size() == out_channels_, name(),
                                 ": weight ", weight.rows(), "x", weight.cols(), " and bias ", bias.size(),
                                 " do not fit ", geometry_.patch(), " taps and ", out_channels_, " outputs");
    weight_ = std::move(weight);
    bias_ = std::move(bias);
  }
  /// He-uniform weights (fan-in C*k*k), zero bias.
  conv2d(shape input, conv2d_config config, rng_t& rng) : conv2d(input, config) {
    const double bound = std::sqrt(6.0 / double(geometry_.patch()));
    std::uniform_real_distribution<double> u(-bound, bound);
    for (index_t i = 0; i < weight_.size(); ++i) weight_.data()[i] = T(u(rng));
  }

  shape input_shape() const { return geometry_.in; }
  shape output_shape() const { return {out_channels_, geometry_.out_h(), geometry_.out_w()}; }
  std::string name() const { return std::string("conv2d<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    return detail::cat(geometry_.in.c, "->", out_channels_, ", ", geometry_.kernel, 'x',
                       geometry_.kernel, ", stride ", geometry_.stride, ", pad ", geometry_.padding);
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    const index_t P = geometry_.positions(), chunk = detail::im2col_chunk(geometry_, x.cols());
    for (index_t first = 0; first < x.cols(); first += chunk) {
      const index_t count = std::min(chunk, x.cols() - first);
      auto cols = detail::scratch<conv2d, T, 0>(P * count, geometry_.patch());
      auto out = detail::scratch<conv2d, T, 1>(P * count, out_channels_);
      detail::im2col_rows<T>(geometry_, x, first, count, cols);
      out.noalias() = cols * weight_;
      for (index_t b = 0; b < count; ++b)
        for (index_t n = 0; n < out_channels_; ++n)
          y.col(first + b).segment(n * P, P).array() = out.col(n).segment(P * b, P).array() + bias_[n];
    }
  }

  /// forward's im2col rows and GEMM outputs for one chunk of samples.
  std::uint64_t workspace_bytes(index_t batch) const {
    const index_t count = detail::im2col_chunk(geometry_, batch);
    return std::uint64_t(geometry_.positions() * count * (geometry_.patch() + out_channels_)) * sizeof(T);
  }

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
    detail::conv_backward_kept<T>(geometry_, input_, dy, weight_, weight_grad_, bias_grad_, dx, cols_, dout_);
  }

  std::vector<parameter<T>> parameters() {
    return {{"weight", weight_.data(), weight_grad_.data(), weight_.size()},
            {"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false}};
  }

  slimnn::cost cost() const {
    const auto w = std::uint64_t(weight_.size()), P = std::uint64_t(geometry_.positions());
    slimnn::cost c;
    c.param_bytes = (w + std::uint64_t(out_channels_)) * sizeof(T);
    c.macs = c.mults = c.adds = w * P;
    c.bytes_read = c.param_bytes + std::uint64_t(geometry_.in.size()) * sizeof(T);
    return c;
  }

  static constexpr const char* kind = "conv2d";
  void save(tensor_sink& out, const std::string& prefix) const {
    detail::put_conv_settings(out, prefix, geometry_, out_channels_);
    const auto n = std::uint64_t(out_channels_), c = std::uint64_t(geometry_.in.c), k = std::uint64_t(geometry_.kernel);
    out.put_array(prefix + "weight", {n, c, k, k}, std::span<const T>(weight_.data(), std::size_t(weight_.size())));
    out.put_vector(prefix + "bias", bias_);
  }
  static conv2d load(const tensor_source& in, const std::string& prefix) {
    constexpr std::int64_t limit = std::int64_t(1) << 24;
    return load(in, prefix, in.setting_shape(prefix + "input"), in.setting_int(prefix + "stride", 1, limit),
                in.setting_int(prefix + "padding", 0, limit));
  }
  /// As load(in, prefix), with the geometry a PyTorch file does not store given by the
  /// caller; out_channels and kernel come from the weight's shape (checked against the
  /// settings when present).
  static conv2d load(const tensor_source& in, const std::string& prefix, shape input, index_t stride,
                     index_t padding) {
    const std::string w = prefix + "weight";
    const auto& s = in.shape_of(w, 4, "[out_channels, in_channels, kernel, kernel]");
    constexpr std::int64_t limit = std::int64_t(1) << 24;
    const auto n = in.optional_int(prefix + "out_channels", 1, limit).value_or(std::int64_t(s[0]));
    const auto k = in.optional_int(prefix + "kernel", 1, limit).value_or(std::int64_t(s[2]));
    if (n < 1 || k < 1) in.fail(w, detail::cat("shape ", shape_string(s), " is empty"));
    if (s[2] != s[3])
      in.fail(w, detail::cat("shape ", shape_string(s), ": the kernel is not square (slimnn's conv2d needs k x k)"));
    const std::uint64_t expected[] = {std::uint64_t(n), std::uint64_t(input.c), std::uint64_t(k), std::uint64_t(k)};
    const auto weight = in.get<T>(w, expected);
    conv2d layer(input, {.out_channels = n, .kernel = k, .stride = stride, .padding = padding});
    std::copy(weight.begin(), weight.end(), layer.weight_.data());
    layer.bias_ = in.get_vector<T>(prefix + "bias", n);
    return layer;
  }

  const detail::conv_geometry& geometry() const { return geometry_; }
  index_t out_channels() const { return out_channels_; }
  index_t kernel() const { return geometry_.kernel; }
  index_t stride() const { return geometry_.stride; }
  index_t padding() const { return geometry_.padding; }
  /// (C*k*k) x N: column n is filter n, rows ordered (c, i, j).
  const matrix<T>& weight() const { return weight_; }
  matrix<T>& weight() { return weight_; }
  const vector<T>& bias() const { return bias_; }
  vector<T>& bias() { return bias_; }
  /// W[n][c][i][j].
  T weight_at(index_t n, index_t c, index_t i, index_t j) const {
    return weight_((c * geometry_.kernel + i) * geometry_.kernel + j, n);
  }

 private:
  detail::conv_geometry geometry_;
  index_t out_channels_;
  matrix<T> weight_, weight_grad_;
  vector<T> bias_, bias_grad_;
  kept_tensor<T> input_;
  matrix<T> cols_, dout_;  // backward's im2col and output-gradient buffers
};

static_assert(TrainableLayer<conv2d<float>>);
static_assert(TrainableLayer<conv2d<double>>);

}  // namespace slimnn
