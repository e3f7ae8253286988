// slimnn/train/recipe.hpp — a training recipe (epochs, batch, Adam's learning rate and
// weight decay) and train(): the recipe applied to a network with fit().
//
// A plan (compress/plan.hpp) carries one as its fine-tuning: after compress(net, plan),
// train(result.net, plan.fine_tune, data) fine-tunes the compressed network.
//
//   train(net, recipe, train_data, &test_data, config)
//     = fit(net, adam({recipe.learning_rate, weight_decay = recipe.weight_decay}),
//           train_data, &test_data, config with recipe.epochs and recipe.batch_size)
// config gives the rest (seed, cosine schedule, threads, progress, label, max_batches).
// A recipe of 0 epochs trains nothing and returns no reports.
//
// Canonical string (str / parse), tokens joined by '-', defaults in brackets left out:
//   e<epochs> [0]  b<batch> [64]  lr<learning rate> [0.001]  wd<weight decay> [0.0001]
// e.g. "e2", "e3-b128-lr0.0005". Numbers are decimals ('-' separates tokens, so write
// 0.0001 rather than 1e-4). A bad string or value raises config_error naming it.
// Plain values: thread-safe to share; train() as fit().
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/detail/setting_tokens.hpp"
#include "slimnn/train/optimizer.hpp"
#include "slimnn/train/trainer.hpp"

namespace slimnn {

struct training_recipe {
  int epochs = 0;                ///< passes over the training set; 0 = no training
  index_t batch_size = 64;       ///< samples per step, >= 1
  double learning_rate = 1e-3;   ///< Adam's, > 0 (cosine decay over the steps by default)
  double weight_decay = 1e-4;    ///< decoupled (AdamW), >= 0

  void validate() const {
    detail::require<config_error>(epochs >= 0, "training recipe: epochs must be >= 0, got ", epochs);
    detail::require<config_error>(batch_size >= 1, "training recipe: batch must be >= 1, got ", batch_size);
    detail::require<config_error>(learning_rate > 0, "training recipe: learning rate must be > 0, got ",
                                  learning_rate);
    detail::require<config_error>(weight_decay >= 0, "training recipe: weight decay must be >= 0, got ",
                                  weight_decay);
  }
  /// "e2-lr0.0005": the tokens that differ from their defaults ("e0" for no training).
  std::string str() const {
    const training_recipe d;
    std::string out = detail::cat("e", epochs);
    if (batch_size != d.batch_size) out += detail::cat("-b", batch_size);
    if (learning_rate != d.learning_rate) out += detail::cat("-lr", learning_rate);
    if (weight_decay != d.weight_decay) out += detail::cat("-wd", weight_decay);
    return out;
  }
  /// From "e2-lr0.0005"; config_error naming the string when it is malformed or invalid.
  static training_recipe parse(std::string_view text) {
    const detail::setting_tokens tokens("training recipe", text, {"e", "b", "lr", "wd"}, "e", "e2-lr0.0005");
    training_recipe r;
    r.epochs = *tokens.whole<int>("e");
    if (const auto b = tokens.whole<index_t>("b")) r.batch_size = *b;
    if (const auto lr = tokens.number("lr")) r.learning_rate = *lr;
    if (const auto wd = tokens.number("wd")) r.weight_decay = *wd;
    tokens.validated([&] { r.validate(); });
    return r;
  }
  friend bool operator==(const training_recipe&, const training_recipe&) = default;
};

/// Trains `model` as `recipe` says (see the top); one report per epoch.
template <class Model, class T = typename Model::scalar_type>
std::vector<epoch_report> train(Model& model, const training_recipe& recipe, const dataset<T>& train_data,
                                const std::type_identity_t<dataset<T>>* test = nullptr, train_config config = {}) {
  recipe.validate();
  if (recipe.epochs == 0) return {};
  adam<T> optimizer({.learning_rate = T(recipe.learning_rate), .weight_decay = T(recipe.weight_decay)});
  config.epochs = recipe.epochs;
  config.batch_size = recipe.batch_size;
  return fit(model, optimizer, train_data, test, config);
}

}  // namespace slimnn
