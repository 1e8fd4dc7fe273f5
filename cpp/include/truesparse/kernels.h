// Our own OpenMP kernels on a CSR pattern (feature-major dense operands, row-major):
//   spmm   C (K,N) = A (K,D) B (D,N) + beta C + bias 1ᵀ  -- the forward and input-gradient products
//   sddmm  v[k] = dot(DZ[i,:], X[j,:]) for stored (i,j)  -- the weight gradient on the pattern
//   gather out[k] = in[perm[k]]                          -- refreshes the values of a Wt copy
// The gathered operand (B of spmm, X of sddmm) may be a bfloat16 copy (bf16_matrix: rounded
// to nearest even, rows zero-padded to whole vectors); the weights, the sums and the outputs
// stay float. At scale the products are bound by the cache lines of gathered rows in flight:
// a bfloat16 row has half of them (docs/design.md, "bfloat16 operands").
// Each output element is written by exactly one thread and summed in a fixed order that depends
// only on the pattern and the shapes, so the results do not depend on the number of threads.
//
// The products are register-blocked (docs/design.md, "kernels"): an output row's column tile
// (up to 13 SIMD vectors: N = 100 floats at once) stays in registers while the stored weights of
// the row stream through it, each adding a * B[j, tile]; the row is stored once. A batch wider
// than 13 vectors takes several tiles. The gathered operand's rows are prefetched into L2, 64
// weights ahead, once the operand outgrows the L2 (products) or the L3 (SDDMM); large arrays sit
// on transparent huge pages (common.h), so the gathers rarely miss the TLB. Rows are split between threads in
// contiguous ranges of equal work (nnz + rows), so every thread gets a static share without a scheduler.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "truesparse/csr.h"
#include "truesparse/matrix.h"
#include "truesparse/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace truesparse {

// ---- bfloat16 copies of a gathered operand ------------------------------------------------------

// x rounded to bfloat16 (its upper 16 bits, round to nearest even; a NaN stays a NaN).
inline std::uint16_t to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float from_bf16(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// A (rows, cols) float matrix rounded to bfloat16, each row padded with zeros to ld, a multiple
// of 8, so that the kernels load whole vectors of 8 and need no tail.
struct bf16_matrix {
  size_type rows = 0, cols = 0, ld = 0;
  avector<std::uint16_t> data;
  const std::uint16_t* ptr() const { return data.data(); }
  const std::uint16_t* row(size_type i) const { return data.data() + i * ld; }
  std::uint16_t* row(size_type i) { return data.data() + i * ld; }
  // The copy of a (r, c) matrix: rows padded to bf16_ld(c) (the storage keeps its capacity).
  void shape(size_type r, size_type c);
};

// The padded row length of a bfloat16 copy of N columns.
inline size_type bf16_ld(size_type N) { return (N + 7) / 8 * 8; }

inline void bf16_matrix::shape(size_type r, size_type c) {
  rows = r;
  cols = c;
  ld = bf16_ld(c);
  data.resize(static_cast<std::size_t>(r * ld));
}

#if defined(__AVX2__) && defined(__FMA__)
namespace detail {
// 8 floats rounded to bfloat16 as to_bf16 does, packed into 128 bits.
inline __m128i to_bf16x8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i high = _mm256_srli_epi32(u, 16);
  const __m256i lsb = _mm256_and_si256(high, _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  const __m256i r =
      _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet), nan));
  // packus works within 128-bit lanes: (r0..3 r0..3 | r4..7 r4..7); qwords 0 and 2 are r0..7.
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}
// p[0..8) := the 8 bfloat16 packed in h; with a non-temporal store when stream (p then on 16
// bytes). Every row that rounds 8 lanes at a time stores them so (round_row_to_bf16, the
// fused epilogue rows of activation.h).
inline void store_bf16x8(std::uint16_t* p, __m128i h, bool stream) {
  if (stream)
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), h);
  else
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
}
}  // namespace detail
#endif

// o (ld) := the row x (N) rounded to bfloat16, padded with zeros from N to ld. With stream (o
// 16-byte aligned and ld a multiple of 8, as a bf16_matrix's rows are), with non-temporal stores
// of whole groups of 8 (kernels.h, "streamed output rows"): the same values.
inline void round_row_to_bf16(const float* x, std::uint16_t* o, size_type N, size_type ld,
                              bool stream = false) {
  size_type n = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (stream && (reinterpret_cast<std::uintptr_t>(o) & 15) == 0 && ld % 8 == 0) {
    for (; n < ld; n += 8) {
      __m256 v;
      if (n + 8 <= N) {
        v = _mm256_loadu_ps(x + n);
      } else {  // the last group: the rest of x, then zeros
        alignas(32) float rest[8] = {};
        for (size_type k = n; k < N; ++k) rest[k - n] = x[k];
        v = _mm256_load_ps(rest);
      }
      detail::store_bf16x8(o + n, detail::to_bf16x8(v), true);
    }
    return;
  }
  for (; n + 8 <= N; n += 8) detail::store_bf16x8(o + n, detail::to_bf16x8(_mm256_loadu_ps(x + n)), false);
#endif
  for (; n < N; ++n) o[n] = to_bf16(x[n]);
  for (; n < ld; ++n) o[n] = 0;
}

// out := X rounded to bfloat16, rows padded with zeros (one streaming pass).
inline void round_to_bf16(const matrix<float>& X, bf16_matrix& out) {
  out.shape(X.rows, X.cols);
  parallel_for(X.rows, X.size() > parallel_threshold, [&](size_type b, size_type e) {
    for (size_type i = b; i < e; ++i) round_row_to_bf16(X.row(i), out.row(i), X.cols, out.ld);
  });
}

// ---- streamed output rows ----------------------------------------------------------------------
// An output matrix larger than the caches is written with non-temporal stores: each row is
// completed (and its epilogue run) in a row of the computing thread's own, in L1, then copied
// out by stream_row. A normal store first reads every cache line it writes ("read for
// ownership"), so a written matrix costs twice its bytes of memory traffic; a streamed row costs
// its bytes once. Only for matrices that would leave the caches before they are read: a
// streamed row is read back from memory (docs/design.md, "kernels"). The same bits either way.
namespace detail {
// dst[0..n) := src[0..n) with non-temporal stores (dst needs no alignment).
template <class T>
inline void stream_row(T* dst, const T* src, size_type n) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float or double rows");
#if defined(__AVX2__) && defined(__FMA__)
  const auto scalar = [](T* d, const T* s) {
    if constexpr (sizeof(T) == 4) {
      int v;
      std::memcpy(&v, s, 4);
      _mm_stream_si32(reinterpret_cast<int*>(d), v);
    } else {
      long long v;
      std::memcpy(&v, s, 8);
      _mm_stream_si64(reinterpret_cast<long long*>(d), v);
    }
  };
  size_type k = 0;
  for (; k < n && (reinterpret_cast<std::uintptr_t>(dst + k) & 31) != 0; ++k) scalar(dst + k, src + k);
  for (; k + 32 / sizeof(T) <= n; k += 32 / sizeof(T))
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + k),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k)));
  for (; k < n; ++k) scalar(dst + k, src + k);
#else
  std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
#endif
}
// Orders this thread's streamed rows before its later stores (the end of a parallel region).
inline void stream_fence() {
#if defined(__AVX2__) && defined(__FMA__)
  _mm_sfence();
#endif
}
}  // namespace detail

namespace detail {

// The value of an operand element as the kernels compute with it.
inline float widen(float x) { return x; }
inline double widen(double x) { return x; }
inline float widen(std::uint16_t b) { return from_bf16(b); }

// n elements of the calling thread's own, kept from one job to the next (a kernel's own output
// row, the one pass's dot-product chains): allocated once per thread and grown as needed, where a
// buffer per chunk would cost an allocation 16 times per kernel call. Slot tells apart the
// buffers one kernel holds at once. The contents are whatever this thread left there last (every
// kernel writes a buffer before it reads it); no kernel runs another kernel while it holds one.
template <class T, int Slot>
T* thread_scratch(size_type n) {
  thread_local avector<T> buffer;
  if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

// The dot product of a and b (float or double, or bfloat16 widened: a float sum) over n, for
// the builds without AVX2: 8 chains over the elements n ≡ l (mod 8), summed in order. The order
// is written out so that it does not depend on how the compiler vectorises each instantiation:
// the SDDMM over bfloat16 copies must equal the SDDMM over the float roundings of them, and the
// one pass the two passes, bit for bit (an `omp simd` reduction left the order to the compiler,
// and the bfloat16 instance summed in another order than the float one).
template <class TA, class TB>
inline auto dot_fixed(const TA* a, const TB* b, size_type n) {
  using T = decltype(widen(*a) * widen(*b));
  constexpr int L = 8;
  T acc[L] = {};
  size_type k = 0;
  for (; k + L <= n; k += L)
    for (int l = 0; l < L; ++l) acc[l] += widen(a[k + l]) * widen(b[k + l]);
  for (int l = 0; k < n; ++k, ++l) acc[l] += widen(a[k]) * widen(b[k]);
  T s = 0;
  for (int l = 0; l < L; ++l) s += acc[l];
  return s;
}

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
  return work > static_cast<double>(parallel_threshold) * 8 ? pool_threads() : 1;
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
  static V load(const std::uint16_t* p) {  // 8 bfloat16 widened to float
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  static V load_half(const float* p) { return _mm256_zextps128_ps256(_mm_loadu_ps(p)); }
  static void store_half(float* p, V v) { _mm_storeu_ps(p, _mm256_castps256_ps128(v)); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static M mask(int n) { return detail::first_lanes(static_cast<size_type>(n)); }  // the first n lanes
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

// Software prefetch of the gathered rows, into L2, a fixed number of stored weights ahead; the
// stream runs on across rows to the end of the thread's entries (rows of ε = 10 layers hold
// about 20). Measured at D = K = 200,000, 20 weights per row, N = 100, one thread, against the
// former prefetch (into L1, 8 weights ahead, within the row): the products and the SDDMM take
// about half the time; into L1 at the same distance gained only 10 % (too few L1 miss buffers
// for the 7 lines of a row). It pays for the products once the gathered operand has left the
// 1 MB L2 (at D = 20,000, 8 MB: 0.6–0.8× the time without; at D = 3,072, 1.2 MB, it cost 30 %
// once and 0–5 % in the 3072-1024-512-10 epoch on 2026-11-26). The threshold was 4 MB until
// 2026-11-26; the width sweep (784-H-H-H-10, 100,000 weights per layer, one thread) then
// measured, with the products prefetching from 1 MB against 4 MB: bfloat16 rows H = 8,192
// (1.7 MB) 7.3 against 10.5–10.9 ms per batch, H = 16,384 (3.4 MB) 10.2 against 14.4–16.8;
// float rows H = 4,096 (1.6 MB) 7.3–7.4 against 8.3–8.8, H = 8,192 (3.3 MB) 9.0–9.6 against
// 11.8–12.0: hence 1.5 MB. For the SDDMM, whose 8 independent dot products keep more loads in
// flight already, it cost 5–10 % up to 12 MB of float rows and paid from 20 MB on (0.66–0.8× at 20 MB,
// 0.52–0.58× at 32 MB; bfloat16 rows 0.6× at 16 MB, 0.4× at 24 MB): hence its 16 MB (one thread, scratch
// kernel benchmark, bench/results/sddmm_prefetch.txt).
constexpr index_t spmm_ahead = 64, sddmm_ahead = 64;
constexpr double spmm_prefetch_bytes = 1.5 * 1024 * 1024, sddmm_prefetch_bytes = 16.0 * 1024 * 1024;

// The bytes to prefetch of each gathered row piece (`piece_bytes`, those the kernel reads) when
// the gathered operand (rows of `row_bytes`) is larger than `threshold` bytes, or 0 for none.
inline int prefetch_bytes(size_type rows, size_type row_bytes, size_type piece_bytes, double threshold) {
  const bool far = static_cast<double>(rows) * static_cast<double>(row_bytes) > threshold;
  return far ? static_cast<int>(piece_bytes) : 0;
}

// Prefetches into L2 the lines from p on that a piece of `bytes` may touch, plus one: a piece
// not starting on a line boundary spans one more line. Prefetching exactly the lines a piece
// spans was measured slower for bfloat16 rows (D = 200,000: forward 0.6–0.9× as fast), for
// reasons not understood; one or two lines more were not slower for float rows.
// Forced inline, as prefetch_rows: GCC finds a function whose only effect is prefetching "const"
// and drops a call to it that it did not inline first. At -O3 it inlined these, but at -O2 the
// SDDMM lost every prefetch so (seen in a scratch build); cpp/tests/check_prefetch.sh checks
// that every gathering kernel of the test binaries keeps its prefetch instructions.
[[gnu::always_inline]] inline void prefetch(const void* p, int bytes) {
  const int lines = (bytes + 63) / 64 + 1;
  for (int l = 0; l < lines; ++l) _mm_prefetch(static_cast<const char*>(p) + 64 * l, _MM_HINT_T1);
}

// Prefetches the gathered rows of the stored entries k0 .. k0 + count (those before kend, the
// end of this thread's entries: the stream runs on across rows).
template <class TX>
[[gnu::always_inline]] inline void prefetch_rows(const index_t* idx, index_t k0, int count, index_t kend,
                                                 const TX* X, size_type ldx, int pf_bytes) {
  for (index_t k = k0; k < std::min<index_t>(k0 + count, kend); ++k)
    prefetch(X + static_cast<size_type>(idx[k]) * ldx, pf_bytes);
}

// How the last vector of a row tile is loaded and stored: whole, as its lower half (a 128-bit
// access: N = 100 floats end with 4), or masked to its first `tail` lanes.
enum tail_kind { whole = 0, half = 1, masked = 2 };

// The tail kind of a last vector with `tail` lanes.
template <class T>
inline int tail_kind_of(int tail) {
  return tail == avx<T>::width ? whole : 2 * tail == avx<T>::width ? half : masked;
}

template <class T, int Tail>
inline typename avx<T>::V load_last(const T* p, typename avx<T>::M m) {
  if constexpr (Tail == whole) return avx<T>::load(p);
  if constexpr (Tail == half) return avx<T>::load_half(p);
  return avx<T>::load(p, m);
}

// A vector of a gathered row piece: float rows load their last vector as Tail says; bfloat16
// rows are zero-padded to whole vectors, so every load is whole.
template <class T, int Tail>
inline typename avx<T>::V load_piece(const T* p, typename avx<T>::M m, bool last) {
  return last ? load_last<T, Tail>(p, m) : avx<T>::load(p);
}
template <class T, int Tail>
inline typename avx<T>::V load_piece(const std::uint16_t* p, typename avx<T>::M, bool) {
  static_assert(std::is_same_v<T, float>, "bfloat16 operands are for float models");
  return avx<float>::load(p);
}

// c[0 .. R·W) := acc, the last vector stored as Tail says (masked by m).
template <class T, int R, int Tail>
inline void store_tile(T* c, const typename avx<T>::V* acc, typename avx<T>::M m) {
  using S = avx<T>;
  constexpr int W = S::width;
#pragma GCC unroll 16
  for (int r = 0; r < R - 1; ++r) S::store(c + r * W, acc[r]);
  if constexpr (Tail == whole)
    S::store(c + (R - 1) * W, acc[R - 1]);
  else if constexpr (Tail == half)
    S::store_half(c + (R - 1) * W, acc[R - 1]);
  else
    S::store(c + (R - 1) * W, m, acc[R - 1]);
}

// c[n0 .. n0 + R·W) (the last vector cut to `tail` lanes as Tail says) := init + beta c
// + Σ_k a_k B[j_k, ·] over the stored entries kb..ke of one row; a_k = val[k], or val[perm[k]]
// when Indirect. The R accumulators stay in registers for the whole row.
template <class T, class TB, int R, int Tail, bool Indirect>
inline void spmm_row_tile(const index_t* idx, const T* val, const index_t* perm, index_t kb, index_t ke,
                          index_t kend, const TB* B, size_type ldb, int tail, T init, T beta, T* c,
                          int pf_bytes) {
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
  for (index_t k = kb; k < ke; ++k) {
    if (pf_bytes > 0 && k + spmm_ahead < kend) {
      prefetch(B + static_cast<size_type>(idx[k + spmm_ahead]) * ldb, pf_bytes);
      if constexpr (Indirect)
        _mm_prefetch(reinterpret_cast<const char*>(val + perm[k + spmm_ahead]),
                     _MM_HINT_T1);  // W[perm[k]] is a gather too
    }
    const TB* b = B + static_cast<size_type>(idx[k]) * ldb;
    const V a = S::set1(Indirect ? val[perm[k]] : val[k]);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = S::fma(a, load_piece<T, Tail>(b + r * W, m, r == R - 1), acc[r]);
  }
  store_tile<T, R, Tail>(c, acc, m);
}

// The column tiles of a batch of N columns in vectors of W: as few as the 13 accumulators
// allow (one for N <= 104 floats), of about equal widths. Narrower tiles that would keep a tile
// of the gathered operand in L2 were measured slower: every tile re-reads the pattern and each
// gathered row piece still spans the same cache lines.
struct column_tile {
  size_type n0;  // first column
  int R, tail;   // vectors, and the lanes of the last one
};
// A column tile with its kernel and the bytes to prefetch of each gathered row piece.
template <class Fn>
struct kernel_tile : column_tile {
  int pf_bytes;
  Fn fn;
};
// The tiles of N columns for a kernel gathering `rows` rows of `ld` elements of `elem` bytes
// (the piece a tile reads: float rows end at N, bfloat16 ones at ld), its kernel choose(R, tail).
template <class Tile, class Choose>
std::vector<Tile> kernel_tiles(size_type N, int W, size_type rows, size_type ld, size_type elem,
                               const Choose& choose) {
  const size_type vectors = (N + W - 1) / W;
  const size_type tiles = (vectors + max_tile_vectors - 1) / max_tile_vectors;
  std::vector<Tile> out(static_cast<std::size_t>(tiles));
  for (size_type t = 0; t < tiles; ++t) {
    const size_type v0 = vectors * t / tiles, v1 = vectors * (t + 1) / tiles;
    Tile& u = out[t];
    u.n0 = v0 * W;
    u.R = static_cast<int>(v1 - v0);
    u.tail = static_cast<int>(std::min<size_type>(N, v1 * W) - (v1 - 1) * W);
    const size_type piece = std::min<size_type>(static_cast<size_type>(u.R) * W, ld - u.n0) * elem;
    u.pf_bytes = prefetch_bytes(rows, ld * elem, piece, spmm_prefetch_bytes);
    u.fn = choose(u.R, u.tail);
  }
  return out;
}

template <class T, class TB>
using row_tile_fn = void (*)(const index_t*, const T*, const index_t*, index_t, index_t, index_t, const TB*,
                             size_type, int, T, T, T*, int);

template <class T, class TB, int Tail, bool Indirect, int... R>
constexpr std::array<row_tile_fn<T, TB>, sizeof...(R)> make_row_tiles(std::integer_sequence<int, R...>) {
  return {&spmm_row_tile<T, TB, R + 1, Tail, Indirect>...};
}

// The row-tile kernel for R vectors (1..max_tile_vectors) whose last one has `tail` lanes.
template <class T, class TB>
row_tile_fn<T, TB> row_tile(int R, int tail, bool indirect) {
  using seq = std::make_integer_sequence<int, max_tile_vectors>;
  static constexpr std::array<std::array<row_tile_fn<T, TB>, max_tile_vectors>, 6> table{
      make_row_tiles<T, TB, whole, false>(seq{}),  make_row_tiles<T, TB, half, false>(seq{}),
      make_row_tiles<T, TB, masked, false>(seq{}), make_row_tiles<T, TB, whole, true>(seq{}),
      make_row_tiles<T, TB, half, true>(seq{}),    make_row_tiles<T, TB, masked, true>(seq{})};
  return table[static_cast<std::size_t>(tail_kind_of<T>(tail) + (indirect ? 3 : 0))]
              [static_cast<std::size_t>(R - 1)];
}

}  // namespace detail
#endif

namespace detail {
struct no_epilogue {
  template <class T>
  void operator()(index_t, T*) const {}
};
}  // namespace detail

// C (K,N) = A (K,D) B (D,N) + beta C + column_repeat(bias) (bias may be null). With perm, the
// value of stored entry k is values[perm[k]] (A is then the transpose of the pattern whose
// values are stored: no transposed copy of the values is needed). B's rows are ldb apart (N
// when 0); B may be a bfloat16 copy (TB = std::uint16_t, rows zero-padded to bf16_ld(N)).
// epilogue(i, C row i) runs once row i is complete, on the thread that computed it, while the
// row is still in L1 (for N of one column tile; after all tiles otherwise): the network fuses
// the activation and its derivative there (network.h, "fused epilogues"). With C null (and beta
// 0) no C is kept: each row is computed into a row of the thread's own and handed to the
// epilogue, which consumes it (the same bits as with a C; the epilogue may stream rows out with
// detail::stream_row). With stream_c (and beta 0) each row is computed into such a row too, and
// what the epilogue leaves there is streamed out to C.
template <class T, class TB, class Epilogue = detail::no_epilogue>
void spmm_native(const csr_pattern& A, const T* values, const TB* B, size_type N, T beta, T* C,
                 const T* bias = nullptr, const index_t* perm = nullptr, size_type ldb = 0,
                 const Epilogue& epilogue = Epilogue{}, bool stream_c = false) {
  static_assert(std::is_same_v<TB, T> || (std::is_same_v<T, float> && std::is_same_v<TB, std::uint16_t>),
                "B is T, or bfloat16 for a float product");
  if (A.rows == 0 || N == 0) return;
  if (ldb == 0) ldb = N;
  const int nt = detail::kernel_threads(static_cast<double>(A.nnz() + A.rows) * static_cast<double>(N));
#if defined(__AVX2__) && defined(__FMA__)
  using S = detail::avx<T>;
  constexpr int W = S::width;
  using tile = detail::kernel_tile<detail::row_tile_fn<T, TB>>;
  const std::vector<tile> tile_of = detail::kernel_tiles<tile>(
      N, W, A.cols, ldb, sizeof(TB),
      [perm](int R, int tail) { return detail::row_tile<T, TB>(R, tail, perm != nullptr); });
  const auto tiles = static_cast<size_type>(tile_of.size());
  TS_ASSERT((C != nullptr || beta == T(0)) && (!stream_c || beta == T(0)));
  const int chunks = chunk_count(A.rows, nt);
  parallel_chunks(chunks, nt, [&](int chunk) {
    index_t first, last;
    detail::row_range(A, chunk, chunks, first, last);
    const auto run = [&](const tile& u, index_t i, T* c) {
      u.fn(A.indices.data(), values, perm, A.indptr[i], A.indptr[i + 1], A.indptr[last], B + u.n0, ldb,
           u.tail, bias ? bias[i] : T(0), beta, c + u.n0, u.pf_bytes);
    };
    if (C == nullptr || stream_c) {  // row by row into the thread's own row, every tile of it
      T* own = detail::thread_scratch<T, 0>(N);
      for (index_t i = first; i < last; ++i) {
        for (size_type t = 0; t < tiles; ++t) run(tile_of[t], i, own);
        epilogue(i, own);
        if (C) detail::stream_row(C + static_cast<size_type>(i) * N, own, N);
      }
      detail::stream_fence();  // (also for an epilogue that streams rows of its own out)
    } else {
      for (size_type t = 0; t < tiles; ++t)
        for (index_t i = first; i < last; ++i) {
          run(tile_of[t], i, C + static_cast<size_type>(i) * N);
          if (tiles == 1) epilogue(i, C + static_cast<size_type>(i) * N);
        }
      if (tiles > 1)
        for (index_t i = first; i < last; ++i) epilogue(i, C + static_cast<size_type>(i) * N);
    }
  });
#else
  const int chunks = chunk_count(A.rows, nt);
  parallel_chunks(chunks, nt, [&](int chunk) {
    index_t first, last;
    detail::row_range(A, chunk, chunks, first, last);
    const bool in_own = C == nullptr || stream_c;
    T* own = in_own ? detail::thread_scratch<T, 0>(N) : nullptr;  // the thread's own row
    for (index_t i = first; i < last; ++i) {
      T* c = in_own ? own : C + static_cast<size_type>(i) * N;
      const T b0 = bias ? bias[i] : T(0);
      if (beta == T(0))
        std::fill(c, c + N, b0);
      else
        for (size_type n = 0; n < N; ++n) c[n] = beta * c[n] + b0;
      for (index_t k = A.indptr[i]; k < A.indptr[i + 1]; ++k) {
        const T a = perm ? values[perm[k]] : values[k];
        const TB* b = B + static_cast<size_type>(A.indices[k]) * ldb;
#pragma omp simd
        for (size_type n = 0; n < N; ++n) c[n] += a * detail::widen(b[n]);
      }
      epilogue(i, c);
      if (in_own && C) detail::stream_row(C + static_cast<size_type>(i) * N, c, N);
    }
  });
#endif
}

#if defined(__AVX2__) && defined(__FMA__)
namespace detail {

// out(k, dot(dz, X[j_k, :])) for k in kb..ke, over N columns (`full` of them in whole vectors,
// the rest as Tail says); dz and X's rows (ldx apart) are both float, or both bfloat16
// zero-padded. Groups of 8 and 4 stored entries share each load of dz. Every dot product is one
// chain of multiply-adds over the vectors in order, its lanes summed in a fixed order (hsum4):
// its value does not depend on the group it falls in, so spmm_sddmm_native computes the same one.
template <class T, class TX, int Tail, class Out>
void sddmm_row(const index_t* idx, index_t kb, index_t ke, const TX* dz, const TX* X, size_type ldx,
               size_type N, size_type full, const Out& out, index_t kend, int pf_bytes) {
  using S = avx<T>;
  using V = typename S::V;
  constexpr size_type W = S::width;
  const typename S::M m = S::mask(static_cast<int>(N - full));
  index_t k = kb;
  // Eight entries at a time: one accumulator each (8 independent chains), each load of dz
  // shared by 8 dot products.
  for (; k + 8 <= ke; k += 8) {
    if (pf_bytes > 0) prefetch_rows(idx, k + sddmm_ahead, 8, kend, X, ldx, pf_bytes);
    const TX* x[8];
    for (int q = 0; q < 8; ++q) x[q] = X + static_cast<size_type>(idx[k + q]) * ldx;
    V a[8];
    for (int q = 0; q < 8; ++q) a[q] = S::zero();
    size_type n = 0;
    for (; n < full; n += W) {
      const V d = load_piece<T, Tail>(dz + n, m, false);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) a[q] = S::fma(d, load_piece<T, Tail>(x[q] + n, m, false), a[q]);
    }
    if constexpr (Tail != whole) {
      const V d = load_piece<T, Tail>(dz + n, m, true);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) a[q] = S::fma(d, load_piece<T, Tail>(x[q] + n, m, true), a[q]);
    }
    alignas(32) T g[8];
    S::hsum4(a[0], a[1], a[2], a[3], g);
    S::hsum4(a[4], a[5], a[6], a[7], g + 4);
    for (int q = 0; q < 8; ++q) out(k + q, g[q]);
  }
  for (; k + 4 <= ke; k += 4) {
    if (pf_bytes > 0) prefetch_rows(idx, k + sddmm_ahead, 4, kend, X, ldx, pf_bytes);
    const TX* x[4];
    for (int q = 0; q < 4; ++q) x[q] = X + static_cast<size_type>(idx[k + q]) * ldx;
    V a[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
    size_type n = 0;
    for (; n < full; n += W) {
      const V d = load_piece<T, Tail>(dz + n, m, false);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) a[q] = S::fma(d, load_piece<T, Tail>(x[q] + n, m, false), a[q]);
    }
    if constexpr (Tail != whole) {
      const V d = load_piece<T, Tail>(dz + n, m, true);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) a[q] = S::fma(d, load_piece<T, Tail>(x[q] + n, m, true), a[q]);
    }
    alignas(32) T g[4];
    S::hsum4(a[0], a[1], a[2], a[3], g);
    for (int q = 0; q < 4; ++q) out(k + q, g[q]);
  }
  for (; k < ke; ++k) {
    if (pf_bytes > 0) prefetch_rows(idx, k + sddmm_ahead, 1, kend, X, ldx, pf_bytes);
    const TX* x = X + static_cast<size_type>(idx[k]) * ldx;
    V a = S::zero();
    size_type n = 0;
    for (; n < full; n += W)
      a = S::fma(load_piece<T, Tail>(dz + n, m, false), load_piece<T, Tail>(x + n, m, false), a);
    if constexpr (Tail != whole)
      a = S::fma(load_piece<T, Tail>(dz + n, m, true), load_piece<T, Tail>(x + n, m, true), a);
    out(k, S::hsum(a));
  }
}

}  // namespace detail
#endif

namespace detail {

// sddmm_each over the rows of DZ (ldz apart) and of X (xrows rows, ldx apart), both float or
// both bfloat16 copies, N columns.
template <class T, class TX, class Out>
void sddmm_rows(const csr_pattern& A, const TX* DZ, size_type ldz, const TX* X, size_type xrows,
                size_type ldx, size_type N, const Out& out) {
  if (A.rows == 0) return;
  const int nt = kernel_threads(static_cast<double>(A.nnz()) * static_cast<double>(N));
  const int chunks = chunk_count(A.rows, nt);
  parallel_chunks(chunks, nt, [&](int chunk) {
    index_t first, last;
    row_range(A, chunk, chunks, first, last);
#if defined(__AVX2__) && defined(__FMA__)
    constexpr size_type W = avx<T>::width;
    const size_type full = N / W * W;
    const size_type tail = N - full;
    const int pf_bytes = prefetch_bytes(xrows, ldx * sizeof(TX), ldx * sizeof(TX), sddmm_prefetch_bytes);
    const index_t* idx = A.indices.data();
    const index_t kend = A.indptr[last];
    for (index_t i = first; i < last; ++i) {
      const index_t kb = A.indptr[i], ke = A.indptr[i + 1];
      const TX* dz = DZ + static_cast<size_type>(i) * ldz;
      if (tail == 0)
        sddmm_row<T, TX, whole>(idx, kb, ke, dz, X, ldx, N, full, out, kend, pf_bytes);
      else if (2 * tail == W)
        sddmm_row<T, TX, half>(idx, kb, ke, dz, X, ldx, N, full, out, kend, pf_bytes);
      else
        sddmm_row<T, TX, masked>(idx, kb, ke, dz, X, ldx, N, full, out, kend, pf_bytes);
    }
#else
    (void)xrows;
    for (index_t i = first; i < last; ++i) {
      const TX* dz = DZ + static_cast<size_type>(i) * ldz;
      for (index_t k = A.indptr[i]; k < A.indptr[i + 1]; ++k)
        out(k, dot_fixed(dz, X + static_cast<size_type>(A.indices[k]) * ldx, N));
    }
#endif
  });
}

}  // namespace detail

// out(k, g_k) for every stored entry k, g_k = (DZ (K,N) X (D,N)ᵀ)[i, j] at its position (i, j):
// one dot product of N per stored weight, each by one thread, in a fixed order.
template <class T, class Out>
void sddmm_each(const csr_pattern& A, const matrix<T>& DZ, const matrix<T>& X, const Out& out) {
  TS_ASSERT(DZ.cols == X.cols);
  detail::sddmm_rows<T>(A, DZ.ptr(), DZ.cols, X.ptr(), X.rows, X.cols, X.cols, out);
}

// The same over bfloat16 copies of DZ and X (bfloat16 operands): the sums and g_k are float.
template <class Out>
void sddmm_each(const csr_pattern& A, const bf16_matrix& DZ, const bf16_matrix& X, const Out& out) {
  TS_ASSERT(DZ.cols == X.cols);
  detail::sddmm_rows<float>(A, DZ.ptr(), DZ.ld, X.ptr(), X.rows, X.ld, X.cols, out);
}

// DW values (nnz) = (DZ (K,N) X(D,N)ᵀ) ⊙ pattern.
template <class T>
void sddmm(const csr_pattern& A, const matrix<T>& DZ, const matrix<T>& X, T* out) {
  sddmm_each(A, DZ, X, [out](index_t k, T g) { out[k] = g; });
}

#if defined(__AVX2__) && defined(__FMA__)
namespace detail {

// One column tile (n0 .. n0 + R·W, the last vector cut to `tail` lanes as Tail says) of row j of
// spmm_sddmm_native: c := Σ_k W[perm[k]] DZ[i_k, tile] over the entries kb..ke, in registers,
// and dots[(k - kb)·W ..] := the chain of dot(DZ[i_k, ·], X[j, ·]) carried on through this tile
// (from zero in the first). dz and x point at the tile's first column; DZ's rows are T, or a
// bfloat16 copy (zero-padded rows: TB), x is T (a bfloat16 row of X is widened before, once).
template <class T, class TB, int R, int Tail>
inline void spmm_sddmm_tile(const index_t* idx, const T* val, const index_t* perm, index_t kb, index_t ke,
                            index_t kend, const TB* dz, size_type ldz, const T* x, int tail, T* c, T* dots,
                            bool first, int pf_bytes, const T* touched) {
  using S = avx<T>;
  using V = typename S::V;
  constexpr int W = S::width;
  const typename S::M m = S::mask(tail);
  V acc[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc[r] = S::zero();
  for (index_t k = kb; k < ke; ++k) {
    if (pf_bytes > 0 && k + spmm_ahead < kend) {
      const index_t ahead = k + spmm_ahead;
      prefetch(dz + static_cast<size_type>(idx[ahead]) * ldz, pf_bytes);
      __builtin_prefetch(val + perm[ahead], 1, 2);
      if (touched) __builtin_prefetch(touched + perm[ahead], 1, 2);
    }
    const TB* b = dz + static_cast<size_type>(idx[k]) * ldz;
    const V a = S::set1(val[perm[k]]);
    T* chain = dots + static_cast<size_type>(k - kb) * W;
    V dot = first ? S::zero() : S::load(chain);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      V d = load_piece<T, Tail>(b + r * W, m, r == R - 1);
      // d in a register for both multiply-adds: left to itself, GCC loads it twice (for want
      // of a 17th register), and the kernel is then bound by loads in the caches
      asm("" : "+x"(d));
      acc[r] = S::fma(a, d, acc[r]);
      dot = S::fma(d, load_piece<T, Tail>(x + r * W, m, r == R - 1), dot);
    }
    S::store(chain, dot);
  }
  store_tile<T, R, Tail>(c, acc, m);
}

template <class T, class TB>
using sddmm_tile_fn = void (*)(const index_t*, const T*, const index_t*, index_t, index_t, index_t, const TB*,
                               size_type, const T*, int, T*, T*, bool, int, const T*);

template <class T, class TB, int Tail, int... R>
constexpr std::array<sddmm_tile_fn<T, TB>, sizeof...(R)> make_sddmm_tiles(std::integer_sequence<int, R...>) {
  return {&spmm_sddmm_tile<T, TB, R + 1, Tail>...};
}

// The tile kernel for R vectors (1..max_tile_vectors) whose last one has `tail` lanes.
template <class T, class TB>
sddmm_tile_fn<T, TB> sddmm_tile(int R, int tail) {
  using seq = std::make_integer_sequence<int, max_tile_vectors>;
  static constexpr std::array<std::array<sddmm_tile_fn<T, TB>, max_tile_vectors>, 3> table{
      make_sddmm_tiles<T, TB, whole>(seq{}), make_sddmm_tiles<T, TB, half>(seq{}),
      make_sddmm_tiles<T, TB, masked>(seq{})};
  return table[static_cast<std::size_t>(tail_kind_of<T>(tail))][static_cast<std::size_t>(R - 1)];
}

}  // namespace detail
#endif

namespace detail {
// spmm_sddmm_native over the rows of DZ (dz_rows, ldz apart) and of X (x_rows, ldx apart), both
// of type TB, N columns.
template <class T, class TB, class Epilogue, class Out>
void spmm_sddmm_rows(const csr_pattern& At, const T* values, const index_t* perm, const TB* DZ,
                     size_type dz_rows, size_type ldz, const TB* X, size_type x_rows, size_type ldx,
                     size_type N, T* DX, const Epilogue& epilogue, const Out& out, const T* touched,
                     bool stream_dx) {
  TS_ASSERT(dz_rows == static_cast<size_type>(At.cols) && x_rows == static_cast<size_type>(At.rows));
  if (At.rows == 0) return;
  const int nt = kernel_threads(static_cast<double>(At.nnz() + At.rows) * static_cast<double>(N));
#if defined(__AVX2__) && defined(__FMA__)
  using S = avx<T>;
  using V = typename S::V;
  constexpr int W = S::width;
  using tile = kernel_tile<sddmm_tile_fn<T, TB>>;  // as spmm_native's tiles
  const std::vector<tile> tile_of = kernel_tiles<tile>(
      N, W, At.cols, ldz, sizeof(TB), [](int R, int tail) { return sddmm_tile<T, TB>(R, tail); });
  const auto tiles = static_cast<size_type>(tile_of.size());
  const int chunks = chunk_count(At.rows, nt);
  parallel_chunks(chunks, nt, [&](int chunk) {
    index_t first, last;
    row_range(At, chunk, chunks, first, last);
    const index_t kend = At.indptr[last];
    index_t longest = 0;  // of this thread's rows
    for (index_t j = first; j < last; ++j) longest = std::max(longest, At.indptr[j + 1] - At.indptr[j]);
    // the dot products' chains of one row, padded to a group of 4 for hsum4
    T* dots = thread_scratch<T, 1>(static_cast<size_type>(longest + 4) * W);
    const bool in_own = DX == nullptr || stream_dx;
    T* own = in_own ? thread_scratch<T, 0>(N) : nullptr;
    // a bfloat16 row of X widened once (exact), rather than at each of the row's entries
    T* widened = std::is_same_v<TB, T> ? nullptr : thread_scratch<T, 2>(ldx);
    for (index_t j = first; j < last; ++j) {
      const index_t kb = At.indptr[j], ke = At.indptr[j + 1];
      T* c = in_own ? own : DX + static_cast<size_type>(j) * N;
      const T* x;
      if constexpr (std::is_same_v<TB, T>) {
        x = X + static_cast<size_type>(j) * ldx;
      } else {
        const TB* xb = X + static_cast<size_type>(j) * ldx;
        for (size_type n = 0; n < ldx; n += W) S::store(widened + n, S::load(xb + n));
        x = widened;
      }
      for (size_type t = 0; t < tiles; ++t) {
        const tile& u = tile_of[t];
        u.fn(At.indices.data(), values, perm, kb, ke, kend, DZ + u.n0, ldz, x + u.n0, u.tail, c + u.n0, dots,
             t == 0, u.pf_bytes, touched);
      }
      epilogue(j, c);
      if (in_own && DX) stream_row(DX + static_cast<size_type>(j) * N, c, N);
      for (index_t k = kb; k < ke; k += 4) {  // then the weights, whose values the product has read
        const index_t n = std::min<index_t>(4, ke - k);
        const T* chain = dots + static_cast<size_type>(k - kb) * W;
        V d[4];
        for (index_t q = 0; q < 4; ++q) d[q] = q < n ? S::load(chain + q * W) : S::zero();
        alignas(32) T g[4];
        S::hsum4(d[0], d[1], d[2], d[3], g);
        for (index_t q = 0; q < n; ++q) out(perm[k + q], g[q]);
      }
    }
    stream_fence();  // (also for an epilogue that streams rows out)
  });
#else
  (void)touched;
  const int chunks = chunk_count(At.rows, nt);
  parallel_chunks(chunks, nt, [&](int chunk) {
    index_t first, last;
    row_range(At, chunk, chunks, first, last);
    const bool in_own = DX == nullptr || stream_dx;
    T* own = in_own ? thread_scratch<T, 0>(N) : nullptr;
    for (index_t j = first; j < last; ++j) {
      T* c = in_own ? own : DX + static_cast<size_type>(j) * N;
      const TB* x = X + static_cast<size_type>(j) * ldx;
      std::fill(c, c + N, T(0));
      for (index_t k = At.indptr[j]; k < At.indptr[j + 1]; ++k) {
        const T a = values[perm[k]];
        const TB* b = DZ + static_cast<size_type>(At.indices[k]) * ldz;
#pragma omp simd
        for (size_type n = 0; n < N; ++n) c[n] += a * widen(b[n]);
      }
      epilogue(j, c);
      if (in_own && DX) stream_row(DX + static_cast<size_type>(j) * N, c, N);
      for (index_t k = At.indptr[j]; k < At.indptr[j + 1]; ++k) {
        out(perm[k], dot_fixed(DZ + static_cast<size_type>(At.indices[k]) * ldz, x, N));
      }
    }
  });
#endif
}
}  // namespace detail

// The input gradient and the weight gradient of a sparse layer in one pass over its stored
// weights in the order of Wᵀ: At is the transpose of W's pattern and perm its permutation
// (entry k of At, at (j, i), is W's stored entry perm[k]). For every row j of At
//   DX[j, ·] = Σ_k W[perm[k]] DZ[i_k, ·]             as spmm_native(At, W, DZ, N, 0, DX, 0, perm)
//   out(perm[k], dot(DZ[i_k, ·], X[j, ·]))           as sddmm_each(W's pattern, DZ, X, out)
// bit for bit: each gathered row of DZ serves the product and the dot product, and row j of X
// is read once, from L1 (the two passes gather a row of DZ and one of X for every weight, and
// stream DZ once more). DZ and X are both float, or both bfloat16 copies (bfloat16 operands:
// the sums, DX and the gradients stay float). epilogue(j, DX row j) runs once row j is complete,
// as in spmm_native. out(perm[k], g) runs after row j's product has read W[perm[k]], so it may
// update that weight (the fused optimizer step); `touched` (may be null), an array aligned with
// W that out reads and writes, is prefetched with W where the gathers are prefetched. Each row of
// DX and each stored weight is computed by one thread, in a fixed order. With stream_dx each row
// of DX is completed in a row of the thread's own and streamed out after the epilogue (as
// spmm_native); with DX null no DX is kept: each row is computed into that row of the thread's
// own and handed to the epilogue, which consumes it.
template <class T, class Epilogue, class Out>
void spmm_sddmm_native(const csr_pattern& At, const T* values, const index_t* perm, const matrix<T>& DZ,
                       const matrix<T>& X, T* DX, const Epilogue& epilogue, const Out& out,
                       const T* touched = nullptr, bool stream_dx = false) {
  TS_ASSERT(DZ.cols == X.cols);
  detail::spmm_sddmm_rows(At, values, perm, DZ.ptr(), DZ.rows, DZ.cols, X.ptr(), X.rows, X.cols, X.cols, DX,
                          epilogue, out, touched, stream_dx);
}
template <class Epilogue, class Out>
void spmm_sddmm_native(const csr_pattern& At, const float* values, const index_t* perm, const bf16_matrix& DZ,
                       const bf16_matrix& X, float* DX, const Epilogue& epilogue, const Out& out,
                       const float* touched = nullptr, bool stream_dx = false) {
  TS_ASSERT(DZ.cols == X.cols);
  detail::spmm_sddmm_rows(At, values, perm, DZ.ptr(), DZ.rows, DZ.ld, X.ptr(), X.rows, X.ld, X.cols, DX,
                          epilogue, out, touched, stream_dx);
}

template <class T>
void gather(const std::vector<index_t>& perm, const T* in, T* out) {
  const size_type n = static_cast<size_type>(perm.size());
  parallel_for(n, n > parallel_threshold, [&](size_type b, size_type e) {
    for (size_type k = b; k < e; ++k) out[k] = in[perm[k]];
  });
}

}  // namespace truesparse
