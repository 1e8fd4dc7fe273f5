// Bindings for topology evolution: SET and RigL options (the Python classes in
// truesparse.evolution fill them in), RigL's drop-fraction schedule and the records of a change.
#include <pybind11/stl.h>

#include "bindings.h"
#include "truesparse/train.h"

namespace truesparse::python {

void init_evolution(py::module_& m) {
  py::enum_<regrow_init>(m, "RegrowInit")
      .value("uniform", regrow_init::uniform)
      .value("layer", regrow_init::layer)
      .value("zero", regrow_init::zero)
      .value("normal", regrow_init::normal);
  py::enum_<drop_schedule>(m, "DropSchedule")
      .value("cosine", drop_schedule::cosine)
      .value("constant", drop_schedule::constant)
      .value("exponential", drop_schedule::exponential);
  py::class_<set_options>(m, "SETOptions")
      .def(py::init<>())
      .def_readwrite("zeta", &set_options::zeta)
      .def_readwrite("init", &set_options::init)
      .def_readwrite("regrow_std", &set_options::regrow_std)
      .def_readwrite("delta_t", &set_options::delta_t);
  py::class_<rigl_options>(m, "RigLOptions")
      .def(py::init<>())
      .def_readwrite("alpha", &rigl_options::alpha)
      .def_readwrite("delta_t", &rigl_options::delta_t)
      .def_readwrite("t_begin", &rigl_options::t_begin)
      .def_readwrite("t_end", &rigl_options::t_end)
      .def_readwrite("schedule", &rigl_options::schedule)
      .def_readwrite("exponent", &rigl_options::exponent)
      .def_readwrite("skip_optimizer_step", &rigl_options::skip_optimizer_step);
  m.def(
      "input_noise",  // the noise train_epoch adds to batch `batch` of epoch `epoch`, (D, B)
      [](std::uint64_t seed, std::uint64_t epoch, std::uint64_t batch, size_type rows, size_type cols,
         double sigma) {
        matrix<double> X(rows, cols);
        std::fill(X.data.begin(), X.data.end(), 0.0);
        add_input_noise(X, sigma, seed, epoch, batch);
        return copy_out(X.ptr(), {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
      },
      py::arg("seed"), py::arg("epoch"), py::arg("batch"), py::arg("rows"), py::arg("cols"),
      py::arg("sigma"));
  m.def("drop_fraction", &drop_fraction, py::arg("schedule"), py::arg("alpha"), py::arg("t"),
        py::arg("t_end"), py::arg("exponent") = 2.0);
  py::class_<topology_record>(m, "TopologyRecord")
      .def_readonly("layer", &topology_record::layer)
      .def_readonly("step", &topology_record::step)
      .def_readonly("nnz", &topology_record::nnz)
      .def_readonly("dropped", &topology_record::dropped)
      .def_readonly("grown", &topology_record::grown)
      .def_readonly("reselected", &topology_record::reselected)
      .def_readonly("itop_rate", &topology_record::itop_rate)
      .def_property_readonly("dropped_positions",
                             [](const topology_record& r) { return copy_out(r.dropped_positions); })
      .def_property_readonly("grown_positions",
                             [](const topology_record& r) { return copy_out(r.grown_positions); })
      .def_property_readonly("in_degree_histogram",
                             [](const topology_record& r) { return copy_out(r.in_degree_histogram); })
      .def_property_readonly("out_degree_histogram",
                             [](const topology_record& r) { return copy_out(r.out_degree_histogram); });
}

}  // namespace truesparse::python
