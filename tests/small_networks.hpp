// tests/small_networks.hpp — a small double-precision CNN that trains in milliseconds, and
// its parameters as one list, shared by the training tests.
#pragma once

#include <vector>

#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/layers/flatten.hpp"
#include "slimnn/layers/pool2d.hpp"
#include "slimnn/layers/relu.hpp"
#include "slimnn/net/network.hpp"

namespace slimnn::testing {

/// 1x6x6 -> conv 3x3 (3 channels, pad 1) -> relu -> max_pool 2 -> flatten -> dense 4; with
/// hidden > 0 the head is dense hidden -> relu -> dense 4.
inline network<double> small_cnn(std::uint64_t seed, index_t hidden = 0) {
  rng_t rng(seed);
  network<double> net;
  conv2d<double> conv(shape{1, 6, 6}, {.out_channels = 3, .kernel = 3, .padding = 1}, rng);
  max_pool2d<double> pool(conv.output_shape(), 2);
  net << conv << relu<double>(conv.output_shape()) << pool << flatten<double>(pool.output_shape());
  if (hidden > 0)
    net << dense<double>(pool.output_shape().size(), hidden, rng) << relu<double>(shape::flat(hidden))
        << dense<double>(hidden, 4, rng);
  else
    net << dense<double>(pool.output_shape().size(), 4, rng);
  return net;
}

inline std::vector<double> parameter_values(network<double>& net) {
  std::vector<double> out;
  for (const auto& p : net.parameters()) out.insert(out.end(), p.value, p.value + p.size);
  return out;
}

}  // namespace slimnn::testing
