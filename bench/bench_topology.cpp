// Cost of one topology update of a wide sparse layer: SET (drop by sign-split magnitude,
// uniform regrowth) and RigL (magnitude drop, growth by the batch gradient computed in row
// panels with a running top-k). Prints the time and the peak of extra heap memory during the
// update, next to nnz-based and dense (K·D) sizes, so the O(nnz + k log k) / panel + O(k)
// claims can be read off. Results are checked: nnz unchanged, pattern valid.
//
//   bench_topology [--rows 16384] [--cols 16384] [--density 0.001] [--batch 100] [--threads 1]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "truesparse/density.h"
#include "truesparse/runtime.h"
#include "truesparse/topology.h"

#include "options.h"

// ---- heap accounting: every operator new of this process goes through here ----------------
namespace {
std::atomic<long long> heap_now{0}, heap_peak{0};
void note_alloc(std::size_t n) {
  const long long now = heap_now += static_cast<long long>(n);
  long long peak = heap_peak.load();
  while (now > peak && !heap_peak.compare_exchange_weak(peak, now)) {
  }
}
void* alloc(std::size_t n, std::size_t align) {
  const std::size_t header = align < 16 ? 16 : align;
  void* raw = std::aligned_alloc(header, ((n + header + header - 1) / header) * header);
  if (!raw) throw std::bad_alloc();
  auto* p = static_cast<char*>(raw) + header;
  reinterpret_cast<std::size_t*>(p)[-1] = n;
  note_alloc(n);
  return p;
}
void release(void* p, std::size_t align) {
  if (!p) return;
  const std::size_t header = align < 16 ? 16 : align;
  heap_now -= static_cast<long long>(reinterpret_cast<std::size_t*>(p)[-1]);
  std::free(static_cast<char*>(p) - header);
}
}  // namespace
void* operator new(std::size_t n) { return alloc(n, 16); }
void* operator new[](std::size_t n) { return alloc(n, 16); }
void* operator new(std::size_t n, std::align_val_t a) { return alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return alloc(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { release(p, 16); }
void operator delete[](void* p) noexcept { release(p, 16); }
void operator delete(void* p, std::size_t) noexcept { release(p, 16); }
void operator delete[](void* p, std::size_t) noexcept { release(p, 16); }
void operator delete(void* p, std::align_val_t a) noexcept { release(p, static_cast<std::size_t>(a)); }
void operator delete[](void* p, std::align_val_t a) noexcept { release(p, static_cast<std::size_t>(a)); }
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
  release(p, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept {
  release(p, static_cast<std::size_t>(a));
}

using namespace truesparse;

int main(int argc, char** argv) {
  index_t K = 16384, D = 16384;
  double density = 0.001;
  size_type N = 100;
  int threads = 1;
  for (int a = 1; a < argc; a += 2) {
    const char* opt = argv[a];
    if (!std::strcmp(opt, "--help") || !std::strcmp(opt, "-h")) {
      std::puts("bench_topology [--rows 16384] [--cols 16384] [--density 0.001] [--batch 100] [--threads 1]");
      return 0;
    }
    if (a + 1 >= argc) {
      std::fprintf(stderr, "bench_topology: option %s needs a value\n", opt);
      return 2;
    }
    const std::string value = argv[a + 1];
    try {
      if (!std::strcmp(opt, "--rows"))
        K = static_cast<index_t>(bench::integer(opt, value, 1, 1 << 24));
      else if (!std::strcmp(opt, "--cols"))
        D = static_cast<index_t>(bench::integer(opt, value, 1, 1 << 24));
      else if (!std::strcmp(opt, "--density"))
        density = bench::real(opt, value, 0, 1, true);
      else if (!std::strcmp(opt, "--batch"))
        N = bench::integer(opt, value, 1, 1 << 20);
      else if (!std::strcmp(opt, "--threads"))
        threads = static_cast<int>(bench::integer(opt, value, 1, 4096));
      else {
        std::fprintf(stderr, "bench_topology: unknown option %s (--help lists them)\n", opt);
        return 2;
      }
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "bench_topology: %s\n", e.what());
      return 2;
    }
  }
  set_num_threads(threads);
  rng g(1);
  const size_type nnz = nnz_for_density(density, D, K);
  sparse_linear<float> L(random_pattern(K, D, nnz, g), sparse_backend::mkl, true);
  for (auto& w : L.W) w = static_cast<float>(g.normal());
  L.sW.m.assign(L.W.size(), 0.1f);  // momentum state, remapped by every update
  matrix<float> DZ(K, N), X(D, N);
  for (auto& x : DZ.data) x = static_cast<float>(g.normal());
  for (auto& x : X.data) x = static_cast<float>(g.normal());
  const double dense_mb = 4.0 * K * D / 1e6;
  std::printf("# bench_topology: layer %d x %d, density %g, nnz %ld, batch %ld, %d thread(s)\n", K, D,
              density, long(nnz), long(N), threads);
  std::printf("# a dense float (K,D) matrix would take %.1f MB; the layer's own arrays %.1f MB\n", dense_mb,
              (4.0 * 4 * nnz + 4.0 * nnz + 4.0 * (K + 1)) / 1e6);
  std::printf("%-6s %10s %10s %12s %14s %12s\n", "update", "k", "ms", "extra MB", "extra B/nnz", "valid");
  for (int algo = 0; algo < 2; ++algo)
    for (int rep = 0; rep < 3; ++rep) {
      heap_peak = heap_now.load();
      const long long base = heap_now.load();
      const auto start = std::chrono::steady_clock::now();
      topology_record rec;
      if (algo == 0) {
        rng ug(derive_seed(7, rep));
        rec = set_update(L, 0.3, regrow_init::layer, ug);
      } else {
        rec = rigl_update(L, 0.3, DZ, X);
      }
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      const double extra = static_cast<double>(heap_peak.load() - base);
      bool ok = L.nnz() == nnz;
      try {
        validate(L.pattern, "bench_topology");
      } catch (const std::exception&) {
        ok = false;
      }
      std::printf("%-6s %10ld %10.1f %12.2f %14.1f %12s\n", algo == 0 ? "SET" : "RigL",
                  long(rec.dropped + rec.reselected), ms, extra / 1e6, extra / nnz, ok ? "yes" : "NO");
      if (!ok) return 1;
    }
  std::printf("# RigL's panel: %ld rows x %d = %.1f MB\n",
              long(std::max<size_type>(1, (size_type(1) << 20) / D)), D,
              4.0 * std::max<size_type>(1, (size_type(1) << 20) / D) * D / 1e6);
  return 0;
}
