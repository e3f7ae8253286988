// slimnn/core/tensor_io.hpp — where a layer writes its tensors and settings, and where
// it reads them back, independent of any file format (io/safetensors.hpp implements both).
//
// Tensors are named n-dimensional arrays of little-endian elements in row-major order
// (the last extent varies fastest), exactly as safetensors and PyTorch lay them out.
// Settings are string key/value pairs (integers in decimal, shapes as "CxHxW", reals in
// the shortest decimal form that reads back to the same value).
//
// The save/load protocol of a layer L (every reference layer follows it):
//   static constexpr const char* kind = "dense";      // stable, unique name of the kind
//   void save(tensor_sink& out, const std::string& prefix) const;
//   static L load(const tensor_source& in, const std::string& prefix);
// Every tensor and setting a layer writes is named prefix + name ("3.weight", "3.stride");
// prefix is "" for a layer stored alone and "<index>." inside a network.
//
// Errors: a tensor_source raises format_error naming its origin (the file), the tensor
// or setting, and the problem, e.g.
//   slimnn: model.safetensors: tensor '0.weight': shape [3, 4], expected [5, 4]
// Complexity: conversions are one pass over the elements. Thread safety: a sink is used
// by one thread; const members of a source may be called from several threads.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <bit>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/shape.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

/// Element types of a stored tensor. The first seven are read and written; the others
/// are recognised (so a file that holds them opens) but cannot be converted.
enum class dtype : std::uint8_t { f32, f64, f16, bf16, i8, u8, i32, boolean, i16, i64, u16, u32, u64, f8_e4m3, f8_e5m2 };

/// Bytes per element.
constexpr std::size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::f64: case dtype::i64: case dtype::u64: return 8;
    case dtype::f32: case dtype::i32: case dtype::u32: return 4;
    case dtype::f16: case dtype::bf16: case dtype::i16: case dtype::u16: return 2;
    default: return 1;
  }
}

/// The safetensors spelling: "F32", "BF16", "I8", ...
constexpr std::string_view dtype_name(dtype t) {
  constexpr std::string_view names[] = {"F32", "F64", "F16", "BF16", "I8", "U8", "I32", "BOOL",
                                        "I16", "I64", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};
  return names[std::size_t(t)];
}

/// The dtype spelled `name`, if any.
constexpr std::optional<dtype> dtype_from_name(std::string_view name) {
  for (std::uint8_t i = 0; i <= std::uint8_t(dtype::f8_e5m2); ++i)
    if (dtype_name(dtype(i)) == name) return dtype(i);
  return std::nullopt;
}

/// Whether slimnn converts this dtype (F32, F64, F16, BF16, I8, U8, I32).
constexpr bool dtype_readable(dtype t) { return t <= dtype::i32; }

/// Whether a tensor of this dtype can be read into (or written from) a T.
template <class T>
concept tensor_element = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::int8_t> ||
                         std::same_as<T, std::uint8_t> || std::same_as<T, std::int32_t>;

/// The natural dtype of T: float -> F32, double -> F64, int8 -> I8, uint8 -> U8, int32 -> I32.
template <tensor_element T>
constexpr dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return dtype::f32;
  else if constexpr (std::is_same_v<T, double>) return dtype::f64;
  else if constexpr (std::is_same_v<T, std::int8_t>) return dtype::i8;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return dtype::u8;
  else return dtype::i32;
}

/// "[3, 4]".
inline std::string shape_string(std::span<const std::uint64_t> extents) {
  std::string s = "[";
  for (std::size_t i = 0; i < extents.size(); ++i) s += (i ? ", " : "") + std::to_string(extents[i]);
  return s + "]";
}

namespace detail {

/// IEEE binary16 <-> binary32, round to nearest even; infinities and NaNs are kept.
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float v = std::ldexp(float(mantissa), -24);
    return sign ? -v : v;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}
inline std::uint16_t float_to_half(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = std::uint16_t((x >> 16) & 0x8000u);
  std::uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return std::uint16_t(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
  if (a >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // >= 65520 rounds to infinity
  if (a < 0x38800000u)  // below 2^-14: a subnormal half (exact scaling, then round to even)
    return std::uint16_t(sign | std::uint16_t(std::nearbyint(std::bit_cast<float>(a) * 16777216.0f)));
  a += 0xc8000fffu + ((a >> 13) & 1u);  // re-bias the exponent and round to nearest even
  return std::uint16_t(sign | (a >> 13));
}
/// bfloat16 (the top half of a binary32) <-> binary32, round to nearest even.
inline float bf16_to_float(std::uint16_t b) { return std::bit_cast<float>(std::uint32_t(b) << 16); }
inline std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((x >> 16) | 0x40u);  // quiet NaN
  return std::uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/// An unsigned integer stored little-endian at p (any alignment, any host byte order).
template <class U>
U load_le(const std::byte* p) {
  U v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= U(std::uint8_t(p[i])) << (8 * i);
  return v;
}
template <class U>
void store_le(std::byte* p, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i) p[i] = std::byte(std::uint8_t(v >> (8 * i)));
}

/// The element at p of a readable dtype, as a double (exact for every readable dtype).
inline double element_as_double(dtype t, const std::byte* p) {
  switch (t) {
    case dtype::f32: return std::bit_cast<float>(load_le<std::uint32_t>(p));
    case dtype::f64: return std::bit_cast<double>(load_le<std::uint64_t>(p));
    case dtype::f16: return half_to_float(load_le<std::uint16_t>(p));
    case dtype::bf16: return bf16_to_float(load_le<std::uint16_t>(p));
    case dtype::i8: return double(std::int8_t(p[0]));
    case dtype::u8: return double(std::uint8_t(p[0]));
    case dtype::i32: return double(std::int32_t(load_le<std::uint32_t>(p)));
    default: return 0;
  }
}

/// Parses a whole decimal integer (or, for floating V, a real); nullopt on anything else.
template <class V = std::int64_t>
std::optional<V> parse_number(std::string_view s) {
  V v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}
inline std::optional<std::int64_t> parse_int(std::string_view s) { return parse_number(s); }

}  // namespace detail

/// A tensor as stored: element type, extents (row-major) and the little-endian bytes.
/// `bytes` stays valid as long as the source it came from.
struct tensor_view {
  dtype type = dtype::f32;
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> bytes;

  std::uint64_t elements() const { return bytes.size() / dtype_size(type); }
};

/// Receives the tensors and settings of layers being saved.
class tensor_sink {
 public:
  virtual ~tensor_sink() = default;

  /// Stores `bytes` (little-endian, row-major, product(shape) elements of `type`).
  /// Throws config_error for an empty or repeated name or a size that does not match.
  void put(const std::string& name, dtype type, std::vector<std::uint64_t> shape, std::span<const std::byte> bytes) {
    std::uint64_t count = 1;
    bool overflow = false;
    for (auto e : shape) {
      overflow |= e != 0 && count > std::numeric_limits<std::uint64_t>::max() / 16 / e;
      count *= e;
    }
    detail::require<config_error>(!name.empty(), "tensor_sink: a tensor needs a name");
    detail::require<config_error>(!overflow, "tensor_sink: tensor '", name, "' has too many elements");
    detail::require<config_error>(count * dtype_size(type) == bytes.size(), "tensor_sink: tensor '", name, "' of ",
                                  dtype_name(type), shape_string(shape), " needs ", count * dtype_size(type),
                                  " bytes, got ", bytes.size());
    do_put(name, type, std::move(shape), bytes);
  }

  /// Stores `values` (row-major, product(shape) of them) as `stored`, which defaults to
  /// T's own dtype; floating values may be stored as F32, F64, F16 or BF16 (rounded to
  /// nearest even), integers only as their own dtype.
  template <tensor_element T>
  void put_array(const std::string& name, std::vector<std::uint64_t> shape, std::span<const T> values,
                 dtype stored = dtype_of<T>()) {
    constexpr bool floating = std::is_floating_point_v<T>;
    detail::require<config_error>(
        stored == dtype_of<T>() || (floating && (stored == dtype::f32 || stored == dtype::f64 ||
                                                 stored == dtype::f16 || stored == dtype::bf16)),
        "tensor_sink: tensor '", name, "': cannot store ", dtype_name(dtype_of<T>()), " values as ",
        dtype_name(stored));
    const std::size_t size = dtype_size(stored);
    std::vector<std::byte> bytes(values.size() * size);
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::byte* p = bytes.data() + i * size;
      const T v = values[i];
      switch (stored) {
        case dtype::f32: detail::store_le(p, std::bit_cast<std::uint32_t>(float(v))); break;
        case dtype::f64: detail::store_le(p, std::bit_cast<std::uint64_t>(double(v))); break;
        case dtype::f16: detail::store_le(p, detail::float_to_half(float(v))); break;
        case dtype::bf16: detail::store_le(p, detail::float_to_bf16(float(v))); break;
        case dtype::i32: detail::store_le(p, std::uint32_t(std::int32_t(v))); break;
        default: p[0] = std::byte(std::uint8_t(v)); break;  // i8, u8
      }
    }
    put(name, stored, std::move(shape), bytes);
  }
  template <tensor_element T>
  void put_array(const std::string& name, std::vector<std::uint64_t> shape, const std::vector<T>& values,
                 dtype stored = dtype_of<T>()) {
    put_array(name, std::move(shape), std::span<const T>(values), stored);
  }

  /// A matrix stored row-major as [rows, cols], like torch.nn.Linear's weight.
  template <class T>
  void put_matrix(const std::string& name, const matrix<T>& m) {
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = m;
    put_array(name, {std::uint64_t(m.rows()), std::uint64_t(m.cols())},
              std::span<const T>(row_major.data(), std::size_t(m.size())));
  }
  /// A vector stored as [size].
  template <class T>
  void put_vector(const std::string& name, const vector<T>& v) {
    put_array(name, {std::uint64_t(v.size())}, std::span<const T>(v.data(), std::size_t(v.size())));
  }

  /// Stores a setting; integers are written in decimal and shapes as shape::str().
  void put_setting(const std::string& key, const std::string& value) {
    detail::require<config_error>(!key.empty(), "tensor_sink: a setting needs a key");
    do_put_setting(key, value);
  }
  void put_setting(const std::string& key, const char* value) { put_setting(key, std::string(value)); }
  template <std::integral I>
  void put_setting(const std::string& key, I value) { put_setting(key, std::to_string(value)); }
  void put_setting(const std::string& key, const shape& s) { put_setting(key, s.str()); }
  /// A real, in the shortest form that reads back exactly (setting_real).
  template <std::floating_point F>
  void put_setting(const std::string& key, F value) {
    char text[64];
    const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
    put_setting(key, std::string(text, ec == std::errc() ? end : text));
  }

 protected:
  virtual void do_put(const std::string& name, dtype type, std::vector<std::uint64_t> shape,
                      std::span<const std::byte> bytes) = 0;
  virtual void do_put_setting(const std::string& key, const std::string& value) = 0;
};

/// Gives the tensors and settings of layers being loaded; every failure is a
/// format_error "<origin>: tensor '<name>': <problem>".
class tensor_source {
 public:
  virtual ~tensor_source() = default;

  /// Where the tensors come from (a file path), used in every message.
  virtual std::string origin() const = 0;
  /// Every tensor's name.
  virtual std::vector<std::string> tensor_names() const = 0;
  /// The tensor called `name`, or nullptr.
  const tensor_view* find(const std::string& name) const { return do_find(name); }
  /// The setting called `key`, or nullptr.
  const std::string* find_setting(const std::string& key) const { return do_find_setting(key); }
  bool contains(const std::string& name) const { return find(name) != nullptr; }

  /// Throws format_error "<origin>: tensor '<name>': <problem>".
  [[noreturn]] void fail(const std::string& name, const std::string& problem) const {
    throw format_error(detail::cat(origin(), ": tensor '", name, "': ", problem));
  }
  [[noreturn]] void fail_setting(const std::string& key, const std::string& problem) const {
    throw format_error(detail::cat(origin(), ": setting '", key, "': ", problem));
  }

  /// The tensor called `name`; format_error "missing" if there is none.
  const tensor_view& tensor(const std::string& name) const {
    const tensor_view* t = find(name);
    if (!t) fail(name, "missing");
    return *t;
  }
  /// Its extents.
  const std::vector<std::uint64_t>& shape_of(const std::string& name) const { return tensor(name).shape; }
  /// Its extents, checked to have `rank` dimensions (`what` names them in the message,
  /// e.g. "[out, in]").
  const std::vector<std::uint64_t>& shape_of(const std::string& name, std::size_t rank, const char* what) const {
    const auto& s = shape_of(name);
    if (s.size() != rank) fail(name, detail::cat("shape ", shape_string(s), ", expected ", what));
    return s;
  }

  /// Every element of tensor `name`, converted to T; `expected` (if given) must be
  /// its shape. Floating T accepts every readable dtype; integer T accepts integer
  /// dtypes whose values fit in T.
  template <tensor_element T>
  std::vector<T> get(const std::string& name, std::span<const std::uint64_t> expected) const {
    const tensor_view& t = tensor(name);
    if (!std::equal(t.shape.begin(), t.shape.end(), expected.begin(), expected.end()))
      fail(name, detail::cat("shape ", shape_string(t.shape), ", expected ", shape_string(expected)));
    return convert<T>(name, t);
  }
  template <tensor_element T>
  std::vector<T> get(const std::string& name, std::initializer_list<std::uint64_t> expected) const {
    return get<T>(name, std::span<const std::uint64_t>(expected.begin(), expected.size()));
  }
  /// Every element of tensor `name`, whatever its shape.
  template <tensor_element T>
  std::vector<T> get(const std::string& name) const {
    return convert<T>(name, tensor(name));
  }
  /// A [rows, cols] row-major tensor as a (column-major) rows x cols matrix.
  template <class T>
  matrix<T> get_matrix(const std::string& name, index_t rows, index_t cols) const {
    const auto values = get<T>(name, {std::uint64_t(rows), std::uint64_t(cols)});
    return Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(values.data(), rows,
                                                                                            cols);
  }
  /// A [size] tensor as a vector.
  template <class T>
  vector<T> get_vector(const std::string& name, index_t size) const {
    const auto values = get<T>(name, {std::uint64_t(size)});
    return Eigen::Map<const vector<T>>(values.data(), size);
  }

  /// The setting `key`; format_error "missing" if absent.
  const std::string& setting(const std::string& key) const {
    const std::string* s = find_setting(key);
    if (!s) fail_setting(key, "missing");
    return *s;
  }
  /// An integer setting in [min, max].
  std::int64_t setting_int(const std::string& key, std::int64_t min, std::int64_t max) const {
    return checked_int(key, setting(key), min, max);
  }
  /// An integer setting in [min, max], or nullopt when absent.
  std::optional<std::int64_t> optional_int(const std::string& key, std::int64_t min, std::int64_t max) const {
    const std::string* s = find_setting(key);
    if (!s) return std::nullopt;
    return checked_int(key, *s, min, max);
  }
  /// A real setting in [min, max] (so never NaN), parsed directly as F.
  template <std::floating_point F>
  F setting_real(const std::string& key, F min, F max) const {
    const std::string& s = setting(key);
    const auto v = detail::parse_number<F>(s);
    if (!v) fail_setting(key, detail::cat("'", s, "' is not a number"));
    if (!(*v >= min && *v <= max)) fail_setting(key, detail::cat(s, " is out of range [", min, ", ", max, "]"));
    return *v;
  }
  /// A shape setting ("784" or "32x14x14"); each extent in [1, 2^24], at most 2^40 values.
  slimnn::shape setting_shape(const std::string& key) const {
    const std::string& s = setting(key);
    std::int64_t extents[3] = {1, 1, 1};
    std::size_t count = 0, start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
      if (i < s.size() && s[i] != 'x') continue;
      const auto v = count < 3 ? detail::parse_int(std::string_view(s).substr(start, i - start)) : std::nullopt;
      if (!v || *v < 1 || *v > (std::int64_t(1) << 24))
        fail_setting(key, detail::cat("'", s, "' is not a shape (C, or CxHxW with extents from 1 to 16777216)"));
      extents[count++] = *v;
      start = i + 1;
    }
    if (count == 2) fail_setting(key, detail::cat("'", s, "' is not a shape (C, or CxHxW with extents from 1 to 16777216)"));
    if (extents[0] * extents[1] > (std::int64_t(1) << 40) / extents[2])
      fail_setting(key, detail::cat("shape ", s, " has more than 2^40 values"));
    return {extents[0], extents[1], extents[2]};
  }

 protected:
  virtual const tensor_view* do_find(const std::string& name) const = 0;
  virtual const std::string* do_find_setting(const std::string& key) const = 0;

 private:
  std::int64_t checked_int(const std::string& key, const std::string& s, std::int64_t min, std::int64_t max) const {
    const auto v = detail::parse_int(s);
    if (!v) fail_setting(key, detail::cat("'", s, "' is not an integer"));
    if (*v < min || *v > max) fail_setting(key, detail::cat(*v, " is out of range [", min, ", ", max, "]"));
    return *v;
  }

  template <tensor_element T>
  std::vector<T> convert(const std::string& name, const tensor_view& t) const {
    if (!dtype_readable(t.type))
      fail(name, detail::cat("dtype ", dtype_name(t.type),
                             " is not supported (slimnn reads F32, F64, F16, BF16, I8, U8 and I32)"));
    const std::size_t n = t.bytes.size() / dtype_size(t.type), size = dtype_size(t.type);
    std::vector<T> out(n);
    const std::byte* p = t.bytes.data();
    if (t.type == dtype_of<T>() && std::endian::native == std::endian::little) {
      if (n) std::memcpy(out.data(), p, n * sizeof(T));
      return out;
    }
    if constexpr (std::is_floating_point_v<T>) {
      for (std::size_t i = 0; i < n; ++i) out[i] = T(detail::element_as_double(t.type, p + i * size));
    } else {
      if (t.type == dtype::f32 || t.type == dtype::f64 || t.type == dtype::f16 || t.type == dtype::bf16)
        fail(name, detail::cat("dtype ", dtype_name(t.type), ", expected an integer dtype (", dtype_name(dtype_of<T>()),
                               ")"));
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = std::int64_t(detail::element_as_double(t.type, p + i * size));
        if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max())
          fail(name, detail::cat("element ", i, " = ", v, " does not fit ", dtype_name(dtype_of<T>())));
        out[i] = T(v);
      }
    }
    return out;
  }
};

/// A layer that follows the save/load protocol described at the top of this file.
template <class L>
concept SaveableLayer = requires(const L& layer, tensor_sink& out, const tensor_source& in, const std::string& prefix) {
  { L::kind } -> std::convertible_to<std::string_view>;
  layer.save(out, prefix);
  { L::load(in, prefix) } -> std::same_as<L>;
};

}  // namespace slimnn
