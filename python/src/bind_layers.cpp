// Bindings for layer specifications: what kind of layer, and its settings (the Python specs
// in truesparse.layers fill these in), with the activation, initialisation and backend enums.
#include <pybind11/stl.h>

#include "bindings.h"
#include "truesparse/network.h"

namespace truesparse::python {
namespace {

// An integer field of a spec from a Python int or NumPy integer (not a bool or a float); one
// beyond the 64-bit range is refused here with the figure.
size_type spec_integer(const py::object& v, const char* op, const char* name) {
  if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr()))
    throw py::type_error(msg("[", op, "] ", name, " must be an integer, got ", std::string(py::repr(v))));
  const py::int_ n = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  if (!n) throw py::error_already_set();
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(n.ptr(), &overflow);
  TS_REQUIRE(overflow <= 0, "[", op, "] ", name, " is ", std::string(py::str(n)), "; a layer has at most ",
             with_commas(max_layer_size), " inputs or outputs (32-bit indices)");
  TS_REQUIRE(overflow == 0, "[", op, "] ", name, " is ", std::string(py::str(n)), ", it must be >= 1");
  return value;
}

}  // namespace

void init_layers(py::module_& m) {
  py::enum_<activation_kind>(m, "Activation")
      .value("relu", activation_kind::relu)
      .value("leaky_relu", activation_kind::leaky_relu)
      .value("all_relu", activation_kind::all_relu)
      .value("sigmoid", activation_kind::sigmoid)
      .value("tanh", activation_kind::tanh)
      .value("identity", activation_kind::identity);
  py::enum_<layer_kind>(m, "LayerKind")
      .value("linear", layer_kind::linear)
      .value("activation", layer_kind::activation)
      .value("softmax", layer_kind::softmax)
      .value("log_softmax", layer_kind::log_softmax)
      .value("batch_norm", layer_kind::batch_norm)
      .value("dropout", layer_kind::dropout)
      .value("srelu", layer_kind::srelu)
      .value("affine", layer_kind::affine);
  py::class_<layer_spec>(m, "LayerSpec")
      .def(py::init<>())
      .def_readwrite("kind", &layer_spec::kind)
      .def_property(  // any Python integer: one too large for the 32-bit indices is refused,
                      // naming its layer, when the network is built (memory.h)
          "size", [](const layer_spec& s) { return s.size; },
          [](layer_spec& s, const py::object& v) { s.size = spec_integer(v, "Linear", "size"); })
      .def_readwrite("density", &layer_spec::density)
      .def_readwrite("activation", &layer_spec::activation)
      .def_readwrite("alpha", &layer_spec::alpha)
      .def_readwrite("p", &layer_spec::p)
      .def_readwrite("momentum", &layer_spec::momentum)
      .def_readwrite("eps", &layer_spec::eps)
      .def_property(
          "srelu", [](const layer_spec& s) { return std::vector<double>(s.srelu, s.srelu + 4); },
          [](layer_spec& s, const std::vector<double>& v) {
            TS_REQUIRE(v.size() == 4, "[SReLU] needs 4 values (tl, al, tr, ar), got ", v.size());
            std::copy(v.begin(), v.end(), s.srelu);
          });
  py::enum_<init_kind>(m, "Init")
      .value("xavier_uniform", init_kind::xavier_uniform)
      .value("xavier_normal", init_kind::xavier_normal)
      .value("he_normal", init_kind::he_normal)
      .value("he_uniform", init_kind::he_uniform);
  py::enum_<fan_mode>(m, "FanIn").value("actual", fan_mode::actual).value("dense", fan_mode::dense);
  py::enum_<sparse_backend>(m, "Backend")
      .value("mkl", sparse_backend::mkl)
      .value("native", sparse_backend::native);
  py::enum_<operand_dtype>(m, "OperandDtype")
      .value("float32", operand_dtype::float32)
      .value("bfloat16", operand_dtype::bfloat16);
}

}  // namespace truesparse::python
