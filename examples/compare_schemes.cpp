// compare_schemes — the main job: train (or load) the baseline MLP and CNN on
// Fashion-MNIST, convert them with every registered compression scheme and setting,
// optionally fine-tune, then report accuracy, stored bytes, MACs and single-thread
// latency at batch 1 and batch 64, and batch-64 latency on 2 inference threads, side by
// side, with each variant's speed-up over the dense network timed in turn with it.
// Writes <out>/compare_schemes.csv.
//
//   compare_schemes [--data DIR] [--out DIR] [--seed N] [--threads N] [--quick] [--retrain]
//                   [--schemes a,b,...]
//
// Schemes plug in through examples/scheme_registry.hpp.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <vector>

#include "scheme_registry.hpp"

namespace {

using namespace examples;

std::vector<scheme> registered_schemes() {
  return {{"dense", [](const std::string&, const network<float>& baseline,
                       const context&) { return std::vector<variant>{{"-", baseline}}; }},
          block_circulant_scheme(), smartdeal_scheme(), crew_scheme(), kdconv_scheme(), mixed_scheme(),
          auto_scheme()};
}

/// The schemes named in --schemes (all when it is empty); unknown names raise.
std::vector<scheme> selected_schemes(const std::vector<std::string>& names) {
  auto all = registered_schemes();
  if (names.empty()) return all;
  std::vector<scheme> out;
  for (const auto& name : names) {
    const auto it = std::find_if(all.begin(), all.end(), [&](const scheme& s) { return s.name == name; });
    if (it == all.end()) {
      std::string known;
      for (const auto& s : all) known += (known.empty() ? "" : ", ") + s.name;
      throw usage_error("--schemes: unknown scheme '" + name + "' (known: " + known + ")");
    }
    out.push_back(*it);
  }
  return out;
}

/// One timed run: `net` on the calling thread (pool nullptr) or on that pool's threads.
struct timed_run {
  const network<float>* net;
  thread_pool* pool;
};

/// Median times of each run's net.forward on `x` (batch 1: each call on the next column of
/// x in turn, as select_plan times it; else the first `batch` columns), in microseconds.
/// The runs take turns in 6 rounds, each run back to back for 1/6 of its time after one
/// untimed call, so that every median sees the same machine (a shared host's speed drifts
/// within a second, and more between minutes) while each call still finds warm caches and
/// pool threads, as repeated inference does.
std::vector<double> median_latencies_us(const std::vector<timed_run>& runs, const matrix<float>& x, index_t batch,
                                        bool quick) {
  constexpr int rounds = 6;
  matrix<float> y;
  std::size_t call = 0;  // batch 1 cycles through the columns of x, one per call
  const auto forward = [&](const timed_run& run) {
    const const_matrix_ref<float> in =
        batch == 1 ? const_matrix_ref<float>(x.col(index_t(call++ % std::size_t(x.cols())))) : x.leftCols(batch);
    if (run.pool) run.net->forward(in, y, *run.pool);
    else run.net->forward(in, y);
  };
  const auto slice = std::chrono::microseconds(quick ? 20000 / rounds : 300000 / rounds);
  std::vector<std::vector<double>> times(runs.size());
  for (int round = 0; round < rounds; ++round)
    for (std::size_t i = 0; i < runs.size(); ++i) {
      forward(runs[i]);  // warm up buffers, caches and the pool's threads
      const auto start = std::chrono::steady_clock::now();
      do {
        const auto t0 = std::chrono::steady_clock::now();
        forward(runs[i]);
        times[i].push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      } while (std::chrono::steady_clock::now() - start < slice && times[i].size() < 2000);
    }
  std::vector<double> medians;
  for (auto& t : times) {
    std::nth_element(t.begin(), t.begin() + long(t.size() / 2), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

struct row {
  std::string network, scheme, setting;
  double accuracy;
  std::uint64_t param_bytes;
  double compression_ratio;
  std::uint64_t macs;
  double latency_b1_us, latency_b64_us, latency_b64_t2_us;
  double speedup_b1, speedup_b64;  ///< the dense network's latency over this one's, timed in turn
};

network<float> baseline(const std::string& kind, const context& ctx) {
  rng_t rng(ctx.opt.seed);
  auto net = kind == "mlp" ? make_mlp(rng) : make_cnn(rng);
  const auto cache = ctx.opt.out / ("baseline_" + kind + "_seed" + std::to_string(ctx.opt.seed) + ".safetensors");
  if (!ctx.opt.quick && !ctx.opt.retrain && std::filesystem::exists(cache)) {
    load_parameters(net, cache);
    std::printf("%s: loaded cached weights from %s\n", kind.c_str(), cache.c_str());
    return net;
  }
  auto r = kind == "mlp" ? mlp_recipe() : cnn_recipe();
  if (ctx.opt.quick) r.epochs = 1;
  std::printf("%s: training the baseline (%d epochs)\n", kind.c_str(), r.epochs);
  std::fflush(stdout);
  train_with(net, r, ctx.data.train, ctx.data.test, kind, ctx.opt.seed, ctx.opt.threads, ctx.opt.quick ? 20 : 0);
  if (!ctx.opt.quick) save_parameters(net, cache);
  return net;
}

void print_table(const std::vector<row>& rows) {
  std::printf("\n%-4s %-16s %-16s %9s %12s %8s %12s %12s %13s %13s %8s %8s\n", "net", "scheme", "setting",
              "accuracy", "param bytes", "ratio", "MACs/sample", "b1 us", "b64 us", "b64 2t us", "b1 x", "b64 x");
  for (const auto& r : rows)
    std::printf("%-4s %-16s %-16s %8.2f%% %12llu %7.1fx %12llu %12.1f %13.1f %13.1f %7.2fx %7.2fx\n",
                r.network.c_str(), r.scheme.c_str(), r.setting.c_str(), 100 * r.accuracy,
                (unsigned long long)r.param_bytes, r.compression_ratio, (unsigned long long)r.macs, r.latency_b1_us,
                r.latency_b64_us, r.latency_b64_t2_us, r.speedup_b1, r.speedup_b64);
}

void write_csv(const std::vector<row>& rows, const std::filesystem::path& path) {
  std::ofstream out(path);
  detail::require<format_error>(bool(out), path.string(), ": cannot open for writing");
  out << "network,scheme,setting,accuracy,param_bytes,compression_ratio,macs_per_sample,latency_b1_us,"
         "latency_b64_us,latency_b64_t2_us,speedup_b1,speedup_b64\n";
  for (const auto& r : rows)
    out << r.network << ',' << r.scheme << ',' << r.setting << ',' << r.accuracy << ',' << r.param_bytes << ','
        << r.compression_ratio << ',' << r.macs << ',' << r.latency_b1_us << ',' << r.latency_b64_us << ','
        << r.latency_b64_t2_us << ',' << r.speedup_b1 << ',' << r.speedup_b64 << '\n';
  detail::require<format_error>(bool(out), path.string(), ": write failed");
}

const char* const usage =
    "usage: compare_schemes [--data DIR] [--out DIR] [--seed N] [--threads N] [--quick] [--retrain]\n"
      "                       [--schemes dense,block_circulant,...]\n"
      "  --data DIR   Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)\n"
      "  --out DIR    where compare_schemes.csv and cached baseline weights go (default .)\n"
      "  --quick      a few batches of training only: a smoke test, not a measurement\n"
      "  --retrain    ignore cached baseline weights\n"
      "  --schemes    comma-separated subset of the registered schemes (default: all)\n";

int run(int argc, char** argv) {
  using namespace examples;
  const auto opt = parse_options(argc, argv);
  const auto schemes = selected_schemes(opt.schemes);
  std::filesystem::create_directories(opt.out);
  const auto data = load_fashion_mnist<float>(opt.data, opt.quick ? 2000 : 0);
  std::printf("Fashion-MNIST: %ld training, %ld test images (CPU only, %d training threads)\n",
              long(data.train.size()), long(data.test.size()), opt.threads);
  const context ctx{data, opt};

  thread_pool two_threads(2);
  std::vector<row> rows;
  for (const std::string kind : {"mlp", "cnn"}) {
    set_threads(opt.threads);
    const auto base = baseline(kind, ctx);
    const double dense_bytes = double(base.cost().param_bytes);
    for (const auto& s : schemes) {
      set_threads(opt.threads);
      std::printf("%s / %s: converting\n", kind.c_str(), s.name.c_str());
      std::fflush(stdout);
      for (auto& v : s.convert(kind, base, ctx)) {
        set_threads(1);  // Eigen's GEMMs on one thread: latency is single-thread, or on our 2
        const auto c = v.net.cost();
        // The dense network takes turns with the variant, so that both see the same host.
        const timed_run one{&v.net, nullptr}, two{&v.net, &two_threads}, dense{&base, nullptr};
        const auto b1 = median_latencies_us({one, dense}, data.test.x.leftCols(latency_samples), 1, opt.quick);
        const auto b64 = median_latencies_us({one, two, dense}, data.test.x.leftCols(64), 64, opt.quick);
        row r{kind, s.name, v.setting, evaluate(v.net, data.test, 500, 0, opt.threads).accuracy, c.param_bytes,
              dense_bytes / double(c.param_bytes), c.macs, b1[0], b64[0], b64[1], b1[1] / b1[0], b64[2] / b64[0]};
        std::printf("  %-10s accuracy %.2f %%, %.1fx smaller, b1 %.1f us (%.2fx dense), b64 %.1f us (%.2fx dense; "
                    "2 threads %.1f us)\n",
                    r.setting.c_str(), 100 * r.accuracy, r.compression_ratio, r.latency_b1_us, r.speedup_b1,
                    r.latency_b64_us, r.speedup_b64, r.latency_b64_t2_us);
        std::fflush(stdout);
        rows.push_back(std::move(r));
      }
    }
  }
  print_table(rows);
  const auto csv = opt.out / "compare_schemes.csv";
  write_csv(rows, csv);
  std::printf("\nwrote %s\n", csv.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_example("compare_schemes", usage, [&] { return run(argc, argv); });
}
