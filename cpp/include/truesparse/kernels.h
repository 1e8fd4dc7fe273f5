// Our own OpenMP kernels on a CSR pattern (feature-major dense operands, row-major):
//   spmm   C (K,N) = A (K,D) B (D,N) + beta C + bias 1ᵀ  -- the forward and input-gradient products
//   sddmm  v[k] = dot(DZ[i,:], X[j,:]) for stored (i,j)  -- the weight gradient on the pattern
//   gather out[k] = in[perm[k]]                          -- refreshes the values of a Wt copy
// Each output element is written by exactly one thread and summed in a fixed order that depends
// only on the pattern and the shapes, so the results do not depend on the number of threads.
//
// The products are register-blocked (docs/design.md, "kernels"): an output row's column tile
// (up to 13 SIMD vectors: N = 100 floats at once) stays in registers while the stored weights of
// the row stream through it, each adding a * B[j, tile]; the row is stored once. A batch wider
// than 13 vectors takes several tiles. The gathered operand's rows are prefetched a few weights
// ahead when the operand does not fit in the L3. Rows are split between threads in contiguous
// ranges of equal work (nnz + rows), so every thread gets a static share without a scheduler.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>

#include "truesparse/csr.h"
#include "truesparse/matrix.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace truesparse {

namespace detail {

// The rows [first, last) of A given to thread t of nt: contiguous ranges of about equal cost
// nnz + 2 rows (a row costs its initialisation and store).
inline void row_range(const csr_pattern& A, int t, int nt, index_t& first, index_t& last) {
  auto split = [&](int s) -> index_t {
    if (s <= 0) return 0;
    if (s >= nt) return A.rows;
    const double total = static_cast<double>(A.nnz()) + 2.0 * A.rows;
    const double target = total * s / nt;
    index_t lo = 0, hi = A.rows;  // first row whose cost-before >= target
    while (lo < hi) {
      const index_t mid = lo + (hi - lo) / 2;
      if (static_cast<double>(A.indptr[mid]) + 2.0 * mid < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  };
  first = split(t);
  last = split(t + 1);
}

// Threads for a kernel of `work` multiply-adds: one below the parallel threshold.
inline int kernel_threads(double work) {
  return work > static_cast<double>(parallel_threshold) * 8 ? omp_get_max_threads() : 1;
}

}  // namespace detail

#if defined(__AVX2__) && defined(__FMA__)
namespace detail {

template <class T>
struct avx;

template <>
struct avx<float> {
  using V = __m256;
  using M = __m256i;
  static constexpr int width = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, M m, V v) { _mm256_maskstore_ps(p, m, v); }
  static V load_half(const float* p) { return _mm256_zextps128_ps256(_mm_loadu_ps(p)); }
  static void store_half(float* p, V v) { _mm_storeu_ps(p, _mm256_castps256_ps128(v)); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static M mask(int n) {  // the first n lanes
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // out[0..4) = the sums of the lanes of a, b, c, d (a fixed order).
  static void hsum4(V a, V b, V c, V d, float* out) {
    const V ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    const V abcd = _mm256_hadd_ps(ab, cd);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
  static float hsum(V a) {
    alignas(32) float o[4];
    hsum4(a, a, a, a, o);
    return o[0];
  }
};

template <>
struct avx<double> {
  using V = __m256d;
  using M = __m256i;
  static constexpr int width = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(double a) { return _mm256_set1_pd(a); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V load(const double* p, M m) { return _mm256_maskload_pd(p, m); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static void store(double* p, M m, V v) { _mm256_maskstore_pd(p, m, v); }
  static V load_half(const double* p) { return _mm256_zextpd128_pd256(_mm_loadu_pd(p)); }
  static void store_half(double* p, V v) { _mm_storeu_pd(p, _mm256_castpd256_pd128(v)); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static M mask(int n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
  static void hsum4(V a, V b, V c, V d, double* out) {
    const V ab = _mm256_hadd_pd(a, b);  // a0+a1, b0+b1, a2+a3, b2+b3
    const V cd = _mm256_hadd_pd(c, d);
    const V lo = _mm256_permute2f128_pd(ab, cd, 0x20), hi = _mm256_permute2f128_pd(ab, cd, 0x31);
    const V s = _mm256_add_pd(lo, hi);  // a, b, c, d
    _mm256_storeu_pd(out, s);
  }
  static double hsum(V a) {
    alignas(32) double o[4];
    hsum4(a, a, a, a, o);
    return o[0];
  }
};

constexpr int max_tile_vectors = 13;  // accumulators of one output row tile (16 registers)

// Software prefetch of the gathered rows pays only once the gathered operand (rows of `row_bytes`)
// leaves the 32 MB L3 (measured: +8-13 % at 80 MB, -30 % at 8 MB): the cache lines to prefetch
// from the start of a row piece of `piece_bytes`, or 0 for none.
inline int prefetch_lines(size_type rows, size_type row_bytes, size_type piece_bytes) {
  const bool far = static_cast<double>(rows) * static_cast<double>(row_bytes) > 32.0 * 1024 * 1024;
  return far ? static_cast<int>((piece_bytes + 63) / 64) + 1 : 0;  // + 1: pieces are not line-aligned
}

// Prefetches `lines` cache lines from p into L1.
inline void prefetch(const void* p, int lines) {
  for (int l = 0; l < lines; ++l) _mm_prefetch(static_cast<const char*>(p) + 64 * l, _MM_HINT_T0);
}

// How the last vector of a row tile is loaded and stored: whole, as its lower half (a 128-bit
// access: N = 100 floats end with 4), or masked to its first `tail` lanes.
enum tail_kind { whole = 0, half = 1, masked = 2 };

template <class T, int Tail>
inline typename avx<T>::V load_last(const T* p, typename avx<T>::M m) {
  if constexpr (Tail == whole) return avx<T>::load(p);
  if constexpr (Tail == half) return avx<T>::load_half(p);
  return avx<T>::load(p, m);
}

// c[n0 .. n0 + R·W) (the last vector cut to `tail` lanes as Tail says) := init + beta c
// + Σ_k a_k B[j_k, ·] over the stored entries kb..ke of one row; a_k = val[k], or val[perm[k]]
// when Indirect. The R accumulators stay in registers for the whole row.
template <class T, int R, int Tail, bool Indirect>
inline void spmm_row_tile(const index_t* idx, const T* val, const index_t* perm, index_t kb, index_t ke,
                          const T* B, size_type ldb, int tail, T init, T beta, T* c, int lines) {
  using S = avx<T>;
  using V = typename S::V;
  constexpr int W = S::width;
  const typename S::M m = S::mask(tail);
  V acc[R];
  if (beta == T(0)) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = S::set1(init);
  } else {
    const V vb = S::set1(beta), vi = S::set1(init);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      acc[r] = S::fma(vb, r == R - 1 ? load_last<T, Tail>(c + r * W, m) : S::load(c + r * W), vi);
  }
  constexpr index_t ahead = 8;  // weights ahead for the software prefetch
  for (index_t k = kb; k < ke; ++k) {
    if (lines > 0 && k + ahead < ke) prefetch(B + static_cast<size_type>(idx[k + ahead]) * ldb, lines);
    const T* b = B + static_cast<size_type>(idx[k]) * ldb;
    const V a = S::set1(Indirect ? val[perm[k]] : val[k]);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      acc[r] = S::fma(a, r == R - 1 ? load_last<T, Tail>(b + r * W, m) : S::load(b + r * W), acc[r]);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R - 1; ++r) S::store(c + r * W, acc[r]);
  if constexpr (Tail == whole)
    S::store(c + (R - 1) * W, acc[R - 1]);
  else if constexpr (Tail == half)
    S::store_half(c + (R - 1) * W, acc[R - 1]);
  else
    S::store(c + (R - 1) * W, m, acc[R - 1]);
}

template <class T>
using row_tile_fn = void (*)(const index_t*, const T*, const index_t*, index_t, index_t, const T*, size_type,
                             int, T, T, T*, int);

template <class T, int Tail, bool Indirect, int... R>
constexpr std::array<row_tile_fn<T>, sizeof...(R)> make_row_tiles(std::integer_sequence<int, R...>) {
  return {&spmm_row_tile<T, R + 1, Tail, Indirect>...};
}

// The row-tile kernel for R vectors (1..max_tile_vectors) whose last one has `tail` lanes.
template <class T>
row_tile_fn<T> row_tile(int R, int tail, bool indirect) {
  using seq = std::make_integer_sequence<int, max_tile_vectors>;
  static constexpr std::array<std::array<row_tile_fn<T>, max_tile_vectors>, 6> table{
      make_row_tiles<T, whole, false>(seq{}),  make_row_tiles<T, half, false>(seq{}),
      make_row_tiles<T, masked, false>(seq{}), make_row_tiles<T, whole, true>(seq{}),
      make_row_tiles<T, half, true>(seq{}),    make_row_tiles<T, masked, true>(seq{})};
  const int kind = tail == avx<T>::width ? whole : 2 * tail == avx<T>::width ? half : masked;
  return table[static_cast<std::size_t>(kind + (indirect ? 3 : 0))][static_cast<std::size_t>(R - 1)];
}

}  // namespace detail
#endif

// C (K,N) = A (K,D) B (D,N) + beta C + column_repeat(bias) (bias may be null). With perm, the
// value of stored entry k is values[perm[k]] (A is then the transpose of the pattern whose
// values are stored: no transposed copy of the values is needed).
template <class T>
void spmm_native(const csr_pattern& A, const T* values, const T* B, size_type N, T beta, T* C,
                 const T* bias = nullptr, const index_t* perm = nullptr) {
  if (A.rows == 0 || N == 0) return;
  const int nt = detail::kernel_threads(static_cast<double>(A.nnz() + A.rows) * static_cast<double>(N));
#if defined(__AVX2__) && defined(__FMA__)
  using S = detail::avx<T>;
  constexpr int W = S::width;
  // Column tiles: as few as the 13 accumulators allow (one for N <= 104 floats). Narrower
  // tiles that would keep a tile of B in L2 were measured slower: every tile re-reads the
  // pattern and each gathered row piece still spans the same cache lines.
  const size_type vectors = (N + W - 1) / W;
  const size_type tiles = (vectors + detail::max_tile_vectors - 1) / detail::max_tile_vectors;
#pragma omp parallel num_threads(nt)
  {
    index_t first, last;
    detail::row_range(A, omp_get_thread_num(), omp_get_num_threads(), first, last);
    for (size_type t = 0; t < tiles; ++t) {
      const size_type v0 = vectors * t / tiles, v1 = vectors * (t + 1) / tiles;
      const size_type n0 = v0 * W;
      const int R = static_cast<int>(v1 - v0);
      const int tail = static_cast<int>(std::min<size_type>(N, v1 * W) - (v1 - 1) * W);
      const int lines = detail::prefetch_lines(A.cols, N * sizeof(T), R * W * sizeof(T));
      auto run = [&](auto fn) {
        for (index_t i = first; i < last; ++i)
          fn(A.indices.data(), values, perm, A.indptr[i], A.indptr[i + 1], B + n0, N, tail,
             bias ? bias[i] : T(0), beta, C + static_cast<size_type>(i) * N + n0, lines);
      };
      run(detail::row_tile<T>(R, tail, perm != nullptr));
    }
  }
#else
#pragma omp parallel num_threads(nt)
  {
    index_t first, last;
    detail::row_range(A, omp_get_thread_num(), omp_get_num_threads(), first, last);
    for (index_t i = first; i < last; ++i) {
      T* c = C + static_cast<size_type>(i) * N;
      const T b0 = bias ? bias[i] : T(0);
      if (beta == T(0))
        std::fill(c, c + N, b0);
      else
        for (size_type n = 0; n < N; ++n) c[n] = beta * c[n] + b0;
      for (index_t k = A.indptr[i]; k < A.indptr[i + 1]; ++k) {
        const T a = perm ? values[perm[k]] : values[k];
        const T* b = B + static_cast<size_type>(A.indices[k]) * N;
#pragma omp simd
        for (size_type n = 0; n < N; ++n) c[n] += a * b[n];
      }
    }
  }
#endif
}

#if defined(__AVX2__) && defined(__FMA__)
namespace detail {

// out(k, dot(dz, X[j_k, :])) for k in kb..ke, over N columns (`full` of them in whole vectors,
// the rest as Tail says). Four stored entries at a time share each load of dz, with two
// accumulators each (8 independent chains); the lanes are summed in a fixed order.
template <class T, int Tail, class Out>
void sddmm_row(const index_t* idx, index_t kb, index_t ke, const T* dz, const T* X, size_type N,
               size_type full, const Out& out, int lines) {
  using S = avx<T>;
  using V = typename S::V;
  constexpr size_type W = S::width;
  const typename S::M m = S::mask(static_cast<int>(N - full));
  index_t k = kb;
  // Eight entries at a time: one accumulator each (8 independent chains), each load of dz
  // shared by 8 dot products.
  for (; k + 8 <= ke; k += 8) {
    if (lines > 0 && k + 24 <= ke)  // the rows of two groups ahead
      for (int q = 16; q < 24; ++q) prefetch(X + static_cast<size_type>(idx[k + q]) * N, lines);
    const T* x[8];
    for (int q = 0; q < 8; ++q) x[q] = X + static_cast<size_type>(idx[k + q]) * N;
    V a[8];
    for (int q = 0; q < 8; ++q) a[q] = S::zero();
    size_type n = 0;
    for (; n < full; n += W) {
      const V d = S::load(dz + n);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) a[q] = S::fma(d, S::load(x[q] + n), a[q]);
    }
    if constexpr (Tail != whole) {
      const V d = load_last<T, Tail>(dz + n, m);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) a[q] = S::fma(d, load_last<T, Tail>(x[q] + n, m), a[q]);
    }
    alignas(32) T g[8];
    S::hsum4(a[0], a[1], a[2], a[3], g);
    S::hsum4(a[4], a[5], a[6], a[7], g + 4);
    for (int q = 0; q < 8; ++q) out(k + q, g[q]);
  }
  for (; k + 4 <= ke; k += 4) {
    if (lines > 0 && k + 12 <= ke)  // the rows of two groups ahead
      for (int q = 8; q < 12; ++q) prefetch(X + static_cast<size_type>(idx[k + q]) * N, lines);
    const T* x[4];
    for (int q = 0; q < 4; ++q) x[q] = X + static_cast<size_type>(idx[k + q]) * N;
    V a0[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
    V a1[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
    size_type n = 0;
    for (; n + 2 * W <= full; n += 2 * W) {
      const V d0 = S::load(dz + n), d1 = S::load(dz + n + W);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        a0[q] = S::fma(d0, S::load(x[q] + n), a0[q]);
        a1[q] = S::fma(d1, S::load(x[q] + n + W), a1[q]);
      }
    }
    if (n < full) {
      const V d0 = S::load(dz + n);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) a0[q] = S::fma(d0, S::load(x[q] + n), a0[q]);
      n += W;
    }
    if constexpr (Tail != whole) {
      const V d1 = load_last<T, Tail>(dz + n, m);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) a1[q] = S::fma(d1, load_last<T, Tail>(x[q] + n, m), a1[q]);
    }
    alignas(32) T g[4];
    S::hsum4(S::add(a0[0], a1[0]), S::add(a0[1], a1[1]), S::add(a0[2], a1[2]), S::add(a0[3], a1[3]), g);
    for (int q = 0; q < 4; ++q) out(k + q, g[q]);
  }
  for (; k < ke; ++k) {
    const T* x = X + static_cast<size_type>(idx[k]) * N;
    V a0 = S::zero(), a1 = S::zero();
    size_type n = 0;
    for (; n + W <= full; n += W) a0 = S::fma(S::load(dz + n), S::load(x + n), a0);
    if constexpr (Tail != whole) a1 = S::fma(load_last<T, Tail>(dz + n, m), load_last<T, Tail>(x + n, m), a1);
    out(k, S::hsum(S::add(a0, a1)));
  }
}

}  // namespace detail
#endif

// out(k, g_k) for every stored entry k, g_k = (DZ (K,N) X (D,N)ᵀ)[i, j] at its position (i, j):
// one dot product of N per stored weight, each by one thread, in a fixed order.
template <class T, class Out>
void sddmm_each(const csr_pattern& A, const matrix<T>& DZ, const matrix<T>& X, const Out& out) {
  const size_type N = DZ.cols;
  if (A.rows == 0) return;
  const int nt = detail::kernel_threads(static_cast<double>(A.nnz()) * static_cast<double>(N));
#pragma omp parallel num_threads(nt)
  {
    index_t first, last;
    detail::row_range(A, omp_get_thread_num(), omp_get_num_threads(), first, last);
#if defined(__AVX2__) && defined(__FMA__)
    constexpr size_type W = detail::avx<T>::width;
    const size_type full = N / W * W;
    const size_type tail = N - full;
    const int lines = detail::prefetch_lines(X.rows, N * sizeof(T), N * sizeof(T));
    for (index_t i = first; i < last; ++i) {
      const index_t kb = A.indptr[i], ke = A.indptr[i + 1];
      if (tail == 0)
        detail::sddmm_row<T, detail::whole>(A.indices.data(), kb, ke, DZ.row(i), X.ptr(), N, full, out,
                                            lines);
      else if (2 * tail == W)
        detail::sddmm_row<T, detail::half>(A.indices.data(), kb, ke, DZ.row(i), X.ptr(), N, full, out, lines);
      else
        detail::sddmm_row<T, detail::masked>(A.indices.data(), kb, ke, DZ.row(i), X.ptr(), N, full, out,
                                             lines);
    }
#else
    for (index_t i = first; i < last; ++i) {
      const T* dz = DZ.row(i);
      for (index_t k = A.indptr[i]; k < A.indptr[i + 1]; ++k) {
        const T* x = X.row(A.indices[k]);
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (size_type n = 0; n < N; ++n) s += dz[n] * x[n];
        out(k, s);
      }
    }
#endif
  }
}

// DW values (nnz) = (DZ (K,N) X(D,N)ᵀ) ⊙ pattern.
template <class T>
void sddmm(const csr_pattern& A, const matrix<T>& DZ, const matrix<T>& X, T* out) {
  sddmm_each(A, DZ, X, [out](index_t k, T g) { out[k] = g; });
}

template <class T>
void gather(const std::vector<index_t>& perm, const T* in, T* out) {
  const size_type n = static_cast<size_type>(perm.size());
#pragma omp parallel for schedule(static) if (n > parallel_threshold)
  for (size_type k = 0; k < n; ++k) out[k] = in[perm[k]];
}

}  // namespace truesparse
