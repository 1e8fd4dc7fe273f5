// Bindings for the network (float32 and float64 instances), its layers' arrays and the training
// loop. Arrays are converted at the boundary and their shapes checked here; the GIL is released
// while C++ works, and Ctrl-C is polled between batches.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "truesparse/state.h"
#include "truesparse/train.h"

namespace truesparse::python {
namespace {

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
    TS_REQUIRE(y->ndim() == 1 && y->shape(0) == d.M, "[", op, "] y has shape (", y->ndim() ? y->shape(0) : 0,
               ") but X has ", d.M, " rows");
    d.labels = y->data();
  }
  if (targets) {
    check_2d(*targets, op, "targets");
    TS_REQUIRE(targets->shape(0) == d.M, "[", op, "] targets have ", targets->shape(0), " rows but X has ",
               d.M);
    d.targets = targets->data();
    d.K = targets->shape(1);
  }
  return d;
}

// Checkpoint state (truesparse/state.h) to and from a dict of 1-D NumPy arrays; counters are
// arrays of one element.
template <class V>
struct is_state_span : std::false_type {};
template <class T>
struct is_state_span<state_span<T>> : std::true_type {};

template <class V>
py::array state_out(const V& v) {
  if constexpr (std::is_integral_v<V>)
    return copy_out(&v, {1});
  else if constexpr (is_state_span<V>::value)
    return copy_out(v.data, {static_cast<py::ssize_t>(v.size)});
  else
    return copy_out(v);
}

template <class E>
py::array_t<E> state_item(const py::dict& state, const std::string& name) {
  TS_REQUIRE(state.contains(name), "[load] the state has no array ", name);
  const py::array a = state[name.c_str()];
  TS_REQUIRE(a.ndim() == 1 && a.dtype().is(py::dtype::of<E>()), "[load] ", name, " must be a 1-D array of ",
             std::string(py::str(py::dtype::of<E>())), ", got a ", a.ndim(), "-D array of ",
             std::string(py::str(a.dtype())));
  return py::array_t < E, py::array::c_style | py::array::forcecast > (a);
}

template <class V>
void state_in(const py::dict& state, const std::string& name, V& v) {
  if constexpr (std::is_integral_v<V>) {
    const auto a = state_item<V>(state, name);
    TS_REQUIRE(a.size() == 1, "[load] ", name, " must hold one value, got ", a.size());
    v = a.data()[0];
  } else if constexpr (is_state_span<V>::value) {
    using E = std::remove_pointer_t<decltype(v.data)>;
    const auto a = state_item<E>(state, name);
    TS_REQUIRE(static_cast<size_type>(a.size()) == v.size, "[load] ", name, " has ", a.size(),
               " entries, the model needs ", v.size);
    std::copy(a.data(), a.data() + a.size(), v.data);
  } else {
    const auto a = state_item<typename V::value_type>(state, name);
    v.assign(a.data(), a.data() + a.size());
  }
}

// The stop poll of a loop that runs without the GIL: between batches it takes the GIL, runs
// Python's signal handlers (Ctrl-C) and then the caller's poll(examples, loss, accuracy), if
// any. The first Python error either raises stops the loop; it is kept for the caller to
// return or raise.
struct python_poll {
  py::object poll;  // None or a callable
  std::optional<py::error_already_set> error;

  bool operator()(const epoch_result& r) {
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!poll.is_none()) poll(r.examples, r.loss, r.accuracy);
    } catch (py::error_already_set& e) {
      error.emplace(std::move(e));
      return true;
    }
    return false;
  }
  stop_poll function() {
    return [this](const epoch_result& r) { return (*this)(r); };
  }
};

// The all-reduce of a data-parallel job (truesparse/distributed.h) from Python: allreduce(buffer)
// must sum the 1-D array `buffer` (dtype of the model) over all ranks, in place. The array is
// a view of the C++ buffer, valid during the call only. Called with the GIL held, from the
// training loop that runs without it. The first Python error it raises is kept, and a C++
// exception unwinds the loop (which leaves the network as after the previous step); the
// caller returns or raises the kept error.
template <class T>
struct python_allreduce {
  py::object allreduce;  // None: no data-parallel job
  int rank = 0, size = 1;
  bool sharded = false;
  std::int64_t steps = 0;
  std::optional<py::error_already_set> error;

  void operator()(T* data, std::size_t n) {
    py::gil_scoped_acquire gil;
    try {
      allreduce(py::array_t<T>(static_cast<py::ssize_t>(n), data, py::none()));
    } catch (py::error_already_set& e) {
      error.emplace(std::move(e));
      throw std::runtime_error("[allreduce] the all-reduce raised an exception");
    }
  }
  // The data_parallel of the call, or nullopt for one process (allreduce None, size 1).
  std::optional<data_parallel<T>> options(const char* op) {
    if (allreduce.is_none()) {
      TS_REQUIRE(size == 1 && rank == 0 && !sharded, "[", op,
                 "] rank, size and sharded need allreduce: a callable that sums a NumPy array over "
                 "the ranks in place");
      return std::nullopt;
    }
    TS_REQUIRE(PyCallable_Check(allreduce.ptr()), "[", op, "] allreduce must be callable, got ",
               std::string(py::str(py::type::of(allreduce))));
    data_parallel<T> dp;
    dp.rank = rank;
    dp.size = size;
    dp.sharded = sharded;
    dp.steps = steps;
    dp.allreduce_sum = [this](T* data, std::size_t n) { (*this)(data, n); };
    validate(dp, op);
    return dp;
  }
};

// The error of a rank stopped because another rank asked to stop (data-parallel).
inline py::object peer_stop_error(const char* op, int rank) {
  return py::reinterpret_borrow<py::object>(PyExc_RuntimeError)(msg(
      "[", op, "] rank ", rank, " stopped because another rank stopped (Ctrl-C or an error in its poll)"));
}

template <class T>
void bind_network(py::module_& m, const char* name) {
  using model = network<T>;
  py::class_<model>(m, name)
      .def(py::init([](index_t inputs, std::vector<layer_spec> layers, loss_kind loss, double label_smoothing,
                       init_kind init, fan_mode fan, std::uint64_t seed, sparse_backend backend,
                       operand_dtype operands, bool draw_weights) {
             network_options o;
             o.inputs = inputs;
             o.layers = std::move(layers);
             o.loss = loss;
             o.label_smoothing = label_smoothing;
             o.init = init;
             o.fan = fan;
             o.seed = seed;
             o.backend = backend;
             o.operands = operands;
             o.draw_weights = draw_weights;
             return std::make_unique<model>(o);
           }),
           py::kw_only(), py::arg("inputs"), py::arg("layers"),
           py::arg("loss") = loss_kind::softmax_cross_entropy, py::arg("label_smoothing") = 0.0,
           py::arg("init") = init_kind::he_normal, py::arg("fan") = fan_mode::actual, py::arg("seed") = 0,
           py::arg("backend") = sparse_backend::mkl, py::arg("operands") = operand_dtype::float32,
           py::arg("draw_weights") = true)
      .def_property_readonly("num_modules", [](const model& s) { return s.modules.size(); })
      .def_property_readonly("outputs", [](const model& s) { return s.outputs(); })
      .def(
          "module_kind", [](const model& s, std::size_t m) { return std::string(s.modules.at(m)->kind()); },
          py::arg("m"))
      .def(
          "module_of_layer", [](const model& s, std::size_t l) { return s.module_of.at(l); }, py::arg("l"))
      .def(
          "module_parameters",  // {name: (value copy, gradient copy)} of a non-linear layer
          [](model& s, std::size_t m) {
            py::dict out;
            for (auto& p : s.modules.at(m)->parameters())
              out[p.name] = py::make_tuple(copy_out(p.value, {p.size}), copy_out(p.gradient, {p.size}));
            return out;
          },
          py::arg("m"))
      .def(
          "set_module_parameter",
          [](model& s, std::size_t m, const std::string& name, const carray<T>& value) {
            s.set_parameter(m, name, value.data(), value.size());
          },
          py::arg("m"), py::arg("name"), py::arg("value"))
      .def(
          "set_module_statistic",
          [](model& s, std::size_t m, const std::string& name, const carray<T>& value) {
            s.set_statistic(m, name, value.data(), value.size());
          },
          py::arg("m"), py::arg("name"), py::arg("value"))
      .def(
          "module_statistics",  // {name: copy} of a layer's running statistics (batch norm)
          [](model& s, std::size_t m) {
            py::dict out;
            for (auto& st : s.modules.at(m)->statistics()) out[st.name] = copy_out(st.value, {st.size});
            return out;
          },
          py::arg("m"))
      .def_property_readonly("num_layers", [](const model& s) { return s.layers.size(); })
      .def(
          "layer_shape",
          [](const model& s, std::size_t l) {
            const auto& L = *s.layers.at(l);
            return py::make_tuple(L.out, L.in);
          },
          py::arg("l"))
      .def(
          "layer_is_sparse", [](const model& s, std::size_t l) { return s.layers.at(l)->is_sparse(); },
          py::arg("l"))
      .def(
          "layer_nnz", [](const model& s, std::size_t l) { return s.layers.at(l)->nnz(); }, py::arg("l"))
      .def(
          "layer_pattern",
          [](model& s, std::size_t l) {
            auto* L = s.sparse_layer(l);
            TS_REQUIRE(L, "[Linear] layer ", l, " is dense and has no pattern");
            return py::make_tuple(copy_out(L->pattern.indptr), copy_out(L->pattern.indices));
          },
          py::arg("l"))
      .def(
          "layer_values",  // W in storage order: (nnz) for sparse, (K,D) for dense
          [](model& s, std::size_t l, bool gradient) -> py::object {
            auto& L = *s.layers.at(l);
            // A sparse layer trained with fused SGD steps keeps no gradient: None.
            if (gradient && L.as_sparse() && !L.as_sparse()->dw_current) return py::none();
            const T* p = gradient ? L.gradient() : L.values();
            if (L.is_sparse()) return copy_out(p, {L.nnz()});
            return copy_out(p, {L.out, L.in});
          },
          py::arg("l"), py::arg("gradient") = false)
      .def(
          "layer_bias",
          [](model& s, std::size_t l, bool gradient) {
            auto& L = *s.layers.at(l);
            return copy_out(gradient ? L.Db : L.b);
          },
          py::arg("l"), py::arg("gradient") = false)
      .def(
          "set_dense_layer",
          [](model& s, std::size_t l, const carray<T>& W, const carray<T>& b) {
            const auto& L = *s.layers.at(l);
            TS_REQUIRE(W.ndim() == 2 && W.shape(0) == L.out && W.shape(1) == L.in,
                       "[Linear.set_weights] W has shape ", W.ndim() == 2 ? W.shape(0) : -1, "x",
                       W.ndim() == 2 ? W.shape(1) : -1, " but layer ", l, " is ", L.out, "x", L.in);
            TS_REQUIRE(b.ndim() == 1 && b.shape(0) == L.out, "[Linear.set_weights] b has ", b.size(),
                       " entries but layer ", l, " has ", L.out, " outputs");
            s.set_dense_layer(l, W.data(), b.data());
          },
          py::arg("l"), py::arg("W"), py::arg("b"))
      .def(
          "set_sparse_layer",
          [](model& s, std::size_t l, const labels_array& indptr, const labels_array& indices,
             const carray<T>& values, const carray<T>& b) {
            const auto& L = *s.layers.at(l);
            TS_REQUIRE(indptr.ndim() == 1 && indptr.shape(0) == L.out + 1, "[Linear.set_weights] indptr has ",
                       indptr.size(), " entries but layer ", l, " has ", L.out, " rows");
            TS_REQUIRE(values.ndim() == 1 && values.shape(0) == indices.size(), "[Linear.set_weights] ",
                       values.size(), " values for ", indices.size(), " column indices");
            TS_REQUIRE(b.ndim() == 1 && b.shape(0) == L.out, "[Linear.set_weights] b has ", b.size(),
                       " entries but layer ", l, " has ", L.out, " outputs");
            s.set_sparse_layer(l, indptr.data(), indices.data(), indices.size(), values.data(), b.data());
          },
          py::arg("l"), py::arg("indptr"), py::arg("indices"), py::arg("values"), py::arg("b"))
      .def(
          "forward",
          [](model& s, const carray<T>& X, bool train) {
            check_2d(X, "forward", "X");
            py::array_t<T> out({X.shape(0), static_cast<py::ssize_t>(s.outputs())});
            T* o = out.mutable_data();
            py::gil_scoped_release nogil;
            predict_logits(s, X.data(), X.shape(0), X.shape(1), o, train);
            return out;
          },
          py::arg("X"), py::arg("train") = false)
      .def(
          "backward",  // one batch: returns the batch-mean loss, leaves DW and Db
          [](model& s, const carray<T>& X, std::optional<labels_array> y, std::optional<carray<T>> tgt) {
            const dataset<T> d = make_dataset(X, y, tgt, "backward");
            py::gil_scoped_release nogil;
            batch_buffers<T> buf;
            return batch_gradients(s, d, buf, "backward");
          },
          py::arg("X"), py::arg("y"), py::arg("targets"))
      .def(
          "train_epoch",
          [](model& s, const carray<T>& X, std::optional<labels_array> y, std::optional<carray<T>> targets,
             size_type batch_size, const optimizer_config& opt, std::uint64_t epoch, bool shuffle,
             std::optional<set_options> set, std::optional<rigl_options> rigl, py::object poll,
             double input_noise, bool stop_on_nonfinite, int rank, int size, bool sharded,
             py::object allreduce, std::int64_t steps) {
            const dataset<T> d = make_dataset(X, y, targets, "fit");
            evolution_plan plan;
            plan.set = set;
            plan.rigl = rigl;
            python_poll stop{std::move(poll), {}};
            python_allreduce<T> reduce{std::move(allreduce), rank, size, sharded, steps, {}};
            const std::optional<data_parallel<T>> dp = reduce.options("fit");
            epoch_result r;
            try {
              py::gil_scoped_release nogil;
              r = train_epoch(s, d, batch_size, opt, s.seed, epoch, shuffle, stop.function(),
                              set || rigl ? &plan : nullptr, 1, input_noise, stop_on_nonfinite,
                              dp ? &*dp : nullptr);
            } catch (...) {
              if (!reduce.error) throw;  // else the all-reduce raised: returned below
            }
            // The error that stopped the epoch (Ctrl-C, or raised by poll or by allreduce) is
            // returned, not raised, so that the caller can keep the topology records of the
            // batches that did run before it raises it. A rank stopped by another rank's stop
            // gets a RuntimeError.
            py::object stopped_by = stop.error          ? stop.error->value()
                                    : reduce.error      ? reduce.error->value()
                                    : r.stopped_by_peer ? peer_stop_error("fit", rank)
                                                        : py::object(py::none());
            py::object nonfinite = r.nonfinite_batch < 0
                                       ? py::object(py::none())
                                       : py::object(py::make_tuple(r.nonfinite_batch, r.nonfinite_loss));
            return py::make_tuple(r.loss, r.accuracy, r.examples, plan.records, stopped_by, nonfinite);
          },
          py::arg("X"), py::arg("y"), py::arg("targets"), py::arg("batch_size"), py::arg("optimizer"),
          py::arg("epoch"), py::arg("shuffle"), py::arg("set") = py::none(), py::arg("rigl") = py::none(),
          py::arg("poll") = py::none(), py::arg("input_noise") = 0.0, py::arg("stop_on_nonfinite") = false,
          py::kw_only(), py::arg("rank") = 0, py::arg("size") = 1, py::arg("sharded") = false,
          py::arg("allreduce") = py::none(), py::arg("steps") = 0)
      .def(
          "evolve_set",
          [](model& s, const set_options& o) {
            py::gil_scoped_release nogil;
            return set_update_model(s, o);
          },
          py::arg("options"))
      .def(
          "remove_inputs",  // input neurons of the first linear layer; with a batch: RigL's growth
          [](model& s, std::vector<index_t> cols, std::optional<carray<T>> X, std::optional<labels_array> y,
             std::optional<carray<T>> tgt, const set_options& o) {
            if (!X) {
              py::gil_scoped_release nogil;
              return remove_inputs_model<T>(s, std::move(cols), nullptr, o.init, o.regrow_std);
            }
            const dataset<T> d = make_dataset(*X, y, tgt, "remove_inputs");
            py::gil_scoped_release nogil;
            return remove_inputs_model(s, std::move(cols), &d, o.init, o.regrow_std);
          },
          py::arg("columns"), py::arg("X"), py::arg("y"), py::arg("targets"), py::arg("regrow"))
      .def(
          "layer_excluded_inputs",  // (D) bool: the removed inputs of linear layer l
          [](model& s, std::size_t l) {
            const auto* L = s.sparse_layer(l);
            const auto D = static_cast<py::ssize_t>(s.layers.at(l)->in);
            py::array_t<bool> out(D);
            for (py::ssize_t j = 0; j < D; ++j)
              out.mutable_data()[j] = L && L->excluded(static_cast<index_t>(j));
            return out;
          },
          py::arg("l"))
      .def(
          "evolve_rigl",  // forward/backward of one batch, then one RigL update with fraction f
          [](model& s, const carray<T>& X, std::optional<labels_array> y, std::optional<carray<T>> tgt,
             double f, int rank, int size, bool sharded, py::object allreduce) {
            const dataset<T> d = make_dataset(X, y, tgt, "RigL");
            python_allreduce<T> reduce{std::move(allreduce), rank, size, sharded, 0, {}};
            const std::optional<data_parallel<T>> dp = reduce.options("RigL");
            std::vector<topology_record> records;
            try {
              py::gil_scoped_release nogil;
              records = dp ? rigl_update_on_batch(s, d, f, *dp) : rigl_update_on_batch(s, d, f);
            } catch (...) {
              if (!reduce.error) throw;
              throw std::move(*reduce.error);  // the all-reduce's own error
            }
            return records;
          },
          py::arg("X"), py::arg("y"), py::arg("targets"), py::arg("drop_fraction"), py::kw_only(),
          py::arg("rank") = 0, py::arg("size") = 1, py::arg("sharded") = false,
          py::arg("allreduce") = py::none())
      .def(
          "layer_optimizer_state",
          [](model& s, std::size_t l) {
            const auto& st = s.layers.at(l)->sW;
            py::dict state;
            state["m"] = st.m.empty() ? py::object(py::none()) : py::object(copy_out(st.m));
            state["v"] = st.v.empty() ? py::object(py::none()) : py::object(copy_out(st.v));
            state["steps"] = st.steps;
            return state;
          },
          py::arg("l"))
      .def(
          "layer_itop_rate",
          [](model& s, std::size_t l) {
            auto* L = s.sparse_layer(l);
            return L ? L->itop_rate() : 1.0;
          },
          py::arg("l"))
      .def("get_state",
           [](model& s) {
             py::dict state;
             for_each_state(
                 s, [&](const std::string& name, const auto& v) { state[name.c_str()] = state_out(v); });
             return state;
           })
      .def(
          "set_state",  // on a freshly built network of the same layers; discard it on error
          [](model& s, const py::dict& state) {
            std::size_t used = 0;
            for_each_state(s, [&](const std::string& name, auto&& v) {
              state_in(state, name, v);  // a span by value: its data pointer is what is written
              ++used;
            });
            if (used != state.size())
              for (auto item : state) {
                const std::string key = py::str(item.first);
                bool known = false;
                for_each_state(s, [&](const std::string& name, auto&&) { known = known || name == key; });
                TS_REQUIRE(known, "[load] the state has an array ", key, " that this network does not have");
              }
            state_loaded(s);
          },
          py::arg("state"))
      .def_readwrite("steps", &model::steps)
      .def_readonly("topology_updates", &model::topology_updates)
      .def(
          "evaluate",
          [](model& s, const carray<T>& X, std::optional<labels_array> y, std::optional<carray<T>> targets,
             py::object poll, int rank, int size, bool sharded, py::object allreduce) {
            const dataset<T> d = make_dataset(X, y, targets, "evaluate");
            python_poll stop{std::move(poll), {}};
            python_allreduce<T> reduce{std::move(allreduce), rank, size, sharded, 0, {}};
            const std::optional<data_parallel<T>> dp = reduce.options("evaluate");
            epoch_result r;
            try {
              py::gil_scoped_release nogil;
              r = evaluate(s, d, 1000, stop.function(), dp ? &*dp : nullptr);
            } catch (...) {
              if (!reduce.error) throw;
            }
            // Nothing changed: raise the error that stopped it.
            if (stop.error) throw std::move(*stop.error);
            if (reduce.error) throw std::move(*reduce.error);
            if (r.stopped_by_peer)
              throw std::runtime_error(
                  msg("[evaluate] rank ", rank,
                      " stopped because another rank stopped (Ctrl-C or an error in its poll)"));
            return py::make_tuple(r.loss, r.accuracy);
          },
          py::arg("X"), py::arg("y"), py::arg("targets"), py::arg("poll") = py::none(), py::kw_only(),
          py::arg("rank") = 0, py::arg("size") = 1, py::arg("sharded") = false,
          py::arg("allreduce") = py::none())
      .def("allreduce_sizes",  // values per all-reduce of data-parallel training
           [](model& s) {
             py::dict out;
             out["step"] = gradient_buffer<T>::size_of(s);
             out["rigl_update"] = rigl_allreduce_size(s);
             out["evaluate"] = gradient_buffer<T>::tail;
             return out;
           });
}

}  // namespace

void init_model(py::module_& m) {
  bind_network<float>(m, "Network_f32");
  bind_network<double>(m, "Network_f64");
}

}  // namespace truesparse::python
