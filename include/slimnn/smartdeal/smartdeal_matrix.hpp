// slimnn/smartdeal/smartdeal_matrix.hpp — a weight matrix stored as SmartDeal factors:
// per output row a sparse power-of-two coefficient matrix times a small shared basis.
//
// Math. A rows x cols matrix W is cut, row by row, into S = ceil(cols/s)
// segments of length s (the last one zero-padded to cols_pad = S*s). Row o, seen as an
// S x s matrix R_o, is  R_o = Ce_o . B_g  with B_g (s x s) the basis of its group
// g = o / group_rows and Ce_o sparse with nonzeros +-2^e, e in [min_exponent,
// max_exponent] (sign + exponent code, pow2_quantizer). Hence
//   y_o = sum_r W_o,r . x_r = sum_r sum_j Ce_o(r, j) z_r[j],   z_r = B_g x_r,
// computed in the basis domain: z once per group (G*cols_pad*s MACs), then one
// accumulation per nonzero coefficient.
//
// In-memory layout (the compute cache), chosen once from the sparsity pattern:
//   segment layout (a kept segment has >= s/2 nonzeros on average): per row a list of
//     kept segments ("units"), each with the z offset g*cols_pad + r*s and its s
//     coefficient values (zeros where the element is pruned) — whole-segment sparsity,
//     vectorized over segments;
//   element layout (otherwise): per row a list of nonzeros, each with its z offset
//     g*cols_pad + r*s + j and its value (vector gathers beside scalar loads).
// The batch-1 sparse stage runs kernels/smartdeal.hpp on the active_isa() path. Float
// segments of 8 also keep their coefficients as int8 exponent codes (kernels/smartdeal.hpp;
// a quarter of the bytes to stream, the same results): rebuilt by after_update(), and
// set aside by parameters() until then, so forward always reads the current values.
// Both keep the coefficients as decoded T values (coefficients(): the same values as a
// sparse matrix); the multiply by 2^e is done as an ordinary (fused) multiply, not as an
// exponent add. What a deployment stores is pack(): the bases in T, and bit-packed
// (detail::packed_bits) per-row kept-segment counts, segment indices, one s-bit element
// mask per kept segment and a (1 + exponent bits)-bit code per nonzero. stored_bytes()
// counts exactly those bytes as the file holds them (each stream ceil(bits / 8) bytes).
// File (save/load, core/tensor_io.hpp): pack() as "<prefix>basis" [s, s*G] in T and the
// bit-packed U8 streams "<prefix>segment_counts", "segment_index", "element_mask" and
// "codes" (detail/packed_io.hpp); settings group_rows, min_exponent, max_exponent. load
// checks every count, index, mask and code before unpack().
//
// Training: parameters() are "basis" (s x s*G, column block g is B_g) and "coefficients"
// (the effective power-of-two values, in the compute layout). A hidden latent copy of the
// coefficients implements the straight-through estimator: after_update() adds the
// optimizer's change of each coefficient to its latent value, rounds the latent value to
// the nearest power of two in range and writes it back, and re-zeroes pruned elements,
// so after every step the matrix is again a valid SmartDeal matrix with the same mask.
// Gradients are exact for the effective coefficients and the basis.
// Thread safety: the const members are reentrant; training members are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <Eigen/SparseCore>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <span>
#include <type_traits>
#include <vector>

#include "slimnn/core/layer.hpp"
#include "slimnn/core/quantize.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/detail/bitpack.hpp"
#include "slimnn/detail/packed_io.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/kernels/smartdeal.hpp"

namespace slimnn {

/// Row-major sparse coefficient matrix (rows x cols_pad): entry (o, r*s + j) is Ce_o(r, j).
using smartdeal_coefficients = Eigen::SparseMatrix<double, Eigen::RowMajor, std::int64_t>;

/// The deployment format of a smartdeal_matrix (see the header comment).
template <class T>
struct smartdeal_packed {
  index_t rows = 0, cols = 0, basis_width = 1, group_rows = 1;
  int min_exponent = 0, max_exponent = 0;
  matrix<T> bases;                     ///< s x (s*groups)
  detail::packed_bits segment_counts;  ///< per row: kept segments, bits_for(S + 1) bits
  detail::packed_bits segment_index;   ///< per kept segment: r, bits_for(S) bits
  detail::packed_bits element_mask;    ///< per kept segment: s bits, 1 = nonzero element
  detail::packed_bits codes;           ///< per nonzero: pow2_quantizer code

  std::uint64_t bytes() const {
    return std::uint64_t(bases.size()) * sizeof(T) + segment_counts.file_bytes() + segment_index.file_bytes() +
           element_mask.file_bytes() + codes.file_bytes();
  }
};

template <class T>
class smartdeal_matrix {
 public:
  using scalar_type = T;

  /// Builds the factors. `bases` is s x (s*groups) (block g = B_g), `coefficients` is
  /// rows x (S*s) with every nonzero an exact power of two inside `quantizer`'s range;
  /// group_rows = 0 means one basis for all rows. Throws config_error / shape_error.
  smartdeal_matrix(index_t rows, index_t cols, index_t basis_width, index_t group_rows, pow2_quantizer quantizer,
                   matrix<T> bases, const smartdeal_coefficients& coefficients)
      : rows_(rows), cols_(cols), s_(basis_width), quantizer_(quantizer), bases_(std::move(bases)) {
    detail::require<config_error>(rows > 0 && cols > 0, "smartdeal: sizes must be positive, got ", rows, " rows and ",
                                  cols, " columns");
    detail::require<config_error>(basis_width >= 1, "smartdeal: basis width must be >= 1, got ", basis_width);
    detail::require<config_error>(basis_width <= cols, "smartdeal: basis width ", basis_width,
                                  " is larger than the ", cols, " inputs of a row");
    detail::require<config_error>(group_rows >= 0, "smartdeal: rows per basis must be >= 0 (0 = one basis for all ",
                                  "rows), got ", group_rows);
    segments_ = (cols + s_ - 1) / s_;
    group_rows_ = group_rows == 0 ? rows : std::min(group_rows, rows);
    groups_ = (rows + group_rows_ - 1) / group_rows_;
    detail::require<shape_error>(bases_.rows() == s_ && bases_.cols() == s_ * groups_, "smartdeal: the bases are ",
                                 bases_.rows(), " x ", bases_.cols(), ", expected ", s_, " x ", s_ * groups_, " (",
                                 groups_, " bases of ", s_, " x ", s_, ")");
    detail::require<shape_error>(coefficients.rows() == rows && coefficients.cols() == padded_cols(),
                                 "smartdeal: the coefficients are ", coefficients.rows(), " x ", coefficients.cols(),
                                 ", expected ", rows, " x ", padded_cols());
    detail::require<config_error>(bases_.allFinite(), "smartdeal: the bases contain NaN or infinite values");
    detail::require<config_error>(double(groups_) * double(padded_cols()) < 4294967296.0,
                                  "smartdeal: the matrix is too large for 32-bit offsets");
    build(coefficients);
  }

  /// Rebuilds the factors from their deployment format (exact round trip of pack()).
  static smartdeal_matrix unpack(const smartdeal_packed<T>& p) {
    const pow2_quantizer q(p.min_exponent, p.max_exponent);
    const index_t s = p.basis_width, S = (p.cols + s - 1) / std::max<index_t>(s, 1);
    detail::require<format_error>(p.segment_counts.size() == std::size_t(p.rows) &&
                                      p.element_mask.size() == p.segment_index.size() * std::size_t(s),
                                  "smartdeal: inconsistent packed sizes");
    std::vector<Eigen::Triplet<double, std::int64_t>> entries;
    entries.reserve(p.codes.size());
    std::size_t unit = 0, code = 0;
    for (index_t o = 0; o < p.rows; ++o)
      for (std::uint32_t k = 0, n = p.segment_counts.get(std::size_t(o)); k < n; ++k, ++unit) {
        detail::require<format_error>(unit < p.segment_index.size(), "smartdeal: truncated segment indices");
        const index_t r = p.segment_index.get(unit);
        detail::require<format_error>(r < S, "smartdeal: segment index ", r, " out of range");
        for (index_t j = 0; j < s; ++j)
          if (p.element_mask.get(unit * std::size_t(s) + std::size_t(j))) {
            detail::require<format_error>(code < p.codes.size(), "smartdeal: truncated codes");
            entries.emplace_back(o, r * s + j, q.decode(std::uint8_t(p.codes.get(code++))));
          }
      }
    detail::require<format_error>(unit == p.segment_index.size() && code == p.codes.size(),
                                  "smartdeal: trailing packed data");
    smartdeal_coefficients c(p.rows, S * s);
    c.setFromTriplets(entries.begin(), entries.end());
    return smartdeal_matrix(p.rows, p.cols, s, p.group_rows, q, p.bases, c);
  }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }
  index_t basis_width() const { return s_; }
  index_t segments() const { return segments_; }  ///< per row, S
  index_t padded_cols() const { return segments_ * s_; }
  index_t group_rows() const { return group_rows_; }
  index_t groups() const { return groups_; }
  index_t kept_segments() const { return kept_segments_; }
  index_t nonzeros() const { return nonzeros_; }
  /// True for the segment layout, false for the element layout (header comment).
  bool segment_layout() const { return !element_layout_; }
  const pow2_quantizer& quantizer() const { return quantizer_; }
  const matrix<T>& bases() const { return bases_; }
  double element_density() const { return double(nonzeros_) / (double(rows_) * double(padded_cols())); }
  double segment_density() const { return double(kept_segments_) / (double(rows_) * double(segments_)); }

  /// The effective coefficients (rows x S*s), all exact powers of two in range.
  smartdeal_coefficients coefficients() const {
    std::vector<Eigen::Triplet<double, std::int64_t>> entries;
    entries.reserve(std::size_t(nonzeros_));
    for_each_active([&](index_t o, index_t col, index_t slot) { entries.emplace_back(o, col, double(coef_[slot])); });
    smartdeal_coefficients c(rows_, padded_cols());
    c.setFromTriplets(entries.begin(), entries.end());
    return c;
  }

  /// W (rows x cols) in double: row o, segment r is sum_j Ce_o(r, j) B_g(j, :).
  matrix<double> to_dense() const {
    matrix<double> w = matrix<double>::Zero(rows_, padded_cols());
    const matrix<double> b = bases_.template cast<double>();
    for_each_active([&](index_t o, index_t col, index_t slot) {
      const index_t r = col / s_, j = col % s_, g = o / group_rows_;
      w.row(o).segment(r * s_, s_) += double(coef_[slot]) * b.block(j, g * s_, 1, s_);
    });
    return w.leftCols(cols_);
  }

  smartdeal_packed<T> pack() const {
    smartdeal_packed<T> p{rows_, cols_, s_, group_rows_, quantizer_.min_exponent(), quantizer_.max_exponent(),
                          bases_, {}, {}, {}, {}};
    p.segment_counts = detail::packed_bits(std::size_t(rows_), detail::bits_for(std::uint64_t(segments_) + 1));
    p.segment_index = detail::packed_bits(std::size_t(kept_segments_), detail::bits_for(std::uint64_t(segments_)));
    p.element_mask = detail::packed_bits(std::size_t(kept_segments_ * s_), 1);
    p.codes = detail::packed_bits(std::size_t(nonzeros_), quantizer_.code_bits());
    const auto c = coefficients();
    std::size_t unit = 0, code = 0;
    for (index_t o = 0; o < rows_; ++o) {
      index_t count = 0, last = -1;
      for (smartdeal_coefficients::InnerIterator it(c, o); it; ++it) {
        const index_t r = index_t(it.col()) / s_, j = index_t(it.col()) % s_;
        if (r != last) {
          p.segment_index.set(unit++, std::uint32_t(r));
          ++count;
          last = r;
        }
        p.element_mask.set((unit - 1) * std::size_t(s_) + std::size_t(j), 1);
        p.codes.set(code++, quantizer_.encode(it.value()));
      }
      p.segment_counts.set(std::size_t(o), std::uint32_t(count));
    }
    return p;
  }

  /// Bytes of pack(): bases, segment counts and indices, element masks and codes.
  std::uint64_t stored_bytes() const { return stored_bytes_; }

  /// Writes pack() under `prefix` (the header comment); the caller stores rows, cols, s.
  void save(tensor_sink& out, const std::string& prefix) const {
    const smartdeal_packed<T> p = pack();
    out.put_setting(prefix + "group_rows", p.group_rows);
    out.put_setting(prefix + "min_exponent", p.min_exponent);
    out.put_setting(prefix + "max_exponent", p.max_exponent);
    out.put_matrix(prefix + "basis", p.bases);
    detail::put_packed(out, prefix + "segment_counts", p.segment_counts);
    detail::put_packed(out, prefix + "segment_index", p.segment_index);
    detail::put_packed(out, prefix + "element_mask", p.element_mask);
    detail::put_packed(out, prefix + "codes", p.codes);
  }
  /// Reads what save wrote for a rows x cols matrix of basis width s (1 <= s <= cols);
  /// format_error naming the tensor or setting on any inconsistency.
  static smartdeal_matrix load(const tensor_source& in, const std::string& prefix, index_t rows, index_t cols,
                               index_t s) {
    smartdeal_packed<T> p{rows, cols, s, in.setting_int(prefix + "group_rows", 1, rows), 0, 0, {}, {}, {}, {}, {}};
    p.min_exponent = int(in.setting_int(prefix + "min_exponent", -125, 126));
    p.max_exponent = int(in.setting_int(prefix + "max_exponent", p.min_exponent, std::min(126, p.min_exponent + 127)));
    const pow2_quantizer q(p.min_exponent, p.max_exponent);
    const index_t S = (cols + s - 1) / s, groups = (rows + p.group_rows - 1) / p.group_rows;
    const std::string basis = prefix + "basis", counts = prefix + "segment_counts", index = prefix + "segment_index",
                      mask = prefix + "element_mask", codes = prefix + "codes";
    detail::element_count(in, basis, {std::uint64_t(s), std::uint64_t(s), std::uint64_t(groups)});
    if (double(groups) * double(S * s) >= 4294967296.0) in.fail(basis, "the matrix is too large for 32-bit offsets");
    p.bases = in.get_matrix<T>(basis, s, s * groups);
    if (!p.bases.allFinite()) in.fail(basis, "contains NaN or infinite values");
    detail::element_count(in, counts, {std::uint64_t(rows), std::uint64_t(S)});  // bounds the kept segments
    p.segment_counts = detail::get_packed(in, counts, std::uint64_t(rows), detail::bits_for(std::uint64_t(S) + 1));
    std::uint64_t kept = 0;
    for (index_t o = 0; o < rows; ++o) {
      const auto n = p.segment_counts.get(std::size_t(o));
      if (n > std::uint64_t(S)) in.fail(counts, detail::cat("row ", o, " keeps ", n, " segments, it has ", S));
      kept += n;
    }
    p.segment_index = detail::get_packed(in, index, kept, detail::bits_for(std::uint64_t(S)));
    for (index_t o = 0, unit = 0; o < rows; ++o)
      for (std::uint32_t k = 0, n = p.segment_counts.get(std::size_t(o)); k < n; ++k, ++unit) {
        const auto r = p.segment_index.get(std::size_t(unit));
        if (r >= std::uint64_t(S))
          in.fail(index, detail::cat("row ", o, ": segment ", r, " is out of range 0..", S - 1));
        if (k > 0 && r <= p.segment_index.get(std::size_t(unit - 1)))
          in.fail(index, detail::cat("row ", o, ": segments are not in ascending order"));
      }
    p.element_mask = detail::get_packed(in, mask, detail::element_count(in, mask, {kept, std::uint64_t(s)}), 1);
    std::uint64_t nonzeros = 0;
    for (std::uint64_t unit = 0; unit < kept; ++unit) {
      std::uint64_t set = 0;
      for (index_t j = 0; j < s; ++j) set += p.element_mask.get(std::size_t(unit) * std::size_t(s) + std::size_t(j));
      if (set == 0) in.fail(mask, detail::cat("kept segment ", unit, " has no nonzero element"));
      nonzeros += set;
    }
    p.codes = detail::get_packed(in, codes, nonzeros, q.code_bits());
    const std::uint32_t field = (1u << q.exponent_bits()) - 1u;
    for (std::size_t i = 0; i < p.codes.size(); ++i)
      if (int(p.codes.get(i) & field) >= q.levels())
        in.fail(codes, detail::cat("code ", p.codes.get(i), " of nonzero ", i, " is outside the ", q.levels(),
                                   " exponents ", p.min_exponent, "..", p.max_exponent));
    return unpack(p);
  }

  /// Basis-domain MACs per input vector: G*cols_pad*s for z.
  std::uint64_t basis_macs() const { return std::uint64_t(groups_ * padded_cols() * s_); }
  /// Sparse-stage MACs per input vector, as the compute layout runs them: every slot of
  /// each kept segment (segment layout, zero slots included), or one per nonzero.
  std::uint64_t coefficient_macs() const {
    return std::uint64_t(element_layout_ ? nonzeros_ : kept_segments_ * s_);
  }

  // --- compute ------------------------------------------------------------------

  /// Batch 1: x (cols values) -> y (rows values), without bias.
  void gemv(const T* x, T* y) const {
    auto xp = detail::scratch<smartdeal_matrix, T, 0>(padded_cols(), 1);
    auto z = detail::scratch<smartdeal_matrix, T, 1>(groups_ * padded_cols(), 1);
    std::copy(x, x + cols_, xp.data());
    std::fill(xp.data() + cols_, xp.data() + padded_cols(), T(0));
    const Eigen::Map<const matrix<T>> xs(xp.data(), s_, segments_);
    for (index_t g = 0; g < groups_; ++g) {
      Eigen::Map<matrix<T>> zs(z.data() + g * padded_cols(), s_, segments_);
      zs.noalias() = bases_.middleCols(g * s_, s_) * xs;
    }
    if constexpr (std::is_same_v<T, float>)
      if (codes_current_)
        return kernels::smartdeal_gemv_s8_codes(active_isa(), rows_, row_start_.data(), offset_.data(),
                                                exponent_codes_.data(), z.data(), code_scale_, y);
    kernels::smartdeal_gemv(active_isa(), rows_, width_, row_start_.data(), offset_.data(), coef_.data(), z.data(), y);
  }

  /// Zc (N x G*cols_pad) = the basis transform of the N inputs held as rows of Xt
  /// (N x cols_pad, column-major; padding columns must be zero).
  template <class Xt, class Zc>
  void transform(const Xt& xt, Zc& zc) const {
    SLIMNN_ASSERT(xt.cols() == padded_cols());
    zc.resize(xt.rows(), groups_ * padded_cols());
    for (index_t g = 0; g < groups_; ++g) {
      const auto bt = bases_.middleCols(g * s_, s_).transpose();
      for (index_t r = 0; r < segments_; ++r)
        zc.middleCols(g * padded_cols() + r * s_, s_).noalias() = xt.middleCols(r * s_, s_).lazyProduct(bt);
    }
  }

  /// Yt (N x rows) = the coefficient accumulation over Zc (from transform), no bias:
  /// kernels/smartdeal.hpp's batched stage on the active_isa() path.
  template <class Zc, class Yt>
  void apply(const Zc& zc, Yt& yt) const {
    yt.resize(zc.rows(), rows_);
    kernels::smartdeal_gemm(active_isa(), rows_, width_, row_start_.data(), offset_.data(), coef_.data(), zc.data(),
                            zc.rows(), yt.data());
  }
  /// The same for N inputs whose z values lie elsewhere: slot u's j-th column at
  /// zs.at(u) + j * zs.step (kernels/smartdeal.hpp), into yt (N x rows, column-major).
  void apply(kernels::z_source<T> zs, index_t n, T* yt) const {
    kernels::smartdeal_gemm(active_isa(), rows_, width_, row_start_.data(), offset_.data(), coef_.data(), zs, n, yt);
  }
  /// The Zc column of every slot (a kept segment's first column, or a nonzero's), in slot order.
  const std::vector<std::uint32_t>& slot_columns() const { return offset_; }

  // --- training -----------------------------------------------------------------

  /// Given the Xt and Zc of the forward pass and dYt (N x rows), accumulates the basis
  /// and coefficient gradients and sets dXt (N x cols_pad) = dL/dXt (a matrix, or a map
  /// of that size). Returns |dL/dZc|^2: the basis gradient dB_g = sum_r dZ_{g,r}^T Xt_r
  /// sums s values of Xt per entry and row, so a layer adapting a lossy kept input
  /// (kept_tensor::adapt) takes fan-in s and |dy| = |dL/dZc|.
  template <class Xt, class Zc, class Dyt, class Dxt>
  double backward(const Xt& xt, const Zc& zc, const Dyt& dyt, Dxt& dxt) {
    auto& dzc = dzc_;
    const index_t n = zc.rows();
    SLIMNN_ASSERT(dyt.rows() == n && dyt.cols() == rows_);
    dzc.setZero(n, zc.cols());
    for (index_t t0 = 0; t0 < n; t0 += tile) {
      const index_t len = std::min(tile, n - t0);
      for (index_t o = 0; o < rows_; ++o) {
        const Eigen::Map<const vector<T>> dy(dyt.data() + o * n + t0, len);
        for_each_slot(o, [&](index_t slot, index_t k) {
          coef_grad_[slot] += dy.dot(Eigen::Map<const vector<T>>(zc.data() + k * n + t0, len));
          if (coef_[slot] != T(0)) Eigen::Map<vector<T>>(dzc.data() + k * n + t0, len) += coef_[slot] * dy;
        });
      }
    }
    dxt.resize(xt.rows(), padded_cols());  // a map must already have this size
    dxt.setZero();
    for (index_t g = 0; g < groups_; ++g) {
      const auto b = bases_.middleCols(g * s_, s_);
      auto db = bases_grad_.middleCols(g * s_, s_);
      for (index_t r = 0; r < segments_; ++r) {
        const auto dz = dzc.middleCols(g * padded_cols() + r * s_, s_);
        db.noalias() += dz.transpose() * xt.middleCols(r * s_, s_);
        dxt.middleCols(r * s_, s_).noalias() += dz * b;
      }
    }
    return double(dzc.squaredNorm());
  }
  /// The basis gradient accumulated so far (s x s*G, column-major).
  std::span<const T> basis_gradient() const { return {bases_grad_.data(), std::size_t(bases_grad_.size())}; }

  std::vector<parameter<T>> parameters() {
    codes_current_ = false;  // the caller may change the coefficients until after_update()
    return {{"basis", bases_.data(), bases_grad_.data(), bases_.size()},
            {"coefficients", coef_.data(), coef_grad_.data(), coef_.size(), T(1), false}};
  }

  /// Straight-through step: latent += change of the effective value; effective =
  /// nearest power of two of latent (in range); pruned elements back to zero.
  void after_update() {
    const double top = std::ldexp(1.5, quantizer_.max_exponent());
    for (index_t i = 0; i < coef_.size(); ++i) {
      if (!active_[std::size_t(i)]) {
        coef_[i] = T(0);
        continue;
      }
      const double moved = double(coef_[i]) - quantizer_.round(latent_[i]);
      latent_[i] = std::clamp(latent_[i] + moved, -top, top);
      coef_[i] = T(quantizer_.round(latent_[i]));
    }
    refresh_exponent_codes();
  }

 private:
  static constexpr index_t tile = 32;  // batch rows per tile in backward

  /// f(slot, z index) for every slot of row o (pruned elements included).
  template <class F>
  void for_each_slot(index_t o, F&& f) const {
    for (index_t u = row_start_[std::size_t(o)]; u < row_start_[std::size_t(o) + 1]; ++u) {
      const index_t base = index_t(offset_[std::size_t(u)]);
      for (index_t j = 0; j < width_; ++j) f(u * width_ + j, base + j);
    }
  }

  /// f(row, column in 0..cols_pad, slot) for every active (nonzero) coefficient.
  template <class F>
  void for_each_active(F&& f) const {
    for (index_t o = 0; o < rows_; ++o)
      for (index_t u = row_start_[std::size_t(o)]; u < row_start_[std::size_t(o) + 1]; ++u)
        for (index_t j = 0; j < width_; ++j)
          if (active_[std::size_t(u * width_ + j)])
            f(o, index_t(offset_[std::size_t(u)]) % padded_cols() + j, u * width_ + j);
  }

  void build(const smartdeal_coefficients& c) {
    // Count kept segments and nonzeros, checking every value.
    nonzeros_ = kept_segments_ = 0;
    for (index_t o = 0; o < rows_; ++o) {
      index_t last = -1;
      for (smartdeal_coefficients::InnerIterator it(c, o); it; ++it) {
        const double v = it.value();
        if (v == 0) continue;
        detail::require<config_error>(quantizer_.round(v) == v, "smartdeal: coefficient ", v, " at (", o, ", ",
                                      it.col(), ") is not a power of two in [2^", quantizer_.min_exponent(),
                                      ", 2^", quantizer_.max_exponent(), "]");
        ++nonzeros_;
        if (index_t(it.col()) / s_ != last) ++kept_segments_, last = index_t(it.col()) / s_;
      }
    }
    element_layout_ = 2 * nonzeros_ < kept_segments_ * s_;
    width_ = element_layout_ ? 1 : s_;
    const index_t units = element_layout_ ? nonzeros_ : kept_segments_;
    row_start_.assign(std::size_t(rows_) + 1, 0);
    offset_.assign(std::size_t(units), 0);
    coef_ = vector<T>::Zero(units * width_);
    active_.assign(std::size_t(units * width_), 0);
    index_t u = -1;
    for (index_t o = 0; o < rows_; ++o) {
      const std::uint32_t base = std::uint32_t((o / group_rows_) * padded_cols());
      index_t last = -1;
      for (smartdeal_coefficients::InnerIterator it(c, o); it; ++it) {
        if (it.value() == 0) continue;
        const index_t col = index_t(it.col()), r = col / s_;
        if (element_layout_ || r != last) {
          ++u;
          offset_[std::size_t(u)] = base + std::uint32_t(element_layout_ ? col : r * s_);
          last = r;
        }
        const index_t slot = element_layout_ ? u : u * s_ + col % s_;
        coef_[slot] = T(it.value());
        active_[std::size_t(slot)] = 1;
      }
      row_start_[std::size_t(o) + 1] = u + 1;
    }
    latent_ = coef_.template cast<double>();
    coef_grad_ = vector<T>::Zero(coef_.size());
    refresh_exponent_codes();
    bases_grad_ = matrix<T>::Zero(bases_.rows(), bases_.cols());
    using detail::packed_bits;
    stored_bytes_ = std::uint64_t(bases_.size()) * sizeof(T) +
                    packed_bits::byte_count(std::size_t(rows_), detail::bits_for(std::uint64_t(segments_) + 1)) +
                    packed_bits::byte_count(std::size_t(kept_segments_), detail::bits_for(std::uint64_t(segments_))) +
                    packed_bits::byte_count(std::size_t(kept_segments_ * s_), 1) +
                    packed_bits::byte_count(std::size_t(nonzeros_), quantizer_.code_bits());
  }

  /// The int8 exponent codes of the coefficients, for float segments of 8 whose exponent
  /// range fits them (kernels/smartdeal.hpp); otherwise forward reads coef_.
  void refresh_exponent_codes() {
    codes_current_ = false;
    if constexpr (std::is_same_v<T, float>) {
      const int top = quantizer_.max_exponent();
      if (width_ != 8 || top - quantizer_.min_exponent() > 126) return;
      exponent_codes_.resize(std::size_t(coef_.size()));
      for (index_t i = 0; i < coef_.size(); ++i) exponent_codes_[std::size_t(i)] = kernels::exponent_code(coef_[i], top);
      code_scale_ = std::ldexp(1.0f, top);
      codes_current_ = true;
    }
  }

  index_t rows_, cols_, s_, segments_ = 0, group_rows_ = 1, groups_ = 1;
  pow2_quantizer quantizer_;
  matrix<T> bases_, bases_grad_;
  bool element_layout_ = false;
  index_t width_ = 1, kept_segments_ = 0, nonzeros_ = 0;
  std::vector<index_t> row_start_;      // rows + 1, into units
  std::vector<std::uint32_t> offset_;   // per unit: z offset
  vector<T> coef_, coef_grad_;          // per slot (units * width_): effective values
  vector<double> latent_;               // per slot: straight-through latent values
  std::vector<std::uint8_t> active_;    // per slot: 1 = element in the mask
  std::vector<std::int8_t> exponent_codes_;  // per slot, when codes_current_: coef_ as codes
  T code_scale_ = T(1);                 // 2^max_exponent
  bool codes_current_ = false;
  std::uint64_t stored_bytes_ = 0;
  matrix<T> dzc_;                       // backward scratch
};

}  // namespace slimnn
