// Linear layers Z = W X + b 1ᵀ (feature-major: X (D,N), Z (K,N), W (K,D)) with one interface
// for the dense layer (density 1, W a dense row-major array) and the sparse layer (W a CSR
// pattern + aligned value arrays). Three verbs: forward, backward, optimize.
//
//   forward   Z  (K,N) = W (K,D) X (D,N) + column_repeat(b, N)
//   backward  Db (K)   = rows_sum(DZ)
//             DW (K,D) = DZ (K,N) Xᵀ (N,D)        [sparse: only on the pattern, SDDMM]
//             DX (D,N) = Wᵀ (D,K) DZ (K,N)        [skipped for the first layer]
//   optimize  W, b updated by the optimizer (state arrays aligned with W's values)
#pragma once

#include <algorithm>
#include <iterator>
#include <limits>
#include <memory>
#include <type_traits>

#include "truesparse/blas.h"
#include "truesparse/csr.h"
#include "truesparse/init.h"
#include "truesparse/kernels.h"
#include "truesparse/layer.h"
#include "truesparse/matrix.h"
#include "truesparse/mkl_sparse.h"
#include "truesparse/optimizer.h"

namespace truesparse {

enum class sparse_backend { mkl, native };

// The dense operands of the sparse products (X in the forward and the SDDMM, DZ in the input
// gradient and the SDDMM): as they are, or rounded to bfloat16 copies (float models with the
// native backend; weights, sums and outputs stay float: docs/design.md, "bfloat16 operands").
enum class operand_dtype { float32, bfloat16 };

// Refuses an operand dtype that this layer cannot use.
template <class T>
void check_operands(operand_dtype d, sparse_backend be) {
  if (d == operand_dtype::float32) return;
  TS_REQUIRE((std::is_same_v<T, float>),
             "[Sequential] operand_dtype='bfloat16' needs dtype float32, got float64");
  TS_REQUIRE(be == sparse_backend::native,
             "[Sequential] operand_dtype='bfloat16' needs backend='native', got 'mkl'");
}

template <class T>
struct sparse_linear;

template <class T>
struct linear_layer : layer<T> {
  index_t in = 0;             // D
  index_t out = 0;            // K
  avector<T> b, Db;           // (K) bias and its gradient
  optimizer_state<T> sW, sb;  // optimizer state of the weights (aligned with values()) and bias
  // Set when Db holds the next backward's bias gradient already (summed in a fused epilogue
  // of the layer after: network.h); that backward then skips rows_sum and clears it.
  bool db_ready = false;

  linear_layer(index_t in_, index_t out_) : in(in_), out(out_), b(out_, T(0)), Db(out_, T(0)) {}

  virtual void forward(const matrix<T>& X, matrix<T>& Z) = 0;
  virtual void backward(const matrix<T>& X, const matrix<T>& DZ, matrix<T>* DX) = 0;
  void forward(const matrix<T>& X, matrix<T>& Z, bool) final { forward(X, Z); }
  void backward(const matrix<T>& X, const matrix<T>&, const matrix<T>& DZ, matrix<T>* DX) final {
    backward(X, DZ, DX);
  }
  size_type outputs(size_type) const final { return out; }
  linear_layer<T>* as_linear() final { return this; }
  const linear_layer<T>* as_linear() const final { return this; }
  virtual bool is_sparse() const = 0;
  // This layer as a sparse one, or null for a dense layer (no dynamic_cast at call sites).
  virtual sparse_linear<T>* as_sparse() { return nullptr; }
  virtual size_type nnz() const = 0;
  virtual T* values() = 0;    // (nnz) W in storage order
  virtual T* gradient() = 0;  // (nnz) DW, aligned with values()
  // Call after values() were changed from outside (set_weights): refreshes derived copies.
  virtual void values_changed() {}

  void optimize(const optimizer_config& c) override {
    optimizer_step(c, sW, values(), gradient(), nnz());
    optimizer_step(c, sb, b.data(), Db.data(), out);
    values_changed();
  }

 protected:
  void bias_gradient(const matrix<T>& DZ) {
    if (!db_ready) rows_sum(DZ, Db.data());
    db_ready = false;
  }
  void check_input(const matrix<T>& X, const char* op) const {
    TS_REQUIRE(X.rows == in, "[", op, "] X has ", X.rows, " features but the layer has ", in, " inputs");
  }
};

template <class T>
struct dense_linear : linear_layer<T> {
  using base = linear_layer<T>;
  using base::backward;
  using base::forward;
  const char* kind() const override { return "dense_linear"; }
  avector<T> W, DW;  // (K,D) row-major

  dense_linear(index_t in_, index_t out_)
      : base(in_, out_),
        W(static_cast<std::size_t>(in_) * out_, T(0)),
        DW(static_cast<std::size_t>(in_) * out_, T(0)) {}

  void forward(const matrix<T>& X, matrix<T>& Z) override {
    this->check_input(X, "dense_linear.forward");
    const size_type N = X.cols;
    Z.resize(this->out, N);
    column_repeat(this->b.data(), Z);
    // (K,N) = (K,D) (D,N) + (K,N)
    gemm<T>(trans::N, trans::N, this->out, N, this->in, T(1), W.data(), this->in, X.ptr(), N, T(1), Z.ptr(),
            N);
  }

  void backward(const matrix<T>& X, const matrix<T>& DZ, matrix<T>* DX) override {
    const size_type N = X.cols;
    this->bias_gradient(DZ);
    // (K,D) = (K,N) (N,D)
    gemm<T>(trans::N, trans::T, this->out, this->in, N, T(1), DZ.ptr(), N, X.ptr(), N, T(0), DW.data(),
            this->in);
    if (DX) {
      DX->resize(this->in, N);
      // (D,N) = (D,K) (K,N)
      gemm<T>(trans::T, trans::N, this->in, N, this->out, T(1), W.data(), this->in, DZ.ptr(), N, T(0),
              DX->ptr(), N);
    }
  }

  bool is_sparse() const override { return false; }
  size_type nnz() const override { return static_cast<size_type>(this->in) * this->out; }
  T* values() override { return W.data(); }
  T* gradient() override { return DW.data(); }
};

template <class T>
struct sparse_linear : linear_layer<T> {
  using base = linear_layer<T>;
  using base::backward;
  using base::forward;
  const char* kind() const override { return "sparse_linear"; }
  sparse_linear<T>* as_sparse() override { return this; }
  sparse_backend backend;
  operand_dtype operands;
  csr_pattern pattern;        // (K,D)
  avector<T> W, DW;           // (nnz) aligned with pattern; DW empty until gradient() asks
  csr_pattern pattern_t;      // (D,K) pattern of Wᵀ
  std::vector<index_t> perm;  // value k of Wᵀ is W[perm[k]]
  avector<T> Wt;              // (nnz) values of Wᵀ, refreshed lazily: MKL's product needs
                              // them; the native kernel reads W[perm[k]] (empty there)
  bool wt_stale = true;
  bool keep_transpose;  // false for a first layer: DX is never needed
  mkl_csr<T> handle, handle_t;
  init_kind init = init_kind::he_normal;  // how regrown weights are initialised
  fan_mode fan = fan_mode::actual;
  // Sorted positions i*D+j ever stored (ITOP rate). Empty until the first topology change, so
  // a layer that never evolves pays nothing for it.
  std::vector<std::int64_t> ever_active;
  // (D) 1 for an input column removed from the layer (feature selection, remove_inputs): it
  // holds no weight and no growth ever reconnects it. Empty when no input was removed.
  std::vector<std::uint8_t> excluded_inputs;

  bool excluded(index_t j) const { return !excluded_inputs.empty() && excluded_inputs[j] != 0; }
  // The columns growth may use: all, or those not excluded.
  std::vector<index_t> growable_columns() const {
    std::vector<index_t> cols;
    cols.reserve(static_cast<std::size_t>(this->in));
    for (index_t j = 0; j < this->in; ++j)
      if (!excluded(j)) cols.push_back(j);
    return cols;
  }

  sparse_linear(csr_pattern p, sparse_backend be, bool need_dx, operand_dtype od = operand_dtype::float32)
      : base(p.cols, p.rows), backend(be), operands(od), keep_transpose(need_dx) {
    check_operands<T>(od, be);
    set_pattern(std::move(p));
  }

  // A new pattern: values and optimizer state start at zero.
  void set_pattern(csr_pattern p) {
    validate(p, "Linear.set_weights");
    TS_REQUIRE(p.rows == this->out && p.cols == this->in, "[Linear.set_weights] pattern is (", p.rows, ", ",
               p.cols, ") but the layer is (", this->out, ", ", this->in, ")");
    avector<T> values(static_cast<std::size_t>(p.nnz()), T(0));
    this->sW.clear();
    ever_active.clear();
    excluded_inputs.clear();
    replace_topology(std::move(p), std::move(values));
  }

  // The one place where a topology change takes effect: installs the pattern and its values
  // (the caller has remapped the aligned optimizer state arrays in sW already), then rebuilds
  // what is derived from the pattern: the gradient array, the Wᵀ pattern and permutation, the
  // MKL handles, and (for an evolution step) the ITOP record of positions ever active.
  void replace_topology(csr_pattern p, avector<T> values, bool evolution = false) {
    TS_ASSERT(static_cast<size_type>(values.size()) == p.nnz());
    if (evolution && ever_active.empty()) record_active();  // the positions before the change
    pattern = std::move(p);
    W = std::move(values);
    const auto nz = static_cast<std::size_t>(pattern.nnz());
    if (!DW.empty()) DW.assign(nz, T(0));  // allocated on demand (gradient())
    if (keep_transpose) {
      transpose(pattern, pattern_t, perm);
      if (backend == sparse_backend::mkl)
        Wt.assign(nz, T(0));
      else
        avector<T>().swap(Wt);
    } else {
      pattern_t = csr_pattern{};
      perm.clear();
      Wt.clear();
    }
    wt_stale = true;
    if (backend == sparse_backend::mkl) {
      handle.reset(pattern, W.data());
      if (keep_transpose) handle_t.reset(pattern_t, Wt.data());
    }
    if (evolution) record_active();
  }

  // Fraction of all positions that have ever held a stored weight.
  double itop_rate() const {
    const auto active = ever_active.empty() ? pattern.nnz() : static_cast<size_type>(ever_active.size());
    return static_cast<double>(active) / (static_cast<double>(this->out) * static_cast<double>(this->in));
  }

 private:
  void record_active() {  // ever_active := ever_active ∪ positions of the pattern, O(E + nnz)
    std::vector<std::int64_t> now;
    now.reserve(pattern.indices.size());
    for (index_t i = 0; i < pattern.rows; ++i)
      for (index_t k = pattern.indptr[i]; k < pattern.indptr[i + 1]; ++k)
        now.push_back(static_cast<std::int64_t>(i) * pattern.cols + pattern.indices[k]);
    std::vector<std::int64_t> merged;
    merged.reserve(ever_active.size() + now.size());
    std::set_union(ever_active.begin(), ever_active.end(), now.begin(), now.end(),
                   std::back_inserter(merged));
    ever_active.swap(merged);
  }

 public:
  void forward(const matrix<T>& X, matrix<T>& Z) override { forward_with(X, Z, detail::no_epilogue{}); }

  // forward, then epilogue(i, Z row i) for every row i: in the product's epilogue, while the row
  // is in L1 (native backend), or in a pass after MKL's product.
  template <class Epilogue>
  void forward_with(const matrix<T>& X, matrix<T>& Z, const Epilogue& epilogue) {
    this->check_input(X, "sparse_linear.forward");
    Z.resize(this->out, X.cols);
    if (backend == sparse_backend::mkl) {  // (K,N) = (K,D) (D,N) + (K,N)
      column_repeat(this->b.data(), Z);
      handle.mm(T(1), X.ptr(), X.cols, T(1), Z.ptr());
      each_row(Z, epilogue);
    } else {
      native_forward(X, Z.ptr(), epilogue);
    }
  }
  // Whether forward_rows is available: the native backend's product can hand each row to the
  // epilogue without keeping Z.
  bool forwards_by_row() const { return backend == sparse_backend::native; }
  // forward_with without a Z: epilogue(i, z) gets row i of Z in a row of the computing thread's
  // own, and the (K,N) Z is never written (native backend; network.h, "fused epilogues").
  template <class Epilogue>
  void forward_rows(const matrix<T>& X, const Epilogue& epilogue) {
    this->check_input(X, "sparse_linear.forward");
    TS_ASSERT(forwards_by_row());
    native_forward(X, static_cast<T*>(nullptr), epilogue);
  }

  // epilogue(i, M row i) for every row, in parallel.
  template <class Epilogue>
  static void each_row(matrix<T>& M, const Epilogue& epilogue) {
    if constexpr (!std::is_same_v<Epilogue, detail::no_epilogue>) {
      parallel_for(M.rows, M.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
        for (size_type i = i_begin; i < i_end; ++i) epilogue(static_cast<index_t>(i), M.row(i));
      });
    }
  }

  // The bfloat16 copies of the gathered operands (operands == bfloat16): the last forward's X,
  // kept for the SDDMM of the backward that follows, and DZ for DX.
  bf16_matrix Xb, DZb;
  const matrix<T>* xb_of = nullptr;  // the X that Xb was rounded from, until a backward uses it
  bool bf16() const { return operands == operand_dtype::bfloat16; }

  // For the network's fused epilogues, which write the rows of the operands this layer gathers
  // while they are in L1 (network.h, "fused epilogues"): the bfloat16 copy, shaped as M, of the
  // input X of the next forward (input_copy) or of the output gradient DZ of the next backward
  // (gradient_copy), or null when this layer gathers no bfloat16 copy. The caller fills every
  // row (round_row_to_bf16) before that forward or backward, which then rounds nothing for that
  // matrix; any other matrix, or a second call, is rounded as usual.
  bf16_matrix* input_copy(const matrix<T>& X) { return prepare_copy(Xb, xb_of, xb_filled, X); }
  bf16_matrix* gradient_copy(const matrix<T>& DZ) { return prepare_copy(DZb, dzb_of, dzb_filled, DZ); }
  // Forgets copies announced by input_copy and gradient_copy and not used (a pass that threw may
  // have filled them in part).
  void drop_filled_copies() {
    if (xb_filled) xb_of = nullptr;  // nor may the SDDMM take the copy for X
    xb_filled = dzb_filled = false;
  }
  // bfloat16 copies this layer rounded itself (the rest were filled by fused epilogues).
  std::uint64_t copies_rounded = 0;

 private:
  // The native product Z (K,N) = W X + b 1ᵀ, bias fused, into Z (or, null, row by row into the
  // epilogue: spmm_native), gathering the bfloat16 copy of X with bfloat16 operands.
  template <class Epilogue>
  void native_forward(const matrix<T>& X, T* Z, const Epilogue& epilogue) {
    const size_type N = X.cols;
    const bool stream = Z != nullptr && streams(static_cast<double>(this->out * N) * sizeof(T));
    if (bf16()) {
      if constexpr (std::is_same_v<T, float>) {
        if (!take_rounded(xb_filled, xb_of, X, Xb)) round_to_bf16(holding_values(X, "forward"), Xb);
        xb_of = &X;  // the SDDMM of the backward that follows gathers the same copy
        spmm_native(pattern, W.data(), Xb.ptr(), N, T(0), Z, this->b.data(), nullptr, Xb.ld, epilogue,
                    stream);
      }
    } else {
      spmm_native(pattern, W.data(), X.ptr(), N, T(0), Z, this->b.data(), nullptr, 0, epilogue, stream);
    }
  }

  const matrix<T>* dzb_of = nullptr;
  bool xb_filled = false, dzb_filled = false;
  // M (named `name`), refused when it holds no values: a network's float activation or output
  // gradient that only its bfloat16 copy was kept of (network::float_activation_unused,
  // float_gradient_unused), which this layer was not given.
  static const matrix<T>& holding_values(const matrix<T>& M, const char* op, const char* name = "X") {
    TS_REQUIRE(M.holds_values(), "[sparse_linear.", op, "] ", name,
               " holds no values: the network kept only its bfloat16 copy (keep_float_activations)");
    return M;
  }
  bf16_matrix* prepare_copy(bf16_matrix& copy, const matrix<T>*& of, bool& filled, const matrix<T>& M) {
    if (!std::is_same_v<T, float> || !bf16() || backend != sparse_backend::native) return nullptr;
    copy.shape(M.rows, M.cols);
    of = &M;
    filled = true;
    return &copy;
  }
  // Whether copy holds M already (filled for it, in its shape); consumes the filling. Counts the
  // rounding the caller does otherwise.
  bool take_rounded(bool& filled, const matrix<T>* of, const matrix<T>& M, const bf16_matrix& copy) {
    const bool ok = filled && of == &M && copy.rows == M.rows && copy.cols == M.cols;
    filled = false;
    if (!ok) ++copies_rounded;
    return ok;
  }

 public:
  // Set by network::forward_backward for a step whose plain-SGD weight update is fused into the
  // SDDMM: backward then updates W and its momentum in place, and keeps no DW array (4 bytes per
  // stored weight less; docs/design.md, "memory").
  const optimizer_config* fused_step = nullptr;
  bool weights_stepped = false;  // by a fused step: optimize() then steps only the bias
  // DW holds the last backward's gradient. A fused step keeps it so only when DW exists already
  // (a user's backward, another optimizer, RigL): it writes no DW array of its own.
  bool dw_current = false;

  void backward(const matrix<T>& X, const matrix<T>& DZ, matrix<T>* DX) override {
    backward_with(X, DZ, DX, detail::no_epilogue{});
  }

  // backward, with dx_epilogue(j, DX row j) for every row of DX as the input gradient's
  // product completes it (as forward_with). With store_dx false (native backend) DX only takes
  // its shape: each row is computed into a row of the thread's own and handed to the epilogue,
  // which consumes it (the network's fused epilogues, where only the bfloat16 copy of that
  // gradient is read: network::float_gradient_unused).
  template <class Epilogue>
  void backward_with(const matrix<T>& X, const matrix<T>& DZ, matrix<T>* DX, const Epilogue& dx_epilogue,
                     bool store_dx = true) {
    const size_type N = X.cols;
    TS_ASSERT(store_dx || (DX && backend == sparse_backend::native));
    if (DX) {
      TS_ASSERT(keep_transpose && "DX requested from a layer built without Wᵀ");
      if (store_dx)
        DX->resize(this->in, N);
      else
        DX->shape_only(this->in, N);
    }
    T* dx = DX && store_dx ? DX->ptr() : nullptr;
    if constexpr (std::is_same_v<T, float>) {
      if (bf16()) {
        bf16_operands(X, DZ);
        return native_gradients(DZb, Xb, DX, dx, dx_epilogue);
      }
    }
    this->bias_gradient(DZ);
    if (backend == sparse_backend::native) return native_gradients(DZ, X, DX, dx, dx_epilogue);
    if (DX) {  // first: a fused step below changes W
      if (wt_stale) {
        gather(perm, W.data(), Wt.data());
        wt_stale = false;
      }
      handle_t.mm(T(1), DZ.ptr(), N, T(0), dx);  // (D,N) = (D,K) (K,N)
      each_row(*DX, dx_epilogue);
    }
    take_weight_gradients([&](const auto& out, const T*) { sddmm_each(pattern, DZ, X, out); });
  }

 private:
  // The native backward over DZ and X, float matrices or (bfloat16 operands) their copies: DX
  // first (a fused step below changes W), then the weight gradients; both in one pass over Wᵀ
  // where one_pass_gradients.
  template <class M, class Epilogue>
  void native_gradients(const M& DZ, const M& X, matrix<T>* DX, T* dx, const Epilogue& dx_epilogue) {
    if (DX) {
      if (one_pass_gradients())  // with the weight gradients, in the order of Wᵀ
        return take_weight_gradients([&](const auto& out, const T* touched) {
          spmm_sddmm_native(pattern_t, W.data(), perm.data(), DZ, X, dx, dx_epilogue, out, touched,
                            dx && streams(*DX));
        });
      // (D,N) = (D,K) (K,N)
      spmm_native(pattern_t, W.data(), DZ.ptr(), X.cols, T(0), dx, static_cast<const T*>(nullptr),
                  perm.data(), row_stride(DZ), dx_epilogue, dx && streams(*DX));
    }
    take_weight_gradients([&](const auto& out, const T*) { sddmm_each(pattern, DZ, X, out); });
  }
  static size_type row_stride(const matrix<T>& M) { return M.cols; }
  static size_type row_stride(const bf16_matrix& M) { return M.ld; }

  // With bfloat16 operands the backward computes DX = Wᵀ round(DZ) and DW = (round(DZ)
  // round(X)ᵀ) ⊙ P from the copies DZb and Xb, so the float DZ is read only for the bias
  // gradient (and not at all where a fused epilogue summed it: db_ready) and the float X not at
  // all where the forward's copy of it is kept. Computes the bias gradient and those copies.
  void bf16_operands(const matrix<T>& X, const matrix<T>& DZ) {
    if (!this->db_ready) holding_values(DZ, "backward", "DZ");  // for the bias gradient
    this->bias_gradient(DZ);
    if (!take_rounded(dzb_filled, dzb_of, DZ, DZb)) round_to_bf16(holding_values(DZ, "backward", "DZ"), DZb);
    if (xb_of != &X || Xb.rows != X.rows || Xb.cols != X.cols) {  // not the forward's copy
      round_to_bf16(holding_values(X, "backward"), Xb);
      ++copies_rounded;
    }
    xb_of = nullptr;
  }

 public:
  // Whether the native backward computes DX and the weight gradients in one pass
  // (spmm_sddmm_native): where the values of W take at most one_pass_bytes, by default in every
  // layer. That pass reaches W, and the velocity or DW its gradients update, in the order of Wᵀ,
  // at random, where the SDDMM streams them; it saves the SDDMM's gather of a row of X per stored
  // weight and its stream of DZ. Measured from 4.8 to 56 MB of values a layer (784-60,000×3-10
  // to 784-700,000×3-10), the pass took 0.75–0.97× the time of the two, but once 1.03×, within
  // that run's spread (docs/benchmarks.md, "One pass in every layer"). Both ways give the same
  // bits (test_kernels and test_bf16 set the limit to 0 to compare them).
  double one_pass_bytes = std::numeric_limits<double>::infinity();
  bool one_pass_gradients() const { return static_cast<double>(nnz()) * sizeof(T) <= one_pass_bytes; }

  // Whether the native products stream the rows of an output matrix M (Z, or DX) to memory with
  // non-temporal stores (spmm_native's stream_c): where M takes at least stream_bytes, more than
  // the caches keep until the next layer reads it. The network streams the same way the
  // activations it computes from such a layer's Z and the bfloat16 copies of this layer's
  // operands that its epilogues fill. Same bits either way (test_kernels).
  double stream_bytes = 16.0 * 1024 * 1024;
  bool streams(double bytes) const { return bytes >= stream_bytes; }
  bool streams(const matrix<T>& M) const { return streams(static_cast<double>(M.size()) * sizeof(T)); }
  bool streams(const bf16_matrix& M) const { return streams(static_cast<double>(M.rows * M.ld) * 2.0); }

  // The weight gradients of one backward: pass(out, touched) calls out(k, g_k) once for every
  // stored weight k (touched: an array aligned with W that out updates, or null). They step W
  // (fused_step) or are written to DW.
  template <class Pass>
  void take_weight_gradients(const Pass& pass) {
    if (fused_step) {
      sddmm_sgd_step(*fused_step, pass);
      fused_step = nullptr;
      weights_stepped = true;
    } else {
      T* dw = gradient();  // (nnz) = ((K,N) (N,D)) ⊙ pattern
      pass([dw](index_t k, T g) { dw[k] = g; }, static_cast<const T*>(nullptr));
      dw_current = true;
    }
  }

  void optimize(const optimizer_config& c) override {
    if (!weights_stepped) return base::optimize(c);
    weights_stepped = false;
    optimizer_step(c, this->sb, this->b.data(), this->Db.data(), this->out);
  }

  // One SGD step of W (optimizer_step's update: sgd_update) with the gradient of each stored
  // weight as pass computes it (take_weight_gradients): no gradient array is written, except DW
  // where it exists.
  template <class Pass>
  void sddmm_sgd_step(const optimizer_config& c, const Pass& pass) {
    TS_ASSERT(c.kind == optimizer_kind::sgd);
    const T lr = static_cast<T>(c.lr), wd = static_cast<T>(c.weight_decay), mu = static_cast<T>(c.momentum);
    T* w = W.data();
    T* dw = DW.empty() ? nullptr : DW.data();  // kept current where it exists
    dw_current = dw != nullptr;
    sgd_step(c, this->sW, nnz(), [&](auto variant, T* v) {
      constexpr sgd_variant V = decltype(variant)::value;
      pass(
          [=](index_t k, T g) {
            if (dw) dw[k] = g;
            sgd_update<V>(w, v, k, g, lr, wd, mu);
          },
          v);
    });
    values_changed();
  }

  bool is_sparse() const override { return true; }
  size_type nnz() const override { return pattern.nnz(); }
  T* values() override { return W.data(); }
  // DW is allocated when first asked for: training with plain SGD never needs it.
  T* gradient() override {
    const auto n = static_cast<std::size_t>(nnz());
    if (DW.size() != n) DW.assign(n, T(0));
    return DW.data();
  }
  void values_changed() override { wt_stale = true; }
};

}  // namespace truesparse
