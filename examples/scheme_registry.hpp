// examples/scheme_registry.hpp — how a compression scheme plugs into compare_schemes.
//
// A scheme is a name plus one function: given the network kind ("mlp" or "cnn"), the
// trained baseline network and the run's context, it returns the converted networks,
// one per setting (an empty list when the scheme does not apply to that kind). Each
// scheme lives in examples/schemes/<name>.cpp, its own translation unit (a parallel
// build compiles them side by side), and defines the <name>_scheme() declared below.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "baselines.hpp"

namespace examples {

struct context {
  const fashion_mnist<float>& data;
  const options& opt;

  /// Batches per epoch for fine-tuning: a handful in --quick mode, else all (0).
  index_t max_batches() const { return opt.quick ? 5 : 0; }
  /// Fine-tunes a converted network with `r` (shortened in --quick mode).
  void fine_tune(network<float>& net, recipe r, const std::string& label) const {
    if (opt.quick) r.epochs = 1;
    train_with(net, r, data.train, data.test, label, opt.seed + 1, opt.threads, max_batches());
  }
};

struct variant {
  std::string setting;  ///< "k64", "s8-seg25", "u16", "m4-d10"; "-" for the uncompressed network
  network<float> net;
};

struct scheme {
  std::string name;
  std::function<std::vector<variant>(const std::string& kind, const network<float>& baseline, const context&)>
      convert;
};

scheme block_circulant_scheme();
scheme smartdeal_scheme();
scheme crew_scheme();
scheme kdconv_scheme();
scheme mixed_scheme();
scheme auto_scheme();

/// Copies `baseline`, replacing each layer i for which replace(i, layer) returns a layer.
template <class Replace>
network<float> rebuild(const network<float>& baseline, Replace&& replace) {
  network<float> out;
  for (std::size_t i = 0; i < baseline.size(); ++i) {
    std::optional<any_layer<float>> swapped = replace(i, baseline[i]);
    out << (swapped ? std::move(*swapped) : baseline[i]);
  }
  return out;
}

}  // namespace examples
