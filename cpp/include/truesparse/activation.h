// Elementwise activation layers: Y = act(Z) forward, DZ = DY ⊙ act'(Z) backward.
// All-ReLU (Curci et al. 2021) is a leaky ReLU whose negative slope alternates in sign between
// hidden layers: layer l = 1, 2, ... (counted from 1) has slope +alpha when l is odd and
// -alpha when l is even.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

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

  // Whether the derivative needs the input z (the ReLU family), of which only z > 0 matters:
  // a fused forward that keeps no z keeps positive_bits(z) for the backward instead.
  bool derivative_from_input() const { return !uses_output() && kind != activation_kind::identity; }

  // bits := z[0..n) > 0, bit k in bit k % 64 of bits[k / 64]; the last word's rest is 0.
  template <class T>
  static void positive_bits(const T* z, std::uint64_t* bits, size_type n) {
    for (size_type w = 0; w * 64 < n; ++w) {
      const T* zw = z + w * 64;
      const int m = static_cast<int>(std::min<size_type>(64, n - w * 64));
      std::uint64_t word = 0;
      int b = 0;
#if defined(__AVX2__)
      if constexpr (std::is_same_v<T, float>)  // 8 signs per compare
        for (; b + 8 <= m; b += 8)
          word |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(
                      _mm256_cmp_ps(_mm256_loadu_ps(zw + b), _mm256_setzero_ps(), _CMP_GT_OQ))))
                  << b;
      else
        for (; b + 4 <= m; b += 4)
          word |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_pd(
                      _mm256_cmp_pd(_mm256_loadu_pd(zw + b), _mm256_setzero_pd(), _CMP_GT_OQ))))
                  << b;
#endif
      for (; b < m; ++b) word |= static_cast<std::uint64_t>(zw[b] > T(0)) << b;
      bits[w] = word;
    }
  }

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

  // backward_range of the ReLU family from positive_bits(z) instead of z: the same values.
  template <class T>
  void backward_bits_range(const std::uint64_t* bits, const T* dy, T* dx, size_type n) const {
    TS_ASSERT(derivative_from_input());
    const T s = static_cast<T>(negative_slope());
    for (size_type w = 0; w * 64 < n; ++w) {
      const std::uint64_t word = bits[w];
      const size_type k0 = w * 64, m = std::min<size_type>(64, n - k0);
      size_type b = 0;
#if defined(__AVX2__)
      if constexpr (std::is_same_v<T, float>) {  // lane j of a group of 8 takes bit j: 1 or s
        const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        const __m256 one = _mm256_set1_ps(1.0f), slope = _mm256_set1_ps(s);
        for (; b + 8 <= m; b += 8) {
          const __m256i g = _mm256_set1_epi32(static_cast<int>((word >> b) & 0xffu));
          const __m256 on = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(g, lane), lane));
          _mm256_storeu_ps(dx + k0 + b,
                           _mm256_mul_ps(_mm256_loadu_ps(dy + k0 + b), _mm256_blendv_ps(slope, one, on)));
        }
      } else {
        const __m256i lane = _mm256_setr_epi64x(1, 2, 4, 8);
        const __m256d one = _mm256_set1_pd(1.0), slope = _mm256_set1_pd(s);
        for (; b + 4 <= m; b += 4) {
          const __m256i g = _mm256_set1_epi64x(static_cast<long long>((word >> b) & 0xfu));
          const __m256d on = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(g, lane), lane));
          _mm256_storeu_pd(dx + k0 + b,
                           _mm256_mul_pd(_mm256_loadu_pd(dy + k0 + b), _mm256_blendv_pd(slope, one, on)));
        }
      }
#endif
      for (; b < m; ++b) dx[k0 + b] = dy[k0 + b] * ((word >> b) & 1u ? T(1) : s);
    }
  }

  // Y (K,N) = act(Z (K,N)), row by row (as a sparse product's epilogue applies it: the same
  // bits). Y may alias Z.
  template <class T>
  void forward(const matrix<T>& Z, matrix<T>& Y) const {
    Y.resize(Z.rows, Z.cols);
    const size_type N = Z.cols;
    parallel_for(Z.rows, Z.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
      for (size_type i = i_begin; i < i_end; ++i) forward_range(Z.row(i), Y.row(i), N);
    });
  }

  // DX (K,N) = DY ⊙ act'(Z), row by row; DX may be DY itself.
  template <class T>
  void backward(const matrix<T>& Z, const matrix<T>& Y, const matrix<T>& DY, matrix<T>& DX) const {
    DX.resize(DY.rows, DY.cols);
    const size_type N = DY.cols;
    parallel_for(DY.rows, DY.size() > parallel_threshold, [&](size_type i_begin, size_type i_end) {
      for (size_type i = i_begin; i < i_end; ++i) backward_range(Z.row(i), Y.row(i), DY.row(i), DX.row(i), N);
    });
  }
};

}  // namespace truesparse
