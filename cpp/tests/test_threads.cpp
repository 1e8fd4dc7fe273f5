// Tests of the adaptive thread count (runtime.h: thread_governor) on simulated step times, and
// of the kernels' independence of the thread count that lets it switch between steps.
#include <omp.h>

#include <cmath>

#include "check.h"
#include "truesparse/kernels.h"
#include "truesparse/runtime.h"

using namespace truesparse;

namespace {

// Runs `steps` steps through g with the step time time_of(threads, step); returns the steps
// run on one thread after the first `settle` steps.
template <class F>
long long one_thread_steps(thread_governor& g, int steps, int settle, F time_of) {
  g.begin();
  long long before = 0;
  for (int s = 0; s < steps; ++s) {
    if (s == settle) before = g.steps_on_one();
    const int n = g.next();
    CHECK(omp_get_max_threads() == n);
    g.record(time_of(n, s));
  }
  g.end();
  return g.steps_on_one() - before;
}

}  // namespace

TEST(quiet_machine_keeps_every_thread) {
  set_num_threads(2);
  set_adaptive_threads(true);
  thread_governor g;
  // two threads 1.4x faster than one, with a little noise
  const long long one =
      one_thread_steps(g, 2000, 0, [](int n, int s) { return (n == 1 ? 1.4 : 1.0) + 0.01 * (s % 7); });
  CHECK(one < 60);  // only the probes, each lost within a few steps
  CHECK(g.steps_on_all() > 1900);
  CHECK(omp_get_max_threads() == 2);  // end() restored the setting
}

TEST(a_busy_core_moves_training_to_one_thread) {
  set_num_threads(2);
  set_adaptive_threads(true);
  thread_governor g;
  // two threads: mostly faster steps, but every fifth stalls (the second thread lost its core)
  const auto busy = [](int n, int s) { return n == 1 ? 1.0 : (s % 5 == 0 ? 8.0 : 0.8); };
  const long long one = one_thread_steps(g, 2000, 100, busy);
  CHECK(one > 1800);  // after the first 100 steps, nearly every step on one thread
  CHECK(omp_get_max_threads() == 2);
}

TEST(the_choice_follows_the_machine_back) {
  set_num_threads(2);
  set_adaptive_threads(true);
  thread_governor g;
  // busy for 500 steps, then quiet: two threads come back within a few probes
  const auto changing = [](int n, int s) {
    if (s < 500) return n == 1 ? 1.0 : (s % 5 == 0 ? 8.0 : 0.8);
    return n == 1 ? 1.4 : 1.0;
  };
  one_thread_steps(g, 500, 0, changing);
  const long long one_before = g.steps_on_one();
  g.begin();
  for (int s = 500; s < 4000; ++s) g.record(changing(g.next(), s));
  g.end();
  CHECK(g.steps_on_one() - one_before < 1700);  // the longest run is 800 steps, then a probe
  CHECK(g.steps_on_all() > 1800);
}

TEST(switched_off_or_one_thread_never_changes_the_count) {
  set_num_threads(2);
  set_adaptive_threads(false);
  thread_governor g;
  CHECK(one_thread_steps(g, 300, 0, [](int n, int) { return n == 1 ? 1.0 : 9.0; }) == 0);
  set_adaptive_threads(true);
  set_num_threads(1);
  thread_governor h;
  CHECK(one_thread_steps(h, 300, 0, [](int, int) { return 1.0; }) == 300);
  CHECK(h.steps_on_all() == 0);
  set_num_threads(2);
}

TEST(kernels_do_not_depend_on_the_thread_count) {
  rng g(5);
  for (double density : {0.002, 0.05, 0.6}) {
    const csr_pattern p = random_pattern(300, 700, static_cast<size_type>(density * 300 * 700), g);
    csr_pattern pt;
    std::vector<index_t> perm;
    transpose(p, pt, perm);
    std::vector<float> w(static_cast<std::size_t>(p.nnz())), bias(300);
    for (auto& v : w) v = static_cast<float>(g.uniform() - 0.5);
    for (auto& v : bias) v = static_cast<float>(g.uniform());
    for (size_type N : {1, 7, 8, 12, 100, 130}) {
      matrix<float> X(700, N), DZ(300, N);
      for (auto& v : X.data) v = static_cast<float>(g.uniform() - 0.5);
      for (auto& v : DZ.data) v = static_cast<float>(g.uniform() - 0.5);
      matrix<float> Z[2], DX[2];
      std::vector<float> DW[2];
      for (int t = 0; t < 2; ++t) {
        set_num_threads(t + 1);
        Z[t].resize(300, N);
        DX[t].resize(700, N);
        DW[t].assign(w.size(), 0.f);
        spmm_native(p, w.data(), X.ptr(), N, 0.f, Z[t].ptr(), bias.data());
        spmm_native(pt, w.data(), DZ.ptr(), N, 0.f, DX[t].ptr(), static_cast<const float*>(nullptr),
                    perm.data());
        sddmm(p, DZ, X, DW[t].data());
      }
      CHECK(Z[0].data == Z[1].data);
      CHECK(DX[0].data == DX[1].data);
      CHECK(DW[0] == DW[1]);
      // and against a plain double-precision loop
      for (index_t i = 0; i < p.rows; ++i)
        for (size_type n = 0; n < N; ++n) {
          double z = bias[i];
          for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) z += double(w[k]) * X(p.indices[k], n);
          CHECK(std::fabs(Z[0](i, n) - z) <= 1e-4 * (1 + std::fabs(z)));
        }
    }
  }
  set_num_threads(2);
}

TEST_MAIN()
