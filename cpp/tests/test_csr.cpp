// Tests of the CSR pattern: validator, transpose permutation, uniform sampling, ER densities.
#include <map>
#include <set>

#include "check.h"
#include "truesparse/csr.h"
#include "truesparse/density.h"

using namespace truesparse;

static csr_pattern small() {  // 3x4: row 0 {1,3}, row 1 {}, row 2 {0,1,2}
  csr_pattern p;
  p.rows = 3;
  p.cols = 4;
  p.indptr = {0, 2, 2, 5};
  p.indices = {1, 3, 0, 1, 2};
  return p;
}

TEST(validator_accepts_valid_and_rejects_each_fault) {
  validate(small(), "test");
  auto p = small();
  p.indptr[0] = 1;
  CHECK_THROWS(validate(p, "test"));
  p = small();
  p.indices[1] = 4;  // out of range
  CHECK_THROWS(validate(p, "test"));
  p = small();
  p.indices = {3, 1, 0, 1, 2};  // unsorted
  CHECK_THROWS(validate(p, "test"));
  p = small();
  p.indices = {1, 1, 0, 1, 2};  // duplicate
  CHECK_THROWS(validate(p, "test"));
  p = small();
  p.indptr = {0, 2, 1, 5};  // decreasing
  CHECK_THROWS(validate(p, "test"));
  p = small();
  p.indptr.pop_back();
  CHECK_THROWS(validate(p, "test"));
}

TEST(transpose_matches_dense_transpose) {
  rng g(7);
  for (int trial = 0; trial < 20; ++trial) {
    const index_t K = 1 + g.below(9), D = 1 + g.below(9);
    const auto p = random_pattern(K, D, g.below(K * D + 1), g);
    csr_pattern t;
    std::vector<index_t> perm;
    transpose(p, t, perm);
    validate(t, "transpose");
    CHECK(t.rows == D && t.cols == K && t.nnz() == p.nnz());
    // entry k of the transpose is (j, i) and perm[k] points at (i, j) in p
    std::vector<index_t> row_of(p.nnz());
    for (index_t i = 0; i < K; ++i)
      for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) row_of[k] = i;
    for (index_t j = 0; j < D; ++j)
      for (index_t k = t.indptr[j]; k < t.indptr[j + 1]; ++k) {
        CHECK(p.indices[perm[k]] == j);
        CHECK(row_of[perm[k]] == t.indices[k]);
      }
  }
}

TEST(sampling_gives_exact_count_of_distinct_positions) {
  rng g(1);
  for (std::int64_t n : {1, 2, 10, 1000, 100000})
    for (double f : {0.0, 0.001, 0.3, 0.5, 0.51, 0.9, 1.0}) {
      const auto k = static_cast<std::int64_t>(f * n);
      const auto s = sample_positions(n, k, g);
      CHECK(static_cast<std::int64_t>(s.size()) == k);
      CHECK(std::is_sorted(s.begin(), s.end()));
      CHECK(std::adjacent_find(s.begin(), s.end()) == s.end());
      CHECK(s.empty() || (s.front() >= 0 && s.back() < n));
    }
  CHECK_THROWS(sample_positions(10, 11, g));
}

TEST(sampling_is_uniform) {
  // Each of n positions should be chosen with probability k/n: chi-square over 20000 draws.
  const std::int64_t n = 50, k = 10, trials = 20000;
  std::vector<double> count(n, 0);
  rng g(3);
  for (int t = 0; t < trials; ++t)
    for (auto pos : sample_positions(n, k, g)) count[pos] += 1;
  const double expected = double(trials) * k / n;
  double chi2 = 0;
  for (double c : count) chi2 += (c - expected) * (c - expected) / expected;
  // 49 degrees of freedom: the 99.9% quantile is about 85.4.
  CHECK(chi2 < 85.4);
  // And the complement path (k > n/2).
  std::vector<double> count2(n, 0);
  for (int t = 0; t < trials; ++t)
    for (auto pos : sample_positions(n, 40, g)) count2[pos] += 1;
  const double e2 = double(trials) * 40 / n;
  double chi2b = 0;
  for (double c : count2) chi2b += (c - e2) * (c - e2) / e2;
  CHECK(chi2b < 85.4);
}

TEST(er_densities_are_exact_and_capped) {
  const std::vector<index_t> sizes{3072, 1024, 512, 10};
  for (double D : {0.001, 0.01, 0.05, 0.1, 0.5, 1.0}) {
    const auto d = er_densities(sizes, D);
    double total = 0, target = 0;
    for (std::size_t l = 0; l < d.size(); ++l) {
      CHECK(d[l] > 0 && d[l] <= 1);
      const double N = double(sizes[l]) * sizes[l + 1];
      total += static_cast<double>(nnz_for_density(d[l], sizes[l], sizes[l + 1]));
      target += D * N;
    }
    CHECK(std::fabs(total - std::round(target)) <= double(d.size()));
  }
  // Published per-layer densities for 0.01 (docs/sparse-layers.md#density-allocation): 0.00778, 0.0175,
  // 0.609.
  const auto d = er_densities(sizes, 0.01);
  CHECK_CLOSE(d[0], 0.00778, 2e-3);
  CHECK_CLOSE(d[1], 0.0175, 2e-3);
  CHECK_CLOSE(d[2], 0.609, 2e-3);
  // At 0.5 the last layers are capped at 1 and the rest re-solved.
  const auto h = er_densities(sizes, 0.5);
  CHECK(h[2] == 1.0);
  CHECK_THROWS(er_densities(sizes, 0.0));
  CHECK_THROWS(er_densities(sizes, 1.5));
  CHECK_THROWS(er_densities({10}, 0.5));
}

TEST_MAIN()
