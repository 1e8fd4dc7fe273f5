// Tests of the chunk pool (parallel.h): every chunk of every job runs exactly once, on the
// calling thread or a helper; jobs from two threads at once, and jobs started inside a chunk,
// run whole; helpers take the caller's floating-point mode; parallel_for covers its range once.
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "check.h"
#include "truesparse/denormals.h"
#include "truesparse/matrix.h"
#include "truesparse/parallel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

using namespace truesparse;

namespace {

// Runs a job of `chunks` chunks on `threads` threads; true when each ran exactly once. Counts
// into `on_helper` the chunks run by a thread other than the caller.
bool each_chunk_once(int chunks, int threads, long long& on_helper) {
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(chunks));
  const auto caller = std::this_thread::get_id();
  std::atomic<int> others{0};
  parallel_chunks(chunks, threads, [&](int c) {
    runs[static_cast<std::size_t>(c)].fetch_add(1);
    if (std::this_thread::get_id() != caller) others.fetch_add(1);
  });
  on_helper += others.load();
  for (auto& r : runs)
    if (r.load() != 1) return false;
  return true;
}

}  // namespace

TEST(every_chunk_runs_once_and_helpers_take_some) {
  long long on_helper = 0;
  bool ok = true;
  for (int rep = 0; rep < 200; ++rep)
    for (int chunks : {1, 2, 3, 16, 17, 100, 1000})
      for (int threads : {1, 2, 3}) ok = ok && each_chunk_once(chunks, threads, on_helper);
  CHECK(ok);
  CHECK(on_helper > 0);  // the helpers did run chunks (most jobs are over before they wake)
  // a job with work enough per chunk is shared (not a timing test: any helper chunk will do)
  std::atomic<long long> helper_chunks{0};
  const auto caller = std::this_thread::get_id();
  for (int rep = 0; rep < 100 && helper_chunks.load() == 0; ++rep)
    parallel_chunks(64, 2, [&](int) {
      volatile double x = 0;
      for (int i = 0; i < 20000; ++i) x = x + std::sqrt(static_cast<double>(i));
      if (std::this_thread::get_id() != caller) helper_chunks.fetch_add(1);
    });
  CHECK(helper_chunks.load() > 0);
}

TEST(jobs_from_two_threads_and_from_inside_a_chunk_run_whole) {
  // two user threads start jobs at the same time: the one that finds the pool busy runs its
  // job alone; every chunk of both runs once
  std::atomic<bool> ok{true};
  auto user = [&ok] {
    long long on_helper = 0;
    for (int rep = 0; rep < 300; ++rep)
      if (!each_chunk_once(1 + rep % 40, 2, on_helper)) ok = false;
  };
  std::thread a(user), b(user);
  a.join();
  b.join();
  CHECK(ok.load());
  // a chunk that starts a job of its own (a kernel called from an epilogue): it runs whole
  std::vector<std::atomic<int>> inner(16 * 8);
  parallel_chunks(16, 2, [&](int c) {
    parallel_chunks(8, 2, [&](int d) { inner[static_cast<std::size_t>(8 * c + d)].fetch_add(1); });
  });
  bool once = true;
  for (auto& r : inner) once = once && r.load() == 1;
  CHECK(once);
}

TEST(parallel_for_covers_its_range_once) {
  for (size_type n : {0, 1, 2, 15, 16, 17, 1000, 100003}) {
    for (bool parallel : {false, true}) {
      std::vector<int> seen(static_cast<std::size_t>(n));
      std::mutex m;
      std::vector<std::pair<size_type, size_type>> ranges;
      parallel_for(n, parallel, [&](size_type b, size_type e) {
        for (size_type i = b; i < e; ++i) ++seen[static_cast<std::size_t>(i)];
        std::lock_guard<std::mutex> lock(m);
        ranges.emplace_back(b, e);
      });
      bool once = true;
      for (int s : seen) once = once && s == 1;
      CHECK(once);
      for (const auto& r : ranges) CHECK(r.first < r.second);  // no empty range is handed out
      // one range on one thread; several, independent of the thread count, otherwise
      if (!parallel || pool_threads() == 1) CHECK(ranges.size() == (n > 0 ? 1u : 0u));
    }
  }
}

#ifdef TRUESPARSE_HAS_MXCSR
namespace {
// The MXCSR values that the chunks of jobs see, over jobs run until a helper ran a chunk
// (empty when none did in 200 jobs).
std::set<unsigned> modes_in_chunks() {
  std::set<unsigned> modes;
  std::mutex m;
  bool on_helper = false;
  const auto caller = std::this_thread::get_id();
  for (int rep = 0; rep < 200 && !on_helper; ++rep)
    parallel_chunks(32, 2, [&](int) {
      volatile double x = 0;
      for (int i = 0; i < 5000; ++i) x = x + i;
      std::lock_guard<std::mutex> lock(m);
      modes.insert(_mm_getcsr());
      on_helper = on_helper || std::this_thread::get_id() != caller;
    });
  return on_helper ? modes : std::set<unsigned>{};
}
}  // namespace

TEST(helpers_take_the_callers_floating_point_mode) {
  const unsigned before = _mm_getcsr();
  for (int pass = 0; pass < 2; ++pass) {
    {
      flush_denormals flush;
      const unsigned want = _mm_getcsr();
      CHECK((want & 0x8040u) == 0x8040u);
      CHECK(modes_in_chunks() == std::set<unsigned>{want});
    }
    // and back: after the scope, helpers run jobs in the restored mode
    CHECK(modes_in_chunks() == std::set<unsigned>{before});
  }
}
#endif

TEST(first_nonfinite_finds_the_first_in_parallel) {
  const size_type M = 5000, D = 40;  // 200,000 values: above the parallel threshold
  std::vector<float> X(static_cast<std::size_t>(M * D), 1.0f);
  CHECK(first_nonfinite(X.data(), M, D).first == -1);
  // two bad values in different chunks: the first in row order wins
  X[static_cast<std::size_t>(4321 * D + 7)] = INFINITY;
  X[static_cast<std::size_t>(1234 * D + 39)] = NAN;
  for (int rep = 0; rep < 20; ++rep) {
    const auto at = first_nonfinite(X.data(), M, D);
    CHECK(at.first == 1234 && at.second == 39);
  }
}

TEST_MAIN()
