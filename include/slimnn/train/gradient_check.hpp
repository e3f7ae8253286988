// slimnn/train/gradient_check.hpp — checks a layer's backward against central finite
// differences, in double.
//
// For random x and a random projection r, the scalar loss is L(x, w) = sum(r .* f(x, w)).
// backward(r) must give dL/dx and dL/dw; each is compared with
//   (L(v + h) - L(v - h)) / 2h
// at up to `max_checks` sampled entries of x and of every parameter, and an entry fails
// when |analytic - numeric| > atol + rtol * max(|analytic|, |numeric|).
// Requires a TrainableLayer with scalar double. Cost: 2 forwards per checked entry.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "slimnn/core/layer.hpp"

namespace slimnn {

struct gradient_check_config {
  index_t batch = 3;
  index_t max_checks = 64;  ///< entries checked per array (sampled when larger)
  double step = 1e-5;
  double rtol = 1e-5;
  double atol = 1e-7;
  std::uint64_t seed = 7;
};

struct gradient_check_result {
  bool ok = true;
  double worst_error = 0;  ///< largest |analytic - numeric| / (atol + rtol * scale)
  std::string worst;       ///< where it was, e.g. "weight[12]: analytic 0.5, numeric 0.49"
  index_t checked = 0;
};

template <TrainableLayer L>
  requires std::is_same_v<typename L::scalar_type, double>
gradient_check_result check_gradients(L& layer, const gradient_check_config& config = {}) {
  rng_t rng(config.seed);
  std::normal_distribution<double> normal;
  matrix<double> x(layer.input_shape().size(), config.batch);
  matrix<double> r(layer.output_shape().size(), config.batch);
  for (index_t i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  for (index_t i = 0; i < r.size(); ++i) r.data()[i] = normal(rng);

  matrix<double> y, dx;
  auto params = layer.parameters();
  zero_grad(params);
  layer.forward_train(x, y);
  layer.backward(r, dx);

  auto loss = [&] {
    matrix<double> out;
    layer.forward(x, out);
    return (out.array() * r.array()).sum();
  };
  gradient_check_result result;
  auto check_array = [&](const std::string& name, double* values, const double* analytic, index_t size) {
    std::vector<index_t> where(static_cast<std::size_t>(size));
    for (index_t i = 0; i < size; ++i) where[std::size_t(i)] = i;
    if (size > config.max_checks) {
      std::shuffle(where.begin(), where.end(), rng);
      where.resize(std::size_t(config.max_checks));
    }
    for (index_t i : where) {
      const double saved = values[i];
      values[i] = saved + config.step;
      const double up = loss();
      values[i] = saved - config.step;
      const double down = loss();
      values[i] = saved;
      const double numeric = (up - down) / (2 * config.step);
      const double scale = std::max(std::abs(numeric), std::abs(analytic[i]));
      const double error = std::abs(numeric - analytic[i]) / (config.atol + config.rtol * scale);
      ++result.checked;
      if (error > result.worst_error) {
        result.worst_error = error;
        result.worst = detail::cat(name, "[", i, "]: analytic ", analytic[i], ", numeric ", numeric);
      }
    }
  };
  check_array("input", x.data(), dx.data(), x.size());
  for (auto& p : params) {
    const std::vector<double> analytic(p.grad, p.grad + p.size);
    check_array(p.name, p.value, analytic.data(), p.size);
  }
  result.ok = result.worst_error <= 1.0;
  return result;
}

}  // namespace slimnn
