// slimnn/layers/softmax_cross_entropy.hpp — softmax followed by the mean negative
// log-likelihood of integer class labels.
//
//   p = softmax(z) per column,  L = -(1/B) sum_b log p[label_b][b]
//   dL/dz = (p - onehot(label)) / B
// Shapes: logits (classes x B), labels B integers in [0, classes).
// Numerically stable (subtracts each column's max). Not a Layer: it ends a network.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cmath>
#include <span>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

template <class T>
class softmax_cross_entropy {
 public:
  /// Mean loss over the batch; keeps the probabilities for gradient().
  T forward(const_matrix_ref<T> logits, std::span<const int> labels) {
    check(logits, labels);
    probs_ = logits;
    labels_.assign(labels.begin(), labels.end());
    double loss = 0;
    for (index_t b = 0; b < logits.cols(); ++b) {
      auto col = probs_.col(b);
      col.array() -= col.maxCoeff();
      col = col.array().exp();
      const T sum = col.sum();
      col /= sum;
      loss -= std::log(std::max(double(col[labels[b]]), 1e-30));
    }
    return T(loss / double(logits.cols()));
  }

  /// dL/dlogits for the last forward().
  void backward(matrix<T>& dlogits) const {
    dlogits = probs_;
    for (index_t b = 0; b < dlogits.cols(); ++b) dlogits(labels_[b], b) -= T(1);
    dlogits /= T(dlogits.cols());
  }

  const matrix<T>& probabilities() const { return probs_; }

 private:
  static void check(const_matrix_ref<T> logits, std::span<const int> labels) {
    detail::require<shape_error>(index_t(labels.size()) == logits.cols(), "softmax_cross_entropy: ",
                                 logits.cols(), " logit columns but ", labels.size(), " labels");
    for (std::size_t b = 0; b < labels.size(); ++b)
      detail::require<shape_error>(labels[b] >= 0 && labels[b] < logits.rows(),
                                   "softmax_cross_entropy: label ", labels[b], " at sample ", b,
                                   " is outside [0, ", logits.rows(), ")");
  }

  matrix<T> probs_;
  std::vector<int> labels_;
};

/// Index of the largest logit in each column.
template <class T>
std::vector<int> argmax_columns(const_matrix_ref<T> logits) {
  std::vector<int> out(std::size_t(logits.cols()));
  for (index_t b = 0; b < logits.cols(); ++b) {
    index_t at = 0;
    logits.col(b).maxCoeff(&at);
    out[std::size_t(b)] = int(at);
  }
  return out;
}

}  // namespace slimnn
