// Bindings for threads, library information and density allocation.
#include <pybind11/stl.h>

#include "bindings.h"
#include "truesparse/density.h"
#include "truesparse/runtime.h"

namespace truesparse::python {

void init_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Set the number of threads of MKL and of truesparse's own OpenMP loops.");
  m.def("get_num_threads", &get_num_threads);
  m.def("mkl_version", &mkl_version);
  m.def("er_densities", &er_densities, py::arg("sizes"), py::arg("density"), py::arg("power") = 1.0);
  m.def("epsilon_densities", &epsilon_densities, py::arg("sizes"), py::arg("epsilon"));
  m.def("nnz_for_density", &nnz_for_density, py::arg("density"), py::arg("n_in"), py::arg("n_out"));
}

}  // namespace truesparse::python
