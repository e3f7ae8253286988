// slimnn/detail/im2col.hpp — convolution geometry and the (transposed) im2col kernels.
//
// For an input image x (C x H x W, CHW order) and a k x k kernel with stride s and
// zero padding p, output position q = (oh, ow) reads x[c][oh*s + i - p][ow*s + j - p].
// im2col_rows writes, for a batch of images, the matrix
//   cols(q + P*b, c*k*k + i*k + j)        (P = Ho*Wo rows per image)
// so that cols * W (W: C*k*k x N) gives every output channel of every image in one GEMM.
// col2im_rows is its adjoint (accumulates). Both are O(P * C * k * k) per image.
// conv_backward is the backward pass of a dense convolution built on them (used by every
// convolution whose gradient goes through its dense weight); conv_backward_kept runs it on
// an input kept by an activation store.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <span>
#include <utility>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/error.hpp"
#include "slimnn/core/shape.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn::detail {

struct conv_geometry {
  shape in;
  index_t kernel = 1, stride = 1, padding = 0;

  index_t out_h() const { return (in.h + 2 * padding - kernel) / stride + 1; }
  index_t out_w() const { return (in.w + 2 * padding - kernel) / stride + 1; }
  index_t positions() const { return out_h() * out_w(); }
  index_t patch() const { return in.c * kernel * kernel; }

  /// Throws config_error naming `who` unless the geometry is realisable.
  void validate(const std::string& who) const {
    require_valid(in, who);
    require<config_error>(kernel >= 1, who, ": kernel must be >= 1, got ", kernel);
    require<config_error>(stride >= 1, who, ": stride must be >= 1, got ", stride);
    require<config_error>(padding >= 0, who, ": padding must be >= 0, got ", padding);
    require<config_error>(kernel <= in.h + 2 * padding && kernel <= in.w + 2 * padding, who,
                          ": kernel ", kernel, " does not fit input ", in.str(), " with padding ",
                          padding);
  }
};

/// The output columns [lo, hi) whose kernel column j reads inside the image
/// (0 <= ow * stride + j - padding < in.w); the others read zero padding.
inline std::pair<index_t, index_t> valid_columns(const conv_geometry& g, index_t j) {
  const index_t offset = j - g.padding, wo = g.out_w();
  const index_t lo = offset >= 0 ? 0 : (-offset + g.stride - 1) / g.stride;
  const index_t past = g.in.w - offset;  // ow * stride < past
  const index_t hi = past <= 0 ? 0 : (past - 1) / g.stride + 1;
  return {std::min(lo, wo), std::max(std::min(hi, wo), std::min(lo, wo))};
}

/// cols.block(P*b, 0, P, C*k*k) = im2col of image column x.col(first + b), b < count.
template <class T, class In, class Cols>
void im2col_rows(const conv_geometry& g, const In& x, index_t first, index_t count, Cols& cols) {
  const index_t ho = g.out_h(), wo = g.out_w(), P = ho * wo, k = g.kernel;
  for (index_t b = 0; b < count; ++b) {
    const T* img = x.col(first + b).data();
    for (index_t c = 0; c < g.in.c; ++c)
      for (index_t i = 0; i < k; ++i)
        for (index_t j = 0; j < k; ++j) {
          T* out = &cols(P * b, (c * k + i) * k + j);
          for (index_t oh = 0; oh < ho; ++oh) {
            const index_t ih = oh * g.stride + i - g.padding;
            T* row = out + oh * wo;
            if (ih < 0 || ih >= g.in.h) {
              for (index_t ow = 0; ow < wo; ++ow) row[ow] = T(0);
              continue;
            }
            const T* src = img + (c * g.in.h + ih) * g.in.w;
            const index_t offset = j - g.padding;
            const auto [lo, hi] = valid_columns(g, j);
            std::fill(row, row + lo, T(0));
            if (g.stride == 1) {
              if (lo < hi) std::copy(src + (lo + offset), src + (hi + offset), row + lo);
            } else {
              for (index_t ow = lo; ow < hi; ++ow) row[ow] = src[ow * g.stride + offset];
            }
            std::fill(row + hi, row + wo, T(0));
          }
        }
  }
}

/// Adjoint of im2col_rows: dx.col(first + b) += col2im of cols.block(P*b, 0, P, C*k*k).
template <class T, class Cols, class Out>
void col2im_rows(const conv_geometry& g, const Cols& cols, index_t first, index_t count, Out& dx) {
  const index_t ho = g.out_h(), wo = g.out_w(), P = ho * wo, k = g.kernel;
  for (index_t b = 0; b < count; ++b) {
    T* img = dx.col(first + b).data();
    for (index_t c = 0; c < g.in.c; ++c)
      for (index_t i = 0; i < k; ++i)
        for (index_t j = 0; j < k; ++j) {
          const T* in = &cols(P * b, (c * k + i) * k + j);
          for (index_t oh = 0; oh < ho; ++oh) {
            const index_t ih = oh * g.stride + i - g.padding;
            if (ih < 0 || ih >= g.in.h) continue;
            T* dst = img + (c * g.in.h + ih) * g.in.w;
            const T* row = in + oh * wo;
            const index_t offset = j - g.padding;
            const auto [lo, hi] = valid_columns(g, j);
            for (index_t ow = lo; ow < hi; ++ow) dst[ow * g.stride + offset] += row[ow];
          }
        }
  }
}

/// Samples per im2col chunk so that the chunk's cols matrix stays near `budget` values.
/// The default, 128 Ki values (512 KiB of float), fits the L2 cache of current x86 cores
/// (512 KiB on AMD Zen 1-3, 1-2 MiB on later parts), so the GEMM reads the cols matrix
/// back from L2: at batch 64 this trains the example CNN about 1.3x faster than a 16 MiB
/// chunk (which went to memory and back).
inline index_t im2col_chunk(const conv_geometry& g, index_t batch, index_t budget = index_t(1) << 17) {
  const index_t per_sample = g.positions() * g.patch();
  index_t n = budget / (per_sample > 0 ? per_sample : 1);
  if (n < 1) n = 1;
  return n < batch ? n : batch;
}

/// Backward pass of the convolution y = conv(x, w) + bias, w: C*k*k x N (im2col layout):
/// dw += im2col(x)^T dY, bias_grad += the sums of dy over positions, dx = col2im(dY w^T).
/// `cols` and `dout` are the caller's buffers, kept between calls so that the pass does
/// not reallocate: 2 N C k k P MACs per sample.
template <class T, class Weight, class WeightGrad>
void conv_backward(const conv_geometry& g, const Eigen::Ref<const matrix<T>>& x, const Eigen::Ref<const matrix<T>>& dy,
                   const Weight& w, WeightGrad&& dw, vector<T>& bias_grad, matrix<T>& dx, matrix<T>& cols,
                   matrix<T>& dout) {
  const index_t P = g.positions(), batch = dy.cols(), N = w.cols();
  const index_t chunk = im2col_chunk(g, batch);
  dx.setZero(g.in.size(), batch);
  cols.resize(P * chunk, g.patch());
  dout.resize(P * chunk, N);
  for (index_t first = 0; first < batch; first += chunk) {
    const index_t count = std::min(chunk, batch - first);
    auto c = cols.topRows(P * count);
    auto d = dout.topRows(P * count);
    im2col_rows<T>(g, x, first, count, c);
    for (index_t b = 0; b < count; ++b)
      for (index_t n = 0; n < N; ++n) {
        d.col(n).segment(P * b, P) = dy.col(first + b).segment(n * P, P);
        bias_grad[n] += dy.col(first + b).segment(n * P, P).sum();
      }
    dw.noalias() += c.transpose() * d;
    c.noalias() = d * w.transpose();
    col2im_rows<T>(g, c, first, count, dx);
  }
}

/// conv_backward with the input kept in `input` (core/activation_store.hpp). On a
/// calibration step of an adaptive lossy store this step's weight gradient is taken apart
/// to adapt the store's bound (fan-in C*k*k).
template <class T, class Weight, class WeightGrad>
void conv_backward_kept(const conv_geometry& g, kept_tensor<T>& input, const Eigen::Ref<const matrix<T>>& dy,
                        const Weight& w, WeightGrad&& dw, vector<T>& bias_grad, matrix<T>& dx, matrix<T>& cols,
                        matrix<T>& dout) {
  const gradient_step<T> step(input, std::span<const T>(dw.data(), std::size_t(dw.size())));
  conv_backward<T>(g, input.get(), dy, w, dw, bias_grad, dx, cols, dout);
  if (step.active()) input.adapt(g.patch(), double(dy.norm()), step.norm());
}

}  // namespace slimnn::detail
