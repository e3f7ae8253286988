// train_comet — trains the baseline CNN and MLP on Fashion-MNIST with each activation
// store mode (none, lossless, lossy with COMET's adaptive bound, and lossy at fixed
// bounds), at batch 256 and at the batch the baselines use, and writes comet.csv:
//   network,mode,error_bound,batch,activation_peak_bytes,ratio,accuracy,epoch_seconds,epochs
// activation_peak_bytes is the most the layers kept between a step's forward_train and
// its backward (all data-parallel parts); ratio is what mode none keeps for the same step
// over that; accuracy is on the test set after training; epoch_seconds is the mean
// training time of an epoch (the test evaluation excluded). The CNN at batch 256 runs
// the baseline recipe (4 epochs) in modes none, lossless and lossy (adaptive); the sweep
// over fixed bounds, the baseline batch and the MLP run fewer epochs (the epochs column).
//
//   train_comet [--data DIR] [--out DIR] [--seed N] [--threads N] [--quick]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "baselines.hpp"
#include "slimnn/comet/error_bounded.hpp"

namespace {

using namespace examples;

const char* const usage =
    "usage: train_comet [--data DIR] [--out DIR] [--seed N] [--threads N] [--quick]\n"
    "  trains the CNN and the MLP with each activation store mode; writes DIR/comet.csv\n"
    "  --quick   a few batches per epoch: a smoke test, not a measurement\n";

struct run_spec {
  std::string network;  ///< "cnn" or "mlp"
  std::string mode;     ///< none, lossless, lossy
  double bound;         ///< lossy: the fixed relative bound, or 0 for the adaptive one
  index_t batch;
  int epochs;
};

struct run_result {
  std::uint64_t peak_bytes = 0, raw_bytes = 0;
  double accuracy = 0, epoch_seconds = 0, codec_seconds = 0;
};

activation_store store_for(const run_spec& r) {
  if (r.mode == "none") return {activation_mode::none};
  if (r.mode == "lossless") return {activation_mode::lossless};
  return r.bound > 0 ? comet::lossy_store(r.bound) : comet::adaptive_store();
}

run_result train_one(const run_spec& r, const fashion_mnist<float>& data, const options& opt) {
  rng_t rng(opt.seed);
  auto net = r.network == "mlp" ? make_mlp(rng) : make_cnn(rng);
  net.set_activation_store(store_for(r));
  const recipe base = r.network == "mlp" ? mlp_recipe() : cnn_recipe();
  adam<float> optimizer({.learning_rate = float(base.learning_rate), .weight_decay = float(base.weight_decay)});
  set_threads(opt.threads);
  const auto reports = fit(net, optimizer, data.train, nullptr,
                           {.epochs = r.epochs, .batch_size = r.batch, .seed = opt.seed, .max_batches = opt.quick ? 5 : 0,
                            .label = r.network + " " + r.mode + " b" + std::to_string(r.batch),
                            .threads = data_parallel_threads(net, opt.threads)});
  run_result out;
  for (const auto& e : reports) {
    if (e.activation_peak_bytes > out.peak_bytes) out.peak_bytes = e.activation_peak_bytes, out.raw_bytes = e.activation_raw_bytes;
    out.epoch_seconds += e.seconds / double(reports.size());
    out.codec_seconds += e.codec_seconds;
  }
  out.accuracy = evaluate(net, data.test, 500, opt.quick ? 1000 : 0, opt.threads).accuracy;
  const auto& layers = reports.back().activation_layers;
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (layers[i].raw_bytes > 0)
      std::printf("    layer %zu %-28s keeps %10llu of %10llu bytes (%.1fx)\n", i, describe(net[i]).substr(0, 28).c_str(),
                  (unsigned long long)layers[i].bytes, (unsigned long long)layers[i].raw_bytes,
                  double(layers[i].raw_bytes) / double(std::max<std::uint64_t>(layers[i].bytes, 1)));
  return out;
}

int run(int argc, char** argv) {
  const auto opt = parse_options(argc, argv, {"--data", "--out", "--seed", "--threads", "--quick"});
  std::filesystem::create_directories(opt.out);
  const auto data = load_fashion_mnist<float>(opt.data, opt.quick ? 2000 : 0);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("Fashion-MNIST: %ld training, %ld test images (CPU only, %d threads)\n", long(data.train.size()),
              long(data.test.size()), opt.threads);

  std::vector<run_spec> runs;
  for (const char* mode : {"none", "lossless", "lossy"}) runs.push_back({"cnn", mode, 0, 256, 4});
  for (const double bound : {1e-1, 1e-2, 1e-3}) runs.push_back({"cnn", "lossy", bound, 256, 1});
  for (const char* mode : {"none", "lossless", "lossy"}) runs.push_back({"cnn", mode, 0, cnn_recipe().batch_size, 1});
  for (const char* mode : {"none", "lossless", "lossy"}) runs.push_back({"mlp", mode, 0, 256, 2});
  for (const double bound : {1e-1, 1e-2, 1e-3}) runs.push_back({"mlp", "lossy", bound, 256, 1});
  for (const char* mode : {"none", "lossless", "lossy"}) runs.push_back({"mlp", mode, 0, mlp_recipe().batch_size, 1});

  const auto csv_path = opt.out / "comet.csv";
  std::ofstream csv(csv_path);
  detail::require<format_error>(bool(csv), csv_path.string(), ": cannot open for writing");
  csv << "network,mode,error_bound,batch,activation_peak_bytes,ratio,accuracy,epoch_seconds,epochs\n";
  std::printf("\n%-4s %-9s %-9s %5s %14s %7s %9s %9s %6s\n", "net", "mode", "bound", "batch", "peak bytes", "ratio",
              "accuracy", "epoch s", "epochs");
  for (const auto& r : runs) {
    const auto result = train_one(r, data, opt);
    const std::string bound = r.mode != "lossy" ? "-" : r.bound > 0 ? detail::cat(r.bound) : "adaptive";
    const double ratio = double(result.raw_bytes) / double(std::max<std::uint64_t>(result.peak_bytes, 1));
    std::printf("%-4s %-9s %-9s %5ld %14llu %6.1fx %8.2f%% %9.2f %6d   (codec %.2f s)\n", r.network.c_str(),
                r.mode.c_str(), bound.c_str(), long(r.batch), (unsigned long long)result.peak_bytes, ratio,
                100 * result.accuracy, result.epoch_seconds, r.epochs, result.codec_seconds);
    csv << r.network << ',' << r.mode << ',' << bound << ',' << r.batch << ',' << result.peak_bytes << ',' << ratio
        << ',' << result.accuracy << ',' << result.epoch_seconds << ',' << r.epochs << '\n';
  }
  detail::require<format_error>(bool(csv), csv_path.string(), ": write failed");
  std::printf("\nwrote %s\n", csv_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_example("train_comet", usage, [&] { return run(argc, argv); }); }
