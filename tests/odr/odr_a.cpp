// ODR check, translation unit A: includes the umbrella header and instantiates a layer.
// Linked with odr_b.cpp; a non-inline definition in any header breaks the link.
#include <slimnn/slimnn.hpp>

#include "odr_layers.hpp"

float odr_a_sum() {
  // W = 1, b = 0.5, x = 1  =>  each of 3 outputs is 4.5, sum 13.5.
  slimnn::dense<float> layer(4, 3);
  layer.weight().setConstant(1.0f);
  layer.bias().setConstant(0.5f);
  slimnn::matrix<float> x = slimnn::matrix<float>::Ones(4, 1);
  slimnn::matrix<float> y;
  layer.forward(x, y);
  return y.sum();
}

std::vector<double> odr_a_compressed() { return compressed_layer_results(); }
