// Dense BLAS for the dense layer, in BLAS conventions: C := alpha op(A) op(B) + beta C,
// all row-major.
#pragma once

#include <mkl_cblas.h>

#include "truesparse/common.h"

namespace truesparse {

enum class trans { N, T };

// C (M,Nc) := alpha op(A) (M,Kc) op(B) (Kc,Nc) + beta C; lda/ldb/ldc are row strides.
template <class T>
void gemm(trans ta, trans tb, size_type M, size_type Nc, size_type Kc, T alpha, const T* A,
          size_type lda, const T* B, size_type ldb, T beta, T* C, size_type ldc) {
  if (M == 0 || Nc == 0) return;
  const auto a = ta == trans::N ? CblasNoTrans : CblasTrans;
  const auto b = tb == trans::N ? CblasNoTrans : CblasTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, a, b, M, Nc, Kc, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, a, b, M, Nc, Kc, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace truesparse
