// The memory a network needs, estimated before anything is allocated, and the checks that
// refuse what cannot be built: a layer whose sizes or number of stored weights do not fit the
// 32-bit indices of its CSR arrays (index_t, MKL LP64), and a model, or a training run, that
// needs more memory than this process can get. network's constructor runs check_network_fits
// before it allocates any layer; fit calls check_training_fits before its first step.
//
// What a network holds, in bytes (T = sizeof the value type: 4 for float32, 8 for float64;
// I = sizeof(index_t) = 4). A sparse linear layer of K outputs and D inputs with density d
// stores nnz = max(1, round(d K D)) weights (nnz_for_density):
//   values       W, aligned with the pattern                          nnz T
//   gradients    Db (allocated with the layer); a sparse layer's DW   K T
//                (nnz T) is allocated when first needed: training
//                with plain SGD fuses the weight update into the
//                SDDMM and never needs it (training_memory below)
//   biases       b                                                    K T
//   indices      column indices and row pointers                      nnz I + (K + 1) I
//   transposes   Wᵀ, for DX in backward (every linear layer that is   nnz 2 I + (D + 1) I
//                not the network's first module): its column indices  (+ nnz T with the
//                and row pointers, the permutation into W; the mkl    mkl backend)
//                backend also keeps a copy of its values
//   ever_active  the positions ever held (ITOP rate), 8 bytes each; empty until the layer's
//                first topology change, then at least nnz positions
// A dense linear layer: values K D T, gradients K D T + K T, biases K T. Other modules:
// affine 4 D T (γ, β and their gradients); batch norm 7 D T (those and the running mean,
// running variance and 1/std); activation, softmax, log-softmax, dropout and SReLU hold nothing
// that grows with the model (dropout's mask and batch norm's normalised input are batch
// buffers, below).
//
// Building a sparse layer first draws its nnz positions (sample_positions): m = min(nnz, KD −
// nnz) draws of 16 bytes, oversampled by 1/8, a copy of them sorted by draw order, and the m
// chosen positions of 8 bytes, twice while that array grows; when nnz > KD/2 the complement's
// nnz positions follow while the draws are still held. So while layer l is built the process
// holds the layers before it plus
//   build_transient(l) = max(2 · 16 (1.125 m + 16) + 16 m,  [nnz > KD/2:] 16 (1.125 m + 16) + 8 m + 8 nnz)
// (about 52 bytes per stored weight of a sparse layer; the drawn positions are freed when the
// layer is built). The model needs max(held, max_l (held before l + build_transient(l))).
//
// What training adds for batches of B examples (training_memory), beyond what the network
// holds already (a second fit with the same settings needs nothing more):
//   weight gradients  a sparse layer's DW (nnz T) unless the optimizer is plain SGD without
//                topology evolution (its update is fused into the SDDMM: no DW at all)
//   optimizer    SGD with momentum: one moment per stored weight, bias and module parameter
//                (T each); Adam/AdamW: two; new-weight warm-up: a 2-byte age per entry too
//   activations  every module's output Y[m] (outputs × N T) and its gradient D[m] (outputs × B
//                T; none for an activation whose backward is fused into the next layer's,
//                network::gradient_unused); a sparse layer whose activation is fused into
//                its forward keeps its output only in training (outputs × B T), and none where
//                the activation's backward is fused too (network::drops_preactivation), only
//                its signs for the ReLU family (outputs × ⌈B/64⌉ × 8 bytes); batch norm's
//                normalised input (D × N T) and dropout's mask (D × B T), where
//                N = max(B, the largest forward-only batch: validation, predict, 1000 at most);
//                these buffers keep their largest size; with operand_dtype bfloat16, every
//                sparse layer's bfloat16 copies of its input (D × bf16_ld(N) × 2) and of its
//                output gradient (K × bf16_ld(B) × 2), and no float ones that only these copies
//                are read from (network::float_activation_unused, float_gradient_unused)
//   batch        the gathered batch (inputs × N T), its labels (4 B) or dense targets
//                (outputs × N T), the loss's per-example scratch (9 N), the shuffled order of
//                the training examples (8 each)
//   evolution    SET/RigL: the positions ever held (8 bytes per position; the first update
//                stores the nnz positions before it and merges those after it into room for
//                2 nnz: 16 bytes per stored weight of every sparse layer, growing by 8 bytes per
//                position grown for the first time later) and, while the largest sparse layer
//                is rebuilt, a second copy of its indices, values and optimizer moments, its
//                drop candidates (T + 4 bytes each, 8 for float32) and changed positions (8);
//                RigL's gradient panel (2^20 T)
// The data set itself and what Python allocates around fit (a float copy of X, the history) are
// not counted.
//
// The memory this process can get (available_memory): MemAvailable + SwapFree of
// /proc/meminfo (sysconf's total physical memory where /proc/meminfo cannot be read), and, when
// a cgroup memory limit is set (v2 memory.max, v1 memory.limit_in_bytes, on the cgroup of this
// process and its ancestors), at most that limit minus the cgroup's usage plus its page cache
// (reclaimable), plus the swap the cgroup may still use. Where none of these can be read the
// memory checks are skipped (read_available_memory().known is false). Setting the environment
// variable TRUESPARSE_MEMORY_CHECK=0 skips them too (the 32-bit index checks always run).
//
// This file is included at the end of network.h (which declares check_network_fits before
// network's constructor uses it); it may be included on its own as well.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "truesparse/network.h"

namespace truesparse {

// A layer's sizes: the rows + 1 row pointers of W and of Wᵀ are counted in index_t.
constexpr size_type max_layer_size = std::numeric_limits<index_t>::max() - 1;
// A CSR layer's stored weights: indptr[rows] = nnz is an index_t.
constexpr size_type max_layer_nnz = std::numeric_limits<index_t>::max();

// n with thousands separators: 245,000,000,000.
inline std::string with_commas(long long n) {
  std::string digits = std::to_string(n < 0 ? -static_cast<unsigned long long>(n) : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// Bytes for messages: gigabytes (10^9) from 0.01 GB on ("1,234.5 GB", "3.25 GB", "0.04 GB"),
// megabytes below that ("2.50 MB"), bytes below 0.01 MB.
inline std::string gigabytes(double bytes) {
  if (bytes < 1e4) return with_commas(std::llround(bytes)) + " bytes";
  const bool mb = bytes < 0.995e7;
  const double x = bytes / (mb ? 1e6 : 1e9);
  const int decimals = x >= 10 ? 1 : 2;
  const double scale = decimals == 1 ? 10.0 : 100.0;
  const double rounded = std::round(x * scale) / scale;
  const auto whole = static_cast<long long>(rounded);
  char frac[8];
  std::snprintf(frac, sizeof frac, "%0*lld", decimals,
                static_cast<long long>(std::llround((rounded - static_cast<double>(whole)) * scale)));
  return with_commas(whole) + "." + frac + (mb ? " MB" : " GB");
}

// Bytes by what holds them (see the top of this file). Doubles: a refused model's figures may
// exceed 2^63; counts below 2^53 (every model that can be built) are exact.
struct memory_terms {
  double values = 0, gradients = 0, biases = 0, indices = 0, transposes = 0, ever_active = 0,
         modules = 0;                                               // held by the network
  double optimizer = 0, activations = 0, batch = 0, evolution = 0;  // added by training
  double weight_gradients = 0;  // sparse layers' DW, allocated by a training run that needs it

  double model() const { return values + gradients + biases + indices + transposes + ever_active + modules; }
  double training() const { return optimizer + weight_gradients + activations + batch + evolution; }
  double total() const { return model() + training(); }
  memory_terms& operator+=(const memory_terms& o) {
    values += o.values;
    gradients += o.gradients;
    biases += o.biases;
    indices += o.indices;
    transposes += o.transposes;
    ever_active += o.ever_active;
    modules += o.modules;
    optimizer += o.optimizer;
    weight_gradients += o.weight_gradients;
    activations += o.activations;
    batch += o.batch;
    evolution += o.evolution;
    return *this;
  }
};

// Held by a sparse linear layer (K,D) with nnz stored weights (ever_active not included).
inline memory_terms sparse_layer_memory(size_type K, size_type D, size_type nnz, bool keep_transpose,
                                        std::size_t value_bytes, bool transposed_values) {
  const double T = static_cast<double>(value_bytes), I = sizeof(index_t), n = static_cast<double>(nnz);
  const double k = static_cast<double>(K), d = static_cast<double>(D);
  memory_terms m;
  m.values = n * T;
  m.gradients = k * T;
  m.biases = k * T;
  m.indices = n * I + (k + 1) * I;
  if (keep_transpose) m.transposes = n * (2 * I + (transposed_values ? T : 0.0)) + (d + 1) * I;
  return m;
}

// Held by a dense linear layer (K,D).
inline memory_terms dense_layer_memory(size_type K, size_type D, std::size_t value_bytes) {
  const double T = static_cast<double>(value_bytes), k = static_cast<double>(K);
  memory_terms m;
  m.values = k * static_cast<double>(D) * T;
  m.gradients = m.values + k * T;
  m.biases = k * T;
  return m;
}

// The transient of drawing a sparse layer's nnz positions among KD (sample_positions).
inline double build_transient(size_type K, size_type D, size_type nnz) {
  const double n = static_cast<double>(K) * static_cast<double>(D), k = static_cast<double>(nnz);
  const bool complement = k > n / 2;
  const double m = complement ? n - k : k;
  const double draws = 16 * (1.125 * m + 16);
  return std::max(2 * draws + 16 * m, complement ? draws + 8 * m + 8 * k : 0.0);
}

// One module of a network as its options describe it, with its memory.
struct planned_module {
  layer_kind kind = layer_kind::linear;
  size_type in = 0, out = 0;  // widths (a linear layer: D inputs, K outputs)
  std::size_t layer = 0;      // linear: index among the linear layers
  double density = 1.0;       // linear
  size_type nnz = 0;          // linear: stored weights (K D for a dense layer)
  bool sparse = false, keep_transpose = false;
  memory_terms held;
  double transient = 0;  // bytes held only while the module is built
};

// The modules of options o as the network would build them (o must be valid: validate(o)).
// Throws std::invalid_argument, before anything is allocated, for a size or a number of stored
// weights that does not fit the 32-bit indices.
inline std::vector<planned_module> plan_modules(const network_options& o, std::size_t value_bytes) {
  const std::string& op = o.name;
  TS_REQUIRE(o.inputs <= max_layer_size, "[", op, "] the model has ", with_commas(o.inputs),
             " inputs; a layer has at most ", with_commas(max_layer_size),
             " inputs or outputs (32-bit indices)");
  std::vector<planned_module> plan;
  size_type width = o.inputs;
  std::size_t linear = 0;
  for (std::size_t m = 0; m < o.layers.size(); ++m) {
    const layer_spec& s = o.layers[m];
    planned_module p;
    p.kind = s.kind;
    p.in = width;
    p.out = width;
    const double T = static_cast<double>(value_bytes), D = static_cast<double>(width);
    switch (s.kind) {
      case layer_kind::linear: {
        p.layer = linear++;
        p.out = s.size;
        p.density = s.density;
        TS_REQUIRE(s.size <= max_layer_size, "[", op, "] layer ", p.layer, " has ", with_commas(s.size),
                   " outputs; a layer has at most ", with_commas(max_layer_size),
                   " inputs or outputs (32-bit indices)");
        const auto K = static_cast<index_t>(s.size), Din = static_cast<index_t>(width);
        p.sparse = s.density < 1;
        if (p.sparse) {
          p.nnz = nnz_for_density(s.density, Din, K);
          const double positions = static_cast<double>(K) * static_cast<double>(Din);
          TS_REQUIRE(p.nnz <= max_layer_nnz, "[", op, "] layer ", p.layer, " (", K, " × ", Din, ", density ",
                     s.density, ") would store ", with_commas(p.nnz), " weights; a CSR layer holds at most ",
                     with_commas(max_layer_nnz),
                     " (32-bit indices), so at this shape its density can be at most ",
                     static_cast<double>(max_layer_nnz) / positions);
          p.keep_transpose = m > 0;
          p.held = sparse_layer_memory(K, Din, p.nnz, p.keep_transpose, value_bytes,
                                       o.backend == sparse_backend::mkl);
          p.transient = build_transient(K, Din, p.nnz);
        } else {
          p.nnz = static_cast<size_type>(K) * Din;
          p.held = dense_layer_memory(K, Din, value_bytes);
        }
        width = s.size;
        break;
      }
      case layer_kind::affine: p.held.modules = 4 * D * T; break;
      case layer_kind::batch_norm: p.held.modules = 7 * D * T; break;
      default: break;  // activation, softmax, log_softmax, dropout, srelu: nothing that scales
    }
    plan.push_back(p);
  }
  return plan;
}

// The estimate of what a network built from o holds, and the most it needs while being built.
struct model_estimate {
  std::vector<planned_module> modules;
  memory_terms held;  // after construction
  double peak = 0;    // max(held, the largest of (held before layer l) + build_transient(l))
};

inline model_estimate estimate_model_memory(const network_options& o, std::size_t value_bytes) {
  model_estimate e;
  e.modules = plan_modules(o, value_bytes);
  for (const auto& p : e.modules) {
    e.peak = std::max(e.peak, e.held.model() + p.transient);
    e.held += p.held;
  }
  e.peak = std::max(e.peak, e.held.model());
  return e;
}

// ---- the memory this process can get ------------------------------------------------------------

struct available_memory {
  bool known = false;  // false: nothing could be read, the memory checks are skipped
  double bytes = 0;
  std::string source;  // what limits it, for messages
};

namespace detail {

inline bool read_text(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  return true;
}

// The first number of a file ("max" or a missing file: false).
inline bool read_number(const std::string& path, double& value) {
  std::string text;
  if (!read_text(path, text)) return false;
  std::istringstream s(text);
  long double v;
  if (!(s >> v)) return false;
  value = static_cast<double>(v);
  return true;
}

// The value of `key` in a "key value [kB]" file (/proc/meminfo, memory.stat), in bytes when
// the line says kB.
inline bool read_key(const std::string& text, const std::string& key, double& value) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream s(line);
    std::string name;
    long double v;
    if (!(s >> name >> v)) continue;
    if (!name.empty() && name.back() == ':') name.pop_back();
    if (name != key) continue;
    std::string unit;
    s >> unit;
    value = static_cast<double>(v) * (unit == "kB" ? 1024.0 : 1.0);
    return true;
  }
  return false;
}

// A cgroup limit at or above this is "no limit" (v1 writes 2^63 rounded down to a page).
constexpr double unlimited = 1e18;

// The memory a cgroup directory still allows (RAM: limit − usage + page cache; swap as allowed),
// or false when it sets no limit.
inline bool cgroup_room(const std::string& dir, bool v2, double swap_free, double& room) {
  double limit, usage, cache = 0;
  const std::string max_file = dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes");
  if (!read_number(max_file, limit) || limit >= unlimited) return false;
  if (!read_number(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"), usage)) usage = 0;
  std::string stat;
  if (read_text(dir + "/memory.stat", stat) && !read_key(stat, v2 ? "file" : "total_cache", cache))
    read_key(stat, "cache", cache);
  cache = std::min(cache, usage);
  double swap = swap_free, swap_limit, swap_usage;
  if (v2) {
    if (read_number(dir + "/memory.swap.max", swap_limit) && swap_limit < unlimited &&
        read_number(dir + "/memory.swap.current", swap_usage))
      swap = std::min(swap, std::max(0.0, swap_limit - swap_usage));
  } else if (read_number(dir + "/memory.memsw.limit_in_bytes", swap_limit) && swap_limit < unlimited &&
             read_number(dir + "/memory.memsw.usage_in_bytes", swap_usage)) {
    swap = std::min(swap, std::max(0.0, (swap_limit - limit) - (swap_usage - usage)));
  }
  room = std::max(0.0, limit - usage + cache) + swap;
  return true;
}

}  // namespace detail

// The memory this process can get now: the smaller of MemAvailable + SwapFree and what the
// cgroup limits of this process (and of its ancestor cgroups) still allow. The files are
// arguments so that tests can point them at a copy.
inline available_memory read_available_memory(const std::string& meminfo = "/proc/meminfo",
                                              const std::string& proc_cgroup = "/proc/self/cgroup",
                                              const std::string& cgroup_root = "/sys/fs/cgroup") {
  available_memory a;
  double swap_free = 0;
  std::string text;
  double mem_available;
  if (detail::read_text(meminfo, text) && detail::read_key(text, "MemAvailable", mem_available)) {
    detail::read_key(text, "SwapFree", swap_free);
    a.known = true;
    a.bytes = mem_available + swap_free;
    a.source = "available memory and free swap";
  } else {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {  // an upper bound: only models larger than the machine are refused
      a.known = true;
      a.bytes = static_cast<double>(pages) * static_cast<double>(page);
      a.source = "physical memory";
    }
  }
  // /proc/self/cgroup: "0::/path" (v2), "N:memory:/path" or "N:cpu,memory:/path" (v1).
  std::string cgroups;
  if (!detail::read_text(proc_cgroup, cgroups)) return a;
  std::istringstream lines(cgroups);
  std::string line;
  while (std::getline(lines, line)) {
    const auto c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    const bool v2 = controllers.empty();
    bool v1 = false;
    std::istringstream list(controllers);
    for (std::string name; std::getline(list, name, ',');) v1 = v1 || name == "memory";
    if (!v2 && !v1) continue;
    const std::string mount = v2 ? cgroup_root : cgroup_root + "/memory";
    if (v2 && !std::ifstream(mount + "/cgroup.controllers"))
      continue;  // v1 only: /sys/fs/cgroup is no v2 mount
    // The cgroup and its ancestors (where the path is not visible under the mount, as in a
    // container without a cgroup namespace, only the mount's own root).
    for (;;) {
      double room;
      if (detail::cgroup_room(mount + path, v2, swap_free, room) && (!a.known || room < a.bytes)) {
        a.known = true;
        a.bytes = room;
        a.source = "cgroup memory limit";
      }
      if (path.empty() || path == "/") break;
      const auto slash = path.find_last_of('/');
      path = slash == std::string::npos || slash == 0 ? std::string() : path.substr(0, slash);
    }
  }
  return a;
}

// Is the memory check on? (TRUESPARSE_MEMORY_CHECK=0 turns it off.)
inline bool memory_check_enabled() {
  const char* v = std::getenv("TRUESPARSE_MEMORY_CHECK");
  return !(v && std::string(v) == "0");
}

// Throws std::invalid_argument "[op] <what> needs about X GB<detail> but this process can use
// about Y GB (<source>)" when need > available; does nothing when available is unknown.
inline void check_memory(const std::string& op, const std::string& what, double need,
                         const std::string& detail, const available_memory& available) {
  if (!available.known || need <= available.bytes) return;
  throw std::invalid_argument(msg("[", op, "] ", what, " needs about ", gigabytes(need), detail,
                                  " but this process can use about ", gigabytes(available.bytes), " (",
                                  available.source, ")"));
}

// "weights 1.50 GB, gradients 1.50 GB, ...": the nonzero terms of m.
inline std::string memory_breakdown(const memory_terms& m) {
  const std::pair<const char*, double> terms[] = {{"weights", m.values},
                                                  {"gradients", m.gradients},
                                                  {"biases", m.biases},
                                                  {"indices", m.indices},
                                                  {"transposes", m.transposes},
                                                  {"positions ever held", m.ever_active},
                                                  {"other layers", m.modules},
                                                  {"optimizer state", m.optimizer},
                                                  {"weight gradients", m.weight_gradients},
                                                  {"activations and their gradients", m.activations},
                                                  {"batch buffers", m.batch},
                                                  {"topology evolution", m.evolution}};
  std::string out;
  for (const auto& [name, bytes] : terms)
    if (bytes > 0) out += std::string(out.empty() ? "" : ", ") + name + " " + gigabytes(bytes);
  return out;
}

// Every check of network_options that needs no allocation: sizes and stored weights within the
// 32-bit indices, and the memory the model needs within what this process can get. o must be
// valid otherwise (validate(o)). network's constructor calls this before it builds any layer:
//   [MLP] the model needs about 1,234.5 GB (weights ..., indices ..., transposes ...) but this
//   process can use about 21.3 GB (available memory and free swap)
inline void check_network_fits(const network_options& o, std::size_t value_bytes,
                               const available_memory& available) {
  const model_estimate e = estimate_model_memory(o, value_bytes);
  const std::string terms = memory_breakdown(e.held);
  const std::string detail = e.peak > e.held.model() ? " while it is built (it then holds " +
                                                           gigabytes(e.held.model()) + ": " + terms + ")"
                                                     : " (" + terms + ")";
  check_memory(o.name, "the model", e.peak, detail, available);
}

// The same against the memory this process can get now (unless TRUESPARSE_MEMORY_CHECK=0).
inline void check_network_fits(const network_options& o, std::size_t value_bytes) {
  check_network_fits(o, value_bytes, memory_check_enabled() ? read_available_memory() : available_memory{});
}

// ---- training -----------------------------------------------------------------------------------

// What a training run (fit) will do, as far as its memory is concerned.
struct training_plan {
  size_type batch_size = 1;
  optimizer_config optimizer;
  size_type examples = 0;    // training examples (their shuffled order: 8 bytes each)
  size_type eval_batch = 0;  // the largest forward-only batch (validation: min(1000, examples)); 0: none
  bool evolution = false;    // SET or RigL updates during the run
};

namespace detail {

// Bytes of a vector's allocation.
template <class V>
double capacity_bytes(const V& v) {
  return static_cast<double>(v.capacity()) * sizeof(typename V::value_type);
}

// Optimizer arrays for n entries beyond what state s holds.
template <class T>
double optimizer_extra(const optimizer_state<T>& s, size_type n, const optimizer_config& c) {
  const bool adam = c.kind != optimizer_kind::sgd;
  const int moments = adam ? 2 : (c.momentum > 0 ? 1 : 0);
  const double need_m = moments >= 1 ? static_cast<double>(n) * sizeof(T) : 0;
  const double need_v = moments >= 2 ? static_cast<double>(n) * sizeof(T) : 0;
  const double need_age = adam && c.new_weight_warmup > 0 ? static_cast<double>(n) * 2 : 0;
  return std::max(0.0, need_m - capacity_bytes(s.m)) + std::max(0.0, need_v - capacity_bytes(s.v)) +
         std::max(0.0, need_age - capacity_bytes(s.age));
}

template <class T>
double matrix_extra(const matrix<T>& a, size_type rows, size_type cols) {
  return std::max(0.0,
                  static_cast<double>(rows) * static_cast<double>(cols) * sizeof(T) - capacity_bytes(a.data));
}

}  // namespace detail

// The bytes the network holds now, counted from its arrays' allocations (the estimate of
// estimate_model_memory for a network just built from its options, exactly for the weight and
// index arrays; optimizer state and batch buffers come under the training terms).
template <class T>
memory_terms network_memory(const network<T>& net) {
  using detail::capacity_bytes;
  memory_terms m;
  for (const auto& module : net.modules) {
    if (const auto* L = dynamic_cast<const linear_layer<T>*>(module.get())) {
      m.biases += capacity_bytes(L->b);
      m.gradients += capacity_bytes(L->Db);
      for (const auto* s : {&L->sW, &L->sb})
        m.optimizer += capacity_bytes(s->m) + capacity_bytes(s->v) + capacity_bytes(s->age);
      if (const auto* S = dynamic_cast<const sparse_linear<T>*>(L)) {
        m.values += capacity_bytes(S->W);
        m.weight_gradients += capacity_bytes(S->DW);
        m.indices += capacity_bytes(S->pattern.indices) + capacity_bytes(S->pattern.indptr);
        if (S->keep_transpose)
          m.transposes += capacity_bytes(S->pattern_t.indices) + capacity_bytes(S->pattern_t.indptr) +
                          capacity_bytes(S->perm) + capacity_bytes(S->Wt);
        m.ever_active += capacity_bytes(S->ever_active);
        m.modules += capacity_bytes(S->excluded_inputs);
        m.activations += capacity_bytes(S->Xb.data) + capacity_bytes(S->DZb.data);
      } else if (const auto* Dn = dynamic_cast<const dense_linear<T>*>(L)) {
        m.values += capacity_bytes(Dn->W);
        m.gradients += capacity_bytes(Dn->DW);
      }
      continue;
    }
    if (const auto* A = dynamic_cast<const affine_layer<T>*>(module.get())) {
      m.modules += capacity_bytes(A->gamma) + capacity_bytes(A->beta) + capacity_bytes(A->Dgamma) +
                   capacity_bytes(A->Dbeta);
      for (const auto* s : {&A->s_gamma, &A->s_beta})
        m.optimizer += capacity_bytes(s->m) + capacity_bytes(s->v) + capacity_bytes(s->age);
      if (const auto* B = dynamic_cast<const batch_norm_layer<T>*>(A)) {
        m.modules +=
            capacity_bytes(B->running_mean) + capacity_bytes(B->running_var) + capacity_bytes(B->inv_std);
        m.activations += capacity_bytes(B->Z.data);
      }
    } else if (const auto* Dr = dynamic_cast<const dropout_layer<T>*>(module.get())) {
      m.activations += capacity_bytes(Dr->M.data);
    }
  }
  for (const auto& y : net.output_buffers()) m.activations += capacity_bytes(y.data);
  for (const auto& d : net.output_gradient_buffers()) m.activations += capacity_bytes(d.data);
  for (const auto& s : net.sign_buffers()) m.activations += capacity_bytes(s.data);
  return m;
}

// The bytes a training run adds to what the network holds now (the training terms of
// memory_terms; see the top of this file).
template <class T>
memory_terms training_memory(const network<T>& net, const training_plan& p) {
  TS_REQUIRE(p.batch_size > 0, "[fit] batch_size must be positive, got ", p.batch_size);
  const size_type B = p.batch_size, N = std::max(p.batch_size, p.eval_batch);
  const double Tb = sizeof(T);
  memory_terms m;
  size_type width = net.inputs();
  double largest_rebuild = 0, panel = 0;
  const auto& Y = net.output_buffers();
  const auto& Dm = net.output_gradient_buffers();
  for (std::size_t i = 0; i < net.modules.size(); ++i) {
    layer<T>* module = net.modules[i].get();
    const size_type out = module->outputs(width);
    if (auto* L = dynamic_cast<linear_layer<T>*>(module)) {
      m.optimizer += detail::optimizer_extra(L->sW, L->nnz(), p.optimizer) +
                     detail::optimizer_extra(L->sb, L->out, p.optimizer);
      // A sparse layer's DW: only when the weight update is not fused into the SDDMM (Adam,
      // AdamW; RigL reads it; counted for SET as well, to be safe).
      if (auto* S = L->as_sparse(); S && (p.optimizer.kind != optimizer_kind::sgd || p.evolution))
        m.weight_gradients +=
            std::max(0.0, static_cast<double>(S->nnz()) * Tb - detail::capacity_bytes(S->DW));
      if (auto* S = L->as_sparse(); S && S->bf16()) {  // its bfloat16 operand copies
        m.activations +=
            std::max(0.0, 2.0 * static_cast<double>(width * bf16_ld(N)) - detail::capacity_bytes(S->Xb.data));
        m.activations +=
            std::max(0.0, 2.0 * static_cast<double>(out * bf16_ld(B)) - detail::capacity_bytes(S->DZb.data));
      }
      if (auto* S = L->as_sparse(); S && p.evolution) {
        const double nnz = static_cast<double>(S->nnz());
        m.evolution += std::max(0.0, 16 * nnz - detail::capacity_bytes(S->ever_active));
        const bool adam = p.optimizer.kind != optimizer_kind::sgd;
        const double moments = adam ? 2 : (p.optimizer.momentum > 0 ? 1 : 0);
        const double drop_pair = sizeof(std::pair<T, index_t>);
        largest_rebuild =
            std::max(largest_rebuild, nnz * (sizeof(index_t) + Tb * (1 + moments) + drop_pair + 8));
        panel = 1048576 * Tb;
      }
    } else {
      for (auto& par : module->parameters())
        m.optimizer += detail::optimizer_extra(*par.state, par.size, p.optimizer);
      if (auto* Bn = dynamic_cast<batch_norm_layer<T>*>(module))
        m.activations += detail::matrix_extra(Bn->Z, width, N);
      if (auto* Dr = dynamic_cast<dropout_layer<T>*>(module); Dr && Dr->p > 0)
        m.activations += detail::matrix_extra(Dr->M, width, B);
    }
    // a float activation of which only the bfloat16 copy is kept (counted with layer i + 1); with
    // evolution counted, to be safe (RigL keeps it: network::keep_float_activations)
    const bool only_bf16_copy = i >= 1 && !p.evolution && net.float_activation_unused(i - 1, true) &&
                                net.float_activation_unused(i - 1, false);
    if (net.keeps_signs(i))  // (a training forward of a fused sparse layer keeps no Y[i])
      m.activations += std::max(0.0, 8.0 * static_cast<double>(out * ((B + 63) / 64)) -
                                         detail::capacity_bytes(net.sign_buffers()[i].data));
    else if (!net.drops_preactivation(i) && !only_bf16_copy)
      m.activations += detail::matrix_extra(Y[i], out, net.predict_keeps_output(i) ? N : B);
    // an output gradient of which only the bfloat16 copy is kept (with evolution counted, as above)
    if (!net.gradient_unused(i) && (p.evolution || !net.float_gradient_unused(i)))
      m.activations += detail::matrix_extra(Dm[i], out, B);
    width = out;
  }
  const bool dense_targets = net.loss == loss_kind::squared_error;
  m.batch = static_cast<double>(net.inputs()) * static_cast<double>(N) * Tb +
            (dense_targets ? static_cast<double>(width) * static_cast<double>(N) * Tb : 4.0 * B) + 9.0 * N +
            8.0 * static_cast<double>(p.examples);
  m.evolution += largest_rebuild + panel;
  return m;
}

// Refuses a training run that needs more memory than this process can get, with the figures:
// "[op] training needs about X GB more than the model holds (optimizer state ..., ...) but
// this process can use about Y GB (...)".
template <class T>
memory_terms check_training_fits(const network<T>& net, const training_plan& p, const std::string& op,
                                 const available_memory& available) {
  const memory_terms m = training_memory(net, p);
  check_memory(op, "training", m.training(), " more than the model holds (" + memory_breakdown(m) + ")",
               available);
  return m;
}

}  // namespace truesparse
