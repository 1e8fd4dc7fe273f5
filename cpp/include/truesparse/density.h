// Per-layer densities: Erdős–Rényi from ε (SET) and ER/ERK from an overall density with
// capping and re-solving (RigL), exactly as in docs/sparse-layers.md#density-allocation; nnz = round(d · n_in
// · n_out).
#pragma once

#include <cmath>
#include <vector>

#include "truesparse/common.h"

namespace truesparse {

// Layer l maps sizes[l] -> sizes[l+1].
inline void check_sizes(const std::vector<index_t>& sizes, const char* op) {
  TS_REQUIRE(sizes.size() >= 2, "[", op, "] an MLP needs at least 2 sizes (input and output), got ",
             sizes.size());
  for (std::size_t l = 0; l < sizes.size(); ++l)
    TS_REQUIRE(sizes[l] >= 1, "[", op, "] sizes[", l, "] is ", sizes[l], ", every size must be >= 1");
}

// d_l = min(1, ε (n_in + n_out) / (n_in n_out)).
inline std::vector<double> epsilon_densities(const std::vector<index_t>& sizes, double epsilon) {
  check_sizes(sizes, "epsilon_densities");
  TS_REQUIRE(epsilon > 0 && std::isfinite(epsilon), "[epsilon_densities] epsilon must be positive, got ",
             epsilon);
  std::vector<double> d;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const double n_in = sizes[l], n_out = sizes[l + 1];
    d.push_back(std::min(1.0, epsilon * (n_in + n_out) / (n_in * n_out)));
  }
  return d;
}

// ER / ERK allocation of an overall density D: r_l = ((n_in + n_out)/(n_in n_out))^power,
// ε = D ΣN_l − (dense weights) over Σ r_l N_l of the rest; layers with ε r_l > 1 become
// dense and ε is solved again until none exceeds 1.
inline std::vector<double> er_densities(const std::vector<index_t>& sizes, double density,
                                        double power = 1.0) {
  check_sizes(sizes, "er_densities");
  TS_REQUIRE(density > 0 && density <= 1, "[er_densities] density must be in (0, 1], got ", density);
  const std::size_t L = sizes.size() - 1;
  std::vector<double> N(L), r(L), d(L, 0.0);
  std::vector<bool> dense(L, false);
  double total = 0;
  for (std::size_t l = 0; l < L; ++l) {
    const double n_in = sizes[l], n_out = sizes[l + 1];
    N[l] = n_in * n_out;
    r[l] = std::pow((n_in + n_out) / (n_in * n_out), power);
    total += N[l];
  }
  for (;;) {
    double budget = density * total, denom = 0;
    for (std::size_t l = 0; l < L; ++l) {
      if (dense[l])
        budget -= N[l];
      else
        denom += r[l] * N[l];
    }
    if (denom == 0) break;  // every layer dense
    const double eps = budget / denom;
    bool changed = false;
    for (std::size_t l = 0; l < L; ++l)
      if (!dense[l] && eps * r[l] > 1) dense[l] = changed = true;
    if (!changed) {
      for (std::size_t l = 0; l < L; ++l) d[l] = dense[l] ? 1.0 : eps * r[l];
      return d;
    }
  }
  return std::vector<double>(L, 1.0);
}

// Stored weights of a layer of density d: round(d n_in n_out), at least 1.
inline size_type nnz_for_density(double d, index_t n_in, index_t n_out) {
  const double n = static_cast<double>(n_in) * n_out;
  return std::max<size_type>(1, static_cast<size_type>(std::llround(d * n)));
}

}  // namespace truesparse
