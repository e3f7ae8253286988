// ODR check: compressed layers built and run in one translation unit. odr_a.cpp (built
// for this machine) and odr_b.cpp (built for baseline x86-64) each include it; main checks
// that both give the same outputs and stored bytes, whatever their compile flags.
#pragma once

#include <slimnn/slimnn.hpp>

#include <vector>

namespace {

/// CREW int8 and float outputs, SmartDeal outputs, then both layers' param_bytes.
std::vector<double> compressed_layer_results() {
  using namespace slimnn;
  const index_t inputs = 67, outputs = 131;
  int8_matrix codes(outputs, inputs);
  for (index_t i = 0; i < inputs; ++i)
    for (index_t j = 0; j < outputs; ++j) codes(j, i) = std::int8_t((i * 7 + j * 3) % 16 - 8);
  const crew_dense<float> crew(quantized_weights{codes, std::vector<double>(std::size_t(outputs), 0.5), 127},
                               vector<float>::Zero(outputs));
  int8_matrix xq(inputs, 2);
  matrix<float> x(inputs, 2);
  for (index_t k = 0; k < xq.size(); ++k) {
    xq.data()[k] = std::int8_t(k % 5 == 0 ? 0 : k % 255 - 127);
    x.data()[k] = float(xq.data()[k]) / 64.0f;
  }
  int32_matrix acc;
  crew.forward_int8(xq, acc);
  matrix<float> y;
  crew.forward(x, y);
  std::vector<double> results(acc.data(), acc.data() + acc.size());
  results.insert(results.end(), y.data(), y.data() + y.size());

  smartdeal_coefficients c(outputs, 72);
  for (index_t o = 0; o < outputs; ++o)
    for (index_t col = (o % 3) * 8; col < 72; col += 24) c.insert(o, col + o % 8) = (o % 2 ? -1.0 : 1.0) * 0.25;
  const smartdeal_matrix<float> factors(outputs, inputs, 8, 0, pow2_quantizer::with_bits(4, 0),
                                        matrix<float>::Identity(8, 8), c);
  const smartdeal_dense<float> deal(factors, vector<float>::Zero(outputs));
  deal.forward(x, y);
  results.insert(results.end(), y.data(), y.data() + y.size());
  results.push_back(double(crew.cost().param_bytes));
  results.push_back(double(deal.cost().param_bytes));
  return results;
}

}  // namespace
