// slimnn/net/sequential.hpp — a compile-time chain of layers held in one flat tuple.
//
//   sequential net(dense<float>(784, 256, rng), relu<float>(shape::flat(256)),
//                  dense<float>(256, 10, rng));
// The same contract as network<T> (shape checks at construction, const thread-safe
// forward, training members, inference threads: set_threads, forward(x, y, pool)),
// without type erasure: every call is resolved statically.
// get<I>() reaches layer I. All layers must share one scalar type.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/parallel.hpp"
#include "slimnn/detail/activation_buffers.hpp"
#include "slimnn/net/connect.hpp"

namespace slimnn {

template <Layer First, Layer... Rest>
class sequential {
 public:
  using scalar_type = typename First::scalar_type;
  static_assert((std::is_same_v<typename Rest::scalar_type, scalar_type> && ...),
                "sequential: every layer must use the same scalar type");
  static constexpr std::size_t count = 1 + sizeof...(Rest);

  explicit sequential(First first, Rest... rest) : layers_(std::move(first), std::move(rest)...) {
    each([&]<std::size_t I>(auto& layer) {
      if constexpr (I > 0) {
        const auto& previous = std::get<I - 1>(layers_);
        detail::check_connection(I, describe(layer), layer.input_shape(), describe(previous),
                                 previous.output_shape());
      }
    });
  }

  template <std::size_t I>
  auto& get() { return std::get<I>(layers_); }
  template <std::size_t I>
  const auto& get() const { return std::get<I>(layers_); }

  shape input_shape() const { return std::get<0>(layers_).input_shape(); }
  shape output_shape() const { return std::get<count - 1>(layers_).output_shape(); }
  std::string name() const { return std::string("sequential<") + scalar_name<scalar_type>() + ">"; }
  std::string settings() const { return detail::cat(count, " layers"); }

  /// Inference on `threads` threads from now on (1: on the calling thread only).
  void set_threads(int threads) { threads_.set("sequential", threads); }
  /// The threads forward() runs on.
  int threads() const { return threads_.count(); }

  /// Into a view sized output size x x.cols(), or into a matrix that it resizes.
  void forward(const_matrix_ref<scalar_type> x, matrix_view<scalar_type> y) const { forward_on(threads_.pool(), x, y); }
  void forward(const_matrix_ref<scalar_type> x, matrix<scalar_type>& y) const { detail::forward_resized(*this, x, y); }
  /// forward() on the threads of `pool`.
  void forward(const_matrix_ref<scalar_type> x, matrix_view<scalar_type> y, thread_pool& pool) const {
    forward_on(&pool, x, y);
  }
  void forward(const_matrix_ref<scalar_type> x, matrix<scalar_type>& y, thread_pool& pool) const {
    detail::forward_resized(*this, x, y, pool);
  }

  /// Per-thread workspace bytes of a forward of `batch` samples (as network<T>'s).
  std::uint64_t workspace_bytes(index_t batch) const {
    const index_t block = detail::largest_batch_block(batch);
    std::uint64_t bytes = 0;
    each([&]<std::size_t I>(const auto& layer) {
      bytes += slimnn::workspace_bytes(layer, block);
      if (I + 1 < count) bytes += std::uint64_t(layer.output_shape().size() * block) * sizeof(scalar_type);
    });
    return bytes;
  }

  void forward_train(const_matrix_ref<scalar_type> x, matrix<scalar_type>& y)
    requires(TrainableLayer<First> && (TrainableLayer<Rest> && ...))
  {
    each([&]<std::size_t I>(auto& layer) {
      matrix<scalar_type>& out = I + 1 == count ? y : trace_[I];
      if constexpr (I == 0) layer.forward_train(x, out);
      else layer.forward_train(trace_[I - 1], out);
    });
  }

  void backward(const_matrix_ref<scalar_type> dy, matrix<scalar_type>& dx)
    requires(TrainableLayer<First> && (TrainableLayer<Rest> && ...))
  {
    each_reversed([&]<std::size_t I>(auto& layer) {
      matrix<scalar_type>& out = I == 0 ? dx : back_[I];
      if constexpr (I + 1 == count) layer.backward(dy, out);
      else layer.backward(back_[I + 1], out);
    });
  }

  std::vector<parameter<scalar_type>> parameters()
    requires(TrainableLayer<First> && (TrainableLayer<Rest> && ...))
  {
    std::vector<parameter<scalar_type>> all;
    each([&]<std::size_t I>(auto& layer) {
      for (auto p : layer.parameters()) {
        p.name = std::to_string(I) + "." + p.name;
        all.push_back(std::move(p));
      }
    });
    return all;
  }

  void after_update() {
    each([&]<std::size_t I>(auto& layer) {
      if constexpr (requires { layer.after_update(); }) layer.after_update();
    });
  }

  /// As network<T>'s: every layer with a store takes `store`.
  void set_activation_store(const activation_store& store) {
    store.validate();
    each([&]<std::size_t I>(auto& layer) {  // every layer checked before any is set
      if constexpr (!requires { layer.set_activation_store(store); } &&
                    TrainableLayer<std::remove_cvref_t<decltype(layer)>>)
        detail::require<config_error>(store.mode == activation_mode::none, "sequential: layer ", I, " (",
                                      describe(layer), ") has no activation store; it keeps its activations only in "
                                      "mode none");
    });
    each([&]<std::size_t I>(auto& layer) {
      if constexpr (requires { layer.set_activation_store(store); }) layer.set_activation_store(store);
    });
  }
  kept_memory kept() const {
    kept_memory total;
    each([&]<std::size_t I>(const auto& layer) {
      if constexpr (requires { { layer.kept() } -> std::same_as<kept_memory>; }) total += layer.kept();
    });
    return total;
  }

  slimnn::cost cost() const {
    slimnn::cost total;
    each([&]<std::size_t I>(const auto& layer) { total += layer.cost(); });
    return total;
  }

 private:
  // (The first layer checks x's rows.)
  void forward_on(thread_pool* pool, const_matrix_ref<scalar_type> x, matrix_view<scalar_type> y) const {
    detail::check_output(*this, y, x.cols());
    detail::forward_on<scalar_type>(pool, x, y, [&](const_matrix_ref<scalar_type> xb, matrix_view<scalar_type> yb) {
      forward_chain(xb, yb);
    });
  }
  /// Each layer writes its own per-thread buffer; the last one writes y.
  void forward_chain(const_matrix_ref<scalar_type> x, matrix_view<scalar_type> y) const {
    detail::activation_buffers<scalar_type> buffers(count);
    const auto output = [&]<std::size_t I>() {
      return buffers.view(I, std::get<I>(layers_).output_shape().size(), x.cols());
    };
    each([&]<std::size_t I>(const auto& layer) {
      const auto run = [&](const_matrix_ref<scalar_type> in) {
        if constexpr (I + 1 == count) layer.forward(in, y);
        else layer.forward(in, output.template operator()<I>());
      };
      if constexpr (I == 0) run(x);
      else run(output.template operator()<I - 1>());
    });
  }

  template <class F>
  void each(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(layers_)), ...);
    }(std::make_index_sequence<count>());
  }
  template <class F>
  void each(F&& f) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(layers_)), ...);
    }(std::make_index_sequence<count>());
  }
  template <class F>
  void each_reversed(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<count - 1 - I>(std::get<count - 1 - I>(layers_)), ...);
    }(std::make_index_sequence<count>());
  }

  std::tuple<First, Rest...> layers_;
  std::array<matrix<scalar_type>, count> trace_;
  std::array<matrix<scalar_type>, count> back_;  // back_[I]: gradient at layer I's input
  detail::inference_threads threads_;
};

}  // namespace slimnn
