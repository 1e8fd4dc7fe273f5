// A feed-forward network: a sequence of layers (linear ones, sparse or dense, and activation,
// batch norm, dropout, softmax, SReLU, ... layers), built here from a list of layer specs, and
// ending in outputs that the loss turns into a gradient. (The standard MLP is one such list:
// Linear, activation, ..., Linear; Python's truesparse.MLP builds it.)
// Buffers are owned here, one per layer, feature-major (features, N):
//   X -> [layer 0] -> Y[0] -> [layer 1] -> Y[1] -> ... -> Y[M-1] (network output)
//   D[m] = ∂L/∂Y[m]; layer m's backward turns D[m] into D[m-1].
// The constructor checks its options before it allocates anything: their values (validate),
// then the sizes and stored weights against the 32-bit indices and the memory the model needs
// against what the process can get (check_network_fits, memory.h).
#pragma once

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "truesparse/density.h"
#include "truesparse/init.h"
#include "truesparse/layers.h"
#include "truesparse/linear.h"
#include "truesparse/loss.h"
#include "truesparse/runtime.h"

namespace truesparse {

enum class layer_kind { linear, activation, softmax, log_softmax, batch_norm, dropout, srelu, affine };

// One layer of a network description.
struct layer_spec {
  layer_kind kind = layer_kind::linear;
  size_type size = 0;    // linear: number of outputs (at most max_layer_size, memory.h)
  double density = 1.0;  // linear: 1 makes a dense layer
  activation_kind activation = activation_kind::relu;
  double alpha = 0.01;                      // activation: negative slope (leaky_relu, all_relu)
  double p = 0.0;                           // dropout
  double momentum = 0.1;                    // batch_norm
  double eps = 1e-5;                        // batch_norm
  double srelu[4] = {0.0, 0.01, 1.0, 1.0};  // srelu: initial tl, al, tr, ar
};

// A network: the input size and its sequence of layers, with what is shared by all layers.
struct network_options {
  size_type inputs = 0;  // at most max_layer_size (memory.h)
  std::vector<layer_spec> layers;
  loss_kind loss = loss_kind::softmax_cross_entropy;
  double label_smoothing = 0.0;
  init_kind init = init_kind::he_normal;
  fan_mode fan = fan_mode::actual;
  std::uint64_t seed = 0;
  sparse_backend backend = sparse_backend::native;
  operand_dtype operands = operand_dtype::float32;  // what the sparse products gather (linear.h)
  bool fuse_epilogues = true;                       // network::fuse_epilogues (the same results)
  std::string name = "Sequential";                  // the model in error messages ("[Sequential] ...")
  // false: the linear layers are built without weights, to have a state loaded into them
  // (state.h; a checkpoint's load): no pattern is sampled and no weight drawn, sparse layers
  // hold no stored position and dense ones zeros. Sampling and drawing took 85 % of the load of
  // a 784-100,000-100,000-10 model at ε = 10.
  bool draw_weights = true;
};

// Checks the values of network options (label smoothing, sizes, densities, SReLU thresholds,
// at least one linear layer); the other layers' settings are checked by their constructors.
inline void validate(const network_options& o) {
  TS_REQUIRE(o.label_smoothing >= 0 && o.label_smoothing <= 1,
             "[Sequential] label_smoothing must be in [0, 1], got ", o.label_smoothing);
  TS_REQUIRE(o.inputs >= 1, "[Sequential] the number of inputs must be >= 1, got ", o.inputs);
  std::size_t l = 0;
  for (const layer_spec& s : o.layers) {
    if (s.kind == layer_kind::linear) {
      TS_REQUIRE(s.size >= 1, "[Linear] linear layer ", l, " has ", s.size, " outputs, it needs >= 1");
      TS_REQUIRE(s.density > 0 && s.density <= 1, "[Linear] density of layer ", l, " is ", s.density,
                 ", it must be in (0, 1]");
      ++l;
    }
    if (s.kind == layer_kind::activation)
      TS_REQUIRE(std::isfinite(s.alpha), "[activation] alpha must be a finite number, got ", s.alpha);
    if (s.kind == layer_kind::srelu) {
      for (double t : s.srelu)
        TS_REQUIRE(std::isfinite(t), "[SReLU] tl, al, tr, ar must be finite numbers, got ", t);
      TS_REQUIRE(s.srelu[0] < s.srelu[2], "[SReLU] needs tl < tr, got ", s.srelu[0], " and ", s.srelu[2]);
    }
    if (s.kind == layer_kind::batch_norm)
      TS_REQUIRE(std::isfinite(s.eps) && s.eps > 0, "[BatchNorm] eps must be a finite number > 0, got ",
                 s.eps);
  }
  TS_REQUIRE(l > 0, "[Sequential] the network has no linear layer");
}

// Refuses, before anything is allocated, options whose sizes or stored weights do not fit the
// 32-bit indices or whose model needs more memory than this process can get (memory.h, which
// defines it and is included at the end of this file).
inline void check_network_fits(const network_options& o, std::size_t value_bytes);

template <class T>
class network {
 public:
  std::vector<std::unique_ptr<layer<T>>> modules;  // every layer, in order
  std::vector<linear_layer<T>*> layers;            // the linear ones, in order (not owning)
  std::vector<std::size_t> module_of;              // module index of linear layer l
  loss_kind loss;
  double label_smoothing;
  sparse_backend backend;
  operand_dtype operands;
  bool fuse_epilogues;  // see forward()
  std::uint64_t seed;
  init_kind init;
  fan_mode fan;
  std::int64_t steps = 0;              // optimizer steps (batches) trained so far
  std::uint64_t topology_updates = 0;  // SET/RigL updates applied so far (seeds their streams)
  thread_governor governor;            // the thread count of each training step (runtime.h)
  // With bfloat16 operands, keep the float activations and output gradients that only their
  // bfloat16 copies are read from (float_activation_unused, float_gradient_unused): set while
  // RigL's grow step reads layer_input and layer_output_gradient.
  bool keep_float_activations = false;

  explicit network(const network_options& o)
      : loss(o.loss),
        label_smoothing(o.label_smoothing),
        backend(o.backend),
        operands(o.operands),
        fuse_epilogues(o.fuse_epilogues),
        seed(o.seed),
        init(o.init),
        fan(o.fan) {
    validate(o);
    check_operands<T>(o.operands, o.backend);
    check_network_fits(o, sizeof(T));
    size_type width = o.inputs;
    int hidden_activations = 0;
    std::uint64_t dropouts = 0;
    for (std::size_t m = 0; m < o.layers.size(); ++m) {
      const layer_spec& s = o.layers[m];
      switch (s.kind) {
        case layer_kind::linear: {
          const std::size_t l = layers.size();
          const auto D = static_cast<index_t>(width), K = static_cast<index_t>(s.size);
          rng g(derive_seed(o.seed, 1, l));
          std::unique_ptr<linear_layer<T>> layer;
          if (s.density >= 1) {
            auto dense = std::make_unique<dense_linear<T>>(D, K);
            if (o.draw_weights)
              for (auto& w : dense->W) w = static_cast<T>(draw_weight(o.init, D, K, g));
            layer = std::move(dense);
          } else {
            csr_pattern p = o.draw_weights ? random_pattern(K, D, nnz_for_density(s.density, D, K), g)
                                           : pattern_from_positions(K, D, {});
            auto sparse = std::make_unique<sparse_linear<T>>(std::move(p), backend, m > 0, operands);
            if (o.draw_weights) init_values(sparse->pattern, o.init, o.fan, g, sparse->W.data());
            sparse->init = o.init;
            sparse->fan = o.fan;
            layer = std::move(sparse);
          }
          layers.push_back(layer.get());
          module_of.push_back(m);
          modules.push_back(std::move(layer));
          width = K;
          break;
        }
        case layer_kind::activation:
          modules.push_back(
              std::make_unique<activation_layer<T>>(activation{s.activation, s.alpha, ++hidden_activations}));
          break;
        case layer_kind::softmax: modules.push_back(std::make_unique<softmax_layer<T>>()); break;
        case layer_kind::log_softmax: modules.push_back(std::make_unique<log_softmax_layer<T>>()); break;
        case layer_kind::batch_norm:
          modules.push_back(std::make_unique<batch_norm_layer<T>>(width, s.momentum, s.eps));
          break;
        case layer_kind::dropout:
          modules.push_back(std::make_unique<dropout_layer<T>>(s.p, o.seed, dropouts++));
          break;
        case layer_kind::srelu:
          modules.push_back(std::make_unique<srelu_layer<T>>(s.srelu[0], s.srelu[1], s.srelu[2], s.srelu[3]));
          break;
        case layer_kind::affine: modules.push_back(std::make_unique<affine_layer<T>>(width)); break;
      }
    }
    n_inputs = o.inputs;
    n_outputs = width;
    Y.resize(modules.size());
    D.resize(modules.size());
    Zsigns.resize(modules.size());
  }

  size_type inputs() const { return n_inputs; }
  size_type outputs() const { return n_outputs; }

  // Replaces linear layer l by a dense layer with W (K,D) row-major, or by a sparse one with
  // the given pattern and values; the layer's optimizer state starts at zero.
  void set_dense_layer(std::size_t l, const T* W, const T* b) {
    auto& old = *layers.at(l);
    auto layer = std::make_unique<dense_linear<T>>(old.in, old.out);
    std::copy(W, W + layer->nnz(), layer->W.begin());
    std::copy(b, b + old.out, layer->b.begin());
    replace_linear(l, std::move(layer));
  }
  void set_sparse_layer(std::size_t l, csr_pattern p, const T* values, const T* b) {
    auto& old = *layers.at(l);
    TS_REQUIRE(p.rows == old.out && p.cols == old.in, "[Linear.set_weights] W is (", p.rows, ", ", p.cols,
               ") but layer ", l, " is (", old.out, ", ", old.in, ")");
    auto layer = std::make_unique<sparse_linear<T>>(std::move(p), backend, module_of[l] > 0, operands);
    std::copy(values, values + layer->nnz(), layer->W.begin());
    std::copy(b, b + old.out, layer->b.begin());
    layer->init = init;
    layer->fan = fan;
    replace_linear(l, std::move(layer));
  }
  // The same from CSR arrays indptr (K+1) and indices (nnz), as given (checked here).
  void set_sparse_layer(std::size_t l, const index_t* indptr, const index_t* indices, size_type nnz,
                        const T* values, const T* b) {
    const auto& old = *layers.at(l);
    csr_pattern p;
    p.rows = old.out;
    p.cols = old.in;
    p.indptr.assign(indptr, indptr + old.out + 1);
    p.indices.assign(indices, indices + nnz);
    set_sparse_layer(l, std::move(p), values, b);
  }

  // Replaces the parameter `name` of module m (size values).
  void set_parameter(std::size_t m, const std::string& name, const T* values, size_type size) {
    layer<T>& module = *modules.at(m);
    for (auto& p : module.parameters())
      if (name == p.name) {
        TS_REQUIRE(size == p.size, "[", module.kind(), ".set] ", name, " needs ", p.size, " values, got ",
                   size);
        for (size_type k = 0; k < size; ++k)
          TS_REQUIRE(std::isfinite(values[k]), "[", module.kind(), ".set] ", name, "[", k,
                     "] is not finite: ", values[k]);
        std::copy(values, values + size, p.value);
        return;
      }
    throw std::invalid_argument(msg("[", module.kind(), ".set] no parameter named ", name));
  }

  // Replaces the statistic `name` (batch norm's running_mean, running_var) of module m.
  void set_statistic(std::size_t m, const std::string& name, const T* values, size_type size) {
    layer<T>& module = *modules.at(m);
    for (auto& st : module.statistics())
      if (name == st.name) {
        TS_REQUIRE(size == st.size, "[", module.kind(), ".set_statistic] ", name, " needs ", st.size,
                   " values, got ", size);
        std::copy(values, values + size, st.value);
        return;
      }
    throw std::invalid_argument(msg("[", module.kind(), ".set_statistic] no statistic named ", name));
  }

  // Network output (K,N) of a feature-major batch X (D_0, N).
  const matrix<T>& forward(const matrix<T>& X, bool train = false) {
    TS_REQUIRE(X.rows == inputs(), "[forward] X has ", X.rows, " features but the model has ", inputs(),
               " inputs");
    const matrix<T>* in = &X;
    drop_filled_copies();
    for (std::size_t m = 0; m < modules.size(); ++m) {
      if (X.cols > 0 && fuses_forward(m)) {  // Y[m+1] = act(Y[m]) row by row in the product's epilogue
        const activation& act = fused_activation(m + 1);
        sparse_linear<T>* S = modules[m]->as_linear()->as_sparse();
        matrix<T>& A = Y[m + 1];
        const size_type N = in->cols;
        // A itself only where something reads it: a float32 (K,N) matrix that would be written
        // and never read is not even allocated (it keeps its shape, for the checks of layer m+2)
        const bool store_a = !float_activation_unused(m, train);
        if (store_a)
          A.resize(S->out, N);
        else
          A.shape_only(S->out, N);
        // and the bfloat16 copy of A that a sparse layer m+2 gathers, from the row in L1
        sparse_linear<T>* next = m + 2 < modules.size() && is_sparse_module(m + 2)
                                     ? modules[m + 2]->as_linear()->as_sparse()
                                     : nullptr;
        bf16_matrix* Ab = next ? next->input_copy(A) : nullptr;
        const bool stream_ab = Ab && next->streams(*Ab);
        // Z = Y[m] itself only when a backward reads it; its signs when the fused one does
        const bool keep_z = train ? !drops_preactivation(m) : predict_keeps_output(m);
        TS_ASSERT(store_a || !keep_z);  // an unused A is computed in the product's own row
        bit_matrix* signs = train && keeps_signs(m) ? &Zsigns[m] : nullptr;
        if (signs) signs->resize(S->out, N);
        // without a Z, z is the product's own row: A's row is computed there and, where A
        // outgrows the caches, streamed out (kernels.h, "streamed output rows")
        const bool stream = !keep_z && S->streams(A);
        const auto epilogue = [&act, &A, Ab, stream_ab, N, signs, stream, store_a](index_t i, T* z) {
          T* a = stream || !store_a ? z : A.row(i);
          if (!stream && store_a) prefetch_row(A, i + epilogue_ahead, true);
          act.forward_row(z, store_a ? a : nullptr, signs ? signs->row(static_cast<size_type>(i)) : nullptr,
                          copy_row(Ab, i), N, Ab ? Ab->ld : 0, stream_ab);
          if (stream && store_a) detail::stream_row(A.row(i), a, N);
        };
        if (keep_z)
          S->forward_with(*in, Y[m], epilogue);
        else
          S->forward_rows(*in, epilogue);
        in = &Y[++m];
        continue;
      }
      modules[m]->forward(*in, Y[m], train);  // linear: (K,N) = (K,D) (D,N) + b 1ᵀ
      in = &Y[m];
    }
    return Y.back();
  }

  // Fused epilogues (docs/design.md, "fused epilogues"): a sparse layer followed by an
  // activation computes the activation in its product's epilogue, row by row while the row is
  // in L1 (forward), and a sparse layer whose input is such an activation's output multiplies
  // its input gradient by the activation's derivative there, and sums the bias gradient of the
  // linear layer before the activation (backward): D[m] of the activation is then never written
  // and never allocated. The results are those of the unfused modules, bit for bit (the same
  // row functions, activation.h and row_sum); fuse_epilogues = false runs the modules one by one.

  // Whether module m (a sparse layer) computes the activation m+1 in its forward.
  bool fuses_forward(std::size_t m) const {
    return fuse_epilogues && m + 1 < modules.size() && is_sparse_module(m) && is_activation(m + 1);
  }
  // Whether module m (a sparse layer) computes the activation m-1's backward (into D[m-2]).
  bool fuses_backward(std::size_t m) const {
    return fuse_epilogues && m >= 2 && is_sparse_module(m) && is_activation(m - 1);
  }
  // Whether D[m] is never used (an activation whose backward is fused into the next layer's).
  bool gradient_unused(std::size_t m) const { return m + 1 < modules.size() && fuses_backward(m + 1); }
  // Whether a training forward keeps no Z = Y[m] (a sparse layer m whose activation m+1 is fused
  // into its forward and into the backward of m+2, native backend): that backward multiplies by
  // the derivative from the signs of Z (the ReLU family), from A (sigmoid, tanh) or by 1. A
  // forward that does not train never keeps Z where it is fused.
  bool drops_preactivation(std::size_t m) const {
    return fuses_forward(m) && m + 2 < modules.size() && fuses_backward(m + 2) &&
           modules[m]->as_linear()->as_sparse()->forwards_by_row();
  }
  // Whether a training forward keeps the signs of Z = Y[m] (drops_preactivation, ReLU family).
  bool keeps_signs(std::size_t m) const {
    return drops_preactivation(m) && fused_activation(m + 1).derivative_from_input();
  }
  // Whether a forward that does not train keeps Z = Y[m] (not where the activation is fused).
  bool predict_keeps_output(std::size_t m) const {
    return !(fuses_forward(m) && modules[m]->as_linear()->as_sparse()->forwards_by_row());
  }
  // Whether the float activation A = Y[m+1] that the sparse layer m computes in its forward
  // (fused) is read by nothing, so that the forward neither writes nor allocates it (A keeps
  // its shape): with bfloat16 operands the sparse layer m+2 gathers A's bfloat16 copy, which
  // the epilogue fills, in its forward and in its SDDMM; a training forward's backward then
  // reads the signs of Z for the activation's derivative (the ReLU family: keeps_signs), never
  // A. A float32 activation of D rows costs 4·D·N bytes written per batch and as many held
  // (docs/design.md, "fused epilogues"); keep_float_activations keeps it (for layer_input).
  bool float_activation_unused(std::size_t m, bool train) const {
    if (keep_float_activations || !fuses_forward(m) || !(train ? keeps_signs(m) : !predict_keeps_output(m)))
      return false;
    if (!(m + 2 < modules.size() && is_sparse_module(m + 2))) return false;
    // (bfloat16 operands, for every layer, imply a float model and the native backend: check_operands)
    return modules[m + 2]->as_linear()->as_sparse()->bf16();
  }
  // Whether the float output gradient DZ = D[m] of the sparse layer m, which the sparse layer
  // m+2 computes in its fused backward, is read by nothing, so that the backward neither writes
  // nor allocates it (DZ keeps its shape): with bfloat16 operands layer m's backward gathers and
  // streams only DZ's bfloat16 copy, which the epilogue fills, and takes its bias gradient from
  // the epilogue's sums (db_ready). Another 4·K·N bytes written and read per batch
  // (docs/design.md, "fused epilogues"); keep_float_activations keeps it (layer_output_gradient).
  bool float_gradient_unused(std::size_t m) const {
    if (keep_float_activations || !(m + 2 < modules.size() && fuses_backward(m + 2)) || !is_sparse_module(m))
      return false;
    // (bfloat16 operands, for every layer, imply a float model and the native backend: check_operands)
    return modules[m]->as_linear()->as_sparse()->bf16();
  }

  // Forward (training mode), loss and backward of one batch: every layer's gradients are those
  // of the batch-mean loss afterwards. Returns the loss summed over the batch and the hit count.
  // With fuse (the step's optimizer configuration), a plain-SGD step of the sparse layers'
  // weights is fused into their backward (sparse_linear::sddmm_sgd_step) when the loss is finite;
  // optimize(c) then completes the step (biases, dense layers, other parameters).
  loss_result forward_backward(const matrix<T>& X, const targets<T>& t,
                               const optimizer_config* fuse = nullptr) {
    const matrix<T>& out = forward(X, true);
    const size_type N = X.cols;
    const std::size_t M = modules.size();
    loss_result r = compute_loss(loss, out, t, T(1) / static_cast<T>(N), &D[M - 1], label_smoothing);
    if (fuse && fuse->kind == optimizer_kind::sgd && std::isfinite(r.loss_sum)) {
      step_config = *fuse;  // the rate optimize() will use once steps is incremented
      step_config.lr = fuse->schedule.rate(fuse->lr, steps - fuse->schedule_start);
      for (auto& layer : layers)
        if (auto* S = layer->as_sparse()) S->fused_step = &step_config;
    }
    for (auto* L : layers) L->db_ready = false;  // set only by this pass's fused epilogues
    for (std::size_t m = M; m-- > 0;) {          // D[m-1] = ∂L/∂Y[m-1] from D[m]; none before layer 0
      if (N > 0 && fuses_backward(m)) {          // (an empty batch has no rows to run epilogues on)
        // D[m-2] = (Wᵀ D[m]) ⊙ act'(Y[m-2]) row by row, and the bias gradient of a linear m-2
        const activation& act = fused_activation(m - 1);
        const matrix<T>& Yin = Y[m - 1];
        // the activation's input: Z = Y[m-2], or its signs when the forward kept no Z
        const bool no_z = drops_preactivation(m - 2);
        const matrix<T>* Zin = no_z ? nullptr : &Y[m - 2];
        const bit_matrix* signs = keeps_signs(m - 2) ? &Zsigns[m - 2] : nullptr;
        linear_layer<T>* before = modules[m - 2]->as_linear();
        T* db = before ? before->Db.data() : nullptr;
        // and the bfloat16 copy of D[m-2] that a sparse m-2 gathers and streams in its backward;
        // D[m-2] itself only where something reads it
        matrix<T>& DZ = D[m - 2];
        const bool store_dz = !float_gradient_unused(m - 2);
        if (store_dz)  // (as backward_with does) the copy takes its shape
          DZ.resize(Yin.rows, N);
        else
          DZ.shape_only(Yin.rows, N);
        bf16_matrix* DZb = is_sparse_module(m - 2) ? before->as_sparse()->gradient_copy(DZ) : nullptr;
        const bool stream_dzb = DZb && before->as_sparse()->streams(*DZb);
        modules[m]->as_linear()->as_sparse()->backward_with(
            Yin, D[m], &DZ,
            [&act, Zin, &Yin, signs, db, DZb, stream_dzb, store_dz, N](index_t i, T* dx) {
              if (signs) {  // one pass (activation::backward_bits_row)
                act.backward_bits_row(signs->row(static_cast<size_type>(i)), dx, store_dz ? dx : nullptr,
                                      db ? db + i : nullptr, copy_row(DZb, i), N, DZb ? DZb->ld : 0,
                                      stream_dzb);
                return;
              }
              if (const matrix<T>* ahead = act.uses_output() ? &Yin : Zin)
                prefetch_row(*ahead, i + epilogue_ahead, false);
              act.backward_range(Zin ? Zin->row(i) : nullptr, Yin.row(i), dx, dx, N);
              if (db) db[i] = row_sum(dx, N);
              round_row_into(DZb, i, dx, N, stream_dzb);
            },
            store_dz);
        if (before) before->db_ready = true;
        --m;  // the activation's backward is done
        continue;
      }
      modules[m]->backward(m == 0 ? X : Y[m - 1], Y[m], D[m], m == 0 ? nullptr : &D[m - 1]);
    }
    return r;
  }

  // One optimizer step of every layer at the scheduled learning rate of this step.
  void optimize(const optimizer_config& c) {
    step_config = c;  // a member: assignment reuses the milestones' storage, no allocation
    step_config.lr = c.schedule.rate(c.lr, steps - 1 - c.schedule_start);
    for (auto& module : modules) module->optimize(step_config);
  }

  // After forward_backward(X, ...): the input (D_l,N) and the output gradient DZ (K_l,N) of
  // linear layer l in that batch (RigL's grow step uses them).
  // A float activation or output gradient that only its bfloat16 copy was kept of
  // (float_activation_unused, float_gradient_unused) is refused: train with
  // keep_float_activations set to read it.
  const matrix<T>& layer_input(std::size_t l, const matrix<T>& X) const {
    if (module_of[l] == 0) return X;
    const matrix<T>& in = Y[module_of[l] - 1];
    TS_REQUIRE(in.holds_values(), "[layer_input] the float input of layer ", l,
               " was not kept (bfloat16 operands keep only its bfloat16 copy): set keep_float_activations");
    return in;
  }
  const matrix<T>& layer_output_gradient(std::size_t l) const {
    const matrix<T>& dz = D[module_of[l]];
    TS_REQUIRE(dz.holds_values(), "[layer_output_gradient] the float output gradient of layer ", l,
               " was not kept (bfloat16 operands keep only its bfloat16 copy): set keep_float_activations");
    return dz;
  }

  // The sparse layer l, or null for a dense one.
  sparse_linear<T>* sparse_layer(std::size_t l) { return layers.at(l)->as_sparse(); }

  // The output buffer Y[m] and output gradient buffer D[m] of every module (memory.h counts
  // them); each keeps the largest batch it has held.
  const std::vector<matrix<T>>& output_buffers() const { return Y; }
  const std::vector<matrix<T>>& output_gradient_buffers() const { return D; }
  const std::vector<bit_matrix>& sign_buffers() const { return Zsigns; }

 private:
  // An epilogue prefetches the row of its other operand this many rows ahead: the products
  // gather at random, so the hardware does not see that stream.
  static constexpr index_t epilogue_ahead = 4;
  static void prefetch_row(const matrix<T>& M, index_t i, bool write) {
    if (static_cast<size_type>(i) >= M.rows) return;
    const char* p = reinterpret_cast<const char*>(M.row(static_cast<size_type>(i)));
    const size_type bytes = M.cols * sizeof(T);
    for (size_type b = 0; b < bytes; b += 64) {
      if (write)
        __builtin_prefetch(p + b, 1, 3);
      else
        __builtin_prefetch(p + b, 0, 3);
    }
  }

  // Row i of a bfloat16 copy (of a float model's matrix), or null without one.
  static std::uint16_t* copy_row(bf16_matrix* copy, index_t i) {
    return copy ? copy->row(static_cast<size_type>(i)) : nullptr;
  }
  // copy row i := row (N) rounded to bfloat16, when there is a copy to fill (streamed: kernels.h).
  static void round_row_into(bf16_matrix* copy, index_t i, const T* row, size_type N, bool stream) {
    if constexpr (std::is_same_v<T, float>)
      if (copy) round_row_to_bf16(row, copy->row(static_cast<size_type>(i)), N, copy->ld, stream);
  }
  void drop_filled_copies() {
    for (auto* L : layers)
      if (auto* S = L->as_sparse()) S->drop_filled_copies();
  }

  bool is_sparse_module(std::size_t m) const {
    const linear_layer<T>* L = modules[m]->as_linear();
    return L && L->is_sparse();
  }
  bool is_activation(std::size_t m) const {
    return dynamic_cast<const activation_layer<T>*>(modules[m].get()) != nullptr;
  }
  const activation& fused_activation(std::size_t m) const {
    return static_cast<const activation_layer<T>*>(modules[m].get())->act;
  }

  void replace_linear(std::size_t l, std::unique_ptr<linear_layer<T>> layer) {
    layers[l] = layer.get();
    modules[module_of[l]] = std::move(layer);
  }

  size_type n_inputs = 0, n_outputs = 0;
  std::vector<matrix<T>> Y, D;
  std::vector<bit_matrix> Zsigns;  // the signs of Y[m] where drops_preactivation(m)
  optimizer_config step_config;    // the configuration of the current optimizer step
};

}  // namespace truesparse

#include "truesparse/memory.h"  // check_network_fits
