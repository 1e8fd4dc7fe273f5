// The interface every layer of a network implements: a struct with its buffers and three
// verbs. Examples are columns (feature-major): X (D,N) in, Y (K,N) out.
//   forward   Y = f(X)                         (train = batch statistics, dropout masks)
//   backward  parameter gradients, and DX from DY and the X, Y of the last forward
//   optimize  one optimizer step on the layer's parameters
#pragma once

#include <vector>

#include "truesparse/matrix.h"
#include "truesparse/optimizer.h"

namespace truesparse {

// A named non-trainable array of a layer (batch norm's running statistics), for inspection.
template <class T>
struct statistic {
  const char* name;
  T* value;
  size_type size;
};

// A parameter array of a layer, for inspection and for the optimizer.
template <class T>
struct parameter {
  const char* name;
  T* value;
  T* gradient;
  size_type size;
  optimizer_state<T>* state;
};

template <class T>
struct linear_layer;

template <class T>
struct layer {
  virtual ~layer() = default;
  virtual const char* kind() const = 0;
  virtual void forward(const matrix<T>& X, matrix<T>& Y, bool train) = 0;
  // DX may be null (nothing before this layer needs it); DX never aliases DY.
  virtual void backward(const matrix<T>& X, const matrix<T>& Y, const matrix<T>& DY, matrix<T>* DX) = 0;
  // The layer's trainable arrays other than a linear layer's W (which linear_layer handles).
  virtual std::vector<parameter<T>> parameters() { return {}; }
  virtual void optimize(const optimizer_config& c) {
    for (auto& p : parameters()) optimizer_step(c, *p.state, p.value, p.gradient, p.size);
  }
  // The layer's non-trainable state arrays (running statistics); none by default.
  virtual std::vector<statistic<T>> statistics() { return {}; }
  // This layer as a linear one, or null (no dynamic_cast at call sites).
  virtual linear_layer<T>* as_linear() { return nullptr; }
  virtual const linear_layer<T>* as_linear() const { return nullptr; }
  // Number of outputs for a given number of inputs (shape-preserving layers return D).
  virtual size_type outputs(size_type D) const { return D; }
};

}  // namespace truesparse
