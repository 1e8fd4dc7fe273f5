// Tests of the memory estimates and checks (memory.h): layers beyond the 32-bit indices and
// models beyond the available memory are refused with their figures before anything large is
// allocated (the global operator new below records the largest allocation); the estimate of a
// built network equals its arrays' sizes; training's estimate equals what one epoch allocates;
// the available memory is read from /proc/meminfo and cgroup files.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>

#include "check.h"
#include "standard_mlp.h"
#include "truesparse/memory.h"
#include "truesparse/train.h"

using namespace truesparse;

// ---- the largest allocation while `recording` ----------------------------------------------------
static bool recording = false;
static std::size_t largest_allocation = 0;

static void* allocate(std::size_t n, std::size_t align) {
  if (recording) largest_allocation = std::max(largest_allocation, n);
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// The message of the std::invalid_argument f throws ("" if none).
template <class F>
static std::string refusal(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

static bool contains(const std::string& s, const std::string& part) {
  const bool found = s.find(part) != std::string::npos;
  if (!found) std::printf("  message: %s\n  lacks:   %s\n", s.c_str(), part.c_str());
  return found;
}

// Builds network<T>(o), recording the largest allocation; returns the refusal ("" if built).
template <class T>
static std::string build_recorded(const network_options& o) {
  largest_allocation = 0;
  recording = true;
  const std::string m = refusal([&] { network<T> net(o); });
  recording = false;
  return m;
}

static network_options one_layer(size_type inputs, size_type outputs, double density) {
  network_options o;
  o.inputs = inputs;
  layer_spec s;
  s.size = outputs;
  s.density = density;
  o.layers.push_back(s);
  return o;
}

TEST(formats) {
  CHECK(with_commas(0) == "0");
  CHECK(with_commas(999) == "999");
  CHECK(with_commas(1000) == "1,000");
  CHECK(with_commas(2147483647) == "2,147,483,647");
  CHECK(with_commas(-1234567) == "-1,234,567");
  CHECK(gigabytes(1234.54e9) == "1,234.5 GB");
  CHECK(gigabytes(21.3e9) == "21.3 GB");
  CHECK(gigabytes(3.254e9) == "3.25 GB");
  CHECK(gigabytes(0.04e9) == "0.04 GB");
  CHECK(gigabytes(9.999e9) == "10.00 GB");
  CHECK(gigabytes(0.0099e9) == "9.90 MB");
  CHECK(gigabytes(0.00996e9) == "0.01 GB");
  CHECK(gigabytes(2.5e6) == "2.50 MB");
  CHECK(gigabytes(512) == "512 bytes");
}

TEST(too_many_weights_for_32_bit_indices_is_refused_without_allocating) {
  // Layer 1, 700000 × 700000 at density 0.5: 245,000,000,000 weights (refused by the index
  // check; the memory check is not reached).
  network_options o = one_layer(784, 700000, 0.01);
  layer_spec a;
  a.kind = layer_kind::activation;
  o.layers.push_back(a);
  layer_spec big;
  big.size = 700000;
  big.density = 0.5;
  o.layers.push_back(big);
  o.name = "MLP";
  const std::string m = build_recorded<float>(o);
  CHECK(contains(m, "[MLP] layer 1 (700000 × 700000, density 0.5) would store 245,000,000,000 weights"));
  CHECK(contains(m, "a CSR layer holds at most 2,147,483,647 (32-bit indices)"));
  CHECK(largest_allocation < (1 << 20));
  // 10^7 × 10^7 at density 0.01: 10^12 weights; the default name.
  const std::string m2 = build_recorded<double>(one_layer(10000000, 10000000, 0.01));
  CHECK(contains(m2,
                 "[Sequential] layer 0 (10000000 × 10000000, density 0.01) would store "
                 "1,000,000,000,000 weights"));
  CHECK(largest_allocation < (1 << 20));
  // Just over the limit, and just under it (estimate only: 2^31 − 1 weights).
  const size_type side = 46341;  // 46341² = 2,147,488,281 > 2^31 − 1
  CHECK(contains(refusal([&] { estimate_model_memory(one_layer(side, side, 0.999999), 4); }),
                 "would store 2,147,486,134 weights"));
  CHECK(refusal([&] {
          estimate_model_memory(one_layer(side, side, 2147483647.0 / (side * side)), 4);
        }).empty());
}

TEST(sizes_beyond_32_bit_indices_are_refused) {
  const std::string inputs = build_recorded<float>(one_layer(3000000000LL, 10, 1.0));
  CHECK(contains(inputs,
                 "[Sequential] the model has 3,000,000,000 inputs; a layer has at most "
                 "2,147,483,646 inputs or outputs (32-bit indices)"));
  CHECK(largest_allocation < (1 << 20));
  network_options o = one_layer(10, 10, 1.0);
  layer_spec s;
  s.size = std::numeric_limits<index_t>::max();  // its rows + 1 row pointers do not fit
  s.density = 1e-12;
  o.layers.push_back(s);
  CHECK(contains(build_recorded<float>(o), "[Sequential] layer 1 has 2,147,483,647 outputs"));
  CHECK(largest_allocation < (1 << 20));
}

TEST(a_model_beyond_the_available_memory_is_refused_without_allocating) {
  // A dense 2,000,000 × 2,000,000 layer fits the indices (dense W has no CSR index) but needs
  // 4·10^12 weights and as many gradients: 32 TB in float32.
  network_options o = one_layer(2000000, 2000000, 1.0);
  o.name = "MLP";
  const available_memory some{true, 21.3e9, "available memory and free swap"};
  const std::string m = refusal([&] { check_network_fits(o, sizeof(float), some); });
  CHECK(contains(m, "[MLP] the model needs about 32,000.0 GB (weights 16,000.0 GB, gradients 16,000.0 GB"));
  CHECK(contains(m, "but this process can use about 21.3 GB (available memory and free swap)"));
  // What the process can really get: refused too (unless it cannot be read), before allocating.
  if (read_available_memory().known && memory_check_enabled()) {
    CHECK(contains(build_recorded<float>(o), "[MLP] the model needs about 32,000.0 GB"));
    CHECK(largest_allocation < (1 << 20));
  }
  // Unknown available memory: no memory check.
  CHECK(refusal([&] { check_network_fits(o, sizeof(float), available_memory{}); }).empty());
  // A sparse model that fits the indices but not 1 GB; its peak is the build of its layers.
  network_options s = testing::standard_mlp({20000, 20000, 20000, 10}, {0.5, 0.5, 1.0});
  const model_estimate e = estimate_model_memory(s, sizeof(float));
  CHECK(e.peak > e.held.model());
  const std::string ms =
      refusal([&] { check_network_fits(s, sizeof(float), {true, 1e9, "cgroup memory limit"}); });
  CHECK(contains(ms, "[Sequential] the model needs about " + gigabytes(e.peak) +
                         " while it is built (it then holds " + gigabytes(e.held.model()) + ": weights "));
  CHECK(contains(ms, "transposes"));
  CHECK(contains(ms, "but this process can use about 1.00 GB (cgroup memory limit)"));
  CHECK(refusal([&] { check_network_fits(s, sizeof(float), {true, e.peak, "x"}); }).empty());
}

template <class T>
static void check_estimate_is_exact(const network_options& o) {
  const model_estimate e = estimate_model_memory(o, sizeof(T));
  network<T> net(o);
  const memory_terms m = network_memory(net);
  CHECK(m.values == e.held.values);
  CHECK(m.gradients == e.held.gradients);
  CHECK(m.biases == e.held.biases);
  CHECK(m.indices == e.held.indices);
  CHECK(m.transposes == e.held.transposes);
  CHECK(m.modules == e.held.modules);
  CHECK(m.ever_active == 0 && e.held.ever_active == 0);
  CHECK(m.training() == 0);
  // The counts by hand for the sparse layers.
  std::size_t l = 0;
  for (const auto& p : e.modules) {
    if (p.kind != layer_kind::linear) continue;
    const auto& L = *net.layers[l++];
    CHECK(L.nnz() == p.nnz);
    CHECK(L.is_sparse() == p.sparse);
    if (auto* S = const_cast<linear_layer<T>&>(L).as_sparse()) {
      CHECK(S->keep_transpose == p.keep_transpose);
      CHECK(p.held.indices ==
            static_cast<double>(4 * S->pattern.indices.size() + 4 * S->pattern.indptr.size()));
    }
  }
}

TEST(the_estimate_of_a_built_network_is_its_arrays) {
  check_estimate_is_exact<float>(testing::standard_mlp({30, 40, 20, 5}, {0.3, 0.2, 1.0}));
  check_estimate_is_exact<double>(testing::standard_mlp({30, 40, 20, 5}, {1.0, 0.25, 0.5}));
  check_estimate_is_exact<float>(testing::standard_mlp({7, 9}, {0.5}));
  network_options o = testing::standard_mlp({16, 32, 8}, {0.9, 0.2});  // nnz > KD/2 in layer 0
  layer_spec bn, drop, aff, sr, soft;
  bn.kind = layer_kind::batch_norm;
  drop.kind = layer_kind::dropout;
  drop.p = 0.5;
  aff.kind = layer_kind::affine;
  sr.kind = layer_kind::srelu;
  soft.kind = layer_kind::softmax;
  o.layers.insert(o.layers.begin(), aff);  // the first linear layer is module 1: keeps Wᵀ
  o.layers.insert(o.layers.begin() + 2, bn);
  o.layers.insert(o.layers.begin() + 3, drop);
  o.layers.insert(o.layers.begin() + 4, sr);
  o.layers.push_back(soft);
  o.loss = loss_kind::cross_entropy;
  check_estimate_is_exact<float>(o);
  check_estimate_is_exact<double>(o);
}

TEST(the_build_transient_covers_drawing_the_positions) {
  // The largest allocation while a single sparse layer is built is within the estimate's
  // transient (the positions drawn are the biggest arrays).
  for (double d : {0.05, 0.3, 0.7}) {
    const network_options o = one_layer(300, 400, d);
    const model_estimate e = estimate_model_memory(o, sizeof(float));
    CHECK(build_recorded<float>(o).empty());
    CHECK(static_cast<double>(largest_allocation) <= e.modules[0].transient);
    CHECK(e.peak >= e.held.model());
  }
}

template <class T>
static void check_training_estimate(const network_options& o, const optimizer_config& c, size_type B) {
  network<T> net(o);
  const size_type M = 4 * B, D = net.inputs();
  std::vector<T> X(static_cast<std::size_t>(M * D));
  std::vector<std::int32_t> y(static_cast<std::size_t>(M));
  rng g(7);
  for (auto& x : X) x = static_cast<T>(g.normal());
  for (auto& v : y) v = static_cast<std::int32_t>(g.below(static_cast<std::uint64_t>(net.outputs())));
  training_plan p;
  p.batch_size = B;
  p.optimizer = c;
  p.examples = M;
  const memory_terms before = network_memory(net);
  const memory_terms est = training_memory(net, p);
  train_epoch(net, dataset<T>{X.data(), M, D, y.data(), nullptr, 0}, B, c, 1, 0, true);
  const memory_terms after = network_memory(net);
  CHECK(after.optimizer - before.optimizer == est.optimizer);
  CHECK(after.weight_gradients - before.weight_gradients == est.weight_gradients);
  CHECK((c.kind == optimizer_kind::sgd) == (est.weight_gradients == 0));  // fused SGD: no DW
  CHECK(after.activations - before.activations == est.activations);
  CHECK(after.model() == before.model());
  // A second run with the same plan needs nothing more than its batch buffers.
  const memory_terms again = training_memory(net, p);
  CHECK(again.optimizer == 0 && again.activations == 0 && again.weight_gradients == 0);
  CHECK(again.batch == est.batch);
  // A larger forward-only batch (validation) grows the output buffers.
  p.eval_batch = 1000;
  CHECK(training_memory(net, p).activations > 0);
}

TEST(the_training_estimate_is_what_an_epoch_allocates) {
  network_options o = testing::standard_mlp({30, 40, 20, 5}, {0.3, 0.2, 1.0});
  check_training_estimate<float>(o, sgd(0.01), 16);
  check_training_estimate<float>(o, sgd(0.01, 0.9), 16);
  optimizer_config adam;
  adam.kind = optimizer_kind::adam;
  adam.lr = 1e-3;
  check_training_estimate<double>(o, adam, 8);
  // bfloat16 operands: the copies counted, the float activations and output gradients that
  // only the copies are read from not (network::float_activation_unused, float_gradient_unused)
  network_options ob = testing::standard_mlp({30, 40, 20, 16, 5}, {0.3, 0.2, 0.4, 1.0});
  ob.operands = operand_dtype::bfloat16;
  check_training_estimate<float>(ob, sgd(0.01, 0.9), 16);
  check_training_estimate<float>(ob, adam, 12);
  adam.new_weight_warmup = 5;
  layer_spec bn, drop;
  bn.kind = layer_kind::batch_norm;
  drop.kind = layer_kind::dropout;
  drop.p = 0.2;
  o.layers.insert(o.layers.begin() + 1, bn);
  o.layers.insert(o.layers.begin() + 3, drop);
  check_training_estimate<float>(o, adam, 10);
}

TEST(training_beyond_the_available_memory_is_refused) {
  network<float> net(testing::standard_mlp({100, 200, 10}, {0.1, 1.0}));
  optimizer_config adam;
  adam.kind = optimizer_kind::adam;
  training_plan p;
  p.batch_size = 1000000;  // activations 200 × 10^6 floats, twice: 1.6 GB
  p.optimizer = adam;
  p.examples = 1000000;
  const memory_terms m = training_memory(net, p);
  CHECK(m.activations >= 1.6e9);
  const std::string msg =
      refusal([&] { check_training_fits(net, p, "MLP.fit", {true, 0.5e9, "cgroup memory limit"}); });
  CHECK(contains(msg, "[MLP.fit] training needs about " + gigabytes(m.training()) +
                          " more than the model holds (optimizer state "));
  CHECK(contains(msg, "activations and their gradients " + gigabytes(m.activations)));
  CHECK(contains(msg, "but this process can use about 0.50 GB (cgroup memory limit)"));
  CHECK(refusal([&] { check_training_fits(net, p, "fit", {true, 1e12, "x"}); }).empty());
  CHECK(refusal([&] { check_training_fits(net, p, "fit", available_memory{}); }).empty());
  p.batch_size = 0;
  CHECK_THROWS(training_memory(net, p));
}

TEST(normal_models_still_construct) {
  network<float> a(testing::standard_mlp({784, 1000, 1000, 10}, {0.05, 0.05, 1.0}));
  CHECK(a.layers.size() == 3);
  network<double> b(testing::standard_mlp({20, 64, 32, 3}, {0.3, 0.2, 1.0}));
  CHECK(b.outputs() == 3);
  CHECK(refusal([] {
          check_network_fits(testing::standard_mlp({784, 1000, 10}, {0.1, 1.0}), sizeof(float));
        }).empty());
  // The values are still checked first, with their own messages.
  CHECK(contains(refusal([] { network<float> n(one_layer(10, 0, 1.0)); }),
                 "[Linear] linear layer 0 has 0 outputs"));
  CHECK(contains(refusal([] { network<float> n(one_layer(10, 5, 1.5)); }),
                 "[Linear] density of layer 0 is 1.5"));
  network_options none;
  none.inputs = 3;
  CHECK(contains(refusal([&] { network<float> n(none); }), "[Sequential] the network has no linear layer"));
}

// ---- reading the available memory from files ------------------------------------------------------

static void write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

TEST(available_memory_from_meminfo_and_cgroups) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("ts_memory_" + std::to_string(::getpid()));
  fs::remove_all(root);
  write(
      root / "meminfo",
      "MemTotal:       24684084 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\nSwapFree:  1000000 kB\n");
  write(root / "cgroup_none", "0::/\n");
  const std::string meminfo = (root / "meminfo").string(), sys = (root / "sys").string();
  available_memory a = read_available_memory(meminfo, (root / "cgroup_none").string(), sys);
  CHECK(a.known && a.bytes == 21000000.0 * 1024 && a.source == "available memory and free swap");

  // cgroup v2: a limit of 8 GB with 3 GB used of which 1 GB page cache, 0.5 GB swap allowed;
  // its parent's 100 GB limit does not bind.
  write(root / "sys/cgroup.controllers", "memory\n");
  write(root / "sys/job/memory.max", "100000000000\n");
  write(root / "sys/job/memory.current", "0\n");
  write(root / "sys/job/task/memory.max", "8000000000\n");
  write(root / "sys/job/task/memory.current", "3000000000\n");
  write(root / "sys/job/task/memory.stat", "anon 2000000000\nfile 1000000000\n");
  write(root / "sys/job/task/memory.swap.max", "600000000\n");
  write(root / "sys/job/task/memory.swap.current", "100000000\n");
  write(root / "cgroup_v2", "0::/job/task\n");
  a = read_available_memory(meminfo, (root / "cgroup_v2").string(), sys);
  CHECK(a.known && a.bytes == 6e9 + 0.5e9 && a.source == "cgroup memory limit");
  write(root / "sys/job/task/memory.max", "max\n");  // no limit: the machine's figure
  a = read_available_memory(meminfo, (root / "cgroup_v2").string(), sys);
  CHECK(a.bytes == 21000000.0 * 1024);

  // cgroup v1 (memory controller listed with another), the path not visible under the mount
  // (a container): the mount's root limit applies; the "unlimited" value is no limit.
  fs::remove(root / "sys/cgroup.controllers");
  write(root / "sys/memory/memory.limit_in_bytes", "4000000000\n");
  write(root / "sys/memory/memory.usage_in_bytes", "1000000000\n");
  write(root / "sys/memory/memory.stat", "cache 500000000\nrss 500000000\ntotal_cache 250000000\n");
  write(root / "cgroup_v1", "5:cpuacct,memory:/docker/abc\n3:cpu:/\n");
  a = read_available_memory(meminfo, (root / "cgroup_v1").string(), sys);
  CHECK(a.known && a.bytes == 3.25e9 + 1000000.0 * 1024);
  write(root / "sys/memory/memory.limit_in_bytes", "9223372036854771712\n");
  a = read_available_memory(meminfo, (root / "cgroup_v1").string(), sys);
  CHECK(a.bytes == 21000000.0 * 1024);

  // No /proc/meminfo: sysconf's physical memory (where that fails too, the figure is unknown
  // and the memory checks are skipped).
  a = read_available_memory((root / "missing").string(), (root / "missing").string(), sys);
  CHECK(a.known && a.source == "physical memory" && a.bytes > 0);
  fs::remove_all(root);
}

TEST_MAIN()
