// The plain-SGD weight update fused into the SDDMM (sparse_linear::sddmm_sgd_step) against the
// unfused step (DW from the SDDMM, then optimizer_step), in float64 and for every SGD variant
// and schedule; and the memory it saves: no DW array is ever allocated.
#include <cmath>

#include "check.h"
#include "standard_mlp.h"
#include "truesparse/train.h"

using namespace truesparse;

namespace {

double max_difference(network<double>& a, network<double>& b) {
  double diff = 0;
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    auto* A = a.layers[l];
    auto* B = b.layers[l];
    for (size_type k = 0; k < A->nnz(); ++k)
      diff = std::max(diff, std::fabs(A->values()[k] - B->values()[k]));
    for (index_t i = 0; i < A->out; ++i) diff = std::max(diff, std::fabs(A->b[i] - B->b[i]));
  }
  return diff;
}

}  // namespace

TEST(fused_sgd_steps_equal_unfused_steps) {
  const network_options o = testing::standard_mlp({40, 60, 30, 4}, {0.2, 0.3, 1.0});
  const testing::labelled_data<double> data(96, 40, 4, 11);
  const dataset<double>& d = data.d;
  for (int variant = 0; variant < 4; ++variant) {
    optimizer_config c;
    c.lr = 0.05;
    c.momentum = variant == 0 ? 0.0 : 0.9;
    c.nesterov = variant == 2;
    c.weight_decay = variant == 3 ? 1e-3 : 0.0;
    if (variant == 3) {
      c.schedule.kind = schedule_kind::step;
      c.schedule.step_size = 3;
      c.schedule.gamma = 0.5;
    }
    network<double> fused(o), plain(o);
    for (std::uint64_t e = 0; e < 3; ++e) {
      train_epoch(fused, d, 16, c, 1, e, true);  // fuses (SGD, no RigL)
      // the same epoch, unfused: forward_backward without the configuration, then optimize
      batch_buffers<double> buf;
      const std::vector<std::int64_t> order = epoch_order(d.M, true, derive_seed(1, 2, e));
      for (size_type start = 0; start < d.M; start += 16) {
        const targets<double> t = buf.gather(d, order.data() + start, 16);
        plain.forward_backward(buf.X, t);
        ++plain.steps;
        plain.optimize(c);
      }
    }
    CHECK(max_difference(fused, plain) < 1e-12);
    for (std::size_t l = 0; l < 2; ++l) {
      CHECK(fused.sparse_layer(l)->DW.empty());  // never allocated
      CHECK(!plain.sparse_layer(l)->DW.empty());
    }
  }
}

TEST(adam_and_rigl_keep_the_gradient) {
  const network_options o = testing::standard_mlp({20, 30, 3}, {0.3, 1.0});
  const testing::labelled_data<double> data(32, 20, 3, 3);
  optimizer_config adam;
  adam.kind = optimizer_kind::adam;
  adam.lr = 1e-3;
  network<double> net(o);
  train_epoch(net, data.d, 8, adam, 1, 0, true);
  CHECK(net.sparse_layer(0)->DW.size() == static_cast<std::size_t>(net.sparse_layer(0)->nnz()));
}

TEST_MAIN()
