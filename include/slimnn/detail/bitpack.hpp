// slimnn/detail/bitpack.hpp — fixed-width bit packing for codes and indices.
//
// packed_bits stores `count` unsigned values of `width` bits each (0..32), LSB-first in
// 64-bit words: value i occupies bits [i*width, (i+1)*width) of the stream, possibly
// straddling two words. width 0 stores nothing (every value is 0). get/set are O(1).
// bits_for(n) is the width that distinguishes n values: ceil(log2 n), 0 for n <= 1.
// to_bytes / from_bytes give the same stream as ceil(count * width / 8) bytes (value i at
// bits [i*width, (i+1)*width) of the little-endian byte string; padding bits zero).
// Thread safety: concurrent get() is safe; set() needs exclusive access.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "slimnn/core/error.hpp"

namespace slimnn::detail {

inline int bits_for(std::uint64_t distinct) {
  int bits = 0;
  while (bits < 64 && (std::uint64_t(1) << bits) < distinct) ++bits;
  return bits;
}

class packed_bits {
 public:
  packed_bits() = default;
  packed_bits(std::size_t count, int width) : count_(count), width_(width) {
    require<config_error>(width >= 0 && width <= 32, "packed_bits: width must be in 0..32, got ", width);
    words_.assign((count * std::size_t(width) + 63) / 64, 0);
  }

  std::size_t size() const { return count_; }
  int width() const { return width_; }
  /// Storage in bytes (whole 64-bit words).
  std::size_t bytes() const { return words_.size() * sizeof(std::uint64_t); }
  /// Bytes of the to_bytes() stream, as files hold it: ceil(size * width / 8).
  std::size_t file_bytes() const { return byte_count(count_, width_); }
  const std::uint64_t* words() const { return words_.data(); }

  std::uint32_t get(std::size_t i) const {
    SLIMNN_ASSERT(i < count_);
    if (width_ == 0) return 0;
    const std::size_t bit = i * std::size_t(width_), word = bit / 64, shift = bit % 64;
    std::uint64_t v = words_[word] >> shift;
    if (shift + std::size_t(width_) > 64) v |= words_[word + 1] << (64 - shift);
    return std::uint32_t(v & mask());
  }

  void set(std::size_t i, std::uint32_t value) {
    require<config_error>(i < count_, "packed_bits: index ", i, " is out of range for ", count_, " values");
    require<config_error>(std::uint64_t(value) <= mask(), "packed_bits: value ", value, " does not fit in ",
                          width_, " bits");
    if (width_ == 0) return;
    const std::size_t bit = i * std::size_t(width_), word = bit / 64, shift = bit % 64;
    words_[word] = (words_[word] & ~(mask() << shift)) | (std::uint64_t(value) << shift);
    if (shift + std::size_t(width_) > 64) {
      const std::size_t spill = 64 - shift;
      words_[word + 1] = (words_[word + 1] & ~(mask() >> spill)) | (std::uint64_t(value) >> spill);
    }
  }

  /// Bytes of the byte stream of `count` values of `width` bits.
  static std::size_t byte_count(std::size_t count, int width) { return (count * std::size_t(width) + 7) / 8; }
  /// The values as a byte stream of byte_count(size(), width()) bytes.
  std::vector<std::uint8_t> to_bytes() const {
    std::vector<std::uint8_t> out(byte_count(count_, width_));
    for (std::size_t b = 0; b < out.size(); ++b) out[b] = std::uint8_t(words_[b / 8] >> (8 * (b % 8)));
    return out;
  }
  /// The inverse of to_bytes; nullopt unless `bytes` has byte_count(count, width) bytes
  /// and its padding bits (after the last value) are zero.
  static std::optional<packed_bits> from_bytes(std::size_t count, int width, std::span<const std::uint8_t> bytes) {
    if (bytes.size() != byte_count(count, width)) return std::nullopt;
    const std::size_t used = count * std::size_t(width) % 8;
    if (used != 0 && (bytes.back() >> used) != 0) return std::nullopt;
    packed_bits p(count, width);
    for (std::size_t b = 0; b < bytes.size(); ++b) p.words_[b / 8] |= std::uint64_t(bytes[b]) << (8 * (b % 8));
    return p;
  }

  friend bool operator==(const packed_bits&, const packed_bits&) = default;

 private:
  std::uint64_t mask() const { return width_ == 0 ? 0 : (std::uint64_t(1) << width_) - 1; }

  std::size_t count_ = 0;
  int width_ = 0;
  std::vector<std::uint64_t> words_;
};

}  // namespace slimnn::detail
