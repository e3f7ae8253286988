// slimnn/kernels/isa.hpp — which SIMD kernel path runs: chosen at run time from the CPU.
//
// Every SIMD kernel family in kernels/ has three variants, each compiled for its own
// instruction set whatever flags the including translation unit uses (GCC / Clang target
// regions, below), so a plain build of a program holds all three and runs the best one
// the CPU supports:
//   isa::portable  plain C++ (the reference; also the fallback on non-x86 CPUs)
//   isa::avx2      AVX2 + FMA (+ BMI1/2): Intel Haswell and later, AMD Zen 1 and later
//   isa::avx512    AVX-512 F, BW, VL, DQ, VBMI and VNNI: Intel Ice Lake / Sapphire Rapids
//                  and later, AMD Zen 4 and later. Older AVX-512 CPUs (Skylake-X, Cascade
//                  Lake) lack VBMI and run the AVX2 path.
// active_isa() is the path the layers take. It is the best supported one, unless the
// environment variable SLIMNN_ISA (portable, avx2 or avx512; read once, at the first
// call) or set_isa() forces one. An unknown name, or a path this CPU cannot run, raises
// config_error. Stored layouts, cost() and model files never depend on the path; results
// of integer kernels are bit-identical on every path, float kernels agree to rounding.
// Thread safety: active_isa() is an atomic read; set_isa() may be called at any time, and
// a forward that is running keeps the path it started with.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "slimnn/core/error.hpp"

// Target regions: the functions defined between SLIMNN_TARGET_AVX2 / SLIMNN_TARGET_AVX512
// and SLIMNN_TARGET_END are compiled for that instruction set. Kernels inside a region
// use no lambdas (Clang does not apply the region's target to them). In a translation
// unit that is itself compiled for AVX-512 (-march=native on such a machine) the compiler
// may use AVX-512 encodings inside the AVX2 region too; measure the AVX2 path from a
// build for x86-64-v3 (README, "Benchmarks").
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SLIMNN_X86_KERNELS 1
#if defined(__clang__)
#define SLIMNN_TARGET_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,bmi,bmi2,f16c\"))), apply_to = function)")
// (_Pragma takes one string literal: the AVX-512 list stays on one line.)
// clang-format off
#define SLIMNN_TARGET_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,bmi,bmi2,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni\"))), apply_to = function)")
// clang-format on
#define SLIMNN_TARGET_END _Pragma("clang attribute pop")
#else
#define SLIMNN_TARGET_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,bmi,bmi2,f16c\")")
#define SLIMNN_TARGET_AVX512 \
  _Pragma("GCC push_options")  \
      _Pragma("GCC target(\"avx2,fma,bmi,bmi2,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni\")")
#define SLIMNN_TARGET_END _Pragma("GCC pop_options")
#endif
#include <immintrin.h>
#endif

namespace slimnn {

/// A kernel path, in increasing order of width.
enum class isa { portable = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(isa path) {
  switch (path) {
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    default: return "portable";
  }
}

/// "portable", "avx2" or "avx512"; anything else raises config_error naming it.
inline isa parse_isa(std::string_view name) {
  for (isa path : {isa::portable, isa::avx2, isa::avx512})
    if (name == isa_name(path)) return path;
  throw config_error(detail::cat("unknown instruction set '", name, "' (expected portable, avx2 or avx512)"));
}

/// Whether this CPU (and its operating system) can run the path.
inline bool isa_supported(isa path) {
#if defined(SLIMNN_X86_KERNELS)
  switch (path) {
    case isa::portable: return true;
    case isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    case isa::avx512:
      return isa_supported(isa::avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return path == isa::portable;
#endif
}

/// The widest path this CPU supports.
inline isa best_isa() {
  for (isa path : {isa::avx512, isa::avx2})
    if (isa_supported(path)) return path;
  return isa::portable;
}

/// Every path this CPU supports, portable first.
inline std::vector<isa> supported_isas() {
  std::vector<isa> paths;
  for (isa path : {isa::portable, isa::avx2, isa::avx512})
    if (isa_supported(path)) paths.push_back(path);
  return paths;
}

namespace detail {

/// The path named by a SLIMNN_ISA value (null or empty: the best one); config_error for
/// an unknown name or a path this CPU lacks.
inline isa isa_from_setting(const char* value) {
  if (value == nullptr || *value == '\0') return best_isa();
  const isa path = parse_isa(value);
  std::string supported;
  for (isa p : supported_isas()) supported += std::string(supported.empty() ? "" : ", ") + isa_name(p);
  require<config_error>(isa_supported(path), "SLIMNN_ISA=", value, ": this CPU cannot run the ", value,
                        " kernels (supported: ", supported, ")");
  return path;
}

/// -1 until the first active_isa() or set_isa(); then the path. One object for the whole
/// program (an inline variable).
inline std::atomic<int> isa_state{-1};

}  // namespace detail

/// The path the layers run now (see the header comment).
inline isa active_isa() {
  int state = detail::isa_state.load(std::memory_order_relaxed);
  if (state < 0) {
    const int from_environment = int(detail::isa_from_setting(std::getenv("SLIMNN_ISA")));
    detail::isa_state.compare_exchange_strong(state, from_environment, std::memory_order_relaxed);
    state = detail::isa_state.load(std::memory_order_relaxed);
  }
  return isa(state);
}

/// Forces a path for the whole program; config_error when this CPU cannot run it.
inline void set_isa(isa path) {
  detail::require<config_error>(isa_supported(path), "set_isa: this CPU cannot run the ", isa_name(path),
                                " kernels");
  detail::isa_state.store(int(path), std::memory_order_relaxed);
}

/// Forces a path for the lifetime of the object, then restores the previous one (for
/// tests and benchmarks that compare paths).
class scoped_isa {
 public:
  explicit scoped_isa(isa path) : previous_(active_isa()) { set_isa(path); }
  ~scoped_isa() { detail::isa_state.store(int(previous_), std::memory_order_relaxed); }
  scoped_isa(const scoped_isa&) = delete;
  scoped_isa& operator=(const scoped_isa&) = delete;

 private:
  isa previous_;
};

}  // namespace slimnn
