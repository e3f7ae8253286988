// examples/schemes/mixed.cpp — the CNN compressed with a mixed-scheme plan
// (slimnn/compress/compress.hpp): each layer gets the scheme that suits it.
//
//   conv2d[0]:kdconv:m6            the 1-channel first conv: 6 bases, every coefficient
//   conv2d[1]:kdconv:m4-d30        the 32->64 conv: 4 bases, 30 % of the coefficients
//   dense[0]:smartdeal:s8-seg25    the 3136->128 head (95 % of the dense CNN's bytes):
//                                  an 8 x 8 basis, 25 % of the length-8 segments
// The 128->10 classifier (5 KB) stays dense. The plan's recipe then fine-tunes the whole
// network for two epochs (fine_tune:e2: Adam 1e-3, batch 64, cosine decay).
// Tried for the head: block_circulant k16 (its projection keeps little of a trained
// layer: relative error 0.97, and 89.6 % after the same fine-tuning) and crew u16 for the
// classifier (with 10 outputs its per-input tables take more bytes than the weights).

#include <cstdio>

#include "../scheme_registry.hpp"
#include "slimnn/compress/compress.hpp"

namespace examples {

/// The plan of the CNN's mixed variant.
inline constexpr const char* cnn_mixed_plan =
    "conv2d[0]:kdconv:m6; conv2d[1]:kdconv:m4-d30; dense[0]:smartdeal:s8-seg25; fine_tune:e2";

scheme mixed_scheme() {
  return {"mixed", [](const std::string& kind, const network<float>& baseline, const context& ctx) {
            std::vector<variant> out;
            if (kind != "cnn") return out;
            const auto p = plan::parse(cnn_mixed_plan);
            std::printf("  plan: %s\n", p.str().c_str());
            auto result = compress(baseline, p);
            std::printf("%s", result.summary().c_str());
            ctx.fine_tune(result.net, p.fine_tune, "cnn mixed");
            out.push_back({"m4-d30+s8-seg25", std::move(result.net)});
            return out;
          }};
}

}  // namespace examples
