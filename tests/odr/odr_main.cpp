// ODR check: links odr_a.cpp and odr_b.cpp (both include <slimnn/slimnn.hpp>) into one
// program and checks that both translation units compute the right answer, and that the
// compressed layers give the same results and bytes in both (built with other -march).
#include <cmath>
#include <cstdio>
#include <vector>

float odr_a_sum();
float odr_b_sum();
double odr_b_sum_double();
std::vector<double> odr_a_compressed();
std::vector<double> odr_b_compressed();

int main() {
  const float a = odr_a_sum();
  const float b = odr_b_sum();
  const double c = odr_b_sum_double();
  const bool ok = std::abs(a - 13.5f) < 1e-5f && std::abs(b - 21.0f) < 1e-5f &&
                  std::abs(c - 12.0) < 1e-12;
  std::printf("odr: a = %g (13.5), b = %g (21), b double = %g (12): %s\n", double(a), double(b), c,
              ok ? "ok" : "FAILED");
  const std::vector<double> ra = odr_a_compressed(), rb = odr_b_compressed();
  const bool same = !ra.empty() && ra == rb;
  std::printf("odr: compressed layers, %zu results and both param_bytes (%g, %g): %s\n", ra.size(),
              ra.empty() ? 0.0 : ra[ra.size() - 2], ra.empty() ? 0.0 : ra.back(), same ? "identical" : "DIFFERENT");
  return ok && same ? 0 : 1;
}
