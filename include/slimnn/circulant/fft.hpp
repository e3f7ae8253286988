// slimnn/circulant/fft.hpp — thread-safe FFTW plans for batched real transforms.
//
// A real_fft<T> is one FFTW plan (float: fftwf_*, double: fftw_*) for many length-n
// real <-> half-spectrum transforms laid out by an fft_layout:
//   forward (r2c):  S[f] = sum_t x[t] e^{-2 pi i f t / n},  f = 0 .. n/2   (n/2+1 values)
//   inverse (c2r):  x[t] = sum over the full Hermitian spectrum (unnormalised: c2r(r2c(x)) = n x)
// The layout gives the stride between the samples of one transform on each side and up
// to two batch dimensions (count, real distance, spectrum distance), so one plan covers
// e.g. every channel block of every pixel of an image.
//
// FFTW's planner is not thread-safe: one process-wide mutex (fft_planner_mutex(), a
// function-local static, one object across translation units) guards every plan
// creation and destruction. Plans are immutable once made and shared between copies
// (shared_ptr), and execution uses FFTW's new-array execute functions, which are
// thread-safe, so const layers may run one plan from several threads at once.
// Execution requires buffers aligned like fftw_malloc's (16 bytes; checked): use
// fft_vector<U> (a std::vector on fftw_malloc). The inverse destroys its input (give
// it a scratch copy). Planning: fft_planning::estimate (default, fast and
// deterministic) or fft_planning::measure (times candidate algorithms at construction).
// FFTW is GPL-licensed.
//
// Component: slimnn::circulant (adds FFTW, which is GPL-licensed).
#pragma once

#include <fftw3.h>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/types.hpp"
#include "slimnn/detail/scratch.hpp"

namespace slimnn {

enum class fft_planning { estimate, measure };

/// One batch dimension of an fft_layout: `count` transforms, consecutive ones
/// `real_distance` apart on the real side and `spectrum_distance` apart on the
/// half-spectrum side (in elements of T and of std::complex<T>).
struct fft_batch_dim {
  index_t count = 1;
  index_t real_distance = 0;
  index_t spectrum_distance = 0;
};

/// Where the values of a batch of length-`length` real transforms live.
struct fft_layout {
  index_t length = 1;           ///< n, the transform length
  index_t real_stride = 1;      ///< between x[t] and x[t+1]
  index_t spectrum_stride = 1;  ///< between S[f] and S[f+1]
  std::vector<fft_batch_dim> batch;  ///< at most two dimensions

  index_t spectrum_length() const { return length / 2 + 1; }
  /// Elements spanned on the real side (largest offset + 1).
  index_t real_extent() const { return extent(length, real_stride, &fft_batch_dim::real_distance); }
  /// Complex elements spanned on the spectrum side.
  index_t spectrum_extent() const {
    return extent(spectrum_length(), spectrum_stride, &fft_batch_dim::spectrum_distance);
  }

 private:
  index_t extent(index_t n, index_t stride, index_t fft_batch_dim::*distance) const {
    index_t last = (n - 1) * stride;
    for (const auto& d : batch) last += (d.count - 1) * (d.*distance);
    return last + 1;
  }
};

namespace detail {

/// The one mutex that serialises FFTW planning in the whole process.
inline std::mutex& fft_planner_mutex() {
  static std::mutex m;
  return m;
}

template <class T>
struct fftw_api;

template <>
struct fftw_api<float> {
  using plan = fftwf_plan;
  using complex = fftwf_complex;
  using iodim = fftwf_iodim64;
  static void* malloc(std::size_t n) { return fftwf_malloc(n); }
  static void free(void* p) { fftwf_free(p); }
  static plan r2c(int rank, const iodim* dims, int howmany_rank, const iodim* howmany, float* in, complex* out,
                  unsigned flags) {
    return fftwf_plan_guru64_dft_r2c(rank, dims, howmany_rank, howmany, in, out, flags);
  }
  static plan c2r(int rank, const iodim* dims, int howmany_rank, const iodim* howmany, complex* in, float* out,
                  unsigned flags) {
    return fftwf_plan_guru64_dft_c2r(rank, dims, howmany_rank, howmany, in, out, flags);
  }
  static void execute_r2c(plan p, float* in, complex* out) { fftwf_execute_dft_r2c(p, in, out); }
  static void execute_c2r(plan p, complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
  static void destroy(plan p) { fftwf_destroy_plan(p); }
  static int alignment_of(float* p) { return fftwf_alignment_of(p); }
};

template <>
struct fftw_api<double> {
  using plan = fftw_plan;
  using complex = fftw_complex;
  using iodim = fftw_iodim64;
  static void* malloc(std::size_t n) { return fftw_malloc(n); }
  static void free(void* p) { fftw_free(p); }
  static plan r2c(int rank, const iodim* dims, int howmany_rank, const iodim* howmany, double* in, complex* out,
                  unsigned flags) {
    return fftw_plan_guru64_dft_r2c(rank, dims, howmany_rank, howmany, in, out, flags);
  }
  static plan c2r(int rank, const iodim* dims, int howmany_rank, const iodim* howmany, complex* in, double* out,
                  unsigned flags) {
    return fftw_plan_guru64_dft_c2r(rank, dims, howmany_rank, howmany, in, out, flags);
  }
  static void execute_r2c(plan p, double* in, complex* out) { fftw_execute_dft_r2c(p, in, out); }
  static void execute_c2r(plan p, complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
  static void destroy(plan p) { fftw_destroy_plan(p); }
  static int alignment_of(double* p) { return fftw_alignment_of(p); }
};

template <class U>
struct real_of {
  using type = U;
};
template <class U>
struct real_of<std::complex<U>> {
  using type = U;
};

}  // namespace detail

/// std::allocator replacement on fftw_malloc (SIMD-aligned), for float, double and
/// their complex types.
template <class U>
struct fft_allocator {
  using value_type = U;
  using api = detail::fftw_api<typename detail::real_of<U>::type>;
  fft_allocator() = default;
  template <class V>
  fft_allocator(const fft_allocator<V>&) noexcept {}  // NOLINT: rebinding
  U* allocate(std::size_t n) {
    void* p = api::malloc(n * sizeof(U) > 0 ? n * sizeof(U) : 1);
    if (!p) throw std::bad_alloc();
    return static_cast<U*>(p);
  }
  void deallocate(U* p, std::size_t) noexcept { api::free(p); }
  template <class V>
  friend bool operator==(const fft_allocator&, const fft_allocator<V>&) {
    return true;
  }
};

/// A growable buffer that FFTW plans may execute on.
template <class U>
using fft_vector = std::vector<U, fft_allocator<U>>;

/// Elements of U that make a multiple of 64 bytes, rounded up from n: per-sample
/// strides padded this way keep every sample's buffer aligned like the first.
template <class U>
constexpr index_t fft_padded(index_t n) {
  constexpr index_t per = index_t(64 / sizeof(U)) > 0 ? index_t(64 / sizeof(U)) : 1;
  return (n + per - 1) / per * per;
}

namespace detail {

/// The workspace (detail/scratch.hpp) in memory FFTW plans may execute on: a pointer to
/// at least n elements of a per-thread, grow-only buffer owned by (Tag, U, Slot).
template <class Tag, class U, int Slot = 0>
U* fft_scratch(index_t n) {
  return scratch_array<Tag, U, Slot, fft_allocator<U>>(std::size_t(n));
}

}  // namespace detail

template <class T>
class real_fft {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "real_fft<T> needs T = float (fftwf_*) or double (fftw_*)");
  using api = detail::fftw_api<T>;

 public:
  using complex = std::complex<T>;
  enum class direction { forward, inverse };

  /// An empty plan (assign a planned one before executing).
  real_fft() = default;
  /// Plans the r2c (forward) or c2r (inverse) transforms of `layout`.
  real_fft(const fft_layout& layout, direction dir, fft_planning planning = fft_planning::estimate)
      : layout_(layout), direction_(dir) {
    detail::require<config_error>(layout.length >= 1, "fft: transform length must be >= 1, got ", layout.length);
    detail::require<config_error>(layout.batch.size() <= 2, "fft: at most 2 batch dimensions, got ",
                                  layout.batch.size());
    for (const auto& d : layout.batch)
      detail::require<config_error>(d.count >= 1, "fft: batch counts must be >= 1, got ", d.count);
    typename api::iodim dim{layout.length, layout.real_stride, layout.spectrum_stride};
    typename api::iodim howmany[2] = {};
    for (std::size_t i = 0; i < layout.batch.size(); ++i) {
      const auto& d = layout.batch[i];
      howmany[i] = dir == direction::forward ? typename api::iodim{d.count, d.real_distance, d.spectrum_distance}
                                             : typename api::iodim{d.count, d.spectrum_distance, d.real_distance};
    }
    if (dir == direction::inverse) std::swap(dim.is, dim.os);
    const unsigned flags = (planning == fft_planning::measure ? FFTW_MEASURE : FFTW_ESTIMATE) |
                           (dir == direction::inverse ? FFTW_DESTROY_INPUT : 0u);
    // Planning arrays come from fftw_malloc: execution then needs the same alignment.
    fft_vector<T> real(std::size_t(layout.real_extent()));
    fft_vector<complex> spectrum(std::size_t(layout.spectrum_extent()));
    auto* c = reinterpret_cast<typename api::complex*>(spectrum.data());
    const int rank_batch = int(layout.batch.size());
    typename api::plan p;
    {
      std::lock_guard<std::mutex> lock(detail::fft_planner_mutex());
      p = dir == direction::forward ? api::r2c(1, &dim, rank_batch, howmany, real.data(), c, flags)
                                    : api::c2r(1, &dim, rank_batch, howmany, c, real.data(), flags);
    }
    detail::require<config_error>(p != nullptr, "fft: FFTW cannot plan a length-", layout.length,
                                  " real transform with this layout");
    plan_ = std::shared_ptr<std::remove_pointer_t<typename api::plan>>(p, [](typename api::plan q) {
      std::lock_guard<std::mutex> lock(detail::fft_planner_mutex());
      api::destroy(q);
    });
  }

  const fft_layout& layout() const { return layout_; }

  /// r2c: reads layout().real_extent() values at `in`, writes the half spectra at `out`.
  void forward(const T* in, complex* out) const {
    SLIMNN_ASSERT(plan_ && direction_ == direction::forward);
    check_aligned(in, out);
    // FFTW preserves the input of a rank-1 r2c transform; its signature is not const.
    api::execute_r2c(plan_.get(), const_cast<T*>(in), reinterpret_cast<typename api::complex*>(out));
  }

  /// c2r (unnormalised): reads the half spectra at `in` and DESTROYS them, writes `out`.
  void inverse(complex* in, T* out) const {
    SLIMNN_ASSERT(plan_ && direction_ == direction::inverse);
    check_aligned(in, out);
    api::execute_c2r(plan_.get(), reinterpret_cast<typename api::complex*>(in), out);
  }

 private:
  static void check_aligned(const void* a, const void* b) {
    detail::require<config_error>(
        api::alignment_of(static_cast<T*>(const_cast<void*>(a))) == 0 &&
            api::alignment_of(static_cast<T*>(const_cast<void*>(b))) == 0,
        "fft: buffers must be aligned like fftw_malloc's (use fft_vector)");
  }

  fft_layout layout_;
  direction direction_ = direction::forward;
  std::shared_ptr<std::remove_pointer_t<typename api::plan>> plan_;
};

}  // namespace slimnn
