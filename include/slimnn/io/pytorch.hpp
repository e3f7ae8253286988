// slimnn/io/pytorch.hpp — reference layers from PyTorch weights exported as safetensors:
//
//   from safetensors.torch import save_file
//   save_file(model.state_dict(), "model.safetensors")
//
// torch.nn.Linear stores "<module>.weight" [out_features, in_features] and
// "<module>.bias" [out_features]; torch.nn.Conv2d stores "<module>.weight"
// [out_channels, in_channels, k, k] and "<module>.bias" [out_channels]. Both are read
// exactly as laid out (F32, F64, F16 and BF16 are converted to T). Conv2d's input shape,
// stride and padding are not in the file, so the caller gives them. Files written by
// torch.save (.pt, .pth: Python pickles) are not supported.
// Every problem (missing or mis-shaped tensor, wrong sizes) raises format_error naming the
// file and the tensor. Complexity: one pass over the parameters.
//
// Component: slimnn::io.
#pragma once

#include <string>
#include <vector>

#include "slimnn/core/tensor_io.hpp"
#include "slimnn/layers/conv2d.hpp"
#include "slimnn/layers/dense.hpp"
#include "slimnn/net/network.hpp"

namespace slimnn::pytorch {

/// A dense layer from torch.nn.Linear `module` ("fc1", "0", "features.3", ...).
/// `inputs` / `outputs`, when positive, are checked against the weight's shape.
template <class T>
dense<T> load_linear(const tensor_source& in, const std::string& module, index_t inputs = 0, index_t outputs = 0) {
  const std::string w = module + ".weight";
  const auto& s = in.shape_of(w, 2, "[out_features, in_features]");
  if ((inputs > 0 && s[1] != std::uint64_t(inputs)) || (outputs > 0 && s[0] != std::uint64_t(outputs)))
    in.fail(w, detail::cat("shape ", shape_string(s), ", expected [",
                           outputs > 0 ? std::to_string(outputs) : std::string("out_features"), ", ",
                           inputs > 0 ? std::to_string(inputs) : std::string("in_features"), "]"));
  return dense<T>::load(in, module + ".");
}

/// A conv2d layer from torch.nn.Conv2d `module` (square kernel, groups = 1,
/// dilation = 1) applied to inputs of shape `input` with the given stride and padding.
template <class T>
conv2d<T> load_conv2d(const tensor_source& in, const std::string& module, shape input, index_t stride = 1,
                      index_t padding = 0) {
  return conv2d<T>::load(in, module + ".", input, stride, padding);
}

/// Fills every dense and conv2d layer of `net` (an architecture built in C++) from the
/// PyTorch modules named in `modules`, one per layer with parameters, in order; with no
/// names, layer i reads module "<i>", as in an nn.Sequential whose layers match `net`
/// one to one. Geometry (input shape, stride, padding) comes from the existing layers.
/// config_error if a layer with parameters is neither dense nor conv2d, or if the number
/// of names does not match; format_error for problems in the file.
template <class T>
void load_parameters(network<T>& net, const tensor_source& in, const std::vector<std::string>& modules = {}) {
  std::size_t next = 0, with_parameters = 0;
  for (std::size_t i = 0; i < net.size(); ++i) with_parameters += !net[i].parameters().empty();
  detail::require<config_error>(modules.empty() || modules.size() == with_parameters, "pytorch::load_parameters: ",
                                modules.size(), " module names for ", with_parameters, " layers with parameters");
  for (std::size_t i = 0; i < net.size(); ++i) {
    auto& layer = net[i];
    if (layer.parameters().empty()) continue;
    const std::string module = modules.empty() ? std::to_string(i) : modules[next++];
    if (auto* d = layer.template get<dense<T>>()) {
      *d = load_linear<T>(in, module, d->input_shape().size(), d->output_shape().size());
    } else if (auto* c = layer.template get<conv2d<T>>()) {
      const std::string w = module + ".weight";
      const auto& s = in.shape_of(w, 4, "[out_channels, in_channels, kernel, kernel]");
      if (s[0] != std::uint64_t(c->out_channels()) || s[2] != std::uint64_t(c->kernel()))
        in.fail(w, detail::cat("shape ", shape_string(s), ", expected [", c->out_channels(), ", ", c->input_shape().c,
                               ", ", c->kernel(), ", ", c->kernel(), "]"));
      *c = load_conv2d<T>(in, module, c->input_shape(), c->stride(), c->padding());
    } else {
      throw config_error(detail::cat("pytorch::load_parameters: layer ", i, " (", describe(layer),
                                     ") is neither dense nor conv2d; load PyTorch weights into reference layers and "
                                     "convert afterwards"));
    }
  }
}

}  // namespace slimnn::pytorch
