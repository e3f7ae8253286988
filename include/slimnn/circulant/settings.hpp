// slimnn/circulant/settings.hpp — the settings of a block-circulant conversion.
//
// compress(dense | conv2d, block_circulant_settings{k}) projects the layer's weight onto
// k x k circulant blocks (Frobenius-nearest: diagonal averaging, circulant_project). The
// canonical string is "k<block>" ("k64"); parse(str()) gives the same settings.
// Plain values: thread-safe to share.
//
// Component: slimnn::core (Eigen only): naming the settings needs no FFTW.
#pragma once

#include <string>
#include <string_view>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"
#include "slimnn/detail/setting_tokens.hpp"

namespace slimnn {

struct block_circulant_settings {
  index_t block = 16;  ///< k: the circulant blocks are k x k, >= 1

  void validate() const {
    detail::require<config_error>(block >= 1, "block_circulant: block size must be >= 1, got ", block);
  }
  /// "k64".
  std::string str() const { return detail::cat("k", block); }
  /// From "k64"; config_error naming the string when it is malformed or invalid.
  static block_circulant_settings parse(std::string_view text) {
    const detail::setting_tokens tokens("block_circulant", text, {"k"}, "k", "k64");
    block_circulant_settings s;
    s.block = *tokens.whole<index_t>("k");
    tokens.validated([&] { s.validate(); });
    return s;
  }
  friend bool operator==(const block_circulant_settings&, const block_circulant_settings&) = default;
};

}  // namespace slimnn
