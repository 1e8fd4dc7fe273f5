// Trains the CIFAR-10-shaped MLP 3072-1024-512-10 (ReLU, softmax cross entropy, Nesterov 0.9,
// lr 0.01, batch 100) on synthetic data from C++ alone, through the same epoch loop as the
// Python package, and prints seconds per epoch for each overall density (ER allocation).
//
//   bench_mlp [--examples 50000] [--epochs 1] [--threads 1] [--backend mkl|native]
//             [--densities 0.001,0.01,0.05,0.1,0.2,0.5,1] [--sizes 3072,1024,512,10]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "truesparse/runtime.h"
#include "truesparse/train.h"

#include "standard_mlp.h"

using namespace truesparse;

namespace {

std::vector<double> parse_list(const char* s) {
  std::vector<double> v;
  std::string str(s);
  for (std::size_t pos = 0; pos <= str.size();) {
    const std::size_t next = str.find(',', pos);
    v.push_back(std::stod(str.substr(pos, next - pos)));
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  size_type M = 50000;
  int epochs = 1, threads = 1;
  sparse_backend backend = sparse_backend::mkl;
  std::vector<double> densities{0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1};
  std::vector<index_t> sizes{3072, 1024, 512, 10};
  for (int a = 1; a + 1 < argc; a += 2) {
    if (!std::strcmp(argv[a], "--examples"))
      M = std::atol(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--epochs"))
      epochs = std::atoi(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--threads"))
      threads = std::atoi(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--backend")) {
      if (!std::strcmp(argv[a + 1], "native"))
        backend = sparse_backend::native;
      else if (std::strcmp(argv[a + 1], "mkl")) {
        std::fprintf(stderr, "--backend must be mkl or native\n");
        return 2;
      }
    } else if (!std::strcmp(argv[a], "--densities"))
      densities = parse_list(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--sizes")) {
      sizes.clear();
      for (double s : parse_list(argv[a + 1])) sizes.push_back(static_cast<index_t>(s));
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[a]);
      return 2;
    }
  }
  set_num_threads(threads);
  const size_type D = sizes.front(), K = sizes.back();
  // Synthetic learnable data: class means in [0,1] plus noise.
  std::vector<float> X(static_cast<std::size_t>(M * D));
  std::vector<std::int32_t> y(static_cast<std::size_t>(M));
  {
    rng g(123);
    std::vector<float> means(static_cast<std::size_t>(K * D));
    for (auto& m : means) m = static_cast<float>(g.uniform());
    for (size_type n = 0; n < M; ++n) {
      y[n] = static_cast<std::int32_t>(g.below(K));
      for (size_type d = 0; d < D; ++d)
        X[n * D + d] = means[y[n] * D + d] + 0.5f * static_cast<float>(g.normal());
    }
  }
  const dataset<float> data{X.data(), M, D, y.data(), nullptr, 0};
  std::printf("# bench_mlp: %ld examples, sizes", long(M));
  for (auto s : sizes) std::printf(" %d", s);
  std::printf(", batch 100, Nesterov 0.9, %d thread(s), backend %s, MKL %s\n", threads,
              backend == sparse_backend::mkl ? "mkl" : "native", mkl_version().c_str());
  std::printf("%-9s %-30s %10s %12s %10s %10s\n", "density", "layer densities", "nnz", "s/epoch", "loss",
              "accuracy");
  for (double density : densities) {
    const std::vector<double> layer_densities = er_densities(sizes, density);
    network_options o = testing::standard_mlp(sizes, layer_densities);
    o.backend = backend;
    network<float> model(o);
    size_type nnz = 0;
    for (auto& l : model.layers) nnz += l->nnz();
    std::string ds;
    for (double d : layer_densities) ds += msg(d, " ").substr(0, 7) + " ";
    const double loss0 = evaluate(model, data).loss;
    std::vector<double> times;
    epoch_result r;
    for (int e = 0; e < epochs; ++e) {
      const auto start = std::chrono::steady_clock::now();
      r = train_epoch(model, data, 100, sgd(0.01, 0.9, true, 0.0), 0, e, true);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    const auto after = evaluate(model, data);
    std::printf("%-9g %-30s %10ld %12.3f %10.4f %10.4f%s\n", density, ds.c_str(), long(nnz),
                times[times.size() / 2], after.loss, after.accuracy,
                after.loss < loss0 ? "" : "   (loss did not decrease!)");
  }
  return 0;
}
