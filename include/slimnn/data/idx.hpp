// slimnn/data/idx.hpp — reader for IDX files, the format of MNIST and Fashion-MNIST.
//
// An IDX file is a magic 0x00 0x00 <type> <ndims>, then ndims big-endian uint32
// extents (outermost first), then the elements in row-major order. Only unsigned
// bytes (type 0x08) with 1 to 4 dimensions are supported. A file that starts with the
// gzip magic 0x1f 0x8b is inflated on the fly (zlib), so "*.gz" files read directly.
// Every failure (missing, empty, truncated, corrupt, trailing bytes, over 1 GiB of
// data) throws format_error naming the path. The header is checked before anything is
// allocated and the buffer grows only as data arrives, so a lying header cannot
// exhaust memory.
// Complexity: one pass over the file. Thread safety: read_idx is reentrant.
//
// Component: slimnn::data (adds zlib).
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "slimnn/core/error.hpp"

namespace slimnn {

/// The contents of an IDX file of unsigned bytes.
struct idx_array {
  std::vector<std::uint32_t> dims;  ///< extents, outermost first (e.g. items, rows, cols)
  std::vector<std::uint8_t> data;   ///< product(dims) bytes, row-major
  /// Number of items: the first extent (0 if there are no dimensions).
  std::size_t count() const { return dims.empty() ? 0 : dims.front(); }
};

namespace detail {

/// Largest data size read_idx accepts (1 GiB); bigger headers are taken as corrupt.
inline constexpr std::uint64_t idx_max_bytes = std::uint64_t(1) << 30;

/// A file read through zlib: gzip streams are inflated, other files are read as is.
class gz_reader {
 public:
  explicit gz_reader(const std::filesystem::path& path) : path_(path) {
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) fail("cannot open file", errno ? cat(": ", std::strerror(errno)) : std::string());
    gzbuffer(file_, 1 << 17);
  }
  ~gz_reader() { gzclose(file_); }
  gz_reader(const gz_reader&) = delete;
  gz_reader& operator=(const gz_reader&) = delete;

  /// Reads up to n bytes; returns fewer only at the end of the data.
  std::size_t read(void* dst, std::size_t n) {
    std::size_t total = 0;
    while (total < n) {
      const auto chunk = unsigned(std::min<std::size_t>(n - total, std::size_t(1) << 30));
      const int got = gzread(file_, static_cast<char*>(dst) + total, chunk);
      check();
      if (got <= 0) break;
      total += std::size_t(got);
    }
    return total;
  }

  bool gzipped() const { return gzdirect(file_) == 0; }
  /// True if a gzip stream ended before its end marker (a cut-off .gz file).
  bool cut_off() const {
    int err = Z_OK;
    gzerror(file_, &err);
    return err == Z_BUF_ERROR;
  }
  /// "file has 1000" / "decompressed file has 1000 (gzip stream cut off)".
  std::string has(std::uint64_t bytes) const {
    return cat(gzipped() ? "decompressed file has " : "file has ", bytes,
               cut_off() ? " (gzip stream cut off)" : "");
  }

  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw format_error(cat(path_.string(), ": ", parts...));
  }

 private:
  void check() const {
    int err = Z_OK;
    std::string msg = gzerror(file_, &err);
    if (err == Z_ERRNO) fail("read error: ", std::strerror(errno));
    if (err == Z_OK || err == Z_BUF_ERROR) return;
    // zlib prefixes its messages with the path it was given; drop that.
    const std::string prefix = path_.string() + ": ";
    if (msg.starts_with(prefix)) msg.erase(0, prefix.size());
    fail("corrupt gzip stream: ", msg);
  }

  std::filesystem::path path_;
  gzFile file_ = nullptr;
};

inline std::string hex(unsigned value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, value);
  return buf;
}

}  // namespace detail

/// Reads an IDX file of unsigned bytes (plain or gzipped). Throws format_error.
inline idx_array read_idx(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw format_error(detail::cat(path.string(), ": is a directory, not an IDX file"));
  detail::gz_reader in(path);

  std::uint8_t magic[4];
  if (const std::size_t got = in.read(magic, 4); got < 4) {
    if (got == 0 && !in.cut_off()) in.fail("empty file");
    in.fail("truncated header: need 4 bytes, ", in.has(got));
  }
  const unsigned type = magic[2], ndims = magic[3];
  const unsigned word = unsigned(magic[0]) << 24 | unsigned(magic[1]) << 16 | type << 8 | ndims;
  const bool idx_type = type == 0x08 || type == 0x09 || (type >= 0x0b && type <= 0x0e);
  if (magic[0] != 0 || magic[1] != 0 || !idx_type)
    in.fail("bad magic ", detail::hex(word, 8), " (expected 0x0000080N)");
  if (type != 0x08)
    in.fail("unsupported element type ", detail::hex(type, 2), " (only unsigned byte 0x08)");
  if (ndims < 1 || ndims > 4)
    in.fail("bad magic ", detail::hex(word, 8), ": ", ndims, " dimensions (expected 1 to 4)");

  std::uint8_t raw[16];
  const std::size_t header = 4 + 4 * std::size_t(ndims);
  if (const std::size_t got = in.read(raw, 4 * ndims); got < 4 * ndims)
    in.fail("truncated header: need ", header, " bytes, ", in.has(4 + got));

  idx_array out;
  std::string dims_text;
  for (unsigned d = 0; d < ndims; ++d) {
    const std::uint8_t* b = raw + 4 * d;
    out.dims.push_back(std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 |
                       std::uint32_t(b[2]) << 8 | std::uint32_t(b[3]));
    dims_text += (d ? "x" : "") + std::to_string(out.dims.back());
  }

  // Expected size, with overflow checks, before any allocation.
  std::uint64_t bytes = 1;
  if (std::find(out.dims.begin(), out.dims.end(), 0u) != out.dims.end()) bytes = 0;
  for (std::uint32_t d : out.dims) {
    if (bytes == 0) break;
    if (bytes > detail::idx_max_bytes / d)
      in.fail("header claims ", dims_text, " bytes of data, more than the 1 GiB limit");
    bytes *= d;
  }

  // Grow the buffer as data arrives: a short file never causes a large allocation.
  std::size_t have = 0;
  while (have < bytes) {
    const std::size_t want = std::min<std::uint64_t>(bytes, std::max<std::size_t>(1 << 20, 2 * have));
    out.data.resize(want);
    have += in.read(out.data.data() + have, want - have);
    if (have < want) break;
  }
  if (have < bytes) in.fail("truncated: header says ", bytes, " data bytes, ", in.has(have));

  std::uint64_t extra = 0;
  std::uint8_t scratch[4096];
  while (const std::size_t got = in.read(scratch, sizeof scratch)) extra += got;
  if (extra) in.fail(extra, " trailing bytes after the data");
  if (in.cut_off()) in.fail("corrupt gzip stream: unexpected end of file");
  return out;
}

}  // namespace slimnn
