// Tests of the bfloat16 operands (kernels.h: to_bf16, round_to_bf16, the products, the SDDMM
// and the one-pass backward over bfloat16 copies; linear.h: operand_dtype) and of the
// prefetching paths that only large operands take.
#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "truesparse/linear.h"
#include "truesparse/runtime.h"

using namespace truesparse;

namespace {

float bits_to_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// The bfloat16 nearest to a finite x, found the long way: the two bfloat16 neighbours (x with
// its low 16 bits cleared, and the next one away from zero) compared in double, ties to the
// one whose last bit is 0. Returns the bits.
std::uint16_t nearest_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const std::uint32_t low = u & 0xffff0000u, high = low + 0x10000u;
  const double dl = std::fabs(double(bits_to_float(low)) - double(x));
  const double xh = (high & 0x7fffffffu) >= 0x7f800000u ? std::numeric_limits<double>::infinity()
                                                        : double(bits_to_float(high));
  // past the largest bfloat16, x rounds to infinity when it is at least halfway to 2^128
  double dh = std::fabs(xh - double(x));
  if ((high & 0x7fffffffu) == 0x7f800000u) dh = std::fabs(std::copysign(std::ldexp(1.0, 128), x) - double(x));
  if (dl < dh || (dl == dh && ((low >> 16) & 1u) == 0)) return static_cast<std::uint16_t>(low >> 16);
  return static_cast<std::uint16_t>(high >> 16);
}

matrix<float> random_matrix(size_type rows, size_type cols, rng& g, double scale = 1.0) {
  matrix<float> A(rows, cols);
  for (auto& v : A.data) v = static_cast<float>(scale * g.normal());
  return A;
}

// A (rows, cols) with every element rounded through bfloat16 and back: the float operand the
// bfloat16 kernels must compute with.
matrix<float> rounded(const matrix<float>& A) {
  matrix<float> R(A.rows, A.cols);
  for (size_type k = 0; k < A.size(); ++k) R.data[k] = from_bf16(to_bf16(A.data[k]));
  return R;
}

}  // namespace

TEST(to_bf16_rounds_to_nearest_even) {
  // every bfloat16 value (high half) with low halves around the halfway point and others
  const std::uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xc000, 0xffff, 0x1234};
  long long checked = 0;
  for (std::uint32_t hi = 0; hi < 0x10000; ++hi)
    for (std::uint32_t lo : lows) {
      const float x = bits_to_float((hi << 16) | lo);
      if (std::isnan(x)) {
        CHECK(std::isnan(from_bf16(to_bf16(x))));
        continue;
      }
      if (std::isinf(x)) {
        CHECK(from_bf16(to_bf16(x)) == x);
        continue;
      }
      CHECK(to_bf16(x) == nearest_bf16(x));
      ++checked;
    }
  CHECK(checked > 500000);
  CHECK(from_bf16(to_bf16(1.0f + 0x1p-8f)) == 1.0f);                         // tie to even (down)
  CHECK(from_bf16(to_bf16(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f);           // tie to even (up)
  CHECK(std::isinf(from_bf16(to_bf16(std::numeric_limits<float>::max()))));  // rounds past the top
}

TEST(round_to_bf16_matches_to_bf16_and_pads_with_zeros) {
  rng g(3);
  for (size_type N : {1, 7, 8, 9, 100, 130}) {
    matrix<float> X = random_matrix(37, N, g, 100.0);
    X(0, 0) = std::numeric_limits<float>::quiet_NaN();
    X(1, N - 1) = -std::numeric_limits<float>::infinity();
    X(2, 0) = 1.0f + 0x1p-8f;
    bf16_matrix B;
    round_to_bf16(X, B);
    CHECK(B.rows == 37 && B.cols == N && B.ld % 8 == 0 && B.ld >= N && B.ld < N + 8);
    for (size_type i = 0; i < X.rows; ++i) {
      for (size_type n = 0; n < N; ++n) {
        const float x = X(i, n), y = from_bf16(B.row(i)[n]);
        if (std::isnan(x))
          CHECK(std::isnan(y));
        else
          CHECK(B.row(i)[n] == to_bf16(x));
      }
      for (size_type n = N; n < B.ld; ++n) CHECK(B.row(i)[n] == 0);
    }
  }
}

// The bfloat16 kernels compute exactly what the float kernels compute on the rounded operand
// (widening a bfloat16 is exact and the order of the sums is the same), on 1 and 2 threads.
TEST(bf16_kernels_equal_float_kernels_on_rounded_operands) {
  rng g(11);
  for (double density : {0.003, 0.05, 0.5}) {
    const csr_pattern p = random_pattern(120, 260, static_cast<size_type>(density * 120 * 260) + 1, g);
    csr_pattern pt;
    std::vector<index_t> perm;
    transpose(p, pt, perm);
    std::vector<float> w(static_cast<std::size_t>(p.nnz())), bias(120);
    for (auto& v : w) v = static_cast<float>(g.normal());
    for (auto& v : bias) v = static_cast<float>(g.normal());
    for (size_type N : {1, 7, 8, 12, 100, 130}) {
      const matrix<float> X = random_matrix(260, N, g), DZ = random_matrix(120, N, g);
      const matrix<float> Xr = rounded(X), DZr = rounded(DZ);
      bf16_matrix Xb, DZb;
      round_to_bf16(X, Xb);
      round_to_bf16(DZ, DZb);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        matrix<float> Z(120, N), Zr(120, N), DX(260, N), DXr(260, N);
        spmm_native(p, w.data(), Xb.ptr(), N, 0.f, Z.ptr(), bias.data(), nullptr, Xb.ld);
        spmm_native(p, w.data(), Xr.ptr(), N, 0.f, Zr.ptr(), bias.data());
        CHECK(Z.data == Zr.data);
        spmm_native(pt, w.data(), DZb.ptr(), N, 0.f, DX.ptr(), static_cast<const float*>(nullptr),
                    perm.data(), DZb.ld);
        spmm_native(pt, w.data(), DZr.ptr(), N, 0.f, DXr.ptr(), static_cast<const float*>(nullptr),
                    perm.data());
        CHECK(DX.data == DXr.data);
        std::vector<float> dw(w.size()), dwr(w.size());
        sddmm_each(p, DZb, Xb, [&](index_t k, float v) { dw[k] = v; });
        sddmm(p, DZr, Xr, dwr.data());
        CHECK(dw == dwr);
        // the one pass over bfloat16 copies: the two passes' bits, into DX or (DX null) only
        // into its epilogue
        matrix<float> DX1(260, N), DXe(260, N);
        std::vector<float> dw1(w.size()), dwe(w.size());
        const auto none = detail::no_epilogue{};
        spmm_sddmm_native(pt, w.data(), perm.data(), DZb, Xb, DX1.ptr(), none,
                          [&](index_t k, float v) { dw1[k] = v; });
        spmm_sddmm_native(
            pt, w.data(), perm.data(), DZb, Xb, nullptr,
            [&](index_t j, float* row) { std::copy(row, row + N, DXe.row(j)); },
            [&](index_t k, float v) { dwe[k] = v; });
        CHECK(DX1.data == DXr.data && DXe.data == DXr.data);
        CHECK(dw1 == dwr && dwe == dwr);
      }
    }
  }
  set_num_threads(2);
}

// A layer with operand_dtype bfloat16 = a float layer fed the rounded operands (the bias
// gradient excepted: it sums the float DZ), in one pass or two; dense X and DZ are not
// changed; the first backward after a forward reuses its copy of X, any other rounds X.
TEST(bf16_layer_equals_float_layer_on_rounded_operands) {
  rng g(17);
  const csr_pattern p = random_pattern(50, 90, 900, g);
  sparse_linear<float> half(p, sparse_backend::native, true, operand_dtype::bfloat16);
  sparse_linear<float> full(p, sparse_backend::native, true);
  for (std::size_t k = 0; k < half.W.size(); ++k) half.W[k] = full.W[k] = static_cast<float>(g.normal());
  for (index_t i = 0; i < 50; ++i) half.b[i] = full.b[i] = static_cast<float>(g.normal());
  const matrix<float> X = random_matrix(90, 33, g), DZ = random_matrix(50, 33, g);
  matrix<float> Z, Zr, DX, DXr;
  half.forward(X, Z);
  full.forward(rounded(X), Zr);
  CHECK(Z.data == Zr.data);
  CHECK(half.one_pass_gradients());
  half.backward(X, DZ, &DX);  // DW from round(X) and round(DZ), DX from round(DZ), Db from DZ
  const matrix<float> Xr = rounded(X), DZr = rounded(DZ);
  full.backward(Xr, DZ, nullptr);
  CHECK(half.Db == full.Db);
  full.backward(Xr, DZr, &DXr);
  CHECK(half.DW == full.DW);
  CHECK(DX.data == DXr.data);
  CHECK(half.Db != full.Db);  // (the rounding of DZ is real)
  // the same in two passes (as a layer whose values take more than its one_pass_bytes)
  half.one_pass_bytes = 0;
  std::fill(half.DW.begin(), half.DW.end(), 0.f);
  matrix<float> DX2;
  half.forward(X, Z);
  half.backward(X, DZ, &DX2);
  CHECK(half.DW == full.DW);
  CHECK(DX2.data == DXr.data);
  // a backward with another X than the forward's rounds that X; the first layer's (no DX) too
  const matrix<float> X2 = random_matrix(90, 33, g);
  half.backward(X2, DZ, nullptr);
  full.backward(rounded(X2), DZr, nullptr);
  CHECK(half.DW == full.DW);
  // and the rounding is real: the float layer on the unrounded X differs
  matrix<float> Zf;
  full.forward(X, Zf);
  CHECK(Zf.data != Z.data);
  // a DZ that holds no values (a network's, of which only the copy was kept) is refused, and
  // so is such an X that is not the one the forward kept the copy of
  matrix<float> no_dz, no_x;
  no_dz.shape_only(50, 33);
  no_x.shape_only(90, 33);
  CHECK_THROWS(half.backward(X, no_dz, nullptr));
  CHECK_THROWS(half.backward(no_x, DZ, nullptr));
}

TEST(bf16_operands_are_refused_where_they_cannot_be_used) {
  rng g(1);
  const csr_pattern p = random_pattern(4, 6, 5, g);
  CHECK_THROWS(sparse_linear<double>(p, sparse_backend::native, true, operand_dtype::bfloat16));
  CHECK_THROWS(sparse_linear<float>(p, sparse_backend::mkl, true, operand_dtype::bfloat16));
}

// Operands larger than the prefetch thresholds take the prefetching paths (rows prefetched
// across row ends to the end of each thread's entries): same results on 1 and 2 threads, and
// the same as a double-precision loop, for float and bfloat16 operands.
TEST(large_operands_take_the_prefetching_paths) {
  rng g(23);
  const index_t D = 90000, K = 400;  // X: 36 MB in float, over both thresholds
  const size_type N = 100;
  const csr_pattern p = random_pattern(K, D, 30000, g);
  csr_pattern pt;
  std::vector<index_t> perm;
  transpose(p, pt, perm);
  std::vector<float> w(static_cast<std::size_t>(p.nnz()));
  for (auto& v : w) v = static_cast<float>(g.normal());
  const matrix<float> X = random_matrix(D, N, g), DZ = random_matrix(K, N, g);
  bf16_matrix Xb, DZb;
  round_to_bf16(X, Xb);
  round_to_bf16(DZ, DZb);
  const matrix<float> Xr = rounded(X), DZr = rounded(DZ);
  matrix<float> Z[2], Zb[2], DX[2];
  std::vector<float> DW[2], DWb[2];
  for (int t = 0; t < 2; ++t) {
    set_num_threads(t + 1);
    Z[t].resize(K, N);
    Zb[t].resize(K, N);
    DX[t].resize(D, N);
    DW[t].assign(w.size(), 0.f);
    DWb[t].assign(w.size(), 0.f);
    spmm_native(p, w.data(), X.ptr(), N, 0.f, Z[t].ptr());
    spmm_native(p, w.data(), Xb.ptr(), N, 0.f, Zb[t].ptr(), static_cast<const float*>(nullptr), nullptr,
                Xb.ld);
    spmm_native(pt, w.data(), DZ.ptr(), N, 0.f, DX[t].ptr(), static_cast<const float*>(nullptr), perm.data());
    sddmm(p, DZ, X, DW[t].data());
    sddmm_each(p, DZb, Xb, [&](index_t k, float v) { DWb[t][k] = v; });
  }
  CHECK(Z[0].data == Z[1].data && Zb[0].data == Zb[1].data && DX[0].data == DX[1].data);
  CHECK(DW[0] == DW[1] && DWb[0] == DWb[1]);
  for (index_t i = 0; i < K; i += 7)
    for (size_type n = 0; n < N; n += 13) {
      double z = 0, zb = 0;
      for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) {
        z += double(w[k]) * X(p.indices[k], n);
        zb += double(w[k]) * Xr(p.indices[k], n);
      }
      CHECK(std::fabs(Z[0](i, n) - z) <= 1e-4 * (1 + std::fabs(z)));
      CHECK(std::fabs(Zb[0](i, n) - zb) <= 1e-4 * (1 + std::fabs(zb)));
    }
  for (index_t j = 0; j < D; j += 997)
    for (size_type n = 0; n < N; n += 13) {
      double dx = 0;
      for (index_t k = pt.indptr[j]; k < pt.indptr[j + 1]; ++k)
        dx += double(w[perm[k]]) * DZ(pt.indices[k], n);
      CHECK(std::fabs(DX[0](j, n) - dx) <= 1e-4 * (1 + std::fabs(dx)));
    }
  for (index_t i = 0; i < K; i += 11)
    for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) {
      double s = 0, sb = 0;
      for (size_type n = 0; n < N; ++n) {
        s += double(DZ(i, n)) * X(p.indices[k], n);
        sb += double(DZr(i, n)) * Xr(p.indices[k], n);
      }
      CHECK(std::fabs(DW[0][k] - s) <= 1e-4 * (1 + std::fabs(s)));
      CHECK(std::fabs(DWb[0][k] - sb) <= 1e-4 * (1 + std::fabs(sb)));
    }
  set_num_threads(2);
}

TEST_MAIN()
