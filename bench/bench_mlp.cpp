// Trains MLPs (ReLU, softmax cross entropy, SGD lr 0.01 with Nesterov 0.9, batch 100) on
// synthetic data from C++ alone, through the same epoch loop as the Python package. Four
// measurements (docs/benchmarks.md#bench_mlp); `bench_mlp --help` prints their options (`usage`).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "truesparse/runtime.h"
#include "truesparse/train.h"

#include "options.h"
#include "standard_mlp.h"

using namespace truesparse;

namespace {

double seconds_since(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

// Resident set of this process now (/proc/self/statm), in bytes; 0 where it cannot be read.
double current_rss() {
  std::ifstream statm("/proc/self/statm");
  long long pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// Peak resident set of this process so far (getrusage ru_maxrss, kilobytes on Linux), in bytes.
double peak_rss() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;
}

// Synthetic learnable data: M examples of D features, K classes; class means uniform in [0, 1]
// plus 0.5·N(0, 1) noise.
struct synthetic {
  std::vector<float> X;
  std::vector<std::int32_t> y;
  size_type M = 0, D = 0;
  synthetic(size_type m, size_type d, size_type k) : X(static_cast<std::size_t>(m * d)), y(m), M(m), D(d) {
    rng g(123);
    std::vector<float> means(static_cast<std::size_t>(k * d));
    for (auto& v : means) v = static_cast<float>(g.uniform());
    for (size_type n = 0; n < m; ++n) {
      y[n] = static_cast<std::int32_t>(g.below(k));
      for (size_type j = 0; j < d; ++j)
        X[n * d + j] = means[y[n] * d + j] + 0.5f * static_cast<float>(g.normal());
    }
  }
  // Examples [start, start + count) as a data set.
  dataset<float> slice(size_type start, size_type count) const {
    return dataset<float>{X.data() + start * D, count, D, y.data() + start, nullptr, 0};
  }
};

const optimizer_config& training_optimizer() {
  static const optimizer_config c = sgd(0.01, 0.9, true, 0.0);
  return c;
}

// Training batches of 100: `warmup` untimed, then `batches` timed one by one (each one
// train_epoch over the next 100 examples of data, which must hold (warmup + batches) · 100).
struct batch_times {
  std::vector<double> seconds;
  double last_loss = 0;
  double median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    const std::size_t n = s.size();
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }
  double mean() const { return std::accumulate(seconds.begin(), seconds.end(), 0.0) / seconds.size(); }
};

batch_times time_batches(network<float>& model, const synthetic& data, int warmup, int batches) {
  constexpr size_type B = 100;
  batch_times t;
  for (int b = 0; b < warmup + batches; ++b) {
    const auto start = std::chrono::steady_clock::now();
    const epoch_result r = train_epoch(model, data.slice(b * B, B), B, training_optimizer(), 0, b, true);
    const double s = seconds_since(start);
    if (b >= warmup) t.seconds.push_back(s);
    t.last_loss = r.loss;
  }
  return t;
}

size_type total_nnz(const network<float>& model) {
  size_type nnz = 0;
  for (auto& l : model.layers) nnz += l->nnz();
  return nnz;
}

std::string joined(const std::vector<index_t>& sizes, const char* sep = "-") {
  std::string s;
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? sep : "") + std::to_string(sizes[i]);
  return s;
}

std::string layer_nnz(const network<float>& model) {
  std::string s;
  for (auto& l : model.layers) s += (s.empty() ? "" : " + ") + with_commas(l->nnz());
  return s;
}

struct common_options {
  int threads = 1;
  sparse_backend backend = sparse_backend::native;
  int batches = -1, warmup = 1;  // batches -1: the default of each measurement
  operand_dtype operands = operand_dtype::float32;
  bool fuse = true;                   // network_options::fuse_epilogues
  double stream_mb = -1;              // sparse_linear::stream_bytes in MB; -1: the library's
  std::string backend_name() const {  // with what the run changes from the defaults
    std::string name = backend == sparse_backend::mkl ? "mkl" : "native";
    if (operands == operand_dtype::bfloat16) name += ", bfloat16 operands";
    if (!fuse) name += ", epilogues not fused";
    if (stream_mb >= 0) {
      char mb[32];
      std::snprintf(mb, sizeof mb, "%g", stream_mb);
      name += std::string(", output rows streamed from ") + mb + " MB";
    }
    return name;
  }
  // The options network_options does not hold, on a built model.
  void apply(network<float>& model) const {
    if (stream_mb >= 0)
      for (auto* L : model.layers)
        if (auto* S = L->as_sparse()) S->stream_bytes = stream_mb * 1024 * 1024;
  }
};

network_options mlp_options(const std::vector<index_t>& sizes, const std::vector<double>& densities,
                            const common_options& c) {
  network_options o = testing::standard_mlp(sizes, densities);
  o.backend = c.backend;
  o.operands = c.operands;
  o.fuse_epilogues = c.fuse;
  o.name = "bench_mlp";
  return o;
}

// ---- the density sweep (seconds per epoch) ------------------------------------------------------

void density_sweep(const common_options& c, size_type M, int epochs, const std::vector<double>& densities,
                   const std::vector<index_t>& sizes) {
  const synthetic data(M, sizes.front(), sizes.back());
  const dataset<float> all = data.slice(0, M);
  std::printf("# bench_mlp: %ld examples, sizes", long(M));
  for (auto s : sizes) std::printf(" %d", s);
  std::printf(", batch 100, Nesterov 0.9, %d thread(s), backend %s, MKL %s\n", c.threads,
              c.backend_name().c_str(), mkl_version().c_str());
  std::printf("%-9s %-30s %10s %12s %10s %10s\n", "density", "layer densities", "nnz", "s/epoch", "loss",
              "accuracy");
  for (double density : densities) {
    const std::vector<double> layer_densities = er_densities(sizes, density);
    network<float> model(mlp_options(sizes, layer_densities, c));
    c.apply(model);
    std::string ds;
    for (double d : layer_densities) ds += msg(d, " ").substr(0, 7) + " ";
    const double loss0 = evaluate(model, all).loss;
    std::vector<double> times;
    for (int e = 0; e < epochs; ++e) {
      const auto start = std::chrono::steady_clock::now();
      train_epoch(model, all, 100, training_optimizer(), 0, e, true);
      times.push_back(seconds_since(start));
    }
    std::sort(times.begin(), times.end());
    const auto after = evaluate(model, all);
    std::printf("%-9g %-30s %10ld %12.3f %10.4f %10.4f%s\n", density, ds.c_str(), long(total_nnz(model)),
                times[times.size() / 2], after.loss, after.accuracy,
                after.loss < loss0 ? "" : "   (loss did not decrease!)");
  }
}

// ---- the scale network ----------------------------------------------------------------------------

void scale_network(const common_options& c, const std::vector<index_t>& sizes, double epsilon,
                   size_type epoch_examples) {
  const int batches = c.batches > 0 ? c.batches : 5;
  const synthetic data((c.warmup + batches) * 100, sizes.front(), sizes.back());
  const std::vector<double> densities = epsilon_densities(sizes, epsilon);
  const network_options o = mlp_options(sizes, densities, c);
  const model_estimate estimate = estimate_model_memory(o, sizeof(float));
  std::printf(
      "\n# scale network %s, epsilon %g (Erdos-Renyi), batch 100, SGD Nesterov 0.9, %d thread(s), "
      "backend %s, MKL %s\n",
      joined(sizes).c_str(), epsilon, c.threads, c.backend_name().c_str(), mkl_version().c_str());
  std::string ds;
  for (double d : densities) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g ", d);  // (whole: 2.85714e-05, not cut to 8 characters)
    ds += buf;
  }
  std::printf("layer densities:      %s\n", ds.c_str());

  const double rss_before = current_rss();
  const auto build_start = std::chrono::steady_clock::now();
  network<float> model(o);
  c.apply(model);
  const double build_s = seconds_since(build_start);
  const double rss_built = current_rss();
  const auto nnz = static_cast<double>(total_nnz(model));
  training_plan plan;
  plan.batch_size = 100;
  plan.optimizer = training_optimizer();
  plan.examples = 100;  // each timed batch is one train_epoch over 100 examples
  const memory_terms training = training_memory(model, plan);
  std::printf("stored weights:       %s = %s (built in %.2f s)\n", layer_nnz(model).c_str(),
              with_commas(static_cast<long long>(nnz)).c_str(), build_s);

  const batch_times t = time_batches(model, data, c.warmup, batches);
  const double rss_trained = current_rss(), rss_peak = peak_rss();
  const double per_batch = t.median();
  const double epoch_batches = std::ceil(static_cast<double>(epoch_examples) / 100.0);
  std::printf(
      "batch of 100:         median %.4f s, mean %.4f s over %d timed batches (after %d warm-up), "
      "training loss of the last %.4f (finite: %s)\n",
      per_batch, t.mean(), batches, c.warmup, t.last_loss, std::isfinite(t.last_loss) ? "yes" : "NO");
  const std::string epoch_label = "epoch of " + with_commas(epoch_examples) + ":";
  std::printf(
      "%-22s%.1f s  EXTRAPOLATED from %d timed batches (%.0f batches x the median), "
      "not measured\n",
      epoch_label.c_str(), epoch_batches * per_batch, batches, epoch_batches);
  std::printf("effective throughput: %.2f GFLOP/s (6 nnz N / median batch time)\n",
              6.0 * nnz * 100 / per_batch / 1e9);
  std::printf("peak RSS:             %s (getrusage ru_maxrss; %s before the model was built)\n",
              gigabytes(rss_peak).c_str(), gigabytes(rss_before).c_str());
  std::printf(
      "RSS growth:           model built %s = %.1f B per stored weight; after training %s = %.1f B "
      "per stored weight (peak %.1f B)\n",
      gigabytes(rss_built - rss_before).c_str(), (rss_built - rss_before) / nnz,
      gigabytes(rss_trained - rss_before).c_str(), (rss_trained - rss_before) / nnz,
      (rss_peak - rss_before) / nnz);
  const double held = estimate.held.model();
  std::printf("estimate (memory.h):  model %s = %.1f B per stored weight (%s); peak while built %s\n",
              gigabytes(held).c_str(), held / nnz, memory_breakdown(estimate.held).c_str(),
              gigabytes(estimate.peak).c_str());
  std::printf(
      "                      training adds %s = %.1f B per stored weight (%s); model + training "
      "%.1f B per stored weight\n",
      gigabytes(training.training()).c_str(), training.training() / nnz, memory_breakdown(training).c_str(),
      (held + training.training()) / nnz);
}

// ---- width sweep at fixed stored weights -------------------------------------------------------

void width_sweep(const common_options& c, const std::vector<index_t>& widths, size_type sweep_nnz,
                 size_type output_nnz) {
  const int batches = c.batches > 0 ? c.batches : 20;
  const synthetic data((c.warmup + batches) * 100, 784, 10);
  std::printf(
      "\n# width sweep: 784-H-H-H-10, layers 784xH, HxH, HxH hold %s stored weights each and the "
      "output layer Hx10 %s, whatever H; batch 100, %d timed batches after %d warm-up, "
      "%d thread(s), backend %s\n",
      with_commas(sweep_nnz).c_str(), with_commas(output_nnz).c_str(), batches, c.warmup, c.threads,
      c.backend_name().c_str());
  std::printf("%8s  %-42s %10s %12s %12s %9s\n", "H", "stored weights per layer", "total", "s/batch", "mean",
              "vs first");
  double first = 0;
  for (const index_t H : widths) {
    const std::vector<index_t> sizes{784, H, H, H, 10};
    const size_type want[] = {sweep_nnz, sweep_nnz, sweep_nnz, output_nnz};
    std::vector<double> densities;
    bool feasible = true;
    for (std::size_t l = 0; l < 4; ++l) {
      const double positions = static_cast<double>(sizes[l]) * sizes[l + 1];
      feasible &= static_cast<double>(want[l]) <= positions;
      densities.push_back(std::min(1.0, static_cast<double>(want[l]) / positions));
    }
    if (!feasible) {
      std::printf("%8d  cannot hold the requested weights (784 H >= %ld and 10 H >= %ld needed)\n", H,
                  long(sweep_nnz), long(output_nnz));
      continue;
    }
    network<float> model(mlp_options(sizes, densities, c));
    c.apply(model);
    for (std::size_t l = 0; l < 4; ++l)
      if (model.layers[l]->nnz() != want[l])
        std::printf("# note: layer %zu holds %ld weights, not %ld\n", l, long(model.layers[l]->nnz()),
                    long(want[l]));
    const batch_times t = time_batches(model, data, c.warmup, batches);
    const double s = t.median();
    if (first == 0) first = s;
    std::printf("%8d  %-42s %10s %12.5f %12.5f %9.2f\n", H, layer_nnz(model).c_str(),
                with_commas(total_nnz(model)).c_str(), s, t.mean(), s / first);
  }
}

// ---- hidden-size throughput at ε ----------------------------------------------------------------

void throughput_sweep(const common_options& c, const std::vector<index_t>& widths, double epsilon) {
  const int batches = c.batches > 0 ? c.batches : 5;
  const synthetic data((c.warmup + batches) * 100, 784, 10);
  std::printf(
      "\n# hidden-size throughput: 784-H-H-H-10 at epsilon %g; effective GFLOP/s = 6 nnz N / median "
      "time per batch (N = 100; forward, input gradient and weight gradient, 2 flops per weight "
      "each); %d timed batches after %d warm-up, %d thread(s), backend %s\n",
      epsilon, batches, c.warmup, c.threads, c.backend_name().c_str());
  std::printf("%8s  %-50s %12s %12s %10s %9s\n", "H", "stored weights per layer", "total", "s/batch",
              "GFLOP/s", "vs first");
  double first = 0;
  for (const index_t H : widths) {
    const std::vector<index_t> sizes{784, H, H, H, 10};
    network<float> model(mlp_options(sizes, epsilon_densities(sizes, epsilon), c));
    c.apply(model);
    const batch_times t = time_batches(model, data, c.warmup, batches);
    const double nnz = static_cast<double>(total_nnz(model)), s = t.median();
    const double gflops = 6.0 * nnz * 100 / s / 1e9;
    if (first == 0) first = gflops;
    std::printf("%8d  %-50s %12s %12.4f %10.2f %9.2f\n", H, layer_nnz(model).c_str(),
                with_commas(static_cast<long long>(nnz)).c_str(), s, gflops, gflops / first);
  }
}

}  // namespace

const char* const usage =
    "bench_mlp: seconds per training epoch or batch of MLPs on synthetic data (docs/benchmarks.md)\n"
    "\n"
    "  density sweep (the default): seconds per epoch of --sizes for each overall density (ER)\n"
    "    bench_mlp [--examples 50000] [--epochs 1] [--densities 0.001,0.01,0.05,0.1,0.2,0.5,1]\n"
    "              [--sizes 3072,1024,512,10]\n"
    "  scale network: a few batches of a very wide network at SET's ε, extrapolated to an epoch,\n"
    "    with peak RSS and bytes per stored weight\n"
    "    bench_mlp --scale 784,700000,700000,700000,10 [--epsilon 10] [--batches 5] [--warmup 1]\n"
    "              [--epoch-examples 60000]\n"
    "  width sweep: 784-H-H-H-10 with the same stored weights in every layer whatever H\n"
    "    bench_mlp --width-sweep 1024,4096,16384,65536 [--sweep-nnz 100000] [--output-nnz 10000]\n"
    "              [--batches 20]\n"
    "  hidden-size throughput: 784-H-H-H-10 at ε, effective GFLOP/s = 6 nnz N / time per batch\n"
    "    bench_mlp --throughput-sweep 20000,200000 [--epsilon 10] [--batches 5]\n"
    "\n"
    "Common options: [--threads 1] [--backend mkl|native] [--operands float32|bfloat16] [--fuse on|off]\n"
    "(off: the activations run as modules of their own, network_options::fuse_epilogues)\n"
    "[--stream-outputs-mb M] (output matrices of M MB and more are written with non-temporal stores;\n"
    "sparse_linear::stream_bytes, 16 by default). --scale,\n"
    "--width-sweep and --throughput-sweep may be combined (run in that order); with any of them the density\n"
    "sweep is skipped.\n";

int main(int argc, char** argv) {
  common_options c;
  size_type M = 50000, epoch_examples = 60000, sweep_nnz = 100000, output_nnz = 10000;
  int epochs = 1;
  double epsilon = 10;
  std::vector<double> densities{0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1};
  std::vector<index_t> sizes{3072, 1024, 512, 10}, scale;
  std::vector<index_t> widths, throughput_widths;
  for (int a = 1; a < argc; a += 2) {
    const char* opt = argv[a];
    if (!std::strcmp(opt, "--help") || !std::strcmp(opt, "-h")) {
      std::fputs(usage, stdout);
      return 0;
    }
    if (a + 1 >= argc) {
      std::fprintf(stderr, "bench_mlp: option %s needs a value\n", opt);
      return 2;
    }
    const std::string value = argv[a + 1];
    const long long huge = std::numeric_limits<index_t>::max();
    auto sizes_of = [&](const char* o) {
      const auto v = bench::integers(o, value, 1, max_layer_size);
      return std::vector<index_t>(v.begin(), v.end());
    };
    try {
      if (!std::strcmp(opt, "--examples"))
        M = bench::integer(opt, value, 1, huge);
      else if (!std::strcmp(opt, "--epochs"))
        epochs = static_cast<int>(bench::integer(opt, value, 1, 1000000));
      else if (!std::strcmp(opt, "--threads"))
        c.threads = static_cast<int>(bench::integer(opt, value, 1, 4096));
      else if (!std::strcmp(opt, "--backend"))
        c.backend =
            bench::choice(opt, value, {"native", "mkl"}) == 0 ? sparse_backend::native : sparse_backend::mkl;
      else if (!std::strcmp(opt, "--operands"))
        c.operands = bench::choice(opt, value, {"float32", "bfloat16"}) == 0 ? operand_dtype::float32
                                                                             : operand_dtype::bfloat16;
      else if (!std::strcmp(opt, "--fuse"))
        c.fuse = bench::choice(opt, value, {"on", "off"}) == 0;
      else if (!std::strcmp(opt, "--stream-outputs-mb"))
        c.stream_mb = bench::real(opt, value, 0, 1e12);
      else if (!std::strcmp(opt, "--densities"))
        densities = bench::reals(opt, value, 0, 1, true);
      else if (!std::strcmp(opt, "--sizes") || !std::strcmp(opt, "--scale")) {
        auto& target = !std::strcmp(opt, "--sizes") ? sizes : scale;
        target = sizes_of(opt);
        if (target.size() < 2) throw bench::bad_value(opt, "at least two sizes, inputs first", value);
      } else if (!std::strcmp(opt, "--epsilon"))
        epsilon = bench::real(opt, value, 0, 1e12, true);
      else if (!std::strcmp(opt, "--batches"))
        c.batches = static_cast<int>(bench::integer(opt, value, 1, 1000000));
      else if (!std::strcmp(opt, "--warmup"))
        c.warmup = static_cast<int>(bench::integer(opt, value, 0, 1000000));
      else if (!std::strcmp(opt, "--epoch-examples"))
        epoch_examples = bench::integer(opt, value, 1, huge);
      else if (!std::strcmp(opt, "--width-sweep"))
        widths = sizes_of(opt);
      else if (!std::strcmp(opt, "--sweep-nnz"))
        sweep_nnz = bench::integer(opt, value, 1, huge);
      else if (!std::strcmp(opt, "--output-nnz"))
        output_nnz = bench::integer(opt, value, 1, huge);
      else if (!std::strcmp(opt, "--throughput-sweep"))
        throughput_widths = sizes_of(opt);
      else {
        std::fprintf(stderr, "bench_mlp: unknown option %s (--help lists them)\n", opt);
        return 2;
      }
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "bench_mlp: %s\n", e.what());
      return 2;
    }
  }
  set_num_threads(c.threads);
  try {
    if (scale.empty() && widths.empty() && throughput_widths.empty()) {
      density_sweep(c, M, epochs, densities, sizes);
      return 0;
    }
    if (!scale.empty()) scale_network(c, scale, epsilon, epoch_examples);
    if (!widths.empty()) width_sweep(c, widths, sweep_nnz, output_nnz);
    if (!throughput_widths.empty()) throughput_sweep(c, throughput_widths, epsilon);
    std::printf("\npeak RSS of the run: %s\n", gigabytes(peak_rss()).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_mlp: %s\n", e.what());
    return 1;
  }
  return 0;
}
