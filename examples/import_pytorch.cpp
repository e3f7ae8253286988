// Loads PyTorch weights exported as safetensors into one of the baseline architectures
// (examples/baselines.hpp) and evaluates the network on the Fashion-MNIST test set.
//
//   import_pytorch --arch mlp|cnn [--modules a,b,...] [--data DIR] [--threads N] MODEL.safetensors
//   import_pytorch MODEL.safetensors          (a network saved by slimnn: architecture included)
//
// By default layer i of the architecture reads the tensors "<i>.weight" and "<i>.bias",
// the names of an nn.Sequential whose layers match it one to one; --modules names the
// modules of the layers with parameters instead (e.g. fc1,fc2,fc3). Run with --help for
// the Python side.
#include <cstdio>
#include <sstream>

#include "baselines.hpp"

namespace {

const char* const usage = R"(usage: import_pytorch --arch mlp|cnn [--modules a,b,...] [--data DIR] [--threads N] MODEL.safetensors
       import_pytorch [--data DIR] [--threads N] NETWORK.safetensors   (a file saved by slimnn)

Loads a PyTorch model exported as safetensors into a slimnn network<float> and reports
its accuracy on the Fashion-MNIST test set.

Any nn.Sequential or chain-of-layers model: export it with its architecture, then load
it here without --arch (Linear, Conv2d, ReLU, MaxPool2d, AvgPool2d, Flatten):
    tools/export_pytorch.py models.py:make_model model.safetensors --input-shape 1,28,28

The two baseline architectures, from the weights alone (pip install safetensors):
    from safetensors.torch import save_file
    model = ...  # your trained torch.nn.Module, e.g. one of the nn.Sequential below
    save_file(model.state_dict(), "model.safetensors")
Files written by torch.save (.pt, .pth: Python pickles) are not supported; load the
model in Python and export its state_dict as above.

--arch mlp is  nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, 10))
--arch cnn is  nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
trained on images scaled to [0, 1] (transforms.ToTensor(), no normalisation), giving logits.

Tensor names: by default layer i reads "<i>.weight" and "<i>.bias" (the names of the
nn.Sequential above: 0, 2, 4 for the mlp; 0, 3, 7, 9 for the cnn). For a model whose
layers are attributes, list the modules with parameters in order, e.g.
    --modules fc1,fc2,fc3                (mlp)
    --modules conv1,conv2,fc1,fc2        (cnn)
    --modules net.0,net.2,net.4          (an nn.Sequential stored as self.net)

Options:
  --arch mlp|cnn    the architecture the weights belong to
  --modules LIST    comma-separated module names of the layers with parameters
  --data DIR        Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)
  --threads N       threads for Eigen's matrix products (default 2)
)";

struct arguments {
  std::string arch;
  std::vector<std::string> modules;
  std::filesystem::path data = slimnn::fashion_mnist_default_dir;
  std::filesystem::path model;
  int threads = 2;
};

arguments parse(int argc, char** argv) {
  arguments a;
  examples::argument_reader args(argc, argv);
  while (args.next()) {
    if (args.is("--arch")) {
      a.arch = args.value();
      if (a.arch != "mlp" && a.arch != "cnn")
        throw examples::usage_error("--arch " + a.arch + ": expected mlp or cnn");
    } else if (args.is("--modules")) {
      std::stringstream list(args.value());
      for (std::string name; std::getline(list, name, ',');) a.modules.push_back(name);
    } else if (args.is("--data")) {
      a.data = args.value();
    } else if (args.is("--threads")) {
      a.threads = args.count(1024);
    } else if (args.is_option()) {
      args.unknown();
    } else {
      if (!a.model.empty())
        throw examples::usage_error("one model file only (got '" + a.model.string() + "' and '" + args.arg() + "')");
      a.model = args.arg();
    }
  }
  if (a.model.empty()) throw examples::usage_error("no model file given");
  if (!a.modules.empty() && a.arch.empty()) throw examples::usage_error("--modules needs --arch");
  return a;
}

int run(int argc, char** argv) {
  using namespace examples;
  const auto args = parse(argc, argv);
  set_threads(args.threads);
  const safetensors_file file(args.model);

  network<float> net;
  if (args.arch.empty()) {
    detail::require<config_error>(file.metadata().count("slimnn.architecture") != 0, args.model.string(),
                                  ": has no slimnn architecture; say which one it is with --arch mlp|cnn");
    net = load_network<float>(file);
  } else {
    rng_t rng(1);
    net = args.arch == "mlp" ? make_mlp(rng) : make_cnn(rng);
    try {
      pytorch::load_parameters(net, file, args.modules);
    } catch (const format_error& e) {
      std::string names;
      for (std::size_t i = 0; i < file.size() && i < 12; ++i) names += "  " + file.names()[i] + "\n";
      std::fprintf(stderr, "%s\nthe file holds %zu tensors:\n%s%s", e.what(), file.size(), names.c_str(),
                   file.size() > 12 ? "  ...\n" : "");
      return 1;
    }
  }
  std::printf("%s: %zu tensors -> %s\n%s", args.model.c_str(), file.size(), describe(net).c_str(),
              net.summary().c_str());
  const auto data = load_fashion_mnist<float>(args.data);
  const auto result = evaluate(net, data.test);
  std::printf("Fashion-MNIST test set: accuracy %.2f %%, loss %.4f (%ld images)\n", 100 * result.accuracy,
              result.loss, long(result.samples));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_example("import_pytorch", usage, [&] { return run(argc, argv); });
}
