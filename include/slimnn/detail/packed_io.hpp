// slimnn/detail/packed_io.hpp — the file helpers the compressed layers share
// (core/tensor_io.hpp protocol): bit-packed code streams and checked element counts.
//
//   put_packed / get_packed    a detail::packed_bits as a U8 tensor [bytes]: value i at
//                              bits [i*w, (i+1)*w) of the little-endian byte string,
//                              padding bits after the last value zero.
//   put_fixed_point / get_fixed_point   values scale * code (uniform_quantizer, |code| <=
//                              qmax = 2^(bits-1) - 1; one quantizer per equal group of
//                              values) as codes + qmax in `bits` bits, packed.
//   element_count              a product of extents read from settings, or format_error
//                              when it exceeds 2^48 (more than any file holds), so later
//                              arithmetic on it cannot overflow.
// Every failure is a format_error naming the file and the tensor. Thread safety: pure
// functions of their arguments.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "slimnn/core/quantize.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/detail/bitpack.hpp"

namespace slimnn::detail {

/// Largest element count a layer accepts from a file.
inline constexpr std::uint64_t max_file_elements = std::uint64_t(1) << 48;

inline std::uint64_t element_count(const tensor_source& in, const std::string& name,
                                   std::initializer_list<std::uint64_t> extents) {
  std::uint64_t n = 1;
  for (auto e : extents) {
    if (e != 0 && n > max_file_elements / e) in.fail(name, "has more than 2^48 elements");
    n *= e;
  }
  return n;
}

inline void put_packed(tensor_sink& out, const std::string& name, const packed_bits& bits) {
  out.put_array(name, {packed_bits::byte_count(bits.size(), bits.width())}, bits.to_bytes());
}

/// `count` values of `width` bits (0..32) from the U8 tensor `name`.
inline packed_bits get_packed(const tensor_source& in, const std::string& name, std::uint64_t count, int width) {
  const auto bytes = in.get<std::uint8_t>(name, {packed_bits::byte_count(std::size_t(count), width)});
  auto bits = packed_bits::from_bytes(std::size_t(count), width, bytes);
  if (!bits) in.fail(name, "padding bits after the last value are not zero");
  return std::move(*bits);
}

/// `values`, cut into quantizers.size() equal groups, as offset codes q.encode(v) + qmax of
/// each group's quantizer (all of the same bits); exact for values on the grids.
template <class T>
void put_fixed_point(tensor_sink& out, const std::string& name, std::span<const T> values,
                     std::span<const uniform_quantizer> quantizers) {
  const int bits = quantizers.front().bits();
  const std::size_t group = values.size() / quantizers.size();
  packed_bits codes(values.size(), bits);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const uniform_quantizer& q = quantizers[i / group];
    codes.set(i, std::uint32_t(q.encode(double(values[i])) + q.max_code()));
  }
  put_packed(out, name, codes);
}

/// The inverse: `count` values in quantizers.size() equal groups (count divisible by it).
template <class T>
std::vector<T> get_fixed_point(const tensor_source& in, const std::string& name, std::uint64_t count,
                               std::span<const uniform_quantizer> quantizers) {
  const int bits = quantizers.front().bits(), top = 2 * quantizers.front().max_code();
  const packed_bits codes = get_packed(in, name, count, bits);
  const std::size_t group = codes.size() / quantizers.size();
  std::vector<T> values(codes.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto code = codes.get(i);
    if (code > std::uint32_t(top))
      in.fail(name, cat("code ", code, " of value ", i, " is outside 0..", top, " (", bits, "-bit codes offset by ",
                        top / 2, ")"));
    values[i] = T(quantizers[i / group].decode(int(code) - top / 2));
  }
  return values;
}

}  // namespace slimnn::detail
