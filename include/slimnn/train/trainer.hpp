// slimnn/train/trainer.hpp — mini-batch training and evaluation of a classifier.
//
// fit(model, optimizer, train_data, test_data, config) runs `epochs` passes over the
// training set in seeded random order, in mini-batches: forward_train, softmax
// cross-entropy, backward, optimizer step. The learning rate follows a cosine decay
// over all steps when config.cosine_schedule is set. After each epoch the model is
// evaluated on test_data (if given). Progress goes to stderr (see progress.hpp).
// evaluate(model, data) returns the mean loss and the accuracy (fraction in [0, 1]).
// Works with network<T> and sequential<...> alike. set_threads(n) sets Eigen's GEMM
// thread count (effective when built with OpenMP).
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

#include "slimnn/core/layer.hpp"
#include "slimnn/data/dataset.hpp"
#include "slimnn/layers/softmax_cross_entropy.hpp"
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

/// Mean cross-entropy and accuracy of `model` on `data` (at most max_samples if > 0).
template <class Model, class T = typename Model::scalar_type>
evaluation evaluate(const Model& model, const dataset<T>& data, index_t batch = 500, index_t max_samples = 0) {
  detail::check_model_fits(model, data, "evaluate");
  const index_t n = max_samples > 0 ? std::min(max_samples, data.size()) : data.size();
  softmax_cross_entropy<T> loss;
  matrix<T> logits;
  evaluation result;
  double loss_sum = 0;
  index_t correct = 0;
  for (index_t first = 0; first < n; first += batch) {
    const index_t count = std::min(batch, n - first);
    model.forward(data.x.middleCols(first, count), logits);
    const std::span<const int> labels(data.y.data() + first, std::size_t(count));
    loss_sum += double(loss.forward(logits, labels)) * double(count);
    const auto predicted = argmax_columns<T>(logits);
    for (index_t b = 0; b < count; ++b) correct += predicted[std::size_t(b)] == labels[std::size_t(b)];
  }
  result.samples = n;
  result.loss = n > 0 ? loss_sum / double(n) : 0;
  result.accuracy = n > 0 ? double(correct) / double(n) : 0;
  return result;
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

  rng_t rng(config.seed);
  std::vector<index_t> order(std::size_t(train.size()));
  std::iota(order.begin(), order.end(), index_t(0));
  index_t batches = (train.size() + config.batch_size - 1) / config.batch_size;
  if (config.max_batches > 0) batches = std::min(batches, config.max_batches);
  const double total_steps = double(batches) * config.epochs;

  softmax_cross_entropy<T> loss;
  matrix<T> x, logits, dlogits, dx;
  std::vector<int> y;
  std::vector<epoch_report> reports;
  long step = 0;
  for (int epoch = 1; epoch <= config.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    progress_bar bar(detail::cat(config.label, " epoch ", epoch, "/", config.epochs), long(batches));
    double loss_sum = 0;
    index_t seen = 0, correct = 0;
    for (index_t b = 0; b < batches; ++b, ++step) {
      const index_t first = b * config.batch_size;
      const index_t count = std::min(config.batch_size, train.size() - first);
      detail::gather_columns(train, order, first, count, x, y);
      if (config.cosine_schedule)
        optimizer.lr_multiplier = T(0.5 * (1 + std::cos(3.141592653589793 * double(step) / total_steps)));
      model.forward_train(x, logits);
      loss_sum += double(loss.forward(logits, y)) * double(count);
      const auto predicted = argmax_columns<T>(logits);
      for (index_t i = 0; i < count; ++i) correct += predicted[std::size_t(i)] == y[std::size_t(i)];
      seen += count;
      loss.backward(dlogits);
      model.backward(dlogits, dx);
      optimizer.step(model);
      if (config.progress) bar.update(long(b + 1), detail::cat("loss ", loss_sum / double(seen)));
    }
    epoch_report report;
    report.epoch = epoch;
    report.train_loss = loss_sum / double(seen);
    report.train_accuracy = double(correct) / double(seen);
    if (test) report.test = evaluate(model, *test);
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
