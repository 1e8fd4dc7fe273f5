// The CSR pattern of a sparse layer (row pointers + column indices, 32-bit for MKL LP64).
// Values, gradients and optimizer state are separate arrays aligned with the pattern: entry k
// of each belongs to position (row of k, indices[k]).
#pragma once

#include <algorithm>
#include <numeric>
#include <string>

#include "truesparse/common.h"
#include "truesparse/random.h"

namespace truesparse {

struct csr_pattern {
  index_t rows = 0;
  index_t cols = 0;
  std::vector<index_t> indptr{0};  // (rows + 1)
  std::vector<index_t> indices;    // (nnz), sorted and unique within each row

  size_type nnz() const { return static_cast<size_type>(indices.size()); }
};

// Checks every CSR invariant; throws std::invalid_argument naming `op` and the first fault.
inline void validate(const csr_pattern& p, const std::string& op) {
  TS_REQUIRE(p.rows >= 0 && p.cols >= 0, "[", op, "] negative shape (", p.rows, ", ", p.cols, ")");
  TS_REQUIRE(p.indptr.size() == static_cast<std::size_t>(p.rows) + 1, "[", op, "] indptr has ",
             p.indptr.size(), " entries but the matrix has ", p.rows, " rows (expected ", p.rows + 1, ")");
  TS_REQUIRE(p.indptr[0] == 0, "[", op, "] indptr[0] is ", p.indptr[0], ", expected 0");
  TS_REQUIRE(p.indptr[p.rows] == p.nnz(), "[", op, "] indptr[-1] is ", p.indptr[p.rows], " but there are ",
             p.nnz(), " column indices");
  for (index_t i = 0; i < p.rows; ++i) {
    TS_REQUIRE(p.indptr[i] <= p.indptr[i + 1], "[", op, "] indptr decreases at row ", i);
    for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) {
      const index_t j = p.indices[k];
      TS_REQUIRE(j >= 0 && j < p.cols, "[", op, "] column index ", j, " in row ", i, " is outside [0, ",
                 p.cols, ")");
      TS_REQUIRE(k == p.indptr[i] || p.indices[k - 1] < j, "[", op, "] row ", i,
                 " has unsorted or duplicate column index ", j);
    }
  }
}

// Builds the pattern of the transpose and the permutation that maps it to the original:
// values_t[k] = values[perm[k]] for every stored entry k of the transpose. O(nnz + cols).
inline void transpose(const csr_pattern& p, csr_pattern& t, std::vector<index_t>& perm) {
  t.rows = p.cols;
  t.cols = p.rows;
  t.indptr.assign(static_cast<std::size_t>(p.cols) + 1, 0);
  t.indices.resize(p.indices.size());
  perm.resize(p.indices.size());
  for (index_t j : p.indices) ++t.indptr[j + 1];
  for (index_t j = 0; j < p.cols; ++j) t.indptr[j + 1] += t.indptr[j];
  std::vector<index_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (index_t i = 0; i < p.rows; ++i)  // rows in increasing order, so each column of the
    for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k) {  // transpose comes out sorted
      const index_t dst = next[p.indices[k]]++;
      t.indices[dst] = i;
      perm[dst] = k;
    }
}

// Builds a pattern from sorted unique positions i*cols + j.
inline csr_pattern pattern_from_positions(index_t rows, index_t cols,
                                          const std::vector<std::int64_t>& positions) {
  csr_pattern p;
  p.rows = rows;
  p.cols = cols;
  p.indptr.assign(static_cast<std::size_t>(rows) + 1, 0);
  p.indices.resize(positions.size());
  for (std::size_t k = 0; k < positions.size(); ++k) {
    const std::int64_t pos = positions[k];
    p.indices[k] = static_cast<index_t>(pos % cols);
    ++p.indptr[pos / cols + 1];
  }
  for (index_t i = 0; i < rows; ++i) p.indptr[i + 1] += p.indptr[i];
  return p;
}

// k distinct positions drawn uniformly from [0, n), returned sorted. Draws i.i.d. uniform
// positions and keeps the first k distinct ones in draw order (= sampling without
// replacement), so cost is O(k log k) and no pass over all n positions is made. When k > n/2
// the complement is sampled instead, which keeps the number of draws O(k).
inline std::vector<std::int64_t> sample_positions(std::int64_t n, std::int64_t k, rng& g) {
  TS_REQUIRE(k >= 0 && k <= n, "[sample_positions] cannot choose ", k, " of ", n, " positions");
  const bool complement = k > n / 2;
  const std::int64_t m = complement ? n - k : k;
  std::vector<std::pair<std::int64_t, std::int64_t>> draws;  // (position, draw order)
  std::vector<std::int64_t> chosen;
  std::int64_t order = 0;
  while (static_cast<std::int64_t>(chosen.size()) < m) {
    const std::int64_t missing = m - static_cast<std::int64_t>(chosen.size());
    // Oversample a little so one or two rounds usually suffice.
    const std::int64_t extra = missing + missing / 8 + 16;
    for (std::int64_t r = 0; r < extra; ++r)
      draws.emplace_back(static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(n))), order++);
    std::sort(draws.begin(), draws.end());
    draws.erase(std::unique(draws.begin(), draws.end(),
                            [](const auto& a, const auto& b) { return a.first == b.first; }),
                draws.end());  // keeps the earliest draw of each position
    std::vector<std::pair<std::int64_t, std::int64_t>> by_order(draws.begin(), draws.end());
    std::sort(by_order.begin(), by_order.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    if (static_cast<std::int64_t>(by_order.size()) > m) by_order.resize(m);
    chosen.clear();
    for (const auto& d : by_order) chosen.push_back(d.first);
    // keep `draws` (sorted by position) for the next round
  }
  std::sort(chosen.begin(), chosen.end());
  if (!complement) return chosen;
  std::vector<std::int64_t> result;
  result.reserve(static_cast<std::size_t>(k));
  std::size_t c = 0;
  // Complement of a sorted set of m positions: O(n) only when k > n/2, i.e. when the
  // result itself is O(n).
  for (std::int64_t pos = 0; pos < n; ++pos) {
    if (c < chosen.size() && chosen[c] == pos) {
      ++c;
      continue;
    }
    result.push_back(pos);
  }
  return result;
}

// A uniformly random pattern with exactly nnz stored positions.
inline csr_pattern random_pattern(index_t rows, index_t cols, size_type nnz, rng& g) {
  const std::int64_t n = static_cast<std::int64_t>(rows) * cols;
  return pattern_from_positions(rows, cols, sample_positions(n, nnz, g));
}

}  // namespace truesparse
