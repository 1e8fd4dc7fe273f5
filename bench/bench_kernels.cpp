// Kernel benchmark: the sparse products of one layer (forward W X, input gradient Wᵀ DZ, SDDMM
// weight gradient, the layer's whole backward) and the optimizer step, for both sparse backends, over
// densities and batch sizes. Each result is checked against a dense computation before it is timed; every
// time is reported with GFLOP/s (2·nnz·N per product) and its ratio to a dense sgemm of the same shape
// measured in the same run.
//
// A roofline table follows: in the same run the machine's peaks are measured (STREAM-like copy
// and triad over arrays far larger than the last-level cache, dense MKL sgemm of a large square
// matrix, both with the benchmark's thread count), and every timed kernel is put against them
// with its bytes moved under two models (docs/benchmarks.md#the-roofline-table):
//   min     compulsory traffic of the operation: CSR values + column indices + row pointers read
//           once, each dense operand read once, the output written once (and read once if the
//           operation accumulated into it: none of those timed does)
//   gather  as min, but every stored weight reads a whole row of N values of the gathered
//           dense operand (X for W X and SDDMM, DZ for Wᵀ DZ): no reuse through the caches
//
//
// `bench_kernels --help` prints the options (`usage` below).
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "truesparse/linear.h"
#include "truesparse/runtime.h"

#include "options.h"

using namespace truesparse;
using clock_type = std::chrono::steady_clock;

namespace {

// Timing budget of time_ms: at least min_reps repetitions, more until budget_s has passed (at
// most 200). --quick lowers both.
double budget_s = 0.3;
std::size_t min_reps = 5;

double seconds_since(clock_type::time_point a) {
  return std::chrono::duration<double>(clock_type::now() - a).count();
}

// Median milliseconds of f over enough repetitions to fill the budget, after two warm-up calls.
template <class F>
double time_ms(F&& f) {
  f();
  f();
  std::vector<double> t;
  const auto start = clock_type::now();
  while (t.size() < min_reps || (seconds_since(start) < budget_s && t.size() < 200)) {
    const auto a = clock_type::now();
    f();
    t.push_back(seconds_since(a) * 1e3);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Fastest of reps calls of f (after one warm-up call), in seconds: the peak a machine reaches.
template <class F>
double best_s(int reps, F&& f) {
  f();
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto a = clock_type::now();
    f();
    best = std::min(best, seconds_since(a));
  }
  return best;
}

double max_rel_error(const float* a, const float* b, size_type n) {
  double err = 0, scale = 1e-30;
  for (size_type k = 0; k < n; ++k) {
    err = std::max(err, std::fabs(double(a[k]) - b[k]));
    scale = std::max(scale, std::fabs(double(b[k])));
  }
  return err / scale;
}

bool verified(const char* what, double err) {
  if (err < 1e-4) return true;
  std::printf("MISMATCH in %s: relative error %.3g\n", what, err);
  return false;
}

// ---- machine peaks ------------------------------------------------------------------------------

struct machine_peaks {
  double copy_gbs = 0, triad_gbs = 0, sgemm_gflops = 0;
};

// STREAM-like copy (c = a: 16 bytes per element) and triad (a = b + s c: 24 bytes per element) on
// three double arrays of `mb` megabytes each, first touched by the threads that use them, static
// schedule. Bytes are counted as STREAM counts them: the write-allocate read of the destination
// is not counted. Best of `reps` repetitions.
machine_peaks measure_stream(double mb, int reps) {
  const auto n = static_cast<size_type>(mb * 1e6 / sizeof(double));
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  double *pa = a.get(), *pb = b.get(), *pc = c.get();
#pragma omp parallel for schedule(static)
  for (size_type i = 0; i < n; ++i) {
    pa[i] = 1.0;
    pb[i] = 2.0;
    pc[i] = 0.0;
  }
  const double s = 3.0;
  const double copy = best_s(reps, [&] {
#pragma omp parallel for schedule(static)
    for (size_type i = 0; i < n; ++i) pc[i] = pa[i];
  });
  const double triad = best_s(reps, [&] {
#pragma omp parallel for schedule(static)
    for (size_type i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
  });
  double check = 0;  // uses the results, so that no loop can be dropped
  for (size_type i = 0; i < n; i += 4096) check += pa[i] + pc[i];
  if (check != check) std::printf("# STREAM arrays hold NaN\n");
  machine_peaks p;
  p.copy_gbs = 16.0 * static_cast<double>(n) / copy / 1e9;
  p.triad_gbs = 24.0 * static_cast<double>(n) / triad / 1e9;
  return p;
}

// Dense sgemm of size^3 (C = A B, row-major) through cblas_sgemm with MKL's own threading (the
// thread count set by set_num_threads), best of `reps`: the compute peak of this run.
double measure_sgemm(index_t size, int reps) {
  const auto n = static_cast<std::size_t>(size) * size;
  avector<float> A(n), B(n), C(n);
  rng g(7);
  for (auto& x : A) x = static_cast<float>(g.uniform() - 0.5);
  for (auto& x : B) x = static_cast<float>(g.uniform() - 0.5);
  const double s = best_s(reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.f, A.data(), size, B.data(),
                size, 0.f, C.data(), size);
  });
  return 2.0 * size * static_cast<double>(size) * size / s / 1e9;
}

// Bytes of the largest cache of cpu0 from sysfs ("32768K"), 0 when it cannot be read (glibc's
// sysconf(_SC_LEVEL3_CACHE_SIZE) reports nonsense on some virtual machines).
double last_level_cache_bytes() {
  double best = 0;
  int best_level = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_file(dir + "level"), size_file(dir + "size");
    int level = 0;
    std::string size;
    if (!(level_file >> level) || !(size_file >> size) || size.empty()) continue;
    double bytes = std::atof(size.c_str());
    if (size.back() == 'K') bytes *= 1024;
    if (size.back() == 'M') bytes *= 1024 * 1024;
    if (level >= best_level) {
      best_level = level;
      best = bytes;
    }
  }
  return best;
}

// ---- the roofline rows --------------------------------------------------------------------------

// One timed operation with its work and its bytes under the two models (docs/benchmarks.md).
struct roof_row {
  double density = 0;  // < 0: the dense sgemm of the layer's shape
  size_type N = 0, nnz = 0;
  std::string op;
  double ms = 0;
  double flops = 0;               // 0: not a product (no GFLOP/s)
  double bytes_min = 0;           // compulsory traffic
  double bytes_gather = 0;        // 0: the model does not apply
  double mkl_forward_gflops = 0;  // MKL's forward W X on the same data (0: no "vs MKL" ratio)
};

constexpr double fb = sizeof(float), ib = sizeof(index_t);  // bytes of a value, of an index

// A CSR matrix of `rows` rows and nnz stored values, read once.
double csr_bytes(double rows, double nnz) { return nnz * (fb + ib) + (rows + 1) * ib; }

std::string pct(double x) {
  char s[32];
  std::snprintf(s, sizeof s, x >= 0.0995 ? "%.0f%%" : "%.1f%%", 100 * x);
  return s;
}

std::string fixed(double x, int decimals) {
  char s[32];
  std::snprintf(s, sizeof s, "%.*f", decimals, x);
  return s;
}

void print_roofline(const std::vector<roof_row>& rows, const machine_peaks& peak, index_t K, index_t D) {
  std::printf(
      "\n# roofline: layer %d x %d (out x in), float32; peaks of this run: sgemm %.1f GFLOP/s, "
      "STREAM triad %.1f GB/s (copy %.1f GB/s)\n",
      K, D, peak.sgemm_gflops, peak.triad_gbs, peak.copy_gbs);
  std::printf(
      "# min = compulsory bytes of the operation: CSR and dense operands read once, the output written "
      "once\n#   (none of the timed operations accumulates into its output, so no output is read);\n"
      "# gather = as min, but every stored weight reads a whole row of N values of the gathered "
      "operand;\n# AI = flop per byte (min); %%roof = GFLOP/s / min(sgemm peak, AI x STREAM triad) "
      "(bandwidth-only rows:\n#   GB/s(min) / triad); vs MKL = GFLOP/s / that of MKL's forward W X "
      "(mkl_sparse_s_mm) on the same data\n");
  std::printf("%-8s %6s %9s  %-22s %9s %12s %8s %7s %7s %10s %8s %7s %10s %8s %7s %6s %7s\n", "density", "N",
              "nnz", "operation", "ms", "MFLOP", "GFLOP/s", "%sgemm", "AI", "MB(min)", "GB/s", "%strm",
              "MB(gath)", "GB/s", "%strm", "%roof", "vs MKL");
  for (const auto& r : rows) {
    const double s = r.ms / 1e3;
    const bool product = r.flops > 0;
    const double gflops = product ? r.flops / s / 1e9 : 0;
    const double gbs_min = r.bytes_min / s / 1e9;
    const double ai = product ? r.flops / r.bytes_min : 0;
    const double roof = product ? std::min(peak.sgemm_gflops, ai * peak.triad_gbs) : 0;
    char density[32];
    std::snprintf(density, sizeof density, "%g", r.density);
    const std::string gath_mb = r.bytes_gather > 0 ? fixed(r.bytes_gather / 1e6, 2) : "-";
    const std::string gath_gbs = r.bytes_gather > 0 ? fixed(r.bytes_gather / s / 1e9, 1) : "-";
    const std::string gath_pct = r.bytes_gather > 0 ? pct(r.bytes_gather / s / 1e9 / peak.triad_gbs) : "-";
    std::printf("%-8s %6ld %9ld  %-22s %9.3f %12s %8s %7s %7s %10.2f %8.1f %7s %10s %8s %7s %6s %7s\n",
                r.density < 0 ? "dense" : density, long(r.N), long(r.nnz), r.op.c_str(), r.ms,
                product ? fixed(r.flops / 1e6, 2).c_str() : "-", product ? fixed(gflops, 1).c_str() : "-",
                product ? pct(gflops / peak.sgemm_gflops).c_str() : "-", product ? fixed(ai, 2).c_str() : "-",
                r.bytes_min / 1e6, gbs_min, pct(gbs_min / peak.triad_gbs).c_str(), gath_mb.c_str(),
                gath_gbs.c_str(), gath_pct.c_str(),
                product ? pct(gflops / roof).c_str() : pct(gbs_min / peak.triad_gbs).c_str(),
                r.mkl_forward_gflops > 0 ? fixed(gflops / r.mkl_forward_gflops, 2).c_str() : "-");
  }
}

}  // namespace

const char* const usage =
    "bench_kernels: the sparse kernels of one layer against MKL and a dense sgemm, and a roofline\n"
    "table against this machine's measured peaks (docs/benchmarks.md)\n"
    "\n"
    "  bench_kernels [--rows 1024] [--cols 3072] [--threads 1] [--batches 100,1000]\n"
    "                [--densities 1,0.5,0.1,0.05,0.01,0.005,0.001]\n"
    "                [--stream-mb 160] [--sgemm-size 2048] [--quick] [--roofline-only]\n";

int main(int argc, char** argv) {
  index_t K = 1024, D = 3072;
  int threads = 1;
  std::vector<long long> batches{100, 1000};
  std::vector<double> densities{1, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001};
  double stream_mb = 0;  // 0: max(160 MB, 4 x the last-level cache)
  index_t sgemm_size = 2048;
  bool quick = false, roofline_only = false;
  for (int a = 1; a < argc; ++a) {
    const char* opt = argv[a];
    if (!std::strcmp(opt, "--help") || !std::strcmp(opt, "-h")) {
      std::fputs(usage, stdout);
      return 0;
    }
    if (!std::strcmp(opt, "--quick")) {
      quick = true;
      continue;
    }
    if (!std::strcmp(opt, "--roofline-only")) {
      roofline_only = true;
      continue;
    }
    if (a + 1 >= argc) {
      std::fprintf(stderr, "bench_kernels: option %s needs a value\n", opt);
      return 2;
    }
    const std::string value = argv[++a];
    try {
      if (!std::strcmp(opt, "--rows"))
        K = static_cast<index_t>(bench::integer(opt, value, 1, 1 << 20));
      else if (!std::strcmp(opt, "--cols"))
        D = static_cast<index_t>(bench::integer(opt, value, 1, 1 << 20));
      else if (!std::strcmp(opt, "--threads"))
        threads = static_cast<int>(bench::integer(opt, value, 1, 4096));
      else if (!std::strcmp(opt, "--batches"))
        batches = bench::integers(opt, value, 1, 1 << 20);
      else if (!std::strcmp(opt, "--densities"))
        densities = bench::reals(opt, value, 0, 1, true);
      else if (!std::strcmp(opt, "--stream-mb"))
        stream_mb = bench::real(opt, value, 0, 1e6);
      else if (!std::strcmp(opt, "--sgemm-size"))
        sgemm_size = static_cast<index_t>(bench::integer(opt, value, 1, 1 << 16));
      else {
        std::fprintf(stderr, "bench_kernels: unknown option %s (--help lists them)\n", opt);
        return 2;
      }
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "bench_kernels: %s\n", e.what());
      return 2;
    }
  }
  if (quick) {
    budget_s = 0.1;
    min_reps = 3;
  }
  set_num_threads(threads);
  std::printf("# bench_kernels: layer %d x %d (out x in), float32, %d thread(s), MKL %s%s\n", K, D, threads,
              mkl_version().c_str(), quick ? ", --quick (shorter timings)" : "");

  // The peaks of this machine, measured first with the same thread count.
  const int stream_reps = quick ? 3 : 10, sgemm_reps = quick ? 2 : 4;
  const double llc = last_level_cache_bytes();
  if (stream_mb <= 0) stream_mb = std::max(160.0, 4 * llc / 1e6);
  machine_peaks peak = measure_stream(stream_mb, stream_reps);
  peak.sgemm_gflops = measure_sgemm(sgemm_size, sgemm_reps);
  std::printf(
      "# peak STREAM: 3 double arrays of %.0f MB (last-level cache %s), %d thread(s), best of %d: "
      "copy %.1f GB/s, triad %.1f GB/s\n",
      stream_mb, llc > 0 ? (fixed(llc / 1e6, 1) + " MB").c_str() : "unknown", omp_get_max_threads(),
      stream_reps, peak.copy_gbs, peak.triad_gbs);
  std::printf("# peak sgemm: cblas_sgemm %d x %d x %d, MKL threading, best of %d: %.1f GFLOP/s\n", sgemm_size,
              sgemm_size, sgemm_size, sgemm_reps, peak.sgemm_gflops);

  if (!roofline_only)
    std::printf("%-8s %6s %9s  %-22s %10s %9s %9s\n", "density", "N", "nnz", "operation", "ms", "GFLOP/s",
                "vs sgemm");
  std::vector<roof_row> roof;
  bool all_ok = true;
  for (long long Nb : batches) {
    const auto N = static_cast<size_type>(Nb);
    const double Kf = K, Df = D, Nf = static_cast<double>(N);  // as doubles
    rng g(1);
    matrix<float> X(D, N), DZ(K, N), Z(K, N), DX(D, N), Zref(K, N), DXref(D, N);
    for (auto& x : X.data) x = static_cast<float>(g.normal());
    for (auto& x : DZ.data) x = static_cast<float>(g.normal());
    // Dense baseline: the same product with a dense (K,D) W.
    avector<float> Wd(static_cast<std::size_t>(K) * D);
    for (auto& w : Wd) w = static_cast<float>(g.normal());
    const double dense_ms = time_ms(
        [&] { gemm<float>(trans::N, trans::N, K, N, D, 1.f, Wd.data(), D, X.ptr(), N, 0.f, Z.ptr(), N); });
    const double dense_flops = 2.0 * K * D * N;
    if (!roofline_only)
      std::printf("%-8s %6ld %9ld  %-22s %10.3f %9.1f %9.2f\n", "dense", long(N), long(K) * D, "sgemm W X",
                  dense_ms, dense_flops / dense_ms / 1e6, 1.0);
    {
      roof_row r;
      r.density = -1;
      r.N = N;
      r.nnz = static_cast<size_type>(K) * D;
      r.op = "sgemm W X";
      r.ms = dense_ms;
      r.flops = dense_flops;
      r.bytes_min = fb * (Kf * Df + Df * Nf + Kf * Nf);
      roof.push_back(r);
    }
    for (double density : densities) {
      const auto nnz = std::max<size_type>(1, static_cast<size_type>(density * K * D));
      const double z = static_cast<double>(nnz);
      const auto pattern = random_pattern(K, D, nnz, g);
      // Dense copy of the sparse W for the reference results.
      std::fill(Wd.begin(), Wd.end(), 0.f);
      sparse_linear<float> mkl_layer(pattern, sparse_backend::mkl, true);
      sparse_linear<float> native_layer(pattern, sparse_backend::native, true);
      for (index_t i = 0; i < K; ++i)
        for (index_t k = pattern.indptr[i]; k < pattern.indptr[i + 1]; ++k) {
          const float w = static_cast<float>(g.normal());
          mkl_layer.W[k] = native_layer.W[k] = w;
          Wd[static_cast<std::size_t>(i) * D + pattern.indices[k]] = w;
        }
      mkl_layer.values_changed();
      native_layer.values_changed();
      gemm<float>(trans::N, trans::N, K, N, D, 1.f, Wd.data(), D, X.ptr(), N, 0.f, Zref.ptr(), N);
      gemm<float>(trans::T, trans::N, D, N, K, 1.f, Wd.data(), D, DZ.ptr(), N, 0.f, DXref.ptr(), N);
      avector<float> DWref(nnz);
      {
        matrix<float> full(K, D);  // (K,D) = (K,N) (N,D), then gathered on the pattern
        gemm<float>(trans::N, trans::T, K, D, N, 1.f, DZ.ptr(), N, X.ptr(), N, 0.f, full.ptr(), D);
        for (index_t i = 0; i < K; ++i)
          for (index_t k = pattern.indptr[i]; k < pattern.indptr[i + 1]; ++k)
            DWref[k] = full(i, pattern.indices[k]);
      }
      const double flops = 2.0 * nnz * N;  // of one product
      // Bytes of each operation under the two models (see the top of this file and
      // docs/benchmarks.md#the-roofline-table); the output of none of them accumulates.
      //   forward   Z (K,N) = W X + b: W (K rows) read, X read, b read, Z written
      //   Wᵀ DZ     DX (D,N) = Wᵀ DZ: Wᵀ (D rows) read, DZ read, DX written
      //   SDDMM     DW (nnz) on W's pattern: indices and row pointers read (no values), DZ and X
      //             read, DW written
      //   backward  Db = rows_sum(DZ), DW by SDDMM, DX = Wᵀ DZ: W read once (values, indices,
      //             row pointers), DZ and X read, Db, DW and DX written
      const double fwd_min = csr_bytes(Kf, z) + fb * Df * Nf + fb * Kf + fb * Kf * Nf;
      const double fwd_gather = csr_bytes(Kf, z) + fb * z * Nf + fb * Kf + fb * Kf * Nf;
      const double wt_min = csr_bytes(Df, z) + fb * Kf * Nf + fb * Df * Nf;
      const double wt_gather = csr_bytes(Df, z) + fb * z * Nf + fb * Df * Nf;
      const double sddmm_min = ib * z + ib * (Kf + 1) + fb * Kf * Nf + fb * Df * Nf + fb * z;
      const double sddmm_gather = ib * z + ib * (Kf + 1) + fb * Kf * Nf + fb * z * Nf + fb * z;
      const double bwd_min = csr_bytes(Kf, z) + fb * (Kf * Nf + Df * Nf + Kf + z + Df * Nf);
      const double bwd_gather = csr_bytes(Kf, z) + fb * (2 * z * Nf + Kf + z + Df * Nf);
      // the native layer's one pass (sparse_linear::one_pass_gradients) gathers DZ once per
      // stored weight and reads each row of X once
      const double bwd_one_pass = csr_bytes(Kf, z) + fb * (z * Nf + Df * Nf + Kf + z + Df * Nf);
      double mkl_forward_ms = 0;
      // op's median ms, its flops (0: not a product), bytes under both models (gather 0: not
      // modelled), and whether to give its throughput against MKL's forward.
      auto report = [&](const char* op, double ms, double op_flops, double bytes_min, double bytes_gather,
                        bool vs_mkl) {
        if (!roofline_only) {
          if (op_flops > 0)
            std::printf("%-8g %6ld %9ld  %-22s %10.3f %9.1f %9.2f\n", density, long(N), long(nnz), op, ms,
                        op_flops / ms / 1e6, dense_ms / ms);
          else  // not a product: no GFLOP/s
            std::printf("%-8g %6ld %9ld  %-22s %10.3f %9s %9.2f\n", density, long(N), long(nnz), op, ms, "-",
                        dense_ms / ms);
        }
        roof_row r;
        r.density = density;
        r.N = N;
        r.nnz = nnz;
        r.op = op;
        r.ms = ms;
        r.flops = op_flops;
        r.bytes_min = bytes_min;
        r.bytes_gather = bytes_gather;
        r.mkl_forward_gflops = vs_mkl ? flops / mkl_forward_ms / 1e6 : 0;
        roof.push_back(r);
      };
      // The explicit values of Wᵀ for the native product Wᵀ DZ through spmm_native (the layer
      // itself may compute DX another way: the backward rows time what it does).
      avector<float> Wt(static_cast<std::size_t>(nnz));
      gather(native_layer.perm, native_layer.W.data(), Wt.data());
      spmm_native(native_layer.pattern_t, Wt.data(), DZ.ptr(), N, 0.f, DX.ptr());
      all_ok &= verified("native Wt DZ", max_rel_error(DX.ptr(), DXref.ptr(), DX.size()));
      for (auto* layer : {&mkl_layer, &native_layer}) {
        const bool is_mkl = layer == &mkl_layer;
        layer->forward(X, Z);  // bias is zero: Z = W X
        all_ok &= verified("forward", max_rel_error(Z.ptr(), Zref.ptr(), Z.size()));
        layer->backward(X, DZ, &DX);
        all_ok &= verified("input gradient", max_rel_error(DX.ptr(), DXref.ptr(), DX.size()));
        all_ok &= verified("sddmm", max_rel_error(layer->DW.data(), DWref.data(), nnz));
        if (is_mkl) {  // MKL's bare product Z = W X (β = 0): the baseline of "vs MKL"
          layer->handle.mm(1.f, X.ptr(), N, 0.f, Z.ptr());
          all_ok &= verified("mkl_sparse_s_mm", max_rel_error(Z.ptr(), Zref.ptr(), Z.size()));
          mkl_forward_ms = time_ms([&] { layer->handle.mm(1.f, X.ptr(), N, 0.f, Z.ptr()); });
          report("mkl_sparse_s_mm W X", mkl_forward_ms, flops, fwd_min - fb * Kf, fwd_gather - fb * Kf, true);
        }
        const double fwd_ms = time_ms([&] { layer->forward(X, Z); });
        report(is_mkl ? "forward (mkl)" : "forward (native)", fwd_ms, flops, fwd_min, fwd_gather, true);
        report(is_mkl ? "input grad Wt (mkl)" : "input grad Wt (native)", time_ms([&] {
                 if (is_mkl)
                   layer->handle_t.mm(1.f, DZ.ptr(), N, 0.f, DX.ptr());
                 else
                   spmm_native(layer->pattern_t, Wt.data(), DZ.ptr(), N, 0.f, DX.ptr());
               }),
               flops, wt_min, wt_gather, true);
        report(is_mkl ? "backward (mkl)" : "backward (native)", time_ms([&] { layer->backward(X, DZ, &DX); }),
               2 * flops, bwd_min, !is_mkl && layer->one_pass_gradients() ? bwd_one_pass : bwd_gather, true);
      }
      // Not products: perm read, W read (in perm's order), Wt written; SGD with momentum reads
      // W, DW and the velocity and writes W and the velocity.
      report("Wt refresh (gather)",
             time_ms([&] { gather(native_layer.perm, native_layer.W.data(), Wt.data()); }), 0,
             (ib + 2 * fb) * z, 0, false);
      report("sddmm weight grad", time_ms([&] { sddmm(pattern, DZ, X, mkl_layer.DW.data()); }), flops,
             sddmm_min, sddmm_gather, true);
      optimizer_config c;
      c.lr = 0.01;
      c.momentum = 0.9;
      c.nesterov = true;
      optimizer_state<float> state;
      report("sgd nesterov step",
             time_ms([&] { optimizer_step(c, state, mkl_layer.W.data(), mkl_layer.DW.data(), nnz); }), 0,
             5 * fb * z, 0, false);
    }
  }
  print_roofline(roof, peak, K, D);
  std::printf(all_ok ? "All results match the dense reference.\n" : "SOME RESULTS DID NOT MATCH.\n");
  return all_ok ? 0 : 1;
}
