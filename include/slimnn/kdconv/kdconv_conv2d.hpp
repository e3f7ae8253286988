// slimnn/kdconv/kdconv_conv2d.hpp — the ESCALATE kernel-decomposition convolution.
//
//   W[n, c] (k x k) = sum_m A[n, c, m] * B[g(c), m]        (see kdconv/settings.hpp)
//   y[n] = b[n] + sum_{c, m} A[n, c, m] * (x[c] (*) B[g(c), m])
// Stage 1 convolves every input channel with its M basis kernels (C*M*k*k MACs per
// output position); stage 2 combines the C*M responses with the sparse coefficient
// matrix A (N x C*M, CSR by output channel; nnz MACs per output position).
//
// Dataflow (forward): basis-first. The output rows are cut into bands of a few rows.
// For one band, each input channel's rows are read once (at stride 1 from a zero-padded
// copy of the sample, made channel by channel during the first band; else loaded, padded
// and split by stride phase, per band), and every loaded row feeds all M basis kernels at
// once (register tiles of up to 4 x 16 positions x up to 4 bases); the band's C*M
// responses then go straight into the sparse stage, in 64-position accumulator tiles
// held in registers. Both stages' tiles run in kernels/kdconv.hpp, on the kernel path
// chosen at run time (kernels/isa.hpp). The band's responses live in L2. Runs of up to 4 consecutive output
// channels with the same columns (group sparsity, group_size >= 2) are blocked: each
// loaded response tile feeds all of them, so they are bound by FMAs. The other channels
// (element-wise masks) share few columns, so a channel-by-channel walk would fetch each
// tile from L2 again for every channel that uses it; instead the columns are cut into
// chunks whose tiles fit L1 (32 KiB), and every channel's nonzeros in a chunk (a "job")
// run before the next chunk, so each tile comes from L2 once per chunk and the channels
// read it from L1; per-channel sums wait in a per-thread buffer between chunks. Only one
// band of responses exists at a time (C*M x band positions instead of C*M x Ho*Wo); the
// materialised order (one band = the whole image) is kept for tests and for comparing
// buffer sizes (peak_intermediate_bytes).
//
// Shapes: x (C*H*W x batch, CHW) -> y (N*Ho*Wo x batch), any stride and padding that
// conv2d accepts. Basis: (k*k) x (G*M), column g*M + m is kernel B[g, m] in (i, j) order.
//
// Training: parameters are the nonzero coefficients (their positions, the mask, are
// fixed), optionally the basis, and the bias. With quantized formats the parameters are
// latent values; forward uses their quantized copies, gradients pass straight through,
// and after_update() re-quantizes (optimizers call it after every step). Backward goes
// through the equivalent dense kernel: dW by im2col + GEMM, then dA[n,c,m] = <dW[n,c], B[c,m]>
// on the mask and dB[c,m] = sum_n A[n,c,m] dW[n,c].
// File (core/tensor_io.hpp): the values forward uses. "<prefix>basis" [G, M, k, k] in T, or
// "<prefix>basis_codes" (basis_bits-bit codes, detail/packed_io.hpp) with
// "<prefix>basis_fraction_bits" [G] I8; "<prefix>row_start" [N+1] I32 and "<prefix>columns"
// (packed c*M + m); "<prefix>coefficients" [nnz] in T, or "<prefix>coefficient_codes" (packed
// pow2 codes, setting coefficient_max_exponent; or indices into "<prefix>coefficient_codebook"
// [<= 2^bits] in T); "<prefix>bias" [N]; settings input, out_channels, kernel, stride,
// padding and every kdconv_settings field. A loaded layer's latent values are the stored ones.
// Thread safety: forward is const and reentrant (per-thread scratch); training members
// are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/tensor_io.hpp"
#include "slimnn/detail/im2col.hpp"
#include "slimnn/detail/packed_io.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/kdconv/settings.hpp"
#include "slimnn/kernels/kdconv.hpp"
#include "slimnn/layers/conv2d.hpp"

namespace slimnn {

/// Evaluation order of the two stages.
enum class kdconv_dataflow {
  basis_first,   ///< band by band: only one band of the C*M responses is ever stored
  materialised,  ///< all C*M response maps first, then the sparse combination
};

/// The sparse coefficient matrix A (N x C*M) in CSR form: row n lists the columns
/// c*M + m of its nonzero coefficients in ascending order, with their values.
template <class T>
struct kdconv_sparse_coefficients {
  std::vector<std::int32_t> row_start;  ///< N + 1 offsets into column / value
  std::vector<std::int32_t> column;     ///< c*M + m per nonzero
  vector<T> value;                      ///< one value per nonzero
};

template <class T>
class kdconv_conv2d {
 public:
  using scalar_type = T;

  /// Positions per stage-1 register tile and per stage-2 accumulator tile.
  static constexpr index_t row_tile = kernels::kdconv_row_tile;
  static constexpr index_t combine_tile = 64;

  /// Builds the layer from its parts; `basis` and `coefficients.value` are latent values
  /// (quantized here as `s` says). Throws shape_error / config_error on inconsistent parts.
  kdconv_conv2d(slimnn::detail::conv_geometry geometry, index_t out_channels, const kdconv_settings& s,
                    matrix<T> basis, kdconv_sparse_coefficients<T> coefficients, vector<T> bias)
      : kdconv_conv2d(geometry, out_channels, s, std::move(basis), std::move(coefficients), std::move(bias),
                          false) {}

 private:
  /// As above; when `quantized`, the basis and coefficients are already the stored
  /// (quantized) values of a saved layer and are used unchanged, also as latent values.
  kdconv_conv2d(slimnn::detail::conv_geometry geometry, index_t out_channels, const kdconv_settings& s,
                    matrix<T> basis, kdconv_sparse_coefficients<T> coefficients, vector<T> bias, bool quantized)
      : geometry_(geometry), out_channels_(out_channels), settings_(s), basis_(std::move(basis)),
        row_start_(std::move(coefficients.row_start)), column_(std::move(coefficients.column)),
        coef_(std::move(coefficients.value)), bias_(std::move(bias)) {
    const std::string who = name();
    geometry_.validate(who);
    slimnn::detail::require<config_error>(out_channels_ >= 1, who, ": out_channels must be >= 1, got ",
                                          out_channels_);
    settings_.validate(geometry_.kernel, out_channels_);
    const index_t kk = geometry_.kernel * geometry_.kernel, M = settings_.bases;
    slimnn::detail::require<shape_error>(basis_.rows() == kk && basis_.cols() == groups() * M, who,
                                         ": basis must be ", kk, " x ", groups() * M, ", got ", basis_.rows(),
                                         " x ", basis_.cols());
    slimnn::detail::require<shape_error>(bias_.size() == out_channels_, who, ": bias must have ", out_channels_,
                                         " values, got ", bias_.size());
    slimnn::detail::require<shape_error>(index_t(row_start_.size()) == out_channels_ + 1 && row_start_.front() == 0 &&
                                             index_t(row_start_.back()) == index_t(column_.size()) &&
                                             index_t(column_.size()) == coef_.size(),
                                         who, ": coefficients need ", out_channels_ + 1,
                                         " row offsets ending at the number of nonzeros");
    const index_t columns = geometry_.in.c * M;
    for (index_t n = 0; n < out_channels_; ++n) {
      slimnn::detail::require<config_error>(row_start_[n] <= row_start_[n + 1], who,
                                            ": coefficient row offsets must not decrease (row ", n, ")");
      for (std::int32_t e = row_start_[n]; e < row_start_[n + 1]; ++e)
        slimnn::detail::require<config_error>(
            column_[e] >= 0 && column_[e] < columns && (e == row_start_[n] || column_[e - 1] < column_[e]), who,
            ": coefficient columns of row ", n, " must be ascending and in 0..", columns - 1);
    }
    basis_grad_ = matrix<T>::Zero(basis_.rows(), basis_.cols());
    coef_grad_ = vector<T>::Zero(coef_.size());
    bias_grad_ = vector<T>::Zero(bias_.size());
    basis_q_ = basis_;
    coef_q_ = coef_;
    if (!quantized) requantize(true);
    row_block_ = row_blocks();
    schedule_jobs();
    refresh_job_coefficients();
    // Tap (i, j) of an output row reads loaded row i, stride phase j % s, from j / s on.
    for (index_t i = 0; i < geometry_.kernel; ++i)
      for (index_t j = 0; j < geometry_.kernel; ++j)
        tap_offset_.push_back((i * geometry_.stride + j % geometry_.stride) * row_length() + j / geometry_.stride);
    plan_tiles();
  }

 public:
  shape input_shape() const { return geometry_.in; }
  shape output_shape() const { return {out_channels_, geometry_.out_h(), geometry_.out_w()}; }
  std::string name() const { return std::string("kdconv_conv2d<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    return slimnn::detail::cat(geometry_.in.c, "->", out_channels_, ", ", geometry_.kernel, 'x', geometry_.kernel,
                               ", stride ", geometry_.stride, ", pad ", geometry_.padding, ", ", settings_.description());
  }

  void forward(const_matrix_ref<T> x, matrix<T>& y, kdconv_dataflow order = kdconv_dataflow::basis_first) const {
    slimnn::detail::forward_resized(*this, x, y, order);
  }

  void forward(const_matrix_ref<T> x, matrix_view<T> y, kdconv_dataflow order = kdconv_dataflow::basis_first) const {
    slimnn::detail::check_input_rows(*this, x.rows());
    slimnn::detail::check_output(*this, y, x.cols());
    const index_t ho = geometry_.out_h(), rows = order == kdconv_dataflow::materialised ? ho : band_rows();
    const index_t stride = response_stride(rows);
    auto responses = slimnn::detail::scratch<kdconv_conv2d, T, 0>(stride, geometry_.in.c * settings_.bases);
    // Stride 1: the whole sample zero-padded (during the first band); else each band's rows, phase-split.
    const bool padded = geometry_.stride == 1;
    auto input_rows = slimnn::detail::scratch<kdconv_conv2d, T, 1>(input_rows_rows(), input_rows_cols(rows));
    const T* job_coef = job_coefficients();
    const isa path = active_isa();  // one kernel path for the whole forward
    for (index_t b = 0; b < x.cols(); ++b) {
      for (index_t first = 0; first < ho; first += rows) {
        const index_t last = std::min(ho, first + rows);
        basis_stage(x.col(b).data(), first, last, padded, input_rows.data(), responses.data(), stride, path);
        combine_stage(responses.data(), stride, first, last, job_coef, y.col(b).data(), path);
      }
    }
  }

  /// Per thread, for `order`: one band of responses, the padded sample or a band's
  /// loaded rows, the job channels' sums and, for float32 coefficients changed since the
  /// last after_update(), their gathered job values.
  std::uint64_t workspace_bytes(index_t, kdconv_dataflow order = kdconv_dataflow::basis_first) const {
    const index_t rows = order == kdconv_dataflow::materialised ? geometry_.out_h() : band_rows();
    const bool gathered = settings_.coefficients == kdconv_coefficient_format::float32 && !job_coef_current_;
    const index_t values = input_rows_rows() * input_rows_cols(rows) + combine_tile * out_channels_ +
                           (gathered ? index_t(job_column_.size()) : 0);
    return peak_intermediate_bytes(order) + std::uint64_t(values) * sizeof(T);
  }

  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    forward(x, y);
    input_.keep(x);
  }
  /// How forward_train keeps the input for backward (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) { input_.set_store(store); }
  kept_memory kept() const { return input_.memory(); }
  /// The kept input (its mode and, lossy, the bound in force).
  const kept_tensor<T>& kept_input() const { return input_; }

  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    slimnn::detail::check_grad_rows(*this, dy.rows(), dy.cols(), input_.cols());
    const auto& g = geometry_;
    const index_t N = out_channels_;
    const matrix<T> w = dense_weight();
    matrix<T> dw = matrix<T>::Zero(g.patch(), N);
    slimnn::detail::conv_backward_kept<T>(g, input_, dy, w, dw, bias_grad_, dx, cols_, dout_);
    // Chain rule through W[n, c] = sum_m A[n, c, m] B[g(c), m] (straight through the rounding).
    const index_t kk = g.kernel * g.kernel, M = settings_.bases;
    const matrix<T>& basis = basis_used();
    const vector<T>& coef = coef_used();
    for (index_t n = 0; n < N; ++n)
      for (std::int32_t e = row_start_[n]; e < row_start_[n + 1]; ++e) {
        const index_t c = column_[e] / M, m = column_[e] % M, col = group_of(c) * M + m;
        const auto seg = dw.col(n).segment(c * kk, kk);
        coef_grad_[e] += seg.dot(basis.col(col));
        if (settings_.train_basis) basis_grad_.col(col) += coef[e] * seg;
      }
  }

  std::vector<parameter<T>> parameters() {
    job_coef_current_ = false;  // the caller may change the coefficients until after_update()
    std::vector<parameter<T>> p{{"coefficients", coef_.data(), coef_grad_.data(), coef_.size()}};
    if (settings_.train_basis) p.push_back({"basis", basis_.data(), basis_grad_.data(), basis_.size()});
    p.push_back({"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false});
    return p;
  }

  /// Re-quantizes the latent coefficients (and the basis when it is trained).
  void after_update() { requantize(settings_.train_basis); }

  slimnn::cost cost() const {
    const auto P = std::uint64_t(geometry_.positions());
    const std::uint64_t stage1 = std::uint64_t(geometry_.in.c * settings_.bases * basis_.rows()) * P;
    const std::uint64_t stage2 = std::uint64_t(nonzeros()) * P;
    slimnn::cost c;
    c.param_bytes = stored_bytes();
    c.macs = c.adds = stage1 + stage2;
    // A power-of-two coefficient is an exponent add, not a multiply.
    c.mults = stage1 + (settings_.coefficients == kdconv_coefficient_format::pow2 ? 0 : stage2);
    c.bytes_read = c.param_bytes + std::uint64_t(geometry_.in.size()) * sizeof(T);
    return c;
  }

  /// Bytes of the file's tensors: basis codes (plus one Q-format byte per group) or floats;
  /// the packed ceil(log2(C*M))-bit column indices and the packed codes (or floats) of the
  /// nonzeros; 4-byte row offsets; the distinct k-means values; the bias.
  std::uint64_t stored_bytes() const {
    const auto bits_up = [](std::uint64_t bits) { return (bits + 7) / 8; };
    const std::uint64_t basis_values = std::uint64_t(basis_.size());
    std::uint64_t bytes = settings_.basis_bits > 0
                              ? bits_up(basis_values * std::uint64_t(settings_.basis_bits)) + std::uint64_t(groups())
                              : basis_values * sizeof(T);
    const auto columns = std::uint64_t(geometry_.in.c * settings_.bases);
    const std::uint64_t index_bits = std::max<std::uint64_t>(1, std::bit_width(columns - 1));
    const std::uint64_t code_bits = settings_.coefficients == kdconv_coefficient_format::float32
                                        ? 8 * sizeof(T)
                                        : std::uint64_t(settings_.coefficient_bits);
    bytes += bits_up(std::uint64_t(nonzeros()) * index_bits) + bits_up(std::uint64_t(nonzeros()) * code_bits);
    bytes += std::uint64_t(row_start_.size()) * 4;
    if (settings_.coefficients == kdconv_coefficient_format::kmeans) bytes += codebook_keys().size() * sizeof(T);
    return bytes + std::uint64_t(bias_.size()) * sizeof(T);
  }

  /// Bytes of the stage-1 response buffer that `order` keeps per thread.
  std::uint64_t peak_intermediate_bytes(kdconv_dataflow order) const {
    const index_t rows = order == kdconv_dataflow::materialised ? geometry_.out_h() : band_rows();
    return std::uint64_t(response_stride(rows) * geometry_.in.c * settings_.bases) * sizeof(T);
  }

  /// Output rows per band of the basis-first order: settings().band_rows, or else the band
  /// of at most ~combine_tile*2 positions that wastes the least of the 16-position steps
  /// of the sparse stage's tiles.
  index_t band_rows() const {
    const index_t ho = geometry_.out_h(), wo = geometry_.out_w();
    if (settings_.band_rows > 0) return std::min(settings_.band_rows, ho);
    index_t best = 1;
    double best_waste = 1e300;
    for (index_t r = 1; r <= ho && (r == 1 || r * wo <= 2 * combine_tile); ++r) {
      const double waste = double(round_up(r * wo, row_tile)) / double(r * wo);
      if (waste < best_waste - 1e-9) {
        best = r;
        best_waste = waste;
      }
    }
    return best;
  }

  /// The equivalent reference convolution (quantized values, (C*k*k) x N weights).
  conv2d<T> to_reference() const { return conv2d<T>(geometry_, dense_weight(), bias_); }

  static constexpr const char* kind = "kdconv_conv2d";
  void save(tensor_sink& out, const std::string& prefix) const {
    namespace sd = slimnn::detail;
    const kdconv_settings& s = settings_;
    sd::put_conv_settings(out, prefix, geometry_, out_channels_);
    out.put_setting(prefix + "bases", s.bases);
    out.put_setting(prefix + "shared_basis", int(s.shared_basis));
    out.put_setting(prefix + "density", s.density);
    out.put_setting(prefix + "std_multiple", s.std_multiple);
    out.put_setting(prefix + "group_size", s.group_size);
    out.put_setting(prefix + "basis_bits", s.basis_bits);
    out.put_setting(prefix + "coefficients", kdconv_format_name(s.coefficients));
    out.put_setting(prefix + "coefficient_bits", s.coefficient_bits);
    out.put_setting(prefix + "train_basis", int(s.train_basis));
    out.put_setting(prefix + "band_rows", s.band_rows);
    out.put_vector(prefix + "bias", bias_);
    const auto k = std::uint64_t(geometry_.kernel), M = std::uint64_t(s.bases), G = std::uint64_t(groups());
    const matrix<T>& basis = basis_used();
    const std::span<const T> b(basis.data(), std::size_t(basis.size()));
    if (s.basis_bits == 0) {
      out.put_array(prefix + "basis", {G, M, k, k}, b);
    } else {
      std::vector<uniform_quantizer> q;
      std::vector<std::int8_t> fraction;
      for (std::size_t g = 0; g < G; ++g) {  // the grid each group was rounded to
        const auto group = b.subspan(g * b.size() / G, b.size() / G);
        q.push_back(uniform_quantizer::fixed_point(std::vector<double>(group.begin(), group.end()), s.basis_bits));
        fraction.push_back(std::int8_t(-std::ilogb(q.back().scale())));
      }
      out.put_array(prefix + "basis_fraction_bits", {G}, fraction);
      sd::put_fixed_point(out, prefix + "basis_codes", b, std::span<const uniform_quantizer>(q));
    }
    out.put_array(prefix + "row_start", {row_start_.size()}, row_start_);
    sd::packed_bits columns(column_.size(), column_bits(geometry_.in.c * s.bases));
    for (std::size_t e = 0; e < column_.size(); ++e) columns.set(e, std::uint32_t(column_[e]));
    sd::put_packed(out, prefix + "columns", columns);
    const vector<T>& c = coef_used();
    if (s.coefficients == kdconv_coefficient_format::float32) {
      out.put_vector(prefix + "coefficients", c);
      return;
    }
    sd::packed_bits codes(std::size_t(c.size()), s.coefficient_bits);
    if (s.coefficients == kdconv_coefficient_format::pow2) {
      int top = -126;
      for (index_t e = 0; e < c.size(); ++e) top = std::max(top, std::ilogb(c[e]));  // exact powers of two
      const auto q = pow2_quantizer::with_bits(s.coefficient_bits - 1, std::max(top, pow2_top(s.coefficient_bits)));
      for (index_t e = 0; e < c.size(); ++e) codes.set(std::size_t(e), q.encode(double(c[e])));
      out.put_setting(prefix + "coefficient_max_exponent", q.max_exponent());
    } else {
      const auto distinct = codebook_keys();
      for (index_t e = 0; e < c.size(); ++e)
        codes.set(std::size_t(e), std::uint32_t(std::lower_bound(distinct.begin(), distinct.end(),
                                                                 std::bit_cast<bits_t>(c[e])) -
                                                distinct.begin()));
      std::vector<T> codebook;
      for (bits_t d : distinct) codebook.push_back(std::bit_cast<T>(d));
      out.put_array(prefix + "coefficient_codebook", {codebook.size()}, codebook);
    }
    sd::put_packed(out, prefix + "coefficient_codes", codes);
  }

  static kdconv_conv2d load(const tensor_source& in, const std::string& prefix) {
    namespace sd = slimnn::detail;
    const auto [input, config] = sd::get_conv_settings(in, prefix);
    const index_t k = config.kernel, N = config.out_channels, C = input.c;
    kdconv_settings s;
    const auto key = [&](const char* name) { return prefix + name; };
    s.bases = in.setting_int(key("bases"), 1, k * k);
    s.shared_basis = in.setting_int(key("shared_basis"), 0, 1) != 0;
    s.density = in.setting_real(key("density"), std::numeric_limits<double>::denorm_min(), 1.0);
    s.std_multiple = in.setting_real(key("std_multiple"), 0.0, std::numeric_limits<double>::max());
    s.group_size = in.setting_int(key("group_size"), 1, N);
    s.basis_bits = int(in.setting_int(key("basis_bits"), 0, 16));
    if (s.basis_bits == 1) in.fail_setting(key("basis_bits"), "1 is neither 0 (float) nor in 2..16");
    const std::string& format = in.setting(key("coefficients"));
    for (auto f : {kdconv_coefficient_format::float32, kdconv_coefficient_format::pow2, kdconv_coefficient_format::kmeans})
      if (format == kdconv_format_name(f)) s.coefficients = f;
    if (format != kdconv_format_name(s.coefficients))
      in.fail_setting(key("coefficients"), sd::cat("'", format, "' is not float, pow2 or kmeans"));
    const bool float_format = s.coefficients == kdconv_coefficient_format::float32;
    constexpr auto int_min = std::numeric_limits<int>::min(), int_max = std::numeric_limits<int>::max();
    s.coefficient_bits = int(in.setting_int(key("coefficient_bits"),  // not used by float coefficients
                                            float_format ? int_min : s.coefficients == kdconv_coefficient_format::pow2 ? 2 : 1,
                                            float_format ? int_max : 8));
    s.train_basis = in.setting_int(key("train_basis"), 0, 1) != 0;
    s.band_rows = in.setting_int(key("band_rows"), 0, std::int64_t(1) << 24);
    // The basis: G groups of M kernels of k x k, in T or fixed point with one Q-format per group.
    const index_t M = s.bases, G = s.shared_basis ? 1 : C;
    const std::uint64_t basis_shape[] = {std::uint64_t(G), std::uint64_t(M), std::uint64_t(k), std::uint64_t(k)};
    const auto basis_values = sd::element_count(in, key(s.basis_bits ? "basis_codes" : "basis"),
                                                {basis_shape[0], basis_shape[1], basis_shape[2], basis_shape[3]});
    std::vector<T> b;
    if (s.basis_bits == 0) {
      b = in.get<T>(key("basis"), basis_shape);
    } else {
      const auto fraction = in.get<std::int8_t>(key("basis_fraction_bits"), {std::uint64_t(G)});
      std::vector<uniform_quantizer> q;
      for (std::size_t g = 0; g < fraction.size(); ++g) {
        if (fraction[g] < -60 || fraction[g] > 60)
          in.fail(key("basis_fraction_bits"),
                  sd::cat("group ", g, ": ", int(fraction[g]), " is out of range [-60, 60]"));
        q.emplace_back(s.basis_bits, std::ldexp(1.0, -fraction[g]));
      }
      b = sd::get_fixed_point<T>(in, key("basis_codes"), basis_values, std::span<const uniform_quantizer>(q));
    }
    // The sparse combination: CSR row offsets, packed column indices, values by format.
    const auto columns = sd::element_count(in, key("columns"), {std::uint64_t(C), std::uint64_t(M)});
    const auto row_start = in.get<std::int32_t>(key("row_start"), {std::uint64_t(N) + 1});
    if (row_start[0] != 0) in.fail(key("row_start"), sd::cat("starts at ", row_start[0], ", not 0"));
    for (std::size_t n = 0; n < std::size_t(N); ++n) {
      if (row_start[n + 1] < row_start[n])
        in.fail(key("row_start"),
                sd::cat("offsets decrease at row ", n, " (", row_start[n], ", then ", row_start[n + 1], ")"));
      if (std::uint64_t(row_start[n + 1] - row_start[n]) > columns)
        in.fail(key("row_start"), sd::cat("row ", n, " has ", row_start[n + 1] - row_start[n],
                                          " nonzeros, more than its ", columns, " columns"));
    }
    const auto nonzeros = std::uint64_t(row_start.back());
    const auto column_codes = sd::get_packed(in, key("columns"), nonzeros, column_bits(index_t(columns)));
    kdconv_sparse_coefficients<T> coefficients{row_start, std::vector<std::int32_t>(nonzeros), vector<T>(index_t(nonzeros))};
    for (index_t n = 0; n < N; ++n)
      for (std::int32_t e = row_start[std::size_t(n)]; e < row_start[std::size_t(n + 1)]; ++e) {
        const auto col = column_codes.get(std::size_t(e));
        if (col >= columns)
          in.fail(key("columns"), sd::cat("row ", n, ": column ", col, " is out of range 0..", columns - 1));
        if (e > row_start[std::size_t(n)] && col <= column_codes.get(std::size_t(e - 1)))
          in.fail(key("columns"), sd::cat("row ", n, ": columns are not in ascending order"));
        coefficients.column[std::size_t(e)] = std::int32_t(col);
      }
    auto& value = coefficients.value;
    if (float_format) {
      value = in.get_vector<T>(key("coefficients"), index_t(nonzeros));
    } else {
      const auto codes = sd::get_packed(in, key("coefficient_codes"), nonzeros, s.coefficient_bits);
      if (s.coefficients == kdconv_coefficient_format::pow2) {
        const std::string top = key("coefficient_max_exponent");
        const auto q = pow2_quantizer::with_bits(s.coefficient_bits - 1,
                                                 int(in.setting_int(top, pow2_top(s.coefficient_bits), 126)));
        for (index_t e = 0; e < value.size(); ++e) value[e] = T(q.decode(std::uint8_t(codes.get(std::size_t(e)))));
      } else {
        const std::string name = key("coefficient_codebook");
        const auto& shape = in.shape_of(name);
        if (shape.size() != 1 || shape[0] > (std::uint64_t(1) << s.coefficient_bits))
          in.fail(name, sd::cat("shape ", shape_string(shape), ", expected [", 1 << s.coefficient_bits, "] or fewer values"));
        const auto codebook = in.get<T>(name);
        for (index_t e = 0; e < value.size(); ++e) {
          const auto code = codes.get(std::size_t(e));
          if (code >= codebook.size())
            in.fail(key("coefficient_codes"), sd::cat("code ", code, " of nonzero ", e, " is not below the ",
                                                      codebook.size(), " codebook values"));
          value[e] = codebook[code];
        }
      }
    }
    matrix<T> basis = Eigen::Map<const matrix<T>>(b.data(), k * k, G * M);
    return kdconv_conv2d({input, k, config.stride, config.padding}, N, s, std::move(basis), std::move(coefficients),
                             in.get_vector<T>(key("bias"), N), true);
  }

  const slimnn::detail::conv_geometry& geometry() const { return geometry_; }
  const kdconv_settings& config() const { return settings_; }
  index_t out_channels() const { return out_channels_; }
  index_t bases() const { return settings_.bases; }
  /// Basis groups: C (one basis per input channel) or 1 (shared).
  index_t groups() const { return settings_.shared_basis ? 1 : geometry_.in.c; }
  index_t nonzeros() const { return index_t(column_.size()); }
  double density() const {
    return double(nonzeros()) / double(out_channels_ * geometry_.in.c * settings_.bases);
  }
  /// The basis used by forward (quantized when basis_bits > 0), (k*k) x (G*M).
  const matrix<T>& basis_used() const { return settings_.basis_bits > 0 ? basis_q_ : basis_; }
  /// The coefficient values used by forward (quantized unless float32), one per nonzero.
  const vector<T>& coef_used() const {
    return settings_.coefficients == kdconv_coefficient_format::float32 ? coef_ : coef_q_;
  }
  /// The latent (trainable) values and the CSR structure.
  const matrix<T>& basis_latent() const { return basis_; }
  const vector<T>& coefficients_latent() const { return coef_; }
  const std::vector<std::int32_t>& row_start() const { return row_start_; }
  const std::vector<std::int32_t>& column() const { return column_; }
  const vector<T>& bias() const { return bias_; }
  vector<T>& bias() { return bias_; }
  /// A[n, c, m] as used by forward (0 where pruned).
  T coefficient(index_t n, index_t c, index_t m) const {
    const auto first = column_.begin() + row_start_[n], last = column_.begin() + row_start_[n + 1];
    const auto it = std::lower_bound(first, last, std::int32_t(c * settings_.bases + m));
    return it != last && *it == c * settings_.bases + m ? coef_used()[it - column_.begin()] : T(0);
  }
  /// (C*k*k) x N dense weights rebuilt from the used basis and coefficients.
  matrix<T> dense_weight() const {
    const index_t kk = basis_.rows(), M = settings_.bases;
    const matrix<T>& basis = basis_used();
    const vector<T>& coef = coef_used();
    matrix<T> w = matrix<T>::Zero(geometry_.patch(), out_channels_);
    for (index_t n = 0; n < out_channels_; ++n)
      for (std::int32_t e = row_start_[n]; e < row_start_[n + 1]; ++e) {
        const index_t c = column_[e] / M, m = column_[e] % M;
        w.col(n).segment(c * kk, kk) += coef[e] * basis.col(group_of(c) * M + m);
      }
    return w;
  }

 private:
  static index_t round_up(index_t v, index_t to) { return (v + to - 1) / to * to; }
  /// Bits of a stored column index c*M + m (as stored_bytes counts them).
  static int column_bits(index_t columns) { return std::max(1, int(std::bit_width(std::uint64_t(columns - 1)))); }
  /// The lowest largest exponent of a `bits`-bit pow2 code range above 2^-126.
  static int pow2_top(int bits) { return (1 << (bits - 1)) - 126; }
  index_t group_of(index_t c) const { return settings_.shared_basis ? 0 : c; }
  /// Length of one padded, phase-split input row: every 16-position tile can read it.
  index_t row_length() const {
    return round_up(geometry_.out_w(), row_tile) + (geometry_.kernel - 1) / geometry_.stride + 1;
  }
  /// Values per response map of a band of `rows` output rows (tile overrun included).
  index_t response_stride(index_t rows) const {
    const index_t wo = geometry_.out_w();
    const index_t values = round_up((rows - 1) * wo + round_up(wo, row_tile), row_tile);
    // An odd number of 16-value steps: maps a power of two apart would share few cache sets.
    return values / row_tile % 2 ? values : values + row_tile;
  }

  using bits_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  /// The distinct stored k-means coefficients, by bit pattern (so -0 and NaN stay apart), ascending.
  std::vector<bits_t> codebook_keys() const {
    const vector<T>& c = coef_used();
    std::vector<bits_t> keys(std::size_t(c.size()));
    for (index_t e = 0; e < c.size(); ++e) keys[std::size_t(e)] = std::bit_cast<bits_t>(c[e]);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  void requantize(bool basis_too) {
    if (settings_.coefficients != kdconv_coefficient_format::float32)
      detail::quantize_coefficients<T>(settings_, std::span<const T>(coef_.data(), std::size_t(coef_.size())),
                                       std::span<T>(coef_q_.data(), std::size_t(coef_q_.size())));
    if (basis_too && settings_.basis_bits > 0) {
      const index_t span_size = basis_.rows() * settings_.bases;
      for (index_t g = 0; g < groups(); ++g)
        detail::quantize_basis_group<T>(settings_.basis_bits,
                                        std::span<const T>(basis_.data() + g * span_size, std::size_t(span_size)),
                                        std::span<T>(basis_q_.data() + g * span_size, std::size_t(span_size)));
    }
    refresh_job_coefficients();
  }

  index_t padded_height() const { return geometry_.in.h + 2 * geometry_.padding; }
  /// The input rows buffer: row_length() * stride values per loaded row; at stride 1 the
  /// whole zero-padded sample, else the loaded rows of a band of `rows` output rows.
  index_t input_rows_rows() const { return row_length() * geometry_.stride; }
  index_t input_rows_cols(index_t rows) const {
    return geometry_.stride == 1 ? geometry_.in.c * padded_height() : (rows - 1) * geometry_.stride + geometry_.kernel;
  }

  /// Stride 1: channel c of sample x zero-padded into its place in `out`, padded_height()
  /// rows of row_length() values (row ih + padding holds input row ih from column `padding` on).
  void pad_channel(const T* x, index_t c, T* out) const {
    const auto& g = geometry_;
    const index_t U = row_length(), hp = padded_height();
    T* channel = out + c * hp * U;
    std::fill(channel, channel + hp * U, T(0));
    for (index_t ih = 0; ih < g.in.h; ++ih)
      std::copy_n(x + (c * g.in.h + ih) * g.in.w, g.in.w, channel + (ih + g.padding) * U + g.padding);
  }

  /// Input row ih of one channel, zero-padded and split into `stride` phases:
  /// out[ph * U + u] = x[ih][u * stride + ph - padding] (0 outside the image).
  void load_row(const T* channel, index_t ih, T* out) const {
    const auto& g = geometry_;
    const index_t U = row_length(), s = g.stride;
    std::fill(out, out + s * U, T(0));
    if (ih < 0 || ih >= g.in.h) return;
    const T* src = channel + ih * g.in.w;
    if (s == 1) {
      std::copy(src, src + std::min(g.in.w, U - g.padding), out + g.padding);
      return;
    }
    for (index_t ph = 0; ph < s; ++ph)
      for (index_t u = 0; u < U; ++u) {
        const index_t iw = u * s + ph - g.padding;
        if (iw >= 0 && iw < g.in.w) out[ph * U + u] = src[iw];
      }
  }

  /// Stage 1's register tiles for a band of `band` output rows, the same for every channel:
  /// the band's 16-position tiles in near-equal groups of at most 4, each tile with its
  /// offsets from the loaded rows (src) and from the first response map (dst).
  struct tile_group {
    int count;
    index_t src[4], dst[4];
  };
  std::vector<tile_group> make_tile_plan(index_t band) const {
    const index_t wo = geometry_.out_w(), s = geometry_.stride;
    const index_t row_step = s * s * row_length();  // between the loaded rows of consecutive output rows
    const index_t per_row = (wo + row_tile - 1) / row_tile, tiles = band * per_row, groups = (tiles + 3) / 4;
    std::vector<tile_group> plan(static_cast<std::size_t>(groups));
    for (index_t group = 0, t = 0; group < groups; ++group) {
      tile_group& tg = plan[std::size_t(group)];
      tg.count = int((tiles - t) / (groups - group));
      for (int v = 0; v < tg.count; ++v, ++t) {
        const index_t r = t / per_row, ow = t % per_row * row_tile;
        tg.src[v] = r * row_step + ow;
        tg.dst[v] = r * wo + ow;
      }
    }
    return plan;
  }
  /// The plans of every band length a forward meets (basis-first bands, the last one,
  /// the materialised whole image), made once with the layer.
  void plan_tiles() {
    tile_plans_.clear();
    const index_t ho = geometry_.out_h(), rows = band_rows();
    for (const index_t band : {rows, ho % rows, ho})
      if (band > 0 && std::none_of(tile_plans_.begin(), tile_plans_.end(), [&](const auto& p) { return p.first == band; }))
        tile_plans_.emplace_back(band, make_tile_plan(band));
  }
  const std::vector<tile_group>& tile_plan(index_t band) const {
    for (const auto& [rows, plan] : tile_plans_)
      if (rows == band) return plan;
    SLIMNN_ASSERT(false && "kdconv: a band length without a tile plan");
    return tile_plans_.front().second;
  }

  /// Stage 1 for output rows [first, last): responses(q, c*M + m) for q = (oh - first)*Wo + ow,
  /// by tile_plan(last - first); the M bases go in near-equal blocks of at most 4.
  /// `padded`: input_rows holds the zero-padded sample (pad_channel, during the first band);
  /// else it has room for the band's loaded rows.
  void basis_stage(const T* x, index_t first, index_t last, bool padded, T* input_rows, T* responses,
                   index_t stride, isa path) const {
    const auto& g = geometry_;
    const index_t C = g.in.c, M = settings_.bases, kk = g.kernel * g.kernel, s = g.stride, wo = g.out_w();
    const index_t U = row_length(), loaded = (last - first - 1) * s + g.kernel, length = (last - first) * wo;
    using tile = Eigen::Array<T, row_tile, 1>;
    const std::vector<tile_group>& plan = tile_plan(last - first);
    const index_t basis_blocks = (M + 3) / 4;  // block b has (M - m) / (basis_blocks - b) bases, m before it
    const T* basis = basis_used().data();
    for (index_t c = 0; c < C; ++c) {
      const T* rows = input_rows;  // loaded row r: input row first * s - padding + r
      if (padded) {
        // The first band pads each channel one ahead of its use: the copies overlap the
        // FMA-bound tiles, and their stores have retired when the tiles read them.
        if (first == 0 && c == 0) pad_channel(x, 0, input_rows);
        if (first == 0 && c + 1 < C) pad_channel(x, c + 1, input_rows);
        rows += (c * padded_height() + first) * U;
#if defined(__GNUC__)
        if (c + 1 < C) {  // the next channel's rows come from L2 while this one computes
          const char* next = reinterpret_cast<const char*>(rows + padded_height() * U);
          for (index_t byte = 0; byte < index_t(loaded * U * sizeof(T)); byte += 64) __builtin_prefetch(next + byte);
        }
#endif
      } else
        for (index_t r = 0; r < loaded; ++r) load_row(x + c * g.in.h * g.in.w, first * s - g.padding + r, input_rows + r * s * U);
      const T* basis_c = basis + group_of(c) * M * kk;
      T* maps = responses + c * M * stride;
      // The sparse stage reads the band's last 16-position step whole (and drops what is past
      // the band's end): zero it first; the tiles then overwrite the valid positions and
      // spill finite values only.
      for (index_t m = 0; m < M; ++m)
        for (index_t q = length / row_tile * row_tile; q < round_up(length, row_tile); q += row_tile)
          Eigen::Map<tile>{maps + m * stride + q}.setZero();
      for (const tile_group& tg : plan) {
        const T* src[4];
        for (int v = 0; v < tg.count; ++v) src[v] = rows + tg.src[v];
        for (index_t block = 0, m = 0, size; block < basis_blocks; m += size, ++block) {
          size = (M - m) / (basis_blocks - block);
          T* dst[4];
          for (int v = 0; v < tg.count; ++v) dst[v] = maps + m * stride + tg.dst[v];
          kernels::kdconv_basis_tiles(path, int(size), tg.count, src, dst, basis_c + m * kk, tap_offset_.data(), kk,
                                      stride);
        }
      }
    }
  }

  /// Stage 2 for output rows [first, last): y[n][q] = b[n] + sum_e A_e * responses(q, column_e),
  /// in 64-position tiles (the last one 16, 32, 48 or 64 wide): the output channels in row
  /// blocks of 2 to 4 by kernels::kdconv_combine_rows, the others by the jobs
  /// (kernels::kdconv_combine_jobs; job_coef: their slots' values).
  void combine_stage(const T* responses, index_t stride, index_t first, index_t last, const T* job_coef,
                     T* y, isa path) const {
    const index_t wo = geometry_.out_w(), length = (last - first) * wo, positions = geometry_.positions();
    // The job channels' sums wait in a per-thread buffer (one combine_tile column per
    // channel), from the bias on, while the jobs add their slots chunk by chunk.
    T* sums = job_channel_.empty() ? nullptr
                                   : slimnn::detail::scratch<kdconv_conv2d, T, 2>(combine_tile, out_channels_).data();
    const T* coef = coef_used().data();
    for (index_t q = 0; q < length; q += combine_tile) {
      const index_t count = std::min(combine_tile, length - q);
      const int width = int(round_up(count, row_tile));
      T* out = y + first * wo + q;
      for (index_t n = 0, k = 0; n < out_channels_; n += row_block_[std::size_t(k++)]) {
        const index_t rows = row_block_[std::size_t(k)];
        if (rows == 1) continue;  // a job channel
        const std::int32_t begin = row_start_[n], nnz = row_start_[n + 1] - begin;  // the same for each row
        kernels::kdconv_combine_rows(path, width, int(rows), responses + q, stride, count, column_.data() + begin,
                                     nnz, coef + begin, bias_.data() + n, out + n * positions, positions);
      }
      if (sums == nullptr) continue;
      for (const index_t n : job_channel_) std::fill_n(sums + n * combine_tile, combine_tile, bias_[n]);
      kernels::kdconv_combine_jobs(path, width, responses + q, stride, jobs_.data(), index_t(jobs_.size()),
                                   job_column_.data(), job_coef, sums, combine_tile);
      for (const index_t n : job_channel_) std::copy_n(sums + n * combine_tile, count, out + n * positions);
    }
  }

  /// Columns per chunk of the jobs: a chunk's combine_tile-wide response tiles take 32 KiB,
  /// so they stay in L1 while every channel's job for the chunk reads them.
  static constexpr index_t chunk_columns = std::max<index_t>(1, 32 * 1024 / (combine_tile * index_t(sizeof(T))));

  /// The jobs of the channels outside row blocks: per chunk of chunk_columns columns, per
  /// channel with nonzeros there, one job over its slots (the nonzeros in column order, and
  /// one padding slot, coefficient 0 on the job's last column, if their number is odd).
  void schedule_jobs() {
    jobs_.clear();
    job_channel_.clear();
    job_column_.clear();
    for (index_t n = 0, k = 0; n < out_channels_; n += row_block_[std::size_t(k++)])
      if (row_block_[std::size_t(k)] == 1) job_channel_.push_back(n);
    std::vector<std::int32_t> next(job_channel_.size());  // each channel's next nonzero
    for (std::size_t i = 0; i < job_channel_.size(); ++i) next[i] = row_start_[job_channel_[i]];
    const index_t columns = geometry_.in.c * settings_.bases;
    for (index_t chunk_end = chunk_columns;; chunk_end += chunk_columns) {
      for (std::size_t i = 0; i < job_channel_.size(); ++i) {
        const std::int32_t begin = next[i], end = row_start_[job_channel_[i] + 1];
        std::int32_t e = begin;
        while (e < end && column_[e] < chunk_end) ++e;
        if (e == begin) continue;
        job_column_.insert(job_column_.end(), column_.begin() + begin, column_.begin() + e);
        if ((e - begin) % 2) job_column_.push_back(column_[e - 1]);
        jobs_.push_back({std::int32_t(job_channel_[i]), begin, e - begin});
        next[i] = e;
      }
      if (chunk_end >= columns) break;
    }
  }

  /// The job slots' coefficients for forward: job_coef_, refreshed by requantize. Float32
  /// coefficients are the latent values themselves; between parameters() and
  /// after_update() a caller may change them in place, so until then they are gathered per
  /// call into a per-thread buffer.
  const T* job_coefficients() const {
    if (settings_.coefficients != kdconv_coefficient_format::float32 || job_coef_current_) return job_coef_.data();
    auto values = slimnn::detail::scratch<kdconv_conv2d, T, 3>(index_t(job_column_.size()), 1);
    gather_job_coefficients(values.data());
    return values.data();
  }
  void gather_job_coefficients(T* out) const {
    const T* coef = coef_used().data();
    for (const kernels::kdconv_job& job : jobs_) {  // a job's nonzeros are consecutive in the CSR arrays
      out = std::copy_n(coef + job.first, job.count, out);
      if (job.count % 2) *out++ = T(0);
    }
  }
  void refresh_job_coefficients() {
    job_coef_.resize(index_t(job_column_.size()));
    gather_job_coefficients(job_coef_.data());
    job_coef_current_ = true;
  }

  /// Runs of up to 4 consecutive output channels whose nonzeros sit in the same columns
  /// (as group sparsity leaves them); 1 where a channel's columns differ from the next.
  std::vector<index_t> row_blocks() const {
    std::vector<index_t> blocks;
    const auto same_columns = [&](index_t a, index_t b) {
      return std::equal(column_.begin() + row_start_[a], column_.begin() + row_start_[a + 1],
                        column_.begin() + row_start_[b], column_.begin() + row_start_[b + 1]);
    };
    for (index_t n = 0; n < out_channels_;) {
      index_t size = 1;
      while (size < 4 && n + size < out_channels_ && same_columns(n, n + size)) ++size;
      blocks.push_back(size);
      n += size;
    }
    return blocks;
  }

  slimnn::detail::conv_geometry geometry_;
  index_t out_channels_;
  kdconv_settings settings_;
  matrix<T> basis_, basis_q_, basis_grad_;
  std::vector<std::int32_t> row_start_, column_;
  vector<T> coef_, coef_q_, coef_grad_;
  vector<T> bias_, bias_grad_;
  std::vector<index_t> tap_offset_;  ///< k*k offsets into an output row's loaded input rows
  std::vector<index_t> row_block_;   ///< output channels per block of the sparse stage
  std::vector<kernels::kdconv_job> jobs_;       ///< chunk by chunk, channels ascending
  std::vector<index_t> job_channel_;    ///< the channels in row blocks of 1
  std::vector<std::int32_t> job_column_;  ///< per slot: the column (jobs in order, each padded to even)
  vector<T> job_coef_;                  ///< per slot: coef_used() value (0 for padding)
  bool job_coef_current_ = true;        ///< false from parameters() until after_update()
  std::vector<std::pair<index_t, std::vector<tile_group>>> tile_plans_;  ///< per band length
  kept_tensor<T> input_;
  matrix<T> cols_, dout_;  // backward's im2col and output-gradient buffers
};

static_assert(TrainableLayer<kdconv_conv2d<float>>);
static_assert(TrainableLayer<kdconv_conv2d<double>>);

}  // namespace slimnn
