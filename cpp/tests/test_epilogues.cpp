// Fused epilogues (network.h): a sparse layer followed by an activation computes the activation
// in its forward product's epilogue, and the activation's backward (and the bias gradient of
// the linear layer before it) in the input-gradient product's epilogue of the layer after.
// Against the same network with fuse_epilogues = false: the same weights, biases, losses and
// outputs, bit for bit, for every activation, both backends, float and double, bfloat16
// operands, SGD (fused into the SDDMM) and Adam, RigL, batch norm between a layer and its
// activation, a dense layer before an activation, batches of one and several column tiles,
// on 1 and 2 threads; and the activations' gradient buffers are never allocated, nor the outputs
// of sparse layers whose activation is fused on both sides (their signs instead). With bfloat16
// operands, the epilogues also fill the layers' bfloat16 copies of their operands, and a float
// activation or output gradient that only its copy is read from is never allocated (RigL keeps
// them).
#include <algorithm>
#include <cstring>

#include "check.h"
#include "standard_mlp.h"
#include "truesparse/train.h"

using namespace truesparse;

namespace {

template <class T>
bool same_parameters(network<T>& a, network<T>& b) {
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    auto* A = a.layers[l];
    auto* B = b.layers[l];
    if (A->nnz() != B->nnz()) return false;
    if (std::memcmp(A->values(), B->values(), sizeof(T) * A->nnz()) != 0) return false;
    if (A->b != B->b) return false;
  }
  for (std::size_t m = 0; m < a.modules.size(); ++m) {
    auto pa = a.modules[m]->parameters(), pb = b.modules[m]->parameters();
    for (std::size_t k = 0; k < pa.size(); ++k)
      if (std::memcmp(pa[k].value, pb[k].value, sizeof(T) * pa[k].size) != 0) return false;
  }
  return true;
}

// Trains a fused and an unfused copy of o side by side and compares them after every epoch.
template <class T>
void check_fused_equals_unfused(network_options o, const optimizer_config& c, size_type batch, int threads,
                                bool rigl = false) {
  set_num_threads(threads);
  o.fuse_epilogues = true;
  network<T> fused(o);
  o.fuse_epilogues = false;
  network<T> plain(o);
  const testing::labelled_data<T> data(3 * batch + 7, o.inputs, fused.outputs(), 5);
  evolution_plan plan_f, plan_p;
  if (rigl) {
    rigl_options r;
    r.delta_t = 2;
    r.t_end = 100;
    plan_f.rigl = plan_p.rigl = r;
  }
  for (std::uint64_t e = 0; e < 3; ++e) {
    const auto rf = train_epoch(fused, data.d, batch, c, 7, e, true, {}, rigl ? &plan_f : nullptr);
    const auto rp = train_epoch(plain, data.d, batch, c, 7, e, true, {}, rigl ? &plan_p : nullptr);
    CHECK(rf.loss == rp.loss);
    CHECK(same_parameters(fused, plain));
  }
  // with bfloat16 operands, a float activation that only its bfloat16 copy is read from is
  // never allocated (float_activation_unused), except while RigL reads it (layer_input)
  int float_unused = 0;
  for (std::size_t m = 0; m + 1 < fused.modules.size(); ++m) {
    CHECK(!plain.float_activation_unused(m, true) && !plain.float_activation_unused(m, false));
    if (!fused.float_activation_unused(m, true)) continue;
    ++float_unused;
    CHECK((fused.output_buffers()[m + 1].data.capacity() > 0) == rigl);
    CHECK(plain.output_buffers()[m + 1].data.capacity() > 0);
    const std::size_t l = static_cast<std::size_t>(
        std::find(fused.module_of.begin(), fused.module_of.end(), m + 2) - fused.module_of.begin());
    const matrix<T> none;  // (layer_input reads X only for the first layer)
    if (!rigl) CHECK_THROWS(fused.layer_input(l, none));
  }
  CHECK(float_unused == 0 || o.operands == operand_dtype::bfloat16);
  std::vector<T> out_f(static_cast<std::size_t>(data.d.M * fused.outputs())), out_p(out_f.size());
  predict_logits(fused, data.X.data(), data.d.M, data.d.D, out_f.data());
  predict_logits(plain, data.X.data(), data.d.M, data.d.D, out_p.data());
  CHECK(out_f == out_p);
  // the gradient buffers of activations whose backward is fused are never allocated
  const auto& Df = fused.output_gradient_buffers();
  const auto& Dp = plain.output_gradient_buffers();
  int unused = 0;
  for (std::size_t m = 0; m < fused.modules.size(); ++m) {
    CHECK(!plain.gradient_unused(m));
    if (!fused.gradient_unused(m)) continue;
    ++unused;
    CHECK(Df[m].data.capacity() == 0);
    CHECK(Dp[m].data.capacity() > 0);
  }
  CHECK(unused > 0 || o.layers.size() < 4);
  // with bfloat16 operands, nor the output gradients of sparse layers that only their bfloat16
  // copies are read from (float_gradient_unused), except while RigL reads them
  int gradient_copy_only = 0;
  for (std::size_t m = 0; m < fused.modules.size(); ++m) {
    CHECK(!plain.float_gradient_unused(m));
    if (!fused.float_gradient_unused(m)) continue;
    ++gradient_copy_only;
    CHECK((Df[m].data.capacity() > 0) == rigl);
    CHECK(Dp[m].data.capacity() > 0);
    const std::size_t l = static_cast<std::size_t>(
        std::find(fused.module_of.begin(), fused.module_of.end(), m) - fused.module_of.begin());
    if (!rigl) CHECK_THROWS(fused.layer_output_gradient(l));
  }
  CHECK((gradient_copy_only > 0) == (float_unused > 0));
  // nor the outputs Z of native sparse layers whose activation is fused into both their forward
  // and the next sparse layer's backward: that backward reads the signs of Z (ReLU family), or
  // the activation's output; and a forward that does not train (predict_logits, with more
  // columns than a batch) keeps no Z of any sparse layer it fuses
  auto sparse = [&](std::size_t m) {
    return m < fused.modules.size() && fused.modules[m]->as_linear() &&
           fused.modules[m]->as_linear()->is_sparse();
  };
  for (std::size_t m = 0; m < fused.modules.size(); ++m) {
    const auto* act = m + 1 < fused.modules.size()
                          ? dynamic_cast<const activation_layer<T>*>(fused.modules[m + 1].get())
                          : nullptr;
    const bool native = o.backend == sparse_backend::native;
    const bool relu_family = act && act->act.kind != activation_kind::sigmoid &&
                             act->act.kind != activation_kind::tanh &&
                             act->act.kind != activation_kind::identity;
    const std::size_t z_bytes = fused.output_buffers()[m].data.capacity() * sizeof(T);
    if (sparse(m) && act && native && sparse(m + 2)) {
      CHECK(z_bytes == 0);
      CHECK((fused.sign_buffers()[m].data.capacity() > 0) == relu_family);
      CHECK(plain.output_buffers()[m].data.capacity() > 0);
    } else {
      CHECK(fused.sign_buffers()[m].data.capacity() == 0);
      if (sparse(m) && act && native)  // kept for an unfused backward: a training batch's columns
        CHECK(z_bytes <= sizeof(T) * static_cast<std::size_t>(fused.modules[m]->as_linear()->out * batch));
    }
  }
  set_num_threads(2);
}

optimizer_config sgd_momentum() {
  optimizer_config c;
  c.lr = 0.05;
  c.momentum = 0.9;
  c.nesterov = true;
  return c;
}

}  // namespace

TEST(every_activation_fused_equals_unfused) {
  const activation_kind kinds[] = {activation_kind::relu,     activation_kind::leaky_relu,
                                   activation_kind::all_relu, activation_kind::sigmoid,
                                   activation_kind::tanh,     activation_kind::identity};
  for (activation_kind k : kinds) {
    // sparse, sparse, dense, sparse: the dense layer's bias gradient comes from a fused epilogue
    const network_options o = testing::standard_mlp({30, 50, 40, 36, 4}, {0.3, 0.25, 1.0, 0.5}, k, 0.2);
    const network<float> probe(o);  // layer 0's Z is not kept; layer 1's is, for the dense layer
    CHECK(probe.drops_preactivation(0) && !probe.drops_preactivation(2));
    check_fused_equals_unfused<float>(o, sgd_momentum(), 16, 1);
    check_fused_equals_unfused<double>(o, sgd_momentum(), 16, 2);
  }
}

TEST(backends_operands_optimizers_and_batches) {
  for (sparse_backend be : {sparse_backend::native, sparse_backend::mkl}) {
    network_options o =
        testing::standard_mlp({30, 50, 40, 4}, {0.3, 0.25, 0.5}, activation_kind::all_relu, 0.3);
    o.backend = be;
    for (int threads : {1, 2}) {
      check_fused_equals_unfused<float>(o, sgd_momentum(), 16, threads);
      check_fused_equals_unfused<float>(o, sgd_momentum(), 130, threads);  // two column tiles
    }
    optimizer_config adam;
    adam.kind = optimizer_kind::adam;
    adam.lr = 1e-3;
    check_fused_equals_unfused<float>(o, adam, 24, 2);
    check_fused_equals_unfused<float>(o, adam, 24, 2, true);  // RigL reads D of the linear layers
  }
  network_options o = testing::standard_mlp({30, 50, 40, 4}, {0.3, 0.25, 0.5});
  o.operands = operand_dtype::bfloat16;
  const network<float> probe(o);  // ReLU: only the bfloat16 copies of both activations are read
  CHECK(probe.float_activation_unused(0, true) && probe.float_activation_unused(2, true));
  CHECK(probe.float_activation_unused(0, false) && !probe.float_activation_unused(4, false));
  CHECK(probe.float_gradient_unused(0) && probe.float_gradient_unused(2) && !probe.float_gradient_unused(4));
  check_fused_equals_unfused<float>(o, sgd_momentum(), 16, 2);
  optimizer_config adam;
  adam.kind = optimizer_kind::adam;
  adam.lr = 1e-3;
  check_fused_equals_unfused<float>(o, adam, 24, 2, true);     // RigL keeps and reads them
  check_fused_equals_unfused<float>(o, sgd_momentum(), 1, 1);  // a batch of one
  o = testing::standard_mlp({30, 50, 40, 36, 4}, {0.3, 0.25, 0.3, 0.5});
  o.operands = operand_dtype::bfloat16;
  check_fused_equals_unfused<float>(o, sgd_momentum(), 130, 2);  // copies filled over two column tiles
}

// With bfloat16 operands, the fused epilogues fill the bfloat16 copies of a sparse layer's
// operands (its input after an activation, its output gradient before one) from the rows in L1:
// the layers round only the network's input and the loss gradient themselves.
TEST(bfloat16_copies_are_filled_by_the_epilogues) {
  network_options o = testing::standard_mlp({30, 50, 40, 36, 4}, {0.3, 0.25, 0.3, 0.5});
  o.operands = operand_dtype::bfloat16;
  const testing::labelled_data<float> data(4 * 16, o.inputs, 4, 5);
  const std::uint64_t steps = 4;
  for (bool fuse : {true, false}) {
    o.fuse_epilogues = fuse;
    network<float> net(o);
    train_epoch(net, data.d, 16, sgd_momentum(), 7, 0, true);
    const std::uint64_t rounded[2][4] = {{steps, 0, 0, steps},  // fused: X of layer 0, DZ of layer 3
                                         {2 * steps, 2 * steps, 2 * steps, 2 * steps}};
    for (std::size_t l = 0; l < 4; ++l)
      CHECK(net.sparse_layer(l)->copies_rounded == rounded[fuse ? 0 : 1][l]);
  }
}

TEST(batch_norm_between_a_layer_and_its_activation) {
  network_options o;
  o.inputs = 20;
  auto add = [&](layer_kind k, size_type size = 0, double density = 1.0) {
    layer_spec s;
    s.kind = k;
    s.size = size;
    s.density = density;
    o.layers.push_back(s);
  };
  add(layer_kind::linear, 40, 0.3);
  add(layer_kind::batch_norm);
  add(layer_kind::activation);
  add(layer_kind::linear, 30, 0.3);  // fuses the activation's backward; D of batch norm is computed
  add(layer_kind::activation);
  add(layer_kind::dropout);  // not an activation: no fusion around it
  add(layer_kind::linear, 3, 0.5);
  network<float> probe(o);
  CHECK(probe.fuses_backward(3) && !probe.fuses_forward(0) && probe.fuses_forward(3));
  CHECK(!probe.fuses_backward(6));
  check_fused_equals_unfused<float>(o, sgd_momentum(), 16, 2);
}

TEST_MAIN()
