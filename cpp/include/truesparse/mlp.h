// A multilayer perceptron: linear layers (sparse or dense) joined by activation layers,
// ending in logits that the loss turns into a gradient. Buffers are owned here, one per
// layer, feature-major (features, N):
//   X -> [linear 0] -> Z[0] -> act -> A[0] -> [linear 1] -> ... -> Z[L-1] (logits)
//   D[l] holds ∂L/∂A[l] on arrival and ∂L/∂Z[l] after the activation's backward (in place).
#pragma once

#include <memory>
#include <vector>

#include "truesparse/activation.h"
#include "truesparse/density.h"
#include "truesparse/init.h"
#include "truesparse/linear.h"
#include "truesparse/loss.h"

namespace truesparse {

struct mlp_options {
  std::vector<index_t> sizes;       // D_0, D_1, ..., D_L
  std::vector<double> densities;    // L entries in (0, 1]; 1 makes a dense layer
  activation_kind activation = activation_kind::relu;
  double alpha = 0.01;
  loss_kind loss = loss_kind::softmax_cross_entropy;
  init_kind init = init_kind::he_normal;
  fan_mode fan = fan_mode::actual;
  std::uint64_t seed = 0;
  sparse_backend backend = sparse_backend::mkl;
};

template <class T>
class mlp {
 public:
  std::vector<std::unique_ptr<linear_layer<T>>> layers;
  std::vector<activation> acts;  // one per hidden layer
  loss_kind loss;
  sparse_backend backend;
  std::uint64_t seed;
  init_kind init;
  fan_mode fan;
  std::int64_t steps = 0;              // optimizer steps (batches) trained so far
  std::uint64_t topology_updates = 0;  // SET/RigL updates applied so far (seeds their streams)

  explicit mlp(const mlp_options& o)
      : loss(o.loss), backend(o.backend), seed(o.seed), init(o.init), fan(o.fan) {
    check_sizes(o.sizes, "MLP");
    const std::size_t L = o.sizes.size() - 1;
    TS_REQUIRE(o.densities.size() == L, "[MLP] ", o.densities.size(), " densities given for ", L,
               " layers");
    for (std::size_t l = 0; l < L; ++l) {
      const double d = o.densities[l];
      TS_REQUIRE(d > 0 && d <= 1, "[MLP] density of layer ", l, " is ", d, ", it must be in (0, 1]");
      const index_t D = o.sizes[l], K = o.sizes[l + 1];
      rng g(derive_seed(o.seed, 1, l));
      if (d >= 1) {
        auto layer = std::make_unique<dense_linear<T>>(D, K);
        for (auto& w : layer->W) w = static_cast<T>(draw_weight(o.init, D, K, g));
        layers.push_back(std::move(layer));
      } else {
        auto layer = std::make_unique<sparse_linear<T>>(
            random_pattern(K, D, nnz_for_density(d, D, K), g), backend, l > 0);
        init_values(layer->pattern, o.init, o.fan, g, layer->W.data());
        layer->init = o.init;
        layer->fan = o.fan;
        layers.push_back(std::move(layer));
      }
      if (l + 1 < L) acts.push_back(activation{o.activation, o.alpha, static_cast<int>(l) + 1});
    }
    Z.resize(L);
    A.resize(L);
    D.resize(L);
  }

  size_type inputs() const { return layers.front()->in; }
  size_type outputs() const { return layers.back()->out; }

  // Replaces layer l by a dense layer with W (K,D) row-major, or by a sparse one with the
  // given pattern and values; the layer's optimizer state starts at zero.
  void set_dense_layer(std::size_t l, const T* W, const T* b) {
    auto& old = *layers.at(l);
    auto layer = std::make_unique<dense_linear<T>>(old.in, old.out);
    std::copy(W, W + layer->nnz(), layer->W.begin());
    std::copy(b, b + old.out, layer->b.begin());
    layers[l] = std::move(layer);
  }
  void set_sparse_layer(std::size_t l, csr_pattern p, const T* values, const T* b) {
    auto& old = *layers.at(l);
    TS_REQUIRE(p.rows == old.out && p.cols == old.in, "[Linear.set_weights] W is (", p.rows, ", ",
               p.cols, ") but layer ", l, " is (", old.out, ", ", old.in, ")");
    auto layer = std::make_unique<sparse_linear<T>>(std::move(p), backend, l > 0);
    std::copy(values, values + layer->nnz(), layer->W.begin());
    layer->init = init;
    layer->fan = fan;
    std::copy(b, b + old.out, layer->b.begin());
    layers[l] = std::move(layer);
  }

  // Logits (K_L, N) of a feature-major batch X (D_0, N).
  const matrix<T>& forward(const matrix<T>& X) {
    TS_REQUIRE(X.rows == inputs(), "[MLP.forward] X has ", X.rows, " features but the model has ",
               inputs(), " inputs");
    const matrix<T>* in = &X;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      layers[l]->forward(*in, Z[l]);  // (K_l,N) = (K_l,D_l) (D_l,N) + b 1ᵀ
      if (l < acts.size()) {
        acts[l].forward(Z[l], A[l]);
        in = &A[l];
      }
    }
    return Z.back();
  }

  // Forward, loss and backward of one batch: every layer's DW, Db hold the gradient of the
  // batch-mean loss afterwards. Returns the loss summed over the batch and the hit count.
  loss_result forward_backward(const matrix<T>& X, const targets<T>& t) {
    const matrix<T>& logits = forward(X);
    const size_type N = X.cols;
    const std::size_t L = layers.size();
    loss_result r = compute_loss(loss, logits, t, T(1) / static_cast<T>(N), &D[L - 1]);
    for (std::size_t l = L; l-- > 0;) {
      const matrix<T>& in = l == 0 ? X : A[l - 1];
      layers[l]->backward(in, D[l], l == 0 ? nullptr : &D[l - 1]);  // DX (D_l,N) = W_lᵀ DZ
      if (l > 0) acts[l - 1].backward(Z[l - 1], A[l - 1], D[l - 1]);  // DZ = DA ⊙ act'(Z)
    }
    return r;
  }

  void optimize(const optimizer_config& c) {
    for (auto& layer : layers) layer->optimize(c);
  }

  // After forward_backward(X, ...): the input (D_l,N) and the output gradient DZ (K_l,N) of
  // linear layer l in that batch (RigL's grow step uses them).
  const matrix<T>& layer_input(std::size_t l, const matrix<T>& X) const { return l == 0 ? X : A[l - 1]; }
  const matrix<T>& layer_output_gradient(std::size_t l) const { return D[l]; }

  // The sparse layer l, or null for a dense one.
  sparse_linear<T>* sparse_layer(std::size_t l) { return dynamic_cast<sparse_linear<T>*>(layers.at(l).get()); }

 private:
  std::vector<matrix<T>> Z, A, D;
};

}  // namespace truesparse
