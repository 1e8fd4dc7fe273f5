// Tests of topology evolution (SET, RigL) against naive references written here: the dropped
// set, the grown set, the remapping of values and optimizer state, the rebuilt products.
#include <map>
#include <set>

#include "check.h"
#include "standard_mlp.h"
#include "truesparse/runtime.h"
#include "truesparse/train.h"

using namespace truesparse;

static std::unique_ptr<sparse_linear<double>> random_layer(index_t K, index_t D, size_type nnz,
                                                           std::uint64_t seed, bool with_state = true) {
  rng g(seed);
  auto Lp = std::make_unique<sparse_linear<double>>(random_pattern(K, D, nnz, g), sparse_backend::mkl, true);
  auto& L = *Lp;
  for (auto& w : L.W) w = g.normal();
  for (auto& b : L.b) b = g.normal();
  if (with_state) {
    L.sW.m.resize(L.W.size());
    L.sW.v.resize(L.W.size());
    for (auto& x : L.sW.m) x = g.normal();
    for (auto& x : L.sW.v) x = g.uniform();
  }
  L.values_changed();
  return Lp;
}

static std::map<std::int64_t, std::array<double, 3>> entries(const sparse_linear<double>& L) {
  std::map<std::int64_t, std::array<double, 3>> e;  // position -> (w, m, v)
  for (index_t i = 0; i < L.pattern.rows; ++i)
    for (index_t k = L.pattern.indptr[i]; k < L.pattern.indptr[i + 1]; ++k)
      e[static_cast<std::int64_t>(i) * L.pattern.cols + L.pattern.indices[k]] = {
          L.W[k], L.sW.m.empty() ? 0.0 : L.sW.m[k], L.sW.v.empty() ? 0.0 : L.sW.v[k]};
  return e;
}

TEST(set_drop_matches_sorted_reference) {
  for (std::uint64_t seed : {1, 2, 3}) {
    auto Lp = random_layer(13, 17, 90, seed);
    auto& L = *Lp;
    L.W[5] = 0.0;  // an exact zero is dropped on top of the ζ fractions (it never survives)
    const auto drop = set_drop(L, 0.3);
    std::vector<std::pair<double, index_t>> pos, neg;
    for (index_t k = 0; k < static_cast<index_t>(L.W.size()); ++k) {
      if (L.W[k] > 0) pos.push_back({L.W[k], k});
      if (L.W[k] < 0) neg.push_back({-L.W[k], k});
    }
    std::sort(pos.begin(), pos.end());
    std::sort(neg.begin(), neg.end());
    std::set<index_t> expected{5};
    for (std::size_t r = 0; r < std::size_t(std::llround(0.3 * pos.size())); ++r)
      expected.insert(pos[r].second);
    for (std::size_t r = 0; r < std::size_t(std::llround(0.3 * neg.size())); ++r)
      expected.insert(neg[r].second);
    CHECK(std::set<index_t>(drop.begin(), drop.end()) == expected);
    CHECK(std::is_sorted(drop.begin(), drop.end()));
    CHECK(std::binary_search(drop.begin(), drop.end(), 5));
  }
}

TEST(set_update_keeps_nnz_survivors_and_state) {
  auto Lp = random_layer(20, 30, 120, 7);
  auto& L = *Lp;
  const auto before = entries(L);
  rng g(11);
  const auto rec = set_update(L, 0.3, regrow_init::layer, g);
  validate(L.pattern, "test");
  CHECK(L.nnz() == 120);
  CHECK(rec.dropped == rec.grown);
  CHECK(L.sW.m.size() == L.W.size() && L.sW.v.size() == L.W.size());
  const auto after = entries(L);
  const std::set<std::int64_t> dropped(rec.dropped_positions.begin(), rec.dropped_positions.end());
  const std::set<std::int64_t> grown(rec.grown_positions.begin(), rec.grown_positions.end());
  for (const auto& [pos, e] : before)
    if (!dropped.count(pos)) {  // survivor: value and state bit for bit
      CHECK(after.count(pos) == 1);
      CHECK(after.at(pos) == e);
    }
  for (auto pos : grown) {
    CHECK(after.count(pos) == 1);
    CHECK(!before.count(pos) || dropped.count(pos));            // grown only where empty after the drop
    CHECK(after.at(pos)[1] == 0.0 && after.at(pos)[2] == 0.0);  // zero optimizer state
  }
}

TEST(set_growth_is_uniform_over_empty_positions) {
  // A 6x8 layer with 12 entries; drop 4, grow 4, many times from the same start: every
  // position empty after the drop must be grown with the same frequency.
  auto L0p = random_layer(6, 8, 12, 5, false);
  auto& L0 = *L0p;
  const auto drop = set_drop(L0, 0.3);
  std::map<std::int64_t, double> count;
  const int trials = 20000;
  for (int t = 0; t < trials; ++t) {
    rng g(derive_seed(99, t));
    for (auto pos : random_grow(L0, drop, static_cast<size_type>(drop.size()), g)) count[pos] += 1;
  }
  const double empty = 48 - (12 - double(drop.size()));
  CHECK(double(count.size()) == empty);  // every empty position reachable, none other
  const double expected = trials * double(drop.size()) / empty;
  double chi2 = 0;
  for (auto& [pos, c] : count) chi2 += (c - expected) * (c - expected) / expected;
  // empty - 1 = 39 or so degrees of freedom; 99.9% quantile below 75 for df <= 44
  CHECK(chi2 < 75.0);
  // A sampler that prefers low positions would fail: compare first and last quarter.
  double low = 0, high = 0;
  std::size_t r = 0;
  for (auto& [pos, c] : count) (r++ < count.size() / 2 ? low : high) += c;
  CHECK(std::fabs(low - high) / (low + high) < 0.05);
}

TEST(dense_regime_growth_lists_empty_positions) {
  auto Lp = random_layer(5, 6, 28, 3, false);
  auto& L = *Lp;  // 28 of 30: fewer than a quarter empty
  rng g(1);
  const auto drop = set_drop(L, 0.3);
  const auto grow = random_grow(L, drop, static_cast<size_type>(drop.size()), g);
  CHECK(grow.size() == drop.size());
  for (auto pos : grow) CHECK(!detail::survives_at(L.pattern, drop, pos / 6, pos % 6));
}

TEST(rigl_grows_top_k_of_dense_gradient) {
  for (std::uint64_t seed : {1, 2, 3, 4}) {
    auto Lp = random_layer(9, 11, 30, seed);
    auto& L = *Lp;
    rng g(seed + 100);
    matrix<double> DZ(9, 5), X(11, 5);
    for (auto& x : DZ.data) x = g.normal();
    for (auto& x : X.data) x = g.normal();
    const size_type k = 7;
    const auto drop = magnitude_drop(L, k);
    // reference drop: the 7 smallest |w|
    std::vector<std::pair<double, index_t>> mag;
    for (index_t e = 0; e < 30; ++e) mag.push_back({std::fabs(L.W[e]), e});
    std::sort(mag.begin(), mag.end());
    std::set<index_t> expected_drop;
    for (int r = 0; r < k; ++r) expected_drop.insert(mag[r].second);
    CHECK(std::set<index_t>(drop.begin(), drop.end()) == expected_drop);
    // reference grow: dense gradient, eligible = not a survivor, top 7 by |g|
    std::vector<std::pair<double, std::int64_t>> cand;
    for (index_t i = 0; i < 9; ++i)
      for (index_t j = 0; j < 11; ++j) {
        if (detail::survives_at(L.pattern, drop, i, j)) continue;
        double gij = 0;
        for (int n = 0; n < 5; ++n) gij += DZ(i, n) * X(j, n);
        cand.push_back({-std::fabs(gij), std::int64_t(i) * 11 + j});
      }
    std::sort(cand.begin(), cand.end());
    std::set<std::int64_t> expected_grow;
    for (int r = 0; r < k; ++r) expected_grow.insert(cand[r].second);
    for (size_type panel : {size_type(11), size_type(22), size_type(1) << 20}) {  // 1, 2, all rows per panel
      const auto grow = gradient_grow(L, drop, k, DZ, X, panel);
      CHECK(std::set<std::int64_t>(grow.begin(), grow.end()) == expected_grow);
    }
    // The full update: reselected positions keep value and state; new ones start at zero.
    const auto before = entries(L);
    const auto rec = rigl_update(L, double(k) / 30.0 + 1e-9, DZ, X);
    validate(L.pattern, "test");
    CHECK(L.nnz() == 30);
    CHECK(rec.dropped + rec.reselected == std::size_t(k));
    const auto after = entries(L);
    for (auto pos : expected_grow) {
      CHECK(after.count(pos) == 1);
      if (before.count(pos))
        CHECK(after.at(pos) == before.at(pos));  // reselected
      else
        CHECK(after.at(pos)[0] == 0.0 && after.at(pos)[1] == 0.0 && after.at(pos)[2] == 0.0);
    }
  }
}

TEST(products_follow_the_new_pattern) {
  auto Lp = random_layer(16, 24, 60, 9);
  auto& L = *Lp;
  rng g(2);
  set_update(L, 0.5, regrow_init::normal, g);
  matrix<double> X(24, 3), Z, DZ(16, 3), DX;
  for (auto& x : X.data) x = g.normal();
  for (auto& x : DZ.data) x = g.normal();
  L.forward(X, Z);
  L.backward(X, DZ, &DX);
  for (index_t i = 0; i < 16; ++i)
    for (int n = 0; n < 3; ++n) {
      double z = L.b[i];
      for (index_t k = L.pattern.indptr[i]; k < L.pattern.indptr[i + 1]; ++k)
        z += L.W[k] * X(L.pattern.indices[k], n);
      CHECK_CLOSE(Z(i, n), z, 1e-12);
    }
  for (index_t j = 0; j < 24; ++j)
    for (int n = 0; n < 3; ++n) {
      double dx = 0;
      for (index_t i = 0; i < 16; ++i)
        for (index_t k = L.pattern.indptr[i]; k < L.pattern.indptr[i + 1]; ++k)
          if (L.pattern.indices[k] == j) dx += L.W[k] * DZ(i, n);
      CHECK_CLOSE(DX(j, n), dx, 1e-12);
    }
  CHECK(L.itop_rate() > 60.0 / (16 * 24));
}

TEST(drop_fraction_schedules) {
  CHECK_CLOSE(drop_fraction(drop_schedule::cosine, 0.3, 0, 100), 0.3, 1e-15);
  CHECK_CLOSE(drop_fraction(drop_schedule::cosine, 0.3, 50, 100), 0.15, 1e-15);
  CHECK_CLOSE(drop_fraction(drop_schedule::cosine, 0.3, 100, 100), 0.0, 1e-15);
  CHECK_CLOSE(drop_fraction(drop_schedule::constant, 0.3, 70, 100), 0.3, 1e-15);
  CHECK_CLOSE(drop_fraction(drop_schedule::exponential, 0.3, 50, 100, 2.0), 0.075, 1e-15);
  CHECK(drop_fraction(drop_schedule::constant, 0.3, 101, 100) == 0.0);
}

TEST(evolution_is_deterministic_across_threads) {
  std::vector<float> X(400 * 10);
  std::vector<std::int32_t> y(400);
  rng g(4);
  for (auto& x : X) x = static_cast<float>(g.normal());
  for (auto& c : y) c = static_cast<std::int32_t>(g.below(3));
  const dataset<float> d{X.data(), 400, 10, y.data(), nullptr, 0};
  for (int algo = 0; algo < 2; ++algo) {
    std::vector<std::vector<std::int32_t>> patterns;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const std::vector<index_t> sizes{10, 40, 3};
      const std::vector<double> densities{0.3, 0.5};
      network_options o = testing::standard_mlp(sizes, densities);
      o.seed = 5;
      network<float> m(o);
      evolution_plan plan;
      if (algo == 0)
        plan.set = set_options{0.3, regrow_init::layer, 0.01, 4};
      else
        plan.rigl = rigl_options{0.3, 4, 0, 30, drop_schedule::cosine, 2.0, true};
      for (int e = 0; e < 3; ++e) train_epoch(m, d, 40, sgd(0.05, 0.9), 5, e, true, {}, &plan);
      CHECK(!plan.records.empty());
      std::vector<std::int32_t> all;
      for (std::size_t l = 0; l < 2; ++l) {
        auto* L = m.sparse_layer(l);
        all.insert(all.end(), L->pattern.indices.begin(), L->pattern.indices.end());
        all.insert(all.end(), L->pattern.indptr.begin(), L->pattern.indptr.end());
        CHECK(L->nnz() == nnz_for_density(densities[l], sizes[l], sizes[l + 1]));
      }
      patterns.push_back(all);
    }
    CHECK(patterns[0] == patterns[1]);
  }
  set_num_threads(2);
}

TEST_MAIN()
