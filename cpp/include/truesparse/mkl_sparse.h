// Thin RAII wrapper over a oneMKL sparse CSR handle that *references* our arrays (no
// mkl_sparse_optimize: it would copy them). Values changed in place are seen by the next
// product; a change of pattern (or of the arrays' addresses) needs reset().
#pragma once

#include <mkl_spblas.h>

#include <string>

#include "truesparse/common.h"
#include "truesparse/csr.h"

namespace truesparse {

// Throws std::runtime_error naming the MKL routine when a status is not SUCCESS.
void mkl_check(sparse_status_t status, const char* routine);
#define MKL_CHECK(expr) ::truesparse::mkl_check((expr), #expr)

template <class T>
class mkl_csr {
 public:
  mkl_csr() = default;
  mkl_csr(const mkl_csr&) = delete;
  mkl_csr& operator=(const mkl_csr&) = delete;
  ~mkl_csr() { release(); }

  // (Re)creates the handle over p's arrays and `values` (nnz entries). The arrays must stay
  // alive and unmoved until the next reset() or destruction.
  void reset(const csr_pattern& p, T* values);

  // C (rows, N) := alpha * A B + beta * C with B (cols, N), both row-major dense.
  void mm(T alpha, const T* B, size_type N, T beta, T* C) const;

  bool empty() const { return handle_ == nullptr; }

 private:
  void release();
  sparse_matrix_t handle_ = nullptr;
  index_t rows_ = 0, cols_ = 0;
};

}  // namespace truesparse
