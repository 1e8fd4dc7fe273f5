// Elementwise activation layers: Y = act(Z) forward, DZ = DY ⊙ act'(Z) backward.
// All-ReLU (Curci et al. 2021) is a leaky ReLU whose negative slope alternates in sign between
// hidden layers: layer l = 1, 2, ... (counted from 1) has slope +alpha when l is odd and
// -alpha when l is even.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "truesparse/kernels.h"  // round_row_to_bf16: the fused rows' bfloat16 copies
#include "truesparse/matrix.h"

namespace truesparse {

enum class activation_kind { relu, leaky_relu, all_relu, sigmoid, tanh, identity };

#if defined(__AVX2__) && defined(__FMA__) && defined(__GNUC__) && !defined(__clang__)
#define TRUESPARSE_BF16_ROWS 1
namespace detail {
// Whether the fused epilogues' float rows of the ReLU family (activation::forward_row,
// backward_bits_row) run their AVX-512 form: the CPU has AVX-512 F, VL, BW, DQ and BF16 (checked
// once; builds target x86-64-v3, so the form is chosen at run time). Both forms give the same
// bits; tests set this to false to check the AVX2 form on such a CPU.
inline bool& bf16_rows() {
  static bool on = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512bf16");
  return on;
}

// The AVX-512 form of the rows: the lanes of the AVX2 form (8 at a time, the same arithmetic,
// the same order of the sum), with the signs in a mask register, and the bfloat16 copy rounded by
// VCVTNEPS2BF16 (one instruction for to_bf16x8's ten). That instruction rounds to nearest even
// and quiets NaNs as to_bf16 does, but takes a subnormal input as a zero of its sign: each row
// notes whether any lane it rounded was subnormal (never under flush_denormals) and returns it,
// and its caller then rounds that row's copy again with to_bf16's integer steps. The signs of
// 64 lanes make one word of positive_bits' layout, so full words are unrolled, 8 groups each.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")
template <bool Stream>
[[gnu::always_inline]] inline void store_bf16x8_cvt(std::uint16_t* p, __m256 v, __mmask8& subnormal) {
  subnormal |= _mm256_fpclass_ps_mask(v, 0x20);  // 0x20: denormal
  store_bf16x8(p, reinterpret_cast<__m128i>(_mm256_cvtneps_pbh(v)), Stream);
}
inline __mmask8 first_lanes_mask(size_type r) { return static_cast<__mmask8>((1u << r) - 1); }

// activation::relu_row in the AVX-512 form; true if a subnormal lane went into the copy.
template <bool Bits, bool Y, bool Copy, bool Stream>
bool relu_row_bf16(const float* z, float* y, std::uint64_t* bits, std::uint16_t* copy, size_type n,
                   size_type ld, float s) {
  const __m256 zero = _mm256_setzero_ps(), slope = _mm256_set1_ps(s);
  __mmask8 subnormal = 0;
  // The group of 8 lanes from k (the first r of them, the others +0); returns their signs.
  const auto group = [&](size_type k, size_type r) {
    const __m256 v = r == 8 ? _mm256_loadu_ps(z + k) : _mm256_maskz_loadu_ps(first_lanes_mask(r), z + k);
    const __mmask8 gt = _mm256_cmp_ps_mask(v, zero, _CMP_GT_OQ);
    const __m256 pos = _mm256_maskz_mov_ps(gt, v);                        // z > 0 ? z : 0
    const __m256 a = _mm256_fmadd_ps(slope, _mm256_sub_ps(v, pos), pos);  // pos + s (z - pos)
    if constexpr (Y) {
      if (r == 8)
        _mm256_storeu_ps(y + k, a);
      else
        _mm256_mask_storeu_ps(y + k, first_lanes_mask(r), a);
    }
    if constexpr (Copy) store_bf16x8_cvt<Stream>(copy + k, a, subnormal);
    return static_cast<std::uint64_t>(gt);
  };
  size_type k = 0;
  for (; k + 64 <= n; k += 64) {
    std::uint64_t word = 0;
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) word |= group(k + 8 * g, 8) << (8 * g);
    if constexpr (Bits) bits[k / 64] = word;
  }
  if (k < n) {  // fewer than 64 lanes left: one word
    const size_type w = k / 64;
    std::uint64_t word = 0;
    for (; k < n; k += 8) word |= group(k, std::min<size_type>(8, n - k)) << (k % 64);
    if constexpr (Bits) bits[w] = word;
  }
  if constexpr (Copy) std::fill(copy + k, copy + ld, std::uint16_t{0});
  return subnormal != 0;
}

// activation::relu_bits_row in the AVX-512 form; true if a subnormal lane went into the copy.
template <bool DX, bool Sum, bool Copy, bool Stream>
bool relu_bits_row_bf16(const std::uint64_t* bits, const float* dy, float* dx, float* sum,
                        std::uint16_t* copy, size_type n, size_type ld, float s) {
  const __m256 one = _mm256_set1_ps(1.0f), slope = _mm256_set1_ps(s);
  __m256 acc = _mm256_setzero_ps();
  __mmask8 subnormal = 0;
  // The group of 8 lanes from k (the first r; the others +0), with their 8 signs.
  const auto group = [&](size_type k, size_type r, std::uint64_t on) {
    const __m256 f = _mm256_mask_blend_ps(static_cast<__mmask8>(on), slope, one);
    const __mmask8 m = first_lanes_mask(r);
    const __m256 v = r == 8 ? _mm256_mul_ps(_mm256_loadu_ps(dy + k), f)
                            : _mm256_maskz_mul_ps(m, _mm256_maskz_loadu_ps(m, dy + k), f);
    if constexpr (DX) {
      if (r == 8)
        _mm256_storeu_ps(dx + k, v);
      else
        _mm256_mask_storeu_ps(dx + k, m, v);
    }
    if constexpr (Sum) acc = _mm256_add_ps(acc, v);
    if constexpr (Copy) store_bf16x8_cvt<Stream>(copy + k, v, subnormal);
  };
  size_type k = 0;
  for (; k + 64 <= n; k += 64) {
    const std::uint64_t word = bits[k / 64];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) group(k + 8 * g, 8, word >> (8 * g));
  }
  for (; k < n; k += 8) group(k, std::min<size_type>(8, n - k), bits[k / 64] >> (k % 64));
  if constexpr (Sum) *sum = hsum8(acc);
  if constexpr (Copy) std::fill(copy + k, copy + ld, std::uint16_t{0});
  return subnormal != 0;
}
#pragma GCC pop_options
using relu_row_bf16_fn = bool (*)(const float*, float*, std::uint64_t*, std::uint16_t*, size_type, size_type,
                                  float);
using relu_bits_row_bf16_fn = bool (*)(const std::uint64_t*, const float*, float*, float*, std::uint16_t*,
                                       size_type, size_type, float);
// The row function for each combination of 4 flags (bit 3 the first flag ... bit 0 the last),
// pick(std::bool_constant...) giving each: a call per row picks its loop, with no test of a flag
// per group.
template <std::size_t I, int b>
using flag_of = std::bool_constant<((I >> b) & 1) == 1>;  // bit b of I
template <class Fn, class Pick, std::size_t... I>
constexpr std::array<Fn, 16> flag_table(const Pick& pick, std::index_sequence<I...>) {
  return {pick(flag_of<I, 3>{}, flag_of<I, 2>{}, flag_of<I, 1>{}, flag_of<I, 0>{})...};
}
template <class Fn, class Pick>
constexpr std::array<Fn, 16> flag_table(const Pick& pick) {
  return flag_table<Fn>(pick, std::make_index_sequence<16>{});
}
inline int flag_index(const void* a, const void* b, const void* c, bool d) {
  return (a ? 8 : 0) | (b ? 4 : 0) | (c ? 2 : 0) | (d ? 1 : 0);
}
}  // namespace detail
#endif

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
#if defined(__AVX2__) && defined(__FMA__)
        if constexpr (std::is_same_v<T, float>) {  // the fused forward_row's lanes: the same bits
          relu_row<false, true, false>(z, y, nullptr, nullptr, n, 0, false, s);
          return;
        }
#endif
#pragma omp simd
        for (size_type k = 0; k < n; ++k) {  // branch-free so that it vectorizes
          const T zk = z[k];
          const T pos = zk > T(0) ? zk : T(0);
#if defined(__FMA__)  // rounded once, as relu_row's lanes, whatever the optimisation level
          y[k] = std::fma(s, zk - pos, pos);
#else
          y[k] = pos + s * (zk - pos);
#endif
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

  // The forward of a fused epilogue (network.h) over one row z of n: bits := positive_bits(z)
  // (if bits), y := act(z) (if y; y may be z), copy := act(z) rounded to bfloat16 and padded
  // with zeros to ld (if copy, which only float rows have; streamed as round_row_to_bf16 streams
  // when stream). Without y, z may be overwritten. Float rows of the ReLU family take one pass
  // over the row for all three (docs/design.md, "fused epilogues"; AVX-512 or AVX2, chosen at run
  // time by detail::bf16_rows); the others run the three functions. The same bits either way.
  template <class T>
  void forward_row(T* z, T* y, std::uint64_t* bits, std::uint16_t* copy, size_type n, size_type ld,
                   bool stream) const {
#if defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>)
      if (derivative_from_input() && one_pass_copy(copy, n, ld, stream)) {
        const float s = static_cast<float>(negative_slope());
#ifdef TRUESPARSE_BF16_ROWS
        if (detail::bf16_rows()) {
          static constexpr auto row = detail::flag_table<detail::relu_row_bf16_fn>(
              [](auto B, auto Y, auto C, auto S) { return &detail::relu_row_bf16<B, Y, C, S>; });
          if (row[detail::flag_index(bits, y, copy, stream)](z, y, bits, copy, n, ld, s)) {  // round again
            if (y)
              round_row_to_bf16(y, copy, n, ld, stream);
            else
              relu_row<false, false, true>(z, nullptr, nullptr, copy, n, ld, stream, s);
          }
          return;
        }
#endif
        const int which = (bits ? 4 : 0) | (y ? 2 : 0) | (copy ? 1 : 0);
        switch (which) {  // each combination its own loop, without tests per group
          case 7: return relu_row<true, true, true>(z, y, bits, copy, n, ld, stream, s);
          case 6: return relu_row<true, true, false>(z, y, bits, copy, n, ld, stream, s);
          case 5: return relu_row<true, false, true>(z, y, bits, copy, n, ld, stream, s);
          case 3: return relu_row<false, true, true>(z, y, bits, copy, n, ld, stream, s);
          case 2: return relu_row<false, true, false>(z, y, bits, copy, n, ld, stream, s);
          case 1: return relu_row<false, false, true>(z, y, bits, copy, n, ld, stream, s);
          default: break;  // bits only, or nothing: the functions below
        }
      }
#endif
    if (bits) positive_bits(z, bits, n);
    T* a = y ? y : z;
    forward_range(z, a, n);
    if constexpr (std::is_same_v<T, float>)
      if (copy) round_row_to_bf16(a, copy, n, ld, stream);
  }

  // The backward of a fused epilogue over one row dy of n, for the ReLU family from
  // positive_bits(z): dx := dy ⊙ act'(z) (if dx; dx may be dy), *sum := row_sum(dx) (if sum),
  // copy := dx rounded to bfloat16 as forward_row rounds (if copy). Without dx, dy may be
  // overwritten. One pass for float rows, three functions otherwise: the same bits.
  template <class T>
  void backward_bits_row(const std::uint64_t* bits, T* dy, T* dx, T* sum, std::uint16_t* copy, size_type n,
                         size_type ld, bool stream) const {
    TS_ASSERT(derivative_from_input());
#if defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>)
      if (one_pass_copy(copy, n, ld, stream)) {
        const float s = static_cast<float>(negative_slope());
#ifdef TRUESPARSE_BF16_ROWS
        if (detail::bf16_rows()) {
          static constexpr auto row = detail::flag_table<detail::relu_bits_row_bf16_fn>(
              [](auto DX, auto Sum, auto C, auto S) { return &detail::relu_bits_row_bf16<DX, Sum, C, S>; });
          if (row[detail::flag_index(dx, sum, copy, stream)](bits, dy, dx, sum, copy, n, ld, s)) {
            if (dx)  // round it again
              round_row_to_bf16(dx, copy, n, ld, stream);
            else
              relu_bits_row<false, false, true>(bits, dy, nullptr, nullptr, copy, n, ld, stream, s);
          }
          return;
        }
#endif
        const int which = (dx ? 4 : 0) | (sum ? 2 : 0) | (copy ? 1 : 0);
        switch (which) {
          case 7: return relu_bits_row<true, true, true>(bits, dy, dx, sum, copy, n, ld, stream, s);
          case 6: return relu_bits_row<true, true, false>(bits, dy, dx, sum, copy, n, ld, stream, s);
          case 5: return relu_bits_row<true, false, true>(bits, dy, dx, sum, copy, n, ld, stream, s);
          case 4: return relu_bits_row<true, false, false>(bits, dy, dx, sum, copy, n, ld, stream, s);
          case 3: return relu_bits_row<false, true, true>(bits, dy, dx, sum, copy, n, ld, stream, s);
          case 2: return relu_bits_row<false, true, false>(bits, dy, dx, sum, copy, n, ld, stream, s);
          case 1: return relu_bits_row<false, false, true>(bits, dy, dx, sum, copy, n, ld, stream, s);
          default: return;  // nothing asked
        }
      }
#endif
    T* out = dx ? dx : dy;
    backward_bits_range(bits, dy, out, n);
    if (sum) *sum = row_sum(out, n);
    if constexpr (std::is_same_v<T, float>)
      if (copy) round_row_to_bf16(out, copy, n, ld, stream);
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

 private:
#if defined(__AVX2__) && defined(__FMA__)
  // Whether a copy (if any) can be written 8 lanes at a time: its padded rows hold whole groups
  // of 8, and a streamed row starts on 16 bytes (as a bf16_matrix's rows do).
  static bool one_pass_copy(const std::uint16_t* copy, size_type n, size_type ld, bool stream) {
    return !copy ||
           (ld % 8 == 0 && ld >= n && (!stream || (reinterpret_cast<std::uintptr_t>(copy) & 15) == 0));
  }
  // group(k, r, m) for the groups of 8 lanes from k = 0 on: r = 8 lanes, the last one the r < 8
  // left, masked by m; returns the end of the last group (n rounded up to 8).
  template <class Group>
  static size_type for_groups(size_type n, const Group& group) {
    const __m256i all = _mm256_set1_epi32(-1);
    size_type k = 0;
    for (; k + 8 <= n; k += 8) group(k, 8, all);
    if (k < n) {
      group(k, n - k, detail::first_lanes(n - k));
      k += 8;
    }
    return k;
  }
  // forward_row of the ReLU family on float rows (forward_range's too), 8 lanes at a time; the
  // last group is masked, its lanes past n are 0 and round to the copy's zero padding.
  template <bool Bits, bool Y, bool Copy>
  static void relu_row(const float* z, float* y, std::uint64_t* bits, std::uint16_t* copy, size_type n,
                       size_type ld, bool stream, float s) {
    const __m256 zero = _mm256_setzero_ps(), slope = _mm256_set1_ps(s);
    std::uint64_t word = 0;
    const auto group = [&](size_type k, size_type r, __m256i m) {
      const __m256 v = detail::load_first(z + k, r, m);
      const __m256 gt = _mm256_cmp_ps(v, zero, _CMP_GT_OQ);
      const __m256 pos = _mm256_and_ps(gt, v);                              // z > 0 ? z : 0
      const __m256 a = _mm256_fmadd_ps(slope, _mm256_sub_ps(v, pos), pos);  // pos + s (z - pos)
      if constexpr (Bits) {  // positive_bits' layout: bit k % 64 of word k / 64
        word |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(gt))) << (k % 64);
        if ((k + 8) % 64 == 0 || k + 8 >= n) {
          bits[k / 64] = word;
          word = 0;
        }
      }
      if constexpr (Y) detail::store_first(y + k, r, m, a);
      if constexpr (Copy) detail::store_bf16x8(copy + k, detail::to_bf16x8(a), stream);
    };
    const size_type k = for_groups(n, group);
    if constexpr (Copy) std::fill(copy + k, copy + ld, std::uint16_t{0});
  }
  // backward_bits_row on float rows: lane j of a group of 8 takes bit j, 1 or the slope; the
  // last group masked (its lanes past n are +0: they add nothing to the sum, as in row_sum, and
  // round to the copy's zero padding).
  template <bool DX, bool Sum, bool Copy>
  static void relu_bits_row(const std::uint64_t* bits, const float* dy, float* dx, float* sum,
                            std::uint16_t* copy, size_type n, size_type ld, bool stream, float s) {
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256 one = _mm256_set1_ps(1.0f), slope = _mm256_set1_ps(s);
    __m256 acc = _mm256_setzero_ps();
    const auto group = [&](size_type k, size_type r, __m256i m) {
      const __m256i g = _mm256_set1_epi32(static_cast<int>((bits[k / 64] >> (k % 64)) & 0xffu));
      const __m256 on = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(g, lane), lane));
      __m256 v = _mm256_mul_ps(detail::load_first(dy + k, r, m), _mm256_blendv_ps(slope, one, on));
      if (r < 8) v = _mm256_and_ps(v, _mm256_castsi256_ps(m));  // +0 past n (0 s is -0 for s < 0)
      if constexpr (DX) detail::store_first(dx + k, r, m, v);
      if constexpr (Sum) acc = _mm256_add_ps(acc, v);
      if constexpr (Copy) detail::store_bf16x8(copy + k, detail::to_bf16x8(v), stream);
    };
    const size_type k = for_groups(n, group);
    if constexpr (Sum) *sum = detail::hsum8(acc);
    if constexpr (Copy) std::fill(copy + k, copy + ld, std::uint16_t{0});
  }
#endif
};

}  // namespace truesparse
