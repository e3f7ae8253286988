// The compile-time budget's program: what a small user program does. It includes the
// umbrella header, builds a CNN, loads PyTorch weights into it when given a safetensors
// file, and runs it on one image. tests/compile_time/check_compile_time.cmake times its
// compilation at -O2.
//
//   small_program [WEIGHTS.safetensors]
#include <slimnn/slimnn.hpp>

#include <cstdio>

int main(int argc, char** argv) try {
  using namespace slimnn;
  rng_t rng(1);
  conv2d<float> c1(shape{1, 28, 28}, {.out_channels = 8, .kernel = 3, .padding = 1}, rng);
  max_pool2d<float> p1(c1.output_shape(), 2);
  network<float> net;
  net << c1 << relu<float>(c1.output_shape()) << p1 << flatten<float>(p1.output_shape())
      << dense<float>(p1.output_shape().size(), 10, rng);
  if (argc > 1) pytorch::load_parameters(net, safetensors_file(argv[1]));
  matrix<float> x = matrix<float>::Constant(784, 1, 0.5f), y;
  net.forward(x, y);
  index_t best = 0;
  y.col(0).maxCoeff(&best);
  std::printf("class %td\n%s", best, net.summary().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
