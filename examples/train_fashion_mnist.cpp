// Trains the baseline MLP and CNN (examples/baselines.hpp) from scratch on
// Fashion-MNIST and reports test accuracy and training time.
//
//   train_fashion_mnist [--data DIR] [--seed N] [--threads N] [--quick]
#include <chrono>
#include <cstdio>

#include "baselines.hpp"

namespace {

const char* const usage =
    "usage: train_fashion_mnist [--data DIR] [--seed N] [--threads N] [--quick]\n"
    "  trains the 784-1024-1024-10 MLP and the two-conv CNN on Fashion-MNIST\n";

int run(int argc, char** argv) {
  using namespace examples;
  const auto opt = parse_options(argc, argv, {"--data", "--seed", "--threads", "--quick"});
  set_threads(opt.threads);
  const auto data = load_fashion_mnist<float>(opt.data, opt.quick ? 2000 : 0);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("Fashion-MNIST: %ld training, %ld test images; %d threads\n", long(data.train.size()),
              long(data.test.size()), Eigen::nbThreads());

  for (const std::string which : {"mlp", "cnn"}) {
    rng_t rng(opt.seed);
    auto net = which == "mlp" ? make_mlp(rng) : make_cnn(rng);
    std::printf("\n%s:\n%s", which.c_str(), net.summary().c_str());
    const auto start = std::chrono::steady_clock::now();
    train_with(net, which == "mlp" ? mlp_recipe() : cnn_recipe(), data.train, data.test, which, opt.seed,
               opt.threads, opt.quick ? 10 : 0);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto result = evaluate(net, data.test, 500, 0, opt.threads);
    std::printf("%s: test accuracy %.2f %%, test loss %.4f, trained in %.1f s\n", which.c_str(),
                100 * result.accuracy, result.loss, seconds);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_example("train_fashion_mnist", usage, [&] { return run(argc, argv); });
}
