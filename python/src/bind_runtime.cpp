// Bindings for threads, library information, density allocation and memory estimates.
#include <pybind11/stl.h>

#include <cmath>

#include "bindings.h"
#include "truesparse/density.h"
#include "truesparse/matrix.h"
#include "truesparse/memory.h"
#include "truesparse/runtime.h"

namespace truesparse::python {
namespace {

// Layer sizes from Python integers: each must be in [1, max_layer_size] (32-bit indices).
std::vector<index_t> layer_sizes(const std::vector<std::int64_t>& sizes, const char* op) {
  std::vector<index_t> out;
  out.reserve(sizes.size());
  for (std::size_t l = 0; l < sizes.size(); ++l) {
    TS_REQUIRE(sizes[l] >= 1, "[", op, "] sizes[", l, "] is ", sizes[l], ", every size must be >= 1");
    TS_REQUIRE(sizes[l] <= max_layer_size, "[", op, "] sizes[", l, "] is ", with_commas(sizes[l]),
               "; a layer has at most ", with_commas(max_layer_size), " inputs or outputs (32-bit indices)");
    out.push_back(static_cast<index_t>(sizes[l]));
  }
  return out;
}

// A byte count as a Python int (exact below 2^53; any magnitude).
py::object bytes_int(double bytes) {
  return py::reinterpret_steal<py::object>(PyLong_FromDouble(std::round(bytes)));
}

// {term: bytes} of the nonzero terms, with "model" and "training", their sums.
py::dict terms_dict(const memory_terms& m) {
  py::dict d;
  const std::pair<const char*, double> terms[] = {
      {"values", m.values},   {"gradients", m.gradients},   {"biases", m.biases},
      {"indices", m.indices}, {"transposes", m.transposes}, {"ever_active", m.ever_active},
      {"modules", m.modules}, {"optimizer", m.optimizer},   {"activations", m.activations},
      {"batch", m.batch},     {"evolution", m.evolution},   {"weight_gradients", m.weight_gradients}};
  for (const auto& [name, bytes] : terms) d[name] = bytes_int(bytes);
  d["model"] = bytes_int(m.model());
  d["training"] = bytes_int(m.training());
  return d;
}

template <class T>
py::dict training_memory_of(const network<T>& net, const training_plan& p, bool check,
                            const std::string& op) {
  const available_memory available =
      check && memory_check_enabled() ? read_available_memory() : available_memory{};
  const memory_terms extra = check_training_fits(net, p, op, available);
  py::dict d = terms_dict(extra);
  d["model"] = bytes_int(network_memory(net).total());  // all the network holds now
  if (available.known) d["available"] = bytes_int(available.bytes);
  return d;
}

}  // namespace

void init_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Set the number of threads of MKL and of truesparse's own OpenMP loops.");
  m.def("get_num_threads", &get_num_threads);
  m.def(
      "first_nonfinite",
      [](const py::array& X) -> py::object {
        // A 2-D C-contiguous float32 or float64 array (the caller converted it).
        const auto find = [&](auto tag) -> std::pair<size_type, size_type> {
          using T = decltype(tag);
          const auto a = py::array_t<T, py::array::c_style>::ensure(X);
          TS_REQUIRE(a && a.ndim() == 2, "[first_nonfinite] X must be a 2-D float array");
          const T* p = a.data();
          const size_type M = a.shape(0), D = a.shape(1);
          py::gil_scoped_release nogil;
          return first_nonfinite(p, M, D);
        };
        const auto at = X.dtype().is(py::dtype::of<double>()) ? find(double{}) : find(float{});
        if (at.first < 0) return py::none();
        return py::make_tuple(at.first, at.second);
      },
      py::arg("X"),
      "(row, column) of the first NaN or infinity of a 2-D float array, or None; parallel, "
      "without the GIL.");
  m.def("set_adaptive_threads", &set_adaptive_threads, py::arg("on"),
        "On (the default): training steps run on one thread for a while when that measured faster "
        "than all of the threads (another process busy on a core); results do not change.");
  m.def("get_adaptive_threads", &get_adaptive_threads);
  m.def("mkl_version", &mkl_version);
  m.def(
      "er_densities",
      [](const std::vector<std::int64_t>& sizes, double density, double power) {
        return er_densities(layer_sizes(sizes, "er_densities"), density, power);
      },
      py::arg("sizes"), py::arg("density"), py::arg("power") = 1.0);
  m.def(
      "epsilon_densities",
      [](const std::vector<std::int64_t>& sizes, double epsilon) {
        return epsilon_densities(layer_sizes(sizes, "epsilon_densities"), epsilon);
      },
      py::arg("sizes"), py::arg("epsilon"));
  m.def(
      "nnz_for_density",
      [](double density, std::int64_t n_in, std::int64_t n_out) {
        const auto sizes = layer_sizes({n_in, n_out}, "nnz_for_density");
        return nnz_for_density(density, sizes[0], sizes[1]);
      },
      py::arg("density"), py::arg("n_in"), py::arg("n_out"));
  m.def(
      "available_memory",
      []() -> py::object {
        const available_memory a = read_available_memory();
        return a.known ? bytes_int(a.bytes) : py::object(py::none());
      },
      "Bytes this process can still get (the smaller of MemAvailable + SwapFree and a cgroup limit's "
      "room), or None where that cannot be read.");
  m.def(
      "model_memory",
      [](std::int64_t inputs, const std::vector<layer_spec>& layers, bool float64,
         const std::string& backend) {
        TS_REQUIRE(backend == "native" || backend == "mkl",
                   "[model_memory] backend must be 'native' or 'mkl', got '", backend, "'");
        network_options o;
        o.inputs = inputs;
        o.layers = layers;
        o.backend = backend == "mkl" ? sparse_backend::mkl : sparse_backend::native;
        validate(o);
        const model_estimate e = estimate_model_memory(o, float64 ? sizeof(double) : sizeof(float));
        py::dict d = terms_dict(e.held);
        d["peak"] = bytes_int(e.peak);
        return d;
      },
      py::arg("inputs"), py::arg("layers"), py::arg("float64") = false, py::arg("backend") = "native",
      "Estimated bytes a network of these layers holds ({term: bytes}, 'model' their sum) and "
      "'peak', the most it needs while it is built; raises ValueError for sizes or stored weights "
      "beyond the 32-bit indices. Allocates nothing.");
  m.def(
      "training_memory",
      [](const py::object& network, size_type batch_size, const optimizer_config& optimizer,
         size_type examples, size_type validation_batch, bool evolution, bool check, const std::string& op) {
        training_plan p;
        p.batch_size = batch_size;
        p.optimizer = optimizer;
        p.examples = examples;
        p.eval_batch = validation_batch;
        p.evolution = evolution;
        TS_REQUIRE(batch_size > 0, "[", op, "] batch_size must be positive, got ", batch_size);
        TS_REQUIRE(examples >= 0 && validation_batch >= 0, "[", op,
                   "] examples and validation_batch must be >= 0, got ", examples, " and ", validation_batch);
        // The engine itself, or the object that wraps it as _engine (truesparse's LockedEngine:
        // the caller holds its lock).
        const py::object net = py::hasattr(network, "_engine") ? network.attr("_engine") : network;
        if (py::isinstance<truesparse::network<float>>(net))
          return training_memory_of(net.cast<const truesparse::network<float>&>(), p, check, op);
        if (py::isinstance<truesparse::network<double>>(net))
          return training_memory_of(net.cast<const truesparse::network<double>&>(), p, check, op);
        throw py::type_error(msg("[", op,
                                 "] network must be a truesparse._core.Network_f32 or Network_f64, got ",
                                 std::string(py::str(py::type::of(network).attr("__name__")))));
      },
      py::arg("network"), py::arg("batch_size"), py::arg("optimizer"), py::kw_only(), py::arg("examples") = 0,
      py::arg("validation_batch") = 0, py::arg("evolution") = false, py::arg("check") = true,
      py::arg("op") = "fit",
      "The bytes a training run adds to what the network holds ({term: bytes}; 'training' their "
      "sum, 'model' all the network holds now, 'available' what this process can get). With "
      "check, raises ValueError when 'training' exceeds 'available'.");
}

}  // namespace truesparse::python
