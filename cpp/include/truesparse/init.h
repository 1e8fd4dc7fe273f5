// Weight initializers. Dense formulas use the layer's full fan-in / fan-out; for sparse
// layers fan_mode::actual uses each row's number of stored entries as its fan-in (and the
// mean column count nnz/D as fan-out), so a 1%-dense layer does not start 10x too small.
#pragma once

#include <cmath>

#include "truesparse/csr.h"
#include "truesparse/random.h"

namespace truesparse {

enum class init_kind { xavier_uniform, xavier_normal, he_normal, he_uniform };
enum class fan_mode { actual, dense };

// Draws one weight for an entry whose row has fan_in inputs (fan_out for Xavier).
inline double draw_weight(init_kind kind, double fan_in, double fan_out, rng& g) {
  fan_in = std::max(fan_in, 1.0);
  fan_out = std::max(fan_out, 1.0);
  switch (kind) {
    case init_kind::xavier_uniform: {
      const double a = std::sqrt(6.0 / (fan_in + fan_out));
      return a * (2.0 * g.uniform() - 1.0);
    }
    case init_kind::xavier_normal: return std::sqrt(2.0 / (fan_in + fan_out)) * g.normal();
    case init_kind::he_uniform: {
      const double a = std::sqrt(6.0 / fan_in);
      return a * (2.0 * g.uniform() - 1.0);
    }
    case init_kind::he_normal:
    default: return std::sqrt(2.0 / fan_in) * g.normal();
  }
}

// Values for the stored entries of p, in storage order.
template <class T>
void init_values(const csr_pattern& p, init_kind kind, fan_mode mode, rng& g, T* values) {
  const double mean_col = p.cols > 0 ? static_cast<double>(p.nnz()) / p.cols : 1.0;
  for (index_t i = 0; i < p.rows; ++i) {
    const double fan_in = mode == fan_mode::actual ? p.indptr[i + 1] - p.indptr[i] : p.cols;
    const double fan_out = mode == fan_mode::actual ? mean_col : p.rows;
    for (index_t k = p.indptr[i]; k < p.indptr[i + 1]; ++k)
      values[k] = static_cast<T>(draw_weight(kind, fan_in, fan_out, g));
  }
}

}  // namespace truesparse
