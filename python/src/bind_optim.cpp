// Bindings for losses, optimizers and learning-rate schedules (the Python classes in
// truesparse.optim fill in an OptimizerConfig).
#include <pybind11/stl.h>

#include "bindings.h"
#include "truesparse/loss.h"
#include "truesparse/optimizer.h"

namespace truesparse::python {

void init_optim(py::module_& m) {
  py::enum_<loss_kind>(m, "Loss")
      .value("softmax_cross_entropy", loss_kind::softmax_cross_entropy)
      .value("squared_error", loss_kind::squared_error)
      .value("cross_entropy", loss_kind::cross_entropy)
      .value("negative_log_likelihood", loss_kind::negative_log_likelihood)
      .value("logistic_cross_entropy", loss_kind::logistic_cross_entropy);
  py::enum_<schedule_kind>(m, "ScheduleKind")
      .value("constant", schedule_kind::constant)
      .value("step", schedule_kind::step)
      .value("multistep", schedule_kind::multistep)
      .value("exponential", schedule_kind::exponential)
      .value("cosine", schedule_kind::cosine);
  py::class_<lr_schedule>(m, "LRSchedule")
      .def(py::init<>())
      .def_readwrite("kind", &lr_schedule::kind)
      .def_readwrite("step_size", &lr_schedule::step_size)
      .def_readwrite("gamma", &lr_schedule::gamma)
      .def_readwrite("milestones", &lr_schedule::milestones)
      .def_readwrite("t_max", &lr_schedule::t_max)
      .def_readwrite("eta_min", &lr_schedule::eta_min)
      .def_readwrite("warmup_steps", &lr_schedule::warmup_steps)
      .def_readwrite("warmup_start_factor", &lr_schedule::warmup_start_factor)
      .def("rate", &lr_schedule::rate, py::arg("lr"), py::arg("t"));
  py::enum_<optimizer_kind>(m, "OptimizerKind")
      .value("sgd", optimizer_kind::sgd)
      .value("adam", optimizer_kind::adam)
      .value("adamw", optimizer_kind::adamw);
  py::class_<optimizer_config>(m, "OptimizerConfig")
      .def(py::init<>())
      .def_readwrite("kind", &optimizer_config::kind)
      .def_readwrite("lr", &optimizer_config::lr)
      .def_readwrite("momentum", &optimizer_config::momentum)
      .def_readwrite("nesterov", &optimizer_config::nesterov)
      .def_readwrite("weight_decay", &optimizer_config::weight_decay)
      .def_readwrite("beta1", &optimizer_config::beta1)
      .def_readwrite("beta2", &optimizer_config::beta2)
      .def_readwrite("eps", &optimizer_config::eps)
      .def_readwrite("new_weight_warmup", &optimizer_config::new_weight_warmup)
      .def_readwrite("schedule", &optimizer_config::schedule)
      .def_readwrite("schedule_start", &optimizer_config::schedule_start);
}

}  // namespace truesparse::python
