// slimnn/core/layer.hpp — the Layer and TrainableLayer concepts.
//
// A Layer maps a (input_shape().size() x batch) matrix to an
// (output_shape().size() x batch) matrix. Contract of each member:
//   scalar_type            float or double
//   input_shape()          requires nothing; ensures a valid shape
//   output_shape()         requires nothing; ensures a valid shape
//   name()                 short kind with scalar, e.g. "dense<float>"
//   forward(x, y) const    y a matrix_view<T>: requires x.rows() == input_shape().size()
//                          and y sized output_shape().size() x x.cols() with contiguous
//                          columns (a matrix or a block of its columns; else
//                          shape_error); writes y only. Deterministic, safe to call from
//                          several threads at once on one object (each thread may fill
//                          its own columns of one output), no heap allocation once
//                          warmed up (per thread).
//   cost()                 stored bytes and per-sample work (see cost.hpp)
// Optional (the library's layers have them all):
//   forward(x, y) const    y a matrix<T>&: resizes y, then the above
//                          (detail::forward_resized).
//   workspace_bytes(b)     bytes of per-thread scratch one forward of a batch of b
//                          takes; a thread that has run it once at b allocates nothing
//                          more for it. workspace_bytes(layer, b) reads it (0 if absent).
//   settings()             string ("784->1024", "block 64"), used in messages.
//
// A TrainableLayer also has (not thread-safe; one training thread per object):
//   forward_train(x, y)    as forward, and keeps what backward needs
//   backward(dy, dx)       requires a preceding forward_train with the same batch;
//                          ensures dx = dL/dx and *adds* dL/dparam into each gradient
//   parameters()           views of every parameter and its gradient, in a fixed order
// Optional: after_update(), called by optimizers after each step so a layer can
// restore its structure (re-quantize, re-project).
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/core/cost.hpp"
#include "slimnn/core/error.hpp"
#include "slimnn/core/shape.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

/// A view of one parameter array and its gradient, owned by a layer.
template <class T>
struct parameter {
  std::string name;     ///< "weight", "bias", ...
  T* value = nullptr;   ///< `size` contiguous values
  T* grad = nullptr;    ///< `size` contiguous gradients, accumulated by backward
  index_t size = 0;
  T lr_scale = T(1);    ///< multiplies the optimizer's learning rate for this array
  bool decay = true;    ///< whether weight decay applies
};

template <class L>
concept Layer = requires(const L& layer, const_matrix_ref<typename L::scalar_type> x,
                         matrix_view<typename L::scalar_type> view) {
  typename L::scalar_type;
  { layer.input_shape() } -> std::same_as<shape>;
  { layer.output_shape() } -> std::same_as<shape>;
  { layer.name() } -> std::convertible_to<std::string>;
  { layer.forward(x, view) };
  { layer.cost() } -> std::same_as<cost>;
};

template <class L>
concept TrainableLayer =
    Layer<L> && requires(L& layer, const_matrix_ref<typename L::scalar_type> x,
                         matrix<typename L::scalar_type>& y) {
      { layer.forward_train(x, y) };
      { layer.backward(x, y) };
      { layer.parameters() } -> std::same_as<std::vector<parameter<typename L::scalar_type>>>;
    };

/// "dense<float>, 784->1024": the layer's kind and, when it has any, its settings.
template <Layer L>
std::string describe(const L& layer) {
  if constexpr (requires { { layer.settings() } -> std::convertible_to<std::string>; }) {
    std::string s = layer.settings();
    if (!s.empty()) return std::string(layer.name()) + ", " + s;
  }
  return std::string(layer.name());
}

/// Per-thread scratch bytes of one layer.forward at batch `batch` (0 for a layer that
/// does not say).
template <Layer L>
std::uint64_t workspace_bytes(const L& layer, index_t batch) {
  if constexpr (requires { { layer.workspace_bytes(batch) } -> std::convertible_to<std::uint64_t>; })
    return layer.workspace_bytes(batch);
  else return 0;
}

/// Sets every gradient to zero.
template <class T>
void zero_grad(const std::vector<parameter<T>>& params) {
  for (const auto& p : params) std::fill(p.grad, p.grad + p.size, T(0));
}

namespace detail {

/// Throws shape_error unless `rows` matches what `layer` expects.
template <Layer L>
void check_input_rows(const L& layer, index_t rows) {
  const shape in = layer.input_shape();
  if (rows != in.size())
    throw shape_error(cat(describe(layer), ": expects ", in.as_input(), ", got ", rows, " rows"));
}

/// Throws shape_error unless `y` is an output view for a batch of `batch`: output size x
/// batch, with contiguous columns (a matrix or a block of its columns).
template <Layer L>
void check_output(const L& layer, const matrix_view<typename L::scalar_type>& y, index_t batch) {
  const shape out = layer.output_shape();
  if (y.rows() != out.size() || y.cols() != batch)
    throw shape_error(cat(describe(layer), ": the output view is ", y.rows(), " x ", y.cols(), ", expected ",
                          out.size(), " x ", batch));
  if (y.cols() > 1 && y.outerStride() != y.rows())
    throw shape_error(cat(describe(layer), ": the output view's columns are ", y.outerStride(),
                          " values apart, not ", y.rows(), " (take whole columns: a matrix or middleCols)"));
}

/// The resizing forward every layer offers beside its view forward: y is resized to
/// output size x x.cols(), then layer.forward(x, view of y, args...).
template <class L, class... Args>
void forward_resized(const L& layer, const_matrix_ref<typename L::scalar_type> x,
                     matrix<typename L::scalar_type>& y, Args&&... args) {
  y.resize(layer.output_shape().size(), x.cols());
  layer.forward(x, matrix_view<typename L::scalar_type>(y), std::forward<Args>(args)...);
}

/// Throws shape_error unless dy matches the layer's output for a batch of `batch`.
template <Layer L>
void check_grad_rows(const L& layer, index_t rows, index_t cols, index_t batch) {
  const shape out = layer.output_shape();
  if (rows != out.size() || cols != batch)
    throw shape_error(cat(describe(layer), ": backward expects a ", out.size(), " x ", batch,
                          " gradient (batch of the last forward_train), got ", rows, " x ", cols));
}

}  // namespace detail
}  // namespace slimnn
