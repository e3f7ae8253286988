// examples/baselines.hpp — the two reference networks every example trains on
// Fashion-MNIST, their training recipes, and a parameter cache (safetensors files).
//
//   mlp: 784 -> dense 1024 -> relu -> dense 1024 -> relu -> dense 10
//   cnn: 1x28x28 -> conv 3x3 32 (pad 1) -> relu -> max_pool 2
//                -> conv 3x3 64 (pad 1) -> relu -> max_pool 2 -> flatten 3136
//                -> dense 128 -> relu -> dense 10
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>

#include "slimnn/slimnn.hpp"

#include "arguments.hpp"

namespace examples {

using namespace slimnn;

inline network<float> make_mlp(rng_t& rng) {
  network<float> net;
  net << dense<float>(784, 1024, rng) << relu<float>(shape::flat(1024)) << dense<float>(1024, 1024, rng)
      << relu<float>(shape::flat(1024)) << dense<float>(1024, 10, rng);
  return net;
}

inline network<float> make_cnn(rng_t& rng) {
  network<float> net;
  conv2d<float> conv1(shape{1, 28, 28}, {.out_channels = 32, .kernel = 3, .padding = 1}, rng);
  const shape a = conv1.output_shape();
  max_pool2d<float> pool1(a, 2);
  conv2d<float> conv2(pool1.output_shape(), {.out_channels = 64, .kernel = 3, .padding = 1}, rng);
  const shape b = conv2.output_shape();
  max_pool2d<float> pool2(b, 2);
  net << conv1 << relu<float>(a) << pool1 << conv2 << relu<float>(b) << pool2
      << flatten<float>(pool2.output_shape()) << dense<float>(pool2.output_shape().size(), 128, rng)
      << relu<float>(shape::flat(128)) << dense<float>(128, 10, rng);
  return net;
}

/// How each baseline is trained (Adam with cosine decay; see README for the numbers):
/// epochs, batch, learning rate, weight decay (slimnn/train/recipe.hpp).
using recipe = training_recipe;
inline recipe mlp_recipe() { return {8, 128, 1e-3, 1e-4}; }
inline recipe cnn_recipe() { return {4, 64, 2e-3, 1e-4}; }

/// fit's threads for `net`: data-parallel (each thread trains on its share of every batch)
/// unless the network holds only dense layers and activations. Such a network spends its
/// time in large GEMMs, which Eigen splits across the threads better than two half-batch
/// replicas do (the MLP trains about 1.3x faster that way on 2 cores); every other layer
/// kind has per-sample work besides its GEMMs (im2col, pooling, FFTs, sparse stages) that
/// only data parallelism spreads (the CNN trains about 2.8x faster than with Eigen's
/// threads alone).
inline int data_parallel_threads(const network<float>& net, int threads) {
  for (const auto& layer : net)
    if (!layer.get<dense<float>>() && !layer.get<relu<float>>() && !layer.get<flatten<float>>()) return threads;
  return 1;
}

/// Trains `net` with `r` on `threads` threads (Eigen's or data-parallel, as
/// data_parallel_threads decides); in quick mode only a few batches per epoch.
inline std::vector<epoch_report> train_with(network<float>& net, const recipe& r, const dataset<float>& train,
                                            const dataset<float>& test, const std::string& label,
                                            std::uint64_t seed, int threads, index_t max_batches = 0) {
  set_threads(threads);
  return slimnn::train(net, r, train, &test,
                       {.seed = seed, .max_batches = max_batches, .label = label,
                        .threads = data_parallel_threads(net, threads)});
}

// --- parameter cache: a safetensors network file (slimnn/io/network_io.hpp) ---

/// Saves `net` (architecture and parameters) to a safetensors file.
inline void save_parameters(const network<float>& net, const std::filesystem::path& path) { save(net, path); }

/// Loads a network saved by save_parameters into `net`, which must have the same
/// architecture (format_error naming the file otherwise).
inline void load_parameters(network<float>& net, const std::filesystem::path& path) {
  auto cached = network<float>::load(path);
  bool same = cached.size() == net.size();
  for (std::size_t i = 0; same && i < net.size(); ++i) same = describe(cached[i]) == describe(net[i]);
  detail::require<format_error>(same, path.string(), ": holds a different architecture than the baseline:\n",
                                cached.summary(), "expected:\n", net.summary());
  net = std::move(cached);
}

/// Arguments shared by the examples: --data DIR --out DIR --seed N --threads N --quick
/// --retrain --schemes a,b.
struct options {
  std::filesystem::path data = fashion_mnist_default_dir;
  std::filesystem::path out = ".";
  std::uint64_t seed = 1;
  bool quick = false;
  bool retrain = false;
  int threads = 2;
  std::vector<std::string> schemes;  ///< --schemes a,b (compare_schemes)
};

/// Parses the shared options; usage_error (exit status 2 in run_example) on a bad one.
/// A program that takes only some of them lists those in `accepted`.
inline options parse_options(int argc, char** argv, std::initializer_list<std::string_view> accepted = {}) {
  options o;
  argument_reader args(argc, argv);
  while (args.next()) {
    if (accepted.size() && std::find(accepted.begin(), accepted.end(), args.arg()) == accepted.end()) args.unknown();
    if (args.is("--data")) o.data = args.value();
    else if (args.is("--out")) o.out = args.value();
    else if (args.is("--seed")) o.seed = args.unsigned_number();
    else if (args.is("--threads")) o.threads = args.count(1024);
    else if (args.is("--quick")) o.quick = true;
    else if (args.is("--retrain")) o.retrain = true;
    else if (args.is("--schemes")) {
      std::stringstream list(args.value());
      for (std::string name; std::getline(list, name, ',');)
        if (!name.empty()) o.schemes.push_back(name);
      if (o.schemes.empty()) throw usage_error("--schemes needs at least one scheme name");
    } else {
      args.unknown();
    }
  }
  return o;
}

}  // namespace examples
