// Kernel benchmark: the sparse products of one layer (forward W X, input gradient Wᵀ DZ, SDDMM
// weight gradient) and the optimizer step, for both sparse backends, over densities and batch
// sizes. Each result is checked against a dense computation before it is timed; every time is
// reported with GFLOP/s (2·nnz·N per product) and its ratio to a dense sgemm of the same shape
// measured in the same run.
//
//   bench_kernels [--rows 1024] [--cols 3072] [--threads 1] [--batches 100,1000]
//                 [--densities 1,0.5,0.1,0.05,0.01,0.005,0.001]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "truesparse/linear.h"
#include "truesparse/runtime.h"

using namespace truesparse;
using clock_type = std::chrono::steady_clock;

namespace {

std::vector<double> parse_list(const char* s) {
  std::vector<double> v;
  std::string str(s);
  std::size_t pos = 0;
  while (pos < str.size()) {
    const std::size_t next = str.find(',', pos);
    v.push_back(std::stod(str.substr(pos, next - pos)));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return v;
}

// Median milliseconds of f over enough repetitions to fill ~0.3 s, after two warm-up calls.
template <class F>
double time_ms(F&& f) {
  f();
  f();
  std::vector<double> t;
  const auto start = clock_type::now();
  while (t.size() < 5 ||
         (std::chrono::duration<double>(clock_type::now() - start).count() < 0.3 && t.size() < 200)) {
    const auto a = clock_type::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
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

}  // namespace

int main(int argc, char** argv) {
  index_t K = 1024, D = 3072;
  int threads = 1;
  std::vector<double> batches{100, 1000};
  std::vector<double> densities{1, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001};
  for (int a = 1; a + 1 < argc; a += 2) {
    if (!std::strcmp(argv[a], "--rows"))
      K = std::atoi(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--cols"))
      D = std::atoi(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--threads"))
      threads = std::atoi(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--batches"))
      batches = parse_list(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--densities"))
      densities = parse_list(argv[a + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[a]);
      return 2;
    }
  }
  set_num_threads(threads);
  std::printf("# bench_kernels: layer %d x %d (out x in), float32, %d thread(s), MKL %s\n", K, D, threads,
              mkl_version().c_str());
  std::printf("%-8s %6s %9s  %-22s %10s %9s %9s\n", "density", "N", "nnz", "operation", "ms", "GFLOP/s",
              "vs sgemm");
  bool all_ok = true;
  for (double Nd : batches) {
    const auto N = static_cast<size_type>(Nd);
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
    std::printf("%-8s %6ld %9ld  %-22s %10.3f %9.1f %9.2f\n", "dense", long(N), long(K) * D, "sgemm W X",
                dense_ms, dense_flops / dense_ms / 1e6, 1.0);
    for (double density : densities) {
      const auto nnz = std::max<size_type>(1, static_cast<size_type>(density * K * D));
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
      const double flops = 2.0 * nnz * N;
      auto report = [&](const char* op, double ms, bool is_product = true) {
        if (is_product)
          std::printf("%-8g %6ld %9ld  %-22s %10.3f %9.1f %9.2f\n", density, long(N), long(nnz), op, ms,
                      flops / ms / 1e6, dense_ms / ms);
        else  // not a product: no GFLOP/s
          std::printf("%-8g %6ld %9ld  %-22s %10.3f %9s %9.2f\n", density, long(N), long(nnz), op, ms, "-",
                      dense_ms / ms);
      };
      for (auto* layer : {&mkl_layer, &native_layer}) {
        const bool is_mkl = layer == &mkl_layer;
        layer->forward(X, Z);  // bias is zero: Z = W X
        all_ok &= verified("forward", max_rel_error(Z.ptr(), Zref.ptr(), Z.size()));
        layer->backward(X, DZ, &DX);
        all_ok &= verified("input gradient", max_rel_error(DX.ptr(), DXref.ptr(), DX.size()));
        all_ok &= verified("sddmm", max_rel_error(layer->DW.data(), DWref.data(), nnz));
        report(is_mkl ? "forward (mkl)" : "forward (native)", time_ms([&] { layer->forward(X, Z); }));
        report(is_mkl ? "input grad Wt (mkl)" : "input grad Wt (native)", time_ms([&] {
                 if (is_mkl)
                   layer->handle_t.mm(1.f, DZ.ptr(), N, 0.f, DX.ptr());
                 else
                   spmm_native(layer->pattern_t, layer->Wt.data(), DZ.ptr(), N, 0.f, DX.ptr());
               }));
      }
      report("Wt refresh (gather)",
             time_ms([&] { gather(mkl_layer.perm, mkl_layer.W.data(), mkl_layer.Wt.data()); }), false);
      report("sddmm weight grad", time_ms([&] { sddmm(pattern, DZ, X, mkl_layer.DW.data()); }));
      optimizer_config c;
      c.lr = 0.01;
      c.momentum = 0.9;
      c.nesterov = true;
      optimizer_state<float> state;
      report("sgd nesterov step",
             time_ms([&] { optimizer_step(c, state, mkl_layer.W.data(), mkl_layer.DW.data(), nnz); }), false);
    }
  }
  std::printf(all_ok ? "All results match the dense reference.\n" : "SOME RESULTS DID NOT MATCH.\n");
  return all_ok ? 0 : 1;
}
