// slimnn/circulant/block_circulant_dense.hpp — CirCNN block-circulant fully connected layer.
//
//   y = W x + b,  W (outputs m x inputs n) made of k x k circulant blocks C_ij with first
//   columns c_ij (C[r][s] = c[(r - s) mod k]), so  y_i = sum_j IFFT(FFT(c_ij) . FFT(x_j)).
// p = ceil(m/k) block rows, q = ceil(n/k) block columns; x is zero-padded to q*k and y
// cropped to m. The weights are stored transformed, FREQUENCY-MAJOR: for each frequency
// f = 0..k/2 one p x q complex matrix S_f (see circulant/projection.hpp). Forward: one
// batched r2c of the q input blocks per sample, one complex product per frequency,
// Y_f = S_f X_f (kernels::complex_panel_gemm, dispatched by kernel path), one batched
// c2r of the p output blocks with 1/k scaling, plus the bias. Shapes: x (n x B) -> y (m x B).
// Cost per sample: (k/2+1) p q complex MACs (4 real MACs each; the DC and Nyquist bins 1)
// plus q + p real FFTs of length k; k reals stored per block (plus the bias).
// Backward (G = FFT of the output-gradient blocks, a_f = 1 or 2 the bin's multiplicity):
//   dS_f += (a_f/k) G_f X_f^H,   dx_j = IFFT((1/k) sum_i conj(S_ij) . G_i),
// both summed in the frequency domain; forward_train keeps only x, through an activation
// store (core/activation_store.hpp), and backward transforms it again. The trainable parameters are the stored spectra
// ("spectra", interleaved re/im) and the bias. Each spectral value is shared by a whole
// k x k block, so its learning rate is scaled by lr_scale() = 1/k by default
// (set_lr_scale changes it; adaptive optimizers such as Adam may prefer 1).
// k = 1 is the dense layer (with the same weights; summation order may differ).
// File (core/tensor_io.hpp): the stored spectra, k reals per block (circulant/projection.hpp:
// "<prefix>spectra" [k, q, p] in T, or "<prefix>spectra_codes" in fixed point) and
// "<prefix>bias" [outputs]; settings inputs, outputs, block, lr_scale, spectrum_bits
// (+ spectrum_fraction_bits). Reloads to bit-identical outputs (FFTW_ESTIMATE plans).
// Thread safety: forward is const and reentrant (shared immutable FFTW plans, per-thread
// scratch, no allocation once warm); training members are single-threaded.
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
#include "slimnn/kernels/complex_gemm.hpp"
#include "slimnn/layers/dense.hpp"

namespace slimnn {

template <class T>
class block_circulant_dense {
 public:
  using scalar_type = T;
  using complex = std::complex<T>;

  /// All-zero weights and bias.
  block_circulant_dense(index_t inputs, index_t outputs, index_t block,
                        fft_planning planning = fft_planning::estimate)
      : inputs_(inputs), outputs_(outputs), k_(block) {
    const std::string who = name();
    detail::require<config_error>(inputs > 0 && outputs > 0, who, ": sizes must be positive, got ", inputs,
                                  " inputs and ", outputs, " outputs");
    detail::require<config_error>(block >= 1, who, ": block size must be >= 1, got ", block);
    detail::require<config_error>(block <= std::max(inputs, outputs), who, ": block size ", block,
                                  " is larger than both dimensions (", inputs, " inputs, ", outputs, " outputs)");
    p_ = (outputs + k_ - 1) / k_;
    q_ = (inputs + k_ - 1) / k_;
    spectra_ = detail::circulant_spectra<T>(k_, p_, q_);
    bias_ = vector<T>::Zero(outputs);
    bias_grad_ = bias_;
    lr_scale_ = T(1) / T(k_);
    using dir = typename real_fft<T>::direction;
    in_r2c_ = real_fft<T>(detail::block_fft_layout(k_, q_), dir::forward, planning);
    in_c2r_ = real_fft<T>(detail::block_fft_layout(k_, q_), dir::inverse, planning);
    out_r2c_ = real_fft<T>(detail::block_fft_layout(k_, p_), dir::forward, planning);
    out_c2r_ = real_fft<T>(detail::block_fft_layout(k_, p_), dir::inverse, planning);
  }
  /// First columns uniform in +-sqrt(6/inputs): the expanded matrix has the marginal
  /// distribution of dense's He-uniform initialisation. Zero bias.
  block_circulant_dense(index_t inputs, index_t outputs, index_t block, rng_t& rng,
                        fft_planning planning = fft_planning::estimate)
      : block_circulant_dense(inputs, outputs, block, planning) {
    const double bound = std::sqrt(6.0 / double(inputs));
    std::uniform_real_distribution<double> u(-bound, bound);
    matrix<T> c(k_, p_ * q_);
    for (index_t i = 0; i < c.size(); ++i) c.data()[i] = T(u(rng));
    spectra_.set_first_columns(c);
  }

  shape input_shape() const { return shape::flat(inputs_); }
  shape output_shape() const { return shape::flat(outputs_); }
  std::string name() const { return std::string("block_circulant_dense<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    std::string s = detail::cat(inputs_, "->", outputs_, ", block ", k_);
    if (spectra_.bits() > 0) s += detail::cat(", Q", spectra_.bits());
    return s;
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    const index_t B = x.cols(), F = spectra_.frequencies();
    T* real = detail::fft_scratch<block_circulant_dense, T, 0>(std::max(in_stride(), out_stride()));
    complex* X = detail::fft_scratch<block_circulant_dense, complex, 1>(B * in_spec_stride());
    complex* Y = detail::fft_scratch<block_circulant_dense, complex, 2>(B * out_spec_stride());
    transform_inputs(x, real, X);
    const kernels::complex_gemm_shape shape{
        .m = p_, .n = B, .k = q_, .lda = p_, .ldb_k = 1, .ldb_n = in_spec_stride(), .ldc = out_spec_stride()};
    const isa path = active_isa();
    for (index_t f = 0; f < F; ++f) {
      const kernels::complex_panel<T> panel{spectra_.at(f).data(), X + f * q_};
      kernels::complex_panel_gemm(path, shape, &panel, 1, Y + f * p_);
    }
    const T inv_k = T(1) / T(k_);
    for (index_t b = 0; b < B; ++b) {
      out_c2r_.inverse(Y + b * out_spec_stride(), real);
      y.col(b) = Eigen::Map<const vector<T>>(real, outputs_) * inv_k + bias_;
    }
  }

  /// One real FFT buffer and the batch's input and output spectra (FFTW-aligned).
  std::uint64_t workspace_bytes(index_t batch) const {
    return std::uint64_t(std::max(in_stride(), out_stride())) * sizeof(T) +
           std::uint64_t(batch * (in_spec_stride() + out_spec_stride())) * sizeof(complex);
  }

  /// Keeps the input as the activation store says; backward transforms it again (q real
  /// FFTs per sample) rather than keeping its spectra.
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
    const index_t B = dy.cols(), F = spectra_.frequencies();
    grad_real_.resize(std::size_t(B * std::max(out_stride(), in_stride())));
    input_spectra_.resize(std::size_t(B * in_spec_stride()));
    grad_spectra_.resize(std::size_t(B * out_spec_stride()));
    back_spectra_.resize(std::size_t(B * in_spec_stride()));
    T* g = grad_real_.data();
    complex* X = input_spectra_.data();
    complex* G = grad_spectra_.data();
    complex* D = back_spectra_.data();
    transform_inputs(input_.get(), g, X);
    for (index_t b = 0; b < B; ++b) {
      load_padded(dy.col(b), g, p_ * k_);
      out_r2c_.forward(g, G + b * out_spec_stride());
    }
    bias_grad_ += dy.rowwise().sum();
    const T inv_k = T(1) / T(k_);
    detail::spectral_calibration<T> calibration(input_, spectra_);
    for (index_t f = 0; f < F; ++f) {
      const auto Gf = spectra_map(G + f * p_, p_, B, out_spec_stride());
      const auto Xf = spectra_map(X + f * q_, q_, B, in_spec_stride());
      const T scale = spectra_.multiplicity(f) * inv_k;
      spectra_.grad_at(f).noalias() += complex(scale) * (Gf * Xf.adjoint());
      calibration.add(scale, Gf);
      auto Df = spectra_map(D + f * q_, q_, B, in_spec_stride());
      Df.noalias() = complex(inv_k) * (spectra_.at(f).adjoint() * Gf);
    }
    calibration.finish(q_ * k_);
    spectra_.mask_gradients();
    dx.resize(inputs_, B);
    for (index_t b = 0; b < B; ++b) {
      in_c2r_.inverse(D + b * in_spec_stride(), g);
      dx.col(b) = Eigen::Map<const vector<T>>(g, inputs_);
    }
  }

  std::vector<parameter<T>> parameters() {
    return {{"spectra", spectra_.values(), spectra_.grads(), spectra_.size(), lr_scale_},
            {"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false}};
  }
  /// Keeps the self-conjugate bins real (and the fixed-point grid, when set).
  void after_update() { spectra_.enforce_structure(); }

  slimnn::cost cost() const {
    const auto F = std::uint64_t(spectra_.frequencies()), pq = std::uint64_t(p_ * q_);
    const auto real_bins = std::uint64_t(1 + (k_ % 2 == 0 && k_ > 1 ? 1 : 0));
    slimnn::cost c;
    c.param_bytes = spectra_.stored_bytes() + std::uint64_t(outputs_) * sizeof(T);
    c.macs = pq * (4 * (F - real_bins) + real_bins);
    const auto [fft_mults, fft_adds] = detail::real_fft_flops(std::uint64_t(k_));
    c.mults = c.macs + fft_mults * std::uint64_t(p_ + q_) + std::uint64_t(outputs_);
    c.adds = c.macs + fft_adds * std::uint64_t(p_ + q_) + std::uint64_t(outputs_);
    c.bytes_read = c.param_bytes + std::uint64_t(inputs_) * sizeof(T);
    return c;
  }

  index_t block() const { return k_; }
  index_t block_rows() const { return p_; }
  index_t block_cols() const { return q_; }
  index_t frequencies() const { return spectra_.frequencies(); }
  /// S_f, the p x q complex matrix of frequency f.
  Eigen::Map<const matrix<complex>> spectrum(index_t f) const { return spectra_.at(f); }
  /// First columns, k x (p*q), column i + p*j for block (i, j).
  matrix<T> first_columns() const { return spectra_.first_columns(); }
  void set_first_columns(const Eigen::Ref<const matrix<T>>& c) { spectra_.set_first_columns(c); }
  const vector<T>& bias() const { return bias_; }
  vector<T>& bias() { return bias_; }
  T lr_scale() const { return lr_scale_; }
  void set_lr_scale(T s) {
    detail::require<config_error>(s > 0, name(), ": lr_scale must be > 0, got ", s);
    lr_scale_ = s;
  }
  /// Fixed-point mode: rounds the stored spectra to a `bits`-bit Q-format (2..16; 0 turns
  /// it off). While on, every optimizer step re-rounds, and cost() counts `bits` per value.
  void quantize_spectra(int bits) {
    detail::require<config_error>(bits == 0 || (bits >= 2 && bits <= 16), name(),
                                  ": fixed-point bits must be in 2..16 (or 0 for floating point), got ", bits);
    spectra_.quantize(bits);
  }
  int spectrum_bits() const { return spectra_.bits(); }

  static constexpr const char* kind = "block_circulant_dense";
  void save(tensor_sink& out, const std::string& prefix) const {
    out.put_setting(prefix + "inputs", inputs_);
    out.put_setting(prefix + "outputs", outputs_);
    out.put_setting(prefix + "block", k_);
    out.put_setting(prefix + "lr_scale", lr_scale_);
    spectra_.save(out, prefix);
    out.put_vector(prefix + "bias", bias_);
  }
  static block_circulant_dense load(const tensor_source& in, const std::string& prefix) {
    constexpr std::int64_t limit = std::int64_t(1) << 40;
    const index_t inputs = in.setting_int(prefix + "inputs", 1, limit);
    const index_t outputs = in.setting_int(prefix + "outputs", 1, limit);
    const index_t k = in.setting_int(prefix + "block", 1, std::max(inputs, outputs));
    auto spectra = detail::circulant_spectra<T>::load(in, prefix, k, (outputs + k - 1) / k, (inputs + k - 1) / k);
    auto bias = in.get_vector<T>(prefix + "bias", outputs);
    block_circulant_dense layer(inputs, outputs, k);
    layer.spectra_ = std::move(spectra);
    layer.bias_ = std::move(bias);
    layer.lr_scale_ =
        in.setting_real(prefix + "lr_scale", std::numeric_limits<T>::denorm_min(), std::numeric_limits<T>::max());
    return layer;
  }

  /// The equivalent dense layer (expanded, cropped weights and the same bias).
  dense<T> to_reference() const {
    return dense<T>(circulant_expand<T>(first_columns(), outputs_, inputs_, k_), bias_);
  }

 private:
  using cmap = Eigen::Map<matrix<complex>, 0, Eigen::OuterStride<>>;

  static cmap spectra_map(complex* data, index_t rows, index_t cols, index_t stride) {
    return cmap(data, rows, cols, Eigen::OuterStride<>(stride));
  }
  static cmap spectra_map(const complex* data, index_t rows, index_t cols, index_t stride) {
    return spectra_map(const_cast<complex*>(data), rows, cols, stride);
  }
  /// Copies a column into an aligned buffer of `padded` values, zero-filling the tail.
  template <class Col>
  static void load_padded(const Col& col, T* out, index_t padded) {
    const index_t n = col.size();
    Eigen::Map<vector<T>>(out, n) = col;
    std::fill(out + n, out + padded, T(0));
  }

  index_t in_stride() const { return fft_padded<T>(q_ * k_); }
  index_t out_stride() const { return fft_padded<T>(p_ * k_); }
  index_t in_spec_stride() const { return fft_padded<complex>(spectra_.frequencies() * q_); }
  index_t out_spec_stride() const { return fft_padded<complex>(spectra_.frequencies() * p_); }

  /// X (sample b at b * in_spec_stride()) = the spectra of each sample's input blocks;
  /// `real` holds in_stride() values.
  void transform_inputs(const_matrix_ref<T> x, T* real, complex* X) const {
    for (index_t b = 0; b < x.cols(); ++b) {
      load_padded(x.col(b), real, q_ * k_);
      in_r2c_.forward(real, X + b * in_spec_stride());
    }
  }


  index_t inputs_, outputs_, k_, p_ = 0, q_ = 0;
  detail::circulant_spectra<T> spectra_;
  vector<T> bias_, bias_grad_;
  T lr_scale_ = T(1);
  real_fft<T> in_r2c_, in_c2r_, out_r2c_, out_c2r_;
  // training state: the kept input and backward's buffers
  kept_tensor<T> input_;
  fft_vector<complex> input_spectra_, grad_spectra_, back_spectra_;
  fft_vector<T> grad_real_;
};

static_assert(TrainableLayer<block_circulant_dense<float>>);
static_assert(TrainableLayer<block_circulant_dense<double>>);

/// The block-circulant layer nearest to `layer` in Frobenius norm (diagonal averaging,
/// circulant_project), with the same bias.
template <class T>
conversion<block_circulant_dense<T>> compress(const dense<T>& layer, const block_circulant_settings& settings) {
  settings.validate();
  block_circulant_dense<T> out(layer.weight().cols(), layer.weight().rows(), settings.block);
  out.set_first_columns(circulant_project<T>(layer.weight(), settings.block));
  out.bias() = layer.bias();
  auto report = make_conversion_report(layer, out);
  return {std::move(out), std::move(report)};
}

}  // namespace slimnn
