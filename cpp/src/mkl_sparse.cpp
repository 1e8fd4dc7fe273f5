// oneMKL sparse BLAS calls for float and double (the only place that names mkl_sparse_?_*).
#include "truesparse/mkl_sparse.h"

#include <mkl.h>

#include <algorithm>

namespace truesparse {

void mkl_check(sparse_status_t status, const char* routine) {
  if (status == SPARSE_STATUS_SUCCESS) return;
  const char* what = "unknown error";
  switch (status) {
    case SPARSE_STATUS_NOT_INITIALIZED: what = "not initialized"; break;
    case SPARSE_STATUS_ALLOC_FAILED: what = "allocation failed"; break;
    case SPARSE_STATUS_INVALID_VALUE: what = "invalid value"; break;
    case SPARSE_STATUS_EXECUTION_FAILED: what = "execution failed"; break;
    case SPARSE_STATUS_INTERNAL_ERROR: what = "internal error"; break;
    case SPARSE_STATUS_NOT_SUPPORTED: what = "not supported"; break;
    default: break;
  }
  throw std::runtime_error(msg("[MKL] ", routine, " failed: ", what));
}

template <class T>
void mkl_csr<T>::release() {
  if (handle_) mkl_sparse_destroy(handle_);
  handle_ = nullptr;
}

template <class T>
void mkl_csr<T>::reset(const csr_pattern& p, T* values) {
  release();
  rows_ = p.rows;
  cols_ = p.cols;
  if (p.rows == 0 || p.cols == 0 || p.nnz() == 0) return;  // handled in mm() without MKL
  auto* starts = const_cast<MKL_INT*>(p.indptr.data());
  auto* cols = const_cast<MKL_INT*>(p.indices.data());
  if constexpr (std::is_same_v<T, float>)
    MKL_CHECK(mkl_sparse_s_create_csr(&handle_, SPARSE_INDEX_BASE_ZERO, p.rows, p.cols, starts, starts + 1,
                                      cols, values));
  else
    MKL_CHECK(mkl_sparse_d_create_csr(&handle_, SPARSE_INDEX_BASE_ZERO, p.rows, p.cols, starts, starts + 1,
                                      cols, values));
}

template <class T>
void mkl_csr<T>::mm(T alpha, const T* B, size_type N, T beta, T* C) const {
  if (N == 0 || rows_ == 0) return;
  if (!handle_) {  // no stored entries: C := beta C
    const size_type n = static_cast<size_type>(rows_) * N;
    if (beta == T(0))
      std::fill(C, C + n, T(0));
    else
      for (size_type k = 0; k < n; ++k) C[k] *= beta;
    return;
  }
  matrix_descr d;
  d.type = SPARSE_MATRIX_TYPE_GENERAL;
  d.mode = SPARSE_FILL_MODE_FULL;
  d.diag = SPARSE_DIAG_NON_UNIT;
  const auto n = static_cast<MKL_INT>(N);
  if constexpr (std::is_same_v<T, float>)
    MKL_CHECK(mkl_sparse_s_mm(SPARSE_OPERATION_NON_TRANSPOSE, alpha, handle_, d, SPARSE_LAYOUT_ROW_MAJOR, B,
                              n, n, beta, C, n));
  else
    MKL_CHECK(mkl_sparse_d_mm(SPARSE_OPERATION_NON_TRANSPOSE, alpha, handle_, d, SPARSE_LAYOUT_ROW_MAJOR, B,
                              n, n, beta, C, n));
}

template class mkl_csr<float>;
template class mkl_csr<double>;

}  // namespace truesparse
