// The private extension module truesparse._core is bound one concept per file, each with its
// init_* function joined in module.cpp:
//   bind_runtime.cpp    threads, library information, density allocation
//   bind_layers.cpp     layer specs and their enums (activations, initialisation, backend)
//   bind_optim.cpp      losses, optimizers and learning-rate schedules
//   bind_evolution.cpp  SET/RigL options and topology records
//   bind_model.cpp      the network (float32 and float64) and its training loop
// A binding converts arguments and results and checks array shapes; the work is in the core.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <vector>

#include "truesparse/common.h"

namespace truesparse::python {

namespace py = pybind11;

void init_runtime(py::module_& m);
void init_layers(py::module_& m);
void init_optim(py::module_& m);
void init_evolution(py::module_& m);
void init_model(py::module_& m);

template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;
using labels_array = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;

// A NumPy array holding a copy of p[0 .. prod(shape)).
template <class T>
py::array_t<T> copy_out(const T* p, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::copy(p, p + a.size(), a.mutable_data());
  return a;
}

// A 1-D NumPy copy of a vector.
template <class V>
auto copy_out(const V& v) {
  return copy_out(v.data(), {static_cast<py::ssize_t>(v.size())});
}

}  // namespace truesparse::python
