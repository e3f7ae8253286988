// slimnn/core/shape.hpp — the (channels, height, width) shape that travels beside
// an activation matrix. Features in a column are ordered CHW, so a flat vector of n
// features is the shape (n, 1, 1) and a conv output flattens for free.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <ostream>
#include <string>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

struct shape {
  index_t c = 1, h = 1, w = 1;

  constexpr shape() = default;
  constexpr shape(index_t channels, index_t height, index_t width) : c(channels), h(height), w(width) {}
  /// A flat feature vector of n values.
  static constexpr shape flat(index_t n) { return {n, 1, 1}; }

  constexpr index_t size() const { return c * h * w; }
  constexpr bool is_flat() const { return h == 1 && w == 1; }
  friend constexpr bool operator==(const shape&, const shape&) = default;

  /// "784" for a flat shape, "32x14x14" for an image.
  std::string str() const {
    return is_flat() ? std::to_string(c) : detail::cat(c, 'x', h, 'x', w);
  }
  /// "784 inputs" / "input 32x14x14" style phrase used in shape errors.
  std::string as_input() const {
    return is_flat() ? detail::cat(c, " inputs") : detail::cat("input ", str(), " (", size(), " values)");
  }
  std::string as_output() const {
    return is_flat() ? std::to_string(c) : detail::cat(str(), " (", size(), " values)");
  }
  friend std::ostream& operator<<(std::ostream& out, const shape& s) { return out << s.str(); }
};

/// Throws config_error unless every extent of `s` is positive.
inline void require_valid(const shape& s, const std::string& who) {
  detail::require<config_error>(s.c > 0 && s.h > 0 && s.w > 0, who, ": shape ", s.c, 'x', s.h, 'x',
                                s.w, " must have positive extents");
}

}  // namespace slimnn
