// Dense row-major matrices and the small vocabulary of matrix operations shared with the
// NumPy reference and the SymPy derivations (rows_sum, column_repeat, hadamard, ...).
// Engine activations are feature-major: a batch is (features, N), one example per column.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "truesparse/common.h"
#include "truesparse/parallel.h"

namespace truesparse {

template <class T>
struct matrix {
  size_type rows = 0;
  size_type cols = 0;
  avector<T> data;

  matrix() = default;
  matrix(size_type r, size_type c) { resize(r, c); }

  // Resizes; contents are unspecified afterwards (capacity only ever grows, until shape_only).
  void resize(size_type r, size_type c) {
    rows = r;
    cols = c;
    data.resize(static_cast<std::size_t>(r * c));
  }
  // Takes the shape (r, c) without its values, releasing the storage: a network's float
  // activation of which only a bfloat16 copy is kept (network::float_activation_unused).
  void shape_only(size_type r, size_type c) {
    rows = r;
    cols = c;
    if (!data.empty()) avector<T>().swap(data);
  }
  // Whether the matrix holds its values (not after shape_only).
  bool holds_values() const { return static_cast<size_type>(data.size()) == size(); }
  size_type size() const { return rows * cols; }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
  T* row(size_type i) { return data.data() + i * cols; }
  const T* row(size_type i) const { return data.data() + i * cols; }
  T& operator()(size_type i, size_type j) { return data[i * cols + j]; }
  const T& operator()(size_type i, size_type j) const { return data[i * cols + j]; }
  void fill(T v) { std::fill(data.begin(), data.end(), v); }
};

// A (rows, cols) matrix of bits, each row in whole 64-bit words (bit k of a row is bit k % 64
// of its word k / 64): the signs a fused ReLU-family activation keeps for its backward instead
// of its input (network.h, "fused epilogues"). Capacity only ever grows.
struct bit_matrix {
  size_type rows = 0;
  size_type words = 0;  // per row
  std::vector<std::uint64_t> data;

  void resize(size_type r, size_type cols) {
    rows = r;
    words = (cols + 63) / 64;
    data.resize(static_cast<std::size_t>(r * words));
  }
  std::uint64_t* row(size_type i) { return data.data() + i * words; }
  const std::uint64_t* row(size_type i) const { return data.data() + i * words; }
};

// The sum of a[0..n) in one order, whatever the build: 8 running sums, sum j taking a[k] for
// k % 8 == j, then added as ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)). rows_sum's, and
// that of the fused epilogues (activation::backward_bits_row adds the same lanes the same way,
// with hsum8), so that fused and unfused bias gradients are the same bits.
template <class T>
inline T row_sum(const T* a, size_type n) {
  T l[8] = {};
  for (size_type k = 0; k < n; ++k) l[k % 8] += a[k];
  return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}
#if defined(__AVX2__) && defined(__FMA__)
namespace detail {
// The sum of 8 lanes in row_sum's order.
inline float hsum8(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // j + (j + 4)
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                               // 0 + 2, 1 + 3
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
// The first r (0 .. 8) of 8 lanes, for maskload and maskstore.
inline __m256i first_lanes(size_type r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// p[0..r) as the first r lanes, the others 0.
inline __m256 load_first(const float* p, size_type r, __m256i m) {
  return r == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
inline void store_first(float* p, size_type r, __m256i m, __m256 v) {
  if (r == 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, m, v);
}
}  // namespace detail
template <>
inline float row_sum(const float* a, size_type n) {
  __m256 acc = _mm256_setzero_ps();
  for (size_type k = 0; k < n; k += 8) {
    const size_type r = std::min<size_type>(8, n - k);
    acc = _mm256_add_ps(acc, detail::load_first(a + k, r, detail::first_lanes(r)));
  }
  return detail::hsum8(acc);
}
#endif

// v (K) = rows_sum(A (K,N)): the sum of each row. Sequential per row: deterministic.
template <class T>
void rows_sum(const matrix<T>& A, T* v) {
  parallel_for(A.rows, A.size() > parallel_threshold, [&](size_type b, size_type e) {
    for (size_type i = b; i < e; ++i) v[i] = row_sum(A.row(i), A.cols);
  });
}

// A (K,N) = column_repeat(b (K), N): every column equals b.
template <class T>
void column_repeat(const T* b, matrix<T>& A) {
  parallel_for(A.rows, A.size() > parallel_threshold, [&](size_type r0, size_type r1) {
    for (size_type i = r0; i < r1; ++i) std::fill(A.row(i), A.row(i) + A.cols, b[i]);
  });
}

// A := hadamard(A, B), elementwise product in place.
template <class T>
void hadamard_inplace(matrix<T>& A, const matrix<T>& B) {
  TS_ASSERT(A.rows == B.rows && A.cols == B.cols);
  T* a = A.ptr();
  const T* b = B.ptr();
  const size_type n = A.size();
  parallel_for(n, n > parallel_threshold, [a, b](size_type k0, size_type k1) {
#pragma omp simd
    for (size_type k = k0; k < k1; ++k) a[k] *= b[k];
  });
}

#if defined(__AVX__)
namespace detail {
// dst rows r (0..8) at stride ld := column r of the 8x8 block whose rows are src[0..8) (each 8
// contiguous floats): an in-register transpose (unpack, shuffle, 128-bit permute).
inline void transpose8x8(const float* const* src, std::size_t off, float* dst, size_type ld) {
  __m256 r0 = _mm256_loadu_ps(src[0] + off), r1 = _mm256_loadu_ps(src[1] + off);
  __m256 r2 = _mm256_loadu_ps(src[2] + off), r3 = _mm256_loadu_ps(src[3] + off);
  __m256 r4 = _mm256_loadu_ps(src[4] + off), r5 = _mm256_loadu_ps(src[5] + off);
  __m256 r6 = _mm256_loadu_ps(src[6] + off), r7 = _mm256_loadu_ps(src[7] + off);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}
}  // namespace detail
#endif

// Xb (D,B) = gather of examples idx[0..B) of a row-major data set X (M,D), transposed to
// feature-major. Float data into float: groups of 8 examples, each read as 8 sequential streams
// (prefetched ahead: the rows are usually in DRAM) through 8x8 register transposes. Otherwise
// tiles of 64 features x 16 examples, each reading 16 contiguous row pieces.
template <class T, class S>
void gather_feature_major(const S* X, size_type D, const std::int64_t* idx, size_type B, matrix<T>& Xb) {
  Xb.resize(D, B);
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
    const size_type groups = B / 8;
    parallel_for(groups, D * B > parallel_threshold, [&](size_type g0, size_type g1) {
      for (size_type g = g0; g < g1; ++g) {
        const float* src[8];
        for (int n = 0; n < 8; ++n) src[n] = X + idx[8 * g + n] * D;
        size_type d = 0;
        for (; d + 8 <= D; d += 8) {
          if (d % 16 == 0)
            for (int n = 0; n < 8; ++n)
              _mm_prefetch(reinterpret_cast<const char*>(src[n] + d + 256), _MM_HINT_T0);
          detail::transpose8x8(src, static_cast<std::size_t>(d), Xb.row(d) + 8 * g, B);
        }
        for (; d < D; ++d)
          for (int n = 0; n < 8; ++n) Xb.row(d)[8 * g + n] = src[n][d];
      }
    });
    for (size_type n = groups * 8; n < B; ++n) {  // the last B mod 8 examples
      const float* src = X + idx[n] * D;
      for (size_type d = 0; d < D; ++d) Xb.row(d)[n] = src[d];
    }
    return;
  }
#endif
  constexpr size_type dblock = 64, nblock = 16;
  parallel_for((D + dblock - 1) / dblock, D * B > parallel_threshold, [&](size_type t0, size_type t1) {
    for (size_type t = t0; t < t1; ++t) {
      const size_type d0 = t * dblock, d1 = std::min(D, d0 + dblock);
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
  });
}

// The first (row, column) of a row-major (M, D) array holding NaN or ±inf, or (-1, -1): the
// check of a data set before training, parallel over blocks of rows (it reads the whole set,
// so it runs at memory bandwidth; every range of blocks stops at the first block after a find).
template <class T>
std::pair<size_type, size_type> first_nonfinite(const T* X, size_type M, size_type D) {
  constexpr size_type rows_per_block = 64;
  const size_type blocks = (M + rows_per_block - 1) / rows_per_block;
  std::atomic<size_type> found{blocks};  // the first block holding a non-finite value
  parallel_for(blocks, M * D > parallel_threshold, [&](size_type b0, size_type b1) {
    for (size_type b = b0; b < b1 && b < found.load(std::memory_order_relaxed); ++b) {
      const T* p = X + b * rows_per_block * D;
      const size_type n = (std::min(M, (b + 1) * rows_per_block) - b * rows_per_block) * D;
      int bad = 0;
#pragma omp simd reduction(| : bad)
      for (size_type k = 0; k < n; ++k) bad |= (p[k] - p[k] != T(0));  // NaN - NaN, inf - inf: NaN
      if (bad) {
        size_type f = found.load();
        while (b < f && !found.compare_exchange_weak(f, b)) {
        }
        return;
      }
    }
  });
  const size_type first = found.load();
  if (first == blocks) return {-1, -1};
  const size_type start = first * rows_per_block * D, end = std::min(M * D, start + rows_per_block * D);
  for (size_type k = start; k < end; ++k)
    if (!(X[k] - X[k] == T(0))) return {k / D, k % D};
  return {-1, -1};
}

// Y (N,K) row-major = transpose of A (K,N): used to hand outputs back to users.
template <class T>
void transpose_to(const matrix<T>& A, T* Y) {
  constexpr size_type block = 64;
  parallel_for((A.cols + block - 1) / block, A.size() > parallel_threshold, [&](size_type t0, size_type t1) {
    for (size_type t = t0; t < t1; ++t) {
      const size_type n0 = t * block, n1 = std::min(A.cols, n0 + block);
      for (size_type k = 0; k < A.rows; ++k)
        for (size_type n = n0; n < n1; ++n) Y[n * A.rows + k] = A(k, n);
    }
  });
}

}  // namespace truesparse
