// Dense BLAS for the dense layer and RigL's gradient panels, in BLAS conventions:
// C := alpha op(A) op(B) + beta C, all row-major.
//
// MKL's threaded gemm splits its work by the thread count, and on this project's machines its
// results then differ in the last bits between 1 and 2 threads (strict CNR mode does not fix
// that on non-Intel CPUs). gemm() therefore splits C into blocks of rows whose size does not
// depend on the thread count and runs one sequential MKL gemm per block, the blocks spread
// over the threads of parallel.h: every element of C is computed by the same call, in the
// same order, whatever the number of threads.
#pragma once

#include <mkl.h>

#include <algorithm>

#include "truesparse/common.h"
#include "truesparse/parallel.h"

namespace truesparse {

enum class trans { N, T };

namespace detail {
template <class T>
void gemm_call(trans ta, trans tb, size_type M, size_type Nc, size_type Kc, T alpha, const T* A,
               size_type lda, const T* B, size_type ldb, T beta, T* C, size_type ldc) {
  const auto a = ta == trans::N ? CblasNoTrans : CblasTrans;
  const auto b = tb == trans::N ? CblasNoTrans : CblasTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, a, b, M, Nc, Kc, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, a, b, M, Nc, Kc, alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace detail

// C (M,Nc) := alpha op(A) (M,Kc) op(B) (Kc,Nc) + beta C; lda/ldb/ldc are row strides.
template <class T>
void gemm(trans ta, trans tb, size_type M, size_type Nc, size_type Kc, T alpha, const T* A, size_type lda,
          const T* B, size_type ldb, T beta, T* C, size_type ldc) {
  if (M == 0 || Nc == 0) return;
  constexpr size_type rows = 64;  // block of C's rows: fixed, so results are thread-independent
  const size_type blocks = (M + rows - 1) / rows;
  const bool parallel = blocks > 1 && M * Nc * Kc > parallel_threshold * 8;
  const int threads = parallel ? pool_threads() : 1;
  // a block per chunk, up to 1,024 chunks (blocks are few and the last is short)
  const int chunks = threads > 1 ? static_cast<int>(std::min<size_type>(blocks, 1024)) : 1;
  parallel_chunks(chunks, threads, [&](int chunk) {
    const int saved = mkl_set_num_threads_local(1);  // each block is one sequential call
    for (size_type blk = blocks * chunk / chunks; blk < blocks * (chunk + 1) / chunks; ++blk) {
      const size_type i0 = blk * rows, m = std::min(rows, M - i0);
      // Rows i0.. of op(A): rows of A when not transposed, columns of A when transposed.
      const T* Ablk = ta == trans::N ? A + i0 * lda : A + i0;
      detail::gemm_call(ta, tb, m, Nc, Kc, alpha, Ablk, lda, B, ldb, beta, C + i0 * ldc, ldc);
    }
    mkl_set_num_threads_local(saved);
  });
}

}  // namespace truesparse
