// Tests of the network and the epoch loop: training reduces the loss, results are identical for
// 1 and 2 threads, and bad data sets are rejected.
#include "check.h"
#include "standard_mlp.h"
#include "truesparse/runtime.h"
#include "truesparse/train.h"

using namespace truesparse;

struct toy {  // two Gaussian blobs per class in 20 dimensions
  std::vector<float> X;
  std::vector<std::int32_t> y;
  size_type M = 600, D = 20;
  toy() {
    rng g(99);
    for (size_type n = 0; n < M; ++n) {
      const int c = static_cast<int>(n % 3);
      y.push_back(c);
      for (size_type d = 0; d < D; ++d) X.push_back(static_cast<float>(g.normal() + (d % 3 == c ? 1.5 : 0)));
    }
  }
  dataset<float> data() const { return {X.data(), M, D, y.data(), nullptr, 0}; }
};

static network_options options(sparse_backend be, std::vector<double> densities = {0.3, 0.2, 1.0}) {
  network_options o = testing::standard_mlp({20, 64, 32, 3}, densities);
  o.seed = 42;
  o.backend = be;
  return o;
}

TEST(training_reduces_loss) {
  toy t;
  network<float> m(options(sparse_backend::mkl));
  const auto before = evaluate(m, t.data());
  for (int e = 0; e < 5; ++e) train_epoch(m, t.data(), 32, sgd(0.05, 0.9, true, 0.0), 42, e, true);
  const auto after = evaluate(m, t.data());
  CHECK(after.loss < 0.5 * before.loss);
  CHECK(after.accuracy > 0.9);
}

TEST(same_seed_same_weights_for_any_thread_count) {
  toy t;
  for (auto be : {sparse_backend::mkl, sparse_backend::native}) {
    std::vector<std::vector<float>> runs;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      network<float> m(options(be));
      for (int e = 0; e < 2; ++e) train_epoch(m, t.data(), 50, sgd(0.05, 0.9, true, 1e-4), 42, e, true);
      std::vector<float> all;
      for (auto& l : m.layers) {
        all.insert(all.end(), l->values(), l->values() + l->nnz());
        all.insert(all.end(), l->b.begin(), l->b.end());
      }
      runs.push_back(all);
    }
    CHECK(runs[0] == runs[1]);
  }
  set_num_threads(2);
}

TEST(backends_agree) {
  toy t;
  network<double> a([] {
    auto o = options(sparse_backend::mkl);
    return o;
  }());
  network<double> b([] {
    auto o = options(sparse_backend::native);
    return o;
  }());
  std::vector<double> X(t.X.begin(), t.X.end());
  dataset<double> d{X.data(), t.M, t.D, t.y.data(), nullptr, 0};
  train_epoch(a, d, 50, sgd(0.05, 0.9, false, 0.0), 1, 0, true);
  train_epoch(b, d, 50, sgd(0.05, 0.9, false, 0.0), 1, 0, true);
  for (std::size_t l = 0; l < a.layers.size(); ++l)
    for (size_type k = 0; k < a.layers[l]->nnz(); ++k)
      CHECK_CLOSE(a.layers[l]->values()[k], b.layers[l]->values()[k], 1e-10);
}

TEST(bad_data_is_rejected) {
  toy t;
  network<float> m(options(sparse_backend::mkl));
  auto d = t.data();
  d.D = 19;
  CHECK_THROWS(train_epoch(m, d, 10, optimizer_config{}, 0, 0, true));
  d = t.data();
  d.M = 0;
  CHECK_THROWS(train_epoch(m, d, 10, optimizer_config{}, 0, 0, true));
  d = t.data();
  CHECK_THROWS(train_epoch(m, d, 0, optimizer_config{}, 0, 0, true));
  std::vector<std::int32_t> bad = t.y;
  bad[5] = 3;
  d.labels = bad.data();
  CHECK_THROWS(train_epoch(m, d, 10, optimizer_config{}, 0, 0, true));
  CHECK_THROWS(network<float>{options(sparse_backend::mkl, {0.3, 0.0, 1.0})});
}

TEST_MAIN()
