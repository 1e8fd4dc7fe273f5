// Bindings for the MLP (float32 and float64 instances), its layers' arrays and the training
// loop. Arrays are converted at the boundary and their shapes checked here; the GIL is
// released while C++ works, and Ctrl-C is polled between batches.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <numeric>

#include "bindings.h"
#include "truesparse/train.h"

namespace py = pybind11;

namespace truesparse::python {
namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;
using labels_array = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>;

template <class T>
py::array_t<T> copy_out(const T* p, std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::copy(p, p + a.size(), a.mutable_data());
  return a;
}

template <class T>
void check_2d(const carray<T>& a, const char* op, const char* name) {
  TS_REQUIRE(a.ndim() == 2, "[", op, "] ", name, " must be 2-D, got ", a.ndim(), " dimensions");
}

// A data set view over user arrays (labels or targets may be None).
template <class T>
dataset<T> make_dataset(const carray<T>& X, const std::optional<labels_array>& y,
                        const std::optional<carray<T>>& targets, const char* op) {
  check_2d(X, op, "X");
  dataset<T> d;
  d.X = X.data();
  d.M = X.shape(0);
  d.D = X.shape(1);
  if (y) {
    TS_REQUIRE(y->ndim() == 1 && y->shape(0) == d.M, "[", op, "] y has shape (",
               y->ndim() ? y->shape(0) : 0, ") but X has ", d.M, " rows");
    d.labels = y->data();
  }
  if (targets) {
    check_2d(*targets, op, "targets");
    TS_REQUIRE(targets->shape(0) == d.M, "[", op, "] targets have ", targets->shape(0),
               " rows but X has ", d.M);
    d.targets = targets->data();
    d.K = targets->shape(1);
  }
  return d;
}

template <class T>
void bind_mlp(py::module_& m, const char* name) {
  using model = mlp<T>;
  py::class_<model>(m, name)
      .def(py::init([](std::vector<index_t> sizes, std::vector<double> densities,
                       activation_kind act, double alpha, index_t inputs,
                       std::vector<layer_spec> layers, loss_kind loss, double label_smoothing,
                       init_kind init, fan_mode fan, std::uint64_t seed, sparse_backend backend) {
             mlp_options o;
             o.sizes = std::move(sizes);
             o.densities = std::move(densities);
             o.activation = act;
             o.alpha = alpha;
             o.inputs = inputs;
             o.layers = std::move(layers);
             o.loss = loss;
             o.label_smoothing = label_smoothing;
             o.init = init;
             o.fan = fan;
             o.seed = seed;
             o.backend = backend;
             return std::make_unique<model>(o);
           }),
           py::arg("sizes"), py::arg("densities"), py::arg("activation"), py::arg("alpha"),
           py::arg("inputs"), py::arg("layers"), py::arg("loss"), py::arg("label_smoothing"),
           py::arg("init"), py::arg("fan"), py::arg("seed"), py::arg("backend"))
      .def_property_readonly("num_modules", [](const model& s) { return s.modules.size(); })
      .def_property_readonly("outputs", [](const model& s) { return s.outputs(); })
      .def("module_kind", [](const model& s, std::size_t m) { return std::string(s.modules.at(m)->kind()); })
      .def("module_of_layer", [](const model& s, std::size_t l) { return s.module_of.at(l); })
      .def("module_parameters",  // {name: (value copy, gradient copy)} of a non-linear layer
           [](model& s, std::size_t m) {
             py::dict out;
             for (auto& p : s.modules.at(m)->parameters())
               out[p.name] = py::make_tuple(copy_out(p.value, {static_cast<py::ssize_t>(p.size)}),
                                            copy_out(p.gradient, {static_cast<py::ssize_t>(p.size)}));
             return out;
           })
      .def("set_module_parameter",
           [](model& s, std::size_t m, const std::string& name, const carray<T>& value) {
             for (auto& p : s.modules.at(m)->parameters())
               if (name == p.name) {
                 TS_REQUIRE(value.ndim() == 1 && value.shape(0) == p.size, "[", s.modules[m]->kind(),
                            ".set] ", name, " needs ", p.size, " values, got ", value.size());
                 std::copy(value.data(), value.data() + p.size, p.value);
                 return;
               }
             throw std::invalid_argument(msg("[", s.modules.at(m)->kind(), ".set] no parameter named ", name));
           })
      .def("module_statistics",  // batch norm's running mean and variance
           [](model& s, std::size_t m) {
             auto* bn = dynamic_cast<batch_norm_layer<T>*>(s.modules.at(m).get());
             TS_REQUIRE(bn, "[MLP] layer ", m, " is not a batch norm layer");
             const auto D = static_cast<py::ssize_t>(bn->running_mean.size());
             return py::make_tuple(copy_out(bn->running_mean.data(), {D}), copy_out(bn->running_var.data(), {D}));
           })
      .def_property_readonly("num_layers", [](const model& s) { return s.layers.size(); })
      .def("layer_shape",
           [](const model& s, std::size_t l) {
             const auto& L = *s.layers.at(l);
             return py::make_tuple(L.out, L.in);
           })
      .def("layer_is_sparse", [](const model& s, std::size_t l) { return s.layers.at(l)->is_sparse(); })
      .def("layer_nnz", [](const model& s, std::size_t l) { return s.layers.at(l)->nnz(); })
      .def("layer_pattern",
           [](model& s, std::size_t l) {
             auto* L = s.sparse_layer(l);
             TS_REQUIRE(L, "[Linear] layer ", l, " is dense and has no pattern");
             const auto& p = L->pattern;
             return py::make_tuple(copy_out(p.indptr.data(), {p.rows + 1}),
                                   copy_out(p.indices.data(), {static_cast<py::ssize_t>(p.nnz())}));
           })
      .def("layer_values",  // W in storage order: (nnz) for sparse, (K,D) for dense
           [](model& s, std::size_t l, bool gradient) {
             auto& L = *s.layers.at(l);
             const T* p = gradient ? L.gradient() : L.values();
             if (L.is_sparse()) return copy_out(p, {static_cast<py::ssize_t>(L.nnz())});
             return copy_out(p, {L.out, L.in});
           },
           py::arg("l"), py::arg("gradient") = false)
      .def("layer_bias",
           [](model& s, std::size_t l, bool gradient) {
             auto& L = *s.layers.at(l);
             return copy_out(gradient ? L.Db.data() : L.b.data(), {L.out});
           },
           py::arg("l"), py::arg("gradient") = false)
      .def("set_dense_layer",
           [](model& s, std::size_t l, const carray<T>& W, const carray<T>& b) {
             const auto& L = *s.layers.at(l);
             TS_REQUIRE(W.ndim() == 2 && W.shape(0) == L.out && W.shape(1) == L.in,
                        "[Linear.set_weights] W has shape ", W.ndim() == 2 ? W.shape(0) : -1, "x",
                        W.ndim() == 2 ? W.shape(1) : -1, " but layer ", l, " is ", L.out, "x", L.in);
             TS_REQUIRE(b.ndim() == 1 && b.shape(0) == L.out, "[Linear.set_weights] b has ",
                        b.size(), " entries but layer ", l, " has ", L.out, " outputs");
             s.set_dense_layer(l, W.data(), b.data());
           })
      .def("set_sparse_layer",
           [](model& s, std::size_t l, const labels_array& indptr, const labels_array& indices,
              const carray<T>& values, const carray<T>& b) {
             const auto& L = *s.layers.at(l);
             TS_REQUIRE(values.ndim() == 1 && values.shape(0) == indices.size(),
                        "[Linear.set_weights] ", values.size(), " values for ", indices.size(),
                        " column indices");
             TS_REQUIRE(b.ndim() == 1 && b.shape(0) == L.out, "[Linear.set_weights] b has ",
                        b.size(), " entries but layer ", l, " has ", L.out, " outputs");
             csr_pattern p;
             p.rows = L.out;
             p.cols = L.in;
             p.indptr.assign(indptr.data(), indptr.data() + indptr.size());
             p.indices.assign(indices.data(), indices.data() + indices.size());
             validate(p, "Linear.set_weights");
             s.set_sparse_layer(l, std::move(p), values.data(), b.data());
           })
      .def("forward",
           [](model& s, const carray<T>& X, bool train) {
             check_2d(X, "MLP.forward", "X");
             TS_REQUIRE(X.shape(1) == s.inputs(), "[MLP.forward] X has ", X.shape(1),
                        " features but the model has ", s.inputs(), " inputs");
             py::array_t<T> out({X.shape(0), static_cast<py::ssize_t>(s.outputs())});
             T* o = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               predict_logits(s, X.data(), X.shape(0), X.shape(1), o, train);
             }
             return out;
           },
           py::arg("X"), py::arg("train") = false)
      .def("backward",  // one batch: returns the batch-mean loss, leaves DW and Db
           [](model& s, const carray<T>& X, std::optional<labels_array> y,
              std::optional<carray<T>> tgt) {
             dataset<T> d = make_dataset(X, y, tgt, "MLP.backward");
             check_dataset(s, d, "MLP.backward");
             py::gil_scoped_release nogil;
             batch_buffers<T> buf;
             std::vector<std::int64_t> idx(static_cast<std::size_t>(d.M));
             std::iota(idx.begin(), idx.end(), 0);
             const targets<T> t = buf.gather(d, idx.data(), d.M);
             return s.forward_backward(buf.X, t).loss_sum / d.M;
           },
           py::arg("X"), py::arg("y"), py::arg("targets"))
      .def("train_epoch",
           [](model& s, const carray<T>& X, std::optional<labels_array> y,
              std::optional<carray<T>> targets, size_type batch_size,
              const optimizer_config& opt, std::uint64_t epoch, bool shuffle,
              std::optional<set_options> set, std::optional<rigl_options> rigl) {
             dataset<T> d = make_dataset(X, y, targets, "fit");
             evolution_plan plan;
             plan.set = set;
             plan.rigl = rigl;
             std::optional<py::error_already_set> interrupt;
             auto should_stop = [&interrupt]() {
               py::gil_scoped_acquire gil;
               if (PyErr_CheckSignals() != 0) {
                 interrupt.emplace();  // fetches (and clears) the pending Python error
                 return true;
               }
               return false;
             };
             epoch_result r;
             {
               py::gil_scoped_release nogil;
               r = train_epoch(s, d, batch_size, opt, s.seed, epoch, shuffle, should_stop,
                               set || rigl ? &plan : nullptr);
             }
             // An interruption is returned, not raised, so that the caller can keep the
             // topology records of the batches that did run before it raises it.
             py::object stopped_by = interrupt ? interrupt->value() : py::object(py::none());
             return py::make_tuple(r.loss, r.accuracy, r.examples, plan.records, stopped_by);
           },
           py::arg("X"), py::arg("y"), py::arg("targets"), py::arg("batch_size"),
           py::arg("optimizer"), py::arg("epoch"), py::arg("shuffle"), py::arg("set") = py::none(),
           py::arg("rigl") = py::none())
      .def("evolve_set",
           [](model& s, const set_options& o) {
             py::gil_scoped_release nogil;
             return set_update_model(s, o);
           },
           py::arg("options"))
      .def("evolve_rigl",  // forward/backward of one batch, then one RigL update with fraction f
           [](model& s, const carray<T>& X, std::optional<labels_array> y,
              std::optional<carray<T>> tgt, double f) {
             TS_REQUIRE(f >= 0 && f <= 1, "[RigL] drop fraction must be in [0, 1], got ", f);
             dataset<T> d = make_dataset(X, y, tgt, "RigL");
             check_dataset(s, d, "RigL");
             py::gil_scoped_release nogil;
             batch_buffers<T> buf;
             std::vector<std::int64_t> idx(static_cast<std::size_t>(d.M));
             std::iota(idx.begin(), idx.end(), 0);
             const targets<T> t = buf.gather(d, idx.data(), d.M);
             s.forward_backward(buf.X, t);
             return rigl_update_model(s, buf.X, f);
           },
           py::arg("X"), py::arg("y"), py::arg("targets"), py::arg("drop_fraction"))
      .def("layer_optimizer_state",
           [](model& s, std::size_t l) {
             auto& L = *s.layers.at(l);
             py::dict state;
             state["m"] = L.sW.m.empty() ? py::object(py::none())
                                         : py::object(copy_out(L.sW.m.data(), {static_cast<py::ssize_t>(L.sW.m.size())}));
             state["v"] = L.sW.v.empty() ? py::object(py::none())
                                         : py::object(copy_out(L.sW.v.data(), {static_cast<py::ssize_t>(L.sW.v.size())}));
             state["steps"] = L.sW.steps;
             return state;
           })
      .def("layer_itop_rate",
           [](model& s, std::size_t l) {
             auto* L = s.sparse_layer(l);
             return L ? L->itop_rate() : 1.0;
           })
      .def_readwrite("steps", &model::steps)
      .def_readonly("topology_updates", &model::topology_updates)
      .def("evaluate",
           [](model& s, const carray<T>& X, std::optional<labels_array> y,
              std::optional<carray<T>> targets) {
             dataset<T> d = make_dataset(X, y, targets, "evaluate");
             epoch_result r;
             {
               py::gil_scoped_release nogil;
               r = evaluate(s, d);
             }
             return py::make_tuple(r.loss, r.accuracy);
           },
           py::arg("X"), py::arg("y"), py::arg("targets"));
}

}  // namespace

void init_model(py::module_& m) {
  py::enum_<activation_kind>(m, "Activation")
      .value("relu", activation_kind::relu)
      .value("leaky_relu", activation_kind::leaky_relu)
      .value("all_relu", activation_kind::all_relu)
      .value("sigmoid", activation_kind::sigmoid)
      .value("tanh", activation_kind::tanh)
      .value("identity", activation_kind::identity);
  py::enum_<loss_kind>(m, "Loss")
      .value("softmax_cross_entropy", loss_kind::softmax_cross_entropy)
      .value("squared_error", loss_kind::squared_error)
      .value("cross_entropy", loss_kind::cross_entropy)
      .value("negative_log_likelihood", loss_kind::negative_log_likelihood)
      .value("logistic_cross_entropy", loss_kind::logistic_cross_entropy);
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
      .def_readwrite("size", &layer_spec::size)
      .def_readwrite("density", &layer_spec::density)
      .def_readwrite("activation", &layer_spec::activation)
      .def_readwrite("alpha", &layer_spec::alpha)
      .def_readwrite("p", &layer_spec::p)
      .def_readwrite("momentum", &layer_spec::momentum)
      .def_readwrite("eps", &layer_spec::eps)
      .def_property("srelu", [](const layer_spec& s) { return std::vector<double>(s.srelu, s.srelu + 4); },
                    [](layer_spec& s, const std::vector<double>& v) {
                      TS_REQUIRE(v.size() == 4, "[SReLU] needs 4 values (tl, al, tr, ar), got ", v.size());
                      std::copy(v.begin(), v.end(), s.srelu);
                    });
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
  py::enum_<init_kind>(m, "Init")
      .value("xavier_uniform", init_kind::xavier_uniform)
      .value("xavier_normal", init_kind::xavier_normal)
      .value("he_normal", init_kind::he_normal)
      .value("he_uniform", init_kind::he_uniform);
  py::enum_<fan_mode>(m, "FanIn").value("actual", fan_mode::actual).value("dense", fan_mode::dense);
  py::enum_<sparse_backend>(m, "Backend")
      .value("mkl", sparse_backend::mkl)
      .value("native", sparse_backend::native);
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
  py::enum_<regrow_init>(m, "RegrowInit")
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
      .def_property_readonly("dropped_positions", [](const topology_record& r) {
        return copy_out(r.dropped_positions.data(), {static_cast<py::ssize_t>(r.dropped_positions.size())});
      })
      .def_property_readonly("grown_positions", [](const topology_record& r) {
        return copy_out(r.grown_positions.data(), {static_cast<py::ssize_t>(r.grown_positions.size())});
      })
      .def_property_readonly("in_degree_histogram", [](const topology_record& r) {
        return copy_out(r.in_degree_histogram.data(), {static_cast<py::ssize_t>(r.in_degree_histogram.size())});
      })
      .def_property_readonly("out_degree_histogram", [](const topology_record& r) {
        return copy_out(r.out_degree_histogram.data(), {static_cast<py::ssize_t>(r.out_degree_histogram.size())});
      });
  bind_mlp<float>(m, "MLP_f32");
  bind_mlp<double>(m, "MLP_f64");
}

}  // namespace truesparse::python
