// The standard MLP as a network description, for the C++ tests and benchmarks: linear layers
// of the given sizes and densities, joined by one hidden activation. (Python's truesparse.MLP
// builds the same layer list; the library itself has one builder, network_options.layers.)
#pragma once

#include "truesparse/network.h"

namespace truesparse::testing {

// sizes D_0..D_L, one density per linear layer (1 = dense).
inline network_options standard_mlp(const std::vector<index_t>& sizes, const std::vector<double>& densities,
                                    activation_kind act = activation_kind::relu, double alpha = 0.01) {
  check_sizes(sizes, "standard_mlp");
  const std::size_t L = sizes.size() - 1;
  TS_REQUIRE(densities.size() == L, "[standard_mlp] ", densities.size(), " densities given for ", L,
             " layers");
  network_options o;
  o.inputs = sizes.front();
  for (std::size_t l = 0; l < L; ++l) {
    layer_spec s;
    s.size = sizes[l + 1];
    s.density = densities[l];
    o.layers.push_back(s);
    if (l + 1 < L) {
      layer_spec a;
      a.kind = layer_kind::activation;
      a.activation = act;
      a.alpha = alpha;
      o.layers.push_back(a);
    }
  }
  return o;
}

}  // namespace truesparse::testing
