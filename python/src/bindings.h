// Declarations of the per-area binding functions joined in module.cpp.
#pragma once

#include <pybind11/pybind11.h>

namespace truesparse::python {

void init_runtime(pybind11::module_& m);
void init_model(pybind11::module_& m);

}  // namespace truesparse::python
