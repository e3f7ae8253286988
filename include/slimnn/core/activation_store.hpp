// slimnn/core/activation_store.hpp — what layers keep between forward_train and
// backward (COMET's activation store), and how.
//
// A trainable layer keeps its input (dense, conv2d, kdconv, CREW), a ReLU its sign mask,
// a max pool the position of each window's maximum. activation_store says how, per
// network or per layer (set_activation_store):
//   none      today's tensors: float copies, one byte per ReLU flag, one index_t per
//             pooled maximum;
//   lossless  the same values in less room: ReLU flags as 1-bit masks, pooling positions
//             as bits_for(k*k)-bit codes, and a layer's input borrowed from its caller
//             instead of copied (a network's per-layer outputs and the trainer's batch
//             already hold it until backward), so no tensor is stored twice. Training
//             is bit-identical to none.
//   lossy     as lossless, but every kept float tensor is compressed by `codec` with a
//             pointwise bound |x - x'| <= relative_bound * (max x - min x) (per tensor,
//             COMET's value-range-relative bound; a constant tensor uses its magnitude);
//             backward decompresses it. With
//             gradient_target > 0 the bound adapts per layer to COMET's error model
//             (kept_tensor::adapt).
// A borrowed input (lossless) must stay alive and unchanged until backward, and be real
// storage, not an expression evaluated into a temporary: network<T>, sequential and fit
// guarantee it; a caller of forward_train on a lone layer must too.
// kept_tensor<T> is the one holder every layer keeps a float tensor in; gradient_step
// takes a calibration step's gradient apart for its adapt; bit_codes packs masks and
// small codes. activation_codec is the interface of a lossy compressor
// (slimnn/comet/error_bounded.hpp implements it); codec_seconds() adds up the time spent
// compressing and decompressing on every thread.
// Cost: none copies (x.size() values); lossless is free for inputs and packs flags and
// codes in O(n); lossy adds the codec's O(n) passes.
// Thread safety: a store is immutable once set; kept_tensor and bit_codes belong to one
// training thread; codec_seconds() is atomic.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"
#include "slimnn/detail/scratch.hpp"

namespace slimnn {

enum class activation_mode { none, lossless, lossy };

inline const char* mode_name(activation_mode m) {
  return m == activation_mode::none ? "none" : m == activation_mode::lossless ? "lossless" : "lossy";
}

/// A pointwise error-bounded compressor of float and double tensors.
class activation_codec {
 public:
  virtual ~activation_codec() = default;
  virtual std::string name() const = 0;
  /// Writes x into `out` (replacing its contents) so that decompress gives x' with
  /// |x - x'| <= bound everywhere (bound > 0).
  virtual void compress(std::span<const float> x, double bound, std::vector<std::uint8_t>& out) const = 0;
  virtual void compress(std::span<const double> x, double bound, std::vector<std::uint8_t>& out) const = 0;
  /// x' from what compress wrote for x.size() values; format_error on a corrupt stream.
  virtual void decompress(std::span<const std::uint8_t> in, std::span<float> x) const = 0;
  virtual void decompress(std::span<const std::uint8_t> in, std::span<double> x) const = 0;
};

/// How layers keep what backward needs (see the header comment).
struct activation_store {
  activation_mode mode = activation_mode::none;
  double relative_bound = 1e-2;                   ///< lossy: of each tensor's value range (the start, if adaptive)
  std::shared_ptr<const activation_codec> codec;  ///< lossy: the compressor
  /// Lossy, adaptive (> 0): every calibration_interval-th step each layer predicts the
  /// relative error of its weight gradient from its bound (COMET's error model, see
  /// kept_tensor::adapt) and rescales the bound so that the prediction meets this target.
  /// 0: the bound stays fixed.
  double gradient_target = 0;
  int calibration_interval = 10;

  activation_store(activation_mode m = activation_mode::none, double bound = 1e-2,
                   std::shared_ptr<const activation_codec> c = nullptr, double target = 0, int interval = 10)
      : mode(m), relative_bound(bound), codec(std::move(c)), gradient_target(target), calibration_interval(interval) {}

  void validate() const {
    if (mode != activation_mode::lossy) return;
    detail::require<config_error>(codec != nullptr,
                                  "activation_store: lossy mode needs a codec (slimnn::comet::error_bounded() from "
                                  "slimnn/comet/error_bounded.hpp, component slimnn::comet)");
    detail::require<config_error>(relative_bound > 0 && relative_bound < 1,
                                  "activation_store: relative_bound must be in (0, 1), got ", relative_bound);
    detail::require<config_error>(gradient_target >= 0 && gradient_target < 1,
                                  "activation_store: gradient_target must be in [0, 1), got ", gradient_target);
    detail::require<config_error>(calibration_interval >= 1,
                                  "activation_store: calibration_interval must be >= 1, got ", calibration_interval);
  }
  std::string str() const {
    if (mode != activation_mode::lossy) return mode_name(mode);
    return gradient_target > 0 ? detail::cat("lossy adaptive ", gradient_target) : detail::cat("lossy ", relative_bound);
  }
};

/// Seconds spent in activation codecs on all threads since the program started.
inline std::atomic<std::uint64_t>& codec_nanoseconds() {
  static std::atomic<std::uint64_t> ns{0};
  return ns;
}
inline double codec_seconds() { return double(codec_nanoseconds().load()) * 1e-9; }

namespace detail {

/// Adds the lifetime of one codec call to codec_nanoseconds().
class codec_timer {
 public:
  codec_timer() : start_(std::chrono::steady_clock::now()) {}
  ~codec_timer() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_);
    codec_nanoseconds().fetch_add(std::uint64_t(ns.count()), std::memory_order_relaxed);
  }
  codec_timer(const codec_timer&) = delete;
  codec_timer& operator=(const codec_timer&) = delete;

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace detail

/// Bytes a layer keeps for backward, and what mode none would keep for the same.
struct kept_memory {
  std::uint64_t bytes = 0, raw_bytes = 0;
  kept_memory& operator+=(const kept_memory& o) {
    bytes += o.bytes;
    raw_bytes += o.raw_bytes;
    return *this;
  }
};

/// A float tensor kept for backward: copied (none), borrowed (lossless) or compressed
/// (lossy), as the store given to set_store says. get() is the tensor (decompressed into
/// a per-thread buffer in lossy mode, valid until the next get() of any kept_tensor on
/// the thread).
template <class T>
class kept_tensor {
 public:
  void set_store(activation_store store) {
    store.validate();
    store_ = std::move(store);
    bound_ = store_.relative_bound;
    steps_ = 0;
  }
  const activation_store& store() const { return store_; }

  /// Keeps x as the store says. Lossless borrows x's storage, so x must be real storage
  /// (a matrix, a Map or a block of whole columns) that outlives backward; an input with
  /// separated columns is copied instead. A lossy tensor whose bound cannot be a positive
  /// finite number (a range past the type's limits) is copied exactly as well.
  void keep(const_matrix_ref<T> x) {
    const bool contiguous = x.outerStride() == x.rows() || x.cols() <= 1;
    activation_mode mode = store_.mode;
    if (mode == activation_mode::lossless && !contiguous) mode = activation_mode::none;
    double bound = 0;
    if (mode == activation_mode::lossy) {
      const auto [lo, hi] = finite_range(x);
      // The range is halved before the subtraction, so it cannot overflow; a constant
      // tensor takes its magnitude, an all-zero one any bound.
      double range = 2 * (hi / 2 - lo / 2);
      if (!(range > 0)) range = std::max(std::abs(hi), std::abs(lo));
      if (!(range > 0)) range = 1;
      bound = bound_ * range;
      if (!(bound > 0) || !std::isfinite(bound)) mode = activation_mode::none;
    }
    rows_ = x.rows();
    cols_ = x.cols();
    mode_ = mode;
    borrowed_ = nullptr;
    packed_.clear();
    if (mode == activation_mode::none) {
      copy_ = x;
    } else if (mode == activation_mode::lossless) {
      borrowed_ = x.data();
      copy_.resize(0, 0);
    } else {
      calibrating_ = store_.gradient_target > 0 && steps_++ % store_.calibration_interval == 0;
      copy_.resize(0, 0);
      const detail::codec_timer timer;
      const T* data = x.data();
      if (!contiguous) {  // compress a contiguous copy
        auto flat = detail::scratch<kept_tensor, T>(x.rows(), x.cols());
        flat = x;
        data = flat.data();
      }
      absolute_bound_ = bound;
      store_.codec->compress(std::span<const T>(data, std::size_t(x.size())), absolute_bound_, packed_);
      codec_ = store_.codec.get();
    }
  }

  /// The kept tensor, rows x cols.
  Eigen::Map<const matrix<T>> get() const {
    if (mode_ == activation_mode::none) return {copy_.data(), rows_, cols_};
    if (mode_ == activation_mode::lossless) return {borrowed_, rows_, cols_};
    const detail::codec_timer timer;
    auto out = detail::scratch<kept_tensor, T, 1>(rows_, cols_);
    codec_->decompress(packed_, std::span<T>(out.data(), std::size_t(out.size())));
    return {out.data(), rows_, cols_};
  }

  /// Lossy, adaptive: whether backward should call adapt this step.
  bool calibrating() const { return mode_ == activation_mode::lossy && calibrating_; }
  /// COMET's error model. A weight gradient entry sums `fan_in` kept values per sample
  /// (a dense layer's inputs, a convolution's C*k*k patch) times the output gradients;
  /// with the errors spread uniformly in [-eb, eb] (variance eb^2 / 3), its relative error
  /// is about  eb * sqrt(fan_in / 3) * |dy| / |dW|  (Frobenius norms; dW this step's
  /// gradient). The bound is rescaled so that this prediction meets gradient_target: the
  /// error grows linearly with eb. A step moves it at most 2x either way; it stays within
  /// [1e-4, 0.25] of the value range.
  void adapt(index_t fan_in, double dy_norm, double gradient_norm) {
    if (!(gradient_norm > 0) || !(dy_norm > 0) || !(absolute_bound_ > 0)) return;
    const double predicted = absolute_bound_ * std::sqrt(double(fan_in) / 3) * dy_norm / gradient_norm;
    bound_ = std::clamp(bound_ * std::clamp(store_.gradient_target / predicted, 0.5, 2.0), 1e-4, 0.25);
  }
  /// The relative bound in force (lossy).
  double relative_bound() const { return bound_; }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  /// Bytes kept (a borrowed tensor counts whole: it is kept alive for this layer) and
  /// those of a plain copy.
  kept_memory memory() const {
    const auto raw = std::uint64_t(rows_ * cols_) * sizeof(T);
    return {mode_ == activation_mode::lossy ? std::uint64_t(packed_.size()) : raw, raw};
  }

 private:
  /// The smallest and largest finite values (0, 0 if none).
  static std::pair<double, double> finite_range(const_matrix_ref<T> x) {
    T lo = std::numeric_limits<T>::max(), hi = std::numeric_limits<T>::lowest();
    for (index_t b = 0; b < x.cols(); ++b)
      for (index_t i = 0; i < x.rows(); ++i)
        if (std::isfinite(x(i, b))) lo = std::min(lo, x(i, b)), hi = std::max(hi, x(i, b));
    return lo <= hi ? std::pair<double, double>(lo, hi) : std::pair<double, double>(0, 0);
  }

  activation_store store_;
  double bound_ = 1e-2;  // lossy: the relative bound in force
  double absolute_bound_ = 0;  // lossy: the bound of the last keep
  long steps_ = 0;       // lossy, adaptive: keeps since set_store
  bool calibrating_ = false;
  index_t rows_ = 0, cols_ = 0;
  activation_mode mode_ = activation_mode::none;
  matrix<T> copy_;
  const T* borrowed_ = nullptr;
  std::vector<std::uint8_t> packed_;
  const activation_codec* codec_ = nullptr;
};

/// This step's part of an accumulating gradient, for kept_tensor::adapt: made before
/// backward adds to `gradient`, it copies it only when `kept` is calibrating; norm() is
/// then |gradient now - gradient then| (Frobenius).
template <class T>
class gradient_step {
 public:
  gradient_step(const kept_tensor<T>& kept, std::span<const T> gradient) : gradient_(gradient) {
    if (kept.calibrating()) before_.assign(gradient.begin(), gradient.end());
  }
  bool active() const { return !before_.empty(); }
  double norm() const {
    double sum = 0;
    for (std::size_t i = 0; i < before_.size(); ++i) {
      const double d = double(gradient_[i]) - double(before_[i]);
      sum += d * d;
    }
    return std::sqrt(sum);
  }

 private:
  std::span<const T> gradient_;
  std::vector<T> before_;
};

/// n codes of `width` bits each (0..16) packed LSB-first into 64-bit words, 64 / width
/// to a word, rebuilt in place each step (grow-only storage): ReLU masks (width 1) and
/// pooling positions. A cursor walks them in order without divisions (put after reset,
/// take in backward).
class bit_codes {
 public:
  struct cursor {
    std::size_t word = 0;
    int shift = 0;
  };
  void put(cursor& at, std::uint32_t code) {
    if (width_ == 0) return;
    words_[at.word] |= std::uint64_t(code) << at.shift;
    advance(at);
  }
  std::uint32_t take(cursor& at) const {
    if (width_ == 0) return 0;
    const auto code = std::uint32_t(words_[at.word] >> at.shift) & ((1u << width_) - 1u);
    advance(at);
    return code;
  }

  void reset(std::size_t n, int width) {
    detail::require<config_error>(width >= 0 && width <= 16, "bit_codes: width must be in 0..16, got ", width);
    n_ = n;
    width_ = width;
    per_word_ = width > 0 ? 64 / width : 0;
    words_.assign(per_word_ > 0 ? (n + std::size_t(per_word_) - 1) / std::size_t(per_word_) : 0, 0);
  }
  void set(std::size_t i, std::uint32_t code) {
    if (width_ > 0) words_[i / per_word_] |= std::uint64_t(code) << (i % per_word_ * std::size_t(width_));
  }
  std::uint32_t get(std::size_t i) const {
    if (width_ == 0) return 0;
    return std::uint32_t(words_[i / per_word_] >> (i % per_word_ * std::size_t(width_))) & ((1u << width_) - 1u);
  }
  std::size_t size() const { return n_; }
  std::uint64_t bytes() const { return words_.size() * sizeof(std::uint64_t); }
  std::uint64_t* words() { return words_.data(); }
  const std::uint64_t* words() const { return words_.data(); }

 private:
  void advance(cursor& at) const {
    at.shift += width_;
    if (at.shift + width_ > 64) ++at.word, at.shift = 0;
  }

  std::size_t n_ = 0, per_word_ = 0;
  int width_ = 0;
  std::vector<std::uint64_t> words_;
};

}  // namespace slimnn
