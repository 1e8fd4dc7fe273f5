// The state of a network that a checkpoint holds so that training continues exactly as if it
// had never stopped: every layer's CSR pattern and values (or dense weights) and biases, the
// other layers' parameters (batch norm's γ, β; SReLU's t) and statistics (running mean and
// variance), the optimizer state aligned with each array, the positions a sparse layer ever
// held (its ITOP rate) and its removed inputs (feature selection), and the counters that seed
// every random stream (optimizer steps, topology updates, each dropout layer's calls).
// Everything else a network holds is either fixed by its options (rebuilt from them) or
// derived (Wᵀ, MKL handles, gradients, buffers).
//
// for_each_state(m, f) calls f(name, ref) once per item, in a fixed order, where ref is one of
//   avector<T>&, std::vector<index_t>&, std::vector<std::int64_t>&, std::vector<std::uint16_t>&,
//   std::vector<std::uint8_t>&
//     an array whose size may vary (a pattern's indices, optimizer moments, ...);
//   state_span<T>   an array of fixed size (a bias, γ, running statistics);
//   std::int64_t&, std::uint64_t&   a counter.
// Saving reads through ref; loading writes through it and then calls state_loaded(m), which
// checks every array against the others and rebuilds what is derived from the patterns.
#pragma once

#include <string>

#include "truesparse/network.h"

namespace truesparse {

template <class T>
struct state_span {
  T* data;
  size_type size;
};

namespace detail {

template <class T, class F>
void for_each_optimizer_state(const std::string& prefix, optimizer_state<T>& s, F&& f) {
  f(prefix + ".m", s.m);
  f(prefix + ".v", s.v);
  f(prefix + ".age", s.age);
  f(prefix + ".steps", s.steps);
}

// An optimizer array is either absent (that optimizer does not use it) or aligned with n values.
template <class V>
void check_aligned(const V& v, size_type n, const std::string& name) {
  TS_REQUIRE(v.empty() || static_cast<size_type>(v.size()) == n, "[load] ", name, " has ", v.size(),
             " entries; it must be empty or have ", n);
}

template <class T>
void check_optimizer_state(const optimizer_state<T>& s, size_type n, const std::string& prefix) {
  check_aligned(s.m, n, prefix + ".m");
  check_aligned(s.v, n, prefix + ".v");
  check_aligned(s.age, n, prefix + ".age");
  TS_REQUIRE(s.steps >= 0, "[load] ", prefix, ".steps is negative (", s.steps, ")");
}

}  // namespace detail

template <class T, class F>
void for_each_state(network<T>& m, F&& f) {
  f(std::string("network.steps"), m.steps);
  f(std::string("network.topology_updates"), m.topology_updates);
  for (std::size_t i = 0; i < m.modules.size(); ++i) {
    const std::string prefix = "modules." + std::to_string(i);
    layer<T>& module = *m.modules[i];
    if (auto* linear = dynamic_cast<linear_layer<T>*>(&module)) {
      if (auto* sparse = linear->as_sparse()) {
        f(prefix + ".indptr", sparse->pattern.indptr);
        f(prefix + ".indices", sparse->pattern.indices);
        f(prefix + ".W", sparse->W);
        f(prefix + ".ever_active", sparse->ever_active);
        f(prefix + ".excluded_inputs", sparse->excluded_inputs);
      } else {
        auto* dense = static_cast<dense_linear<T>*>(linear);
        f(prefix + ".W", state_span<T>{dense->W.data(), static_cast<size_type>(dense->W.size())});
      }
      f(prefix + ".b", state_span<T>{linear->b.data(), static_cast<size_type>(linear->out)});
      detail::for_each_optimizer_state(prefix + ".W", linear->sW, f);
      detail::for_each_optimizer_state(prefix + ".b", linear->sb, f);
      continue;
    }
    for (auto& p : module.parameters()) {
      const std::string name = prefix + "." + p.name;
      f(name, state_span<T>{p.value, p.size});
      detail::for_each_optimizer_state(name, *p.state, f);
    }
    for (auto& s : module.statistics()) f(prefix + "." + s.name, state_span<T>{s.value, s.size});
    if (auto* dropout = dynamic_cast<dropout_layer<T>*>(&module)) f(prefix + ".calls", dropout->calls);
  }
}

// After for_each_state wrote a state into m: checks that the arrays agree with each other and
// rebuilds what derives from each sparse pattern. Throws std::invalid_argument ("[load] ...")
// naming the first array that is wrong; m must then be discarded.
template <class T>
void state_loaded(network<T>& m) {
  TS_REQUIRE(m.steps >= 0, "[load] network.steps is negative (", m.steps, ")");
  for (std::size_t i = 0; i < m.modules.size(); ++i) {
    const std::string prefix = "modules." + std::to_string(i);
    layer<T>& module = *m.modules[i];
    if (auto* linear = dynamic_cast<linear_layer<T>*>(&module)) {
      if (auto* sparse = linear->as_sparse()) {
        csr_pattern p = sparse->pattern;
        validate(p, "load] [" + prefix);
        TS_REQUIRE(static_cast<size_type>(sparse->W.size()) == p.nnz(), "[load] ", prefix, ".W has ",
                   sparse->W.size(), " values for ", p.nnz(), " stored positions");
        const auto& ever = sparse->ever_active;
        const std::int64_t positions = static_cast<std::int64_t>(p.rows) * p.cols;
        for (std::size_t k = 0; k < ever.size(); ++k)
          TS_REQUIRE(ever[k] >= 0 && ever[k] < positions && (k == 0 || ever[k - 1] < ever[k]), "[load] ",
                     prefix, ".ever_active must be increasing positions in [0, ", positions, ")");
        const auto& excluded = sparse->excluded_inputs;
        TS_REQUIRE(excluded.empty() || static_cast<index_t>(excluded.size()) == p.cols, "[load] ", prefix,
                   ".excluded_inputs has ", excluded.size(), " entries; it must be empty or have ", p.cols);
        for (index_t j : p.indices)
          TS_REQUIRE(excluded.empty() || !excluded[j], "[load] ", prefix, " holds a weight in removed input ",
                     j);
        avector<T> values = sparse->W;
        sparse->replace_topology(std::move(p), std::move(values));
      }
      detail::check_optimizer_state(linear->sW, linear->nnz(), prefix + ".W");
      detail::check_optimizer_state(linear->sb, linear->out, prefix + ".b");
      linear->values_changed();
      continue;
    }
    for (auto& p : module.parameters())
      detail::check_optimizer_state(*p.state, p.size, prefix + "." + p.name);
  }
}

}  // namespace truesparse
