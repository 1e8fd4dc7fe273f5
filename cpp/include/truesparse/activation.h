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

  // Whether the derivative is computed from the output (sigmoid, tanh) rather than the input.
  bool uses_output() const { return kind == activation_kind::sigmoid || kind == activation_kind::tanh; }

  // y[0..n) = act(z[0..n)) on the calling thread; y may alias z.
  template <class T>
  void forward_range(const T* z, T* y, size_type n) const {
    switch (kind) {
      case activation_kind::sigmoid:
#pragma omp simd
        for (size_type k = 0; k < n; ++k) y[k] = T(1) / (T(1) + std::exp(-z[k]));
        break;
      case activation_kind::tanh:
        for (size_type k = 0; k < n; ++k) y[k] = std::tanh(z[k]);
        break;
      case activation_kind::identity:
        if (y != z) std::copy(z, z + n, y);
        break;
      default: {  // the ReLU family
        const T s = static_cast<T>(negative_slope());
#pragma omp simd
        for (size_type k = 0; k < n; ++k) {  // branch-free so that it vectorizes
          const T zk = z[k];
          const T pos = zk > T(0) ? zk : T(0);
          y[k] = pos + s * (zk - pos);
        }
      }
    }
  }

  // dx[0..n) = dy ⊙ act'(z) on the calling thread; dx may be dy itself. Uses z for the ReLU
  // family (derivative 1 for z > 0, slope for z <= 0) and y for sigmoid and tanh.
  template <class T>
  void backward_range(const T* z, const T* y, const T* dy, T* dx, size_type n) const {
    switch (kind) {
      case activation_kind::sigmoid:
#pragma omp simd
        for (size_type k = 0; k < n; ++k) dx[k] = dy[k] * y[k] * (T(1) - y[k]);
        break;
      case activation_kind::tanh:
#pragma omp simd
        for (size_type k = 0; k < n; ++k) dx[k] = dy[k] * (T(1) - y[k] * y[k]);
        break;
      case activation_kind::identity:
        if (dx != dy) std::copy(dy, dy + n, dx);
        break;
      default: {
        const T s = static_cast<T>(negative_slope());
#pragma omp simd
        for (size_type k = 0; k < n; ++k) dx[k] = dy[k] * (z[k] > T(0) ? T(1) : s);
      }
    }
  }

  // Y (K,N) = act(Z (K,N)), row by row (as a sparse product's epilogue applies it: the same
  // bits). Y may alias Z.
  template <class T>
  void forward(const matrix<T>& Z, matrix<T>& Y) const {
    Y.resize(Z.rows, Z.cols);
    const size_type N = Z.cols;
#pragma omp parallel for schedule(static) if (Z.size() > parallel_threshold)
    for (size_type i = 0; i < Z.rows; ++i) forward_range(Z.row(i), Y.row(i), N);
  }

  // DX (K,N) = DY ⊙ act'(Z), row by row; DX may be DY itself.
  template <class T>
  void backward(const matrix<T>& Z, const matrix<T>& Y, const matrix<T>& DY, matrix<T>& DX) const {
    DX.resize(DY.rows, DY.cols);
    const size_type N = DY.cols;
#pragma omp parallel for schedule(static) if (DY.size() > parallel_threshold)
    for (size_type i = 0; i < DY.rows; ++i) backward_range(Z.row(i), Y.row(i), DY.row(i), DX.row(i), N);
  }
};

}  // namespace truesparse
