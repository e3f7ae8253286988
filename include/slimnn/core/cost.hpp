// slimnn/core/cost.hpp — what a layer costs: stored bytes and work per sample. The one
// cost model every layer follows, so that schemes compare on the same terms.
//
//   param_bytes  exactly the bytes of the tensors the layer's save() writes to its file:
//                weights, indices, bases, codes, scales and bias, each as the file holds
//                it (bit-packed streams ceil(bits / 8) bytes). Settings in the file's
//                header (shapes, exponents, fraction bits) are not counted, nor are
//                tables the layer rebuilds on load. A conformance test saves every layer
//                and checks this to the byte.
//   macs         multiply-accumulates per sample that the layer's algorithm performs
//                (the usual "MACs" figure): dense/conv2d every weight (padding taps
//                included: the im2col GEMM runs them); SmartDeal its basis products and
//                every slot of its sparse stage; kdconv both stages; CREW the products of
//                each input with its unique nonzero weights plus one scale per output;
//                block-circulant the frequency-domain complex products, counted as real
//                multiply-adds. FFT work is not a MAC: it goes into mults and adds.
//   mults, adds  scalar multiplies and adds per sample, FFTs included (estimated as
//                k/2 log2 k multiplies and 3k/2 log2 k adds per real transform of k);
//                a multiply by a power-of-two code counts as a shift, neither
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
