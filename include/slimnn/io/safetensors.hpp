// slimnn/io/safetensors.hpp — reader and writer of the safetensors format.
//
// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
//   {"<name>": {"dtype": "F32", "shape": [out, in], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<value>", ...}}            (the metadata map is optional)
// then the data buffer: each tensor's row-major little-endian elements at
// [begin, end) relative to the buffer start. The tensors tile the buffer exactly.
//
// safetensors_file maps the file read-only (POSIX mmap; elsewhere, or when mapping
// fails, it reads the file) and checks everything before any tensor is used: a
// truncated file, a header length beyond the file or over 100 MiB, malformed JSON,
// unknown fields or dtypes, offsets out of range, reversed, overlapping or leaving
// holes, and shapes whose element count does not match their byte range all raise
// format_error naming the file, the tensor and the problem. Nothing is allocated from
// a size the header claims; memory is bounded by the file's size. Modifying a mapped
// file while it is open is undefined (as for every mapping).
// safetensors_writer collects tensors and settings (settings go to __metadata__), then
// writes a file (atomically: a temporary next to it, then a rename) or a byte buffer.
// The header is padded with spaces so the buffer starts 8-byte aligned, and tensors are
// ordered by element size (widest first), then name, so each is naturally aligned.
// Complexity: O(file size) to open, O(elements) to read a tensor. Thread safety: a
// safetensors_file is immutable once constructed; a writer is for one thread.
//
// Component: slimnn::io (adds nlohmann-json).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "slimnn/core/error.hpp"
#include "slimnn/core/tensor_io.hpp"

#if __has_include(<sys/mman.h>) && __has_include(<sys/stat.h>) && __has_include(<fcntl.h>) && __has_include(<unistd.h>)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define SLIMNN_SAFETENSORS_MMAP 1
#endif

namespace slimnn {

/// Largest header a safetensors file may declare (as the reference implementation).
inline constexpr std::uint64_t safetensors_max_header_bytes = std::uint64_t(100) << 20;
/// Most dimensions a tensor may have.
inline constexpr std::size_t safetensors_max_rank = 64;

namespace detail {

/// The bytes of a file, mapped read-only when possible, else read; or an owned buffer.
class file_bytes {
 public:
  file_bytes() = default;
  explicit file_bytes(std::vector<std::byte> bytes) : owned_(std::move(bytes)) {}
  explicit file_bytes(const std::filesystem::path& path) {
#ifdef SLIMNN_SAFETENSORS_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, "cannot open file: ", std::strerror(errno));
    struct ::stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, "not a regular file");
    }
    const auto size = std::size_t(st.st_size);
    if (size > 0) {
      void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED) {
        map_ = m;
        map_size_ = size;
      } else {
        owned_.resize(size);  // the file's real size, never a size read from it
        std::size_t got = 0;
        while (got < size) {
          const auto n = ::read(fd, owned_.data() + got, size - got);
          if (n <= 0) break;
          got += std::size_t(n);
        }
        owned_.resize(got);
      }
    }
    ::close(fd);
#else
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      if (!std::filesystem::exists(path, ec)) fail(path, "cannot open file: ", std::strerror(ENOENT));
      fail(path, "not a regular file");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot open file");
    owned_.resize(std::size_t(std::filesystem::file_size(path)));
    in.read(reinterpret_cast<char*>(owned_.data()), std::streamsize(owned_.size()));
    owned_.resize(std::size_t(in.gcount()));
#endif
  }
  file_bytes(file_bytes&& o) noexcept
      : owned_(std::move(o.owned_)), map_(std::exchange(o.map_, nullptr)), map_size_(std::exchange(o.map_size_, 0)) {}
  file_bytes& operator=(file_bytes&& o) noexcept {
    if (this != &o) {
      unmap();
      owned_ = std::move(o.owned_);
      map_ = std::exchange(o.map_, nullptr);
      map_size_ = std::exchange(o.map_size_, 0);
    }
    return *this;
  }
  file_bytes(const file_bytes&) = delete;
  file_bytes& operator=(const file_bytes&) = delete;
  ~file_bytes() { unmap(); }

  std::span<const std::byte> bytes() const {
    if (map_) return {static_cast<const std::byte*>(map_), map_size_};
    return owned_;
  }
  bool mapped() const { return map_ != nullptr; }

 private:
  template <class... Parts>
  [[noreturn]] static void fail(const std::filesystem::path& path, const Parts&... parts) {
    throw format_error(cat(path.string(), ": ", parts...));
  }
  void unmap() {
#ifdef SLIMNN_SAFETENSORS_MMAP
    if (map_) ::munmap(map_, map_size_);
#endif
    map_ = nullptr;
  }

  std::vector<std::byte> owned_;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
};

/// One tensor as the header describes it.
struct safetensors_entry {
  std::string name;
  std::optional<dtype> type;
  std::optional<std::vector<std::uint64_t>> shape;
  std::optional<std::vector<std::uint64_t>> offsets;
};

/// Builds the entries and the metadata straight from JSON events (no document tree),
/// checking the schema as it goes. On the first problem it records it and stops.
class safetensors_header_handler {
 public:
  using json = nlohmann::json;

  std::vector<safetensors_entry> entries;
  std::map<std::string, std::string, std::less<>> metadata;
  std::string problem;         ///< empty while all is well
  std::string problem_tensor;  ///< the tensor the problem is about, if any

  bool null() { return unexpected_value("null"); }
  bool boolean(bool) { return unexpected_value("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (depth_ == 3) return stop(cat("'", field_, "' holds the negative number ", v, ", expected ", expected_array()));
    return unexpected_value("a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (depth_ != 3) return unexpected_value("a number");
    auto& list = field_ == "shape" ? *entries.back().shape : *entries.back().offsets;
    const std::size_t limit = field_ == "shape" ? safetensors_max_rank : 2;
    if (list.size() == limit)
      return stop(field_ == "shape" ? cat("shape has more than ", safetensors_max_rank, " dimensions")
                                    : std::string("data_offsets must be [begin, end]"));
    list.push_back(v);
    return true;
  }
  bool number_float(json::number_float_t, const json::string_t& text) {
    if (depth_ == 3) return stop(cat("'", field_, "' holds ", text, ", expected ", expected_array()));
    return unexpected_value("a number");
  }
  bool binary(json::binary_t&) { return unexpected_value("binary data"); }
  bool string(json::string_t& s) {
    if (depth_ == 2 && in_metadata_) {
      metadata[key_] = s;
      return true;
    }
    if (depth_ == 2 && field_ == "dtype") {
      const auto t = dtype_from_name(s);
      if (!t) return stop(cat("unknown dtype '", s, "'"));
      entries.back().type = *t;
      return true;
    }
    return unexpected_value("a string");
  }
  bool start_object(std::size_t) {
    if (depth_ == 0) return ++depth_, true;
    if (depth_ == 1) {
      if (in_metadata_) {
        if (seen_metadata_) return stop("__metadata__ appears twice");
        seen_metadata_ = true;
      }
      return ++depth_, true;
    }
    return unexpected_value("an object");
  }
  bool key(json::string_t& k) {
    if (depth_ == 1) {
      in_metadata_ = k == "__metadata__";
      if (!in_metadata_) {
        if (!names_.insert(k).second) {
          problem_tensor = k;
          return stop("appears twice in the header");
        }
        entries.push_back({k, {}, {}, {}});
      }
      return true;
    }
    if (in_metadata_) {
      if (metadata.count(k)) return stop(cat("__metadata__ key '", k, "' appears twice"));
      key_ = k;
      return true;
    }
    auto& e = entries.back();
    field_ = k;
    const bool repeated = (k == "dtype" && e.type) || (k == "shape" && e.shape) || (k == "data_offsets" && e.offsets);
    if (repeated) return stop(cat("field '", k, "' appears twice"));
    if (k != "dtype" && k != "shape" && k != "data_offsets")
      return stop(cat("unexpected field '", k, "' (a tensor has dtype, shape and data_offsets)"));
    return true;
  }
  bool end_object() {
    --depth_;
    if (depth_ == 1 && !in_metadata_) {
      const auto& e = entries.back();
      if (!e.type) return stop("has no 'dtype'");
      if (!e.shape) return stop("has no 'shape'");
      if (!e.offsets) return stop("has no 'data_offsets'");
      if (e.offsets->size() != 2) return stop("data_offsets must be [begin, end]");
    }
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ == 2 && !in_metadata_ && (field_ == "shape" || field_ == "data_offsets")) {
      (field_ == "shape" ? entries.back().shape : entries.back().offsets).emplace();
      return ++depth_, true;
    }
    return unexpected_value("an array");
  }
  bool end_array() { return --depth_, true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    std::string what = e.what();
    if (const auto close = what.find("] "); what.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
      what = what.substr(close + 2);
    problem_tensor.clear();
    problem = "header is not valid JSON: " + what;
    return false;
  }

 private:
  std::string expected_array() const {
    return field_ == "shape" ? "non-negative integer extents" : "[begin, end] in bytes";
  }
  bool unexpected_value(const char* what) {
    if (depth_ == 0) return stop(cat("header must be a JSON object, found ", what));
    if (depth_ == 1) {
      if (in_metadata_) return stop(cat("__metadata__ must be an object of strings, found ", what));
      return stop(cat("must be an object with dtype, shape and data_offsets, found ", what));
    }
    if (in_metadata_) return stop(cat("__metadata__ value of '", key_, "' must be a string, found ", what));
    if (field_ == "dtype") return stop(cat("dtype must be a string, found ", what));
    if (depth_ == 2) return stop(cat("'", field_, "' must be an array, found ", what));
    return stop(cat("'", field_, "' holds ", what, ", expected ", expected_array()));
  }
  bool stop(std::string p) {
    // Inside a tensor's entry (or on its value), the message names that tensor.
    if (problem_tensor.empty() && !in_metadata_ && depth_ >= 1 && !entries.empty())
      problem_tensor = entries.back().name;
    problem = std::move(p);
    return false;
  }

  int depth_ = 0;
  bool in_metadata_ = false, seen_metadata_ = false;
  std::string field_, key_;
  std::set<std::string, std::less<>> names_;
};

}  // namespace detail

/// A safetensors file (or buffer), checked on construction; its tensors are views into
/// the mapped bytes.
class safetensors_file : public tensor_source {
 public:
  /// Maps and checks `path`; format_error on any problem.
  explicit safetensors_file(const std::filesystem::path& path) : origin_(path.string()), data_(path) { parse(); }
  /// Checks a file held in memory; `origin` names it in messages.
  explicit safetensors_file(std::vector<std::byte> bytes, std::string origin = "<memory>")
      : origin_(std::move(origin)), data_(std::move(bytes)) {
    parse();
  }

  std::string origin() const override { return origin_; }
  std::vector<std::string> tensor_names() const override { return order_; }
  /// Tensor names in the order of their data.
  const std::vector<std::string>& names() const { return order_; }
  std::size_t size() const { return order_.size(); }
  /// The __metadata__ map.
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
  /// Whether the file is mapped rather than read into memory.
  bool mapped() const { return data_.mapped(); }

 protected:
  const tensor_view* do_find(const std::string& name) const override {
    const auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }
  const std::string* do_find_setting(const std::string& key) const override {
    const auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
  }

 private:
  template <class... Parts>
  [[noreturn]] void fail_header(const Parts&... parts) const {
    throw format_error(detail::cat(origin_, ": ", parts...));
  }

  void parse() {
    const auto file = data_.bytes();
    if (file.size() < 8)
      fail_header("truncated: ", file.size(), " bytes, but a safetensors file starts with an 8-byte header length");
    const auto n = detail::load_le<std::uint64_t>(file.data());
    if (n > safetensors_max_header_bytes)
      fail_header("header length ", n, " exceeds the limit of ", safetensors_max_header_bytes, " bytes");
    if (n > file.size() - 8)
      fail_header("header length ", n, " exceeds the ", file.size() - 8, " bytes after it (truncated file?)");
    const auto* text = reinterpret_cast<const char*>(file.data() + 8);
    detail::safetensors_header_handler handler;
    try {
      nlohmann::json::sax_parse(text, text + n, &handler);
    } catch (const nlohmann::json::exception& e) {  // defensive: the parser reports through the handler
      fail_header("header is not valid JSON: ", e.what());
    }
    if (!handler.problem.empty()) {
      if (handler.problem_tensor.empty()) fail_header(handler.problem);
      fail(handler.problem_tensor, handler.problem);
    }
    const auto buffer = file.subspan(8 + n);
    metadata_ = std::move(handler.metadata);

    struct placed {
      std::uint64_t begin, end;
      const std::string* name;
    };
    std::vector<placed> layout;
    layout.reserve(handler.entries.size());
    for (auto& e : handler.entries) {
      const std::uint64_t begin = (*e.offsets)[0], end = (*e.offsets)[1];
      const std::string range = detail::cat("data_offsets [", begin, ", ", end, "]");
      if (begin > end) fail(e.name, range + " are reversed");
      if (end > buffer.size()) fail(e.name, detail::cat(range, " exceed the ", buffer.size(), "-byte data buffer"));
      std::uint64_t count = 1;
      bool overflow = false;
      for (auto extent : *e.shape) {
        if (extent != 0 && count > std::numeric_limits<std::uint64_t>::max() / extent) overflow = true;
        count *= extent;
      }
      const std::uint64_t size = dtype_size(*e.type);
      if (overflow || count > std::numeric_limits<std::uint64_t>::max() / size)
        fail(e.name, detail::cat("shape ", shape_string(*e.shape), " has too many elements"));
      if (count * size != end - begin)
        fail(e.name, detail::cat("shape ", shape_string(*e.shape), " of ", dtype_name(*e.type), " needs ", count * size,
                                 " bytes, but ", range, " hold ", end - begin));
      auto [it, inserted] = tensors_.emplace(e.name, tensor_view{*e.type, std::move(*e.shape),
                                                                 buffer.subspan(std::size_t(begin), std::size_t(end - begin))});
      layout.push_back({begin, end, &it->first});
    }
    std::sort(layout.begin(), layout.end(), [](const placed& a, const placed& b) {
      return std::tie(a.begin, a.end, *a.name) < std::tie(b.begin, b.end, *b.name);
    });
    std::uint64_t covered = 0;
    const placed* previous = nullptr;
    for (const auto& p : layout) {
      if (p.begin < covered)
        fail(*p.name, detail::cat("data_offsets [", p.begin, ", ", p.end, "] overlap tensor '", *previous->name, "' [",
                                  previous->begin, ", ", previous->end, "]"));
      if (p.begin > covered)
        fail(*p.name, detail::cat("data_offsets [", p.begin, ", ", p.end, "] leave bytes [", covered, ", ", p.begin,
                                  ") of the data buffer unused"));
      covered = p.end;
      previous = &p;
      order_.push_back(*p.name);
    }
    if (covered != buffer.size())
      fail_header("bytes [", covered, ", ", buffer.size(), ") of the data buffer belong to no tensor");
  }

  std::string origin_;
  detail::file_bytes data_;
  std::map<std::string, tensor_view, std::less<>> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
  std::vector<std::string> order_;
};

/// Collects tensors and settings, then writes them as one safetensors file.
class safetensors_writer : public tensor_sink {
 public:
  /// The whole file as bytes.
  std::vector<std::byte> bytes() const {
    std::vector<const entry*> order;
    for (const auto& e : entries_) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const entry* a, const entry* b) {
      const auto sa = dtype_size(a->type), sb = dtype_size(b->type);
      return sa != sb ? sa > sb : a->name < b->name;
    });
    nlohmann::json header = nlohmann::json::object();
    std::uint64_t offset = 0;
    for (const entry* e : order) {
      header[e->name] = {{"dtype", std::string(dtype_name(e->type))},
                         {"shape", e->shape},
                         {"data_offsets", {offset, offset + e->data.size()}}};
      offset += e->data.size();
    }
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception&) {
      throw config_error("safetensors_writer: tensor names and settings must be valid UTF-8");
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    std::vector<std::byte> out(8 + text.size() + offset);
    detail::store_le(out.data(), std::uint64_t(text.size()));
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::byte* p = out.data() + 8 + text.size();
    for (const entry* e : order) {
      if (!e->data.empty()) std::memcpy(p, e->data.data(), e->data.size());
      p += e->data.size();
    }
    return out;
  }

  /// Writes the file: to "<path>.tmp" first, then renamed over `path`, so a reader
  /// never sees half a file. format_error if the file cannot be written.
  void write(const std::filesystem::path& path) const {
    const auto data = bytes();
    auto tmp = path;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      detail::require<format_error>(bool(out), path.string(), ": cannot open for writing");
      out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
      out.close();
      if (!out) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        throw format_error(detail::cat(path.string(), ": write failed"));
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      std::filesystem::remove(tmp, ec);
      throw format_error(detail::cat(path.string(), ": cannot replace the file: ", ec.message()));
    }
  }

  std::size_t size() const { return entries_.size(); }

 protected:
  void do_put(const std::string& name, dtype type, std::vector<std::uint64_t> shape,
              std::span<const std::byte> bytes) override {
    detail::require<config_error>(name != "__metadata__", "safetensors_writer: '__metadata__' is reserved");
    detail::require<config_error>(names_.insert(name).second, "safetensors_writer: tensor '", name,
                                  "' is stored twice");
    entries_.push_back({name, type, std::move(shape), {bytes.begin(), bytes.end()}});
  }
  void do_put_setting(const std::string& key, const std::string& value) override {
    detail::require<config_error>(metadata_.emplace(key, value).second, "safetensors_writer: setting '", key,
                                  "' is stored twice");
  }

 private:
  struct entry {
    std::string name;
    dtype type;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> data;
  };
  std::vector<entry> entries_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace slimnn
