// slimnn/net/network.hpp — a run-time chain of type-erased layers.
//
//   network<float> net;
//   net << dense<float>(784, 1024, rng) << relu<float>(shape::flat(1024)) << ...;
// Layers are numbered from 0. Each layer's input shape must equal the previous layer's
// output shape, checked when it is added (shape_error naming both layers).
// forward() is const, thread-safe and allocation-free once warmed up (per thread);
// forward_train/backward/parameters are for one training thread.
// Inference threads: set_threads(n) gives the network a pool of n threads (default 1:
// none) that forward() runs on, and forward(x, y, pool) runs one call on a given pool.
// forward() cuts a batch of 64 or more into blocks of columns, each run through the
// whole chain, whatever the thread count, so the result is bit-identical for any thread
// count (core/parallel.hpp). Copies of a network share its pool; calls on one pool run
// one at a time.
// save(path) / network<T>::load(path) read and write safetensors files. They are
// defined by slimnn/io/network_io.hpp (included by slimnn/slimnn.hpp), so this header
// depends neither on the file format nor on every layer kind, and a program that never
// saves or loads does not compile the loaders. Calling them without that header does
// not compile ("incomplete type detail::network_io").
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/core/parallel.hpp"
#include "slimnn/detail/activation_buffers.hpp"
#include "slimnn/net/any_layer.hpp"
#include "slimnn/net/connect.hpp"

namespace slimnn {

namespace detail {
/// network<T>::save / load, defined by slimnn/io/network_io.hpp: if the compiler says
/// this type is incomplete, include that header (or slimnn/slimnn.hpp).
template <class Network>
struct network_io;
}  // namespace detail

template <class T>
class network {
 public:
  using scalar_type = T;

  network() = default;

  /// Appends a layer; throws shape_error if its input does not match the last output.
  network& add(any_layer<T> layer) {
    if (!layers_.empty()) {
      const auto& last = layers_.back();
      detail::check_connection(layers_.size(), describe(layer), layer.input_shape(), describe(last),
                               last.output_shape());
    }
    layers_.push_back(std::move(layer));
    return *this;
  }
  network& operator<<(any_layer<T> layer) { return add(std::move(layer)); }

  std::size_t size() const { return layers_.size(); }
  bool empty() const { return layers_.empty(); }
  any_layer<T>& operator[](std::size_t i) { return layers_.at(i); }
  const any_layer<T>& operator[](std::size_t i) const { return layers_.at(i); }
  auto begin() { return layers_.begin(); }
  auto end() { return layers_.end(); }
  auto begin() const { return layers_.begin(); }
  auto end() const { return layers_.end(); }

  shape input_shape() const { return non_empty().front().input_shape(); }
  shape output_shape() const { return non_empty().back().output_shape(); }
  std::string name() const { return std::string("network<") + scalar_name<T>() + ">"; }
  std::string settings() const { return detail::cat(layers_.size(), " layers"); }

  /// Inference on `threads` threads from now on (1: on the calling thread only).
  void set_threads(int threads) { threads_.set("network", threads); }
  /// The threads forward() runs on.
  int threads() const { return threads_.count(); }

  /// Into a view sized output size x x.cols() (a matrix or a block of its columns), or
  /// into a matrix that it resizes.
  void forward(const_matrix_ref<T> x, matrix_view<T> y) const { forward_on(threads_.pool(), x, y); }
  void forward(const_matrix_ref<T> x, matrix<T>& y) const { detail::forward_resized(*this, x, y); }
  /// forward() on the threads of `pool`.
  void forward(const_matrix_ref<T> x, matrix_view<T> y, thread_pool& pool) const { forward_on(&pool, x, y); }
  void forward(const_matrix_ref<T> x, matrix<T>& y, thread_pool& pool) const {
    detail::forward_resized(*this, x, y, pool);
  }

  /// Per-thread workspace bytes of a forward of `batch` samples: the intermediate
  /// activations of one block of the batch plus every layer's workspace_bytes for it (an
  /// upper bound: layers of one kind share their buffers). A thread that has run a
  /// forward of this batch once allocates nothing more for it.
  std::uint64_t workspace_bytes(index_t batch) const {
    const auto& layers = non_empty();
    const index_t block = detail::largest_batch_block(batch);
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      bytes += layers[i].workspace_bytes(block);
      if (i + 1 < layers.size()) bytes += std::uint64_t(layers[i].output_shape().size() * block) * sizeof(T);
    }
    return bytes;
  }

  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    auto& layers = non_empty();
    trace_.resize(layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
      matrix<T>& out = i + 1 == layers.size() ? y : trace_[i];
      if (i == 0) layers[i].forward_train(x, out);
      else layers[i].forward_train(trace_[i - 1], out);
    }
  }

  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    auto& layers = non_empty();
    back_.resize(layers.size());
    for (std::size_t i = layers.size(); i-- > 0;) {
      matrix<T>& out = i == 0 ? dx : back_[i];
      if (i + 1 == layers.size()) layers[i].backward(dy, out);
      else layers[i].backward(back_[i + 1], out);
    }
  }

  /// Every parameter of every layer, named "<layer index>.<name>".
  std::vector<parameter<T>> parameters() {
    std::vector<parameter<T>> all;
    for (std::size_t i = 0; i < layers_.size(); ++i)
      for (auto p : layers_[i].parameters()) {
        p.name = std::to_string(i) + "." + p.name;
        all.push_back(std::move(p));
      }
    return all;
  }
  void after_update() {
    for (auto& l : layers_) l.after_update();
  }

  /// How every layer keeps its activations for backward (core/activation_store.hpp); a
  /// layer that keeps nothing ignores it, one without a store takes mode none only
  /// (config_error naming it otherwise). Set it on one layer with net[i].
  void set_activation_store(const activation_store& store) {
    store.validate();
    for (std::size_t i = 0; i < layers_.size(); ++i)  // every layer checked before any is set
      if (!layers_[i].has_activation_store() && layers_[i].trainable() && store.mode != activation_mode::none)
        throw config_error(detail::cat("network: layer ", i, " (", describe(layers_[i]),
                                       ") has no activation store; it keeps its activations only in mode none"));
    for (auto& layer : layers_)
      if (layer.has_activation_store()) layer.set_activation_store(store);
  }
  /// What the layers keep for backward since the last forward_train, and per layer.
  kept_memory kept() const {
    kept_memory total;
    for (const auto& l : layers_) total += l.kept();
    return total;
  }
  std::vector<kept_memory> kept_by_layer() const {
    std::vector<kept_memory> out;
    for (const auto& l : layers_) out.push_back(l.kept());
    return out;
  }

  slimnn::cost cost() const {
    slimnn::cost total;
    for (const auto& l : layers_) total += l.cost();
    return total;
  }

  /// Writes the network (architecture and parameters) to a safetensors file.
  template <class Self = network>
  void save(const std::filesystem::path& path) const {
    detail::network_io<Self>::save(*this, path);
  }
  /// Rebuilds a network written by save(); format_error on any problem in the file.
  template <class Self = network>
  static network load(const std::filesystem::path& path) {
    return detail::network_io<Self>::load(path);
  }

  /// One line per layer: index, description, output shape, stored bytes, MACs.
  std::string summary() const {
    std::string out;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const auto c = layers_[i].cost();
      out += detail::cat("  ", i, "  ", describe(layers_[i]), "  -> ", layers_[i].output_shape().str(),
                         "  ", c.param_bytes, " B, ", c.macs, " MACs\n");
    }
    return out;
  }

 private:
  // (The first layer checks x's rows.)
  void forward_on(thread_pool* pool, const_matrix_ref<T> x, matrix_view<T> y) const {
    detail::check_output(*this, y, x.cols());
    detail::forward_on<T>(pool, x, y, [&](const_matrix_ref<T> xb, matrix_view<T> yb) { forward_chain(xb, yb); });
  }
  /// Each layer writes its own per-thread buffer; the last one writes y.
  void forward_chain(const_matrix_ref<T> x, matrix_view<T> y) const {
    const auto& layers = non_empty();
    detail::activation_buffers<T> buffers(layers.size());
    const auto output = [&](std::size_t i) { return buffers.view(i, layers[i].output_shape().size(), x.cols()); };
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const_matrix_ref<T> in = i == 0 ? x : const_matrix_ref<T>(output(i - 1));
      if (i + 1 == layers.size()) layers[i].forward(in, y);
      else layers[i].forward(in, output(i));
    }
  }

  const std::vector<any_layer<T>>& non_empty() const {
    detail::require<config_error>(!layers_.empty(), "network: has no layers");
    return layers_;
  }
  std::vector<any_layer<T>>& non_empty() {
    detail::require<config_error>(!layers_.empty(), "network: has no layers");
    return layers_;
  }

  std::vector<any_layer<T>> layers_;
  std::vector<matrix<T>> trace_;  // outputs kept by forward_train
  std::vector<matrix<T>> back_;   // back_[i]: gradient at layer i's input, kept for reuse
  detail::inference_threads threads_;
};

}  // namespace slimnn
