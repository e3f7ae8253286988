// A program that uses slimnn as a dependency would: include the umbrella header, run a
// dense layer and its block-circulant projection (FFTW), check the answers. Built by the
// consumer tests (find_package and add_subdirectory); exits 0 on the right answers.
#include <slimnn/slimnn.hpp>

#include <cmath>
#include <cstdio>

int main() {
  // W (3 x 4) = all 0.5, b = (1, 2, 3), x = (1, 2, 3, 4)  =>  y = 5 + b = (6, 7, 8).
  slimnn::dense<float> layer(4, 3);
  layer.weight().setConstant(0.5f);
  layer.bias() << 1.0f, 2.0f, 3.0f;

  slimnn::matrix<float> x(4, 1);
  x << 1.0f, 2.0f, 3.0f, 4.0f;
  slimnn::matrix<float> y;
  layer.forward(x, y);

  const float expected[3] = {6.0f, 7.0f, 8.0f};
  if (y.rows() != 3 || y.cols() != 1) {
    std::fprintf(stderr, "consumer: wrong output shape %ld x %ld\n", long(y.rows()), long(y.cols()));
    return 1;
  }
  for (int i = 0; i < 3; ++i) {
    if (std::abs(y(i, 0) - expected[i]) > 1e-6f) {
      std::fprintf(stderr, "consumer: y[%d] = %g, expected %g\n", i, double(y(i, 0)),
                   double(expected[i]));
      return 1;
    }
  }
  // A constant matrix is circulant, so its projection to 4 x 4 blocks is exact.
  slimnn::dense<float> square(4, 4);
  square.weight().setConstant(0.5f);
  square.bias().setZero();
  const auto circulant = slimnn::compress(square, slimnn::block_circulant_settings{4}).layer;
  slimnn::matrix<float> z;
  circulant.forward(x, z);
  for (int i = 0; i < 4; ++i) {
    if (std::abs(z(i, 0) - 5.0f) > 1e-5f) {
      std::fprintf(stderr, "consumer: block-circulant z[%d] = %g, expected 5\n", i, double(z(i, 0)));
      return 1;
    }
  }
  std::printf("consumer: ok\n");
  return 0;
}
