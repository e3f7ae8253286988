// slimnn/core/conversion.hpp — what converting one layer to a compression scheme returns.
//
// Every scheme converts a trained layer with the one verb compress(layer, settings):
//   compress(dense,  block_circulant_settings)  -> conversion<block_circulant_dense<T>>
//   compress(conv2d, block_circulant_settings)  -> conversion<block_circulant_conv2d<T>>
//   compress(dense,  smartdeal_settings)        -> conversion<smartdeal_dense<T>>
//   compress(conv2d, smartdeal_settings)        -> conversion<smartdeal_conv2d<T>>
//   compress(dense,  crew_settings)             -> conversion<crew_dense<T>>
//   compress(conv2d, kdconv_settings)           -> conversion<kdconv_conv2d<T>>
// and compress(network, plan) (compress/compress.hpp) applies them layer by layer.
// The result is the converted layer and a conversion_report with the same fields for
// every scheme:
//   relative_error  ||W' - W||_F / ||W||_F, W' the converted layer's to_reference()
//                   weight and W the original's, in double
//   stored_bytes    the converted layer's cost().param_bytes (its file's tensor bytes)
//   macs            the converted layer's cost().macs per sample
//   dense_bytes, dense_macs   the same for the original layer
//   details         scheme-specific figures, by name, in a fixed order per scheme
//                   (SmartDeal's densities, kdconv's error after each stage, ...);
//                   figure(name) reads one
// make_conversion_report builds one from the two layers. Plain values: thread-safe to
// share. Cost: one dense expansion of the converted layer.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

/// The report of one layer conversion (see the top of this file).
struct conversion_report {
  double relative_error = 0;
  std::uint64_t stored_bytes = 0;
  std::uint64_t macs = 0;
  std::uint64_t dense_bytes = 0;
  std::uint64_t dense_macs = 0;
  std::vector<std::pair<std::string, double>> details;

  /// dense_bytes / stored_bytes.
  double compression() const { return double(dense_bytes) / double(std::max<std::uint64_t>(stored_bytes, 1)); }
  /// dense_macs / macs.
  double mac_ratio() const { return double(dense_macs) / double(std::max<std::uint64_t>(macs, 1)); }
  /// The scheme-specific figure `name`; config_error when the scheme reports no such figure.
  double figure(std::string_view name) const {
    for (const auto& [key, value] : details)
      if (key == name) return value;
    throw config_error(detail::cat("conversion report has no figure '", name, "'"));
  }
  /// "error 0.41, 5081 bytes (14.6x smaller), 9216 MACs (3.2x fewer), density 0.3".
  std::string str() const {
    std::string out = detail::cat("error ", relative_error, ", ", stored_bytes, " bytes (", compression(),
                                  "x smaller), ", macs, " MACs (", mac_ratio(), "x fewer)");
    for (const auto& [key, value] : details) out += detail::cat(", ", key, " ", value);
    return out;
  }
};

/// A converted layer and its report.
template <class L>
struct conversion {
  L layer;
  conversion_report report;
};

/// The report of converting `original` (dense<T> or conv2d<T>) to `converted`, whose
/// to_reference() is a layer of the original's type.
template <class Original, class Converted>
conversion_report make_conversion_report(const Original& original, const Converted& converted,
                                         std::vector<std::pair<std::string, double>> details = {}) {
  const auto before = original.cost(), after = converted.cost();
  conversion_report r;
  r.relative_error = detail::relative_error(converted.to_reference().weight().template cast<double>(),
                                            original.weight().template cast<double>());
  r.stored_bytes = after.param_bytes;
  r.macs = after.macs;
  r.dense_bytes = before.param_bytes;
  r.dense_macs = before.macs;
  r.details = std::move(details);
  return r;
}

}  // namespace slimnn
