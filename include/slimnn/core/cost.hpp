// slimnn/core/cost.hpp — what a layer costs: stored bytes and work per sample.
//
// Every layer reports a `cost` so that schemes compare on the same terms:
//   param_bytes  bytes of stored parameters, counting indices, bases, codes and scales
//   mults, adds  scalar multiplies and adds per sample (a shift counts as neither)
//   macs         multiply-accumulates per sample (the usual "MACs" figure)
//   bytes_read   bytes read per sample at batch 1 (parameters plus input activations)
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <cstdint>
#include <ostream>

namespace slimnn {

struct cost {
  std::uint64_t param_bytes = 0;
  std::uint64_t mults = 0;
  std::uint64_t adds = 0;
  std::uint64_t macs = 0;
  std::uint64_t bytes_read = 0;

  cost& operator+=(const cost& o) {
    param_bytes += o.param_bytes;
    mults += o.mults;
    adds += o.adds;
    macs += o.macs;
    bytes_read += o.bytes_read;
    return *this;
  }
  friend cost operator+(cost a, const cost& b) { return a += b; }
  friend bool operator==(const cost&, const cost&) = default;
  friend std::ostream& operator<<(std::ostream& out, const cost& c) {
    return out << "{param_bytes " << c.param_bytes << ", mults " << c.mults << ", adds " << c.adds
               << ", macs " << c.macs << ", bytes_read " << c.bytes_read << '}';
  }
};

}  // namespace slimnn
