// Synchronous data-parallel training, independent of MPI (docs/distributed.md). Every rank
// holds the same network; each step, each rank computes the gradient of its slice of the
// global batch, and ONE all-reduce of a flat buffer of the trainable gradients sums them, so
// that every rank applies the same optimizer step. The caller supplies the all-reduce (the
// Python package: mpi4py); nothing here knows about MPI.
//
// The buffer (gradient_buffer), T values, in module order:
//   linear layer     DW (sparse: its nnz stored positions; dense: K·D), then Db (K)
//   other layers     the gradient of each trainable parameter, in parameters() order (affine
//                    and batch norm: γ, β (D each); SReLU: t (4)), then each running
//                    statistic, in statistics() order (batch norm: mean, variance (D each))
//   tail (5 values)  loss sum, correct count, example count, stop requests, failures
// Gradients and statistics are packed multiplied by the local example count n_r (the network
// holds the gradient of the local batch MEAN), summed, and divided by the summed count N: the
// result is the gradient of the global batch mean whatever the split, also when a rank's slice
// is empty (it packs zeros and n_r = 0). The running statistics become the n_r-weighted mean of
// the ranks' statistics, so they stay identical on every rank. Bytes per step:
//   sizeof(T) · (Σ nnz + Σ biases + Σ other parameters + Σ statistics + 5)
// proportional to the stored weights: never K·D for a sparse layer.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "truesparse/network.h"
#include "truesparse/topology.h"

namespace truesparse {

// How this process takes part in data-parallel training.
//   full data (sharded = false): every rank holds the whole data set and the same shuffle; of
//     each global batch [s, s + B) rank r takes the rows [s + ⌊B r/P⌋, s + ⌊B (r+1)/P⌋).
//   sharded: each rank holds its own shard and takes consecutive local batches of it; the
//     global batch is the concatenation of the ranks' local batches, in rank order.
// allreduce_sum(buffer, n) must sum buffer[0 .. n) over all ranks, in place, and give every
// rank bitwise the same sums (MPI_Allreduce does in practice; a reduce to one rank followed
// by a broadcast guarantees it). Every rank calls it the same number of times, with the same
// n, in the same order; an exception from it stops the epoch (train_epoch).
template <class T>
struct data_parallel {
  int rank = 0, size = 1;
  bool sharded = false;
  // Sharded: the steps of one epoch, the same on every rank (the largest ⌈M_r / batch⌉ over
  // the ranks): a rank whose shard has ended takes part with empty slices. 0: the local
  // ⌈M_r / batch⌉, which must then be the same on every rank.
  std::int64_t steps = 0;
  std::function<void(T* buffer, std::size_t n)> allreduce_sum;
};

template <class T>
void validate(const data_parallel<T>& dp, const char* op) {
  TS_REQUIRE(dp.size >= 1, "[", op, "] the number of ranks must be >= 1, got ", dp.size);
  TS_REQUIRE(dp.rank >= 0 && dp.rank < dp.size, "[", op, "] rank must be in [0, ", dp.size, "), got ",
             dp.rank);
  TS_REQUIRE(static_cast<bool>(dp.allreduce_sum), "[", op, "] data-parallel training needs an all-reduce");
  TS_REQUIRE(dp.steps >= 0, "[", op, "] steps must be >= 0, got ", dp.steps);
}

// Rank r's part [first, last) of a batch of B examples split over P ranks: ⌊B r/P⌋, ⌊B (r+1)/P⌋.
inline std::pair<size_type, size_type> rank_slice(size_type B, int rank, int size) {
  return {B * rank / size, B * (rank + 1) / size};
}

// Raised on the ranks that did not fail themselves when another rank's step failed.
struct peer_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The flat all-reduce buffer of a network's gradients (layout at the top of this file).
template <class T>
class gradient_buffer {
 public:
  enum slot : std::size_t { loss_sum_slot, correct_slot, examples_slot, stops_slot, failures_slot };
  static constexpr std::size_t tail = 5;

  // Number of values of the buffer of m (its gradients and statistics, plus the tail).
  static std::size_t size_of(network<T>& m) {
    std::size_t n = tail;
    for (auto& module : m.modules) {
      if (auto* L = dynamic_cast<linear_layer<T>*>(module.get())) {
        n += static_cast<std::size_t>(L->nnz()) + L->b.size();
        continue;
      }
      for (auto& p : module->parameters()) n += static_cast<std::size_t>(p.size);
      for (auto& s : module->statistics()) n += static_cast<std::size_t>(s.size);
    }
    return n;
  }

  // Fills the buffer: every gradient and statistic times n_local (zeros when n_local is 0:
  // the network's arrays are then not read), the local loss sum and correct count, n_local,
  // and whether this rank asks to stop or has failed.
  void pack(network<T>& m, size_type n_local, double loss_sum, size_type correct, bool stop, bool failed) {
    buf_.resize(size_of(m));
    const T w = static_cast<T>(n_local);
    T* out = buf_.data();
    auto put = [&](const T* a, std::size_t n) {
      if (n_local == 0)
        std::fill(out, out + n, T(0));
      else
        for (std::size_t i = 0; i < n; ++i) out[i] = w * a[i];
      out += n;
    };
    for (auto& module : m.modules) {
      if (auto* L = dynamic_cast<linear_layer<T>*>(module.get())) {
        put(L->gradient(), static_cast<std::size_t>(L->nnz()));
        put(L->Db.data(), L->Db.size());
        continue;
      }
      for (auto& p : module->parameters()) put(p.gradient, static_cast<std::size_t>(p.size));
      for (auto& s : module->statistics()) put(s.value, static_cast<std::size_t>(s.size));
    }
    out[loss_sum_slot] = n_local == 0 ? T(0) : static_cast<T>(loss_sum);
    out[correct_slot] = n_local == 0 ? T(0) : static_cast<T>(correct);
    out[examples_slot] = w;
    out[stops_slot] = stop ? T(1) : T(0);
    out[failures_slot] = failed ? T(1) : T(0);
  }

  // After the all-reduce: every gradient and statistic of m := its summed value / examples().
  // Needs examples() > 0.
  void unpack(network<T>& m) const {
    const T inv = static_cast<T>(1.0 / static_cast<double>(examples()));
    const T* in = buf_.data();
    auto get = [&](T* a, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) a[i] = in[i] * inv;
      in += n;
    };
    for (auto& module : m.modules) {
      if (auto* L = dynamic_cast<linear_layer<T>*>(module.get())) {
        get(L->gradient(), static_cast<std::size_t>(L->nnz()));
        get(L->Db.data(), L->Db.size());
        continue;
      }
      for (auto& p : module->parameters()) get(p.gradient, static_cast<std::size_t>(p.size));
      for (auto& s : module->statistics()) get(s.value, static_cast<std::size_t>(s.size));
    }
  }

  T* data() { return buf_.data(); }
  std::size_t size() const { return buf_.size(); }
  // Only the tail: the loss, count and flag slots, for an all-reduce without gradients
  // (evaluate, and a rank that fails before its first step).
  void pack_tail(double loss_sum, size_type correct, size_type examples, bool stop, bool failed) {
    buf_.assign(tail, T(0));
    at(loss_sum_slot) = static_cast<T>(loss_sum);
    at(correct_slot) = static_cast<T>(correct);
    at(examples_slot) = static_cast<T>(examples);
    at(stops_slot) = stop ? T(1) : T(0);
    at(failures_slot) = failed ? T(1) : T(0);
  }

  double loss_sum() const { return static_cast<double>(at(loss_sum_slot)); }
  size_type correct() const { return count(correct_slot); }
  size_type examples() const { return count(examples_slot); }
  size_type stops() const { return count(stops_slot); }
  size_type failures() const { return count(failures_slot); }

 private:
  T& at(std::size_t s) { return buf_[buf_.size() - tail + s]; }
  const T& at(std::size_t s) const { return buf_[buf_.size() - tail + s]; }
  size_type count(std::size_t s) const { return static_cast<size_type>(std::llround(at(s))); }

  avector<T> buf_;
};

// Values per all-reduce: per training step (gradient_buffer::size_of) and per RigL update
// (Σ K·D over the sparse layers: the dense gradient panels).
template <class T>
std::size_t rigl_allreduce_size(network<T>& m) {
  std::size_t n = 0;
  for (std::size_t l = 0; l < m.layers.size(); ++l)
    if (auto* L = m.sparse_layer(l)) n += static_cast<std::size_t>(L->out) * static_cast<std::size_t>(L->in);
  return n;
}

// Sets the column offset of every dropout layer (the first column of this rank's slice in the
// global batch; dropout_layer in layers.h).
template <class T>
void set_dropout_offset(network<T>& m, std::uint64_t offset) {
  for (auto& module : m.modules)
    if (auto* dropout = dynamic_cast<dropout_layer<T>*>(module.get())) dropout->column_offset = offset;
}

// What a training forward would change in a rank whose slice is empty: each dropout layer's
// call counter, so that the next step's masks still come from the same streams on every rank.
template <class T>
void skip_forward(network<T>& m) {
  for (auto& module : m.modules)
    if (auto* dropout = dynamic_cast<dropout_layer<T>*>(module.get()))
      if (dropout->p > 0) ++dropout->calls;
}

// One RigL update of every sparse layer with drop fraction f from the gradient of the global
// batch: each panel of the dense gradient DZ Xᵀ of this rank's slice (n_local examples, whose
// forward_backward has just run with input X; zeros when the slice is empty) is multiplied by
// n_local, summed over the ranks and divided by the global count N before the top-k, so the
// drop and the growth are identical on every rank and equal to one process's. Every layer's
// change is chosen (with all its all-reduces: Σ K·D values) before any layer changes, so an
// all-reduce that throws leaves the network as it was. DW on the new pattern: the summed DW
// for survivors, the summed panel for grown entries (rigl_gradient_after).
template <class T>
std::vector<topology_record> rigl_update_model(network<T>& m, const matrix<T>& X, double f,
                                               const data_parallel<T>& dp, size_type n_local, size_type N) {
  TS_REQUIRE(f >= 0 && f <= 1, "[RigL] drop fraction must be in [0, 1], got ", f);
  const T w = static_cast<T>(n_local), inv = static_cast<T>(1.0 / static_cast<double>(N));
  std::vector<std::size_t> sparse;
  std::vector<rigl_change<T>> changes;
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    auto* L = m.sparse_layer(l);
    if (!L) continue;
    const matrix<T>* DZ = n_local > 0 ? &m.layer_output_gradient(l) : nullptr;
    const matrix<T>* Xl = n_local > 0 ? &m.layer_input(l, X) : nullptr;
    const size_type D = L->in;
    gradient_panel<T> panel = [&](size_type i0, size_type rows, T* G) {
      const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(D);
      if (n_local > 0) {
        batch_gradient_panel(*DZ, *Xl)(i0, rows, G);
        for (std::size_t e = 0; e < n; ++e) G[e] *= w;
      } else {
        std::fill(G, G + n, T(0));
      }
      dp.allreduce_sum(G, n);
      for (std::size_t e = 0; e < n; ++e) G[e] *= inv;
    };
    changes.push_back(rigl_select(*L, f, panel));
    sparse.push_back(l);
  }
  std::vector<topology_record> records;
  for (std::size_t s = 0; s < sparse.size(); ++s) {
    auto& L = *m.sparse_layer(sparse[s]);
    avector<T> DW = rigl_gradient_after(L, changes[s]);
    records.push_back(rigl_apply(L, changes[s]));
    std::copy(DW.begin(), DW.end(), L.gradient());
    records.back().layer = sparse[s];
    records.back().step = m.steps;
  }
  ++m.topology_updates;
  return records;
}

}  // namespace truesparse
