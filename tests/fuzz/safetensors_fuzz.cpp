// libFuzzer target for the safetensors reader: parses the input as a safetensors file,
// reads every tensor in every element type, then tries to rebuild a network from it.
// Any slimnn::error is an expected rejection; anything else (a crash, a sanitizer report,
// another exception type, a huge allocation) is a bug.
//
//   cmake -S tests/fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ && cmake --build build-fuzz
//   build-fuzz/safetensors_fuzz -max_total_time=60 -dict=tests/fuzz/safetensors.dict NEW_DIR tests/fuzz/corpus
#include <cstddef>
#include <cstdint>
#include <vector>

#include "slimnn/io/network_io.hpp"
#include "slimnn/io/safetensors.hpp"

namespace {

template <class T>
void touch(const slimnn::safetensors_file& file, const std::string& name, double& sink) {
  try {
    for (const T v : file.get<T>(name)) sink += double(v);
  } catch (const slimnn::format_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = std::byte(data[i]);
  try {
    const slimnn::safetensors_file file(std::move(bytes), "fuzz-input");
    double sink = 0;
    for (const auto& name : file.names()) {
      touch<float>(file, name, sink);
      touch<double>(file, name, sink);
      touch<std::int8_t>(file, name, sink);
      touch<std::uint8_t>(file, name, sink);
      touch<std::int32_t>(file, name, sink);
    }
    try {
      const auto net = slimnn::load_network<float>(file);
      // Run small networks once, so what was loaded is also used.
      if (!net.empty() && net.input_shape().size() <= 4096 && net.cost().macs <= 1000000) {
        slimnn::matrix<float> x = slimnn::matrix<float>::Ones(net.input_shape().size(), 1), y;
        net.forward(x, y);
        sink += double(y.sum());
      }
    } catch (const slimnn::error&) {
    }
    volatile double keep = sink;
    (void)keep;
  } catch (const slimnn::error&) {
  }
  return 0;
}
