// Tests of data-parallel training (distributed.h, train_epoch with a data_parallel): P ranks
// are simulated in one process by std::threads, each holding its own network, joined by an
// in-process all-reduce. In float64, full-data training on P ranks must equal one process with
// the same global batch up to the order of floating-point sums (relative 1e-9), and the ranks
// must stay bitwise identical to each other; the failure and stop paths must be collective.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "check.h"
#include "truesparse/runtime.h"
#include "truesparse/train.h"

using namespace truesparse;

namespace {

// An all-reduce over P threads (C++17: a barrier of a mutex and a condition variable). The
// last rank to arrive sums the P buffers in rank order and writes the sum into every buffer,
// so all ranks get bitwise the same values. A call with a different n on some rank, or a rank
// that calls fail(), breaks the group: every rank waiting or arriving later throws.
struct in_process_group {
  explicit in_process_group(int P) : size(P), buffers(P), counts(P) {}

  void allreduce(int rank, double* data, std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex);
    if (broken) throw std::runtime_error("the group is broken");
    buffers[rank] = data;
    counts[rank] = n;
    ++calls;
    const std::uint64_t generation = round;
    if (++arrived == size) {
      arrived = 0;
      ++round;
      if (std::any_of(counts.begin(), counts.end(), [&](std::size_t c) { return c != n; })) {
        broken = true;
      } else {
        sum.assign(n, 0.0);
        for (int r = 0; r < size; ++r)
          for (std::size_t i = 0; i < n; ++i) sum[i] += buffers[r][i];
        for (int r = 0; r < size; ++r) std::copy(sum.begin(), sum.end(), buffers[r]);
      }
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return round != generation || broken; });
    }
    if (broken) throw std::runtime_error("the group is broken");
  }
  void fail() {
    std::lock_guard<std::mutex> lock(mutex);
    broken = true;
    cv.notify_all();
  }
  data_parallel<double> rank(int r, bool sharded = false, std::int64_t steps = 0) {
    data_parallel<double> dp;
    dp.rank = r;
    dp.size = size;
    dp.sharded = sharded;
    dp.steps = steps;
    dp.allreduce_sum = [this, r](double* data, std::size_t n) { allreduce(r, data, n); };
    return dp;
  }

  int size;
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<double*> buffers;
  std::vector<std::size_t> counts;
  std::vector<double> sum;
  int arrived = 0;
  std::uint64_t round = 0;
  bool broken = false;
  std::size_t calls = 0;  // all ranks together
};

// Runs f(rank) on P threads; returns each rank's exception (null if none).
template <class F>
std::vector<std::exception_ptr> run_ranks(int P, F f) {
  std::vector<std::exception_ptr> errors(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      try {
        f(r);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

struct data {  // three classes, Gaussian blobs in 20 dimensions
  std::vector<double> X;
  std::vector<std::int32_t> y;
  size_type M, D = 20;
  explicit data(size_type M_, std::uint64_t seed = 99) : M(M_) {
    rng g(seed);
    for (size_type n = 0; n < M; ++n) {
      const int c = static_cast<int>(g.below(3));
      y.push_back(c);
      for (size_type d = 0; d < D; ++d) X.push_back(g.normal() + (d % 3 == c ? 1.0 : 0.0));
    }
  }
  dataset<double> view() const { return {X.data(), M, D, y.data(), nullptr, 0}; }
  // The rows `rows` as a data set of their own.
  data subset(const std::vector<size_type>& rows) const {
    data s(0);
    s.M = static_cast<size_type>(rows.size());
    for (size_type r : rows) {
      s.y.push_back(y[r]);
      s.X.insert(s.X.end(), X.begin() + r * D, X.begin() + (r + 1) * D);
    }
    return s;
  }
};

// 20 -> 48 (sparse) -> ReLU -> dropout -> [batch norm] -> 32 (sparse) -> SReLU -> 3 (dense).
network_options options(bool dropout = true, bool batch_norm = false) {
  network_options o;
  o.inputs = 20;
  o.seed = 7;
  auto linear = [&](size_type K, double density) {
    layer_spec s;
    s.size = K;
    s.density = density;
    o.layers.push_back(s);
  };
  auto add = [&](layer_kind k) {
    layer_spec s;
    s.kind = k;
    s.p = 0.2;
    o.layers.push_back(s);
    return &o.layers.back();
  };
  linear(48, 0.3);
  add(layer_kind::activation);
  if (dropout) add(layer_kind::dropout);
  if (batch_norm) add(layer_kind::batch_norm);
  linear(32, 0.25);
  add(layer_kind::srelu);
  linear(3, 1.0);
  return o;
}

enum class evolution { none, set_epoch, set_steps, rigl, rigl_step };

struct setup {
  optimizer_config opt;
  evolution evo = evolution::none;
  double noise = 0.0;
  size_type batch = 20;
  int epochs = 3;
};

evolution_plan plan_for(const setup& s) {
  evolution_plan plan;
  if (s.evo == evolution::set_epoch || s.evo == evolution::set_steps) {
    set_options o;
    o.zeta = 0.3;
    o.delta_t = s.evo == evolution::set_steps ? 4 : 0;
    plan.set = o;
  }
  if (s.evo == evolution::rigl || s.evo == evolution::rigl_step) {
    rigl_options o;
    o.delta_t = 3;
    o.t_end = 30;
    o.alpha = 0.3;
    o.skip_optimizer_step = s.evo == evolution::rigl;
    plan.rigl = o;
  }
  return plan;
}

// Trains m for s.epochs epochs (SET between epochs for set_epoch); returns the records.
std::vector<topology_record> train(network<double>& m, const dataset<double>& d, const setup& s,
                                   const data_parallel<double>* dp, bool shuffle = true) {
  evolution_plan plan = plan_for(s);
  const bool evolves = plan.set || plan.rigl;
  for (int e = 0; e < s.epochs; ++e) {
    const epoch_result r = train_epoch(m, d, s.batch, s.opt, m.seed, static_cast<std::uint64_t>(e), shuffle,
                                       {}, evolves ? &plan : nullptr, 1, s.noise, false, dp);
    if (r.stopped || r.nonfinite_batch >= 0) throw std::logic_error("the epoch stopped");
    if (s.evo == evolution::set_epoch && e + 1 < s.epochs)
      for (auto& rec : set_update_model(m, *plan.set)) plan.records.push_back(std::move(rec));
  }
  return plan.records;
}

// Everything a rank must agree on: values, gradients not included (they are per step).
struct snapshot {
  std::vector<std::vector<double>> arrays;  // W and b of each linear layer, module parameters, statistics
  std::vector<std::vector<index_t>> patterns;
  std::int64_t steps = 0;
  std::uint64_t topology_updates = 0;
  std::vector<std::uint64_t> dropout_calls;
  std::vector<std::vector<std::int64_t>> grown;  // grown positions of each record
};

snapshot take(network<double>& m, const std::vector<topology_record>& records = {}) {
  snapshot s;
  for (auto& module : m.modules) {
    if (auto* L = dynamic_cast<linear_layer<double>*>(module.get())) {
      s.arrays.emplace_back(L->values(), L->values() + L->nnz());
      s.arrays.emplace_back(L->b.begin(), L->b.end());
      if (auto* S = L->as_sparse()) {
        s.patterns.push_back(S->pattern.indptr);
        s.patterns.push_back(S->pattern.indices);
      }
    }
    for (auto& p : module->parameters()) s.arrays.emplace_back(p.value, p.value + p.size);
    for (auto& st : module->statistics()) s.arrays.emplace_back(st.value, st.value + st.size);
    if (auto* dropout = dynamic_cast<dropout_layer<double>*>(module.get()))
      s.dropout_calls.push_back(dropout->calls);
  }
  s.steps = m.steps;
  s.topology_updates = m.topology_updates;
  for (const auto& r : records) s.grown.push_back(r.grown_positions);
  return s;
}

bool identical(const snapshot& a, const snapshot& b) {
  return a.arrays == b.arrays && a.patterns == b.patterns && a.steps == b.steps &&
         a.topology_updates == b.topology_updates && a.dropout_calls == b.dropout_calls && a.grown == b.grown;
}

// Same structure, patterns and counters, and every array within `tol` relative to its largest
// magnitude; returns the largest relative difference (or 1 on a structural mismatch).
double difference(const snapshot& a, const snapshot& b) {
  if (a.patterns != b.patterns || a.steps != b.steps || a.topology_updates != b.topology_updates ||
      a.dropout_calls != b.dropout_calls || a.grown != b.grown || a.arrays.size() != b.arrays.size())
    return 1.0;
  double worst = 0.0;
  for (std::size_t i = 0; i < a.arrays.size(); ++i) {
    if (a.arrays[i].size() != b.arrays[i].size()) return 1.0;
    double diff = 0.0, scale = 0.0;
    for (std::size_t k = 0; k < a.arrays[i].size(); ++k) {
      diff = std::max(diff, std::fabs(a.arrays[i][k] - b.arrays[i][k]));
      scale = std::max(scale, std::fabs(b.arrays[i][k]));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-300));
  }
  return worst;
}

optimizer_config momentum() { return sgd(0.05, 0.9, true, 1e-4); }
optimizer_config adam() {
  optimizer_config c;
  c.kind = optimizer_kind::adam;
  c.lr = 0.005;
  c.weight_decay = 1e-4;
  return c;
}

// P ranks on the full data against one process: ranks identical, equal to one process.
void check_full_data(int P, size_type M, const setup& s, const char* what) {
  const data d(M);
  network<double> single(options());
  const snapshot expected = take(single, train(single, d.view(), s, nullptr));
  CHECK(expected.grown.empty() == (s.evo == evolution::none));
  in_process_group group(P);
  std::vector<snapshot> ranks(P);
  const auto errors = run_ranks(P, [&](int r) {
    network<double> m(options());
    const data_parallel<double> dp = group.rank(r);
    ranks[r] = take(m, train(m, d.view(), s, &dp));
  });
  for (int r = 0; r < P; ++r) CHECK(!errors[r]);
  if (std::any_of(errors.begin(), errors.end(), [](auto& e) { return e != nullptr; })) return;
  for (int r = 1; r < P; ++r) CHECK(identical(ranks[r], ranks[0]));
  const double diff = difference(ranks[0], expected);
  if (!(diff <= 1e-9)) std::printf("  %s, P = %d: relative difference %.3g\n", what, P, diff);
  CHECK(diff <= 1e-9);
  CHECK(ranks[0].steps == expected.steps && expected.steps == s.epochs * ((M + s.batch - 1) / s.batch));
}

}  // namespace

TEST(rank_slices_cover_the_batch) {
  for (size_type B : {0, 1, 2, 5, 20, 101})
    for (int P : {1, 2, 3, 7}) {
      size_type next = 0;
      for (int r = 0; r < P; ++r) {
        const auto [a, b] = rank_slice(B, r, P);
        CHECK(a == next && b >= a);
        next = b;
      }
      CHECK(next == B);
    }
}

TEST(buffer_holds_the_stored_weights_not_rows_times_cols) {
  network<double> m(options(true, true));
  std::size_t expected = gradient_buffer<double>::tail;
  for (auto* L : m.layers) expected += static_cast<std::size_t>(L->nnz()) + static_cast<std::size_t>(L->out);
  expected += 4;       // SReLU t
  expected += 4 * 48;  // batch norm γ, β, running mean, running variance
  CHECK(gradient_buffer<double>::size_of(m) == expected);
  CHECK(m.layers[0]->nnz() < 48 * 20);  // sparse: the stored positions only
  CHECK(rigl_allreduce_size(m) == 48 * 20 + 32 * 48);
}

TEST(pack_times_count_and_unpack_over_total) {
  network<double> m(options());
  const data d(10);
  batch_buffers<double> buf;
  batch_gradients(m, d.view(), buf, "test");
  const snapshot before = take(m);
  std::vector<double> g0(m.layers[0]->gradient(), m.layers[0]->gradient() + m.layers[0]->nnz());
  gradient_buffer<double> gb;
  gb.pack(m, 4, 2.5, 3, false, false);
  CHECK(gb.size() == gradient_buffer<double>::size_of(m));
  CHECK(gb.data()[0] == 4 * g0[0]);
  CHECK(gb.examples() == 4 && gb.correct() == 3 && gb.loss_sum() == 2.5 && gb.stops() == 0 &&
        gb.failures() == 0);
  for (std::size_t i = 0; i < gb.size(); ++i) gb.data()[i] *= 2;  // as if two ranks sent the same
  gb.unpack(m);                                                   // 8 examples: the same mean
  for (std::size_t k = 0; k < g0.size(); ++k) CHECK_CLOSE(m.layers[0]->gradient()[k], g0[k], 1e-15);
  CHECK(difference(take(m), before) == 0.0);
  gb.pack(m, 0, 1.0, 1, true, false);  // an empty slice packs zeros and no loss
  CHECK(gb.data()[0] == 0.0 && gb.loss_sum() == 0.0 && gb.correct() == 0 && gb.stops() == 1);
}

TEST(dropout_column_offset_selects_the_single_process_draws) {
  dropout_layer<double> whole(0.5, 3, 0), part(0.5, 3, 0);
  matrix<double> X(6, 10), Xp(6, 4), Y, Yp;
  for (size_type i = 0; i < 6; ++i)
    for (size_type n = 0; n < 10; ++n) X(i, n) = 1.0 + static_cast<double>(i * 10 + n);
  for (size_type i = 0; i < 6; ++i)
    for (size_type n = 0; n < 4; ++n) Xp(i, n) = X(i, n + 5);
  whole.forward(X, Y, true);
  part.column_offset = 5;
  part.forward(Xp, Yp, true);
  for (size_type i = 0; i < 6; ++i)
    for (size_type n = 0; n < 4; ++n) CHECK(Yp(i, n) == Y(i, n + 5));
}

TEST(full_data_equals_one_process_sgd_momentum) {
  for (auto evo : {evolution::none, evolution::set_epoch, evolution::set_steps, evolution::rigl}) {
    setup s;
    s.opt = momentum();
    s.evo = evo;
    check_full_data(2, 201, s, "momentum");  // last global batch: 1 example for 2 ranks
    check_full_data(3, 202, s, "momentum");  // last global batch: 2 examples for 3 ranks
  }
}

TEST(full_data_equals_one_process_adam) {
  for (auto evo :
       {evolution::none, evolution::set_epoch, evolution::set_steps, evolution::rigl, evolution::rigl_step}) {
    setup s;
    s.opt = adam();
    s.evo = evo;
    check_full_data(2, 201, s, "adam");
    check_full_data(3, 202, s, "adam");
  }
}

TEST(full_data_equals_one_process_with_input_noise) {
  setup s;
  s.opt = momentum();
  s.evo = evolution::rigl;
  s.noise = 0.3;
  check_full_data(3, 143, s, "noise");
}

TEST(full_data_with_more_ranks_than_some_batches) {
  setup s;
  s.opt = adam();
  s.evo = evolution::rigl;
  s.batch = 2;  // every rank but two has an empty slice in every step
  s.epochs = 2;
  check_full_data(3, 31, s, "batch 2");
}

// Two shards whose local batches interleave into the batches one process sees (no shuffle):
// shard 0 holds the first half of every global batch, shard 1 the second half.
TEST(sharded_equals_one_process_on_the_interleaved_batches) {
  const size_type M = 201, b = 10;  // global batch 2b; the last global batch has 1 example
  const data d(M);
  std::vector<size_type> rows0, rows1;
  for (size_type n = 0; n < M; ++n) ((n % (2 * b)) < b ? rows0 : rows1).push_back(n);
  const data shard[2] = {d.subset(rows0), d.subset(rows1)};
  for (auto evo : {evolution::none, evolution::rigl, evolution::set_steps}) {
    setup s;
    s.opt = adam();
    s.evo = evo;
    s.batch = 2 * b;
    network<double> single(options());
    const snapshot expected = take(single, train(single, d.view(), s, nullptr, false));
    in_process_group group(2);
    std::vector<snapshot> ranks(2);
    const std::int64_t steps = (M + 2 * b - 1) / (2 * b);  // 11: shard 1 runs out one step early
    const auto errors = run_ranks(2, [&](int r) {
      network<double> m(options());
      const data_parallel<double> dp = group.rank(r, true, steps);
      setup local = s;
      local.batch = b;
      ranks[r] = take(m, train(m, shard[r].view(), local, &dp, false));
    });
    CHECK(!errors[0] && !errors[1]);
    if (errors[0] || errors[1]) continue;
    CHECK(identical(ranks[0], ranks[1]));
    const double diff = difference(ranks[0], expected);
    if (!(diff <= 1e-9)) std::printf("  sharded: relative difference %.3g\n", diff);
    CHECK(diff <= 1e-9);
  }
}

TEST(sharded_with_shuffle_keeps_ranks_identical) {
  const data d0(77, 1), d1(60, 2);  // shards of different sizes
  setup s;
  s.opt = momentum();
  s.evo = evolution::rigl;
  s.batch = 8;
  in_process_group group(2);
  std::vector<snapshot> ranks(2);
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options());
    const data_parallel<double> dp = group.rank(r, true, (77 + 7) / 8);
    ranks[r] = take(m, train(m, (r == 0 ? d0 : d1).view(), s, &dp));
  });
  CHECK(!errors[0] && !errors[1]);
  CHECK(identical(ranks[0], ranks[1]));
  CHECK(ranks[0].steps == 3 * 10);
}

TEST(batch_norm_ranks_stay_identical) {
  const data d(120);
  setup s;
  s.opt = momentum();
  s.evo = evolution::rigl;
  in_process_group group(2);
  std::vector<snapshot> ranks(2);
  std::vector<double> mean0(2);
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options(true, true));
    const data_parallel<double> dp = group.rank(r);
    ranks[r] = take(m, train(m, d.view(), s, &dp));
  });
  CHECK(!errors[0] && !errors[1]);
  CHECK(identical(ranks[0], ranks[1]));
}

// The running mean follows the mean of the GLOBAL batch: the count-weighted mean of the ranks'
// running means is exact for the mean.
TEST(batch_norm_running_mean_follows_the_global_batch) {
  const data d(12);
  network<double> single(options(false, true));
  std::vector<std::int64_t> all(12);
  std::iota(all.begin(), all.end(), 0);
  batch_buffers<double> buf;
  single.forward_backward(buf.X, buf.gather(d.view(), all.data(), 12));
  const snapshot expected = take(single);
  in_process_group group(2);
  std::vector<snapshot> ranks(2);
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options(false, true));
    const data_parallel<double> dp = group.rank(r);
    std::vector<std::int64_t> idx(6);
    std::iota(idx.begin(), idx.end(), 6 * r);
    batch_buffers<double> b;
    const loss_result lr = m.forward_backward(b.X, b.gather(d.view(), idx.data(), 6));
    gradient_buffer<double> gb;
    gb.pack(m, 6, lr.loss_sum, lr.correct, false, false);
    dp.allreduce_sum(gb.data(), gb.size());
    gb.unpack(m);
    ranks[r] = take(m);
  });
  CHECK(!errors[0] && !errors[1]);
  CHECK(identical(ranks[0], ranks[1]));
  // arrays: W0, b0, W1, b1 (layer before batch norm: 0), then batch norm γ, β, mean, variance
  std::size_t bn = 0;
  for (std::size_t i = 0; i < expected.arrays.size(); ++i)
    if (expected.arrays[i].size() == 48) bn = i;  // the last (D = 48) array: running variance
  const auto& mean = ranks[0].arrays[bn - 1];
  for (std::size_t k = 0; k < mean.size(); ++k) CHECK_CLOSE(mean[k], expected.arrays[bn - 1][k], 1e-13);
}

TEST(evaluate_full_data_and_sharded_equal_one_process) {
  const data d(257);
  network<double> single(options());
  const epoch_result expected = evaluate(single, d.view(), 50);
  for (bool sharded : {false, true}) {
    in_process_group group(3);
    std::vector<epoch_result> results(3);
    const auto errors = run_ranks(3, [&](int r) {
      network<double> m(options());
      const data_parallel<double> dp = group.rank(r, sharded);
      if (!sharded) {
        results[r] = evaluate(m, d.view(), 50, {}, &dp);
        return;
      }
      std::vector<size_type> rows;
      for (size_type n = r; n < d.M; n += 3) rows.push_back(n);
      const data shard = d.subset(rows);
      results[r] = evaluate(m, shard.view(), 50, {}, &dp);
    });
    for (int r = 0; r < 3; ++r) {
      CHECK(!errors[r]);
      CHECK(results[r].examples == d.M);
      CHECK_CLOSE(results[r].loss, expected.loss, 1e-12);
      CHECK(results[r].accuracy == expected.accuracy);
    }
  }
}

TEST(rigl_on_a_batch_equals_one_process) {
  const data d(41);
  network<double> single(options());
  const auto expected_records = rigl_update_on_batch(single, d.view(), 0.3);
  const snapshot expected = take(single, expected_records);
  in_process_group group(3);
  std::vector<snapshot> ranks(3);
  const auto errors = run_ranks(3, [&](int r) {
    network<double> m(options());
    const data_parallel<double> dp = group.rank(r);
    ranks[r] = take(m, rigl_update_on_batch(m, d.view(), 0.3, dp));
  });
  for (int r = 0; r < 3; ++r) CHECK(!errors[r]);
  CHECK(identical(ranks[0], ranks[1]) && identical(ranks[0], ranks[2]));
  CHECK(difference(ranks[0], expected) <= 1e-12);
}

// The DW that RigL leaves on the new pattern (used when the optimizer step is not skipped)
// equals the gradient of the batch on that pattern.
TEST(rigl_gradient_after_matches_sddmm) {
  const data d(30);
  network<double> a(options()), b(options());
  batch_buffers<double> buf;
  batch_gradients(a, d.view(), buf, "test");
  batch_gradients(b, d.view(), buf, "test");
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    auto* La = a.sparse_layer(l);
    if (!La) continue;
    rigl_update(*La, 0.3, a.layer_output_gradient(l), a.layer_input(l, buf.X));  // sddmm
    rigl_update(*b.sparse_layer(l), 0.3,
                batch_gradient_panel(b.layer_output_gradient(l), b.layer_input(l, buf.X)));
    CHECK(La->pattern.indices == b.sparse_layer(l)->pattern.indices);
    for (size_type k = 0; k < La->nnz(); ++k) CHECK_CLOSE(b.sparse_layer(l)->DW[k], La->DW[k], 1e-13);
  }
}

// A rank whose data is bad fails its checks; the others learn it from the first all-reduce:
// every rank throws and no rank has taken a step.
TEST(a_failing_rank_stops_every_rank) {
  data bad(40);
  bad.y[5] = 7;  // outside [0, 3)
  const data good(40);
  for (bool sharded : {false, true}) {
    in_process_group group(3);
    std::vector<std::int64_t> steps(3, -1);
    const auto errors = run_ranks(3, [&](int r) {
      network<double> m(options());
      const data_parallel<double> dp = group.rank(r, sharded, 2);
      try {
        train_epoch(m, (r == 1 ? bad : good).view(), 20, momentum(), 1, 0, true, {}, nullptr, 1, 0.0, false,
                    &dp);
      } catch (...) {
        steps[r] = m.steps;
        throw;
      }
    });
    for (int r = 0; r < 3; ++r) {
      CHECK(errors[r]);
      CHECK(steps[r] == 0);
      try {
        if (errors[r]) std::rethrow_exception(errors[r]);
      } catch (const peer_failure&) {
        CHECK(r != 1);
      } catch (const std::invalid_argument& e) {
        CHECK(r == 1);
        CHECK(std::string(e.what()).find("label 7") != std::string::npos);
      } catch (...) {
        CHECK(false);
      }
    }
  }
}

// Batch norm refuses a slice of 1 example in training: that rank's forward fails in step 1,
// after one step was taken; every rank stops before the step's update.
TEST(a_failing_forward_stops_every_rank_before_the_update) {
  const data d(21);  // batch 20 then 1; with 2 ranks the second step gives rank 1 one example
  in_process_group group(2);
  std::vector<snapshot> ranks(2);
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options(true, true));
    const data_parallel<double> dp = group.rank(r);
    try {
      train_epoch(m, d.view(), 20, momentum(), 1, 0, true, {}, nullptr, 1, 0.0, false, &dp);
    } catch (...) {
      ranks[r] = take(m);
      throw;
    }
  });
  CHECK(errors[0] && errors[1]);
  CHECK(identical(ranks[0], ranks[1]));
  CHECK(ranks[0].steps == 1);
  CHECK(ranks[0].dropout_calls == std::vector<std::uint64_t>{1});  // the failed step's call undone
}

// Rank 1's poll asks to stop before step 3: every rank stops there, rank 0 by its peer.
TEST(a_stop_on_one_rank_stops_every_rank) {
  const data d(200);
  in_process_group group(2);
  std::vector<snapshot> ranks(2);
  std::vector<epoch_result> results(2);
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options());
    const data_parallel<double> dp = group.rank(r);
    int polls = 0;
    const stop_poll poll = [&](const epoch_result&) { return r == 1 && polls++ == 3; };
    results[r] = train_epoch(m, d.view(), 20, momentum(), 1, 0, true, poll, nullptr, 1, 0.0, false, &dp);
    ranks[r] = take(m);
  });
  CHECK(!errors[0] && !errors[1]);
  CHECK(identical(ranks[0], ranks[1]));
  CHECK(ranks[0].steps == 3);
  CHECK(results[0].stopped && results[1].stopped);
  CHECK(results[0].stopped_by_peer && !results[1].stopped_by_peer);
  CHECK(results[0].examples == 60 && results[1].examples == 60);
}

// A diverging run: the non-finite GLOBAL loss stops every rank at the same batch.
TEST(nonfinite_loss_stops_every_rank_together) {
  const data d(200);
  in_process_group group(2);
  std::vector<epoch_result> results(2);
  std::vector<snapshot> ranks(2);
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options(false));
    const data_parallel<double> dp = group.rank(r);
    for (int e = 0; e < 20 && results[r].nonfinite_batch < 0; ++e)
      results[r] = train_epoch(m, d.view(), 20, sgd(1e4, 0.99), 1, static_cast<std::uint64_t>(e), true, {},
                               nullptr, 1, 0.0, true, &dp);
    ranks[r] = take(m);
  });
  CHECK(!errors[0] && !errors[1]);
  CHECK(results[0].nonfinite_batch >= 0);
  CHECK(results[0].nonfinite_batch == results[1].nonfinite_batch);
  CHECK(identical(ranks[0], ranks[1]));
}

// An all-reduce that throws (a broken communicator) leaves the network as after the previous
// step and propagates.
TEST(a_throwing_allreduce_leaves_the_previous_step) {
  const data d(200);
  in_process_group group(2);
  std::vector<snapshot> ranks(2), before(2);
  std::atomic<int> calls{0};
  const auto errors = run_ranks(2, [&](int r) {
    network<double> m(options());
    data_parallel<double> dp = group.rank(r);
    auto inner = dp.allreduce_sum;
    dp.allreduce_sum = [&, inner, r](double* data, std::size_t n) {
      if (r == 0 && ++calls == 5) {
        group.fail();
        throw std::runtime_error("lost connection");
      }
      inner(data, n);
    };
    evolution_plan plan = plan_for(setup{momentum(), evolution::rigl_step});
    plan.rigl->delta_t = 4;  // the 5th all-reduce is the first panel of the update at step 4
    try {
      train_epoch(m, d.view(), 20, momentum(), 1, 0, true, {}, &plan, 1, 0.0, false, &dp);
    } catch (...) {
      ranks[r] = take(m);
      throw;
    }
  });
  CHECK(errors[0] && errors[1]);
  CHECK(identical(ranks[0], ranks[1]));
  CHECK(ranks[0].steps == 3 && ranks[0].topology_updates == 0);
  CHECK(ranks[0].dropout_calls == std::vector<std::uint64_t>{3});
}

TEST(checks_of_the_options) {
  network<double> m(options());
  const data d(20);
  data_parallel<double> dp;
  dp.size = 2;
  CHECK_THROWS(train_epoch(m, d.view(), 10, momentum(), 1, 0, true, {}, nullptr, 1, 0.0, false, &dp));
  dp.allreduce_sum = [](double*, std::size_t) {};
  dp.rank = 2;
  CHECK_THROWS(train_epoch(m, d.view(), 10, momentum(), 1, 0, true, {}, nullptr, 1, 0.0, false, &dp));
  dp.rank = 1;  // an all-reduce that does not sum: the example count gives it away
  bool thrown = false;
  try {
    train_epoch(m, d.view(), 10, momentum(), 1, 0, true, {}, nullptr, 1, 0.0, false, &dp);
  } catch (const std::runtime_error& e) {
    thrown = std::string(e.what()).find("must sum the buffer") != std::string::npos;
  }
  CHECK(thrown);
  CHECK(m.steps == 0);
}

int main() {
  set_num_threads(1);
  return check::run_all();
}
