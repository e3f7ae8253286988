// libFuzzer target for the IDX reader (slimnn/data/idx.hpp): the input is the file, plain
// or gzipped. It is written to an in-memory file (memfd) and read by path, as read_idx
// reads a dataset. A slimnn::format_error is an expected rejection; anything else (a
// crash, a sanitizer report, another exception type, a result whose size disagrees with
// its header, a huge allocation) is a bug.
//
//   cmake -S tests/fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ && cmake --build build-fuzz
//   build-fuzz/idx_fuzz -max_total_time=30 -dict=tests/fuzz/idx.dict NEW_DIR tests/fuzz/idx_corpus
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <string>

#include "slimnn/data/idx.hpp"

namespace {

/// One in-memory file for the whole run, rewritten for each input.
int input_file() {
  static const int fd = [] {
    const int f = memfd_create("idx_fuzz_input", 0);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = input_file();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != ssize_t(size)) std::abort();
  try {
    const auto idx = slimnn::read_idx("/proc/self/fd/" + std::to_string(fd));
    const std::uint64_t expected =
        std::accumulate(idx.dims.begin(), idx.dims.end(), std::uint64_t(1), std::multiplies<>());
    if (idx.dims.empty() || idx.dims.size() > 4 || idx.data.size() != expected) std::abort();
  } catch (const slimnn::format_error&) {
  }
  return 0;
}
