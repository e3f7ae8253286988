// Compresses a saved network with a plan (slimnn/compress/compress.hpp), given or chosen
// under a budget (slimnn/compress/select.hpp): reads a network file written by slimnn
// (network<float>::save, or tools/export_pytorch.py), converts the layers the plan
// selects, writes the compressed network file and a per-layer CSV report, and prints the
// plan it used. A budget, --evaluate and --fine-tune use Fashion-MNIST (a network with
// 784 inputs): the budget's validation split is the last 5000 training images.
//
//   compress_model (--plan PLAN | --budget bytes/N|lat/N|macs/N) [--out FILE] [--report FILE]
//                  [--evaluate] [--fine-tune EPOCHS] [--data DIR] [--seed N] [--threads N]
//                  NETWORK.safetensors
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>

#include "baselines.hpp"
#include "slimnn/compress/select.hpp"

namespace {

const char* const usage = R"(usage: compress_model (--plan PLAN | --budget bytes/N|lat/N|macs/N) [--out FILE]
                      [--report FILE] [--evaluate] [--fine-tune EPOCHS] [--data DIR] [--seed N]
                      [--threads N] NETWORK.safetensors

Converts the layers of a saved slimnn network that PLAN selects, writes the compressed
network and a per-layer report, and prints the plan it used. PLAN is a list of rules
"selector:scheme:setting" separated by ';', for example
    "conv2d:kdconv:m4-d30; dense[0:-1]:smartdeal:s8-seg25; dense[-1]:crew:u16"
Selectors: dense, conv2d or layer, optionally [i] or [a:b] (negative counts from the end).
Settings: block_circulant k<block>; smartdeal s<width>[-seg<%>][-p<bits>][-r<rows>];
crew u<values> | q<bits>; kdconv m<bases>[-d<%>][-g<size>][-p<bits>|-km<bits>|-f32][-b<bits>].

--budget chooses the plan: each dense / conv2d layer is tried with each default setting
(validation loss with only that layer converted, exact bytes, latency timed here), and
one setting (or none) per layer is picked to lose the least within 1/N of the network's
stored bytes, batch-1 latency or MACs. It needs Fashion-MNIST (784-input networks).

Options:
  --plan PLAN        the rules ("" keeps every layer)
  --budget B         choose the plan within bytes/N, lat/N or macs/N of the network's
                     stored bytes, measured batch-1 latency or MACs
  --out FILE         the compressed network (default: NETWORK_compressed.safetensors)
  --report FILE      the per-layer CSV report (default: the --out file with .csv)
  --evaluate         Fashion-MNIST test accuracy before and after (784-input networks)
  --fine-tune N      then fine-tune N epochs on Fashion-MNIST, with the plan's recipe
                     (its fine_tune:<recipe> rule, e.g. fine_tune:e2-lr0.0005; default
                     Adam 1e-3, batch 64); the plan's rule alone fine-tunes too
  --data DIR         Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --seed N           fine-tuning seed (default 1)
  --threads N        training threads (default 2)
)";

struct arguments {
  std::optional<std::string> plan;
  std::optional<slimnn::budget> budget;
  std::filesystem::path network, out, report;
  std::filesystem::path data = slimnn::fashion_mnist_default_dir;
  bool evaluate = false;
  int fine_tune_epochs = 0;
  std::uint64_t seed = 1;
  int threads = 2;
};

arguments parse(int argc, char** argv) {
  arguments a;
  examples::argument_reader args(argc, argv);
  while (args.next()) {
    if (args.is("--plan")) a.plan = args.value();
    else if (args.is("--budget")) {
      const std::string text = args.value();
      try {
        a.budget = slimnn::budget::parse(text);
      } catch (const slimnn::config_error& e) {
        throw examples::usage_error(std::string("--budget ") + text + ": " + (e.what() + 8));  // past "slimnn: "
      }
    }
    else if (args.is("--out")) a.out = args.value();
    else if (args.is("--report")) a.report = args.value();
    else if (args.is("--evaluate")) a.evaluate = true;
    else if (args.is("--fine-tune")) a.fine_tune_epochs = args.count(1000);
    else if (args.is("--data")) a.data = args.value();
    else if (args.is("--seed")) a.seed = args.unsigned_number();
    else if (args.is("--threads")) a.threads = args.count(1024);
    else if (args.is_option()) args.unknown();
    else if (!a.network.empty())
      throw examples::usage_error("one network file only (got '" + a.network.string() + "' and '" + args.arg() + "')");
    else a.network = args.arg();
  }
  if (a.network.empty()) throw examples::usage_error("no network file given");
  if (a.plan.has_value() == a.budget.has_value()) throw examples::usage_error("give one of --plan and --budget");
  if (a.out.empty()) a.out = a.network.parent_path() / (a.network.stem().string() + "_compressed.safetensors");
  if (a.report.empty()) a.report = std::filesystem::path(a.out).replace_extension(".csv");
  return a;
}

/// A CSV field: quoted, with inner quotes doubled (layer descriptions hold commas).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void write_report(const std::vector<slimnn::layer_compression>& layers, const std::filesystem::path& path) {
  std::ofstream out(path);
  slimnn::detail::require<slimnn::format_error>(bool(out), path.string(), ": cannot open for writing");
  out << "index,rule,before,after,relative_error,stored_bytes,macs,dense_bytes,dense_macs\n";
  for (const auto& l : layers)
    out << l.index << ',' << quoted(l.rule) << ',' << quoted(l.before) << ',' << quoted(l.after) << ','
        << l.report.relative_error << ',' << l.report.stored_bytes << ',' << l.report.macs << ',' << l.report.dense_bytes << ',' << l.report.dense_macs
        << '\n';
  slimnn::detail::require<slimnn::format_error>(bool(out), path.string(), ": write failed");
}

int run(int argc, char** argv) {
  using namespace examples;
  const auto args = parse(argc, argv);
  // The block-circulant kinds are not in the core registry (they need FFTW): register
  // them, so that a network compressed with them loads again.
  register_layer_kind<block_circulant_dense<float>>();
  register_layer_kind<block_circulant_conv2d<float>>();
  const auto net = network<float>::load(args.network);
  std::printf("%s:\n%s", args.network.c_str(), net.summary().c_str());

  std::optional<plan> given;
  if (args.plan) given = plan::parse(*args.plan);
  const bool fine_tunes = args.fine_tune_epochs > 0 || (given && given->fine_tune.epochs > 0);
  const bool with_data = args.evaluate || fine_tunes || args.budget;
  std::optional<fashion_mnist<float>> data;
  if (with_data) {
    detail::require<config_error>(net.input_shape().size() == 784, args.network.string(), ": takes ",
                                  net.input_shape().size(), " inputs; --evaluate and --fine-tune use Fashion-MNIST ",
                                  "(784)");
    data = load_fashion_mnist<float>(args.data);
    std::printf("test accuracy before: %.2f %%\n", 100 * evaluate(net, data->test, 500, 0, args.threads).accuracy);
  }
  plan p;
  if (given) {
    p = *given;
  } else {
    const index_t n = std::min<index_t>(5000, data->train.size());
    const auto validation = subset(data->train, data->train.size() - n, n);
    set_threads(1);  // layer latencies on one thread
    const selection_options options{.threads = args.threads, .verbose = true};
    const auto s = select_plan(net, measure_options(net, validation, selection_candidates::defaults(), options),
                               *args.budget, validation.x, options);
    std::printf("selected within %s (%.6g) in %.1f s; predicted: validation accuracy %.2f %% (%.2f %% as given), "
                "%llu B, b1 %.1f us\n", args.budget->str().c_str(), s.limit, s.seconds, 100 * s.predicted.accuracy,
                100 * s.dense.accuracy, (unsigned long long)s.predicted.bytes, s.predicted.latency_b1_us);
    p = s.chosen;
  }
  if (args.fine_tune_epochs > 0) p.fine_tune.epochs = args.fine_tune_epochs;
  std::printf("plan: %s\n", p.str().c_str());

  const auto start = std::chrono::steady_clock::now();
  auto result = compress(net, p);
  std::printf("converted in %.1f s:\n%s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              result.summary().c_str());
  if (with_data)
    std::printf("test accuracy after conversion: %.2f %%\n",
                100 * evaluate(result.net, data->test, 500, 0, args.threads).accuracy);
  if (p.fine_tune.epochs > 0) {
    train_with(result.net, p.fine_tune, data->train, data->test, "fine-tune", args.seed, args.threads);
    std::printf("test accuracy after fine-tuning: %.2f %%\n",
                100 * evaluate(result.net, data->test, 500, 0, args.threads).accuracy);
  }
  const auto before = net.cost(), after = result.net.cost();
  std::printf("network: %llu -> %llu bytes (%.1fx smaller), %llu -> %llu MACs per sample\n",
              (unsigned long long)before.param_bytes, (unsigned long long)after.param_bytes,
              double(before.param_bytes) / double(std::max<std::uint64_t>(after.param_bytes, 1)),
              (unsigned long long)before.macs, (unsigned long long)after.macs);
  result.net.save(args.out);
  write_report(result.layers, args.report);
  std::printf("wrote %s and %s\n", args.out.c_str(), args.report.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_example("compress_model", usage, [&] { return run(argc, argv); });
}
