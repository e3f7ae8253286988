// A program that uses only CREW, the core component and the io component: it links
// slimnn::core and slimnn::io (not slimnn::slimnn), so FFTW and zlib are not linked; the
// consumer tests check that with ldd. It compresses a dense layer with CREW, saves and
// reloads the network, and checks the reloaded network against the CREW layer and the
// CREW layer against the dense one. A network file naming a block-circulant layer must
// fail to load here with a message naming the header and target that would load it.
// Exits 0 when every check passes.
#include <slimnn/crew/crew_dense.hpp>
#include <slimnn/io/network_io.hpp>
#include <slimnn/layers/dense.hpp>
#include <slimnn/layers/relu.hpp>
#include <slimnn/net/network.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

int main(int argc, char** argv) {
  const std::filesystem::path file = argc > 1 ? argv[1] : "crew_consumer.safetensors";
  slimnn::dense<float> dense(16, 8);
  dense.weight().setRandom();
  dense.bias().setRandom();
  slimnn::crew_settings config;
  config.method = slimnn::crew_settings::quantizer::uniform;
  config.bits = 8;
  const auto crew = slimnn::compress(dense, config).layer;

  slimnn::network<float> net;
  net << slimnn::crew_dense<float>(crew) << slimnn::relu<float>(slimnn::shape::flat(8));
  slimnn::save(net, file);
  const auto loaded = slimnn::network<float>::load(file);

  slimnn::matrix<float> x = slimnn::matrix<float>::Random(16, 3);
  slimnn::matrix<float> y_dense, y_crew, y_loaded;
  dense.forward(x, y_dense);
  crew.forward(x, y_crew);
  loaded.forward(x, y_loaded);
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 8; ++i) {
      // 8-bit codes: each weight within half a step (max |w| / 127 / 2 <= 0.004), so
      // each output within 16 * 0.004 * max |x| (<= 1) of the dense one.
      if (std::abs(y_crew(i, j) - y_dense(i, j)) > 0.07f) {
        std::fprintf(stderr, "crew consumer: CREW y(%d, %d) = %g, dense %g\n", i, j, double(y_crew(i, j)),
                     double(y_dense(i, j)));
        return 1;
      }
      const float relu = std::max(y_crew(i, j), 0.0f);
      if (std::abs(y_loaded(i, j) - relu) > 1e-6f) {
        std::fprintf(stderr, "crew consumer: reloaded y(%d, %d) = %g, expected %g\n", i, j,
                     double(y_loaded(i, j)), double(relu));
        return 1;
      }
    }
  slimnn::safetensors_writer circulant;
  circulant.put_setting("slimnn.architecture", R"([{"kind":"block_circulant_dense","settings":{}}])");
  circulant.put_setting("slimnn.scalar", "float");
  const auto circulant_file = file.string() + ".circulant";
  circulant.write(circulant_file);
  const std::string hint =
      "layer 0: unknown layer kind 'block_circulant_dense': register it first with "
      "slimnn::register_layer_kind<slimnn::block_circulant_dense<float>>() from "
      "slimnn/circulant/block_circulant_dense.hpp (link slimnn::circulant) (known: ";
  try {
    (void)slimnn::network<float>::load(circulant_file);
    std::fprintf(stderr, "crew consumer: a block-circulant network loaded without slimnn/circulant\n");
    return 1;
  } catch (const slimnn::format_error& e) {
    if (std::string(e.what()).find(hint) == std::string::npos) {
      std::fprintf(stderr, "crew consumer: unexpected message: %s\n", e.what());
      return 1;
    }
  }
  std::printf("crew consumer: ok (%s)\n", net[0].kind().c_str());
  return 0;
}
