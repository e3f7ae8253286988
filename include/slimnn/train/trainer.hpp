// slimnn/train/trainer.hpp — mini-batch training and evaluation of a classifier.
//
// fit(model, optimizer, train_data, test_data, config) runs `epochs` passes over the
// training set in seeded random order, in mini-batches: forward_train, softmax
// cross-entropy, backward, optimizer step. The learning rate follows a cosine decay
// over all steps when config.cosine_schedule is set. After each epoch the model is
// evaluated on test_data (if given). Progress goes to stderr (see progress.hpp).
// evaluate(model, data) returns the mean loss and the accuracy (fraction in [0, 1]).
// Works with network<T> and sequential<...> alike.
//
// Threads: with config.threads = N > 1, fit is data-parallel. Each batch is split into N
// contiguous parts on a thread_pool of N threads: part 0 runs forward_train and backward
// on the model, part r > 0 on replica r, a copy of the model refreshed before every step
// (in place: same-sized storage is reused).
// The gradients are summed in part order (each part's loss gradient weighted by its share
// of the batch) into the model, which takes the optimizer step. Every layer's work, not
// only the matrix products, is then spread over the threads, and Eigen is held to one
// thread inside fit. A given N gives the same result on every run; different N round
// differently. evaluate(..., threads) splits the samples the same way (forward is const
// and reentrant); its result does not depend on the thread count. set_threads(n) sets
// Eigen's own GEMM thread count (effective when built with OpenMP) for everything else.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <type_traits>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/thread_pool.hpp"
#include "slimnn/data/dataset.hpp"
#include "slimnn/layers/softmax_cross_entropy.hpp"
#include "slimnn/train/optimizer.hpp"
#include "slimnn/train/progress.hpp"

namespace slimnn {

struct train_config {
  int epochs = 1;
  index_t batch_size = 64;
  std::uint64_t seed = 1;
  index_t max_batches = 0;        ///< per epoch; 0 = the whole training set
  bool cosine_schedule = true;  ///< learning rate x 0.5 (1 + cos(pi t / T)) over all steps
  bool progress = true;         ///< report on stderr
  std::string label = "train";
  int threads = 1;              ///< data-parallel training threads (see above), >= 1
};

struct evaluation {
  double loss = 0;
  double accuracy = 0;
  index_t samples = 0;
};

struct epoch_report {
  int epoch = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  std::optional<evaluation> test;
  double seconds = 0;
  /// Activations kept for backward (core/activation_store.hpp), for models that report
  /// them (kept()): the most bytes the layers of all parts held between a step's
  /// forward_train and its backward, what mode none would have kept in that step, per
  /// layer of the model's own part in that step (models with kept_by_layer()), and the
  /// seconds the epoch spent compressing and decompressing them.
  std::uint64_t activation_peak_bytes = 0;
  std::uint64_t activation_raw_bytes = 0;
  std::vector<kept_memory> activation_layers;
  double codec_seconds = 0;
};

/// Sets the number of threads Eigen's matrix products may use (0 or less: leave as is).
inline void set_threads(int threads) {
  if (threads > 0) Eigen::setNbThreads(threads);
}

namespace detail {

template <class Model, class T>
void check_model_fits(const Model& model, const dataset<T>& data, const char* who) {
  require<shape_error>(model.input_shape().size() == data.x.rows(), who, ": the model expects ",
                       model.input_shape().as_input(), ", the data has ", data.x.rows(), " features");
  require<shape_error>(model.output_shape().size() >= data.classes, who, ": the model gives ",
                       model.output_shape().size(), " outputs for ", data.classes, " classes");
}

template <class T>
void gather_columns(const dataset<T>& data, const std::vector<index_t>& order, index_t first, index_t count,
                    matrix<T>& x, std::vector<int>& y) {
  x.resize(data.x.rows(), count);
  y.resize(std::size_t(count));
  for (index_t b = 0; b < count; ++b) {
    const index_t s = order[std::size_t(first + b)];
    x.col(b) = data.x.col(s);
    y[std::size_t(b)] = data.y[std::size_t(s)];
  }
}

}  // namespace detail

namespace detail {

/// evaluate() on `pool`: chunks of `batch` samples are independent tasks whose sums are
/// added in chunk order, so the result does not depend on the pool's size.
template <class Model, class T>
evaluation evaluate_on(thread_pool& pool, const Model& model, const dataset<T>& data, index_t batch,
                       index_t n) {
  const index_t chunks = (n + batch - 1) / batch;
  std::vector<double> loss_sums(std::size_t(chunks), 0);
  std::vector<index_t> hits(std::size_t(chunks), 0);
  pool.run(chunks, [&](index_t k) {
    const index_t first = k * batch, count = std::min(batch, n - first);
    softmax_cross_entropy<T> loss;
    matrix<T> logits;
    model.forward(data.x.middleCols(first, count), logits);
    const std::span<const int> labels(data.y.data() + first, std::size_t(count));
    loss_sums[std::size_t(k)] = double(loss.forward(logits, labels)) * double(count);
    const auto predicted = argmax_columns<T>(logits);
    for (index_t b = 0; b < count; ++b) hits[std::size_t(k)] += predicted[std::size_t(b)] == labels[std::size_t(b)];
  });
  evaluation result;
  double loss_sum = 0;
  index_t correct = 0;
  for (index_t k = 0; k < chunks; ++k) loss_sum += loss_sums[std::size_t(k)], correct += hits[std::size_t(k)];
  result.samples = n;
  result.loss = n > 0 ? loss_sum / double(n) : 0;
  result.accuracy = n > 0 ? double(correct) / double(n) : 0;
  return result;
}

/// Holds Eigen's GEMMs to one thread while the trainer runs its own threads.
struct single_threaded_eigen {
  int saved = Eigen::nbThreads();
  single_threaded_eigen() { Eigen::setNbThreads(1); }
  ~single_threaded_eigen() { Eigen::setNbThreads(saved); }
  single_threaded_eigen(const single_threaded_eigen&) = delete;
  single_threaded_eigen& operator=(const single_threaded_eigen&) = delete;
};

}  // namespace detail

/// Mean cross-entropy and accuracy of `model` on `data` (at most max_samples if > 0), in
/// batches of `batch` samples spread over `threads` threads.
template <class Model, class T = typename Model::scalar_type>
evaluation evaluate(const Model& model, const dataset<T>& data, index_t batch = 500, index_t max_samples = 0,
                    int threads = 1) {
  detail::check_model_fits(model, data, "evaluate");
  detail::require<config_error>(batch >= 1, "evaluate: batch must be >= 1, got ", batch);
  const index_t n = max_samples > 0 ? std::min(max_samples, data.size()) : data.size();
  thread_pool pool(threads);
  std::optional<detail::single_threaded_eigen> eigen;
  if (threads > 1) eigen.emplace();
  return detail::evaluate_on(pool, model, data, batch, n);
}

/// Trains `model` with `optimizer`; returns one report per epoch.
template <class Model, class Optimizer, class T = typename Model::scalar_type>
std::vector<epoch_report> fit(Model& model, Optimizer& optimizer, const dataset<T>& train,
                              const std::type_identity_t<dataset<T>>* test, const train_config& config) {
  detail::check_model_fits(model, train, "fit");
  detail::require<config_error>(config.epochs >= 1, "fit: epochs must be >= 1, got ", config.epochs);
  detail::require<config_error>(config.batch_size >= 1, "fit: batch_size must be >= 1, got ",
                                config.batch_size);
  detail::require<config_error>(train.size() > 0, "fit: the training set is empty");

  detail::require<config_error>(config.threads >= 1 && config.threads <= 1024,
                                "fit: threads must be in [1, 1024], got ", config.threads);
  if constexpr (!std::is_copy_assignable_v<Model>)
    detail::require<config_error>(config.threads == 1, "fit: threads > 1 needs a copyable model");

  rng_t rng(config.seed);
  std::vector<index_t> order(std::size_t(train.size()));
  std::iota(order.begin(), order.end(), index_t(0));
  index_t batches = (train.size() + config.batch_size - 1) / config.batch_size;
  if (config.max_batches > 0) batches = std::min(batches, config.max_batches);
  const double total_steps = double(batches) * config.epochs;

  // One worker state per part of a batch: part 0 trains the model itself, part r > 0 its replica.
  struct part {
    std::optional<Model> replica;
    softmax_cross_entropy<T> loss;
    matrix<T> x, logits, dlogits, dx;
    std::vector<int> y;
    double loss_sum = 0;
    index_t correct = 0;
  };
  const int threads = config.threads;
  std::vector<part> parts(static_cast<std::size_t>(threads));
  thread_pool pool(threads);
  std::optional<detail::single_threaded_eigen> eigen;
  if (threads > 1) eigen.emplace();

  std::vector<epoch_report> reports;
  long step = 0;
  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    progress_bar bar(detail::cat(config.label, " epoch ", epoch, "/", config.epochs), long(batches));
    double loss_sum = 0;
    index_t seen = 0, correct = 0;
    epoch_report report;
    const double codec_start = codec_seconds();
    for (index_t b = 0; b < batches; ++b, ++step) {
      const index_t first = b * config.batch_size;
      const index_t count = std::min(config.batch_size, train.size() - first);
      if (config.cosine_schedule)
        optimizer.lr_multiplier = T(0.5 * (1 + std::cos(3.141592653589793 * double(step) / total_steps)));
      const index_t used = std::min<index_t>(threads, count);
      if constexpr (std::is_copy_assignable_v<Model>)
        for (index_t r = 1; r < used; ++r) {  // part 0 runs on the model itself
          auto& replica = parts[std::size_t(r)].replica;
          if (replica) *replica = model;
          else replica.emplace(model);
        }
      pool.run(used, [&](index_t r) {
        part& p = parts[std::size_t(r)];
        const index_t begin = first + count * r / used, size = first + count * (r + 1) / used - begin;
        Model& m = r == 0 ? model : *p.replica;
        detail::gather_columns(train, order, begin, size, p.x, p.y);
        m.forward_train(p.x, p.logits);
        p.loss_sum = double(p.loss.forward(p.logits, p.y)) * double(size);
        const auto predicted = argmax_columns<T>(p.logits);
        p.correct = 0;
        for (index_t i = 0; i < size; ++i) p.correct += predicted[std::size_t(i)] == p.y[std::size_t(i)];
        p.loss.backward(p.dlogits);
        if (used > 1) p.dlogits *= T(double(size) / double(count));
        m.backward(p.dlogits, p.dx);
      });
      if (used > 1) {
        const auto into = model.parameters();
        for (index_t r = 1; r < used; ++r) {
          const auto from = parts[std::size_t(r)].replica->parameters();
          for (std::size_t i = 0; i < into.size(); ++i)
            detail::param_map<T>(into[i].grad, into[i].size) += detail::param_map<T>(from[i].grad, from[i].size);
        }
      }
      for (index_t r = 0; r < used; ++r) loss_sum += parts[std::size_t(r)].loss_sum, correct += parts[std::size_t(r)].correct;
      if constexpr (requires { { model.kept() } -> std::same_as<kept_memory>; }) {
        kept_memory kept = model.kept();
        for (index_t r = 1; r < used; ++r) kept += parts[std::size_t(r)].replica->kept();
        if (kept.bytes > report.activation_peak_bytes) {
          report.activation_peak_bytes = kept.bytes;
          report.activation_raw_bytes = kept.raw_bytes;
          if constexpr (requires { model.kept_by_layer(); }) report.activation_layers = model.kept_by_layer();
        }
      }
      seen += count;
      optimizer.step(model);
      if (config.progress) bar.update(long(b + 1), detail::cat("loss ", loss_sum / double(seen)));
    }
    report.codec_seconds = std::max(0.0, codec_seconds() - codec_start);
    report.epoch = epoch;
    report.train_loss = loss_sum / double(seen);
    report.train_accuracy = double(correct) / double(seen);
    if (test) report.test = detail::evaluate_on(pool, model, *test, 500, test->size());
    report.seconds = bar.seconds();
    if (config.progress) {
      std::string summary = detail::cat("loss ", report.train_loss, ", train acc ", report.train_accuracy);
      if (report.test) summary += detail::cat(", test acc ", report.test->accuracy);
      bar.finish(summary);
    }
    reports.push_back(report);
  }
  return reports;
}

}  // namespace slimnn
