// The one-pass input and weight gradient (spmm_sddmm_native) against the two kernels it replaces
// (spmm_native over Wᵀ, then sddmm_each), bit for bit; and the property that lets it match them:
// each weight's gradient from the SDDMM does not depend on where its entry falls in its row;
// the products' streamed output rows against their stored ones; and whole networks trained with
// the one pass and with the two, with streamed rows and without, bit for bit.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "standard_mlp.h"
#include "truesparse/kernels.h"
#include "truesparse/runtime.h"
#include "truesparse/train.h"

using namespace truesparse;

namespace {

template <class T>
void fill(matrix<T>& M, rng& g) {
  for (auto& v : M.data) v = static_cast<T>(g.uniform() - 0.5);
}

// One layer (K outputs, D inputs, nnz stored weights) and a batch of N: the one-pass kernel
// against the two kernels, with an epilogue on DX's rows and an update of each weight inside
// out (as the fused SGD step does), on `threads` threads.
template <class T>
void one_pass_equals_two(index_t K, index_t D, size_type nnz, size_type N, int threads, rng& g) {
  const csr_pattern p = random_pattern(K, D, nnz, g);
  csr_pattern pt;
  std::vector<index_t> perm;
  transpose(p, pt, perm);
  std::vector<T> w(static_cast<std::size_t>(p.nnz()));
  for (auto& v : w) v = static_cast<T>(g.uniform() - 0.5);
  matrix<T> X(static_cast<size_type>(D), N), DZ(static_cast<size_type>(K), N);
  fill(X, g);
  fill(DZ, g);
  set_num_threads(threads);

  // the two passes
  matrix<T> DX2(static_cast<size_type>(D), N);
  const auto twice = [](index_t, T* row, size_type n) {
    for (size_type c = 0; c < n; ++c) row[c] = row[c] * T(2) + T(1);
  };
  spmm_native(pt, w.data(), DZ.ptr(), N, T(0), DX2.ptr(), static_cast<const T*>(nullptr), perm.data(), 0,
              [&](index_t j, T* row) { twice(j, row, N); });
  std::vector<T> dw2(w.size());
  sddmm_each(p, DZ, X, [&](index_t k, T v) { dw2[static_cast<std::size_t>(k)] = v; });

  // the one pass: out steps the weight it is given, after the product has read it
  std::vector<T> w1 = w, dw1(w.size(), T(-7));
  std::vector<int> calls(w.size(), 0), epilogues(static_cast<std::size_t>(D), 0);
  matrix<T> DX1(static_cast<size_type>(D), N);
  spmm_sddmm_native(
      pt, w1.data(), perm.data(), DZ, X, DX1.ptr(),
      [&](index_t j, T* row) {
        ++epilogues[static_cast<std::size_t>(j)];
        twice(j, row, N);
      },
      [&](index_t k, T v) {
        const auto kk = static_cast<std::size_t>(k);
        dw1[kk] = v;
        ++calls[kk];
        w1[kk] -= T(0.25) * v;
      },
      w1.data());

  CHECK(DX1.data == DX2.data);  // with the values before the update, epilogue included
  CHECK(dw1 == dw2);
  for (std::size_t k = 0; k < w.size(); ++k) CHECK(calls[k] == 1 && w1[k] == w[k] - T(0.25) * dw2[k]);
  for (int e : epilogues) CHECK(e == 1);

  // streamed rows of DX (what the epilogue leaves in the thread's row), over garbage: both kernels
  const auto garbage = [&]() {
    matrix<T> M(static_cast<size_type>(D), N);
    M.fill(std::numeric_limits<T>::quiet_NaN());
    return M;
  };
  matrix<T> DX3 = garbage(), DX4 = garbage();
  std::vector<T> dw3(w.size());
  spmm_sddmm_native(
      pt, w.data(), perm.data(), DZ, X, DX3.ptr(), [&](index_t j, T* row) { twice(j, row, N); },
      [&](index_t k, T v) { dw3[static_cast<std::size_t>(k)] = v; }, static_cast<const T*>(nullptr), true);
  spmm_native(
      pt, w.data(), DZ.ptr(), N, T(0), DX4.ptr(), static_cast<const T*>(nullptr), perm.data(), 0,
      [&](index_t j, T* row) { twice(j, row, N); }, true);
  CHECK(std::memcmp(DX3.ptr(), DX2.ptr(), sizeof(T) * DX2.size()) == 0);
  CHECK(std::memcmp(DX4.ptr(), DX2.ptr(), sizeof(T) * DX2.size()) == 0);
  CHECK(dw3 == dw2);
  // and a forward product with a bias streamed into a Z that held garbage
  std::vector<T> bias(static_cast<std::size_t>(K));
  for (auto& v : bias) v = static_cast<T>(g.uniform());
  matrix<T> Z1(static_cast<size_type>(K), N), Z2(static_cast<size_type>(K), N);
  Z2.fill(std::numeric_limits<T>::quiet_NaN());
  spmm_native(p, w.data(), X.ptr(), N, T(0), Z1.ptr(), bias.data());
  spmm_native(p, w.data(), X.ptr(), N, T(0), Z2.ptr(), bias.data(), static_cast<const index_t*>(nullptr), 0,
              detail::no_epilogue{}, true);
  CHECK(std::memcmp(Z1.ptr(), Z2.ptr(), sizeof(T) * Z1.size()) == 0);
}

}  // namespace

TEST(one_pass_gradients_equal_the_product_and_the_sddmm) {
  rng g(3);
  // N: one vector, a half and a masked tail, one column tile exactly (104 floats, 52 doubles),
  // two and three tiles; densities with empty rows and columns and with long rows.
  for (int threads : {1, 2})
    for (double density : {0.002, 0.05, 0.6})
      for (size_type N : {1, 3, 4, 7, 8, 12, 13, 52, 53, 100, 104, 105, 130, 200, 333}) {
        const auto nnz = static_cast<size_type>(density * 90 * 170);
        one_pass_equals_two<float>(90, 170, nnz, N, threads, g);
        one_pass_equals_two<double>(90, 170, nnz, N, threads, g);
      }
  // DZ larger than the prefetch threshold (4 MB): the prefetching path
  one_pass_equals_two<float>(12000, 300, 20000, 100, 2, g);
  one_pass_equals_two<double>(6000, 300, 20000, 100, 1, g);
  set_num_threads(2);
}

TEST(streamed_bfloat16_rows_equal_stored_ones) {
  // every length around whole groups of 8, NaN, infinities, signed zeros and ties; the padding
  // is written as zeros over garbage
  rng g(5);
  for (size_type N = 0; N <= 41; ++N) {
    std::vector<float> x(static_cast<std::size_t>(N));
    for (auto& v : x) v = static_cast<float>(g.uniform() - 0.5) * 1e3f;
    const float special[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                             -0.0f, 1.00390625f, -1.01171875f};
    for (std::size_t k = 0; k < x.size() && k < 5; ++k) x[k * 3 % x.size()] = special[k];
    const size_type ld = bf16_ld(N);
    avector<std::uint16_t> stored(static_cast<std::size_t>(ld) + 8, 0xabcd), streamed = stored;
    round_row_to_bf16(x.data(), stored.data(), N, ld);
    round_row_to_bf16(x.data(), streamed.data(), N, ld, true);
    detail::stream_fence();
    CHECK(stored == streamed);
    for (size_type k = N; k < ld; ++k) CHECK(streamed[static_cast<std::size_t>(k)] == 0);
    CHECK(streamed[static_cast<std::size_t>(ld)] == 0xabcd);  // nothing past the row
  }
}

TEST(sddmm_gradient_does_not_depend_on_its_place_in_the_row) {
  // Rows of 1 to 20 entries take the groups of 8, of 4 and single entries; every gradient
  // must equal that of a one-entry pattern at the same position.
  rng g(9);
  for (size_type N : {1, 5, 8, 100, 130}) {
    const csr_pattern p = random_pattern(40, 30, 400, g);
    matrix<float> X(30, N), DZ(40, N);
    fill(X, g);
    fill(DZ, g);
    std::vector<float> dw(static_cast<std::size_t>(p.nnz()));
    sddmm(p, DZ, X, dw.data());
    for (index_t i = 0; i < p.rows; ++i)
      for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) {
        csr_pattern one;
        one.rows = p.rows;
        one.cols = p.cols;
        one.indptr.assign(static_cast<std::size_t>(p.rows) + 1, 0);
        for (index_t r = i + 1; r <= p.rows; ++r) one.indptr[static_cast<std::size_t>(r)] = 1;
        one.indices = {p.indices[static_cast<std::size_t>(k)]};
        float alone = 0;
        sddmm(one, DZ, X, &alone);
        CHECK(alone == dw[static_cast<std::size_t>(k)]);
      }
  }
}

TEST(networks_train_the_same_with_one_pass_or_two_and_streamed_rows_or_not) {
  // sparse_linear::one_pass_bytes chooses the pass; every sparse layer takes one pass by
  // default, and a limit of 0 makes them take two. stream_bytes = 0 streams every
  // output row (Z, the activations, DX), which by default only matrices of 16 MB are.
  const auto check = [](auto zero, const optimizer_config& c, size_type batch, int threads, bool bf16,
                        activation_kind act) {
    using T = decltype(zero);
    set_num_threads(threads);
    network_options o = testing::standard_mlp({30, 50, 40, 20, 3}, {0.3, 0.2, 0.5, 1.0}, act);
    if (bf16) o.operands = operand_dtype::bfloat16;
    network<T> one(o), two(o), streamed(o), both(o);
    for (auto* L : two.layers)
      if (auto* S = L->as_sparse()) S->one_pass_bytes = 0;
    for (auto* L : streamed.layers)
      if (auto* S = L->as_sparse()) S->stream_bytes = 0;
    for (auto* L : both.layers)
      if (auto* S = L->as_sparse()) S->one_pass_bytes = S->stream_bytes = 0;
    const testing::labelled_data<T> data(3 * batch + 5, 30, 3, 4);
    for (std::uint64_t e = 0; e < 2; ++e) {
      const auto r1 = train_epoch(one, data.d, batch, c, 3, e, true);
      for (network<T>* other : {&two, &streamed, &both})
        CHECK(train_epoch(*other, data.d, batch, c, 3, e, true).loss == r1.loss);
    }
    for (network<T>* other : {&two, &streamed, &both})
      for (std::size_t l = 0; l < one.layers.size(); ++l) {
        auto* A = one.layers[l];
        auto* B = other->layers[l];
        CHECK(std::memcmp(A->values(), B->values(), sizeof(T) * A->nnz()) == 0);
        CHECK(A->b == B->b);
      }
    // and a prediction (no Z kept where the activation is fused)
    matrix<T> X(30, data.d.M);  // feature-major
    for (size_type i = 0; i < data.d.M; ++i)
      for (size_type j = 0; j < 30; ++j) X(j, i) = data.X[static_cast<std::size_t>(i * 30 + j)];
    const matrix<T>& p1 = one.forward(X);
    const matrix<T>& p2 = streamed.forward(X);
    CHECK(std::memcmp(p1.ptr(), p2.ptr(), sizeof(T) * p1.size()) == 0);
  };
  optimizer_config sgd, adam;
  sgd.lr = 0.05;
  sgd.momentum = 0.9;
  sgd.nesterov = true;
  adam.kind = optimizer_kind::adam;
  adam.lr = 0.01;
  for (int threads : {1, 2})
    for (size_type batch : {1, 16, 100, 130})
      for (const optimizer_config* c : {&sgd, &adam}) {
        check(0.f, *c, batch, threads, false, activation_kind::relu);
        check(0.0, *c, batch, threads, false, activation_kind::relu);
      }
  // bfloat16 operands (two passes, the product gathering DZ's copy), and an activation whose
  // forward keeps Z (tanh)
  for (int threads : {1, 2})
    for (size_type batch : {16, 130}) {
      check(0.f, sgd, batch, threads, true, activation_kind::relu);
      check(0.f, adam, batch, threads, false, activation_kind::tanh);
      check(0.0, sgd, batch, threads, false, activation_kind::tanh);
    }
  set_num_threads(2);
}

TEST_MAIN()
