// Losses of the batch mean. compute_loss returns the *sum* over the batch of the per-example
// loss (callers divide by the count) and writes DY = ∂(sum loss)/∂Y · scale, with scale = 1/N
// for a training batch, so gradients are those of the batch-mean loss. Y (K,N) is the network
// output, one example per column; t_n the targets of example n (one-hot labels or a given
// target column), smoothed to (1 − ε) t_n + ε/K for the label-based losses.
//   squared error            l = Σ_k (y_k − t_k)²                   dy = 2 (y − t)
//   softmax cross entropy    l = (Σ_k t_k) lse(y) − Σ_k t_k y_k    dy = softmax(y) Σ_k t_k − t
//     (fused and stable: lse(y) = max(y) + log Σ exp(y − max(y)))
//   cross entropy            l = −Σ_k t_k log y_k   (y = probabilities)   dy = −t / y
//   negative log likelihood  l = −Σ_k t_k y_k       (y = log-probabilities) dy = −t
//   logistic cross entropy   l = Σ_k softplus(y_k) − t_k y_k       dy = σ(y) − t
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "truesparse/matrix.h"

namespace truesparse {

enum class loss_kind {
  softmax_cross_entropy,
  squared_error,
  cross_entropy,
  negative_log_likelihood,
  logistic_cross_entropy
};

// Whether label smoothing applies (the label-based losses).
inline bool smooths_labels(loss_kind k) {
  return k == loss_kind::softmax_cross_entropy || k == loss_kind::cross_entropy ||
         k == loss_kind::negative_log_likelihood;
}

// Targets of a batch: class labels (N) or a dense target block T (K,N).
template <class T>
struct targets {
  const std::int32_t* labels = nullptr;  // N labels, or null
  const matrix<T>* dense = nullptr;      // (K,N) targets, or null
};

struct loss_result {
  double loss_sum = 0.0;
  size_type correct = 0;  // argmax(y_n) == label (or == argmax(t_n) for dense targets)
};

template <class T>
loss_result compute_loss(loss_kind kind, const matrix<T>& Y, const targets<T>& t, T scale, matrix<T>* DY,
                         double label_smoothing = 0.0) {
  const size_type K = Y.rows, N = Y.cols;
  if (DY) DY->resize(K, N);
  const double eps = smooths_labels(kind) ? label_smoothing : 0.0;
  std::vector<double> per_example(static_cast<std::size_t>(N));  // summed serially below, so
  std::vector<char> hit(static_cast<std::size_t>(N));            // the total is thread-independent
  parallel_for(N, K * N > parallel_threshold, [&](size_type n_begin, size_type n_end) {
    for (size_type n = n_begin; n < n_end; ++n) {
      // t_k of this example
      auto target = [&](size_type k) -> double {
        const double given = t.dense ? static_cast<double>((*t.dense)(k, n)) : (k == t.labels[n] ? 1.0 : 0.0);
        return (1.0 - eps) * given + eps / static_cast<double>(K);
      };
      size_type best = 0;
      for (size_type k = 1; k < K; ++k)
        if (Y(k, n) > Y(best, n)) best = k;
      if (t.labels) {
        hit[n] = best == t.labels[n];
      } else {
        size_type tbest = 0;
        for (size_type k = 1; k < K; ++k)
          if ((*t.dense)(k, n) > (*t.dense)(tbest, n)) tbest = k;
        hit[n] = best == tbest;
      }
      double l = 0.0;
      switch (kind) {
        case loss_kind::softmax_cross_entropy: {
          const double ymax = static_cast<double>(Y(best, n));
          double s = 0.0, tsum = 0.0;
          for (size_type k = 0; k < K; ++k) s += std::exp(static_cast<double>(Y(k, n)) - ymax);
          const double lse = ymax + std::log(s);
          for (size_type k = 0; k < K; ++k) {
            const double tk = target(k);
            tsum += tk;
            l -= tk * static_cast<double>(Y(k, n));
          }
          l += tsum * lse;
          if (DY)
            for (size_type k = 0; k < K; ++k)
              (*DY)(k, n) =
                  static_cast<T>((std::exp(static_cast<double>(Y(k, n)) - lse) * tsum - target(k)) * scale);
          break;
        }
        case loss_kind::squared_error:
          for (size_type k = 0; k < K; ++k) {
            const double e = static_cast<double>(Y(k, n)) - target(k);
            l += e * e;
            if (DY) (*DY)(k, n) = static_cast<T>(2.0 * e * scale);
          }
          break;
        case loss_kind::cross_entropy:
          for (size_type k = 0; k < K; ++k) {
            const double tk = target(k), yk = static_cast<double>(Y(k, n));
            if (tk != 0.0) l -= tk * std::log(yk);
            if (DY) (*DY)(k, n) = static_cast<T>(tk == 0.0 ? 0.0 : -tk / yk * scale);
          }
          break;
        case loss_kind::negative_log_likelihood:
          for (size_type k = 0; k < K; ++k) {
            const double tk = target(k);
            l -= tk * static_cast<double>(Y(k, n));
            if (DY) (*DY)(k, n) = static_cast<T>(-tk * scale);
          }
          break;
        case loss_kind::logistic_cross_entropy:
          for (size_type k = 0; k < K; ++k) {
            const double tk = target(k), yk = static_cast<double>(Y(k, n));
            const double softplus = std::max(yk, 0.0) + std::log1p(std::exp(-std::fabs(yk)));
            l += softplus - tk * yk;
            if (DY) (*DY)(k, n) = static_cast<T>((1.0 / (1.0 + std::exp(-yk)) - tk) * scale);
          }
          break;
      }
      per_example[n] = l;
    }
  });
  loss_result r;
  for (size_type n = 0; n < N; ++n) {
    r.loss_sum += per_example[n];
    r.correct += hit[n];
  }
  return r;
}

}  // namespace truesparse
