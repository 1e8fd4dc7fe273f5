// The training loop in C++ (shared by the Python package and the C++ benchmarks): shuffle,
// gather a feature-major batch, forward, loss, backward, optimize, and evolve the topology on
// schedule (SET, RigL). Data sets stay as the user gave them, row-major (M, D); only the batch
// is transposed, once, while gathering. With a data_parallel (distributed.h) the same loop
// runs on every rank of a data-parallel job, one all-reduce per step (docs/distributed.md).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <numeric>
#include <optional>

#include "truesparse/denormals.h"
#include "truesparse/distributed.h"
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
  // Data-parallel: stopped because another rank's should_stop() asked to (this one's did not).
  bool stopped_by_peer = false;
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

// allow_empty: a rank's shard of a data-parallel job may hold no example.
template <class T>
void check_dataset(const network<T>& m, const dataset<T>& d, const char* op, bool allow_empty = false) {
  TS_REQUIRE(d.M > 0 || allow_empty, "[", op, "] the data set is empty");
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

// Keeps the float activations and output gradients (network::keep_float_activations) while it
// lives, when `on`: for the training passes whose RigL grow step, or remove_inputs, reads them
// (layer_input, layer_output_gradient).
template <class T>
struct float_activations_kept {
  network<T>& m;
  const bool before;
  float_activations_kept(network<T>& net, bool on) : m(net), before(net.keep_float_activations) {
    m.keep_float_activations = before || on;
  }
  ~float_activations_kept() { m.keep_float_activations = before; }
  float_activations_kept(const float_activations_kept&) = delete;
  float_activations_kept& operator=(const float_activations_kept&) = delete;
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
    // A refused removal (checked after the gradient) leaves the network as it was, batch
    // norm's statistics and dropout's counters included.
    forward_side_effects<T> side_effects;
    side_effects.save(m);
    const float_activations_kept<T> keep(m, true);  // the float output gradient of layer 0
    batch_buffers<T> buf;
    try {
      batch_gradients(m, *d, buf, "remove_inputs");
      rec =
          remove_inputs(*L, cols, g, how, regrow_std, &m.layer_output_gradient(0), &m.layer_input(0, buf.X));
    } catch (...) {
      side_effects.restore(m);
      throw;
    }
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
  const float_activations_kept<T> keep(m, true);
  batch_buffers<T> buf;
  batch_gradients(m, d, buf, "RigL");
  return rigl_update_model(m, buf.X, f);
}

// The all-reduce of one data-parallel step and its collective failure check. An error of the
// all-reduce itself, or a failure reported by any rank, undoes what the step's forward pass
// changed and throws: this rank's own error if it failed, else peer_failure (`where` starts
// its message).
template <class T>
void exchange_step(network<T>& m, gradient_buffer<T>& gb, const data_parallel<T>& dp,
                   const forward_side_effects<T>& side_effects, const std::exception_ptr& failure,
                   const std::string& where) {
  try {
    dp.allreduce_sum(gb.data(), gb.size());
  } catch (...) {
    side_effects.restore(m);
    throw;
  }
  if (gb.failures() == 0) return;
  side_effects.restore(m);
  if (failure) std::rethrow_exception(failure);
  throw peer_failure(msg(where, gb.failures(), " other rank(s) failed; rank ", dp.rank, " stops with them"));
}

// The same on rank dp.rank of a data-parallel job (distributed.h): the batch is the whole d
// split over the ranks (full data: rank r takes the rows ⌊M r/P⌋ .. ⌊M (r+1)/P⌋) or the
// concatenation of the ranks' d (sharded). The gradient of that global batch is all-reduced
// (one gradient_buffer: the batch norm statistics too), then rigl_update_model's panels are;
// every rank ends with the same topology. Failures are collective as in train_epoch.
template <class T>
std::vector<topology_record> rigl_update_on_batch(network<T>& m, const dataset<T>& d, double f,
                                                  const data_parallel<T>& dp) {
  validate(dp, "RigL");
  const float_activations_kept<T> keep(m, true);
  gradient_buffer<T> gb;
  batch_buffers<T> buf;
  forward_side_effects<T> side_effects;
  side_effects.save(m);
  std::exception_ptr failure;
  size_type n = 0;
  try {
    TS_REQUIRE(f >= 0 && f <= 1, "[RigL] drop fraction must be in [0, 1], got ", f);
    check_dataset(m, d, "RigL", dp.sharded);
    const auto [first, last] =
        dp.sharded ? std::pair<size_type, size_type>{0, d.M} : rank_slice(d.M, dp.rank, dp.size);
    n = last - first;
    if (n > 0) {
      std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
      std::iota(idx.begin(), idx.end(), first);
      const targets<T> t = buf.gather(d, idx.data(), n);
      set_dropout_offset(m, static_cast<std::uint64_t>(dp.sharded ? dp.rank * d.M : first));
      m.forward_backward(buf.X, t);
      set_dropout_offset(m, 0);
    } else {
      skip_forward(m);
    }
  } catch (...) {
    set_dropout_offset(m, 0);
    failure = std::current_exception();
    n = 0;
  }
  gb.pack(m, n, 0.0, 0, false, failure != nullptr);
  exchange_step(m, gb, dp, side_effects, failure, "[RigL] ");
  const size_type N = gb.examples();
  if (N == 0 || (!dp.sharded && N != d.M) || N < n) {
    side_effects.restore(m);
    TS_REQUIRE(N > 0, "[RigL] the batch is empty on every rank");
    throw std::runtime_error(msg("[RigL] the all-reduce counts ", N, " examples, ",
                                 dp.sharded ? "this rank alone has " : "the batch has ", dp.sharded ? n : d.M,
                                 ": allreduce must sum the buffer over all ranks, in place"));
  }
  gb.unpack(m);
  return rigl_update_model(m, buf.X, f, dp, n, N);
}

// Noise injection (denoising autoencoders): X(i,n) += σ z, z ~ N(0, 1), for the feature-major
// batch X (D,B) of batch `batch` in epoch `epoch`. Row i draws from its own stream
// derive_seed(seed, 5, (epoch << 32) + batch, i), one draw per example in column order, so the
// noise does not depend on the thread count. column_offset: X is the columns column_offset,
// column_offset + 1, ... of a larger batch (a rank's slice, distributed.h), whose draws it gets.
template <class T>
void add_input_noise(matrix<T>& X, double sigma, std::uint64_t seed, std::uint64_t epoch, std::uint64_t batch,
                     std::uint64_t column_offset = 0) {
  parallel_for(X.rows, X.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
    for (size_type i = i_begin; i < i_end; ++i) {
      rng g(derive_seed(seed, 5, (epoch << 32) + batch, static_cast<std::uint64_t>(i)));
      for (std::uint64_t n = 0; n < column_offset; ++n) g.normal();  // the columns before X
      T* row = X.row(i);
      for (size_type n = 0; n < X.cols; ++n) row[n] += static_cast<T>(sigma * g.normal());
    }
  });
}

// The checks of train_epoch's arguments, before its first step.
template <class T>
void check_training(const network<T>& m, const dataset<T>& d, size_type batch_size, const optimizer_config& c,
                    const evolution_plan* evolution, size_type check_every, double input_noise,
                    bool allow_empty = false) {
  check_dataset(m, d, "fit", allow_empty);
  TS_REQUIRE(batch_size > 0, "[fit] batch_size must be positive, got ", batch_size);
  TS_REQUIRE(check_every > 0, "[fit] check_every must be positive, got ", check_every);
  TS_REQUIRE(input_noise >= 0 && std::isfinite(input_noise), "[fit] input_noise must be >= 0, got ",
             input_noise);
  validate(c);
  if (evolution && evolution->set)
    validate_set(evolution->set->zeta, evolution->set->regrow_std, evolution->set->delta_t);
  if (evolution && evolution->rigl) {
    const rigl_options& o = *evolution->rigl;
    validate_rigl(o.alpha, o.delta_t, o.t_end, o.exponent);
  }
}

// The example order of an epoch: a Fisher–Yates shuffle of 0..M-1 drawn from `stream`
// (identity order when shuffle is false).
inline std::vector<std::int64_t> epoch_order(size_type M, bool shuffle, std::uint64_t stream) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(M));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle && M > 1) {
    rng g(stream);
    for (size_type i = M - 1; i > 0; --i)
      std::swap(order[i], order[g.below(static_cast<std::uint64_t>(i) + 1)]);
  }
  return order;
}

// The drop fraction of the RigL update due at the step m.steps (already counted), or 0 when
// none is due (or the schedule's fraction is 0: f(T_end) = 0 for the decaying schedules).
template <class T>
double rigl_fraction_due(const network<T>& m, const evolution_plan* evolution) {
  if (!evolution || !evolution->rigl) return 0.0;
  const rigl_options& o = *evolution->rigl;
  const std::int64_t step = m.steps - o.t_begin;
  if (o.delta_t <= 0 || step % o.delta_t != 0 || step > o.t_end) return 0.0;
  return drop_fraction(o.schedule, o.alpha, static_cast<double>(step), static_cast<double>(o.t_end),
                       o.exponent);
}

// The end of a step whose gradients are in place (and whose RigL update, if any, has run):
// the optimizer step unless skipped, then SET's update when one is due every delta_t steps.
template <class T>
void optimize_and_evolve(network<T>& m, const optimizer_config& c, evolution_plan* evolution,
                         bool skip_step) {
  if (!skip_step) m.optimize(c);
  if (evolution && evolution->set && evolution->set->delta_t > 0 && m.steps % evolution->set->delta_t == 0)
    for (auto& rec : set_update_model(m, *evolution->set)) evolution->records.push_back(std::move(rec));
}

template <class T>
epoch_result train_epoch_data_parallel(network<T>& m, const dataset<T>& d, size_type batch_size,
                                       const optimizer_config& c, std::uint64_t seed, std::uint64_t epoch,
                                       bool shuffle, const stop_poll& should_stop, evolution_plan* evolution,
                                       size_type check_every, double input_noise, bool stop_on_nonfinite,
                                       const data_parallel<T>& dp);

// One epoch of mini-batch SGD. The example order is a Fisher–Yates shuffle drawn from
// derive_seed(seed, 2, epoch) (identity order when shuffle is false). should_stop is polled
// every check_every batches between batches (never inside a kernel) with the progress so far.
// input_noise > 0 adds Gaussian noise of that standard deviation to every batch's inputs
// (add_input_noise), not to its targets. With stop_on_nonfinite, a batch whose loss is NaN or
// infinite ends the epoch before its update (and before its evolution step), and undoes what
// its forward pass changed (forward_side_effects): the network is left exactly as after the
// previous step, r.nonfinite_batch says which batch it was.
// With dp (data-parallel training, distributed.h): train_epoch_data_parallel below.
template <class T>
epoch_result train_epoch(network<T>& m, const dataset<T>& d, size_type batch_size, const optimizer_config& c,
                         std::uint64_t seed, std::uint64_t epoch, bool shuffle,
                         const stop_poll& should_stop = {}, evolution_plan* evolution = nullptr,
                         size_type check_every = 1, double input_noise = 0.0, bool stop_on_nonfinite = false,
                         const data_parallel<T>* dp = nullptr) {
  if (dp)
    return train_epoch_data_parallel(m, d, batch_size, c, seed, epoch, shuffle, should_stop, evolution,
                                     check_every, input_noise, stop_on_nonfinite, *dp);
  check_training(m, d, batch_size, c, evolution, check_every, input_noise);
  const std::vector<std::int64_t> order = epoch_order(d.M, shuffle, derive_seed(seed, 2, epoch));
  const flush_denormals ftz;
  const float_activations_kept<T> keep(m, evolution && evolution->rigl);
  batch_buffers<T> buf;
  forward_side_effects<T> side_effects;
  thread_governor& threads = m.governor;
  threads.begin();
  const struct restore_threads {
    thread_governor& g;
    ~restore_threads() { g.end(); }
  } restore{threads};
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
    threads.next();
    const auto step_start = std::chrono::steady_clock::now();
    const targets<T> t = buf.gather(d, order.data() + start, B);
    if (input_noise > 0)
      add_input_noise(buf.X, input_noise, seed, epoch, static_cast<std::uint64_t>(batch_index));
    if (stop_on_nonfinite) side_effects.save(m);
    // RigL's update reads the step's sparse gradient before the optimizer step: no fusion then.
    const loss_result lr = m.forward_backward(buf.X, t, evolution && evolution->rigl ? nullptr : &c);
    threads.record(std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count() /
                   static_cast<double>(B));
    if (stop_on_nonfinite && !std::isfinite(lr.loss_sum)) {
      side_effects.restore(m);
      r.nonfinite_batch = batch_index;
      r.nonfinite_loss = lr.loss_sum / static_cast<double>(B);
      break;
    }
    ++m.steps;
    bool skip_step = false;
    if (const double f = rigl_fraction_due(m, evolution); f > 0) {
      for (auto& rec : rigl_update_model(m, buf.X, f)) evolution->records.push_back(std::move(rec));
      skip_step = evolution->rigl->skip_optimizer_step;
    }
    optimize_and_evolve(m, c, evolution, skip_step);
    loss_sum += lr.loss_sum;
    correct += lr.correct;
    r.examples += B;
  }
  set_means(r, loss_sum, correct);
  return r;
}

// One epoch of synchronous data-parallel training on rank dp.rank of dp.size
// (docs/distributed.md). Every rank runs this with the same network, optimizer, evolution
// plan, seed, epoch and batch_size, and the same data set (full data) or its own shard
// (dp.sharded); then every step is the step of one process on the global batch, up to the
// order of floating-point sums:
//   rows     full data: the same shuffle on every rank (derive_seed(seed, 2, epoch)); of each
//            global batch of B = min(batch_size, rest) examples rank r takes ⌊B r/P⌋ .. ⌊B (r+1)/P⌋
//            (possibly none). Sharded: batch_size is the LOCAL batch; the rank's shard is
//            shuffled with derive_seed(seed, 2, epoch, rank), and step s takes its rows
//            s·batch_size .. (possibly none once the shard has ended); dp.steps steps.
//   step     forward_backward of the slice (its batch mean), then gradient_buffer: pack
//            (times the slice's count), ONE all-reduce, unpack (divided by the global count):
//            the gradient of the global batch mean on every rank. Then RigL (its gradient
//            panels all-reduced: rigl_update_model in distributed.h), the optimizer and SET
//            exactly as in one process, from identical inputs: the ranks stay identical.
//   random   dropout masks and input noise: the slice's first column in the global batch
//            (full data: ⌊B r/P⌋; sharded: rank·batch_size) selects the draws one process would
//            use for those examples (dropout_layer::column_offset, add_input_noise).
//   metrics  loss, accuracy and examples of the result (and given to should_stop) are those of
//            the global batches: the same on every rank.
//   stopping every decision is collective. should_stop is polled on every rank every
//            check_every steps; a rank asking to stop still takes part in that step's
//            all-reduce, and then every rank stops before the step's update (forward side
//            effects undone; r.stopped, and r.stopped_by_peer on the ranks that did not ask).
//            stop_on_nonfinite tests the GLOBAL loss, so every rank stops at the same batch.
//            An exception on one rank (its checks before the first step, or its forward and
//            backward) is reported through the next all-reduce: it is rethrown there, and
//            every other rank throws peer_failure, all before the step's update.
//            An exception from dp.allreduce_sum itself leaves the network as after the
//            previous step (side effects undone) and propagates.
//   steps    full data: ⌈M / batch_size⌉; sharded: dp.steps (or the local ⌈M_r / batch_size⌉).
//            A step whose global batch is empty (every shard ended) is skipped on every rank.
// Batch norm normalizes with the statistics of the rank's slice (like PyTorch's DDP without
// SyncBatchNorm, so batch norm training differs from one process); its running statistics
// are all-reduced with the gradients (n_r-weighted means) and stay identical on every rank.
template <class T>
epoch_result train_epoch_data_parallel(network<T>& m, const dataset<T>& d, size_type batch_size,
                                       const optimizer_config& c, std::uint64_t seed, std::uint64_t epoch,
                                       bool shuffle, const stop_poll& should_stop, evolution_plan* evolution,
                                       size_type check_every, double input_noise, bool stop_on_nonfinite,
                                       const data_parallel<T>& dp) {
  validate(dp, "fit");  // without a valid all-reduce no other rank can be told
  gradient_buffer<T> gb;
  std::vector<std::int64_t> order;
  size_type steps = 0;
  try {
    check_training(m, d, batch_size, c, evolution, check_every, input_noise, dp.sharded);
    order = epoch_order(d.M, shuffle,
                        derive_seed(seed, 2, epoch, dp.sharded ? static_cast<std::uint64_t>(dp.rank) : 0));
    steps = dp.sharded && dp.steps > 0 ? dp.steps : (d.M + batch_size - 1) / batch_size;
  } catch (...) {
    // Fail together: the other ranks learn of it from their first step's all-reduce.
    gb.pack(m, 0, 0.0, 0, false, true);
    dp.allreduce_sum(gb.data(), gb.size());
    throw;
  }
  const flush_denormals ftz;
  const float_activations_kept<T> keep(m, evolution && evolution->rigl);
  batch_buffers<T> buf;
  forward_side_effects<T> side_effects;
  epoch_result r;
  double loss_sum = 0.0;
  size_type correct = 0;
  for (size_type s = 0; s < steps; ++s) {
    // This rank's rows order[first .. last) and their first column in the global batch.
    size_type first = 0, last = 0, offset = 0, expected = -1;
    if (dp.sharded) {
      first = std::min(s * batch_size, d.M);
      last = std::min(first + batch_size, d.M);
      offset = static_cast<size_type>(dp.rank) * batch_size;
    } else {
      const size_type start = s * batch_size;
      expected = std::min(batch_size, d.M - start);
      const auto [a, b] = rank_slice(expected, dp.rank, dp.size);
      first = start + a;
      last = start + b;
      offset = a;
    }
    const size_type n = last - first;
    bool stop = false;
    if (should_stop && s % check_every == 0) {
      set_means(r, loss_sum, correct);
      stop = should_stop(r);
    }
    side_effects.save(m);
    loss_result lr;
    std::exception_ptr failure;
    if (!stop && n > 0) {
      try {
        const targets<T> t = buf.gather(d, order.data() + first, n);
        if (input_noise > 0)
          add_input_noise(buf.X, input_noise, seed, epoch, static_cast<std::uint64_t>(s),
                          static_cast<std::uint64_t>(offset));
        set_dropout_offset(m, static_cast<std::uint64_t>(offset));
        lr = m.forward_backward(buf.X, t);
      } catch (...) {
        failure = std::current_exception();
      }
      set_dropout_offset(m, 0);
    } else if (!stop) {
      skip_forward(m);  // an empty slice: the dropout streams still advance
    }
    const size_type n_local = stop || failure ? 0 : n;
    gb.pack(m, n_local, lr.loss_sum, lr.correct, stop, failure != nullptr);
    exchange_step(m, gb, dp, side_effects, failure, msg("[fit] in step ", s, " of epoch ", epoch, ": "));
    if (gb.stops() > 0) {
      side_effects.restore(m);
      r.stopped = true;
      r.stopped_by_peer = !stop;
      break;
    }
    const size_type N = gb.examples();
    if (expected >= 0 ? N != expected : N < n_local) {
      side_effects.restore(m);
      throw std::runtime_error(msg("[fit] the all-reduce of step ", s, " counts ", N, " examples, ",
                                   expected >= 0 ? "the global batch has " : "this rank alone has ",
                                   expected >= 0 ? expected : n_local,
                                   ": allreduce must sum the buffer over all ranks, in place"));
    }
    if (N == 0) continue;  // sharded: every shard has ended
    const double global_loss = gb.loss_sum();
    if (stop_on_nonfinite && !std::isfinite(global_loss)) {
      side_effects.restore(m);
      r.nonfinite_batch = s;
      r.nonfinite_loss = global_loss / static_cast<double>(N);
      break;
    }
    gb.unpack(m);
    ++m.steps;
    bool skip_step = false;
    if (const double f = rigl_fraction_due(m, evolution); f > 0) {
      std::vector<topology_record> records;
      try {  // the panels' all-reduces: nothing has changed yet if one throws
        records = rigl_update_model(m, buf.X, f, dp, n_local, N);
      } catch (...) {
        --m.steps;
        side_effects.restore(m);
        throw;
      }
      for (auto& rec : records) evolution->records.push_back(std::move(rec));
      skip_step = evolution->rigl->skip_optimizer_step;
    }
    optimize_and_evolve(m, c, evolution, skip_step);
    loss_sum += global_loss;
    correct += gb.correct();
    r.examples += N;
  }
  set_means(r, loss_sum, correct);
  return r;
}

// Loss and accuracy of the rows first .. last-1 of d, in batches of batch_size; sums into
// loss_sum, correct and r.examples. should_stop (before each batch) returning true: false.
template <class T>
bool evaluate_rows(network<T>& m, const dataset<T>& d, size_type first, size_type last, size_type batch_size,
                   const stop_poll& should_stop, epoch_result& r, double& loss_sum, size_type& correct) {
  batch_buffers<T> buf;
  std::vector<std::int64_t> idx;
  for (size_type start = first; start < last; start += batch_size) {
    if (should_stop) {
      set_means(r, loss_sum, correct);
      if (should_stop(r)) return false;
    }
    const size_type B = std::min(batch_size, last - start);
    idx.resize(B);
    std::iota(idx.begin(), idx.end(), start);
    const targets<T> t = buf.gather(d, idx.data(), B);
    const loss_result lr = compute_loss<T>(m.loss, m.forward(buf.X), t, T(1), nullptr, m.label_smoothing);
    loss_sum += lr.loss_sum;
    correct += lr.correct;
    r.examples += B;
  }
  return true;
}

// Loss and accuracy over a whole data set, in batches, without touching the weights;
// should_stop is polled before each batch as in train_epoch.
// With dp: full data: rank r evaluates the rows ⌊M r/P⌋ .. ⌊M (r+1)/P⌋; sharded: its whole
// shard; then one all-reduce of the 5 tail values of gradient_buffer (loss sum, correct,
// examples, stop requests, failures) gives every rank the metrics of the whole data set. A
// rank stopped by should_stop or by an exception still takes part in that all-reduce; then
// every rank is stopped (r.stopped, r.stopped_by_peer), or rethrows / throws peer_failure.
template <class T>
epoch_result evaluate(network<T>& m, const dataset<T>& d, size_type batch_size = 1000,
                      const stop_poll& should_stop = {}, const data_parallel<T>* dp = nullptr) {
  epoch_result r;
  double loss_sum = 0.0;
  size_type correct = 0;
  if (!dp) {
    check_dataset(m, d, "evaluate");
    r.stopped = !evaluate_rows(m, d, 0, d.M, batch_size, should_stop, r, loss_sum, correct);
    set_means(r, loss_sum, correct);
    return r;
  }
  validate(*dp, "evaluate");
  bool stop = false;
  std::exception_ptr failure;
  try {
    check_dataset(m, d, "evaluate", dp->sharded);
    TS_REQUIRE(batch_size > 0, "[evaluate] batch_size must be positive, got ", batch_size);
    const auto [first, last] =
        dp->sharded ? std::pair<size_type, size_type>{0, d.M} : rank_slice(d.M, dp->rank, dp->size);
    stop = !evaluate_rows(m, d, first, last, batch_size, should_stop, r, loss_sum, correct);
  } catch (...) {
    failure = std::current_exception();
  }
  gradient_buffer<T> gb;
  gb.pack_tail(loss_sum, correct, r.examples, stop, failure != nullptr);
  dp->allreduce_sum(gb.data(), gb.size());
  if (gb.failures() > 0) {
    if (failure) std::rethrow_exception(failure);
    throw peer_failure(
        msg("[evaluate] ", gb.failures(), " other rank(s) failed; rank ", dp->rank, " stops with them"));
  }
  r.stopped = gb.stops() > 0;
  r.stopped_by_peer = r.stopped && !stop;
  r.examples = gb.examples();
  set_means(r, gb.loss_sum(), gb.correct());
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
