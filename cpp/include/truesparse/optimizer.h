// Optimizers on value arrays (weights of a sparse layer are a plain array aligned with its
// pattern, so the same code serves dense and sparse layers). PyTorch's SGD semantics:
//   g = dw + wd w;  v = mu v + g;  step = nesterov ? g + mu v : v  (mu = 0: step = g);  w -= lr step
#pragma once

#include "truesparse/common.h"

namespace truesparse {

struct sgd_config {
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

inline void validate(const sgd_config& c) {
  TS_REQUIRE(c.lr >= 0, "[SGD] learning rate must be non-negative, got ", c.lr);
  TS_REQUIRE(c.momentum >= 0 && c.momentum < 1, "[SGD] momentum must be in [0, 1), got ",
             c.momentum);
  TS_REQUIRE(c.weight_decay >= 0, "[SGD] weight_decay must be non-negative, got ",
             c.weight_decay);
  TS_REQUIRE(!c.nesterov || c.momentum > 0, "[SGD] Nesterov momentum needs momentum > 0");
}

// One step on n values w with gradient g and velocity v (v unused when momentum == 0).
template <class T>
void sgd_step(const sgd_config& c, T* w, const T* g, T* v, size_type n) {
  const T lr = static_cast<T>(c.lr), mu = static_cast<T>(c.momentum),
          wd = static_cast<T>(c.weight_decay);
  if (c.momentum == 0) {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (size_type k = 0; k < n; ++k) w[k] -= lr * (g[k] + wd * w[k]);
  } else if (c.nesterov) {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (size_type k = 0; k < n; ++k) {
      const T gk = g[k] + wd * w[k];
      v[k] = mu * v[k] + gk;
      w[k] -= lr * (gk + mu * v[k]);
    }
  } else {
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
    for (size_type k = 0; k < n; ++k) {
      v[k] = mu * v[k] + g[k] + wd * w[k];
      w[k] -= lr * v[k];
    }
  }
}

}  // namespace truesparse
