// slimnn/crew/crew_dense.hpp — CREW: a quantized dense layer that reuses the products of
// each input with its few unique weights.
//
// From integer codes w(j, i) ~ s_j * code(j, i) (weight_quantization.hpp): for each input
// i, U_i = the sorted unique codes of column i, u_i = |U_i|, and every weight becomes an
// index idx(j, i) into U_i. Forward, per sample:
//   P_i[u] = x_i * V_i[u]                 (sum_i u_i multiplies; V_i = the shared values)
//   y_j    = s_j * sum_i P_i[idx(j, i)] + b_j   (gathers and adds only)
// Inputs with x_i == 0 are skipped. V_i starts as U_i (in code units) and is what
// fine-tuning changes; the int8 path uses the codes, kept equal to round(V_i) (clamped
// to the layer's grid) by after_update().
//
// Int8 path: forward_int8(xq, acc) with int8 activations gives
// acc_j = sum_i xq_i * code(j, i) in int32, bit-exact with the dense integer GEMV of the
// code matrix; forward_int8(x, scale, y) quantizes x / scale first (values outside the
// int8 range raise config_error) and returns y_j = scale * s_j * acc_j + b_j.
// With activations() == crew_activations::int8 (settings "a8"), forward() itself runs
// the int8 path: each sample b quantized as q_b = round(x_b / scale_b) with its own
// scale_b = max_i |x_ib| / 127 (1 for an all-zero sample), and
// y_jb = scale_b * s_j * sum_i q_ib * code(j, i) + b_j. Training stays in float.
//
// Stored (cost().param_bytes: the bytes of the file's tensors, below): the index stream
// of the chosen layout (crew_index_layout; lanes: ceil(outputs / (32 * 8 / w)) * inputs *
// 32 bytes with w in {1, 2, 4} bits, kernels/crew_lanes.hpp; packed: ceil(bits / 8) bytes
// per input of ceil(log2 u_i), or one width per layer, bits per weight), the shared values
// (sizeof(T) each), one unique count per input (1 byte), the row scales and the bias
// (sizeof(T) each). The int8 codes and table offsets are rebuilt from these on load and
// not counted. cost().mults = the table entries with a nonzero code (a zero code's
// product is 0) plus one scale per output; adds = outputs * inputs gathers-adds;
// macs = mults.
// Kernels (kernels/crew.hpp), chosen at run time by active_isa(): lanes layout (all u_i
// <= 16) with AVX-512 (vpermps for float, vpermb + vpdpbusd for int8), AVX2 (vpshufb on
// byte planes for float, vpshufb byte tables for int8) or portable loops; packed layouts portable. In memory the lanes layout keeps the
// interleave of the path active when the layer was built or loaded (4 inputs per word for
// AVX-512, else 1); results, cost() and files are the same on every path.
// Batches: forward() runs the products and gathers per sample below decoded_min_batch (4)
// samples. From 4 on, where each weight would be gathered 4 or more times, it decodes the
// weights once instead: the inputs nonzero in some sample, in tiles of 256 outputs x 256
// inputs (256 KiB of floats, in L2 on every x86-64 CPU of the last decade), each expanded
// to V_i[idx(j, i)] by crew_decode (vpermps on both SIMD paths) and multiplied by Eigen's
// GEMM: the decode costs one lookup per weight, about a tenth of the GEMM at batch 64,
// and the indices read are an eighth of the float weights. forward_int8 from batch 4, on
// the SIMD paths, decodes the codes of 32 outputs at a time once for the whole batch,
// while it multiplies the previous 32 outputs' codes by the samples' activations
// (kernels::crew_gemm_int8, exact): on AVX-512 with vpermb (16 outputs x 4 inputs) and
// vpdpbusd, 8 samples at a time; on AVX2 with vpshufb and vpmaddubsw + vpmaddwd (and
// vpsignb first for a sample with a negative activation), a sample at a time. The
// portable path runs per sample.
// Inside a parallel_scope (core/parallel.hpp), a layer of at least 2^19 weights cuts
// each sample's outputs (or the decoded tiles) over the threads; forward_int8's batched
// path cuts the outputs in units of 32, and its per-sample path cuts a batch of 16 or
// more into blocks of samples.
// Training: forward_train expands W = s_j * V_i[idx] and uses dense products; backward gives
// dL/dV_i[u] = sum over the weights (j, i) with idx(j, i) = u of s_j * dL/dW(j, i) (the
// Deep-Compression centroid update), dL/db, and dx = W^T dy.
// File (core/tensor_io.hpp): "<prefix>unique_counts" [inputs] U8 (u_i), "<prefix>values"
// [sum u_i] in T (V_i in order; the codes are round(V_i), as after_update), "<prefix>index"
// U8, the index stream of the layout (lanes: [blocks, inputs, 32], group 1; packed:
// input by input, each to_bytes() of detail/bitpack.hpp), "<prefix>row_scale" and
// "<prefix>bias" [outputs]; settings inputs, outputs, max_code, layout (lanes, per_input,
// per_layer), index_bits (lanes: 1, 2 or 4; per_layer: up to 8; per_input has
// ceil(log2 u_i) bits per input) and activations (float or int8; float when absent).
// load checks every count, value and index (below u_i; lanes padding 0).
// Thread safety: forward/forward_int8 are const and reentrant (grow-only per-thread buffers);
// training members are single-threaded.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "slimnn/core/activation_store.hpp"
#include "slimnn/core/layer.hpp"
#include "slimnn/core/parallel.hpp"
#include "slimnn/core/conversion.hpp"
#include "slimnn/crew/settings.hpp"
#include "slimnn/crew/weight_quantization.hpp"
#include "slimnn/detail/bitpack.hpp"
#include "slimnn/detail/packed_io.hpp"
#include "slimnn/detail/scratch.hpp"
#include "slimnn/kernels/crew.hpp"
#include "slimnn/layers/dense.hpp"

namespace slimnn {

/// Which kernel runs: the active path's (active_isa()), or the portable one (for checks).
enum class crew_kernel { best, portable };

using int8_matrix = Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic>;
using int32_matrix = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic>;

template <class T>
class crew_dense {
 public:
  using scalar_type = T;

  /// The layer of codes `q` with `bias` (outputs values).
  crew_dense(const quantized_weights& q, vector<T> bias, crew_index_layout layout = crew_index_layout::automatic)
      : inputs_(q.inputs()), outputs_(q.outputs()), max_code_(q.max_code), bias_(std::move(bias)) {
    detail::require<config_error>(inputs_ > 0 && outputs_ > 0, "crew_dense: sizes must be positive, got ", inputs_,
                                  " inputs and ", outputs_, " outputs");
    detail::require<shape_error>(bias_.size() == outputs_, "crew_dense: bias has ", bias_.size(),
                                 " values, the codes have ", outputs_, " rows");
    detail::require<shape_error>(index_t(q.row_scale.size()) == outputs_, "crew_dense: ", q.row_scale.size(),
                                 " row scales for ", outputs_, " rows");
    detail::require<config_error>(max_code_ >= 1 && max_code_ <= 127, "crew_dense: max_code must be in 1..127, got ",
                                  max_code_);
    row_scale_.resize(outputs_);
    for (index_t j = 0; j < outputs_; ++j) row_scale_[j] = T(q.row_scale[std::size_t(j)]);
    build(q.codes, layout);
    values_grad_.assign(values_.size(), T(0));
    bias_grad_ = vector<T>::Zero(outputs_);
  }

  shape input_shape() const { return shape::flat(inputs_); }
  shape output_shape() const { return shape::flat(outputs_); }
  std::string name() const { return std::string("crew_dense<") + scalar_name<T>() + ">"; }
  std::string settings() const {
    return detail::cat(inputs_, "->", outputs_, ", u<=", max_unique_, ", ", layout_name(),
                       activations_ == crew_activations::int8 ? ", int8 activations" : "");
  }

  /// What forward() multiplies the codes by (crew/settings.hpp).
  crew_activations activations() const { return activations_; }
  void set_activations(crew_activations a) { activations_ = a; }

  // --- inference ---------------------------------------------------------------------

  void forward(const_matrix_ref<T> x, matrix<T>& y, crew_kernel kernel = crew_kernel::best) const {
    detail::forward_resized(*this, x, y, kernel);
  }

  void forward(const_matrix_ref<T> x, matrix_view<T> y, crew_kernel kernel = crew_kernel::best) const {
    detail::check_input_rows(*this, x.rows());
    detail::check_output(*this, y, x.cols());
    if (activations_ == crew_activations::int8) return forward_int8_per_sample(x, y, kernel);
    const isa path = kernel == crew_kernel::best ? active_isa() : isa::portable;
    if (x.cols() >= decoded_min_batch) return forward_decoded(x, y, path);
    for (index_t b = 0; b < x.cols(); ++b)
      split_outputs([&](index_t first_unit, index_t last_unit) {
        T* table = buffer<T, 0>(values_.size() + 16);
        T* acc = buffer<T, 1>(std::size_t(outputs_));
        std::int32_t* active = buffer<std::int32_t, 0>(std::size_t(inputs_));
        const T* xb = x.col(b).data();
        index_t count = 0;
        for (index_t i = 0; i < inputs_; ++i) {
          if (xb[i] == T(0)) continue;
          active[count++] = std::int32_t(i);
          const T* v = values_.data() + offsets_[std::size_t(i)];
          T* t = table + offsets_[std::size_t(i)];
          for (std::uint32_t u = 0, n = unique_[std::size_t(i)]; u < n; ++u) t[u] = xb[i] * v[u];
        }
        const auto [first, last] = unit_outputs(first_unit, last_unit);
        std::fill(acc + first, acc + last, T(0));
        gather(path, table, active, count, buffer<std::uint8_t, 2>(kernels::crew_gather_workspace_bytes(lanes_)), acc,
               first_unit, last_unit);
        for (index_t j = first; j < last; ++j) y(j, b) = row_scale_[j] * acc[j] + bias_[j];
      });
  }

  /// The smallest batch forward() runs as decoded tiles and GEMMs.
  static constexpr index_t decoded_min_batch = 4;

  /// Per thread: below decoded_min_batch, the product table, the accumulators, the list
  /// of nonzero inputs and (AVX2) their tables' byte planes; from it, the padded values,
  /// the list of inputs, their rows of x and one decoded tile.
  std::uint64_t workspace_bytes(index_t batch) const {
    const std::uint64_t inputs = std::uint64_t(inputs_) * sizeof(std::int32_t);
    if (activations_ == crew_activations::int8) {  // the int8 activations, scales and sums, then the int8 path's
      const std::uint64_t own = std::uint64_t(inputs_ * batch) + std::uint64_t(batch) * sizeof(T) +
                                std::uint64_t(outputs_ * batch) * sizeof(std::int32_t);
      if (batch >= decoded_min_batch && layout_ == crew_index_layout::lanes)
        return own + std::uint64_t(lanes_.groups_of_4() * 4 * batch) + std::uint64_t(batch) * sizeof(std::int32_t) +
               kernels::crew_code_table_bytes(lanes_) + kernels::crew_gemm_int8_workspace_bytes(lanes_, batch);
      return own + inputs + kernels::crew_int8_workspace_bytes(lanes_, values_.size());
    }
    if (batch < decoded_min_batch)
      return (values_.size() + 16 + std::uint64_t(outputs_)) * sizeof(T) + inputs +
             kernels::crew_gather_workspace_bytes(lanes_);
    return (values_.size() + 16 + std::uint64_t(tile_rows() * tile_inputs) + std::uint64_t(inputs_ * batch)) *
               sizeof(T) + inputs;
  }

  /// acc = codes x xq exactly (int32), xq: inputs x batch int8 activations.
  void forward_int8(const Eigen::Ref<const int8_matrix>& xq, int32_matrix& acc,
                    crew_kernel kernel = crew_kernel::best) const {
    detail::check_input_rows(*this, xq.rows());
    require_int8_range();
    acc.resize(outputs_, xq.cols());
    accumulate_int8(xq, acc.data(), kernel);
  }

  /// y = scale * s_j * (codes x round(x / scale)) + b through the int8 path; every
  /// round(x / scale) must lie in -127..127 (else config_error).
  void forward_int8(const_matrix_ref<T> x, T activation_scale, matrix<T>& y,
                    crew_kernel kernel = crew_kernel::best) const {
    auto xq = detail::scratch<crew_dense, std::int8_t>(x.rows(), x.cols());
    quantize_into(x, activation_scale, xq);
    require_int8_range();
    std::int32_t* acc = buffer<std::int32_t, 2>(std::size_t(outputs_ * x.cols()));
    accumulate_int8(xq, acc, kernel);
    y.resize(outputs_, x.cols());
    dequantize(acc, x.cols(), [&](index_t) { return activation_scale; }, y);
  }

  /// round(x / scale) as int8; raises config_error when a value falls outside -127..127.
  int8_matrix quantize_activations(const_matrix_ref<T> x, T activation_scale) const {
    int8_matrix q(x.rows(), x.cols());
    quantize_into(x, activation_scale, q);
    return q;
  }

  slimnn::cost cost() const {
    slimnn::cost c;
    c.param_bytes = index_bytes() + values_.size() * sizeof(T) + std::uint64_t(inputs_) +
                    2 * std::uint64_t(outputs_) * sizeof(T);
    c.mults = multiplies() + std::uint64_t(outputs_);
    c.adds = std::uint64_t(outputs_) * std::uint64_t(inputs_);
    c.macs = c.mults;
    c.bytes_read = c.param_bytes + std::uint64_t(inputs_) * sizeof(T);
    return c;
  }

  // --- training ----------------------------------------------------------------------

  void forward_train(const_matrix_ref<T> x, matrix<T>& y) {
    detail::check_input_rows(*this, x.rows());
    if (train_index_.size() == 0) {
      train_index_.resize(outputs_, inputs_);
      for (index_t i = 0; i < inputs_; ++i)
        for (index_t j = 0; j < outputs_; ++j) train_index_(j, i) = std::uint16_t(index(j, i));
    }
    expanded_.resize(outputs_, inputs_);
    for (index_t i = 0; i < inputs_; ++i) {
      const T* v = values_.data() + offsets_[std::size_t(i)];
      for (index_t j = 0; j < outputs_; ++j) expanded_(j, i) = row_scale_[j] * v[train_index_(j, i)];
    }
    y.resize(outputs_, x.cols());
    y.noalias() = expanded_ * x;
    y.colwise() += bias_;
    input_.keep(x);
  }
  /// How forward_train keeps the input for backward (core/activation_store.hpp).
  void set_activation_store(const activation_store& store) { input_.set_store(store); }
  kept_memory kept() const { return input_.memory(); }
  /// The kept input (its mode and, lossy, the bound in force).
  const kept_tensor<T>& kept_input() const { return input_; }

  void backward(const_matrix_ref<T> dy, matrix<T>& dx) {
    detail::check_grad_rows(*this, dy.rows(), dy.cols(), input_.cols());
    weight_grad_.resize(outputs_, inputs_);
    weight_grad_.noalias() = dy * input_.get().transpose();
    if (input_.calibrating()) input_.adapt(inputs_, dy.norm(), weight_grad_.norm());
    for (index_t i = 0; i < inputs_; ++i) {
      T* g = values_grad_.data() + offsets_[std::size_t(i)];
      for (index_t j = 0; j < outputs_; ++j) g[train_index_(j, i)] += row_scale_[j] * weight_grad_(j, i);
    }
    bias_grad_ += dy.rowwise().sum();
    dx.resize(inputs_, dy.cols());
    dx.noalias() = expanded_.transpose() * dy;
  }

  /// "values" (the shared values V, in code units; the learning rate is rescaled by
  /// 1 / mean s_j so steps are in weight units) and "bias".
  std::vector<parameter<T>> parameters() {
    const T lr = T(1) / std::max(row_scale_.mean(), std::numeric_limits<T>::min());
    return {{"values", values_.data(), values_grad_.data(), index_t(values_.size()), lr, false},
            {"bias", bias_.data(), bias_grad_.data(), bias_.size(), T(1), false}};
  }

  /// Keeps the codes (int8 path) equal to the fine-tuned values rounded to the grid.
  void after_update() {
    for (std::size_t k = 0; k < values_.size(); ++k)
      codes_[k] = std::int8_t(std::clamp<double>(std::nearbyint(double(values_[k])), -max_code_, max_code_));
  }

  // --- file ---------------------------------------------------------------------------

  static constexpr const char* kind = "crew_dense";
  void save(tensor_sink& out, const std::string& prefix) const {
    out.put_setting(prefix + "inputs", inputs_);
    out.put_setting(prefix + "outputs", outputs_);
    out.put_setting(prefix + "max_code", max_code_);
    out.put_setting(prefix + "layout", layout_key(layout_));
    out.put_setting(prefix + "activations", activations_ == crew_activations::int8 ? "int8" : "float");
    if (layout_ != crew_index_layout::per_input) out.put_setting(prefix + "index_bits", index_width(0));
    const std::vector<std::uint8_t> counts(unique_.begin(), unique_.end());  // u_i <= 255 (int8 codes)
    out.put_array(prefix + "unique_counts", {std::uint64_t(inputs_)}, counts);
    out.put_array(prefix + "values", {values_.size()}, values_);
    if (layout_ == crew_index_layout::lanes) {
      const kernels::crew_lanes file = lanes_.regrouped(1);  // one input per 32-byte row
      out.put_array(prefix + "index", {std::uint64_t(file.blocks()), std::uint64_t(inputs_), 32}, file.bytes);
    } else {
      std::vector<std::uint8_t> bytes;
      for (const auto& p : packed_) {
        const auto b = p.to_bytes();
        bytes.insert(bytes.end(), b.begin(), b.end());
      }
      out.put_array(prefix + "index", {bytes.size()}, bytes);
    }
    out.put_vector(prefix + "row_scale", row_scale_);
    out.put_vector(prefix + "bias", bias_);
  }

  static crew_dense load(const tensor_source& in, const std::string& prefix) {
    constexpr std::int64_t limit = std::int64_t(1) << 40;
    crew_dense l;
    l.inputs_ = in.setting_int(prefix + "inputs", 1, limit);
    l.outputs_ = in.setting_int(prefix + "outputs", 1, limit);
    l.max_code_ = int(in.setting_int(prefix + "max_code", 1, 127));
    const std::string& layout = in.setting(prefix + "layout");
    for (auto c : {crew_index_layout::lanes, crew_index_layout::per_input, crew_index_layout::per_layer})
      if (layout == layout_key(c)) l.layout_ = c;
    if (layout != layout_key(l.layout_))
      in.fail_setting(prefix + "layout", detail::cat("'", layout, "' is not lanes, per_input or per_layer"));
    if (const std::string* a = in.find_setting(prefix + "activations")) {
      if (*a != "float" && *a != "int8")
        in.fail_setting(prefix + "activations", detail::cat("'", *a, "' is not float or int8"));
      l.activations_ = *a == "int8" ? crew_activations::int8 : crew_activations::as_is;
    }
    const bool lanes = l.layout_ == crew_index_layout::lanes;
    // u_i: at most one index per output, per code of the grid, and 16 for lanes.
    const std::string counts = prefix + "unique_counts", values = prefix + "values", index = prefix + "index";
    const auto u = in.get<std::uint8_t>(counts, {std::uint64_t(l.inputs_)});
    const index_t most = std::min<index_t>({l.outputs_, 2 * index_t(l.max_code_) + 1, lanes ? 16 : 255});
    l.offsets_.assign(u.size() + 1, 0);
    l.unique_.assign(u.begin(), u.end());
    for (std::size_t i = 0; i < u.size(); ++i) {
      if (u[i] < 1 || u[i] > most)
        in.fail(counts, detail::cat("input ", i, " has ", int(u[i]), " unique codes, expected 1..", most));
      l.offsets_[i + 1] = l.offsets_[i] + u[i];
      l.max_unique_ = std::max<index_t>(l.max_unique_, u[i]);
    }
    l.values_ = in.get<T>(values, {std::uint64_t(l.offsets_.back())});
    for (std::size_t k = 0; k < l.values_.size(); ++k)
      if (!std::isfinite(double(l.values_[k]))) in.fail(values, detail::cat("value ", k, " is not finite"));
    l.codes_.resize(l.values_.size() + 16, 0);
    l.after_update();
    // The index stream, each index checked against its input's u_i.
    const auto check = [&](index_t j, index_t i, std::uint32_t idx) {
      if (idx >= l.unique_[std::size_t(i)])
        in.fail(index, detail::cat("index ", idx, " of output ", j, ", input ", i, " is not below u_i = ",
                                   l.unique_[std::size_t(i)]));
    };
    const int needed = detail::bits_for(std::uint64_t(l.max_unique_));
    if (lanes) {
      const auto w = int(in.setting_int(prefix + "index_bits", 1, 4));
      if (w == 3 || w < needed)
        in.fail_setting(prefix + "index_bits", detail::cat(w, " is not a lanes width (1, 2 or 4) of at least ", needed,
                                                           " bits"));
      const index_t block = 32 * (8 / w), blocks = (l.outputs_ + block - 1) / block;
      const auto bytes = in.get<std::uint8_t>(index, {std::uint64_t(blocks), std::uint64_t(l.inputs_), 32});
      l.lanes_ = kernels::crew_lanes(l.inputs_, l.outputs_, w, 1);
      l.lanes_.bytes = bytes;
      for (index_t i = 0; i < l.inputs_; ++i)
        for (index_t j = 0; j < blocks * block; ++j) {
          const std::uint32_t idx = l.lanes_.get(j, i);
          if (j < l.outputs_) check(j, i, idx);
          else if (idx != 0)
            in.fail(index, detail::cat("padding output ", j, " of input ", i, " has index ", idx, ", not 0"));
        }
      l.lanes_ = l.lanes_.regrouped(kernels::crew_lanes_group(active_isa()));
    } else {
      const int layer_width = l.layout_ == crew_index_layout::per_layer
                                  ? int(in.setting_int(prefix + "index_bits", needed, 8)) : 0;
      detail::element_count(in, index, {std::uint64_t(l.inputs_), std::uint64_t(l.outputs_)});
      std::vector<int> width(u.size());
      std::size_t total = 0;
      for (std::size_t i = 0; i < u.size(); ++i) {
        width[i] = layer_width ? layer_width : detail::bits_for(u[i]);
        total += detail::packed_bits::byte_count(std::size_t(l.outputs_), width[i]);
      }
      const auto bytes = in.get<std::uint8_t>(index, {std::uint64_t(total)});
      const std::uint8_t* at = bytes.data();
      for (index_t i = 0; i < l.inputs_; ++i) {
        const std::size_t n = detail::packed_bits::byte_count(std::size_t(l.outputs_), width[std::size_t(i)]);
        auto p = detail::packed_bits::from_bytes(std::size_t(l.outputs_), width[std::size_t(i)], {at, n});
        if (!p) in.fail(index, detail::cat("input ", i, ": padding bits after the last index are not zero"));
        for (index_t j = 0; j < l.outputs_; ++j) check(j, i, p->get(std::size_t(j)));
        l.packed_.push_back(std::move(*p));
        at += n;
      }
    }
    l.row_scale_ = in.get_vector<T>(prefix + "row_scale", l.outputs_);
    l.bias_ = in.get_vector<T>(prefix + "bias", l.outputs_);
    l.values_grad_.assign(l.values_.size(), T(0));
    l.bias_grad_ = vector<T>::Zero(l.outputs_);
    return l;
  }

  // --- inspection --------------------------------------------------------------------

  index_t inputs() const { return inputs_; }
  index_t outputs() const { return outputs_; }
  crew_index_layout layout() const { return layout_; }
  /// u_i, the number of unique codes of input i.
  index_t unique_count(index_t i) const { return unique_[std::size_t(i)]; }
  index_t max_unique() const { return max_unique_; }
  /// U_i (sorted ascending until fine-tuning moves the values).
  std::span<const std::int8_t> unique_codes(index_t i) const {
    return {codes_.data() + offsets_[std::size_t(i)], unique_[std::size_t(i)]};
  }
  /// V_i, the shared values in code units.
  std::span<const T> unique_values(index_t i) const {
    return {values_.data() + offsets_[std::size_t(i)], unique_[std::size_t(i)]};
  }
  /// Bits stored per index of input i.
  int index_width(index_t i) const {
    return layout_ == crew_index_layout::lanes ? lanes_.width : packed_[std::size_t(i)].width();
  }
  /// idx(j, i), read back from the stored layout.
  std::uint32_t index(index_t j, index_t i) const {
    return layout_ == crew_index_layout::lanes ? lanes_.get(j, i) : packed_[std::size_t(i)].get(std::size_t(j));
  }
  std::int8_t code(index_t j, index_t i) const { return codes_[offsets_[std::size_t(i)] + index(j, i)]; }
  /// The code matrix (outputs x inputs) the int8 path multiplies by.
  int8_matrix codes() const {
    int8_matrix c(outputs_, inputs_);
    for (index_t i = 0; i < inputs_; ++i)
      for (index_t j = 0; j < outputs_; ++j) c(j, i) = code(j, i);
    return c;
  }
  /// The equivalent dense layer: the weights of the float path rounded to T, the same bias.
  dense<T> to_reference() const { return dense<T>(dequantized().template cast<T>(), bias_); }
  /// The weights of the float path, s_j * V_i[idx(j, i)], in double.
  matrix<double> dequantized() const {
    matrix<double> w(outputs_, inputs_);
    for (index_t i = 0; i < inputs_; ++i)
      for (index_t j = 0; j < outputs_; ++j)
        w(j, i) = double(row_scale_[j]) * double(values_[offsets_[std::size_t(i)] + index(j, i)]);
    return w;
  }
  const vector<T>& row_scale() const { return row_scale_; }
  const vector<T>& bias() const { return bias_; }
  /// Bytes of the stored indices.
  std::uint64_t index_bytes() const {
    if (layout_ == crew_index_layout::lanes) return lanes_.file_bytes();
    std::uint64_t n = 0;
    for (const auto& p : packed_) n += p.file_bytes();
    return n;
  }
  /// Table entries with a nonzero code: the multiplies per sample.
  std::uint64_t multiplies() const {
    std::uint64_t n = 0;
    for (std::size_t k = 0; k < values_.size(); ++k) n += codes_[k] != 0;
    return n;
  }
  /// sum_i u_i.
  std::uint64_t table_entries() const { return values_.size(); }

 private:
  /// acc (outputs x xq.cols(), column-major) = codes x xq, exactly.
  void accumulate_int8(const Eigen::Ref<const int8_matrix>& xq, std::int32_t* acc, crew_kernel kernel) const {
    const isa path = kernel == crew_kernel::best ? active_isa() : isa::portable;
    if (xq.cols() >= decoded_min_batch && layout_ == crew_index_layout::lanes && kernels::crew_has_int8_gemm(path, lanes_))
      return accumulate_int8_batched(xq, acc, path);
    // One sample's outputs [first_unit, last_unit) (in split_outputs units).
    const auto sample = [&](index_t b, index_t first_unit, index_t last_unit) {
      std::int32_t* active = buffer<std::int32_t, 0>(std::size_t(inputs_));
      void* workspace = buffer<std::int32_t, 1>(
          (kernels::crew_int8_workspace_bytes(lanes_, values_.size()) + sizeof(std::int32_t) - 1) / sizeof(std::int32_t));
      const std::int8_t* xb = xq.col(b).data();
      index_t count = 0;
      for (index_t i = 0; i < inputs_; ++i)
        if (xb[i] != 0) active[count++] = std::int32_t(i);
      std::int32_t* out = acc + b * outputs_;
      const auto [first, last] = unit_outputs(first_unit, last_unit);
      std::fill(out + first, out + last, 0);
      if (layout_ == crew_index_layout::lanes)
        return kernels::crew_gather_int8(path, lanes_, xb, offsets_.data(), unique_.data(), codes_.data(), active,
                                         count, workspace, out, first_unit, last_unit);
      auto* table = static_cast<std::int32_t*>(workspace);
      kernels::crew_int8_table(xb, offsets_.data(), unique_.data(), codes_.data(), active, count, table);
      gather(path, table, active, count, nullptr, out, first_unit, last_unit);  // an int32 table: no planes
    };
    // Inside a parallel_scope a batch is cut into blocks of samples, a small batch's
    // outputs into ranges (core/parallel.hpp); results are exact either way.
    constexpr index_t min_samples = 8;  // per thread
    if (xq.cols() >= 2 * min_samples)
      detail::split_range(xq.cols(), 1, min_samples, [&](index_t first, index_t last) {
        for (index_t b = first; b < last; ++b) sample(b, 0, output_units());
      });
    else
      for (index_t b = 0; b < xq.cols(); ++b)
        split_outputs([&](index_t first_unit, index_t last_unit) { sample(b, first_unit, last_unit); });
  }

  // The batched forward: the inputs that are nonzero in some sample, their rows of x
  // gathered, and per tile of tile_rows() outputs x tile_inputs inputs, the weights
  // V_i[idx(j, i)] decoded (kernels/crew.hpp) and multiplied by Eigen's GEMM; then
  // y_j = s_j * acc_j + b_j.
  static constexpr index_t tile_inputs = 256;
  index_t tile_rows() const { return std::max<index_t>(unit_size(), 256 / unit_size() * unit_size()); }

  void forward_decoded(const_matrix_ref<T> x, matrix_view<T> y, isa path) const {
    const index_t batch = x.cols();
    std::int32_t* active = buffer<std::int32_t, 0>(std::size_t(inputs_));
    index_t count = 0;
    for (index_t i = 0; i < inputs_; ++i)
      if ((x.row(i).array() != T(0)).any()) active[count++] = std::int32_t(i);
    auto xa = detail::scratch<crew_dense, T, 3>(count, batch);
    for (index_t b = 0; b < batch; ++b) {  // by columns: a row at a time strides over every sample
      const T* from = x.col(b).data();
      T* to = xa.col(b).data();
      for (index_t k = 0; k < count; ++k) to[k] = from[active[k]];
    }
    T* values = buffer<T, 0>(values_.size() + 16);
    std::copy(values_.begin(), values_.end(), values);
    std::fill(values + values_.size(), values + values_.size() + 16, T(0));
    const index_t units_per_tile = tile_rows() / unit_size();
    split_outputs([&](index_t first_unit, index_t last_unit) {
      T* tile = buffer<T, 1>(std::size_t(tile_rows() * tile_inputs));
      for (index_t u0 = first_unit; u0 < last_unit; u0 += units_per_tile) {
        const index_t u1 = std::min(last_unit, u0 + units_per_tile);
        const auto [first, last] = unit_outputs(u0, u1);
        auto acc = y.middleRows(first, last - first);
        if (count == 0) acc.setZero();
        for (index_t k0 = 0; k0 < count; k0 += tile_inputs) {
          const index_t n = std::min(tile_inputs, count - k0);
          if (layout_ == crew_index_layout::lanes)
            kernels::crew_decode(path, lanes_, offsets_.data(), values, active + k0, n, u0, u1, tile, tile_rows());
          else
            kernels::crew_decode_packed(packed_, offsets_.data(), values, active + k0, n, first, last, tile, tile_rows());
          const Eigen::Map<const matrix<T>, 0, Eigen::OuterStride<>> w(tile, last - first, n,
                                                                        Eigen::OuterStride<>(tile_rows()));
          if (k0 == 0) acc.noalias() = w * xa.middleRows(k0, n);
          else acc.noalias() += w * xa.middleRows(k0, n);
        }
        for (index_t b = 0; b < batch; ++b)
          for (index_t j = first; j < last; ++j) y(j, b) = row_scale_[j] * y(j, b) + bias_[j];
      }
    }, units_per_tile);  // the same tiles, so the same sums, on any number of threads
  }

  /// The batched int8 path (kernels::crew_gemm_int8): the samples padded to whole groups
  /// of 4 inputs, their sums (read by the AVX-512 kernel), and the code tables; inside a
  /// parallel_scope the outputs are cut into ranges of 32-output units, one per thread.
  void accumulate_int8_batched(const Eigen::Ref<const int8_matrix>& xq, std::int32_t* acc, isa path) const {
    const index_t stride = lanes_.groups_of_4() * 4, batch = xq.cols();
    auto* x = buffer<std::int8_t, 0>(std::size_t(stride * batch));
    auto* sums = buffer<std::int32_t, 3>(std::size_t(batch));
    for (index_t b = 0; b < batch; ++b) {
      const std::int8_t* column = xq.col(b).data();
      std::copy_n(column, inputs_, x + b * stride);
      std::fill(x + b * stride + inputs_, x + (b + 1) * stride, std::int8_t(0));
      std::int32_t sum = 0;
      for (index_t i = 0; i < inputs_; ++i) sum += column[i];
      sums[b] = sum;
    }
    auto* tables = buffer<std::uint8_t, 0>(kernels::crew_code_table_bytes(lanes_));
    kernels::crew_code_tables(path, lanes_, offsets_.data(), unique_.data(), codes_.data(), tables);
    // Threads take ranges of outputs (each decodes only its own codes), at least 4 units
    // (128 outputs) each.
    const index_t units = (outputs_ + kernels::crew_gemm_int8_unit - 1) / kernels::crew_gemm_int8_unit;
    detail::split_range(units, 1, 4, [&](index_t first, index_t last) {
      auto* workspace = buffer<std::uint8_t, 1>(kernels::crew_gemm_int8_workspace_bytes(lanes_, batch));  // this thread's
      kernels::crew_gemm_int8(path, lanes_, tables, x, stride, sums, batch, acc, outputs_, first, last, workspace);
    });
  }

  /// forward() with int8 activations: sample b quantized with scale_b = max |x_b| / 127,
  /// the codes multiplied exactly (accumulate_int8), y_jb = scale_b * s_j * acc_jb + b_j.
  void forward_int8_per_sample(const_matrix_ref<T> x, matrix_view<T> y, crew_kernel kernel) const {
    const index_t batch = x.cols();
    require_int8_range();
    auto xq = detail::scratch<crew_dense, std::int8_t>(inputs_, batch);
    T* scale = buffer<T, 2>(std::size_t(batch));
    for (index_t b = 0; b < batch; ++b) {
      const T* xb = x.col(b).data();
      T largest = 0;
      for (index_t i = 0; i < inputs_; ++i) {
        if (!std::isfinite(xb[i]))  // (the message is built only on failure)
          throw config_error(detail::cat(describe(*this), ": activation ", xb[i], " (input ", i, ", sample ", b,
                                         ") is not finite; int8 activations need finite inputs"));
        largest = std::max(largest, std::abs(xb[i]));
      }
      scale[b] = largest > T(0) ? largest / T(127) : T(1);
      const T inverse = T(1) / scale[b];
      std::int8_t* q = xq.col(b).data();
      for (index_t i = 0; i < inputs_; ++i)
        q[i] = std::int8_t(std::clamp<T>(std::nearbyint(xb[i] * inverse), -127, 127));
    }
    std::int32_t* acc = buffer<std::int32_t, 2>(std::size_t(outputs_ * batch));
    accumulate_int8(xq, acc, kernel);
    dequantize(acc, batch, [&](index_t b) { return scale[b]; }, y);
  }

  /// The int8 paths' epilogue: y_jb = scale(b) * s_j * acc_jb + b_j (acc: outputs x batch,
  /// column-major), with sample b's activation scale.
  template <class SampleScale, class Y>
  void dequantize(const std::int32_t* acc, index_t batch, SampleScale scale, Y& y) const {
    for (index_t b = 0; b < batch; ++b) {
      const T sample_scale = scale(b);
      for (index_t j = 0; j < outputs_; ++j)
        y(j, b) = sample_scale * row_scale_[j] * T(acc[b * outputs_ + j]) + bias_[j];
    }
  }

  /// q (x's shape) = round(x / scale) as int8; config_error outside -127..127.
  template <class Q>
  void quantize_into(const_matrix_ref<T> x, T activation_scale, Q& q) const {
    detail::check_input_rows(*this, x.rows());
    // (Messages are built only on failure: the int8 forward allocates nothing.)
    if (!(activation_scale > T(0) && std::isfinite(double(activation_scale))))
      throw config_error(detail::cat(describe(*this), ": activation scale must be positive and finite, got ",
                                     activation_scale));
    for (index_t b = 0; b < x.cols(); ++b)
      for (index_t i = 0; i < x.rows(); ++i) {
        const double r = std::nearbyint(double(x(i, b)) / double(activation_scale));
        if (!(std::abs(r) <= 127))
          throw config_error(detail::cat(describe(*this), ": activation ", x(i, b), " (input ", i, ", sample ", b,
                                         ") is outside the int8 range of scale ", activation_scale, " (|x| <= ",
                                         127 * double(activation_scale), ")"));
        q(i, b) = std::int8_t(r);
      }
  }

  /// A per-thread buffer of at least n values that only grows (layers of different sizes
  /// share it without reallocating once warmed up).
  template <class U, int Slot>
  static U* buffer(std::size_t n) {
    return detail::scratch_array<crew_dense, U, Slot>(n);
  }

  void build(const int8_matrix& codes, crew_index_layout layout) {
    detail::require<shape_error>(codes.rows() == outputs_ && codes.cols() == inputs_, "crew_dense: codes are ",
                                 codes.rows(), " x ", codes.cols());
    offsets_.assign(std::size_t(inputs_) + 1, 0);
    unique_.assign(std::size_t(inputs_), 0);
    std::vector<std::array<std::uint8_t, 256>> slot(static_cast<std::size_t>(inputs_));  // code + 128 -> index
    std::vector<std::int8_t> table;
    for (index_t i = 0; i < inputs_; ++i) {
      std::array<bool, 256> seen{};
      for (index_t j = 0; j < outputs_; ++j) {
        const int c = codes(j, i);
        detail::require<config_error>(std::abs(c) <= max_code_, "crew_dense: code ", c, " at (", j, ", ", i,
                                      ") is outside the grid |code| <= ", max_code_);
        seen[std::size_t(c + 128)] = true;
      }
      std::uint32_t u = 0;
      for (int c = 0; c < 256; ++c)
        if (seen[std::size_t(c)]) {
          slot[std::size_t(i)][std::size_t(c)] = std::uint8_t(u++);
          table.push_back(std::int8_t(c - 128));
        }
      unique_[std::size_t(i)] = u;
      offsets_[std::size_t(i) + 1] = offsets_[std::size_t(i)] + u;
      max_unique_ = std::max<index_t>(max_unique_, u);
    }
    codes_ = table;
    codes_.resize(table.size() + 16, 0);  // 16-byte loads past any offset stay inside
    values_.assign(table.begin(), table.end());
    if (layout == crew_index_layout::automatic)
      layout = max_unique_ <= 16 ? crew_index_layout::lanes : crew_index_layout::per_input;
    detail::require<config_error>(layout != crew_index_layout::lanes || max_unique_ <= 16,
                                  "crew_dense: the lanes layout needs at most 16 unique codes per input, the largest u_i is ",
                                  max_unique_);
    layout_ = layout;
    auto idx = [&](index_t j, index_t i) { return slot[std::size_t(i)][std::size_t(codes(j, i) + 128)]; };
    if (layout == crew_index_layout::lanes) {
      lanes_ = kernels::crew_lanes(inputs_, outputs_, kernels::crew_lanes_width(max_unique_),
                                   kernels::crew_lanes_group(active_isa()));
      for (index_t i = 0; i < inputs_; ++i)
        for (index_t j = 0; j < outputs_; ++j) lanes_.set(j, i, idx(j, i));
    } else {
      const int layer_width = detail::bits_for(std::uint64_t(max_unique_));
      packed_.reserve(std::size_t(inputs_));
      for (index_t i = 0; i < inputs_; ++i) {
        const int w = layout == crew_index_layout::per_layer ? layer_width : detail::bits_for(unique_[std::size_t(i)]);
        packed_.emplace_back(std::size_t(outputs_), w);
        for (index_t j = 0; j < outputs_; ++j) packed_.back().set(std::size_t(j), idx(j, i));
      }
    }
  }

  // Output units, what split_outputs cuts a sample's work into: lanes blocks, or 64
  // outputs in the packed layouts.
  index_t unit_size() const { return layout_ == crew_index_layout::lanes ? lanes_.block_outputs() : 64; }
  index_t output_units() const { return (outputs_ + unit_size() - 1) / unit_size(); }
  std::pair<index_t, index_t> unit_outputs(index_t first_unit, index_t last_unit) const {
    return {first_unit * unit_size(), std::min(outputs_, last_unit * unit_size())};
  }
  /// task(first_unit, last_unit) over ranges of output units: one range per thread of a
  /// lent pool (core/parallel.hpp) when the layer has at least 2^19 weights, else one.
  /// Ranges start at multiples of `align` units.
  template <class Task>
  void split_outputs(Task&& task, index_t align = 4) const {
    const index_t min_units = std::max<index_t>(1, ((index_t(1) << 18) + inputs_ * unit_size() - 1) / (inputs_ * unit_size()));
    detail::split_range(output_units(), align, min_units, task);
  }

  /// acc += the gathers of the active inputs, for the outputs of units [first_unit, last_unit);
  /// `workspace`: kernels::crew_gather_workspace_bytes for float tables.
  template <class Acc>
  void gather(isa path, const Acc* table, const std::int32_t* active, index_t count, void* workspace, Acc* acc,
              index_t first_unit, index_t last_unit) const {
    if (layout_ == crew_index_layout::lanes) {
      kernels::crew_gather(path, lanes_, offsets_.data(), table, active, count, workspace, acc, first_unit, last_unit);
    } else {
      const auto [first, last] = unit_outputs(first_unit, last_unit);
      kernels::crew_gather_packed(packed_, offsets_.data(), table, active, count, acc, first, last);
    }
  }

  void require_int8_range() const {
    // |x * code| <= 128 * 127 per term: int32 holds the sum of up to 132104 inputs.
    if (inputs_ > 132104)  // (the message is built only on failure: forward allocates nothing)
      throw config_error(describe(*this) + ": the int8 path accumulates in int32 and supports at most 132104 inputs");
  }

  crew_dense() = default;  // for load

  static const char* layout_key(crew_index_layout layout) {
    switch (layout) {
      case crew_index_layout::lanes: return "lanes";
      case crew_index_layout::per_layer: return "per_layer";
      default: return "per_input";
    }
  }

  std::string layout_name() const {
    switch (layout_) {
      case crew_index_layout::lanes: return detail::cat(lanes_.width, "-bit lanes");
      case crew_index_layout::per_layer: return detail::cat(detail::bits_for(std::uint64_t(max_unique_)), "-bit packed");
      default: return "per-input packed";
    }
  }

  index_t inputs_ = 0, outputs_ = 0, max_unique_ = 0;
  int max_code_ = 127;
  crew_index_layout layout_ = crew_index_layout::lanes;
  crew_activations activations_ = crew_activations::as_is;
  std::vector<std::uint32_t> offsets_, unique_;
  std::vector<std::int8_t> codes_;  // sum u_i codes + 16 bytes of padding
  std::vector<T> values_, values_grad_;
  kernels::crew_lanes lanes_;
  std::vector<detail::packed_bits> packed_;
  vector<T> row_scale_, bias_, bias_grad_;
  // training state
  Eigen::Matrix<std::uint16_t, Eigen::Dynamic, Eigen::Dynamic> train_index_;
  matrix<T> expanded_, weight_grad_;
  kept_tensor<T> input_;
};

static_assert(TrainableLayer<crew_dense<float>>);
static_assert(TrainableLayer<crew_dense<double>>);

/// The CREW layer of `layer`: its weights quantized as `settings` say (k-means values
/// capped at the layer's outputs), its bias kept.
template <class T>
conversion<crew_dense<T>> compress(const dense<T>& layer, const crew_settings& settings) {
  settings.validate();
  const int clusters = int(std::min<index_t>(settings.clusters, layer.weight().rows()));
  const quantized_weights q = settings.method == crew_settings::quantizer::uniform
                                  ? quantize_uniform(layer.weight(), settings.bits, settings.granularity)
                                  : quantize_kmeans(layer.weight(), clusters, settings.scope);
  crew_dense<T> out(q, layer.bias(), settings.layout);
  out.set_activations(settings.activations);
  auto report = make_conversion_report(layer, out);
  return {std::move(out), std::move(report)};
}

}  // namespace slimnn
