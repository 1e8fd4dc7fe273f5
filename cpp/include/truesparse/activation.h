// Elementwise activation layers: Y = act(Z) forward, DZ = DY ⊙ act'(Z) backward.
// All-ReLU (Curci et al. 2021) is a leaky ReLU whose negative slope alternates in sign between
// hidden layers: layer l = 1, 2, ... (counted from 1) has slope +alpha when l is odd and
// -alpha when l is even.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "truesparse/matrix.h"

namespace truesparse {

enum class activation_kind { relu, leaky_relu, all_relu, sigmoid, tanh, identity };

struct activation {
  activation_kind kind = activation_kind::relu;
  double alpha = 0.0;  // negative-side slope (leaky_relu; all_relu before its sign is applied)
  int layer = 1;       // hidden-layer number counted from 1 (fixes the all_relu sign)

  double negative_slope() const {
    switch (kind) {
      case activation_kind::relu: return 0.0;
      case activation_kind::leaky_relu: return alpha;
      case activation_kind::all_relu: return layer % 2 == 1 ? alpha : -alpha;
      default: return 1.0;
    }
  }

  // Y (K,N) = act(Z (K,N)). Y may alias Z.
  template <class T>
  void forward(const matrix<T>& Z, matrix<T>& Y) const {
    Y.resize(Z.rows, Z.cols);
    const T* z = Z.ptr();
    T* y = Y.ptr();
    const size_type n = Z.size();
    switch (kind) {
      case activation_kind::sigmoid:
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
        for (size_type k = 0; k < n; ++k) y[k] = T(1) / (T(1) + std::exp(-z[k]));
        break;
      case activation_kind::tanh:
#pragma omp parallel for schedule(static) if (n > parallel_threshold)
        for (size_type k = 0; k < n; ++k) y[k] = std::tanh(z[k]);
        break;
      case activation_kind::identity:
        if (y != z) std::copy(z, z + n, y);
        break;
      default: {  // the ReLU family
        const T s = static_cast<T>(negative_slope());
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
        for (size_type k = 0; k < n; ++k) {  // branch-free so that it vectorizes
          const T zk = z[k];
          const T pos = zk > T(0) ? zk : T(0);
          y[k] = pos + s * (zk - pos);
        }
      }
    }
  }

  // DX (K,N) = DY ⊙ act'(Z); DX may be DY itself. Uses Z for the ReLU family (derivative 1
  // for z > 0, slope for z <= 0) and Y for sigmoid and tanh.
  template <class T>
  void backward(const matrix<T>& Z, const matrix<T>& Y, const matrix<T>& DY, matrix<T>& DX) const {
    DX.resize(DY.rows, DY.cols);
    const T* dy = DY.ptr();
    T* dx = DX.ptr();
    const T* z = Z.ptr();
    const T* y = Y.ptr();
    const size_type n = DY.size();
    switch (kind) {
      case activation_kind::sigmoid:
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
        for (size_type k = 0; k < n; ++k) dx[k] = dy[k] * y[k] * (T(1) - y[k]);
        break;
      case activation_kind::tanh:
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
        for (size_type k = 0; k < n; ++k) dx[k] = dy[k] * (T(1) - y[k] * y[k]);
        break;
      case activation_kind::identity:
        if (dx != dy) std::copy(dy, dy + n, dx);
        break;
      default: {
        const T s = static_cast<T>(negative_slope());
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
        for (size_type k = 0; k < n; ++k) dx[k] = dy[k] * (z[k] > T(0) ? T(1) : s);
      }
    }
  }
};

}  // namespace truesparse
