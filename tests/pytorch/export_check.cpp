// tests/pytorch/export_check.cpp — loads a network written by tools/export_pytorch.py and
// compares its outputs with the logits torch computed for the same inputs.
//
//   slimnn_export_check NETWORK CASES
//
// NETWORK is the exported slimnn network file. CASES is a safetensors file with
// "x" [batch, features] (one flattened sample per row, in PyTorch's C, H, W order) and
// "logits" [batch, outputs] from torch. It passes (exit 0) when
//   max |slimnn - torch| <= 1e-5 * max(1, max |torch|)
// and fails (exit 1) with the measured error otherwise, or when a file does not load.
#include <cstdio>
#include <exception>
#include <string>

#include "slimnn/io/network_io.hpp"
#include "slimnn/io/safetensors.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s NETWORK CASES\n", argv[0]);
    return 2;
  }
  try {
    const auto net = slimnn::network<float>::load(argv[1]);
    const slimnn::safetensors_file cases(argv[2]);
    const auto& x_shape = cases.shape_of("x", 2, "[batch, features]");
    const auto& y_shape = cases.shape_of("logits", 2, "[batch, outputs]");
    const auto batch = slimnn::index_t(x_shape[0]);
    const slimnn::matrix<float> x = cases.get_matrix<float>("x", batch, slimnn::index_t(x_shape[1])).transpose();
    const slimnn::matrix<double> expected =
        cases.get_matrix<double>("logits", batch, slimnn::index_t(y_shape[1])).transpose();
    slimnn::matrix<float> y;
    net.forward(x, y);
    if (y.rows() != expected.rows() || y.cols() != expected.cols()) {
      std::fprintf(stderr, "%s: slimnn gives %td x %td outputs, torch %td x %td\n", argv[1], y.rows(), y.cols(),
                   expected.rows(), expected.cols());
      return 1;
    }
    const double scale = std::max(1.0, expected.cwiseAbs().maxCoeff());
    const double error = (y.cast<double>() - expected).cwiseAbs().maxCoeff();
    const bool ok = error <= 1e-5 * scale;
    std::printf("%s: %zu layers, batch %td, max |slimnn - torch| = %.3g (%.3g of the logits' scale %.3g): %s\n",
                argv[1], net.size(), batch, error, error / scale, scale, ok ? "ok" : "FAILED (limit 1e-5)");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
