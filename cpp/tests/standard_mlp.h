// The standard MLP as a network description, for the C++ tests and benchmarks: linear layers
// of the given sizes and densities, joined by one hidden activation. (Python's truesparse.MLP
// builds the same layer list; the library itself has one builder, network_options.layers.)
#pragma once

#include "truesparse/network.h"
#include "truesparse/train.h"

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

// M random examples of D normal features and labels in [0, classes), as a dataset.
template <class T>
struct labelled_data {
  std::vector<T> X;
  std::vector<std::int32_t> y;
  dataset<T> d;
  labelled_data(size_type M, size_type D, std::uint64_t classes, std::uint64_t seed)
      : X(static_cast<std::size_t>(M * D)), y(static_cast<std::size_t>(M)) {
    rng g(seed);
    for (auto& x : X) x = static_cast<T>(g.normal());
    for (auto& v : y) v = static_cast<std::int32_t>(g.below(classes));
    d = dataset<T>{X.data(), M, D, y.data(), nullptr, 0};
  }
};

}  // namespace truesparse::testing
