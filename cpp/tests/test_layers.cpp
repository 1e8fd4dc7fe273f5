// Tests of the layers against naive dense computations written here independently:
// sparse and dense linear layers (both sparse backends, float and double), activations,
// losses (finite differences) and the SGD step.
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "truesparse/activation.h"
#include "truesparse/linear.h"
#include "truesparse/loss.h"

using namespace truesparse;

template <class T>
static matrix<T> random_matrix(size_type r, size_type c, rng& g) {
  matrix<T> A(r, c);
  for (auto& a : A.data) a = static_cast<T>(g.normal());
  return A;
}

template <class T>
static std::vector<double> dense_of(const csr_pattern& p, const T* v) {
  std::vector<double> W(static_cast<std::size_t>(p.rows) * p.cols, 0.0);
  for (index_t i = 0; i < p.rows; ++i)
    for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) W[i * p.cols + p.indices[k]] = v[k];
  return W;
}

template <class T>
static void check_sparse_layer(index_t K, index_t D, size_type N, double density, sparse_backend be,
                               double tol) {
  rng g(K * 1000 + D * 10 + N);
  const auto nnz = static_cast<size_type>(density * K * D);
  sparse_linear<T> layer(random_pattern(K, D, nnz, g), be, true);
  for (auto& w : layer.W) w = static_cast<T>(g.normal());
  for (auto& b : layer.b) b = static_cast<T>(g.normal());
  layer.values_changed();
  const auto X = random_matrix<T>(D, N, g);
  const auto DZ = random_matrix<T>(K, N, g);
  matrix<T> Z, DX;
  layer.forward(X, Z);
  layer.backward(X, DZ, &DX);
  const auto W = dense_of(layer.pattern, layer.W.data());
  for (index_t i = 0; i < K; ++i)
    for (size_type n = 0; n < N; ++n) {
      double z = layer.b[i];
      for (index_t j = 0; j < D; ++j) z += W[i * D + j] * X(j, n);
      CHECK_CLOSE(Z(i, n), z, tol);
    }
  for (index_t i = 0; i < K; ++i) {
    double db = 0;
    for (size_type n = 0; n < N; ++n) db += DZ(i, n);
    CHECK_CLOSE(layer.Db[i], db, tol);
    for (index_t k = layer.pattern.indptr[i]; k < layer.pattern.indptr[i + 1]; ++k) {
      double dw = 0;
      for (size_type n = 0; n < N; ++n) dw += DZ(i, n) * X(layer.pattern.indices[k], n);
      CHECK_CLOSE(layer.DW[k], dw, tol);
    }
  }
  for (index_t j = 0; j < D; ++j)
    for (size_type n = 0; n < N; ++n) {
      double dx = 0;
      for (index_t i = 0; i < K; ++i) dx += W[i * D + j] * DZ(i, n);
      CHECK_CLOSE(DX(j, n), dx, tol);
    }
}

TEST(sparse_layer_matches_dense_reference) {
  for (auto be : {sparse_backend::mkl, sparse_backend::native})
    for (double d : {1.0, 0.5, 0.1, 0.01}) {
      check_sparse_layer<float>(37, 53, 11, d, be, 1e-4);
      check_sparse_layer<double>(37, 53, 11, d, be, 1e-11);
      check_sparse_layer<double>(1, 1, 1, d, be, 1e-11);
      check_sparse_layer<double>(64, 200, 1, d, be, 1e-11);
    }
}

TEST(sparse_layer_with_no_entries) {
  for (auto be : {sparse_backend::mkl, sparse_backend::native}) {
    csr_pattern p;
    p.rows = 3;
    p.cols = 2;
    p.indptr = {0, 0, 0, 0};
    sparse_linear<double> layer(p, be, true);
    layer.b = {1, 2, 3};
    matrix<double> X(2, 4), Z, DX;
    X.fill(1.0);
    layer.forward(X, Z);
    CHECK(Z(2, 3) == 3.0 && Z(0, 0) == 1.0);
    layer.backward(X, Z, &DX);
    CHECK(DX(1, 3) == 0.0);
    CHECK(layer.Db[1] == 8.0);
  }
}

TEST(dense_layer_matches_reference) {
  rng g(5);
  const index_t K = 7, D = 9;
  const size_type N = 5;
  dense_linear<double> layer(D, K);
  for (auto& w : layer.W) w = g.normal();
  for (auto& b : layer.b) b = g.normal();
  const auto X = random_matrix<double>(D, N, g);
  const auto DZ = random_matrix<double>(K, N, g);
  matrix<double> Z, DX;
  layer.forward(X, Z);
  layer.backward(X, DZ, &DX);
  for (index_t i = 0; i < K; ++i)
    for (index_t j = 0; j < D; ++j) {
      double dw = 0;
      for (size_type n = 0; n < N; ++n) dw += DZ(i, n) * X(j, n);
      CHECK_CLOSE(layer.DW[i * D + j], dw, 1e-12);
    }
  for (size_type n = 0; n < N; ++n) {
    for (index_t i = 0; i < K; ++i) {
      double z = layer.b[i];
      for (index_t j = 0; j < D; ++j) z += layer.W[i * D + j] * X(j, n);
      CHECK_CLOSE(Z(i, n), z, 1e-12);
    }
    for (index_t j = 0; j < D; ++j) {
      double dx = 0;
      for (index_t i = 0; i < K; ++i) dx += layer.W[i * D + j] * DZ(i, n);
      CHECK_CLOSE(DX(j, n), dx, 1e-12);
    }
  }
}

TEST(sparse_layer_rejects_wrong_input) {
  rng g(1);
  sparse_linear<float> layer(random_pattern(4, 6, 5, g), sparse_backend::mkl, true);
  matrix<float> X(5, 3), Z;
  CHECK_THROWS(layer.forward(X, Z));
}

TEST(activation_derivatives_match_finite_differences) {
  for (auto kind : {activation_kind::relu, activation_kind::leaky_relu, activation_kind::all_relu,
                    activation_kind::sigmoid, activation_kind::tanh, activation_kind::identity})
    for (int layer_number : {1, 2}) {
      activation a{kind, 0.1, layer_number};
      matrix<double> Z(1, 6), Y, Zp(1, 1), Zm(1, 1), Yp, Ym;
      const double zs[6] = {-2.0, -0.3, -1e-3, 1e-3, 0.4, 3.0};
      for (int k = 0; k < 6; ++k) Z(0, k) = zs[k];
      a.forward(Z, Y);
      matrix<double> D(1, 6);
      D.fill(1.0);
      a.backward(Z, Y, D, D);
      for (int k = 0; k < 6; ++k) {
        Zp(0, 0) = zs[k] + 1e-7;
        Zm(0, 0) = zs[k] - 1e-7;
        a.forward(Zp, Yp);
        a.forward(Zm, Ym);
        CHECK_CLOSE(D(0, k), (Yp(0, 0) - Ym(0, 0)) / 2e-7, 1e-6);
      }
    }
  // All-ReLU: odd layers slope +alpha, even layers -alpha on the negative side.
  activation odd{activation_kind::all_relu, 0.5, 1}, even{activation_kind::all_relu, 0.5, 2};
  CHECK(odd.negative_slope() == 0.5 && even.negative_slope() == -0.5);
}

// Values where an activation's branches meet or break: ±0, NaN, ±∞, ± the least subnormal, and
// subnormals that round to a bfloat16 other than 0.
constexpr size_type special_count = 9;
template <class T>
static const T* special_values() {
  static const T v[special_count] = {
      T(0), -T(0), std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
      -std::numeric_limits<T>::infinity(), std::numeric_limits<T>::denorm_min(),
      -std::numeric_limits<T>::denorm_min(),
      // subnormals whose bfloat16 is not 0 (VCVTNEPS2BF16 makes them 0)
      std::numeric_limits<T>::min() / 2, -std::numeric_limits<T>::min() * T(0.75)};
  return v;
}

// The signs a fused forward keeps instead of Z (network.h): bit k of a row is z[k] > 0, and
// the backward from them equals the one from z, value for value, whatever n (AVX groups and
// scalar tails, several words) and at 0, -0, NaN and infinities.
template <class T>
static void check_sign_bits(rng& g) {
  const T* specials = special_values<T>();
  for (size_type n : {1, 3, 4, 7, 8, 9, 63, 64, 65, 100, 130}) {
    std::vector<T> z(static_cast<std::size_t>(n)), dy(z.size()), dx(z.size()), ref(z.size());
    for (size_type k = 0; k < n; ++k) {
      z[k] = k % 5 == 4 ? specials[(k / 5) % special_count] : static_cast<T>(g.normal());
      dy[k] = static_cast<T>(g.normal());
    }
    std::vector<std::uint64_t> bits(static_cast<std::size_t>((n + 63) / 64), ~std::uint64_t{0});
    activation::positive_bits(z.data(), bits.data(), n);
    for (size_type k = 0; k < n; ++k) CHECK(((bits[k / 64] >> (k % 64)) & 1u) == (z[k] > T(0) ? 1u : 0u));
    if (n % 64 != 0) CHECK((bits.back() >> (n % 64)) == 0);  // the rest of the last word
    for (auto kind : {activation_kind::relu, activation_kind::leaky_relu, activation_kind::all_relu})
      for (int layer_number : {1, 2}) {
        const activation a{kind, 0.3, layer_number};
        a.backward_range(z.data(), static_cast<const T*>(nullptr), dy.data(), ref.data(), n);
        a.backward_bits_range(bits.data(), dy.data(), dx.data(), n);
        CHECK(std::memcmp(dx.data(), ref.data(), sizeof(T) * z.size()) == 0);
      }
  }
}

TEST(activation_sign_bits_give_the_backward_of_z) {
  rng g(3);
  check_sign_bits<float>(g);
  check_sign_bits<double>(g);
  for (auto kind : {activation_kind::sigmoid, activation_kind::tanh, activation_kind::identity})
    CHECK(!(activation{kind, 0.1, 1}.derivative_from_input()));
}

// Both values NaN, or the same bits.
template <class T>
static bool same_value(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(T)) == 0;
}

// row_sum adds in one documented order whatever the build: 8 running sums (lane k % 8), then
// ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)). Spelled out here, and against a double sum.
TEST(row_sum_adds_in_its_documented_order) {
  rng g(5);
  for (size_type n : {0, 1, 5, 8, 9, 16, 63, 100, 1000}) {
    std::vector<float> a(static_cast<std::size_t>(n));
    double exact = 0;
    for (auto& v : a) exact += v = static_cast<float>(g.normal());
    float l[8] = {};
    for (size_type k = 0; k < n; ++k) l[k % 8] += a[k];
    const float want = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
    const float got = row_sum(a.data(), n);
    CHECK(same_value(got, want));
    CHECK(std::abs(got - exact) <= 1e-5 * (1 + std::abs(exact)) * std::sqrt(static_cast<double>(n) + 1));
    std::vector<double> d(a.begin(), a.end());
    CHECK(std::abs(row_sum(d.data(), n) - exact) <=
          1e-12 * (1 + std::abs(exact)) * (static_cast<double>(n) + 1));
  }
}

// The fused epilogue's row functions (activation::forward_row and backward_bits_row, one pass
// over a float row of the ReLU family) against the definitions written here: a = z > 0 ? z :
// s z (as pos + s (z - pos), rounded once where the build has FMA), bits z > 0,
// dx = dy (z > 0 ? 1 : s), the sum in row_sum's order, the copies to_bf16 of each value padded
// with zeros; every combination of outputs, streamed and not, tails of every length, several
// words of bits, and 0, -0, NaN, infinities and subnormals. Double rows and the other
// activations take the separate functions, which are checked the same way.
template <class T>
static void check_fused_rows(rng& g) {
  const T* specials = special_values<T>();
  const auto bf16_of = [](T v) -> std::uint16_t {
    if constexpr (std::is_same_v<T, float>) return to_bf16(v);
    return 0;
  };
  for (size_type n : {1, 3, 7, 8, 9, 63, 64, 65, 100, 130})
    for (auto kind : {activation_kind::relu, activation_kind::leaky_relu, activation_kind::all_relu,
                      activation_kind::sigmoid})
      for (int layer_number : {1, 2}) {
        const activation act{kind, 0.3, layer_number};
        const T s = static_cast<T>(act.negative_slope());
        std::vector<T> z(static_cast<std::size_t>(n)), dy(z.size()), a_ref(z.size()), dx_ref(z.size());
        for (size_type k = 0; k < n; ++k) {
          z[k] = k % 5 == 4 ? specials[(k / 5) % special_count] : static_cast<T>(g.normal());
          dy[k] = k % 11 == 10 ? specials[(k / 11) % special_count] : static_cast<T>(g.normal());
        }
        for (size_type k = 0; k < n; ++k) {
          const T pos = z[k] > T(0) ? z[k] : T(0);
          a_ref[k] = kind == activation_kind::sigmoid
                         ? T(1) / (T(1) + std::exp(-z[k]))
#if defined(__FMA__)  // rounded once (one fused multiply-add)
                         : static_cast<T>(static_cast<long double>(s) * (z[k] - pos) + pos);
#else  // a build without FMA rounds the product, then the sum
                         : pos + s * (z[k] - pos);
#endif
          dx_ref[k] = dy[k] * (z[k] > T(0) ? T(1) : s);
        }
        const size_type ld = (n + 7) / 8 * 8 + (n % 2 ? 8 : 0);  // sometimes padded past a whole group
        for (int outputs = 0; outputs < 8; ++outputs)
          for (bool stream : {false, true}) {
            const bool want_bits = outputs & 4, want_y = outputs & 2,
                       want_copy = (outputs & 1) && std::is_same_v<T, float>;
            std::vector<std::uint64_t> bits(static_cast<std::size_t>((n + 63) / 64), ~std::uint64_t{0});
            avector<std::uint16_t> copy(static_cast<std::size_t>(ld), 0xffff);
            std::vector<T> zz = z, y(z.size(), T(7));
            act.forward_row(zz.data(), want_y ? y.data() : nullptr, want_bits ? bits.data() : nullptr,
                            want_copy ? copy.data() : nullptr, n, ld, stream);
            for (size_type k = 0; k < n; ++k) {
              if (want_y)
                CHECK(same_value(y[k], a_ref[k]) ||
                      (kind == activation_kind::sigmoid && std::abs(y[k] - a_ref[k]) <= 1e-6));
              if (want_bits) CHECK(((bits[k / 64] >> (k % 64)) & 1u) == (z[k] > T(0) ? 1u : 0u));
              if (want_copy && kind != activation_kind::sigmoid) CHECK(copy[k] == bf16_of(a_ref[k]));
            }
            if (want_bits && n % 64 != 0) CHECK((bits.back() >> (n % 64)) == 0);
            if (want_copy)
              for (size_type k = n; k < ld; ++k) CHECK(copy[k] == 0);
            if (kind == activation_kind::sigmoid) continue;  // the backward from bits: the ReLU family
            std::vector<std::uint64_t> zbits(bits.size());
            activation::positive_bits(z.data(), zbits.data(), n);
            const bool want_dx = outputs & 4, want_sum = outputs & 2;
            std::vector<T> dd = dy, dx(z.size(), T(7));
            T sum = T(7);
            std::fill(copy.begin(), copy.end(), std::uint16_t{0xffff});
            act.backward_bits_row(zbits.data(), dd.data(), want_dx ? dx.data() : nullptr,
                                  want_sum ? &sum : nullptr, want_copy ? copy.data() : nullptr, n, ld,
                                  stream);
            for (size_type k = 0; k < n; ++k) {
              if (want_dx) CHECK(same_value(dx[k], dx_ref[k]));
              if (want_copy) CHECK(copy[k] == bf16_of(dx_ref[k]));
            }
            if (want_sum) CHECK(same_value(sum, row_sum(dx_ref.data(), n)));
            if (want_copy)
              for (size_type k = n; k < ld; ++k) CHECK(copy[k] == 0);
          }
      }
}

TEST(fused_epilogue_rows_match_their_definitions) {
#ifdef TRUESPARSE_BF16_ROWS
  // The AVX2 form of the float rows, then the AVX-512 one where the CPU has it (the same data).
  const bool avx512 = detail::bf16_rows();
  for (bool form : {false, true}) {
    if (form && !avx512) continue;
    detail::bf16_rows() = form;
    rng g(9);
    check_fused_rows<float>(g);
  }
  detail::bf16_rows() = avx512;
  std::printf("  (AVX-512 rows %s on this CPU)\n", avx512 ? "checked" : "not available");
#else
  rng f(9);
  check_fused_rows<float>(f);
#endif
  rng g(9);
  check_fused_rows<double>(g);
}

TEST(losses_match_finite_differences) {
  rng g(11);
  const size_type K = 4, N = 3;
  auto Z = random_matrix<double>(K, N, g);
  std::vector<std::int32_t> labels{0, 3, 1};
  for (auto kind : {loss_kind::softmax_cross_entropy, loss_kind::squared_error}) {
    targets<double> t;
    t.labels = labels.data();
    matrix<double> DZ;
    compute_loss(kind, Z, t, 1.0, &DZ);
    for (size_type i = 0; i < K; ++i)
      for (size_type n = 0; n < N; ++n) {
        auto Zp = Z, Zm = Z;
        Zp(i, n) += 1e-6;
        Zm(i, n) -= 1e-6;
        const double fd = (compute_loss<double>(kind, Zp, t, 1.0, nullptr).loss_sum -
                           compute_loss<double>(kind, Zm, t, 1.0, nullptr).loss_sum) /
                          2e-6;
        CHECK_CLOSE(DZ(i, n), fd, 1e-7);
      }
  }
  // Stable for huge logits: no inf or NaN.
  matrix<float> big(3, 1);
  big(0, 0) = 1e4f;
  big(1, 0) = -1e4f;
  big(2, 0) = 0;
  std::int32_t y = 1;
  targets<float> t;
  t.labels = &y;
  matrix<float> DZ;
  const auto r = compute_loss(loss_kind::softmax_cross_entropy, big, t, 1.0f, &DZ);
  CHECK_CLOSE(r.loss_sum, 2e4, 1e-6);
  CHECK(std::isfinite(DZ(0, 0)) && DZ(0, 0) == 1.0f && DZ(1, 0) == -1.0f);
}

TEST(sgd_step_matches_formula) {
  for (bool nesterov : {false, true}) {
    optimizer_config c;
    c.lr = 0.1;
    c.momentum = 0.9;
    c.nesterov = nesterov;
    c.weight_decay = 0.01;
    optimizer_state<double> s;
    s.m = {0.2, -0.1};
    std::vector<double> w{1.0, -2.0}, g{0.5, 0.25};
    auto w2 = w;
    std::vector<double> v2{0.2, -0.1};
    optimizer_step(c, s, w.data(), g.data(), 2);
    for (int k = 0; k < 2; ++k) {
      const double gk = g[k] + 0.01 * w2[k];
      v2[k] = 0.9 * v2[k] + gk;
      w2[k] -= 0.1 * (nesterov ? gk + 0.9 * v2[k] : v2[k]);
      CHECK_CLOSE(w[k], w2[k], 1e-15);
      CHECK_CLOSE(s.m[k], v2[k], 1e-15);
    }
  }
}

TEST(adam_and_adamw_steps_match_formula) {
  for (auto kind : {optimizer_kind::adam, optimizer_kind::adamw}) {
    optimizer_config c;
    c.kind = kind;
    c.lr = 0.01;
    c.weight_decay = 0.1;
    optimizer_state<double> s;
    std::vector<double> w{1.0, -2.0, 0.5}, w2 = w, m(3, 0.0), v(3, 0.0);
    for (int t = 1; t <= 3; ++t) {
      const std::vector<double> g{0.3 * t, -0.2, 0.05 * t * t};
      optimizer_step(c, s, w.data(), g.data(), 3);
      for (int k = 0; k < 3; ++k) {
        double gk = g[k];
        if (kind == optimizer_kind::adamw)
          w2[k] -= 0.01 * 0.1 * w2[k];
        else
          gk += 0.1 * w2[k];
        m[k] = 0.9 * m[k] + 0.1 * gk;
        v[k] = 0.999 * v[k] + 0.001 * gk * gk;
        const double mh = m[k] / (1 - std::pow(0.9, t)), vh = v[k] / (1 - std::pow(0.999, t));
        w2[k] -= 0.01 * mh / (std::sqrt(vh) + 1e-8);
        CHECK_CLOSE(w[k], w2[k], 1e-13);
      }
    }
  }
}

TEST(adam_warmup_ramps_new_weights) {
  optimizer_config c;
  c.kind = optimizer_kind::adam;
  c.lr = 0.1;
  c.new_weight_warmup = 3;
  optimizer_state<double> s;
  std::vector<double> w{0.0, 0.0}, g{1.0, 1.0};
  optimizer_step(c, s, w.data(), g.data(), 2);  // both start fully warmed up
  s.age[1] = 0;                                 // weight 1 is "new"
  s.m[1] = s.v[1] = 0.0;
  const double before0 = w[0], before1 = w[1];
  optimizer_step(c, s, w.data(), g.data(), 2);
  // weight 1's step is a quarter of what a full-rate step from zero moments would be
  const double c1 = 1 / (1 - 0.9 * 0.9), c2 = 1 / (1 - 0.999 * 0.999);
  const double full = 0.1 * (0.1 * c1) / (std::sqrt(0.001 * c2) + 1e-8);
  CHECK_CLOSE(before1 - w[1], full / 4, 1e-12);
  CHECK(before0 - w[0] > 0);
  CHECK(s.age[1] == 1);
}

TEST_MAIN()
