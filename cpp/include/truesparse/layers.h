// The layers other than the linear ones, each proven in validation/test_<name>.py and mirrored
// by truesparse.reference. Feature-major: X (D,N), one example per column; all are
// shape-preserving (Y is (D,N) too). Backward equations (DY given):
//   activation  DX = DY ⊙ act'(X)
//   softmax     Y = softmax(X) per column;   DX = Y ⊙ (DY − row_repeat(columns_sum(Y ⊙ DY)))
//   log_softmax Y = X − row_repeat(lse(X));   DX = DY − softmax(X) ⊙ row_repeat(columns_sum(DY))
//   affine      Y = γ ⊙ X + β (per row);     Dγ = rows_sum(DY ⊙ X), Dβ = rows_sum(DY), DX = γ ⊙ DY
//   batch_norm  Z = (X − μ) ⊙ inv_std, Y = γ ⊙ Z + β;   Dβ = rows_sum(DY), Dγ = rows_sum(DY ⊙ Z),
//               DX = inv_std/N ⊙ (N DZ − rows_sum(DZ) − Z ⊙ rows_sum(DZ ⊙ Z)) with DZ = γ ⊙ DY
//   dropout     Y = X ⊙ M / (1 − p);          DX = DY ⊙ M / (1 − p)
//   srelu       see srelu_layer
#pragma once

#include <cmath>

#include "truesparse/activation.h"
#include "truesparse/layer.h"
#include "truesparse/random.h"

namespace truesparse {

template <class T>
struct activation_layer : layer<T> {
  activation act;
  explicit activation_layer(activation a) : act(a) {}
  const char* kind() const override { return "activation"; }
  void forward(const matrix<T>& X, matrix<T>& Y, bool) override { act.forward(X, Y); }
  void backward(const matrix<T>& X, const matrix<T>& Y, const matrix<T>& DY, matrix<T>* DX) override {
    if (DX) act.backward(X, Y, DY, *DX);  // DX = DY ⊙ act'(X)
  }
};

// log Σ_k exp(X[k,n]), stable: the column maximum is subtracted before exponentiating.
template <class T>
T column_log_sum_exp(const matrix<T>& X, size_type n) {
  T xmax = X(0, n);
  for (size_type k = 1; k < X.rows; ++k) xmax = std::max(xmax, X(k, n));
  T s = 0;
  for (size_type k = 0; k < X.rows; ++k) s += std::exp(X(k, n) - xmax);
  return xmax + std::log(s);
}

template <class T>
struct softmax_layer : layer<T> {
  const char* kind() const override { return "softmax"; }
  void forward(const matrix<T>& X, matrix<T>& Y, bool) override {
    Y.resize(X.rows, X.cols);
    parallel_for(X.cols, X.size() > parallel_threshold, [&](size_type n_begin, size_type n_end) {
      for (size_type n = n_begin; n < n_end; ++n) {
        const T lse = column_log_sum_exp(X, n);
        for (size_type k = 0; k < X.rows; ++k) Y(k, n) = std::exp(X(k, n) - lse);
      }
    });
  }
  void backward(const matrix<T>&, const matrix<T>& Y, const matrix<T>& DY, matrix<T>* DX) override {
    if (!DX) return;
    DX->resize(Y.rows, Y.cols);
    parallel_for(Y.cols, Y.size() > parallel_threshold, [&](size_type n_begin, size_type n_end) {
      for (size_type n = n_begin; n < n_end; ++n) {
        T dot = 0;  // columns_sum(Y ⊙ DY)
        for (size_type k = 0; k < Y.rows; ++k) dot += Y(k, n) * DY(k, n);
        for (size_type k = 0; k < Y.rows; ++k) (*DX)(k, n) = Y(k, n) * (DY(k, n) - dot);
      }
    });
  }
};

template <class T>
struct log_softmax_layer : layer<T> {
  const char* kind() const override { return "log_softmax"; }
  void forward(const matrix<T>& X, matrix<T>& Y, bool) override {
    Y.resize(X.rows, X.cols);
    parallel_for(X.cols, X.size() > parallel_threshold, [&](size_type n_begin, size_type n_end) {
      for (size_type n = n_begin; n < n_end; ++n) {
        const T lse = column_log_sum_exp(X, n);
        for (size_type k = 0; k < X.rows; ++k) Y(k, n) = X(k, n) - lse;
      }
    });
  }
  void backward(const matrix<T>&, const matrix<T>& Y, const matrix<T>& DY, matrix<T>* DX) override {
    if (!DX) return;
    DX->resize(Y.rows, Y.cols);
    parallel_for(Y.cols, Y.size() > parallel_threshold, [&](size_type n_begin, size_type n_end) {
      for (size_type n = n_begin; n < n_end; ++n) {
        T s = 0;  // columns_sum(DY)
        for (size_type k = 0; k < Y.rows; ++k) s += DY(k, n);
        for (size_type k = 0; k < Y.rows; ++k) (*DX)(k, n) = DY(k, n) - std::exp(Y(k, n)) * s;
      }
    });
  }
};

template <class T>
struct affine_layer : layer<T> {
  avector<T> gamma, beta, Dgamma, Dbeta;  // (D)
  optimizer_state<T> s_gamma, s_beta;
  explicit affine_layer(size_type D) : gamma(D, T(1)), beta(D, T(0)), Dgamma(D, T(0)), Dbeta(D, T(0)) {}
  const char* kind() const override { return "affine"; }
  void forward(const matrix<T>& X, matrix<T>& Y, bool) override {
    TS_REQUIRE(X.rows == static_cast<size_type>(gamma.size()), "[Affine.forward] X has ", X.rows,
               " features but the layer has ", gamma.size());
    Y.resize(X.rows, X.cols);
    for (size_type i = 0; i < X.rows; ++i)
      for (size_type n = 0; n < X.cols; ++n) Y(i, n) = gamma[i] * X(i, n) + beta[i];
  }
  void backward(const matrix<T>& X, const matrix<T>&, const matrix<T>& DY, matrix<T>* DX) override {
    if (DX) DX->resize(X.rows, X.cols);
    for (size_type i = 0; i < X.rows; ++i) {
      T dg = 0, db = 0;
      for (size_type n = 0; n < X.cols; ++n) {
        dg += DY(i, n) * X(i, n);
        db += DY(i, n);
        if (DX) (*DX)(i, n) = gamma[i] * DY(i, n);
      }
      Dgamma[i] = dg;
      Dbeta[i] = db;
    }
  }
  std::vector<parameter<T>> parameters() override {
    const auto D = static_cast<size_type>(gamma.size());
    return {{"gamma", gamma.data(), Dgamma.data(), D, &s_gamma},
            {"beta", beta.data(), Dbeta.data(), D, &s_beta}};
  }
};

// Batch normalization with PyTorch semantics: training normalizes with the biased batch
// variance and updates the running variance with the unbiased one; evaluation uses the
// running statistics.
template <class T>
struct batch_norm_layer : affine_layer<T> {
  using base = affine_layer<T>;
  double momentum, eps;
  avector<T> running_mean, running_var, inv_std;  // (D)
  matrix<T> Z;                                    // (D,N) normalized input of the last forward
  bool last_train = true;

  batch_norm_layer(size_type D, double momentum_, double eps_)
      : base(D),
        momentum(momentum_),
        eps(eps_),
        running_mean(D, T(0)),
        running_var(D, T(1)),
        inv_std(D, T(1)) {
    TS_REQUIRE(momentum >= 0 && momentum <= 1, "[BatchNorm] momentum must be in [0, 1], got ", momentum);
    TS_REQUIRE(eps > 0, "[BatchNorm] eps must be positive, got ", eps);
  }
  const char* kind() const override { return "batch_norm"; }
  std::vector<statistic<T>> statistics() override {
    const auto D = static_cast<size_type>(running_mean.size());
    return {{"running_mean", running_mean.data(), D}, {"running_var", running_var.data(), D}};
  }

  void forward(const matrix<T>& X, matrix<T>& Y, bool train) override {
    const size_type D = X.rows, N = X.cols;
    TS_REQUIRE(D == static_cast<size_type>(this->gamma.size()), "[BatchNorm.forward] X has ", D,
               " features but the layer has ", this->gamma.size());
    TS_REQUIRE(!train || N > 1, "[BatchNorm.forward] training needs more than 1 example per batch, got ", N);
    last_train = train;
    Z.resize(D, N);
    Y.resize(D, N);
    parallel_for(D, X.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
      for (size_type i = i_begin; i < i_end; ++i) {
        T mu = running_mean[i];
        if (train) {
          double s = 0, ss = 0;
          for (size_type n = 0; n < N; ++n) s += X(i, n);
          mu = static_cast<T>(s / N);
          for (size_type n = 0; n < N; ++n) ss += static_cast<double>(X(i, n) - mu) * (X(i, n) - mu);
          const double var = ss / N;
          inv_std[i] = static_cast<T>(1.0 / std::sqrt(var + eps));
          running_mean[i] = static_cast<T>((1 - momentum) * running_mean[i] + momentum * mu);
          running_var[i] = static_cast<T>((1 - momentum) * running_var[i] + momentum * var * N / (N - 1));
        } else {
          inv_std[i] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[i]) + eps));
        }
        for (size_type n = 0; n < N; ++n) {
          Z(i, n) = (X(i, n) - mu) * inv_std[i];
          Y(i, n) = this->gamma[i] * Z(i, n) + this->beta[i];
        }
      }
    });
  }

  void backward(const matrix<T>&, const matrix<T>&, const matrix<T>& DY, matrix<T>* DX) override {
    const size_type D = Z.rows, N = Z.cols;
    if (DX) DX->resize(D, N);
    parallel_for(D, Z.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
      for (size_type i = i_begin; i < i_end; ++i) {
        T db = 0, dg = 0;
        for (size_type n = 0; n < N; ++n) {
          db += DY(i, n);
          dg += DY(i, n) * Z(i, n);
        }
        this->Dbeta[i] = db;
        this->Dgamma[i] = dg;
        if (!DX) continue;
        const T g = this->gamma[i];
        if (!last_train) {
          for (size_type n = 0; n < N; ++n) (*DX)(i, n) = g * inv_std[i] * DY(i, n);
          continue;
        }
        // rows_sum(DZ) = γ db and rows_sum(DZ ⊙ Z) = γ dg with DZ = γ DY
        const T c = inv_std[i] / static_cast<T>(N);
        for (size_type n = 0; n < N; ++n)
          (*DX)(i, n) = c * (static_cast<T>(N) * g * DY(i, n) - g * db - Z(i, n) * g * dg);
      }
    });
  }
};

// Inverted dropout. The mask of each training forward is drawn row by row from streams
// derive_seed(seed, 4, (layer << 32) + row, call), so it does not depend on the thread count:
// row i's stream gives one uniform draw per example of the batch, in column order.
// column_offset (data-parallel training, distributed.h): the batch is columns column_offset,
// column_offset + 1, ... of a larger global batch; each row skips the draws of the columns
// before it, so a rank's slice is masked exactly as those examples are in one process.
template <class T>
struct dropout_layer : layer<T> {
  double p;
  std::uint64_t seed, index, calls = 0;
  std::uint64_t column_offset = 0;
  matrix<T> M;  // (D,N) mask scaled by 1/(1 − p) of the last training forward
  bool masked = false;

  dropout_layer(double p_, std::uint64_t seed_, std::uint64_t index_) : p(p_), seed(seed_), index(index_) {
    TS_REQUIRE(p >= 0 && p < 1, "[Dropout] p must be in [0, 1), got ", p);
  }
  const char* kind() const override { return "dropout"; }
  void forward(const matrix<T>& X, matrix<T>& Y, bool train) override {
    masked = train && p > 0;
    if (!masked) {
      Y = X;
      return;
    }
    M.resize(X.rows, X.cols);
    Y.resize(X.rows, X.cols);
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    const std::uint64_t call = calls++;
    parallel_for(X.rows, X.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
      for (size_type i = i_begin; i < i_end; ++i) {
        rng g(derive_seed(seed, 4, (index << 32) + static_cast<std::uint64_t>(i), call));
        for (std::uint64_t n = 0; n < column_offset; ++n) g.uniform();  // the columns before the batch
        for (size_type n = 0; n < X.cols; ++n) {
          M(i, n) = g.uniform() < 1.0 - p ? scale : T(0);
          Y(i, n) = X(i, n) * M(i, n);
        }
      }
    });
  }
  void backward(const matrix<T>&, const matrix<T>&, const matrix<T>& DY, matrix<T>* DX) override {
    if (!DX) return;
    *DX = DY;
    if (masked) hadamard_inplace(*DX, M);
  }
};

// S-shaped ReLU (Jin et al. 2016) with four trainable scalars shared by the layer (tl < tr):
//   y = tr + ar (x − tr) for x >= tr;  x for tl < x < tr;  tl + al (x − tl) for x <= tl
// (at x >= tr and x <= tl both, the upper branch wins). With U = [x >= tr], Lo = [x <= tl]
// and the middle region M = 1 − U − Lo:
//   DX = DY ⊙ (ar U + M + al Lo);  Dtl = Σ DY Lo (1 − al);  Dal = Σ DY Lo (x − tl);
//   Dtr = Σ DY U (1 − ar);  Dar = Σ DY U (x − tr).
template <class T>
struct srelu_layer : layer<T> {
  T t[4];  // tl, al, tr, ar
  T Dt[4] = {0, 0, 0, 0};
  optimizer_state<T> state;

  srelu_layer(double tl, double al, double tr, double ar)
      : t{static_cast<T>(tl), static_cast<T>(al), static_cast<T>(tr), static_cast<T>(ar)} {}
  const char* kind() const override { return "srelu"; }
  void forward(const matrix<T>& X, matrix<T>& Y, bool) override {
    const T tl = t[0], al = t[1], tr = t[2], ar = t[3];
    Y.resize(X.rows, X.cols);
    const T* x = X.ptr();
    T* y = Y.ptr();
    const size_type n = X.size();
    parallel_for(n, n > parallel_threshold, [&](size_type k_begin, size_type k_end) {
#pragma omp simd
      for (size_type k = k_begin; k < k_end; ++k)
        y[k] = x[k] >= tr ? tr + ar * (x[k] - tr) : (x[k] <= tl ? tl + al * (x[k] - tl) : x[k]);
    });
  }
  void backward(const matrix<T>& X, const matrix<T>&, const matrix<T>& DY, matrix<T>* DX) override {
    const T tl = t[0], al = t[1], tr = t[2], ar = t[3];
    const T* x = X.ptr();
    const T* dy = DY.ptr();
    const size_type n = X.size();
    if (DX) DX->resize(X.rows, X.cols);
    T* dx = DX ? DX->ptr() : nullptr;
    double lo = 0, lo_x = 0, up = 0, up_x = 0;  // serial sums: thread-count independent
    for (size_type k = 0; k < n; ++k) {
      if (x[k] >= tr) {
        up += dy[k];
        up_x += static_cast<double>(dy[k]) * (x[k] - tr);
        if (dx) dx[k] = ar * dy[k];
      } else if (x[k] <= tl) {
        lo += dy[k];
        lo_x += static_cast<double>(dy[k]) * (x[k] - tl);
        if (dx) dx[k] = al * dy[k];
      } else if (dx) {
        dx[k] = dy[k];
      }
    }
    Dt[0] = static_cast<T>(lo * (1 - static_cast<double>(al)));
    Dt[1] = static_cast<T>(lo_x);
    Dt[2] = static_cast<T>(up * (1 - static_cast<double>(ar)));
    Dt[3] = static_cast<T>(up_x);
  }
  std::vector<parameter<T>> parameters() override { return {{"t", t, Dt, 4, &state}}; }
};

}  // namespace truesparse
