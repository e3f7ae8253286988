// slimnn/data/synthetic.hpp — learnable synthetic data for tests and demos.
//
// make_blobs draws one centre per class with N(0, 1) entries, then each sample as
//   x = centre[y] + noise * N(0, I),   y = i mod classes   (balanced and interleaved,
// so any contiguous subset holds every class about equally often).
// With noise well below 1 the classes are easy to separate; near or above 1 they overlap.
// Shapes: x is sample_shape.size() x samples. Complexity: O(samples * features).
// Reproducible: the same rng state gives the same data (with one standard library).
// Thread safety: reentrant; the rng is the caller's.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cmath>
#include <random>

#include "slimnn/data/dataset.hpp"

namespace slimnn {

template <class T>
dataset<T> make_blobs(index_t samples, shape sample_shape, index_t classes, double noise, rng_t& rng) {
  detail::require<config_error>(samples >= 0, "make_blobs: samples must be >= 0, got ", samples);
  require_valid(sample_shape, "make_blobs");
  detail::require<config_error>(classes >= 1, "make_blobs: classes must be >= 1, got ", classes);
  detail::require<config_error>(std::isfinite(noise) && noise >= 0,
                                "make_blobs: noise must be finite and >= 0, got ", noise);
  const index_t features = sample_shape.size();
  std::normal_distribution<double> normal(0.0, 1.0);

  matrix<double> centres(features, classes);
  for (index_t i = 0; i < centres.size(); ++i) centres.data()[i] = normal(rng);

  dataset<T> out;
  out.x.resize(features, samples);
  out.y.resize(std::size_t(samples));
  out.sample_shape = sample_shape;
  out.classes = classes;
  for (index_t s = 0; s < samples; ++s) {
    const index_t label = s % classes;
    out.y[std::size_t(s)] = int(label);
    for (index_t f = 0; f < features; ++f) out.x(f, s) = T(centres(f, label) + noise * normal(rng));
  }
  return out;
}

}  // namespace slimnn
