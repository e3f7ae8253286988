// slimnn/layers/pool2d.hpp — max and average pooling over k x k windows.
//
//   max: y[c][oh][ow] = max_{i,j<k} x[c][oh*s+i][ow*s+j]
//   avg: y[c][oh][ow] = (1/k^2) sum_{i,j<k} x[c][oh*s+i][ow*s+j]
// No padding; Ho = (H - k)/s + 1 (floor). Stride defaults to k.
// Shapes: C*H*W x batch -> C*Ho*Wo x batch. Cost: C*Ho*Wo*k^2 compares/adds per sample.
// Backward: max routes dy to the arg-max of each window (first on ties); avg spreads
// dy/k^2 over the window. forward_train of a max pool keeps each maximum's position: an
// index in activation mode none, else a bits_for(k*k)-bit code of its place in the window
// (core/activation_store.hpp). File (core/tensor_io.hpp): no tensors; settings input, kernel,
// stride. Thread safety: forward is const and reentrant.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/detail/bitpack.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/kernels/pool.hpp"

namespace slimnn {

enum class pool_kind { max, average };

template <class T, pool_kind Kind>
class pool2d {
 public:
  using scalar_type = T;

  pool2d(shape input, index_t kernel, index_t stride = 0)
      : in_(input), kernel_(kernel), stride_(stride == 0 ? kernel : stride) {
    const std::string who = kind_name();
    require_valid(input, who);
    detail::require<config_error>(kernel >= 1, who, ": kernel must be >= 1, got ", kernel);
    detail::require<config_error>(stride >= 0, who, ": stride must be >= 1 (or 0 for the kernel size), got ", stride);
    detail::require<config_error>(kernel <= input.h && kernel <= input.w, who, ": kernel ", kernel,
                                  " does not fit input ", input.str());
  }

  shape input_shape() const { return in_; }
  shape output_shape() const {
    return {in_.c, (in_.h - kernel_) / stride_ + 1, (in_.w - kernel_) / stride_ + 1};
  }
  std::string name() const { return kind_name() + "<" + scalar_name<T>() + ">"; }
  std::string settings() const {
    return detail::cat(kernel_, 'x', kernel_, ", stride ", stride_);
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    run(x, y, nullptr);
  }
  std::uint64_t workspace_bytes(index_t) const { return 0; }
  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    detail::check_input_rows(*this, x.rows());
    y.resize(output_shape().size(), x.cols());
    batch_ = x.cols();
    coded_ = Kind == pool_kind::max && store_.mode != activation_mode::none;  // how this step keeps them
    if constexpr (Kind == pool_kind::max) {
      if (!coded_) {
        argmax_.resize(y.rows(), y.cols());
        return run(x, y, argmax_.data());
      }
      auto at = detail::scratch<pool2d, index_t>(y.rows(), y.cols());
      run(x, y, at.data());
      codes_.reset(std::size_t(at.size()), detail::bits_for(std::uint64_t(kernel_ * kernel_)));
      bit_codes::cursor cursor;
      const index_t* where = at.data();
      for_each_window(x.cols(), [&](index_t base) {
        index_t offset = *where++ - base, i = 0;  // offset = i * W + j, i and j < k
        for (; offset >= in_.w; offset -= in_.w) ++i;
        codes_.put(cursor, std::uint32_t(i * kernel_ + offset));
      });
    } else {
      run(x, y, nullptr);
    }
  }
  /// A max pool keeps, per output, where its maximum was: an index in mode none, else a
  /// bits_for(k*k)-bit position in the window (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) {
    store.validate();
    store_ = store;
  }
  kept_memory kept() const {
    if constexpr (Kind == pool_kind::average) return {};
    const auto raw = std::uint64_t(output_shape().size() * batch_) * sizeof(index_t);
    return {coded_ ? codes_.bytes() : raw, raw};
  }
  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), batch_);
    dx = matrix<T>::Zero(in_.size(), dy.cols());
    const shape out = output_shape();
    if constexpr (Kind == pool_kind::max) {
      if (!coded_) {
        for (index_t b = 0; b < dy.cols(); ++b)
          for (index_t o = 0; o < dy.rows(); ++o) dx(argmax_(o, b), b) += dy(o, b);
        return;
      }
      // The window offsets of the k*k positions, then each output's from its code.
      auto offsets = detail::scratch<pool2d, index_t, 1>(kernel_ * kernel_, 1);
      for (index_t p = 0; p < kernel_ * kernel_; ++p) offsets(p) = p / kernel_ * in_.w + p % kernel_;
      bit_codes::cursor cursor;
      index_t b = 0, o = 0;
      for_each_window(dy.cols(), [&](index_t base) {
        dx(base + offsets(codes_.take(cursor)), b) += dy(o, b);
        if (++o == dy.rows()) o = 0, ++b;
      });
      return;
    }
    const T scale = T(1) / T(kernel_ * kernel_);
    for (index_t b = 0; b < dy.cols(); ++b)
      for (index_t c = 0; c < in_.c; ++c)
        for (index_t oh = 0; oh < out.h; ++oh)
          for (index_t ow = 0; ow < out.w; ++ow) {
            const T g = dy((c * out.h + oh) * out.w + ow, b) * scale;
            for (index_t i = 0; i < kernel_; ++i)
              for (index_t j = 0; j < kernel_; ++j)
                dx((c * in_.h + oh * stride_ + i) * in_.w + ow * stride_ + j, b) += g;
          }
  }
  std::vector<parameter<T>> parameters() { return {}; }

  static constexpr const char* kind = Kind == pool_kind::max ? "max_pool2d" : "avg_pool2d";
  void save(tensor_sink& out, const std::string& prefix) const {
    out.put_setting(prefix + "input", in_);
    out.put_setting(prefix + "kernel", kernel_);
    out.put_setting(prefix + "stride", stride_);
  }
  static pool2d load(const tensor_source& in, const std::string& prefix) {
    constexpr std::int64_t limit = std::int64_t(1) << 24;
    return pool2d(in.setting_shape(prefix + "input"), in.setting_int(prefix + "kernel", 1, limit),
                  in.setting_int(prefix + "stride", 1, limit));
  }

  slimnn::cost cost() const {
    const auto windows = std::uint64_t(output_shape().size()), k2 = std::uint64_t(kernel_ * kernel_);
    slimnn::cost c;
    c.adds = windows * (k2 - 1);
    if constexpr (Kind == pool_kind::average) c.mults = windows;
    c.bytes_read = std::uint64_t(in_.size()) * sizeof(T);
    return c;
  }

 private:
  static std::string kind_name() { return Kind == pool_kind::max ? "max_pool2d" : "avg_pool2d"; }

  /// f(input index of the window's top-left value) for every output of every sample, in
  /// the output's order (column-major over the batch).
  template <class F>
  void for_each_window(index_t batch, F&& f) const {
    const shape out = output_shape();
    for (index_t b = 0; b < batch; ++b)
      for (index_t c = 0; c < in_.c; ++c)
        for (index_t oh = 0; oh < out.h; ++oh)
          for (index_t ow = 0, base = (c * in_.h + oh * stride_) * in_.w; ow < out.w; ++ow, base += stride_) f(base);
  }

  /// argmax: null, or output size x batch window maxima positions (column-major).
  void run(const_matrix_ref<T> x, matrix_view<T> y, index_t* argmax) const {
    const shape out = output_shape();
    if (Kind == pool_kind::max && kernel_ == 2 && stride_ == 2) return run_max_2x2(x, y, argmax);
    for (index_t b = 0; b < x.cols(); ++b)
      for (index_t c = 0; c < in_.c; ++c)
        for (index_t oh = 0; oh < out.h; ++oh)
          for (index_t ow = 0; ow < out.w; ++ow) {
            const index_t base = (c * in_.h + oh * stride_) * in_.w + ow * stride_;
            index_t best_at = base;
            T acc = Kind == pool_kind::max ? x(base, b) : T(0);
            for (index_t i = 0; i < kernel_; ++i)
              for (index_t j = 0; j < kernel_; ++j) {
                const index_t at = base + i * in_.w + j;
                if constexpr (Kind == pool_kind::max) {
                  if (x(at, b) > acc) acc = x(at, b), best_at = at;
                } else {
                  acc += x(at, b);
                }
              }
            const index_t o = (c * out.h + oh) * out.w + ow;
            if constexpr (Kind == pool_kind::max) {
              y(o, b) = acc;
              if (argmax) argmax[b * out.size() + o] = best_at;
            } else {
              y(o, b) = acc / T(kernel_ * kernel_);
            }
          }
  }

  /// The common 2x2, stride 2 max pool: the four values of each window compared in the
  /// generic loop's order (first on ties), without its index arithmetic; inference runs
  /// kernels/pool.hpp, training this loop, which also records each maximum's position.
  void run_max_2x2(const_matrix_ref<T> x, matrix_view<T> y, index_t* argmax) const {
    const shape out = output_shape();
    if (!argmax) {  // inference: the vector kernels (the same comparisons, in the same order)
      const isa path = active_isa();
      for (index_t b = 0; b < x.cols(); ++b)
        kernels::max_pool_2x2(path, x.col(b).data(), in_.c, in_.h, in_.w, y.col(b).data());
      return;
    }
    for (index_t b = 0; b < x.cols(); ++b) {
      const T* img = x.col(b).data();
      T* dst = y.col(b).data();
      index_t* at = argmax + b * out.size();
      for (index_t c = 0; c < in_.c; ++c)
        for (index_t oh = 0; oh < out.h; ++oh) {
          const index_t top = (c * in_.h + 2 * oh) * in_.w;
          const T* r0 = img + top;
          const T* r1 = r0 + in_.w;
          const index_t o = (c * out.h + oh) * out.w;
          for (index_t ow = 0; ow < out.w; ++ow) {
            T best = r0[2 * ow];
            index_t where = top + 2 * ow;
            if (r0[2 * ow + 1] > best) best = r0[2 * ow + 1], where = top + 2 * ow + 1;
            if (r1[2 * ow] > best) best = r1[2 * ow], where = top + in_.w + 2 * ow;
            if (r1[2 * ow + 1] > best) best = r1[2 * ow + 1], where = top + in_.w + 2 * ow + 1;
            dst[o + ow] = best;
            at[o + ow] = where;
          }
        }
    }
  }

  shape in_;
  index_t kernel_, stride_;
  index_t batch_ = 0;
  activation_store store_;
  bool coded_ = false;                     // the last forward_train kept codes_, not argmax_
  Eigen::Matrix<index_t, -1, -1> argmax_;  // mode none
  bit_codes codes_;                        // other modes
};

template <class T>
using max_pool2d = pool2d<T, pool_kind::max>;
template <class T>
using avg_pool2d = pool2d<T, pool_kind::average>;

static_assert(TrainableLayer<max_pool2d<float>>);
static_assert(TrainableLayer<avg_pool2d<float>>);

}  // namespace slimnn
