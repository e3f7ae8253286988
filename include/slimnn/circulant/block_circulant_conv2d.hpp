// slimnn/circulant/block_circulant_conv2d.hpp — CirCNN block-circulant 2-D convolution.
//
//   y[n][o] = b[n] + sum_{i,j} sum_c W_ij[n][c] x[c][o + (i, j)]   (stride s, zero padding p)
// For every kernel position (i, j) the (out x in) channel matrix W_ij is block-circulant
// with k x k blocks (first-column convention, see circulant/projection.hpp): channels
// are padded to q*k inputs and p*k outputs and the outputs cropped. Forward, per sample:
// FFT each input pixel's channel blocks once (one batched r2c per sample: q*H*W
// transforms), then for each frequency f the products  Y_f (Ho*Wo x p) = cols_f
// (Ho*Wo x q*K^2) S_f^T, accumulating over input blocks and kernel positions in the
// frequency domain: with stride 1 as one sum of K^2 products on shifted views of the
// zero-padded spectrum image (no im2col; kernels::complex_panel_gemm, dispatched by
// kernel path; see shifted_products), otherwise by an im2col of the
// complex spectra (detail::im2col_rows) and one product;
// finally one batched c2r of the p output blocks of every output pixel, 1/k, and the bias.
// Weights are stored transformed, frequency-major: for each f one p x (q*K^2) complex
// matrix S_f, column jb*K^2 + i*K + j for input block jb and kernel position (i, j).
// Shapes: x (C*H*W x B, CHW) -> y (N*Ho*Wo x B).
// Cost per sample: Ho*Wo*K^2*p*q*(k/2+1) complex MACs (4 real MACs; 1 for the DC and
// Nyquist bins) plus q*H*W + p*Ho*Wo real FFTs of length k; k reals stored per block.
// Backward: dS_f += (a_f/k) G_f^T conj(cols_f), dcols_f = (1/k) G_f conj(S_f) folded
// back by col2im and inverse-transformed (G_f: spectra of the output gradient);
// forward_train keeps only x, through an activation store (core/activation_store.hpp),
// and backward transforms each sample again. The
// spectra's learning rate is scaled by lr_scale() = 1/k by default (each value is shared
// by a k x k block).
// File (core/tensor_io.hpp): the stored spectra, k reals per block (circulant/projection.hpp:
// "<prefix>spectra" [k, q*K*K, p] in T, or "<prefix>spectra_codes" in fixed point) and
// "<prefix>bias" [N]; settings input, out_channels, kernel, stride, padding, block,
// lr_scale, spectrum_bits (+ spectrum_fraction_bits). Reloads to bit-identical outputs.
// Thread safety: forward is const and reentrant (shared FFTW plans, per-thread scratch,
// no allocation once warm); training members are single-threaded.
//
// Component: slimnn::circulant (adds FFTW, which is GPL-licensed).
#pragma once

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/circulant/fft.hpp"
#include "slimnn/circulant/projection.hpp"
#include "slimnn/circulant/settings.hpp"
#include "slimnn/core/conversion.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/detail/im2col.hpp"
#include "slimnn/kernels/complex_gemm.hpp"
#include "slimnn/layers/conv2d.hpp"

namespace slimnn {

template <class T>
class block_circulant_conv2d {
 public:
  using scalar_type = T;
  using complex = std::complex<T>;

  /// All-zero weights and bias.
  block_circulant_conv2d(shape input, conv2d_config config, index_t block,
                         fft_planning planning = fft_planning::estimate)
      : geometry_{input, config.kernel, config.stride, config.padding}, out_channels_(config.out_channels),
        k_(block) {
    const std::string who = name();
    geometry_.validate(who);
    detail::require<config_error>(out_channels_ >= 1, who, ": out_channels must be >= 1, got ", out_channels_);
    detail::require<config_error>(block >= 1, who, ": block size must be >= 1, got ", block);
    detail::require<config_error>(block <= std::max(input.c, out_channels_), who, ": block size ", block,
                                  " is larger than both channel counts (", input.c, " in, ", out_channels_,
                                  " out), so the channels cannot be blocked");
    p_ = (out_channels_ + k_ - 1) / k_;
    q_ = (input.c + k_ - 1) / k_;
    spectra_ = detail::circulant_spectra<T>(k_, p_, q_ * taps());
    bias_ = vector<T>::Zero(out_channels_);
    bias_grad_ = bias_;
    lr_scale_ = T(1) / T(k_);
    const index_t pixels = input.h * input.w, P = geometry_.positions();
    // Input side: channel blocks of every pixel; spectrum image f at f*q*H*W (CHW of q blocks).
    const fft_layout in{.length = k_,
                        .real_stride = pixels,
                        .spectrum_stride = q_ * pixels,
                        .batch = {{q_, k_ * pixels, pixels}, {pixels, 1, 1}}};
    // Output side: Y_f is a Ho*Wo x p column-major matrix at f*p*Ho*Wo.
    const fft_layout out{.length = k_,
                         .real_stride = P,
                         .spectrum_stride = p_ * P,
                         .batch = {{p_, k_ * P, P}, {P, 1, 1}}};
    using dir = typename real_fft<T>::direction;
    in_r2c_ = real_fft<T>(in, dir::forward, planning);
    in_c2r_ = real_fft<T>(in, dir::inverse, planning);
    out_r2c_ = real_fft<T>(out, dir::forward, planning);
    out_c2r_ = real_fft<T>(out, dir::inverse, planning);
  }
  /// First columns uniform in +-sqrt(6 / (C*K^2)) (dense He-uniform marginals), zero bias.
  block_circulant_conv2d(shape input, conv2d_config config, index_t block, rng_t& rng,
                         fft_planning planning = fft_planning::estimate)
      : block_circulant_conv2d(input, config, block, planning) {
    const double bound = std::sqrt(6.0 / double(geometry_.patch()));
    std::uniform_real_distribution<double> u(-bound, bound);
    matrix<T> c(k_, p_ * q_ * taps());
    for (index_t i = 0; i < c.size(); ++i) c.data()[i] = T(u(rng));
    spectra_.set_first_columns(c);
  }

  shape input_shape() const { return geometry_.in; }
  shape output_shape() const { return {out_channels_, geometry_.out_h(), geometry_.out_w()}; }
  std::string name() const { return std::string("block_circulant_conv2d<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    std::string s = detail::cat(geometry_.in.c, "->", out_channels_, ", ", geometry_.kernel, 'x', geometry_.kernel,
                                ", stride ", geometry_.stride, ", pad ", geometry_.padding, ", block ", k_);
    if (spectra_.bits() > 0) s += detail::cat(", Q", spectra_.bits());
    return s;
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    complex* X = detail::fft_scratch<block_circulant_conv2d, complex, 0>(in_spec_stride());
    const isa path = active_isa();  // one kernel path for the whole forward
    for (index_t b = 0; b < x.cols(); ++b) {
      transform_input(x.col(b), X);
      forward_sample(X, y.col(b), path);
    }
  }

  /// One sample at a time: its input and output spectra, the real FFT buffers, and the
  /// zero-padded spectrum planes and wide outputs (stride 1) or the spectral im2col.
  std::uint64_t workspace_bytes(index_t) const {
    const auto& g = geometry_;
    const index_t P = g.positions(), Wp = g.in.w + 2 * g.padding, Hp = g.in.h + 2 * g.padding;
    const index_t products = g.stride == 1 ? q_ * (Hp * Wp + g.kernel - 1) + g.out_h() * Wp * p_ : P * q_ * taps();
    const index_t panels = g.stride == 1 ? taps() * index_t(sizeof(kernels::complex_panel<T>)) : 0;
    return std::uint64_t(panels) + std::uint64_t(in_spec_stride() + out_spec_stride() + products) * sizeof(complex) +
           std::uint64_t(fft_padded<T>(q_ * k_ * g.in.h * g.in.w) + fft_padded<T>(p_ * k_ * P)) * sizeof(T);
  }

  /// Keeps the input as the activation store says; backward transforms each sample again
  /// (q*H*W real FFTs) rather than keeping the spectra.
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
    const index_t P = geometry_.positions(), HW = geometry_.in.h * geometry_.in.w, F = spectra_.frequencies();
    const index_t Q = q_ * taps();
    real_.resize(std::size_t(std::max(fft_padded<T>(p_ * k_ * P), fft_padded<T>(q_ * k_ * HW))));
    input_spectra_.resize(std::size_t(in_spec_stride()));
    grad_spectra_.resize(std::size_t(out_spec_stride()));
    back_spectra_.resize(std::size_t(in_spec_stride()));
    cols_.resize(std::size_t(P * Q));
    dcols_.resize(std::size_t(P * Q));
    dx.resize(geometry_.in.size(), dy.cols());
    const T inv_k = T(1) / T(k_);
    Eigen::Map<matrix<complex>> cols(cols_.data(), P, Q), dcols(dcols_.data(), P, Q);
    const auto x = input_.get();
    complex* X = input_spectra_.data();
    detail::spectral_calibration<T> calibration(input_, spectra_);
    for (index_t b = 0; b < dy.cols(); ++b) {
      transform_input(x.col(b), X);
      load_padded(dy.col(b), real_.data(), p_ * k_ * P);
      out_r2c_.forward(real_.data(), grad_spectra_.data());
      for (index_t n = 0; n < out_channels_; ++n) bias_grad_[n] += dy.col(b).segment(n * P, P).sum();
      std::fill(back_spectra_.begin(), back_spectra_.end(), complex(0));
      for (index_t f = 0; f < F; ++f) {
        const Eigen::Map<const matrix<complex>> Gf(grad_spectra_.data() + f * p_ * P, P, p_);
        im2col(X + f * q_ * HW, cols);
        const T scale = spectra_.multiplicity(f) * inv_k;
        spectra_.grad_at(f).noalias() += complex(scale) * (Gf.transpose() * cols.conjugate());
        calibration.add(scale, Gf);
        dcols.noalias() = complex(inv_k) * (Gf * spectra_.at(f).conjugate());
        Eigen::Map<matrix<complex>> Df(back_spectra_.data() + f * q_ * HW, q_ * HW, 1);
        detail::col2im_rows<complex>(spectral_geometry(), dcols, 0, 1, Df);
      }
      in_c2r_.inverse(back_spectra_.data(), real_.data());
      dx.col(b) = Eigen::Map<const vector<T>>(real_.data(), geometry_.in.size());
    }
    calibration.finish(q_ * k_ * taps());
    spectra_.mask_gradients();
  }

  std::vector<parameter<T>> parameters() {
    return {{"spectra", spectra_.values(), spectra_.grads(), spectra_.size(), lr_scale_},
            {"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false}};
  }
  /// Keeps the self-conjugate bins real (and the fixed-point grid, when set).
  void after_update() { spectra_.enforce_structure(); }

  slimnn::cost cost() const {
    const auto F = std::uint64_t(spectra_.frequencies()), blocks = std::uint64_t(p_ * q_ * taps());
    const auto P = std::uint64_t(geometry_.positions()), HW = std::uint64_t(geometry_.in.h * geometry_.in.w);
    const auto real_bins = std::uint64_t(1 + (k_ % 2 == 0 && k_ > 1 ? 1 : 0));
    slimnn::cost c;
    c.param_bytes = spectra_.stored_bytes() + std::uint64_t(out_channels_) * sizeof(T);
    c.macs = P * blocks * (4 * (F - real_bins) + real_bins);
    const auto [fft_mults, fft_adds] = detail::real_fft_flops(std::uint64_t(k_));
    const auto transforms = HW * std::uint64_t(q_) + P * std::uint64_t(p_);
    c.mults = c.macs + fft_mults * transforms + std::uint64_t(out_channels_) * P;
    c.adds = c.macs + fft_adds * transforms + std::uint64_t(out_channels_) * P;
    c.bytes_read = c.param_bytes + std::uint64_t(geometry_.in.size()) * sizeof(T);
    return c;
  }

  const detail::conv_geometry& geometry() const { return geometry_; }
  index_t out_channels() const { return out_channels_; }
  index_t kernel() const { return geometry_.kernel; }
  index_t block() const { return k_; }
  index_t block_rows() const { return p_; }
  index_t block_cols() const { return q_; }
  index_t frequencies() const { return spectra_.frequencies(); }
  /// S_f, p x (q*K^2) complex, column jb*K^2 + i*K + j.
  Eigen::Map<const matrix<complex>> spectrum(index_t f) const { return spectra_.at(f); }
  /// First columns, k x (p*q*K^2), column ib + p*(jb*K^2 + i*K + j).
  matrix<T> first_columns() const { return spectra_.first_columns(); }
  void set_first_columns(const Eigen::Ref<const matrix<T>>& c) { spectra_.set_first_columns(c); }
  const vector<T>& bias() const { return bias_; }
  vector<T>& bias() { return bias_; }
  T lr_scale() const { return lr_scale_; }
  void set_lr_scale(T s) {
    detail::require<config_error>(s > 0, name(), ": lr_scale must be > 0, got ", s);
    lr_scale_ = s;
  }
  /// Fixed-point mode, as block_circulant_dense::quantize_spectra.
  void quantize_spectra(int bits) {
    detail::require<config_error>(bits == 0 || (bits >= 2 && bits <= 16), name(),
                                  ": fixed-point bits must be in 2..16 (or 0 for floating point), got ", bits);
    spectra_.quantize(bits);
  }
  int spectrum_bits() const { return spectra_.bits(); }

  static constexpr const char* kind = "block_circulant_conv2d";
  void save(tensor_sink& out, const std::string& prefix) const {
    detail::put_conv_settings(out, prefix, geometry_, out_channels_);
    out.put_setting(prefix + "block", k_);
    out.put_setting(prefix + "lr_scale", lr_scale_);
    spectra_.save(out, prefix);
    out.put_vector(prefix + "bias", bias_);
  }
  static block_circulant_conv2d load(const tensor_source& in, const std::string& prefix) {
    const auto [input, config] = detail::get_conv_settings(in, prefix);
    const index_t k = in.setting_int(prefix + "block", 1, std::max(input.c, config.out_channels));
    const index_t p = (config.out_channels + k - 1) / k, q = (input.c + k - 1) / k;
    const auto cols = detail::element_count(in, prefix + "spectra", {std::uint64_t(q), std::uint64_t(config.kernel),
                                                                     std::uint64_t(config.kernel)});
    auto spectra = detail::circulant_spectra<T>::load(in, prefix, k, p, index_t(cols));
    auto bias = in.get_vector<T>(prefix + "bias", config.out_channels);
    block_circulant_conv2d layer(input, config, k);
    layer.spectra_ = std::move(spectra);
    layer.bias_ = std::move(bias);
    layer.lr_scale_ =
        in.setting_real(prefix + "lr_scale", std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::max());
    return layer;
  }

  /// The equivalent reference convolution (expanded, cropped weights and the same bias).
  conv2d<T> to_reference() const {
    conv2d<T> out(geometry_.in, {.out_channels = out_channels_,
                                 .kernel = geometry_.kernel,
                                 .stride = geometry_.stride,
                                 .padding = geometry_.padding});
    const matrix<T> c = first_columns();
    const index_t K = geometry_.kernel, C = geometry_.in.c;
    for (index_t pos = 0; pos < taps(); ++pos) {
      matrix<T> cp(k_, p_ * q_);
      for (index_t jb = 0; jb < q_; ++jb)
        for (index_t ib = 0; ib < p_; ++ib) cp.col(ib + p_ * jb) = c.col(ib + p_ * (jb * taps() + pos));
      const matrix<T> w = circulant_expand<T>(cp, out_channels_, C, k_);
      for (index_t ch = 0; ch < C; ++ch)
        for (index_t n = 0; n < out_channels_; ++n) out.weight()(ch * K * K + pos, n) = w(n, ch);
    }
    out.bias() = bias_;
    return out;
  }

 private:
  index_t taps() const { return geometry_.kernel * geometry_.kernel; }
  index_t in_spec_stride() const {
    return fft_padded<complex>(spectra_.frequencies() * q_ * geometry_.in.h * geometry_.in.w);
  }
  index_t out_spec_stride() const { return fft_padded<complex>(spectra_.frequencies() * p_ * geometry_.positions()); }
  /// The geometry of one frequency's spectrum image: q complex channels of H x W.
  detail::conv_geometry spectral_geometry() const {
    return {shape{q_, geometry_.in.h, geometry_.in.w}, geometry_.kernel, geometry_.stride, geometry_.padding};
  }

  template <class Col>
  static void load_padded(const Col& col, T* out, index_t padded) {
    const index_t n = col.size();
    Eigen::Map<vector<T>>(out, n) = col;
    std::fill(out + n, out + padded, T(0));
  }

  /// X = the spectra of every pixel's channel blocks of one input sample.
  template <class Col>
  void transform_input(const Col& x, complex* X) const {
    T* real = detail::fft_scratch<block_circulant_conv2d, T, 1>(fft_padded<T>(q_ * k_ * geometry_.in.h * geometry_.in.w));
    load_padded(x, real, q_ * k_ * geometry_.in.h * geometry_.in.w);
    in_r2c_.forward(real, X);
  }

  /// cols (Ho*Wo x q*K^2) = im2col of the spectrum image at `Xf`.
  template <class Cols>
  void im2col(const complex* Xf, Cols& cols) const {
    const Eigen::Map<const matrix<complex>> image(Xf, q_ * geometry_.in.h * geometry_.in.w, 1);
    detail::im2col_rows<complex>(spectral_geometry(), image, 0, 1, cols);
  }

  /// Stride 1 without im2col: each channel block's spectrum image is zero-padded to
  /// Hp x Wp, so kernel tap (i, j) of every output position of a "wide" output row
  /// (Wp positions, the last Wp - Wo discarded) reads the padded image shifted by
  /// i*Wp + j, a plain strided view. Per frequency: one kernel call sums the K^2 products
  /// Ywide (Ho*Wp x p) = sum over taps of Xpad[shift] (Ho*Wp x q) S_tap^T in registers,
  /// then the valid columns are kept.
  void shifted_products(const complex* X, complex* Y, isa path) const {
    const auto& g = geometry_;
    const index_t K = g.kernel, H = g.in.h, W = g.in.w, Wp = W + 2 * g.padding, Hp = H + 2 * g.padding;
    const index_t Ho = g.out_h(), Wo = g.out_w(), P = g.positions(), wide = Ho * Wp;
    const index_t plane = Hp * Wp + K - 1;  // + K - 1 zero values read by the last taps' discarded columns
    complex* padded = detail::fft_scratch<block_circulant_conv2d, complex, 3>(q_ * plane);
    complex* wide_data = detail::fft_scratch<block_circulant_conv2d, complex, 5>(wide * p_);
    std::fill(padded, padded + q_ * plane, complex(0));
    Eigen::Map<matrix<complex>> Ywide(wide_data, wide, p_);
    auto* panels = detail::scratch_array<block_circulant_conv2d, kernels::complex_panel<T>>(std::size_t(K * K));
    const kernels::complex_gemm_shape shape{
        .m = wide, .n = p_, .k = q_, .lda = plane, .ldb_k = K * K * p_, .ldb_n = 1, .ldc = wide};
    for (index_t f = 0; f < spectra_.frequencies(); ++f) {
      const complex* Xf = X + f * q_ * H * W;
      for (index_t jb = 0; jb < q_; ++jb)
        for (index_t h = 0; h < H; ++h)
          std::copy(Xf + (jb * H + h) * W, Xf + (jb * H + h + 1) * W,
                    padded + jb * plane + (h + g.padding) * Wp + g.padding);
      const complex* Sf = spectra_.at(f).data();  // p x (q*K^2), column jb*K^2 + tap
      for (index_t tap = 0; tap < K * K; ++tap) panels[tap] = {padded + (tap / K) * Wp + tap % K, Sf + tap * p_};
      kernels::complex_panel_gemm(path, shape, panels, K * K, wide_data);
      Eigen::Map<matrix<complex>> Yf(Y + f * p_ * P, P, p_);
      for (index_t oh = 0; oh < Ho; ++oh) Yf.middleRows(oh * Wo, Wo) = Ywide.middleRows(oh * Wp, Wo);
    }
  }

  /// y (one sample) from the input spectra X.
  template <class Out>
  void forward_sample(const complex* X, Out&& y, isa path) const {
    const index_t P = geometry_.positions(), HW = geometry_.in.h * geometry_.in.w, Q = q_ * taps();
    complex* Y = detail::fft_scratch<block_circulant_conv2d, complex, 2>(out_spec_stride());
    T* real = detail::fft_scratch<block_circulant_conv2d, T, 4>(fft_padded<T>(p_ * k_ * P));
    if (geometry_.stride == 1) {
      shifted_products(X, Y, path);
    } else {
      complex* cols_data = detail::fft_scratch<block_circulant_conv2d, complex, 3>(P * Q);
      Eigen::Map<matrix<complex>> cols(cols_data, P, Q);
      const kernels::complex_gemm_shape shape{.m = P, .n = p_, .k = Q, .lda = P, .ldb_k = p_, .ldb_n = 1, .ldc = P};
      for (index_t f = 0; f < spectra_.frequencies(); ++f) {
        im2col(X + f * q_ * HW, cols);
        const kernels::complex_panel<T> panel{cols_data, spectra_.at(f).data()};
        kernels::complex_panel_gemm(path, shape, &panel, 1, Y + f * p_ * P);
      }
    }
    out_c2r_.inverse(Y, real);
    const T inv_k = T(1) / T(k_);
    for (index_t n = 0; n < out_channels_; ++n)
      y.segment(n * P, P).array() = Eigen::Map<const vector<T>>(real + n * P, P).array() * inv_k + bias_[n];
  }

  detail::conv_geometry geometry_;
  index_t out_channels_, k_, p_ = 0, q_ = 0;
  detail::circulant_spectra<T> spectra_;
  vector<T> bias_, bias_grad_;
  T lr_scale_ = T(1);
  real_fft<T> in_r2c_, in_c2r_, out_r2c_, out_c2r_;
  // training state: the kept input and backward's buffers
  kept_tensor<T> input_;
  fft_vector<complex> input_spectra_, grad_spectra_, back_spectra_, cols_, dcols_;
  fft_vector<T> real_;
};

static_assert(TrainableLayer<block_circulant_conv2d<float>>);
static_assert(TrainableLayer<block_circulant_conv2d<double>>);

/// The block-circulant convolution nearest to `layer` in Frobenius norm: every kernel
/// position's channel matrix projected by diagonal averaging (circulant_project).
template <class T>
conversion<block_circulant_conv2d<T>> compress(const conv2d<T>& layer, const block_circulant_settings& settings) {
  settings.validate();
  const index_t block = settings.block;
  block_circulant_conv2d<T> out(layer.input_shape(),
                                {.out_channels = layer.out_channels(),
                                 .kernel = layer.kernel(),
                                 .stride = layer.stride(),
                                 .padding = layer.padding()},
                                block);
  const index_t K = layer.kernel(), taps = K * K, C = layer.input_shape().c, N = layer.out_channels();
  const index_t p = out.block_rows(), q = out.block_cols();
  matrix<T> c(block, p * q * taps), a(N, C);
  for (index_t pos = 0; pos < taps; ++pos) {
    for (index_t ch = 0; ch < C; ++ch)
      for (index_t n = 0; n < N; ++n) a(n, ch) = layer.weight()(ch * taps + pos, n);
    const matrix<T> cp = circulant_project<T>(a, block);
    for (index_t jb = 0; jb < q; ++jb)
      for (index_t ib = 0; ib < p; ++ib) c.col(ib + p * (jb * taps + pos)) = cp.col(ib + p * jb);
  }
  out.set_first_columns(c);
  out.bias() = layer.bias();
  auto report = make_conversion_report(layer, out);
  return {std::move(out), std::move(report)};
}

}  // namespace slimnn
