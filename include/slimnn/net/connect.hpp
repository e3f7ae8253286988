// slimnn/net/connect.hpp — the shape check made when one layer is connected to the next.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <string>

#include "slimnn/core/error.hpp"
#include "slimnn/core/shape.hpp"

namespace slimnn::detail {

/// Throws shape_error unless layer `index`'s input matches layer `index - 1`'s output:
/// "layer 2 (dense<float>, 1024->10): expects 1024 inputs, layer 1 (relu<float>, 512) gives 512"
inline void check_connection(std::size_t position, const std::string& description, shape input,
                             const std::string& previous_description, shape previous_output) {
  if (input == previous_output) return;
  throw shape_error(cat("layer ", position, " (", description, "): expects ", input.as_input(),
                        ", layer ", position - 1, " (", previous_description, ") gives ",
                        previous_output.as_output()));
}

}  // namespace slimnn::detail
