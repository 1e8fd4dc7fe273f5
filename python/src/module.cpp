// The private extension module truesparse._core: joins the per-area bindings.
#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "truesparse C++ core (private; use the truesparse package)";
  truesparse::python::init_runtime(m);
  truesparse::python::init_model(m);
}
