// ODR check, translation unit B: the same layer type as odr_a.cpp (the linker merges
// the inline instantiations) plus a double one. Built for baseline x86-64, while odr_a.cpp
// is built for this machine.
#include <slimnn/slimnn.hpp>

#include "odr_layers.hpp"

float odr_b_sum() {
  // W = 2, b = -1, x = 1  =>  each of 3 outputs is 7, sum 21.
  slimnn::dense<float> layer(4, 3);
  layer.weight().setConstant(2.0f);
  layer.bias().setConstant(-1.0f);
  slimnn::matrix<float> x = slimnn::matrix<float>::Ones(4, 1);
  slimnn::matrix<float> y;
  layer.forward(x, y);
  return y.sum();
}

double odr_b_sum_double() {
  // W = 0.25, b = 0, x = 2 (batch of 2)  =>  each output 2, 3 outputs x 2 samples = 12.
  slimnn::dense<double> layer(4, 3);
  layer.weight().setConstant(0.25);
  slimnn::matrix<double> x = slimnn::matrix<double>::Constant(4, 2, 2.0);
  slimnn::matrix<double> y;
  layer.forward(x, y);
  return y.sum();
}

std::vector<double> odr_b_compressed() { return compressed_layer_results(); }
