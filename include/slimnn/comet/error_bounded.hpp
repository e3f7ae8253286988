// slimnn/comet/error_bounded.hpp — COMET's lossy compressor of the activations kept for
// training: an SZ-style error-bounded linear quantizer followed by zstd.
//
// Math. For a bound eb > 0 each value x becomes the integer q = round(x / (2 eb)) and is
// rebuilt as x' = q * 2eb (computed in double, rounded to T), so |x - x'| <= eb. The
// compressor rebuilds every value exactly as decompress will and checks the bound; a
// value that misses it (rounding near the bound, |q| too large for the code width) and
// every NaN or infinity is an escape, stored exactly (so non-finite values come back
// bit for bit). ReLU activations are mostly exact zeros, which stay exact zeros (code 0);
// the codes, 8 bits when every |q| <= 127 and 16 bits otherwise, then go through zstd
// (level 1), which squeezes the runs of zeros and the small codes. The predictor is the
// constant 0 (no neighbour prediction): every value is independent, so both passes
// vectorize, and zstd already removes the redundancy that a predictor would on these
// sparse maps.
// Stream: "SLEB", version, code bytes, scalar bytes, count, step (double), escapes
// (count, then per escape its index and its exact value), the zstd frame of the codes.
// decompress checks every field (format_error naming it).
// Cost: two O(n) passes plus zstd; 8- or 16-bit codes before zstd.
// Thread safety: compress/decompress are const and reentrant (per-thread zstd contexts
// and workspace, detail/scratch.hpp).
//
// Component: slimnn::comet (Eigen + zstd).
#pragma once

#include <zstd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/core/activation_store.hpp"

namespace slimnn::comet {

class error_bounded_codec final : public activation_codec {
 public:
  std::string name() const override { return "quantizer+zstd"; }
  void compress(std::span<const float> x, double bound, std::vector<std::uint8_t>& out) const override {
    encode(x, bound, out);
  }
  void compress(std::span<const double> x, double bound, std::vector<std::uint8_t>& out) const override {
    encode(x, bound, out);
  }
  void decompress(std::span<const std::uint8_t> in, std::span<float> x) const override { decode(in, x); }
  void decompress(std::span<const std::uint8_t> in, std::span<double> x) const override { decode(in, x); }

 private:
  static constexpr char magic[4] = {'S', 'L', 'E', 'B'};
  static constexpr std::uint8_t version = 1;
  static constexpr std::size_t header_bytes = 4 + 4 + 8 + 8 + 8;  // magic, version/widths, count, step, escapes

  template <class T>
  static void encode(std::span<const T> x, double bound, std::vector<std::uint8_t>& out) {
    detail::require<config_error>(bound > 0 && std::isfinite(bound),
                                  "error_bounded: the error bound must be positive and finite, got ", bound);
    const double step = 2 * bound, inverse = 1 / step;
    // Rebuilt values stay inside T's range: larger codes are escapes.
    const double largest_code = std::min(32767.0, double(std::numeric_limits<T>::max()) / step);
    const std::size_t n = x.size();
    constexpr std::int32_t escaped = std::numeric_limits<std::int32_t>::min();
    std::int32_t* q = detail::scratch_array<error_bounded_codec, std::int32_t>(n);
    std::size_t escapes = 0;
    std::int32_t largest = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double v = double(x[i]), code = std::nearbyint(v * inverse);
      const bool ok = std::abs(code) <= largest_code && std::abs(v - double(T(code * step))) <= bound;
      q[i] = ok ? std::int32_t(code) : escaped;
      largest = std::max(largest, ok ? std::abs(q[i]) : 0);
      escapes += !ok;
    }
    const int width = largest <= 127 ? 1 : 2;
    const std::size_t escape_bytes = escapes * (8 + sizeof(T)), bound_size = ZSTD_compressBound(n * width);
    out.resize(header_bytes + escape_bytes + bound_size);
    std::uint8_t* p = out.data();
    std::memcpy(p, magic, 4);
    p[4] = version;
    p[5] = std::uint8_t(width);
    p[6] = std::uint8_t(sizeof(T));
    p[7] = 0;
    put(p + 8, std::uint64_t(n));
    put(p + 16, step);
    put(p + 24, std::uint64_t(escapes));
    p += header_bytes;
    // The codes (an escape as the width's most negative code) and the escapes' exact values.
    std::uint8_t* codes = detail::scratch_array<error_bounded_codec, std::uint8_t>(n * std::size_t(width));
    for (std::size_t i = 0; i < n; ++i) {
      const std::int32_t code = q[i] != escaped ? q[i] : width == 1 ? -128 : -32768;
      if (width == 1) {
        codes[i] = std::uint8_t(std::int8_t(code));
      } else {
        const auto v = std::uint16_t(std::int16_t(code));
        codes[2 * i] = std::uint8_t(v & 0xff);
        codes[2 * i + 1] = std::uint8_t(v >> 8);
      }
      if (q[i] == escaped) {
        put(p, std::uint64_t(i));
        put(p + 8, x[i]);
        p += 8 + sizeof(T);
      }
    }
    const std::size_t frame = ZSTD_compressCCtx(compression_context(), p, bound_size, codes, n * width, 1);
    detail::require<config_error>(!ZSTD_isError(frame), "error_bounded: zstd failed: ", ZSTD_getErrorName(frame));
    out.resize(header_bytes + escape_bytes + frame);
  }

  template <class T>
  static void decode(std::span<const std::uint8_t> in, std::span<T> x) {
    const auto fail = [](const std::string& what) { throw format_error("error_bounded stream: " + what); };
    if (in.size() < header_bytes || std::memcmp(in.data(), magic, 4) != 0) fail("missing or truncated header");
    if (in[4] != version) fail(detail::cat("version ", int(in[4]), " (expected ", int(version), ")"));
    const int width = in[5];
    if (width != 1 && width != 2) fail(detail::cat("code width ", width, " bytes (expected 1 or 2)"));
    if (in[6] != sizeof(T)) fail(detail::cat(int(in[6]), "-byte values, read as ", sizeof(T), "-byte"));
    const auto n = get<std::uint64_t>(in.data() + 8), escapes = get<std::uint64_t>(in.data() + 24);
    const auto step = get<double>(in.data() + 16);
    if (n != x.size()) fail(detail::cat(n, " values, expected ", x.size()));
    if (!(step > 0) || !(step <= double(std::numeric_limits<T>::max()))) fail(detail::cat("step ", step));
    if (escapes > n || escapes * (8 + sizeof(T)) > in.size() - header_bytes) fail("truncated escapes");
    const std::uint8_t* p = in.data() + header_bytes;
    const std::uint8_t* frame = p + escapes * (8 + sizeof(T));
    std::uint8_t* codes = detail::scratch_array<error_bounded_codec, std::uint8_t>(std::size_t(n) * std::size_t(width));
    const std::size_t got = ZSTD_decompressDCtx(decompression_context(), codes, std::size_t(n) * width, frame,
                                                std::size_t(in.data() + in.size() - frame));
    if (ZSTD_isError(got)) fail(std::string("zstd: ") + ZSTD_getErrorName(got));
    if (got != std::size_t(n) * width) fail(detail::cat(got / std::size_t(width), " codes, expected ", n));
    // A code rebuilt past T's range can only come from a corrupt stream.
    const double largest_code = double(std::numeric_limits<T>::max()) / step;
    const double escape = width == 1 ? -128 : -32768;  // its value comes from the escapes below
    std::uint64_t escape_codes = 0;
    const auto rebuild = [&](double code) {
      if (code == escape) return ++escape_codes, T(0);
      if (std::abs(code) > largest_code) fail(detail::cat("code ", code, " out of range for step ", step));
      return T(code * step);
    };
    if (width == 1)
      for (std::size_t i = 0; i < n; ++i) x[i] = rebuild(double(std::int8_t(codes[i])));
    else
      for (std::size_t i = 0; i < n; ++i)
        x[i] = rebuild(double(std::int16_t(std::uint16_t(codes[2 * i] | (codes[2 * i + 1] << 8)))));
    if (escape_codes != escapes) fail(detail::cat(escape_codes, " escape codes for ", escapes, " escaped values"));
    for (std::uint64_t e = 0; e < escapes; ++e, p += 8 + sizeof(T)) {
      const auto i = get<std::uint64_t>(p);
      if (i >= n) fail(detail::cat("escape index ", i, " out of range for ", n, " values"));
      x[std::size_t(i)] = get<T>(p + 8);
    }
  }

  template <class V>
  static void put(std::uint8_t* p, V v) {
    std::memcpy(p, &v, sizeof(V));
  }
  template <class V>
  static V get(const std::uint8_t* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static ZSTD_CCtx* compression_context() {
    thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> context(ZSTD_createCCtx(), &ZSTD_freeCCtx);
    return context.get();
  }
  static ZSTD_DCtx* decompression_context() {
    thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), &ZSTD_freeDCtx);
    return context.get();
  }
};

/// A lossy store with a fixed bound: `relative_bound` of each kept tensor's value range.
inline activation_store lossy_store(double relative_bound) {
  activation_store s{activation_mode::lossy, relative_bound, std::make_shared<error_bounded_codec>()};
  s.validate();
  return s;
}

/// COMET's adaptive store: each layer starts at `start_bound` of its tensors' range and,
/// every `interval` steps, rescales it so its weight gradient's relative error stays near
/// `gradient_target` (kept_tensor::adapt).
inline activation_store adaptive_store(double gradient_target = 2e-2, double start_bound = 1e-2, int interval = 10) {
  activation_store s{activation_mode::lossy, start_bound, std::make_shared<error_bounded_codec>(), gradient_target,
                     interval};
  s.validate();
  return s;
}

}  // namespace slimnn::comet
