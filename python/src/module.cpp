// The private extension module truesparse._core: joins the per-concept bindings (bindings.h).
#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "truesparse C++ core (private; use the truesparse package)";
  truesparse::python::init_runtime(m);
  truesparse::python::init_layers(m);
  truesparse::python::init_optim(m);
  truesparse::python::init_evolution(m);
  truesparse::python::init_model(m);
}
