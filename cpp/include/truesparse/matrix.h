// Dense row-major matrices and the small vocabulary of matrix operations shared with the
// NumPy reference and the SymPy derivations (rows_sum, column_repeat, hadamard, ...).
// Engine activations are feature-major: a batch is (features, N), one example per column.
#pragma once

#include <algorithm>
#include <cstring>

#include "truesparse/common.h"

namespace truesparse {

template <class T>
struct matrix {
  size_type rows = 0;
  size_type cols = 0;
  avector<T> data;

  matrix() = default;
  matrix(size_type r, size_type c) { resize(r, c); }

  // Resizes; contents are unspecified afterwards (capacity only ever grows).
  void resize(size_type r, size_type c) {
    rows = r;
    cols = c;
    data.resize(static_cast<std::size_t>(r * c));
  }
  size_type size() const { return rows * cols; }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
  T* row(size_type i) { return data.data() + i * cols; }
  const T* row(size_type i) const { return data.data() + i * cols; }
  T& operator()(size_type i, size_type j) { return data[i * cols + j]; }
  const T& operator()(size_type i, size_type j) const { return data[i * cols + j]; }
  void fill(T v) { std::fill(data.begin(), data.end(), v); }
};

// v (K) = rows_sum(A (K,N)): the sum of each row. Sequential per row: deterministic.
template <class T>
void rows_sum(const matrix<T>& A, T* v) {
#pragma omp parallel for schedule(static) if (A.size() > parallel_threshold)
  for (size_type i = 0; i < A.rows; ++i) {
    const T* a = A.row(i);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (size_type j = 0; j < A.cols; ++j) s += a[j];
    v[i] = s;
  }
}

// A (K,N) = column_repeat(b (K), N): every column equals b.
template <class T>
void column_repeat(const T* b, matrix<T>& A) {
#pragma omp parallel for schedule(static) if (A.size() > parallel_threshold)
  for (size_type i = 0; i < A.rows; ++i) std::fill(A.row(i), A.row(i) + A.cols, b[i]);
}

// A := hadamard(A, B), elementwise product in place.
template <class T>
void hadamard_inplace(matrix<T>& A, const matrix<T>& B) {
  TS_ASSERT(A.rows == B.rows && A.cols == B.cols);
  T* a = A.ptr();
  const T* b = B.ptr();
  const size_type n = A.size();
#pragma omp parallel for simd schedule(static) if (n > parallel_threshold)
  for (size_type k = 0; k < n; ++k) a[k] *= b[k];
}

// Xb (D,B) = gather of examples idx[0..B) of a row-major data set X (M,D), transposed to
// feature-major. Tiled 64 features x 16 examples: each tile reads 16 contiguous row pieces and
// fills whole cache lines of Xb.
template <class T, class S>
void gather_feature_major(const S* X, size_type D, const std::int64_t* idx, size_type B, matrix<T>& Xb) {
  Xb.resize(D, B);
  constexpr size_type dblock = 64, nblock = 16;
#pragma omp parallel for schedule(static) if (D * B > parallel_threshold)
  for (size_type d0 = 0; d0 < D; d0 += dblock) {
    const size_type d1 = std::min(D, d0 + dblock);
    for (size_type n0 = 0; n0 < B; n0 += nblock) {
      const size_type n1 = std::min(B, n0 + nblock);
      const S* src[nblock];
      for (size_type n = n0; n < n1; ++n) src[n - n0] = X + idx[n] * D;
      for (size_type d = d0; d < d1; ++d) {
        T* dst = Xb.row(d) + n0;
        for (size_type n = 0; n < n1 - n0; ++n) dst[n] = static_cast<T>(src[n][d]);
      }
    }
  }
}

// Y (N,K) row-major = transpose of A (K,N): used to hand outputs back to users.
template <class T>
void transpose_to(const matrix<T>& A, T* Y) {
  constexpr size_type block = 64;
#pragma omp parallel for schedule(static) if (A.size() > parallel_threshold)
  for (size_type n0 = 0; n0 < A.cols; n0 += block) {
    const size_type n1 = std::min(A.cols, n0 + block);
    for (size_type k = 0; k < A.rows; ++k)
      for (size_type n = n0; n < n1; ++n) Y[n * A.rows + k] = A(k, n);
  }
}

}  // namespace truesparse
