// slimnn/circulant/projection.hpp — block-circulant matrices: projection, expansion and
// the frequency-domain weight store shared by the block-circulant layers.
//
// An m x n matrix is cut into k x k blocks (p = ceil(m/k) block rows, q = ceil(n/k) block
// columns; the last ones are cropped). Each block is circulant, defined by its FIRST
// COLUMN c:  C[r][s] = c[(r - s) mod k].  First columns are held as a k x (p*q) matrix,
// column i + p*j for block (i, j).
//
//   circulant_project(A, k)   Frobenius-optimal projection: c[d] is the mean of the
//                             entries of A on the wrapped diagonal d of the block
//                             (r - s = d mod k). A full block gives the diagonal mean
//                             (1/k) sum_r A[(r + d) mod k][r]; a cropped edge block
//                             averages only the entries that exist, so projecting an
//                             expanded matrix returns it unchanged (idempotent), and
//                             the residual is orthogonal to every cropped shift matrix.
//                             O(m n).
//   circulant_expand(c, m, n, k)  the m x n matrix the first columns define. O(m n).
//
// detail::circulant_spectra<T> stores, for the layers, the half spectra
// S = DFT(c) (k/2+1 complex values per block) FREQUENCY-MAJOR: for each frequency f one
// p x Q complex matrix (Q = q for dense layers, q * kernel^2 for convolutions). The
// imaginary parts of the DC bin (and of the Nyquist bin for even k) are structurally
// zero and kept at zero. It also holds the optional fixed-point (Q-format) rounding of
// the stored spectra (slimnn::uniform_quantizer::fixed_point over all stored values).
// In a file (save/load) each block keeps its k reals in the packed real-FFT order
// r0, r1, i1, r2, i2, ... (r_{k/2} last for even k): "<prefix>spectra" [k, Q, p] in T (value
// t of block (i, j) at [t][j][i]), or in fixed-point mode "<prefix>spectra_codes", the
// same values as bits-bit codes (detail/packed_io.hpp); settings spectrum_bits (0 or
// 2..16) and, in fixed point, spectrum_fraction_bits f (scale 2^-f).
// detail::spectral_calibration adapts a lossy kept input's bound from the spectra's gradient.
// Thread safety: plain values; const members are reentrant.
//
// Component: slimnn::circulant (adds FFTW, which is GPL-licensed).
#pragma once

#include <cmath>
#include <complex>
#include <numbers>
#include <span>
#include <utility>
#include <vector>

#include "slimnn/circulant/fft.hpp"
#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/error.hpp"
#include "slimnn/core/quantize.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/core/types.hpp"
#include "slimnn/detail/packed_io.hpp"

namespace slimnn {

/// Block-circulant projection of `a` (m x n) with block size k: the k x (p*q) first columns.
template <class T>
matrix<T> circulant_project(const Eigen::Ref<const matrix<T>>& a, index_t k) {
  detail::require<config_error>(k >= 1, "circulant_project: block size must be >= 1, got ", k);
  const index_t m = a.rows(), n = a.cols(), p = (m + k - 1) / k, q = (n + k - 1) / k;
  matrix<T> c = matrix<T>::Zero(k, p * q);
  std::vector<double> sum(static_cast<std::size_t>(k)), count(static_cast<std::size_t>(k));
  for (index_t j = 0; j < q; ++j)
    for (index_t i = 0; i < p; ++i) {
      std::fill(sum.begin(), sum.end(), 0.0);
      std::fill(count.begin(), count.end(), 0.0);
      for (index_t s = j * k; s < std::min(n, (j + 1) * k); ++s)
        for (index_t r = i * k; r < std::min(m, (i + 1) * k); ++r) {
          const auto d = std::size_t(((r - s) % k + k) % k);
          sum[d] += double(a(r, s));
          count[d] += 1;
        }
      for (index_t d = 0; d < k; ++d)
        if (count[std::size_t(d)] > 0) c(d, i + p * j) = T(sum[std::size_t(d)] / count[std::size_t(d)]);
    }
  return c;
}

/// The m x n matrix whose k x k blocks are the circulants with first columns `c`.
template <class T>
matrix<T> circulant_expand(const Eigen::Ref<const matrix<T>>& c, index_t m, index_t n, index_t k) {
  detail::require<config_error>(k >= 1, "circulant_expand: block size must be >= 1, got ", k);
  const index_t p = (m + k - 1) / k, q = (n + k - 1) / k;
  detail::require<shape_error>(c.rows() == k && c.cols() == p * q, "circulant_expand: expects ", k, " x ",
                               p * q, " first columns for a ", m, " x ", n, " matrix, got ", c.rows(), " x ",
                               c.cols());
  matrix<T> a(m, n);
  for (index_t s = 0; s < n; ++s)
    for (index_t r = 0; r < m; ++r) a(r, s) = c(((r - s) % k + k) % k, r / k + p * (s / k));
  return a;
}

namespace detail {

template <class T>
class circulant_spectra {
 public:
  using complex = std::complex<T>;
  using cmatrix = matrix<complex>;

  circulant_spectra() = default;
  circulant_spectra(index_t k, index_t rows, index_t cols)
      : k_(k), rows_(rows), cols_(cols), values_(std::size_t(frequencies() * rows * cols)),
        grads_(values_.size()) {}

  index_t block() const { return k_; }
  index_t frequencies() const { return k_ / 2 + 1; }
  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  /// 1 for the self-conjugate bins (DC, and Nyquist for even k), else 2: their weight in
  /// the full Hermitian spectrum.
  T multiplicity(index_t f) const { return (f == 0 || 2 * f == k_) ? T(1) : T(2); }

  Eigen::Map<const cmatrix> at(index_t f) const {
    return Eigen::Map<const cmatrix>(values_.data() + f * rows_ * cols_, rows_, cols_);
  }
  Eigen::Map<cmatrix> grad_at(index_t f) {
    return Eigen::Map<cmatrix>(grads_.data() + f * rows_ * cols_, rows_, cols_);
  }

  /// Real view of the stored spectra and their gradients (interleaved re, im).
  T* values() { return reinterpret_cast<T*>(values_.data()); }
  T* grads() { return reinterpret_cast<T*>(grads_.data()); }
  const T* grads() const { return reinterpret_cast<const T*>(grads_.data()); }
  index_t size() const { return 2 * index_t(values_.size()); }

  /// Sets the spectra from first columns (k x rows*cols, column i + rows*j). O(k^2) per block.
  void set_first_columns(const Eigen::Ref<const matrix<T>>& c) {
    require<shape_error>(c.rows() == k_ && c.cols() == rows_ * cols_, "block-circulant: expects ", k_, " x ",
                         rows_ * cols_, " first columns, got ", c.rows(), " x ", c.cols());
    const auto [cosines, sines] = twiddles();
    const index_t F = frequencies(), blocks = rows_ * cols_;
    for (index_t b = 0; b < blocks; ++b)
      for (index_t f = 0; f < F; ++f) {
        double re = 0, im = 0;
        for (index_t t = 0; t < k_; ++t) {
          const auto w = std::size_t((f * t) % k_);
          re += double(c(t, b)) * cosines[w];
          im -= double(c(t, b)) * sines[w];
        }
        values_[std::size_t(f * blocks + b)] = complex(T(re), T(im));
      }
    enforce_structure();
  }

  /// The first columns the stored spectra define (the inverse of set_first_columns).
  matrix<T> first_columns() const {
    const auto [cosines, sines] = twiddles();
    const index_t F = frequencies(), blocks = rows_ * cols_;
    matrix<T> c(k_, blocks);
    for (index_t b = 0; b < blocks; ++b)
      for (index_t t = 0; t < k_; ++t) {
        double v = 0;
        for (index_t f = 0; f < F; ++f) {
          const auto w = std::size_t((f * t) % k_);
          const complex s = values_[std::size_t(f * blocks + b)];
          v += double(multiplicity(f)) * (double(s.real()) * cosines[w] - double(s.imag()) * sines[w]);
        }
        c(t, b) = T(v / double(k_));
      }
    return c;
  }

  /// Zeroes the imaginary parts of the self-conjugate bins and re-applies the
  /// fixed-point grid when one is set (after every optimizer step).
  void enforce_structure() {
    const index_t blocks = rows_ * cols_;
    for (index_t f = 0; f < frequencies(); ++f)
      if (multiplicity(f) == T(1))
        for (index_t b = 0; b < blocks; ++b) values_[std::size_t(f * blocks + b)].imag(T(0));
    if (bits_ > 0) {
      const uniform_quantizer quant(bits_, scale_);
      T* v = values();
      for (index_t i = 0; i < size(); ++i) v[i] = T(quant.round(double(v[i])));
    }
  }
  /// Zeroes the gradients of the structurally zero imaginary parts.
  void mask_gradients() {
    const index_t blocks = rows_ * cols_;
    for (index_t f = 0; f < frequencies(); ++f)
      if (multiplicity(f) == T(1))
        for (index_t b = 0; b < blocks; ++b) grads_[std::size_t(f * blocks + b)].imag(T(0));
  }

  /// Rounds every stored real and imaginary part to a `bits`-bit Q-format grid chosen
  /// so that the largest magnitude fits (bits in 2..16; 0 returns to floating point).
  void quantize(int bits) {
    if (bits == 0) {
      bits_ = 0;
      return;
    }
    const T* v = values_.empty() ? nullptr : reinterpret_cast<const T*>(values_.data());
    const std::vector<double> all(v, v + size());
    const auto quant = uniform_quantizer::fixed_point(all, bits);
    bits_ = bits;
    scale_ = quant.scale();
    enforce_structure();
  }
  int bits() const { return bits_; }
  double scale() const { return scale_; }

  void save(tensor_sink& out, const std::string& prefix) const {
    const auto n = std::size_t(rows_ * cols_);
    const T* v = reinterpret_cast<const T*>(values_.data());
    std::vector<T> packed(std::size_t(k_) * n);
    for (index_t t = 0; t < k_; ++t)
      for (std::size_t b = 0; b < n; ++b) packed[std::size_t(t) * n + b] = v[packed_index(t, b)];
    out.put_setting(prefix + "spectrum_bits", bits_);
    if (bits_ == 0) {
      out.put_array(prefix + "spectra", {std::uint64_t(k_), std::uint64_t(cols_), std::uint64_t(rows_)}, packed);
    } else {
      out.put_setting(prefix + "spectrum_fraction_bits", -std::ilogb(scale_));
      const uniform_quantizer q(bits_, scale_);
      put_fixed_point(out, prefix + "spectra_codes", std::span<const T>(packed), {&q, 1});
    }
  }
  /// The store save() wrote for k-blocks in a rows x cols grid; format_error on bad content.
  static circulant_spectra load(const tensor_source& in, const std::string& prefix, index_t k, index_t rows,
                                index_t cols) {
    const std::string key = prefix + "spectrum_bits";
    const int bits = int(in.setting_int(key, 0, 16));
    if (bits == 1) in.fail_setting(key, "1 is neither 0 (floating point) nor in 2..16");
    double scale = 1;
    std::vector<T> packed;
    if (bits == 0) {
      packed = in.get<T>(prefix + "spectra", {std::uint64_t(k), std::uint64_t(cols), std::uint64_t(rows)});
    } else {
      scale = std::ldexp(1.0, -int(in.setting_int(prefix + "spectrum_fraction_bits", -60, 60)));
      const std::string name = prefix + "spectra_codes";
      const auto count = element_count(in, name, {std::uint64_t(k), std::uint64_t(cols), std::uint64_t(rows)});
      const uniform_quantizer q(bits, scale);
      packed = get_fixed_point<T>(in, name, count, {&q, 1});
    }
    circulant_spectra s(k, rows, cols);
    s.bits_ = bits;
    s.scale_ = scale;
    const auto n = std::size_t(rows * cols);
    for (index_t t = 0; t < k; ++t)
      for (std::size_t b = 0; b < n; ++b) s.values()[s.packed_index(t, b)] = packed[std::size_t(t) * n + b];
    return s;
  }

  /// Bytes of the stored values in a file: k reals per block (the half spectrum without
  /// its structurally zero imaginary parts) at sizeof(T) or at the fixed-point width (the
  /// Q-format's fraction bits are a setting, not a tensor).
  std::uint64_t stored_bytes() const {
    const auto values = std::uint64_t(rows_ * cols_ * k_);
    if (bits_ > 0) return (values * std::uint64_t(bits_) + 7) / 8;
    return values * sizeof(T);
  }

 private:
  std::pair<std::vector<double>, std::vector<double>> twiddles() const {
    std::vector<double> c(static_cast<std::size_t>(k_)), s(static_cast<std::size_t>(k_));
    for (index_t t = 0; t < k_; ++t) {
      const double angle = 2 * std::numbers::pi * double(t) / double(k_);
      c[std::size_t(t)] = std::cos(angle);
      s[std::size_t(t)] = std::sin(angle);
    }
    return {c, s};
  }

  /// Where value t of block b in the packed real-FFT order (r0, r1, i1, r2, i2, ...) is
  /// in the real view values().
  std::size_t packed_index(index_t t, std::size_t b) const {
    return 2 * (std::size_t((t + 1) / 2 * rows_ * cols_) + b) + (t == 0 || t % 2 == 1 ? 0 : 1);
  }

  index_t k_ = 1, rows_ = 0, cols_ = 0;
  fft_vector<complex> values_, grads_;
  int bits_ = 0;
  double scale_ = 1;
};

/// The adaptive bound's step (COMET's error model, kept_tensor::adapt) for a block-circulant
/// layer's kept input. The spectra's gradient sums, per frequency, (a_f/k) G_f X_f^H;
/// each entry of X is an unnormalised DFT of k kept values, so a pointwise error uniform
/// in [-eb, eb] gives it variance k eb^2/3, and the model takes fan-in = the padded inputs
/// each gradient entry meets per sample times k (q*k, times K^2 taps for a convolution)
/// and |dy| = the norm of all (a_f/k) G_f. Inactive unless the kept input is calibrating:
/// then it copies the gradients once to take this step's apart.
template <class T>
class spectral_calibration {
 public:
  spectral_calibration(kept_tensor<T>& kept, const circulant_spectra<T>& spectra)
      : kept_(kept), step_(kept, std::span<const T>(spectra.grads(), std::size_t(spectra.size()))) {}
  /// One frequency's output-gradient spectra G_f and their scale a_f/k.
  template <class G>
  void add(T scale, const G& g) {
    if (step_.active()) dy2_ += double(scale) * double(scale) * double(g.squaredNorm());
  }
  void finish(index_t fan_in) {
    if (step_.active()) kept_.adapt(fan_in, std::sqrt(dy2_), step_.norm());
  }

 private:
  kept_tensor<T>& kept_;
  gradient_step<T> step_;
  double dy2_ = 0;
};

/// (mults, adds) of one real FFT of length k, estimated as k/2 log2 k and 3k/2 log2 k.
inline std::pair<std::uint64_t, std::uint64_t> real_fft_flops(std::uint64_t k) {
  std::uint64_t lg = 0;
  while ((std::uint64_t(1) << lg) < k) ++lg;
  return {k * lg / 2, 3 * k * lg / 2};
}

/// The transforms of `count` consecutive length-k blocks of one sample (real side:
/// block j at j*k) to a frequency-major spectrum (S_j[f] at f*count + j).
inline fft_layout block_fft_layout(index_t k, index_t count) {
  return {.length = k, .real_stride = 1, .spectrum_stride = count, .batch = {{count, k, 1}}};
}

}  // namespace detail
}  // namespace slimnn
