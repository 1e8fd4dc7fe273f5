// Topology evolution of sparse layers in place, without masks (docs/dynamic-sparse-training.md):
//   drop   chooses stored entries to remove and returns their storage indices (sorted);
//   grow   chooses empty positions i*D+j to add and returns them (sorted);
//   apply_topology_change rebuilds the pattern row by row, remaps the values and every aligned
//          optimizer state array (survivors keep value and state bit for bit; new entries get
//          their initial value and zero state) and rebuilds Wᵀ and the MKL handles.
// SET:  sign-split magnitude drop (fraction ζ of the positive and of the negative weights),
//       uniform random regrowth among the positions empty after the drop. O(nnz + k log k).
// RigL: magnitude drop of k = floor(f(t) nnz), growth at the k positions not kept with the
//       largest |∂L/∂W| of the current batch, computed in row panels (DZ Xᵀ by dense GEMM) with
//       a running top-k: extra memory is one panel plus O(k), never a (K,D) matrix. The panels
//       come from a gradient_panel function, so that data-parallel training (distributed.h) can
//       sum each panel over its ranks first; rigl_select chooses a change, rigl_apply makes it.
// Ties are broken by index: among equal magnitudes the entry with the lower storage index is
// dropped first, and among equal gradients the lower position is grown first.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <unordered_set>

#include "truesparse/linear.h"

namespace truesparse {

// What one update changed in one layer.
struct topology_record {
  std::size_t layer = 0;
  std::int64_t step = 0;  // global training step (0 outside training)
  size_type nnz = 0;
  size_type dropped = 0;     // entries removed (reselected ones not counted)
  size_type grown = 0;       // truly new entries
  size_type reselected = 0;  // RigL: dropped then grown again, kept with value and state
  double itop_rate = 0.0;    // fraction of positions ever active
  std::vector<std::int64_t> dropped_positions, grown_positions;  // sorted i*D+j
  std::vector<size_type> in_degree_histogram;   // [d] = input neurons (columns) with degree d
  std::vector<size_type> out_degree_histogram;  // [d] = output neurons (rows) with degree d
};

// New SET weights: uniform in ±√(6 / (n_in + n_out)) with the layer's dense fans (the original
// SET code; the default), the layer's initializer, 0, or N(0, σ²).
enum class regrow_init { uniform, layer, zero, normal };
enum class drop_schedule { cosine, constant, exponential };

// The checks of the Python classes truesparse.SET and truesparse.RigL (evolution.py), for C++
// callers and for the options of a fit: NaN and ±inf are refused everywhere. SET's delta_t 0
// means "between epochs"; RigL's t_end is the last update step relative to its t_begin.
inline void validate_set(double zeta, double regrow_std, std::int64_t delta_t) {
  TS_REQUIRE(zeta >= 0 && zeta <= 1, "[SET] zeta must be a finite number in [0, 1], got ", zeta);
  TS_REQUIRE(regrow_std >= 0 && std::isfinite(regrow_std),
             "[SET] regrow_std must be a finite number >= 0, got ", regrow_std);
  TS_REQUIRE(delta_t >= 0, "[SET] delta_t must be None or an integer >= 1, got ", delta_t);
}

inline void validate_drop_schedule(double alpha, double exponent) {
  TS_REQUIRE(alpha >= 0 && alpha <= 1, "[RigL] alpha must be a finite number in [0, 1], got ", alpha);
  TS_REQUIRE(exponent > 0 && std::isfinite(exponent), "[RigL] exponent must be a finite number > 0, got ",
             exponent);
}

inline void validate_rigl(double alpha, std::int64_t delta_t, std::int64_t t_end, double exponent) {
  validate_drop_schedule(alpha, exponent);
  TS_REQUIRE(delta_t >= 1, "[RigL] delta_t must be an integer >= 1, got ", delta_t);
  TS_REQUIRE(t_end >= 0, "[RigL] t_end must be >= 0 steps, got ", t_end);
}

// RigL's drop fraction at step t: cosine α/2 (1 + cos(π t / T_end)), constant α,
// exponential α (1 − t/T_end)^exponent; 0 after T_end. Always in [0, α].
inline double drop_fraction(drop_schedule s, double alpha, double t, double t_end, double exponent = 2.0) {
  validate_drop_schedule(alpha, exponent);
  TS_REQUIRE(t >= 0 && std::isfinite(t) && std::isfinite(t_end),
             "[RigL] drop_fraction needs a finite t >= 0 and a finite t_end, got t=", t, ", t_end=", t_end);
  if (t > t_end || t_end <= 0) return 0.0;
  switch (s) {
    case drop_schedule::constant: return alpha;
    case drop_schedule::exponential: return alpha * std::pow(1.0 - t / t_end, exponent);
    case drop_schedule::cosine:
    default: return alpha / 2.0 * (1.0 + std::cos(M_PI * t / t_end));
  }
}

namespace detail {

inline std::int64_t position(const csr_pattern& p, index_t i, index_t k) {
  return static_cast<std::int64_t>(i) * p.cols + p.indices[k];
}

// Row of every storage index (O(nnz)); used to turn storage indices into positions.
inline std::vector<std::int64_t> positions_of(const csr_pattern& p, const std::vector<index_t>& ks) {
  std::vector<std::int64_t> pos;
  pos.reserve(ks.size());
  index_t i = 0;
  for (index_t k : ks) {  // ks sorted, so rows only move forward
    while (p.indptr[i + 1] <= k) ++i;
    pos.push_back(position(p, i, k));
  }
  return pos;
}

// Is position (i, j) held by an entry that survives the drop (drop sorted)?
inline bool survives_at(const csr_pattern& p, const std::vector<index_t>& drop, index_t i, index_t j) {
  const auto* first = p.indices.data() + p.indptr[i];
  const auto* last = p.indices.data() + p.indptr[i + 1];
  const auto* it = std::lower_bound(first, last, j);
  if (it == last || *it != j) return false;
  const auto k = static_cast<index_t>(it - p.indices.data());
  return !std::binary_search(drop.begin(), drop.end(), k);
}

// Histogram h[d] = number of items with degree d.
inline std::vector<size_type> histogram(const std::vector<size_type>& degree) {
  size_type top = 0;
  for (auto d : degree) top = std::max(top, d);
  std::vector<size_type> h(static_cast<std::size_t>(top) + 1, 0);
  for (auto d : degree) ++h[d];
  return h;
}

}  // namespace detail

// SET drop: every weight that is exactly zero, the round(ζ #positive) smallest positive
// weights and the round(ζ #negative) negative weights closest to zero (#positive and
// #negative count the nonzero ones). As in the original, which keeps only the weights above
// the smallest kept positive or below the largest kept negative, a zero never survives an
// update: a connection that cannot learn (a dead unit, a constant input) is replaced.
// Returns sorted storage indices.
template <class T>
std::vector<index_t> set_drop(const sparse_linear<T>& L, double zeta) {
  TS_REQUIRE(zeta >= 0 && zeta <= 1, "[SET] zeta must be a finite number in [0, 1], got ", zeta);
  std::vector<std::pair<T, index_t>> pos, neg;  // (value, k), O(nnz) scratch
  std::vector<index_t> drop;
  for (index_t k = 0; k < static_cast<index_t>(L.W.size()); ++k) {
    if (L.W[k] > T(0))
      pos.emplace_back(L.W[k], k);
    else if (L.W[k] < T(0))
      neg.emplace_back(-L.W[k], k);  // magnitude: closest to zero first
    else
      drop.push_back(k);  // an exact zero (±0)
  }
  for (auto* v : {&pos, &neg}) {
    const auto k = static_cast<std::size_t>(std::llround(zeta * static_cast<double>(v->size())));
    std::nth_element(v->begin(), v->begin() + k, v->end());  // (magnitude, index) order
    for (std::size_t r = 0; r < k; ++r) drop.push_back((*v)[r].second);
  }
  std::sort(drop.begin(), drop.end());
  return drop;
}

// RigL drop: the k stored weights of smallest |w| (ties: lower storage index first).
template <class T>
std::vector<index_t> magnitude_drop(const sparse_linear<T>& L, size_type k) {
  std::vector<std::pair<T, index_t>> mag(L.W.size());
  for (index_t e = 0; e < static_cast<index_t>(L.W.size()); ++e) mag[e] = {std::abs(L.W[e]), e};
  k = std::min<size_type>(k, static_cast<size_type>(mag.size()));
  std::nth_element(mag.begin(), mag.begin() + k, mag.end());
  std::vector<index_t> drop(static_cast<std::size_t>(k));
  for (size_type r = 0; r < k; ++r) drop[r] = mag[r].second;
  std::sort(drop.begin(), drop.end());
  return drop;
}

// SET grow: `count` positions drawn uniformly without replacement from those empty after the
// drop (just-dropped positions included), in the columns growth may use (all but removed
// inputs). Rejection sampling when at least a quarter of those positions is empty (O(count)
// expected draws); otherwise the layer is nearly dense, nnz is Θ(K·D), and the empty
// positions are listed and sampled from directly.
template <class T>
std::vector<std::int64_t> random_grow(const sparse_linear<T>& L, const std::vector<index_t>& drop,
                                      size_type count, rng& g) {
  const csr_pattern& p = L.pattern;
  const std::vector<index_t> cols = L.growable_columns();
  const auto A = static_cast<std::int64_t>(cols.size());
  const std::int64_t total = static_cast<std::int64_t>(p.rows) * A;  // growable positions
  // Removed columns hold no weight, so every survivor sits in a growable position.
  const std::int64_t empty = total - (p.nnz() - static_cast<size_type>(drop.size()));
  TS_REQUIRE(count <= empty, "[grow] ", count, " connections to grow but only ", empty,
             " empty positions in the layer's inputs");
  std::vector<std::int64_t> chosen;
  chosen.reserve(static_cast<std::size_t>(count));
  auto at = [&](std::int64_t r) {  // growable index r -> position i*D + j
    return (r / A) * p.cols + cols[static_cast<std::size_t>(r % A)];
  };
  if (4 * empty >= total) {
    std::unordered_set<std::int64_t> seen;
    seen.reserve(static_cast<std::size_t>(2 * count));
    while (static_cast<size_type>(chosen.size()) < count) {
      const auto pos = at(static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(total))));
      const auto i = static_cast<index_t>(pos / p.cols), j = static_cast<index_t>(pos % p.cols);
      if (detail::survives_at(p, drop, i, j) || !seen.insert(pos).second) continue;
      chosen.push_back(pos);
    }
  } else {
    std::vector<std::int64_t> free;
    free.reserve(static_cast<std::size_t>(empty));
    for (std::int64_t r = 0; r < total; ++r) {
      const auto pos = at(r);
      if (!detail::survives_at(p, drop, static_cast<index_t>(pos / p.cols),
                               static_cast<index_t>(pos % p.cols)))
        free.push_back(pos);
    }
    for (auto r : sample_positions(static_cast<std::int64_t>(free.size()), count, g))
      chosen.push_back(free[r]);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Rows i0 .. i0+rows-1 of the dense gradient DZ Xᵀ (K,D) of a batch, written row-major into
// G (rows,D). gradient_grow asks for the rows in order, in panels of the same sizes on every
// call with the same layer shape, so a data-parallel caller can sum each panel over its ranks
// (distributed.h) before it is scanned.
template <class T>
using gradient_panel = std::function<void(size_type i0, size_type rows, T* G)>;

// The panel of one batch: G = DZ[i0 : i0+rows, :] Xᵀ by GEMM, DZ (K,N) and X (D,N).
template <class T>
gradient_panel<T> batch_gradient_panel(const matrix<T>& DZ, const matrix<T>& X) {
  return [&DZ, &X](size_type i0, size_type rows, T* G) {
    const size_type D = X.rows, N = X.cols;
    // (rows,D) = (rows,N) (N,D)
    gemm<T>(trans::N, trans::T, rows, D, N, T(1), DZ.row(i0), N, X.ptr(), N, T(0), G, D);
  };
}

// Rows per panel of gradient_grow for a (K,D) layer: about panel_elements values per panel.
inline size_type gradient_panel_rows(size_type K, size_type D,
                                     size_type panel_elements = size_type(1) << 20) {
  return std::max<size_type>(1, std::min<size_type>(K, panel_elements / std::max<size_type>(D, 1)));
}

// RigL grow: the k positions not kept (survivors and removed inputs excluded, dropped ones
// eligible) with the largest |G(i,j)|, G = DZ Xᵀ the dense gradient of the current batch,
// produced row panel by row panel by `panel` and scanned into a running top-k min-heap.
// gradients (optional) receives G at the grown positions, aligned with the result.
template <class T>
std::vector<std::int64_t> gradient_grow(const sparse_linear<T>& L, const std::vector<index_t>& drop,
                                        size_type k, const gradient_panel<T>& panel,
                                        std::vector<T>* gradients = nullptr,
                                        size_type panel_elements = size_type(1) << 20) {
  const csr_pattern& p = L.pattern;
  const size_type K = p.rows, D = p.cols;
  // (|g|, position, g); "better" = larger magnitude, then smaller position; the heap top is
  // the worst kept.
  struct entry {
    T magnitude;
    std::int64_t position;
    T value;
  };
  auto better = [](const entry& a, const entry& b) {
    return a.magnitude > b.magnitude || (a.magnitude == b.magnitude && a.position < b.position);
  };
  std::priority_queue<entry, std::vector<entry>, decltype(better)> top(better);
  if (gradients) gradients->clear();
  if (k <= 0) return {};
  const size_type rows_per_panel = gradient_panel_rows(K, D, panel_elements);
  matrix<T> G(rows_per_panel, D);
  for (size_type i0 = 0; i0 < K; i0 += rows_per_panel) {
    const size_type P = std::min(rows_per_panel, K - i0);
    panel(i0, P, G.ptr());  // (P,D)
    for (size_type r = 0; r < P; ++r) {
      const auto i = static_cast<index_t>(i0 + r);
      const T* g = G.row(r);
      index_t k_row = p.indptr[i];
      const index_t end = p.indptr[i + 1];
      for (index_t j = 0; j < D; ++j) {
        while (k_row < end && p.indices[k_row] < j) ++k_row;
        if (k_row < end && p.indices[k_row] == j && !std::binary_search(drop.begin(), drop.end(), k_row))
          continue;                   // a kept weight
        if (L.excluded(j)) continue;  // a removed input
        const entry e{std::abs(g[j]), static_cast<std::int64_t>(i) * D + j, g[j]};
        if (static_cast<size_type>(top.size()) < k)
          top.push(e);
        else if (better(e, top.top())) {
          top.pop();
          top.push(e);
        }
      }
    }
  }
  std::vector<std::pair<std::int64_t, T>> grown;
  grown.reserve(top.size());
  while (!top.empty()) {
    grown.emplace_back(top.top().position, top.top().value);
    top.pop();
  }
  std::sort(grown.begin(), grown.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::int64_t> positions;
  positions.reserve(grown.size());
  for (const auto& [pos, g] : grown) {
    positions.push_back(pos);
    if (gradients) gradients->push_back(g);
  }
  return positions;
}

// The same from the batch's DZ (K,N) and the layer's input X (D,N).
template <class T>
std::vector<std::int64_t> gradient_grow(const sparse_linear<T>& L, const std::vector<index_t>& drop,
                                        size_type k, const matrix<T>& DZ, const matrix<T>& X,
                                        size_type panel_elements = size_type(1) << 20) {
  TS_ASSERT(DZ.rows == L.pattern.rows && X.rows == L.pattern.cols && DZ.cols == X.cols &&
            "gradient blocks do not match the layer");
  return gradient_grow<T>(L, drop, k, batch_gradient_panel(DZ, X), nullptr, panel_elements);
}

// Applies a drop (sorted storage indices) and a growth (sorted positions, none held by a
// survivor) with initial values `grown_values` (aligned with `grow`). A grown position that
// was just dropped is a new weight here (SET); callers that keep reselected weights (RigL)
// remove them from both lists first. Fills the counts and the degree histograms of `rec`.
template <class T>
void apply_topology_change(sparse_linear<T>& L, const std::vector<index_t>& drop,
                           const std::vector<std::int64_t>& grow, const std::vector<T>& grown_values,
                           topology_record& rec) {
  const csr_pattern& p = L.pattern;
  TS_ASSERT(grow.size() == grown_values.size());
  const size_type new_nnz =
      p.nnz() - static_cast<size_type>(drop.size()) + static_cast<size_type>(grow.size());
  csr_pattern q;
  q.rows = p.rows;
  q.cols = p.cols;
  q.indptr.assign(static_cast<std::size_t>(p.rows) + 1, 0);
  q.indices.reserve(static_cast<std::size_t>(new_nnz));
  avector<T> W;
  W.reserve(static_cast<std::size_t>(new_nnz));
  auto& s = L.sW;
  const bool has_m = !s.m.empty(), has_v = !s.v.empty(), has_age = !s.age.empty();
  avector<T> m, v;
  std::vector<std::uint16_t> age;
  if (has_m) m.reserve(new_nnz);
  if (has_v) v.reserve(new_nnz);
  if (has_age) age.reserve(new_nnz);
  std::size_t d = 0, gi = 0;
  for (index_t i = 0; i < p.rows; ++i) {
    index_t k = p.indptr[i];
    const index_t end = p.indptr[i + 1];
    const std::int64_t row_end = static_cast<std::int64_t>(i + 1) * p.cols;
    for (;;) {
      while (k < end && d < drop.size() && drop[d] == k) ++k, ++d;  // skip dropped entries
      const bool have_old = k < end;
      const bool have_new = gi < grow.size() && grow[gi] < row_end;
      if (!have_old && !have_new) break;
      const index_t j_new = have_new ? static_cast<index_t>(grow[gi] % p.cols) : p.cols;
      if (have_old && (!have_new || p.indices[k] < j_new)) {  // a survivor, moved as it is
        TS_ASSERT(!have_new || p.indices[k] != j_new);
        q.indices.push_back(p.indices[k]);
        W.push_back(L.W[k]);
        if (has_m) m.push_back(s.m[k]);
        if (has_v) v.push_back(s.v[k]);
        if (has_age) age.push_back(s.age[k]);
        ++k;
      } else {  // a new entry: initial value, zero state
        q.indices.push_back(j_new);
        W.push_back(grown_values[gi]);
        if (has_m) m.push_back(T(0));
        if (has_v) v.push_back(T(0));
        if (has_age) age.push_back(0);
        ++gi;
      }
    }
    q.indptr[i + 1] = static_cast<index_t>(q.indices.size());
  }
  TS_ASSERT(static_cast<size_type>(q.indices.size()) == new_nnz);
  rec.dropped_positions = detail::positions_of(p, drop);
  rec.grown_positions = grow;
  rec.dropped = static_cast<size_type>(drop.size());
  rec.grown = static_cast<size_type>(grow.size());
  s.m.swap(m);
  s.v.swap(v);
  s.age.swap(age);
  L.replace_topology(std::move(q), std::move(W), /*evolution=*/true);
  rec.nnz = L.nnz();
  rec.itop_rate = L.itop_rate();
  std::vector<size_type> out_deg(static_cast<std::size_t>(L.pattern.rows)),
      in_deg(static_cast<std::size_t>(L.pattern.cols), 0);
  for (index_t i = 0; i < L.pattern.rows; ++i) out_deg[i] = L.pattern.indptr[i + 1] - L.pattern.indptr[i];
  for (index_t j : L.pattern.indices) ++in_deg[j];
  rec.out_degree_histogram = detail::histogram(out_deg);
  rec.in_degree_histogram = detail::histogram(in_deg);
}

// Initial values of SET's new weights: uniform in ±√(6 / (n_in + n_out)) (dense fans), the
// layer's initializer (fan-in of the row, or the dense fan-in, as the layer was initialised),
// zero, or N(0, std²).
template <class T>
std::vector<T> new_weight_values(const sparse_linear<T>& L, const std::vector<std::int64_t>& grow,
                                 regrow_init how, rng& g, double std = 0.01) {
  TS_REQUIRE(std >= 0 && std::isfinite(std), "[SET] regrow_std must be a finite number >= 0, got ", std);
  std::vector<T> values(grow.size(), T(0));
  if (how == regrow_init::zero) return values;
  const csr_pattern& p = L.pattern;
  const double mean_col = static_cast<double>(p.nnz()) / std::max<index_t>(1, p.cols);
  const double limit = std::sqrt(6.0 / (static_cast<double>(p.rows) + static_cast<double>(p.cols)));
  for (std::size_t r = 0; r < grow.size(); ++r) {
    if (how == regrow_init::normal) {
      values[r] = static_cast<T>(std * g.normal());
      continue;
    }
    if (how == regrow_init::uniform) {
      values[r] = static_cast<T>(limit * (2.0 * g.uniform() - 1.0));
      continue;
    }
    const auto i = static_cast<index_t>(grow[r] / p.cols);
    const bool actual = L.fan == fan_mode::actual;
    const double fan_in = actual ? static_cast<double>(p.indptr[i + 1] - p.indptr[i]) : p.cols;
    values[r] = static_cast<T>(draw_weight(L.init, fan_in, actual ? mean_col : p.rows, g));
  }
  return values;
}

// One SET update of layer L: drop, grow uniformly, apply. `g` is the update's random stream.
template <class T>
topology_record set_update(sparse_linear<T>& L, double zeta, regrow_init how, rng& g, double std = 0.01) {
  topology_record rec;
  const auto drop = set_drop(L, zeta);
  const auto grow = random_grow(L, drop, static_cast<size_type>(drop.size()), g);
  const auto values = new_weight_values(L, grow, how, g, std);
  apply_topology_change(L, drop, grow, values, rec);
  return rec;
}

// One RigL update of a layer, chosen but not applied yet: the drop (sorted storage indices)
// and the growth (sorted positions) with reselected positions removed from both, and the
// gradient at each grown position.
template <class T>
struct rigl_change {
  std::vector<index_t> drop;
  std::vector<std::int64_t> grow;
  std::vector<T> grow_gradients;  // G(i,j) at grow, aligned
  size_type reselected = 0;
};

// Chooses RigL's change of layer L with drop fraction f: magnitude drop of
// k = floor(f nnz), growth at the k largest |G| of `panel` (gradient_grow), reselected
// positions (dropped and grown) kept. Changes nothing.
template <class T>
rigl_change<T> rigl_select(const sparse_linear<T>& L, double f, const gradient_panel<T>& panel) {
  TS_REQUIRE(f >= 0 && f <= 1, "[RigL] drop fraction must be in [0, 1], got ", f);
  rigl_change<T> c;
  const auto k = static_cast<size_type>(std::floor(f * static_cast<double>(L.nnz())));
  c.drop = magnitude_drop(L, k);
  c.grow = gradient_grow(L, c.drop, k, panel, &c.grow_gradients);
  // Positions both dropped and grown are reselected: neither dropped nor grown.
  const auto dropped_pos = detail::positions_of(L.pattern, c.drop);
  std::vector<std::int64_t> reselected;
  std::set_intersection(dropped_pos.begin(), dropped_pos.end(), c.grow.begin(), c.grow.end(),
                        std::back_inserter(reselected));
  c.reselected = static_cast<size_type>(reselected.size());
  if (!reselected.empty()) {
    std::vector<index_t> keep_drop;
    for (std::size_t r = 0; r < c.drop.size(); ++r)
      if (!std::binary_search(reselected.begin(), reselected.end(), dropped_pos[r]))
        keep_drop.push_back(c.drop[r]);
    std::vector<std::int64_t> keep_grow;
    std::vector<T> keep_gradients;
    for (std::size_t r = 0; r < c.grow.size(); ++r)
      if (!std::binary_search(reselected.begin(), reselected.end(), c.grow[r])) {
        keep_grow.push_back(c.grow[r]);
        keep_gradients.push_back(c.grow_gradients[r]);
      }
    c.drop.swap(keep_drop);
    c.grow.swap(keep_grow);
    c.grow_gradients.swap(keep_gradients);
  }
  return c;
}

// Applies a RigL change (new weights 0 with zero state). The layer's gradient DW on the new
// pattern is left to the caller (DW is all zero afterwards).
template <class T>
topology_record rigl_apply(sparse_linear<T>& L, const rigl_change<T>& c) {
  topology_record rec;
  apply_topology_change(L, c.drop, c.grow, std::vector<T>(c.grow.size(), T(0)), rec);
  rec.reselected = c.reselected;
  return rec;
}

// One RigL update of layer L with drop fraction f, from the current batch's DZ (K,N) and the
// layer's input X (D,N). Reselected positions keep value and optimizer state; new ones start
// at 0 with zero state. DW is recomputed on the new pattern (SDDMM) so it stays consistent.
template <class T>
topology_record rigl_update(sparse_linear<T>& L, double f, const matrix<T>& DZ, const matrix<T>& X) {
  TS_ASSERT(DZ.rows == L.pattern.rows && X.rows == L.pattern.cols && DZ.cols == X.cols &&
            "gradient blocks do not match the layer");
  const topology_record rec = rigl_apply(L, rigl_select(L, f, batch_gradient_panel(DZ, X)));
  sddmm(L.pattern, DZ, X, L.gradient());
  return rec;
}

// DW on the pattern after a RigL change, without the batch: survivors (and reselected
// entries) keep their gradient, grown entries take G at their positions. Call before
// rigl_apply (it reads the old pattern and DW); returns the new DW, aligned with the new
// pattern.
template <class T>
avector<T> rigl_gradient_after(const sparse_linear<T>& L, const rigl_change<T>& c) {
  const csr_pattern& p = L.pattern;
  TS_ASSERT(L.DW.size() == static_cast<std::size_t>(p.nnz()) && "the step's DW (an unfused backward)");
  avector<T> DW;
  DW.reserve(static_cast<std::size_t>(p.nnz()) - c.drop.size() + c.grow.size());
  std::size_t d = 0, gi = 0;
  for (index_t i = 0; i < p.rows; ++i) {  // the merge of apply_topology_change
    index_t k = p.indptr[i];
    const index_t end = p.indptr[i + 1];
    const std::int64_t row_end = static_cast<std::int64_t>(i + 1) * p.cols;
    for (;;) {
      while (k < end && d < c.drop.size() && c.drop[d] == k) ++k, ++d;
      const bool have_old = k < end;
      const bool have_new = gi < c.grow.size() && c.grow[gi] < row_end;
      if (!have_old && !have_new) break;
      const index_t j_new = have_new ? static_cast<index_t>(c.grow[gi] % p.cols) : p.cols;
      if (have_old && (!have_new || p.indices[k] < j_new))
        DW.push_back(L.DW[k++]);
      else
        DW.push_back(c.grow_gradients[gi++]);
    }
  }
  return DW;
}

// One RigL update of layer L with drop fraction f from gradient panels (a data-parallel
// caller's panels summed over the ranks): as above; DW on the new pattern is the layer's DW
// for survivors and the panel's gradient for grown entries (rigl_gradient_after), so no
// batch is needed afterwards.
template <class T>
topology_record rigl_update(sparse_linear<T>& L, double f, const gradient_panel<T>& panel) {
  const rigl_change<T> c = rigl_select(L, f, panel);
  avector<T> DW = rigl_gradient_after(L, c);
  topology_record rec = rigl_apply(L, c);
  std::copy(DW.begin(), DW.end(), L.gradient());
  return rec;
}

// Removes the input neurons `cols` (sorted, unique) of layer L, keeping nnz: drops every
// stored weight in those columns, marks them excluded from all later growth, and grows as
// many connections at empty positions of the other columns: uniformly at random with SET's
// new-weight values `how` (σ = std for normal) when DZ is null, else at the largest |DZ Xᵀ| of the batch as
// RigL does (new weights 0, DW recomputed on the new pattern).
template <class T>
topology_record remove_inputs(sparse_linear<T>& L, const std::vector<index_t>& cols, rng& g, regrow_init how,
                              double std, const matrix<T>* DZ = nullptr, const matrix<T>* X = nullptr) {
  const csr_pattern& p = L.pattern;
  std::vector<std::uint8_t> excluded = L.excluded_inputs;
  if (excluded.empty()) excluded.assign(static_cast<std::size_t>(p.cols), 0);
  for (index_t j : cols) {
    TS_REQUIRE(j >= 0 && j < p.cols, "[remove_inputs] input ", j, " is outside [0, ", p.cols, ")");
    TS_REQUIRE(!excluded[j], "[remove_inputs] input ", j, " was removed already");
    excluded[j] = 1;
  }
  std::vector<index_t> drop;
  for (index_t k = 0; k < static_cast<index_t>(p.indices.size()); ++k)
    if (excluded[p.indices[k]] && !L.excluded(p.indices[k])) drop.push_back(k);
  std::int64_t kept_inputs = 0;
  for (auto e : excluded) kept_inputs += e ? 0 : 1;
  const std::int64_t room =
      static_cast<std::int64_t>(p.rows) * kept_inputs - (p.nnz() - static_cast<size_type>(drop.size()));
  TS_REQUIRE(static_cast<std::int64_t>(drop.size()) <= room, "[remove_inputs] the ", drop.size(),
             " connections of the removed inputs do not fit in the ", room, " empty positions of the ",
             kept_inputs, " inputs left");
  L.excluded_inputs.swap(excluded);
  topology_record rec;
  const auto count = static_cast<size_type>(drop.size());
  if (DZ == nullptr) {
    const auto grow = random_grow(L, drop, count, g);
    apply_topology_change(L, drop, grow, new_weight_values(L, grow, how, g, std), rec);
  } else {
    const auto grow = gradient_grow(L, drop, count, *DZ, *X);
    apply_topology_change(L, drop, grow, std::vector<T>(grow.size(), T(0)), rec);
    sddmm(L.pattern, *DZ, *X, L.gradient());
  }
  return rec;
}

}  // namespace truesparse
