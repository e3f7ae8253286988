// slimnn/smartdeal/smartdeal_conv2d.hpp — a 2-D convolution with SmartDeal filters.
//
//   y[n][q] = b[n] + sum_{c,i,j} W[n][c][i][j] x[c][q + (i, j)]   (as conv2d)
// Each filter n (C*k*k taps, order (c, i, j)) is the (C*k) x k matrix R_n ~ Ce_n . B_g:
// basis width s = k, one segment per (input channel, kernel row). Forward per image,
// stride 1: every input row convolved (1-D, along the row) with the k rows of B_g, which
// gives the basis transforms of all k segments that read that row (below, forward_rows);
// other strides: im2col (positions x C*k*k) and z = every patch row segment times B_g^T.
// Then every output channel accumulates its nonzero coefficients times the matching z
// column over all positions (kernels/smartdeal.hpp's batched stage).
// Shapes: x (C*H*W x batch, CHW) -> y (N*Ho*Wo x batch), like conv2d.
// Work per sample: Ho*Wo * (G*C*k*k*k + sparse-stage slots) MACs (smartdeal_matrix::
// coefficient_macs: the kept segments' slots, or the nonzeros in the element layout), as
// cost() counts it; at stride 1 the basis transform takes only (Ho + k - 1) * Wo * G*C*k*k.
// compress(conv2d, smartdeal_settings) converts a trained conv2d (settings.basis_width
// must equal the kernel size); to_reference() is the equivalent conv2d.
// Training as smartdeal_dense (straight-through coefficients, fixed mask): forward_train
// keeps only the input, through an activation store (core/activation_store.hpp).
// File (core/tensor_io.hpp): the packed factors as smartdeal_dense (basis width = kernel)
// and "<prefix>bias" [N]; settings input, out_channels, kernel, stride, padding, group_rows,
// min_exponent, max_exponent.
// Thread safety: forward is const and reentrant (per-thread scratch); training members
// are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/detail/im2col.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/smartdeal/smartdeal_dense.hpp"

namespace slimnn {

template <class T>
class smartdeal_conv2d {
 public:
  using scalar_type = T;

  /// factors: out_channels x (C*k*k) with basis width k; bias: out_channels values.
  smartdeal_conv2d(shape input, conv2d_config config, smartdeal_matrix<T> factors, vector<T> bias)
      : geometry_{input, config.kernel, config.stride, config.padding},
        factors_(std::move(factors)),
        bias_(std::move(bias)) {
    const std::string who = name();
    geometry_.validate(who);
    detail::require<config_error>(factors_.basis_width() == geometry_.kernel, who, ": basis width ",
                                  factors_.basis_width(), " must equal the kernel size ", geometry_.kernel);
    detail::require<shape_error>(factors_.cols() == geometry_.patch() && factors_.rows() == config.out_channels,
                                 who, ": the factors are ", factors_.rows(), " x ", factors_.cols(), ", expected ",
                                 config.out_channels, " x ", geometry_.patch());
    detail::require<shape_error>(bias_.size() == factors_.rows(), who, ": bias has ", bias_.size(), " values for ",
                                 factors_.rows(), " output channels");
    bias_grad_ = vector<T>::Zero(bias_.size());
    if (geometry_.stride == 1) plane_starts_ = plane_starts();
  }

  shape input_shape() const { return geometry_.in; }
  shape output_shape() const { return {factors_.rows(), geometry_.out_h(), geometry_.out_w()}; }
  std::string name() const { return std::string("smartdeal_conv2d<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    return detail::cat(geometry_.in.c, "->", factors_.rows(), ", ", geometry_.kernel, 'x', geometry_.kernel,
                       ", stride ", geometry_.stride, ", pad ", geometry_.padding, ", segment density ",
                       factors_.segment_density());
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    if (geometry_.stride == 1) return forward_rows(x, y);
    const index_t P = geometry_.positions(), chunk = detail::im2col_chunk(geometry_, x.cols());
    for (index_t first = 0; first < x.cols(); first += chunk) {
      const index_t count = std::min(chunk, x.cols() - first);
      auto cols = detail::scratch<smartdeal_conv2d, T, 0>(P * count, geometry_.patch());
      auto zc = detail::scratch<smartdeal_conv2d, T, 1>(P * count, factors_.groups() * factors_.padded_cols());
      auto out = detail::scratch<smartdeal_conv2d, T, 2>(P * count, factors_.rows());
      detail::im2col_rows<T>(geometry_, x, first, count, cols);
      factors_.transform(cols, zc);
      factors_.apply(zc, out);
      scatter(out, first, count, y);
    }
  }

  /// forward's padded image, row-transform planes, outputs and slot starts (stride 1), or its im2col rows, basis
  /// transforms and sparse-stage outputs for one chunk.
  std::uint64_t workspace_bytes(index_t batch) const {
    if (geometry_.stride == 1)
      return (plane_values() + image_values() + std::uint64_t(stage_positions() * factors_.rows()) + 32) * sizeof(T);
    const index_t rows = geometry_.positions() * detail::im2col_chunk(geometry_, batch);
    return std::uint64_t(rows * (geometry_.patch() + factors_.groups() * factors_.padded_cols() + factors_.rows())) *
           sizeof(T);
  }

  /// Keeps the input as the activation store says; backward recomputes its im2col rows
  /// and basis transform chunk by chunk rather than keeping them (9x and more the input).
  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    forward(x, y);
    input_.keep(x);
  }
  /// How forward_train keeps the input for backward (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) { input_.set_store(store); }
  kept_memory kept() const { return input_.memory(); }
  /// The kept input (its mode and, lossy, the bound in force).
  const kept_tensor<T>& kept_input() const { return input_; }

  /// Chunks of samples as forward's (detail::im2col_chunk); on a calibration step of an
  /// adaptive lossy store, the basis gradient's error model (fan-in s, |dL/dZc|;
  /// smartdeal_matrix::backward) adapts the bound.
  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    const index_t P = geometry_.positions(), batch = input_.cols(), N = factors_.rows();
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), batch);
    const auto x = input_.get();
    const gradient_step<T> step(input_, factors_.basis_gradient());
    double dz2 = 0;
    dx.setZero(geometry_.in.size(), batch);
    const index_t chunk = detail::im2col_chunk(geometry_, batch);
    for (index_t first = 0; first < batch; first += chunk) {
      const index_t count = std::min(chunk, batch - first);
      auto cols = detail::scratch<smartdeal_conv2d, T, 0>(P * count, geometry_.patch());
      auto zc = detail::scratch<smartdeal_conv2d, T, 1>(P * count, factors_.groups() * factors_.padded_cols());
      auto dout = detail::scratch<smartdeal_conv2d, T, 2>(P * count, N);
      auto dcols = detail::scratch<smartdeal_conv2d, T, 3>(P * count, factors_.padded_cols());
      detail::im2col_rows<T>(geometry_, x, first, count, cols);
      factors_.transform(cols, zc);
      for (index_t b = 0; b < count; ++b)
        for (index_t n = 0; n < N; ++n) {
          dout.col(n).segment(P * b, P) = dy.col(first + b).segment(n * P, P);
          bias_grad_[n] += dy.col(first + b).segment(n * P, P).sum();
        }
      dz2 += factors_.backward(cols, zc, dout, dcols);
      detail::col2im_rows<T>(geometry_, dcols, first, count, dx);
    }
    if (step.active()) input_.adapt(factors_.basis_width(), std::sqrt(dz2), step.norm());
  }

  std::vector<parameter<T>> parameters() {
    auto p = factors_.parameters();
    p.push_back({"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false});
    return p;
  }
  void after_update() { factors_.after_update(); }

  /// As smartdeal_dense::cost, times the Ho*Wo output positions.
  slimnn::cost cost() const {
    const auto P = std::uint64_t(geometry_.positions());
    const auto sparse = factors_.coefficient_macs(), basis = factors_.basis_macs();
    slimnn::cost c;
    c.param_bytes = factors_.stored_bytes() + std::uint64_t(bias_.size()) * sizeof(T);
    c.mults = basis * P;  // a power-of-two coefficient counts as a shift
    c.adds = c.macs = (basis + sparse) * P;
    c.bytes_read = c.param_bytes + std::uint64_t(geometry_.in.size()) * sizeof(T);
    return c;
  }

  static constexpr const char* kind = "smartdeal_conv2d";
  void save(tensor_sink& out, const std::string& prefix) const {
    detail::put_conv_settings(out, prefix, geometry_, factors_.rows());
    factors_.save(out, prefix);
    out.put_vector(prefix + "bias", bias_);
  }
  static smartdeal_conv2d load(const tensor_source& in, const std::string& prefix) {
    const auto [input, config] = detail::get_conv_settings(in, prefix);
    const auto patch = detail::element_count(
        in, prefix + "basis", {std::uint64_t(input.c), std::uint64_t(config.kernel), std::uint64_t(config.kernel)});
    auto factors = smartdeal_matrix<T>::load(in, prefix, config.out_channels, index_t(patch), config.kernel);
    return smartdeal_conv2d(input, config, std::move(factors), in.get_vector<T>(prefix + "bias", config.out_channels));
  }

  const detail::conv_geometry& geometry() const { return geometry_; }
  const smartdeal_matrix<T>& factors() const { return factors_; }
  const vector<T>& bias() const { return bias_; }
  vector<T>& bias() { return bias_; }
  /// The equivalent conv2d (weight (C*k*k) x N, PyTorch [N, C, k, k] order, rounded to T).
  conv2d<T> to_reference() const {
    return conv2d<T>(geometry_, factors_.to_dense().transpose().template cast<T>(), bias_);
  }

 private:
  // Stride 1, image by image: the basis transform of a segment (input channel c, kernel
  // row i) at output position (h, w) is U_{g,c,a}[h + i][w] = sum_j B_g[a][j] xp[c][h +
  // i][w + j], with xp the image with its zero padding (Hp x Wp): a 1-D convolution of
  // padded row h + i that the k kernel rows share. So forward convolves the whole padded
  // image, flattened, once per channel, basis and row of B_g (U_{g,c,a}[f] = sum_j
  // B_g[a][j] xp_c[f + j], a plane of Hp Wp values; the last k - 1 columns of each row
  // are not outputs), and the sparse stage reads segment (c, i)'s column a at plane
  // (g, c, a) + i Wp + t for the positions t = h Wp + w, Wp per output row (the
  // Wp - Wo extra ones are dropped): no im2col, a third of the basis products, and long
  // vectorised loops. Rows are stored 16 values apart (Wp rounded up), so that with
  // 64-byte aligned buffers every tile the stage loads is whole cache lines.
  index_t padded_width() const { return (geometry_.in.w + 2 * geometry_.padding + 15) / 16 * 16; }
  index_t plane_size() const { return (geometry_.in.h + 2 * geometry_.padding) * padded_width(); }
  index_t plane_count() const { return factors_.groups() * geometry_.in.c * geometry_.kernel; }
  /// The positions the sparse stage runs: Ho rows of Wp, rounded up to whole tiles of 32
  /// samples, so that it never takes its slow masked steps. The planes end with that many
  /// spare values, the padded image with k, and the outputs go to a scratch first.
  index_t stage_positions() const { return (geometry_.out_h() * padded_width() + 31) / 32 * 32; }
  std::size_t image_values() const { return std::size_t(geometry_.in.c * plane_size() + geometry_.kernel); }
  std::size_t plane_values() const { return std::size_t(plane_count() * plane_size() + stage_positions()); }
  /// A scratch buffer of at least n values whose start is 64-byte aligned (16 spare values).
  template <int Slot>
  static T* aligned_scratch(std::size_t n) {
    T* p = detail::scratch_array<smartdeal_conv2d, T, Slot>(n + 16);
    const auto misalignment = reinterpret_cast<std::uintptr_t>(p) % 64;
    return misalignment == 0 ? p : p + (64 - misalignment) / sizeof(T);
  }

  void forward_rows(const_matrix_ref<T> x, matrix_view<T> y) const {
    const index_t P = geometry_.positions(), n = stage_positions();
    const index_t wo = geometry_.out_w(), wp = padded_width();
    T* planes = aligned_scratch<4>(plane_values());
    std::fill(planes + plane_count() * plane_size(), planes + plane_values(), T(0));  // read past the last plane
    T* image = detail::scratch_array<smartdeal_conv2d, T, 5>(image_values());
    T* out = aligned_scratch<6>(std::size_t(n * factors_.rows()));
    for (index_t b = 0; b < x.cols(); ++b) {
      transform_rows(x.col(b).data(), image, planes);
      factors_.apply(kernels::z_source<T>{planes, plane_starts_.data(), 1, plane_size()}, n, out);  // n x N, column-major
      for (index_t o = 0; o < factors_.rows(); ++o)
        for (index_t h = 0; h < geometry_.out_h(); ++h)
          y.col(b).segment(o * P + h * wo, wo) =
              Eigen::Map<const vector<T>>(out + o * n + h * wp, wo).array() + bias_[o];
    }
  }

  /// Where each slot of the sparse stage starts reading the planes: its column of Zc is
  /// (group g, segment (c, i), basis row a), which reads plane (g, c, a) from row i on.
  /// The slots are fixed when the layer is built (training keeps the mask), so forward
  /// reads them from plane_starts_.
  std::vector<std::uint32_t> plane_starts() const {
    const index_t k = geometry_.kernel, C = geometry_.in.c, padded = factors_.padded_cols();
    const auto& columns = factors_.slot_columns();
    std::vector<std::uint32_t> starts(columns.size());
    for (std::size_t u = 0; u < columns.size(); ++u) {
      const index_t column = columns[u], g = column / padded, segment = column % padded / k, a = column % k;
      starts[u] = std::uint32_t(((g * C + segment / k) * k + a) * plane_size() + segment % k * padded_width());
    }
    return starts;
  }

  /// planes[((g C + c) k + a) plane_size() + f] = sum_j B_g[a][j] xp_c[f + j] for one image
  /// x (C H W), through `image`: xp, x with its zero padding (C Hp Wp, then k zeros).
  void transform_rows(const T* x, T* image, T* planes) const {
    const index_t k = geometry_.kernel, C = geometry_.in.c, H = geometry_.in.h, W = geometry_.in.w;
    const index_t pad = geometry_.padding, wp = padded_width(), size = plane_size();
    std::fill(image, image + image_values(), T(0));
    for (index_t c = 0; c < C; ++c)
      for (index_t r = 0; r < H; ++r)
        std::copy(x + (c * H + r) * W, x + (c * H + r + 1) * W, image + c * size + (r + pad) * wp + pad);
    const matrix<T>& bases = factors_.bases();
    for (index_t g = 0; g < factors_.groups(); ++g)
      for (index_t c = 0; c < C; ++c)
        for (index_t a = 0; a < k; ++a) {
          Eigen::Map<vector<T>> plane(planes + ((g * C + c) * k + a) * size, size);
          const T* in = image + c * size;
          plane = bases(a, g * k) * Eigen::Map<const vector<T>>(in, size);
          for (index_t j = 1; j < k; ++j) plane += bases(a, g * k + j) * Eigen::Map<const vector<T>>(in + j, size);
        }
  }

  /// y.col(first + b).segment(n*P, P) = out.col(n).segment(P*b, P) + bias[n].
  template <class Out>
  void scatter(const Out& out, index_t first, index_t count, matrix_view<T> y) const {
    const index_t P = geometry_.positions();
    for (index_t b = 0; b < count; ++b)
      for (index_t n = 0; n < factors_.rows(); ++n)
        y.col(first + b).segment(n * P, P).array() = out.col(n).segment(P * b, P).array() + bias_[n];
  }

  detail::conv_geometry geometry_;
  smartdeal_matrix<T> factors_;
  vector<T> bias_, bias_grad_;
  kept_tensor<T> input_;                    // kept by forward_train
  std::vector<std::uint32_t> plane_starts_;  // stride 1: plane_starts()
};

static_assert(TrainableLayer<smartdeal_conv2d<float>>);
static_assert(TrainableLayer<smartdeal_conv2d<double>>);

/// The SmartDeal convolution of `layer` (settings.basis_width must equal its kernel size).
template <class T>
conversion<smartdeal_conv2d<T>> compress(const conv2d<T>& layer, const smartdeal_settings& settings) {
  detail::require<config_error>(settings.basis_width == layer.kernel(), "smartdeal_conv2d<", scalar_name<T>(),
                                ">: basis width ", settings.basis_width, " must equal the kernel size ",
                                layer.kernel());
  auto f = smartdeal_factorize<T>(layer.weight().transpose().template cast<double>(), settings);
  smartdeal_conv2d<T> out(layer.input_shape(),
                          {.out_channels = layer.out_channels(), .kernel = layer.kernel(), .stride = layer.stride(),
                           .padding = layer.padding()},
                          std::move(f.factors), layer.bias());
  auto report = make_conversion_report(layer, out, detail::smartdeal_details(out.factors()));
  return {std::move(out), std::move(report)};
}

}  // namespace slimnn
