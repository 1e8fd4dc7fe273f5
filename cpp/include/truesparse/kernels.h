// Our own OpenMP kernels on a CSR pattern (feature-major dense operands, row-major):
//   spmm   C (K,N) = A (K,D) B (D,N) + beta C       -- native alternative to MKL's mm
//   sddmm  v[k] = dot(DZ[i,:], X[j,:]) for stored (i,j) -- the weight gradient on the pattern
//   gather out[k] = in[perm[k]]                       -- refreshes the values of a Wt copy
// Each output element is written by exactly one thread and summed in a fixed order, so the
// results do not depend on the number of threads.
#pragma once

#include <algorithm>

#include "truesparse/csr.h"
#include "truesparse/matrix.h"

namespace truesparse {

template <class T>
void spmm_native(const csr_pattern& A, const T* values, const T* B, size_type N, T beta, T* C) {
#pragma omp parallel for schedule(dynamic, 16) if ((A.nnz() + A.rows) * N > parallel_threshold)
  for (index_t i = 0; i < A.rows; ++i) {
    T* c = C + static_cast<size_type>(i) * N;
    if (beta == T(0))
      std::fill(c, c + N, T(0));
    else if (beta != T(1))
      for (size_type n = 0; n < N; ++n) c[n] *= beta;
    for (index_t k = A.indptr[i]; k < A.indptr[i + 1]; ++k) {
      const T a = values[k];
      const T* b = B + static_cast<size_type>(A.indices[k]) * N;
#pragma omp simd
      for (size_type n = 0; n < N; ++n) c[n] += a * b[n];
    }
  }
}

// DW values (nnz) = (DZ (K,N) X(D,N)ᵀ) ⊙ pattern. Four stored entries of a row at a time
// share each load of DZ[i,:] (register blocking).
template <class T>
void sddmm(const csr_pattern& A, const matrix<T>& DZ, const matrix<T>& X, T* out) {
  const size_type N = DZ.cols;
#pragma omp parallel for schedule(dynamic, 16) if (A.nnz() * N > parallel_threshold)
  for (index_t i = 0; i < A.rows; ++i) {
    const T* dz = DZ.row(i);
    index_t k = A.indptr[i];
    const index_t end = A.indptr[i + 1];
    for (; k + 4 <= end; k += 4) {
      const T* x0 = X.row(A.indices[k]);
      const T* x1 = X.row(A.indices[k + 1]);
      const T* x2 = X.row(A.indices[k + 2]);
      const T* x3 = X.row(A.indices[k + 3]);
      T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (size_type n = 0; n < N; ++n) {
        const T d = dz[n];
        s0 += d * x0[n];
        s1 += d * x1[n];
        s2 += d * x2[n];
        s3 += d * x3[n];
      }
      out[k] = s0;
      out[k + 1] = s1;
      out[k + 2] = s2;
      out[k + 3] = s3;
    }
    for (; k < end; ++k) {
      const T* x = X.row(A.indices[k]);
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (size_type n = 0; n < N; ++n) s += dz[n] * x[n];
      out[k] = s;
    }
  }
}

template <class T>
void gather(const std::vector<index_t>& perm, const T* in, T* out) {
  const size_type n = static_cast<size_type>(perm.size());
#pragma omp parallel for schedule(static) if (n > parallel_threshold)
  for (size_type k = 0; k < n; ++k) out[k] = in[perm[k]];
}

}  // namespace truesparse
