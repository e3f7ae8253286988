// slimnn/core/error.hpp — the exception family and the internal assert.
//
// Bad input from a user (shapes, hyperparameters, files) raises one of
//   slimnn::shape_error   wrong sizes or shapes (messages name both sides)
//   slimnn::config_error  impossible settings (block size 0, too many bits, ...)
//   slimnn::format_error  missing, truncated or corrupt files (messages name the path)
// all derived from slimnn::error (a std::runtime_error). Every message starts with
// "slimnn: ". Internal invariants use SLIMNN_ASSERT, which is compiled out under NDEBUG.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace slimnn {

class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error("slimnn: " + what) {}
};
class shape_error : public error {
 public:
  using error::error;
};
class config_error : public error {
 public:
  using error::error;
};
class format_error : public error {
 public:
  using error::error;
};

namespace detail {

/// Concatenates anything streamable into one string: cat("k = ", 0, ", must be >= 1").
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

/// Throws E with the concatenated message unless `condition` holds.
template <class E, class... Parts>
void require(bool condition, const Parts&... parts) {
  if (!condition) throw E(cat(parts...));
}

[[noreturn]] inline void assert_fail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "slimnn: internal assertion failed: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

}  // namespace detail
}  // namespace slimnn

#ifdef NDEBUG
#define SLIMNN_ASSERT(expr) ((void)0)
#else
#define SLIMNN_ASSERT(expr) \
  ((expr) ? (void)0 : ::slimnn::detail::assert_fail(#expr, __FILE__, __LINE__))
#endif
