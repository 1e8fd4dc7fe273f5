// Losses of the batch mean. Each returns the *sum* over the batch of the per-example loss
// (callers divide by the total count) and writes DZ = ∂(sum loss)/∂Z · scale, where scale is
// 1/N for a training batch, so gradients are those of the batch-mean loss.
//   softmax cross entropy (fused, stable): l_n = logsumexp(z_n) - z_n[y_n];  DZ = softmax(Z) - onehot
//   squared error:                         l_n = sum_k (z_kn - t_kn)^2;       DZ = 2 (Z - T)
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "truesparse/matrix.h"

namespace truesparse {

enum class loss_kind { softmax_cross_entropy, squared_error };

// Targets of a batch: class labels (N) or, for squared error, a dense target block T (K,N).
template <class T>
struct targets {
  const std::int32_t* labels = nullptr;  // N labels, or null
  const matrix<T>* dense = nullptr;      // (K,N) targets, or null
};

struct loss_result {
  double loss_sum = 0.0;
  size_type correct = 0;  // argmax(z_n) == y_n (or == argmax(t_n) for dense targets)
};

// Z (K,N): logits, one example per column. DZ (K,N) written when non-null.
template <class T>
loss_result compute_loss(loss_kind kind, const matrix<T>& Z, const targets<T>& t, T scale,
                         matrix<T>* DZ) {
  const size_type K = Z.rows, N = Z.cols;
  if (DZ) DZ->resize(K, N);
  loss_result r;
  std::vector<double> per_example(static_cast<std::size_t>(N));  // summed serially below, so
  std::vector<char> hit(static_cast<std::size_t>(N));             // the total is thread-independent
#pragma omp parallel for schedule(static) if (K * N > parallel_threshold)
  for (size_type n = 0; n < N; ++n) {
    size_type best = 0;
    T zmax = Z(0, n);
    for (size_type k = 1; k < K; ++k)
      if (Z(k, n) > zmax) zmax = Z(k, n), best = k;
    if (t.labels) {
      hit[n] = best == t.labels[n];
    } else {  // dense targets: hit when the argmax agrees with the target's argmax
      size_type tbest = 0;
      for (size_type k = 1; k < K; ++k)
        if ((*t.dense)(k, n) > (*t.dense)(tbest, n)) tbest = k;
      hit[n] = best == tbest;
    }
    if (kind == loss_kind::softmax_cross_entropy) {
      const size_type y = t.labels[n];
      double s = 0.0;
      for (size_type k = 0; k < K; ++k) s += std::exp(static_cast<double>(Z(k, n) - zmax));
      const double lse = static_cast<double>(zmax) + std::log(s);
      per_example[n] = lse - static_cast<double>(Z(y, n));
      if (DZ)
        for (size_type k = 0; k < K; ++k) {
          const double p = std::exp(static_cast<double>(Z(k, n)) - lse);
          (*DZ)(k, n) = static_cast<T>((p - (k == y ? 1.0 : 0.0)) * scale);
        }
    } else {
      double s = 0.0;
      for (size_type k = 0; k < K; ++k) {
        const T target =
            t.dense ? (*t.dense)(k, n) : static_cast<T>(k == t.labels[n] ? 1 : 0);
        const T e = Z(k, n) - target;
        s += static_cast<double>(e) * e;
        if (DZ) (*DZ)(k, n) = T(2) * e * scale;
      }
      per_example[n] = s;
    }
  }
  double loss_sum = 0.0;
  size_type correct = 0;
  for (size_type n = 0; n < N; ++n) {
    loss_sum += per_example[n];
    correct += hit[n];
  }
  r.loss_sum = loss_sum;
  r.correct = correct;
  return r;
}

}  // namespace truesparse
