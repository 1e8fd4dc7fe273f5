// The training loop in C++ (shared by the Python package and the C++ benchmarks): shuffle,
// gather a feature-major batch, forward, loss, backward, optimize, and evolve the topology on
// schedule (SET, RigL). Data sets stay as the user gave them, row-major (M, D); only the batch
// is transposed, once, while gathering.
#pragma once

#include <functional>
#include <numeric>
#include <optional>

#include "truesparse/denormals.h"
#include "truesparse/network.h"
#include "truesparse/topology.h"

namespace truesparse {

// A data set in the user's layout: X (M,D) row-major; labels (M) or dense targets (M,K).
template <class T>
struct dataset {
  const T* X = nullptr;
  size_type M = 0;
  size_type D = 0;
  const std::int32_t* labels = nullptr;
  const T* targets = nullptr;  // (M,K) row-major, squared error only
  size_type K = 0;
};

struct epoch_result {
  double loss = 0.0;      // mean over examples seen
  double accuracy = 0.0;  // fraction of examples seen whose argmax equals the label
  size_type examples = 0;
  bool stopped = false;  // should_stop() asked to stop before the epoch ended
  // With stop_on_nonfinite: the batch (of this epoch, from 0) whose loss was not finite, whose
  // update was not applied; -1 when every batch's loss was finite.
  std::int64_t nonfinite_batch = -1;
  double nonfinite_loss = 0.0;
};

// What a training-mode forward pass changes besides the outputs: batch norm's running
// statistics and each dropout layer's call counter. Saved before a batch so that a batch whose
// loss is not finite can be undone completely (its gradients are computed but not applied).
template <class T>
class forward_side_effects {
 public:
  void save(network<T>& m) {
    std::size_t s = 0, c = 0;
    for (auto& module : m.modules) {
      for (auto& stat : module->statistics()) {
        if (s == stats_.size()) stats_.emplace_back();
        stats_[s++].assign(stat.value, stat.value + stat.size);
      }
      if (auto* dropout = dynamic_cast<dropout_layer<T>*>(module.get())) {
        if (c == calls_.size()) calls_.push_back(0);
        calls_[c++] = dropout->calls;
      }
    }
  }
  void restore(network<T>& m) const {
    std::size_t s = 0, c = 0;
    for (auto& module : m.modules) {
      for (auto& stat : module->statistics()) {
        const auto& saved = stats_[s++];
        std::copy(saved.begin(), saved.end(), stat.value);
      }
      if (auto* dropout = dynamic_cast<dropout_layer<T>*>(module.get())) dropout->calls = calls_[c++];
    }
  }

 private:
  std::vector<std::vector<T>> stats_;
  std::vector<std::uint64_t> calls_;
};

// Polled between batches with the progress so far (loss and accuracy are running means over
// the examples seen): returning true stops the loop before its next batch.
using stop_poll = std::function<bool(const epoch_result&)>;

// The running means of r from sums over r.examples examples.
inline void set_means(epoch_result& r, double loss_sum, size_type correct) {
  if (r.examples == 0) return;
  r.loss = loss_sum / static_cast<double>(r.examples);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.examples);
}

template <class T>
void check_dataset(const network<T>& m, const dataset<T>& d, const char* op) {
  TS_REQUIRE(d.M > 0, "[", op, "] the data set is empty");
  TS_REQUIRE(d.D == m.inputs(), "[", op, "] X has ", d.D, " features but the model has ", m.inputs(),
             " inputs");
  TS_REQUIRE(d.labels || d.targets, "[", op, "] no labels or targets given");
  if (d.targets)
    TS_REQUIRE(d.K == m.outputs(), "[", op, "] targets have ", d.K, " columns but the model has ",
               m.outputs(), " outputs");
  if (d.labels)
    for (size_type n = 0; n < d.M; ++n)
      TS_REQUIRE(d.labels[n] >= 0 && d.labels[n] < m.outputs(), "[", op, "] label ", d.labels[n],
                 " of example ", n, " is outside [0, ", m.outputs(), ")");
}

// Batch buffers: gather() fills X (D,B) feature-major and the batch's labels or targets (K,B).
template <class T>
struct batch_buffers {
  matrix<T> X, T_;
  std::vector<std::int32_t> labels;

  targets<T> gather(const dataset<T>& d, const std::int64_t* idx, size_type B) {
    gather_feature_major(d.X, d.D, idx, B, X);  // (D,B) from rows of (M,D)
    targets<T> t;
    if (d.labels) {
      labels.resize(B);
      for (size_type n = 0; n < B; ++n) labels[n] = d.labels[idx[n]];
      t.labels = labels.data();
    }
    if (d.targets) {
      gather_feature_major(d.targets, d.K, idx, B, T_);  // (K,B)
      t.dense = &T_;
    }
    return t;
  }
};

// Forward (training mode), loss and backward of the whole data set d as one batch, in its
// order: every layer's gradients are those of the batch-mean loss afterwards. Returns that
// loss; buf keeps the feature-major batch (buf.X) for RigL's growth step.
template <class T>
double batch_gradients(network<T>& m, const dataset<T>& d, batch_buffers<T>& buf, const char* op) {
  check_dataset(m, d, op);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(d.M));
  std::iota(idx.begin(), idx.end(), 0);
  const targets<T> t = buf.gather(d, idx.data(), d.M);
  return m.forward_backward(buf.X, t).loss_sum / static_cast<double>(d.M);
}

struct set_options {
  double zeta = 0.3;
  regrow_init init = regrow_init::uniform;
  double regrow_std = 0.01;  // σ of regrow_init::normal
  std::int64_t delta_t = 0;  // > 0: update every delta_t steps inside the epoch loop;
                             // 0: the caller updates between epochs (set_update_model)
};

struct rigl_options {
  double alpha = 0.3;
  std::int64_t delta_t = 100;
  std::int64_t t_begin = 0;  // global step at which the schedule's t = 0
  std::int64_t t_end = 0;    // last update step, relative to t_begin
  drop_schedule schedule = drop_schedule::cosine;
  double exponent = 2.0;
  bool skip_optimizer_step = true;
};

// Topology evolution during training: which algorithm, and the records of what it changed.
struct evolution_plan {
  std::optional<set_options> set;
  std::optional<rigl_options> rigl;
  std::vector<topology_record> records;
};

// One SET update of every sparse layer; layer l's random stream is derived from the model's
// seed, l and the model's count of topology updates, so it is thread-count independent.
template <class T>
std::vector<topology_record> set_update_model(network<T>& m, const set_options& o) {
  std::vector<topology_record> records;
  for (std::size_t l = 0; l < m.layers.size(); ++l)
    if (auto* L = m.sparse_layer(l)) {
      rng g(derive_seed(m.seed, 3, l, m.topology_updates));
      records.push_back(set_update(*L, o.zeta, o.init, g, o.regrow_std));
      records.back().layer = l;
      records.back().step = m.steps;
    }
  ++m.topology_updates;
  return records;
}

// One RigL update of every sparse layer with drop fraction f, from the batch X whose
// forward_backward has just run.
template <class T>
std::vector<topology_record> rigl_update_model(network<T>& m, const matrix<T>& X, double f) {
  std::vector<topology_record> records;
  for (std::size_t l = 0; l < m.layers.size(); ++l)
    if (auto* L = m.sparse_layer(l)) {
      records.push_back(rigl_update(*L, f, m.layer_output_gradient(l), m.layer_input(l, X)));
      records.back().layer = l;
      records.back().step = m.steps;
    }
  ++m.topology_updates;
  return records;
}

// Removes input neurons `cols` from the first linear layer (which must be sparse), keeping nnz
// (remove_inputs in topology.h): the connections move to the other inputs uniformly at random
// (values `how`, the stream of a SET update) or, with a batch d, where its gradient is largest.
template <class T>
topology_record remove_inputs_model(network<T>& m, std::vector<index_t> cols, const dataset<T>* d,
                                    regrow_init how, double regrow_std = 0.01) {
  auto* L = m.sparse_layer(0);
  TS_REQUIRE(L, "[remove_inputs] the first linear layer is dense; removing inputs needs a sparse one");
  std::sort(cols.begin(), cols.end());
  TS_REQUIRE(std::adjacent_find(cols.begin(), cols.end()) == cols.end(),
             "[remove_inputs] an input is listed twice");
  rng g(derive_seed(m.seed, 3, 0, m.topology_updates));
  topology_record rec;
  if (d) {
    batch_buffers<T> buf;
    batch_gradients(m, *d, buf, "remove_inputs");
    rec = remove_inputs(*L, cols, g, how, regrow_std, &m.layer_output_gradient(0), &m.layer_input(0, buf.X));
  } else {
    rec = remove_inputs(*L, cols, g, how, regrow_std);
  }
  rec.layer = 0;
  rec.step = m.steps;
  ++m.topology_updates;
  return rec;
}

// The gradient of the batch d, then one RigL update of every sparse layer with fraction f.
template <class T>
std::vector<topology_record> rigl_update_on_batch(network<T>& m, const dataset<T>& d, double f) {
  TS_REQUIRE(f >= 0 && f <= 1, "[RigL] drop fraction must be in [0, 1], got ", f);
  batch_buffers<T> buf;
  batch_gradients(m, d, buf, "RigL");
  return rigl_update_model(m, buf.X, f);
}

// Noise injection (denoising autoencoders): X(i,n) += σ z, z ~ N(0, 1), for the feature-major
// batch X (D,B) of batch `batch` in epoch `epoch`. Row i draws from its own stream
// derive_seed(seed, 5, (epoch << 32) + batch, i), so the noise does not depend on the thread
// count.
template <class T>
void add_input_noise(matrix<T>& X, double sigma, std::uint64_t seed, std::uint64_t epoch,
                     std::uint64_t batch) {
#pragma omp parallel for schedule(static) if (X.size() > parallel_threshold)
  for (size_type i = 0; i < X.rows; ++i) {
    rng g(derive_seed(seed, 5, (epoch << 32) + batch, static_cast<std::uint64_t>(i)));
    T* row = X.row(i);
    for (size_type n = 0; n < X.cols; ++n) row[n] += static_cast<T>(sigma * g.normal());
  }
}

// One epoch of mini-batch SGD. The example order is a Fisher–Yates shuffle drawn from
// derive_seed(seed, 2, epoch) (identity order when shuffle is false). should_stop is polled
// every check_every batches between batches (never inside a kernel) with the progress so far.
// input_noise > 0 adds Gaussian noise of that standard deviation to every batch's inputs
// (add_input_noise), not to its targets. With stop_on_nonfinite, a batch whose loss is NaN or
// infinite ends the epoch before its update (and before its evolution step), and undoes what
// its forward pass changed (forward_side_effects): the network is left exactly as after the
// previous step, r.nonfinite_batch says which batch it was.
template <class T>
epoch_result train_epoch(network<T>& m, const dataset<T>& d, size_type batch_size, const optimizer_config& c,
                         std::uint64_t seed, std::uint64_t epoch, bool shuffle,
                         const stop_poll& should_stop = {}, evolution_plan* evolution = nullptr,
                         size_type check_every = 1, double input_noise = 0.0,
                         bool stop_on_nonfinite = false) {
  check_dataset(m, d, "fit");
  TS_REQUIRE(batch_size > 0, "[fit] batch_size must be positive, got ", batch_size);
  TS_REQUIRE(input_noise >= 0 && std::isfinite(input_noise), "[fit] input_noise must be >= 0, got ",
             input_noise);
  validate(c);
  if (evolution && evolution->set)
    validate_set(evolution->set->zeta, evolution->set->regrow_std, evolution->set->delta_t);
  if (evolution && evolution->rigl) {
    const rigl_options& o = *evolution->rigl;
    validate_rigl(o.alpha, o.delta_t, o.t_end, o.exponent);
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(d.M));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    rng g(derive_seed(seed, 2, epoch));
    for (size_type i = d.M - 1; i > 0; --i)
      std::swap(order[i], order[g.below(static_cast<std::uint64_t>(i) + 1)]);
  }
  const flush_denormals ftz;
  batch_buffers<T> buf;
  forward_side_effects<T> side_effects;
  epoch_result r;
  double loss_sum = 0.0;
  size_type correct = 0, batch_index = 0;
  for (size_type start = 0; start < d.M; start += batch_size, ++batch_index) {
    if (should_stop && batch_index % check_every == 0) {
      set_means(r, loss_sum, correct);
      if (should_stop(r)) {
        r.stopped = true;
        break;
      }
    }
    const size_type B = std::min(batch_size, d.M - start);
    const targets<T> t = buf.gather(d, order.data() + start, B);
    if (input_noise > 0)
      add_input_noise(buf.X, input_noise, seed, epoch, static_cast<std::uint64_t>(batch_index));
    if (stop_on_nonfinite) side_effects.save(m);
    const loss_result lr = m.forward_backward(buf.X, t);
    if (stop_on_nonfinite && !std::isfinite(lr.loss_sum)) {
      side_effects.restore(m);
      r.nonfinite_batch = batch_index;
      r.nonfinite_loss = lr.loss_sum / static_cast<double>(B);
      break;
    }
    ++m.steps;
    bool skip_step = false;
    if (evolution && evolution->rigl) {
      const rigl_options& o = *evolution->rigl;
      const std::int64_t step = m.steps - o.t_begin;
      if (o.delta_t > 0 && step % o.delta_t == 0 && step <= o.t_end) {
        const double f = drop_fraction(o.schedule, o.alpha, static_cast<double>(step),
                                       static_cast<double>(o.t_end), o.exponent);
        if (f > 0) {  // f(T_end) = 0 for the decaying schedules: nothing to change
          for (auto& rec : rigl_update_model(m, buf.X, f)) evolution->records.push_back(std::move(rec));
          skip_step = o.skip_optimizer_step;
        }
      }
    }
    if (!skip_step) m.optimize(c);
    if (evolution && evolution->set && evolution->set->delta_t > 0 && m.steps % evolution->set->delta_t == 0)
      for (auto& rec : set_update_model(m, *evolution->set)) evolution->records.push_back(std::move(rec));
    loss_sum += lr.loss_sum;
    correct += lr.correct;
    r.examples += B;
  }
  set_means(r, loss_sum, correct);
  return r;
}

// Loss and accuracy over a whole data set, in batches, without touching the weights;
// should_stop is polled before each batch as in train_epoch.
template <class T>
epoch_result evaluate(network<T>& m, const dataset<T>& d, size_type batch_size = 1000,
                      const stop_poll& should_stop = {}) {
  check_dataset(m, d, "evaluate");
  batch_buffers<T> buf;
  std::vector<std::int64_t> idx;
  epoch_result r;
  double loss_sum = 0.0;
  size_type correct = 0;
  for (size_type start = 0; start < d.M; start += batch_size) {
    if (should_stop) {
      set_means(r, loss_sum, correct);
      if (should_stop(r)) {
        r.stopped = true;
        return r;
      }
    }
    const size_type B = std::min(batch_size, d.M - start);
    idx.resize(B);
    std::iota(idx.begin(), idx.end(), start);
    const targets<T> t = buf.gather(d, idx.data(), B);
    const loss_result lr = compute_loss<T>(m.loss, m.forward(buf.X), t, T(1), nullptr, m.label_smoothing);
    loss_sum += lr.loss_sum;
    correct += lr.correct;
    r.examples += B;
  }
  set_means(r, loss_sum, correct);
  return r;
}

// Logits out (M,K) row-major for X (M,D) row-major, in batches.
template <class T>
void predict_logits(network<T>& m, const T* X, size_type M, size_type D, T* out, bool train = false,
                    size_type batch_size = 1000) {
  TS_REQUIRE(D == m.inputs(), "[predict] X has ", D, " features but the model has ", m.inputs(), " inputs");
  matrix<T> Xb;
  std::vector<std::int64_t> idx;
  for (size_type start = 0; start < M; start += batch_size) {
    const size_type B = std::min(batch_size, M - start);
    idx.resize(B);
    std::iota(idx.begin(), idx.end(), start);
    gather_feature_major(X, D, idx.data(), B, Xb);
    transpose_to(m.forward(Xb, train), out + start * m.outputs());  // (B,K) = (K,B)ᵀ
  }
}

}  // namespace truesparse
