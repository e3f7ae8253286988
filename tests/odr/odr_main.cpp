// ODR check: links odr_a.cpp and odr_b.cpp (both include <slimnn/slimnn.hpp>) into one
// program and checks that both translation units compute the right answer.
#include <cmath>
#include <cstdio>

float odr_a_sum();
float odr_b_sum();
double odr_b_sum_double();

int main() {
  const float a = odr_a_sum();
  const float b = odr_b_sum();
  const double c = odr_b_sum_double();
  const bool ok = std::abs(a - 13.5f) < 1e-5f && std::abs(b - 21.0f) < 1e-5f &&
                  std::abs(c - 12.0) < 1e-12;
  std::printf("odr: a = %g (13.5), b = %g (21), b double = %g (12): %s\n", double(a), double(b), c,
              ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
