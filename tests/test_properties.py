"""Property-based tests (hypothesis) of the public API: random shapes, densities (dense,
sparse, and tiny ones that round to a few weights), dtypes, layer stacks (``MLP`` and
``Sequential`` with every layer kind), losses, optimizers, schedules and evolutions, and
calls in random order.

- ``TestModelMachine``: a stateful test that builds a random model and calls ``fit`` (one
  epoch; with validation data, input noise, SET or RigL), ``fit(epochs=0)``, ``evolve``
  (SET, RigL), ``predict``, ``evaluate``, ``forward`` (evaluation and training mode),
  ``backward``, ``set_weights`` (scipy COO, CSC, CSR with sorted or unsorted indices,
  ``csr_matrix``, explicit zeros; or a dense array), ``remove_inputs`` (random or gradient
  growth, accepted or refused), ``input_strength``, a save/load and a pickle round trip, in
  random order. After every call: every sparse ``W`` is a valid CSR of the layer's shape and
  the model's dtype, ``DW`` has its pattern, the optimizer state is aligned with ``W.data``;
  ``nnz`` is what it was unless ``set_weights`` changed it (``fit``, SET, RigL and
  ``remove_inputs`` keep it); removed inputs hold no weight; the outputs of finite inputs are
  finite while the weights are finite and not huge; a round trip gives identical weights,
  identical outputs and an identical continuation of training; a refused call changes
  nothing.
- Plain properties: ``forward`` (evaluation and training mode) and ``backward`` (loss and
  every parameter gradient, float64) equal the NumPy reference (``truesparse.reference``,
  through ``reference_network.py``); one seed gives one model, one prediction and one
  training run; ``fit`` gives bit-identical results on 1 and 2 threads; two
  ``fit(epochs=1)`` equal one ``fit(epochs=2)``.

Learning rates are moderate; a run that still diverges (``fit`` raises FloatingPointError)
is accepted as such.

Run time is bounded for the normal suite (a few tens of seconds on two cores). The profile
comes from the environment:

- ``HYPOTHESIS_PROFILE=dev`` (the default): random examples, a new draw on every run;
- ``HYPOTHESIS_PROFILE=ci`` (the default when ``CI`` is set, as ``.ci/run`` runs): the same
  derandomized examples on every run, so CI is reproducible;
- ``HYPOTHESIS_PROFILE=thorough``: twenty times the examples and longer call sequences, for
  running by hand: ``HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties.py``.

No example database is kept (hypothesis's ``.hypothesis/`` then holds only its cache, which
git ignores). A failure prints the shrunk example and a ``@reproduce_failure`` blob;
``--hypothesis-seed=N`` repeats a dev run.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import reference_network as refnet
import truesparse as ts
from conftest import assert_close, assert_csr_valid, assert_same_pattern, dense_of
from truesparse import layers as L
from truesparse import reference as R

pytestmark = pytest.mark.usefixtures("one_thread")

# -- profiles ------------------------------------------------------------------------------------
# too_slow: an example builds and trains a model, so generating the next one (a model
# description, data, a call) can take longer than hypothesis expects of pure data generation.
# data_too_large: a long stateful run draws many calls, each with its own arguments.
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "truesparse-dev",
    deadline=None,  # timings vary with the machine's load; the examples are small anyway
    database=None,  # no example database under .hypothesis/ in the work tree
    print_blob=True,
    suppress_health_check=_HEALTH,
)
settings.register_profile("truesparse-ci", settings.get_profile("truesparse-dev"), derandomize=True)
settings.register_profile("truesparse-thorough", settings.get_profile("truesparse-dev"))
_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _CI else "dev")
if PROFILE not in ("dev", "ci", "thorough"):
    raise ValueError(f"HYPOTHESIS_PROFILE must be dev, ci or thorough, got {PROFILE!r}")
_SCALE = 20 if PROFILE == "thorough" else 1


def budget(examples: int, **kwargs) -> settings:
    """The settings of one test: ``examples`` examples (times 20 when thorough)."""
    return settings(
        settings.get_profile(f"truesparse-{PROFILE}"),
        max_examples=examples * _SCALE,
        **kwargs,
    )


# -- strategies ----------------------------------------------------------------------------------
DTYPES = st.sampled_from([np.float32, np.float64])
WIDTHS = st.integers(1, 40)
OUTPUTS = st.integers(1, 8)
# 1.0 is a dense layer; tiny densities round to max(1, round(d · in · out)) weights
DENSITIES = st.one_of(
    st.just(1.0),
    st.floats(1e-4, 0.05),
    st.floats(0.05, 1.0, exclude_max=True),
)
LOSSES = st.sampled_from(
    [
        "softmax_cross_entropy",
        "softmax_cross_entropy",
        "squared_error",
        "squared_error",
        "cross_entropy",
        "negative_log_likelihood",
        "logistic_cross_entropy",
    ]
)
LAST_LAYER = {"cross_entropy": [L.Softmax()], "negative_log_likelihood": [L.LogSoftmax()]}


@st.composite
def srelu_specs(draw):
    tl = draw(st.floats(-1.0, 0.5))
    width = draw(st.floats(0.1, 2.0))
    return L.SReLU(tl=tl, al=draw(st.floats(0.0, 0.5)), tr=tl + width, ar=draw(st.floats(0.2, 1.5)))


ACTIVATION_SPECS = st.one_of(
    st.just(L.ReLU()),
    st.builds(L.LeakyReLU, st.floats(0.0, 0.5)),
    st.builds(L.AllReLU, st.floats(0.0, 1.0)),
    st.just(L.Tanh()),
    st.just(L.Sigmoid()),
    st.just(L.Identity()),
    srelu_specs(),
)
NON_DROPOUT_SPECS = st.one_of(
    ACTIVATION_SPECS,
    st.builds(L.BatchNorm, st.floats(0.0, 1.0), st.floats(1e-5, 1e-2)),
    st.just(L.Affine()),
)
MODULE_SPECS = st.one_of(NON_DROPOUT_SPECS, st.builds(L.Dropout, st.floats(0.0, 0.9)))


@dataclass
class Net:
    """How to build one model: ``cls(*args, **kwargs)``."""

    cls: type
    args: tuple
    kwargs: dict = field(default_factory=dict)

    def build(self, **override):
        return self.cls(*self.args, **{**self.kwargs, **override})

    def __repr__(self) -> str:
        args = ", ".join(
            [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        )
        return f"ts.{self.cls.__name__}({args})"


@st.composite
def sequential_nets(draw, dropout=True):
    """A ``Sequential``: an optional module on the inputs, 0 to 4 hidden blocks (a ``Linear``
    and up to three modules in any order), the output ``Linear`` and the loss's last layer."""
    modules = MODULE_SPECS if dropout else NON_DROPOUT_SPECS
    specs = draw(st.lists(modules, max_size=1))
    for _ in range(draw(st.integers(0, 4))):
        specs.append(L.Linear(draw(WIDTHS), density=draw(DENSITIES)))
        specs += draw(st.lists(modules, max_size=3))
    loss = draw(LOSSES)
    specs.append(L.Linear(draw(OUTPUTS), density=draw(DENSITIES)))
    specs += LAST_LAYER.get(loss, [])
    kwargs = {
        "loss": loss,
        "dtype": draw(DTYPES),
        "seed": draw(st.integers(0, 2**64 - 1)),
        "backend": draw(st.sampled_from(["mkl", "native"])),
        "weight_init": draw(
            st.sampled_from(["he_normal", "he_uniform", "xavier_normal", "xavier_uniform"])
        ),
        "sparse_fan_in": draw(st.sampled_from(["actual", "dense"])),
    }
    if loss in ("softmax_cross_entropy", "cross_entropy", "negative_log_likelihood"):
        kwargs["label_smoothing"] = draw(st.sampled_from([0.0, 0.1]))
    return Net(ts.Sequential, (draw(WIDTHS), specs), kwargs)


@st.composite
def mlp_nets(draw, dropout=True):
    """An ``MLP`` of 1 to 4 hidden layers: per-layer densities, an overall density with an
    allocation, or all dense."""
    sizes = [draw(WIDTHS)] + draw(st.lists(WIDTHS, min_size=1, max_size=4)) + [draw(OUTPUTS)]
    how = draw(st.sampled_from(["densities", "density", "dense"]))
    kwargs: dict = {}
    if how == "densities":
        kwargs["densities"] = draw(
            st.lists(DENSITIES, min_size=len(sizes) - 1, max_size=len(sizes) - 1)
        )
    elif how == "density":
        kwargs["density"] = draw(DENSITIES)
        kwargs["init"] = draw(st.sampled_from(["erk", "er", "uniform"]))
    kwargs.update(
        activation=draw(st.sampled_from(sorted(L.ACTIVATIONS))),
        alpha=draw(st.floats(0.0, 0.7)),
        loss=draw(LOSSES),
        batch_norm=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.2, 0.5])) if dropout else 0.0,
        dtype=draw(DTYPES),
        seed=draw(st.integers(0, 2**64 - 1)),
        backend=draw(st.sampled_from(["mkl", "native"])),
    )
    return Net(ts.MLP, (sizes,), kwargs)


def nets(dropout=True):
    return st.one_of(mlp_nets(dropout=dropout), sequential_nets(dropout=dropout))


def has_batch_norm(model) -> bool:
    return any(m.kind == "batch_norm" for m in model.modules)


@st.composite
def datasets(draw, model, min_rows=1, max_rows=48):
    """(X, y): finite inputs of a random scale and the targets the model's loss takes: labels,
    probability rows, real targets (squared error) or targets in [0, 1] (logistic)."""
    rows = draw(st.integers(max(min_rows, 2 if has_batch_norm(model) else 1), max_rows))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    D, K = model.sizes[0], model.sizes[-1]
    X = rng.standard_normal((rows, D)) * draw(st.sampled_from([0.1, 1.0, 3.0]))
    X = X.astype(draw(st.sampled_from([np.float64, np.float32, model.dtype])))
    kind = draw(st.sampled_from(["labels", "labels", "matrix"]))
    if kind == "labels":
        y = rng.integers(0, K, rows)
    elif model.loss == "squared_error":
        y = rng.uniform(-1.0, 1.0, (rows, K))
        if K == 1 and draw(st.booleans()):
            y = y[:, 0]  # regression targets as a vector
    elif model.loss == "logistic_cross_entropy":
        y = rng.uniform(0.0, 1.0, (rows, K))
    else:
        y = rng.dirichlet(np.ones(K), rows)
    return X, y


def batch_sizes(rows: int, batch_norm: bool):
    """1 to rows + 2; with batch norm no batch of a single example (none of size 1, and no
    last batch of 1)."""
    if not batch_norm:
        return st.integers(1, rows + 2)
    return st.sampled_from([b for b in range(2, rows + 3) if b >= rows or rows % b != 1])


def schedules(lr: float):
    """None or a learning-rate schedule for base rate ``lr`` (a cosine's floor below lr)."""
    base = st.one_of(
        st.builds(ts.ConstantLR),
        st.builds(ts.StepLR, st.integers(1, 10), st.floats(0.1, 1.0)),
        st.builds(
            ts.MultiStepLR, st.lists(st.integers(0, 30), max_size=3).map(tuple), st.floats(0.1, 1.0)
        ),
        st.builds(ts.ExponentialLR, st.floats(0.8, 1.0)),
        st.builds(ts.CosineLR, st.integers(1, 50), st.floats(0.0, 0.5).map(lambda f: f * lr)),
    )
    warm = st.builds(ts.LinearWarmup, base, st.integers(0, 10), st.floats(0.1, 1.0))
    return st.one_of(st.none(), base, warm)


@st.composite
def optimizers(draw, schedule=True):
    """SGD (plain, momentum, Nesterov, weight decay), Adam or AdamW with moderate rates, so
    that nothing diverges; with or without a learning-rate schedule."""
    kind = draw(st.sampled_from(["sgd", "adam", "adamw"]))
    lr = draw(st.floats(1e-3, 0.02) if kind == "sgd" else st.floats(1e-4, 5e-3))
    sched = draw(schedules(lr)) if schedule else None
    if kind == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
        return ts.SGD(
            lr=lr,
            momentum=momentum,
            nesterov=momentum > 0 and draw(st.booleans()),
            weight_decay=draw(st.sampled_from([0.0, 1e-4, 1e-2])),
            schedule=sched,
        )
    cls = ts.Adam if kind == "adam" else ts.AdamW
    return cls(
        lr=lr,
        betas=(draw(st.floats(0.5, 0.95)), draw(st.floats(0.9, 0.999))),
        eps=draw(st.sampled_from([1e-8, 1e-6])),
        weight_decay=draw(st.sampled_from([0.0, 1e-4, 1e-2])),
        new_weight_warmup=draw(st.integers(0, 5)),
        schedule=sched,
    )


SET_EVOLUTIONS = st.builds(
    ts.SET,
    zeta=st.floats(0.0, 1.0),
    delta_t=st.one_of(st.none(), st.integers(1, 5)),
    regrow=st.sampled_from(["uniform", "init", "zero", "normal"]),
    regrow_std=st.floats(0.0, 0.1),
)
RIGL_EVOLUTIONS = st.builds(
    ts.RigL,
    alpha=st.floats(0.0, 1.0),
    delta_t=st.integers(1, 4),
    t_end=st.one_of(st.floats(0.01, 1.0), st.integers(0, 20)),
    schedule=st.sampled_from(["cosine", "constant", "exponential"]),
    exponent=st.floats(0.5, 3.0),
    skip_optimizer_step=st.booleans(),
)
EVOLUTIONS = st.one_of(st.none(), SET_EVOLUTIONS, RIGL_EVOLUTIONS)


@dataclass
class Training:
    """One fit call's arguments, on data of its own."""

    X: np.ndarray
    y: np.ndarray
    kwargs: dict

    def fit(self, model, **override):
        return fit(model, self.X, self.y, **{**self.kwargs, **override})


def fit(model, X, y, **kwargs):
    """``model.fit``, or None when training diverged: fit stops with FloatingPointError at a
    non-finite loss (a diverging run, or cross entropy of a probability that underflowed to
    0), the model as after the last step with a finite loss."""
    try:
        return model.fit(X, y, **kwargs)
    except FloatingPointError as e:
        note(f"diverged: {e}")
        event("fit diverged (FloatingPointError)")
        return None


@st.composite
def trainings(draw, model, evolution=True, schedule=True, epochs=None):
    X, y = draw(datasets(model))
    kwargs = {
        "epochs": draw(st.integers(1, 2) if epochs is None else epochs),
        "batch_size": draw(batch_sizes(len(X), has_batch_norm(model))),
        "optimizer": draw(optimizers(schedule=schedule)),
        "shuffle": draw(st.booleans()),
        "evolution": draw(EVOLUTIONS) if evolution else None,
    }
    return Training(X, y, kwargs)


# -- checks --------------------------------------------------------------------------------------
def check_layers(model, nnz=None) -> None:
    """Every linear layer: W a valid CSR (sparse) or an ndarray (dense) of the layer's shape
    and the model's dtype, nnz and density consistent, b of the right shape, DW (when there)
    with W's pattern, optimizer state aligned with W.data, ITOP rate in [density, 1]; with
    ``nnz``, each layer's count is the one given."""
    for i, layer in enumerate(model.layers):
        out, inp = layer.shape
        assert (out, inp) == (model.sizes[i + 1], model.sizes[i])
        W = layer.W
        assert W.dtype == model.dtype
        if layer.is_sparse:
            assert_csr_valid(W, (out, inp))
            assert layer.nnz == W.nnz == len(W.data)
        else:
            assert isinstance(W, np.ndarray) and W.shape == (out, inp)
            assert layer.nnz == out * inp
        assert layer.density == pytest.approx(layer.nnz / (out * inp), rel=1e-12)
        b = layer.b
        assert b.shape == (out,) and b.dtype == model.dtype
        DW = layer.DW
        if DW is not None:
            if layer.is_sparse:
                assert_same_pattern(DW, W)
            else:
                assert DW.shape == (out, inp)
        state = layer.optimizer_state  # aligned with W.data
        for key in ("m", "v"):
            assert state[key] is None or np.shape(state[key]) == (layer.nnz,), key
        assert layer.density - 1e-12 <= layer.itop_rate <= 1.0
        if nnz is not None:
            assert layer.nnz == nnz[i], f"layer {i}: nnz {layer.nnz}, expected {nnz[i]}"
    assert model.nnz == sum(layer.nnz for layer in model.layers)


def tame(model, bound: float = 1e3) -> bool:
    """Weights, biases and module parameters finite and at most ``bound`` in magnitude, and
    batch-norm statistics finite: the outputs of finite inputs must then be finite. (The
    learning rates are moderate, but a deep identity network on squared error can still
    diverge, and the weights of a diverged run may be finite and still overflow.)"""
    for module in model.modules:
        if module.kind == "linear":
            W = module.W
            arrays = [W.data if sp.issparse(W) else W, module.b]
        else:
            arrays = list(module.parameters.values())
            if module.kind == "batch_norm":
                statistics = [module.running_mean, module.running_var]
                if not all(np.all(np.isfinite(a)) for a in statistics):
                    return False
        for a in arrays:
            if not (np.all(np.isfinite(a)) and np.all(np.abs(a) <= bound)):
                return False
    return True


def finite_loss_expected(model) -> bool:
    """The loss of finite data is finite for a tame model, except cross entropy on
    probabilities (−log 0 = inf when a probability underflows, by definition)."""
    return tame(model) and model.loss != "cross_entropy"


def snapshot(model) -> list:
    """Everything a model holds, as (name, array) pairs: weights and patterns, biases, module
    parameters, batch-norm statistics, optimizer state, removed inputs."""
    out = []
    for i, module in enumerate(model.modules):
        if module.kind == "linear":
            W = module.W
            if sp.issparse(W):
                out += [(f"{i}.indptr", W.indptr), (f"{i}.indices", W.indices)]
                out.append((f"{i}.W", W.data))
            else:
                out.append((f"{i}.W", W))
            out.append((f"{i}.b", module.b))
            state = module.optimizer_state
            out.append((f"{i}.steps", np.asarray(state["steps"])))
            for key in ("m", "v"):
                if state.get(key) is not None:
                    out.append((f"{i}.{key}", state[key]))
        else:
            for name, value in sorted(module.parameters.items()):
                out.append((f"{i}.{name}", value))
            if module.kind == "batch_norm":
                out += [(f"{i}.running_mean", module.running_mean)]
                out += [(f"{i}.running_var", module.running_var)]
    out.append(("removed_inputs", model.removed_inputs))
    return [(name, np.array(a)) for name, a in out]


def assert_identical(a: list, b: list) -> None:
    """Two snapshots are identical bit for bit."""
    assert [name for name, _ in a] == [name for name, _ in b]
    for (name, x), (_, y) in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), f"{name} differs"


def assert_same_outputs(a, b) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), "outputs differ"


def check_records(model, records) -> None:
    """Topology records: one per sparse layer and update, nnz kept (as many grown as
    dropped), positions sorted and in range, degree histograms of the layer's shape."""
    for r in records:
        layer = model.layers[r["layer"]]
        out, inp = layer.shape
        assert (
            r["dropped"] == r["grown"] == len(r["dropped_positions"]) == len(r["grown_positions"])
        )
        for key in ("dropped_positions", "grown_positions"):
            p = np.asarray(r[key])
            assert np.all(np.diff(p) > 0) and (
                p.size == 0 or (p.min() >= 0 and p.max() < out * inp)
            )
        h_in, h_out = np.asarray(r["in_degree_histogram"]), np.asarray(r["out_degree_histogram"])
        assert h_in.sum() == inp and h_out.sum() == out
        assert (
            (h_in * np.arange(h_in.size)).sum() == r["nnz"] == (h_out * np.arange(h_out.size)).sum()
        )
        assert 0.0 <= r["itop_rate"] <= 1.0


def check_outputs(model, X) -> None:
    """forward and predict of finite X: right shape and dtype, finite while the weights are,
    the same twice, predict the argmax of forward."""
    out = model.forward(X)
    assert out.shape == (len(X), model.sizes[-1]) and out.dtype == model.dtype
    if tame(model):
        assert np.all(np.isfinite(out)), "non-finite outputs of finite inputs and weights"
    labels = model.predict(X)
    assert labels.shape == (len(X),) and labels.dtype == np.int64
    assert np.all((labels >= 0) & (labels < model.sizes[-1]))
    assert_same_outputs(model.forward(X), out)
    if np.all(np.isfinite(out)):
        assert np.array_equal(labels, np.argmax(out, axis=1))


def csr_of(values, rows, cols, shape):
    """CSR arrays from entries in row order (columns in any order within a row), zeros kept."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return sp.csr_array((values, cols, indptr), shape=shape)


def _unsorted_csr(values, rows, cols, shape):
    """A CSR array whose column indices are shuffled within each row."""
    order = np.lexsort((values, rows))  # by row, and within a row in an order of its own
    return csr_of(values[order], rows[order], cols[order], shape)


def keepable_bias(layer, b):
    """``b``, or zeros when ``b`` is None but the layer's bias is not finite (a diverged
    run): ``set_weights(W)`` keeps the bias, and refuses a non-finite one ("[Linear.
    set_weights] b contains NaN or infinity", although no b was given)."""
    if b is None and not np.all(np.isfinite(layer.b)):
        return np.zeros(layer.shape[0])
    return b


# The scipy sparse inputs of set_weights, from entries (values, rows, cols) in random order.
SPARSE_FORMATS = {
    "coo_array": lambda v, r, c, shape: sp.coo_array((v, (r, c)), shape=shape),
    "csc_array": lambda v, r, c, shape: sp.coo_array((v, (r, c)), shape=shape).tocsc(),
    "csr_array": lambda v, r, c, shape: sp.coo_array((v, (r, c)), shape=shape).tocsr(),
    "csr_matrix": lambda v, r, c, shape: sp.csr_matrix(sp.coo_array((v, (r, c)), shape=shape)),
    "csr_unsorted": _unsorted_csr,
}


# -- the stateful test ---------------------------------------------------------------------------
class ModelMachine(RuleBasedStateMachine):
    """A random model under random calls; its invariants hold after every call."""

    @initialize(net=nets(), data=st.data())
    def build(self, net, data):
        note(repr(net))
        self.model = net.build()
        self.X, self.y = data.draw(datasets(self.model, min_rows=1), label="data")
        self.probe, self.probe_y = data.draw(datasets(self.model, max_rows=8), label="probe")
        self.nnz = [layer.nnz for layer in self.model.layers]
        self.removed = np.zeros(self.model.sizes[0], dtype=bool)

    @property
    def batch_norm(self) -> bool:
        return has_batch_norm(self.model)

    # -- training and topology ------------------------------------------------------------------
    @rule(data=st.data())
    def fit(self, data):
        kwargs = {
            "epochs": 1,
            "batch_size": data.draw(batch_sizes(len(self.X), self.batch_norm), label="batch_size"),
            "optimizer": data.draw(optimizers(), label="optimizer"),
            "evolution": data.draw(EVOLUTIONS, label="evolution"),
            "shuffle": data.draw(st.booleans(), label="shuffle"),
            "input_noise": data.draw(st.sampled_from([0.0, 0.0, 0.1]), label="input_noise"),
        }
        validation = data.draw(st.booleans(), label="validation")
        if validation:
            kwargs["validation_data"] = (self.probe, self.probe_y)
        history = fit(self.model, self.X, self.y, **kwargs)
        if history is None:  # diverged: stopped before the bad step
            return
        assert len(history["loss"]) == 1
        assert 0.0 <= history["accuracy"][0] <= 1.0
        if finite_loss_expected(self.model):
            assert np.isfinite(history["loss"][0])
        if validation:
            assert 0.0 <= history["val_accuracy"][0] <= 1.0
            expected = self.model.evaluate(self.probe, self.probe_y)
            assert history["val_loss"][0] == pytest.approx(expected["loss"], rel=1e-5, nan_ok=True)
        check_records(self.model, history.get("topology", []))

    @rule(data=st.data())
    def fit_no_epochs(self, data):
        """fit(epochs=0) changes nothing."""
        before = snapshot(self.model)
        batch_size = data.draw(batch_sizes(len(self.X), self.batch_norm), label="batch_size")
        history = self.model.fit(self.X, self.y, epochs=0, batch_size=batch_size)
        assert history["loss"] == []
        assert_identical(before, snapshot(self.model))

    @rule(evolution=SET_EVOLUTIONS)
    def evolve_set(self, evolution):
        records = self.model.evolve(evolution)
        assert [r["layer"] for r in records] == [
            i for i, layer in enumerate(self.model.layers) if layer.is_sparse
        ]
        check_records(self.model, records)

    @rule(evolution=RIGL_EVOLUTIONS, fraction=st.one_of(st.none(), st.floats(0.0, 1.0)))
    def evolve_rigl(self, evolution, fraction):
        records = self.model.evolve(evolution, self.X, self.y, drop_fraction=fraction)
        check_records(self.model, records)

    # -- inference ------------------------------------------------------------------------------
    @rule()
    def predict_and_forward(self):
        check_outputs(self.model, self.X)

    @rule()
    def evaluate(self):
        result = self.model.evaluate(self.X, self.y)
        assert sorted(result) == ["accuracy", "loss"]
        if finite_loss_expected(self.model):
            assert np.isfinite(result["loss"])
        assert 0.0 <= result["accuracy"] <= 1.0

    @rule()
    def forward_train(self):
        out = self.model.forward(self.X, train=True)
        assert out.shape == (len(self.X), self.model.sizes[-1]) and out.dtype == self.model.dtype
        if tame(self.model):
            assert np.all(np.isfinite(out))

    @rule()
    def backward(self):
        before = snapshot(self.model)
        loss = self.model.backward(self.X, self.y)
        after = snapshot(self.model)  # the weights do not change (batch-norm statistics do)
        assert_identical(
            [e for e in before if "running" not in e[0]],
            [e for e in after if "running" not in e[0]],
        )
        if finite_loss_expected(self.model):
            assert np.isfinite(loss)
        for layer in self.model.layers:
            assert layer.DW is not None and layer.Db.shape == (layer.shape[0],)

    # -- weights --------------------------------------------------------------------------------
    @rule(data=st.data())
    def set_weights_sparse(self, data):
        """A random scipy sparse W (CSR, CSC or COO, explicit zeros included) becomes the
        layer's pattern, whatever the layer was."""
        i = data.draw(st.integers(0, len(self.model.layers) - 1), label="layer")
        layer = self.model.layers[i]
        out, inp = layer.shape
        density = data.draw(
            st.sampled_from([0.0, 0.05, 0.3, 1.0]) | st.floats(0.0, 1.0), label="density"
        )
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        fmt = data.draw(st.sampled_from(sorted(SPARSE_FORMATS)), label="format")
        rng = np.random.default_rng(seed)
        count = int(round(density * out * inp))
        rows, cols = np.divmod(rng.choice(out * inp, size=count, replace=False), inp)
        values = rng.standard_normal(count) / np.sqrt(max(1.0, count / out))
        values[rng.random(count) < 0.1] = 0.0  # explicit zeros are stored
        W = SPARSE_FORMATS[fmt](values, rows, cols, (out, inp))
        b = rng.standard_normal(out) * 0.1 if data.draw(st.booleans(), label="new b") else None
        b = keepable_bias(layer, b)
        b_before = layer.b
        layer.set_weights(W, b)
        order = np.lexsort((cols, rows))
        expected = csr_of(values[order], rows[order], cols[order], (out, inp))
        got = layer.W
        assert layer.is_sparse
        assert_csr_valid(got, (out, inp))
        assert_same_pattern(got, expected)
        assert np.array_equal(got.data, expected.data.astype(self.model.dtype))
        assert np.array_equal(layer.b, b_before if b is None else b.astype(self.model.dtype))
        self._after_set_weights(i, count)

    @rule(data=st.data())
    def set_weights_dense(self, data):
        """A dense ndarray: a dense layer stays dense; a sparse layer gets its nonzeros."""
        i = data.draw(st.integers(0, len(self.model.layers) - 1), label="layer")
        layer = self.model.layers[i]
        out, inp = layer.shape
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        W = rng.standard_normal((out, inp)) / np.sqrt(inp)
        W[rng.random((out, inp)) < data.draw(st.floats(0.0, 1.0), label="zeros")] = 0.0
        was_sparse = layer.is_sparse
        layer.set_weights(W, keepable_bias(layer, None))
        assert layer.is_sparse == was_sparse
        assert np.array_equal(dense_of(layer.W), W.astype(self.model.dtype))
        self._after_set_weights(i, np.count_nonzero(W) if was_sparse else out * inp)

    def _after_set_weights(self, i, nnz):
        self.nnz[i] = nnz
        if i == 0:  # a new first layer has no removed input
            self.removed[:] = False
        state = self.model.layers[i].optimizer_state
        assert state["steps"] == 0 and state["m"] is None and state["v"] is None
        assert all(layer.DW is None for layer in self.model.layers)

    # -- input neurons --------------------------------------------------------------------------
    @precondition(lambda self: self.model.layers[0].is_sparse)
    @rule(data=st.data())
    def remove_inputs(self, data):
        D = self.model.sizes[0]
        columns = data.draw(st.lists(st.integers(0, D - 1), unique=True, max_size=max(1, D // 3)))
        with_batch = data.draw(st.booleans(), label="gradient growth")
        W = self.model.layers[0].W
        out = W.shape[0]
        new = np.zeros(D, dtype=bool)
        new[columns] = True
        moved = int(np.isin(W.indices, columns).sum())
        room = out * int((~(self.removed | new)).sum()) - (W.nnz - moved)
        batch = (self.X, self.y) if with_batch else (None, None)
        event(
            f"remove_inputs {'refused' if (new & self.removed).any() or moved > room else 'done'}"
        )
        if (new & self.removed).any() or moved > room:  # refused, and nothing changes
            before = snapshot(self.model)
            with pytest.raises(ValueError, match="remove_inputs"):
                self.model.remove_inputs(columns, *batch)
            assert_identical(before, snapshot(self.model))
            return
        record = self.model.remove_inputs(columns, *batch)
        assert record["dropped"] == record["grown"] == moved
        self.removed |= new
        check_records(self.model, [record])

    @rule()
    def input_strength(self):
        strength = self.model.input_strength()
        assert strength.shape == (self.model.sizes[0],)
        assert strength.dtype == np.float64
        W = dense_of(self.model.layers[0].W).astype(np.float64)
        assert_close(strength, np.abs(W).sum(axis=0), dtype=strength.dtype, rtol=1e-12, atol=0)
        assert np.all(strength[self.removed] == 0)

    # -- round trips ----------------------------------------------------------------------------
    def _check_copy(self, copy, data):
        """``copy`` holds what the model holds, computes what it computes, and trains on as it
        would; it then replaces the model."""
        assert type(copy) is type(self.model)
        assert copy.sizes == self.model.sizes and copy.dtype == self.model.dtype
        assert copy.loss == self.model.loss and copy.specs == self.model.specs
        assert_identical(snapshot(self.model), snapshot(copy))
        assert_same_outputs(copy.forward(self.probe), self.model.forward(self.probe))
        assert np.array_equal(copy.predict(self.X), self.model.predict(self.X))
        if data.draw(st.booleans(), label="train both"):
            kwargs = {
                "epochs": 1,
                "batch_size": data.draw(batch_sizes(len(self.X), self.batch_norm)),
                "optimizer": data.draw(optimizers()),
                "evolution": data.draw(EVOLUTIONS),
            }
            a = fit(self.model, self.X, self.y, **kwargs)
            b = fit(copy, self.X, self.y, **kwargs)
            assert_identical(snapshot(self.model), snapshot(copy))
            assert (a is None) == (b is None)
            if a is not None:
                assert np.array_equal(a["loss"], b["loss"], equal_nan=True)
        self.model = copy

    @rule(data=st.data())
    def save_and_load(self, data):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.tsck")
            self.model.save(path)
            copy = ts.load(path)
        self._check_copy(copy, data)

    @rule(data=st.data())
    def pickle_round_trip(self, data):
        self._check_copy(pickle.loads(pickle.dumps(self.model)), data)

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def layers_are_valid(self):
        check_layers(self.model, self.nnz)

    @invariant()
    def removed_inputs_hold_no_weight(self):
        assert np.array_equal(self.model.removed_inputs, self.removed)
        first = self.model.layers[0]
        if self.removed.any():
            assert first.is_sparse
            assert not np.isin(first.W.indices, np.flatnonzero(self.removed)).any()

    @invariant()
    def outputs_are_finite(self):
        check_outputs(self.model, self.probe)


TestModelMachine = ModelMachine.TestCase
TestModelMachine.settings = budget(80, stateful_step_count=25 if PROFILE != "thorough" else 60)


# -- plain properties ----------------------------------------------------------------------------
def _reference_tolerance(dtype) -> dict:
    """The engine against a float64 reference computed from the same values. Rounding errors
    are relative to the intermediate values, not to the result: batch norm divides a
    difference by a deviation that can be as small as sqrt(eps), up to four times in a
    stack, and a gradient that is 0 in exact arithmetic (a bias before batch norm) comes out
    as rounding noise of the terms that cancel. A wrong equation is off by far more."""
    return {"rtol": 2e-3, "atol": 2e-3} if dtype == np.float32 else {"rtol": 1e-6, "atol": 1e-6}


@budget(150)
@given(net=nets(), data=st.data())
def test_forward_equals_the_numpy_reference(net, data):
    """After a random training run (so batch-norm statistics, SReLU and affine parameters have
    moved), the evaluation-mode output equals the reference's; without dropout, so does the
    training-mode output (batch statistics)."""
    model = net.build()
    training = data.draw(trainings(model))
    assume(training.fit(model) is not None and tame(model))
    X = data.draw(datasets(model, max_rows=16), label="X")[0]
    layers = refnet.reference_network(model, model.specs)
    refnet.set_mode(layers, train=False)
    tol = _reference_tolerance(model.dtype)
    assert_close(model.forward(X), refnet.forward(layers, X), dtype=model.dtype, **tol)
    dropout = any(isinstance(s, L.Dropout) and s.p > 0 for s in model.specs)
    if not dropout and (len(X) >= 2 or not has_batch_norm(model)):
        layers = refnet.reference_network(model, model.specs)
        refnet.set_mode(layers, train=True)
        assert_close(
            model.forward(X, train=True), refnet.forward(layers, X), dtype=model.dtype, **tol
        )


@budget(80)
@given(net=nets(dropout=False), data=st.data())
def test_backward_equals_the_numpy_reference(net, data):
    """In float64 (the precision for gradient checks), after a random training run, the loss
    of ``backward`` and every parameter gradient (linear, batch norm, affine, SReLU) equal the
    reference's; a sparse layer's DW has W's pattern. Without dropout, whose masks the
    reference cannot draw."""
    model = net.build(dtype=np.float64)
    training = data.draw(trainings(model))
    assume(training.fit(model) is not None and tame(model))
    X, y = data.draw(datasets(model, max_rows=16), label="batch")
    layers = refnet.reference_network(model, model.specs)
    refnet.set_mode(layers, train=True)
    loss = model.backward(X, y)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.floating):
        y = y[:, None]  # regression targets as a vector: one output
    _, expected = refnet.forward_backward(layers, refnet.reference_loss(model), X, y)
    assume(np.isfinite(expected))  # cross entropy of an underflowed probability
    # A feature that is constant over the batch normalizes to 0 in exact arithmetic, and to
    # rounding noise of either sign (its mean is rounded) in the engine and the reference
    # alike; a ReLU after it then passes or blocks the gradient by that sign. Not comparable.
    for layer in layers:
        if isinstance(layer, R.BatchNorm):
            assume(np.all(np.abs(layer.Z).max(axis=1) > 1e-9))
    tol = _reference_tolerance(np.float64)
    assert_close(np.float64(loss), np.float64(expected), **tol)
    for module, layer in zip(model.modules, layers):
        want = refnet.gradients(layer)
        if module.kind == "linear":
            if module.is_sparse:
                assert_same_pattern(module.DW, module.W)
            assert_close(dense_of(module.DW), want["DW"], dtype=np.float64, **tol)
            assert_close(module.Db, want["Db"], dtype=np.float64, **tol)
        else:
            got = module.gradients
            assert sorted(got) == sorted(want), module.kind
            for name in got:
                assert_close(got[name], want[name], dtype=np.float64, **tol)


@budget(80)
@given(net=nets(), data=st.data())
def test_one_seed_gives_one_model_one_prediction_one_run(net, data):
    """Two models built with the same arguments and seed are identical, predict the same
    (every time), and train identically."""
    a, b = net.build(), net.build()
    assert_identical(snapshot(a), snapshot(b))
    X = data.draw(datasets(a), label="X")[0]
    assert_same_outputs(a.forward(X), b.forward(X))
    assert np.array_equal(a.predict(X), a.predict(X))
    assert np.array_equal(a.predict(X), b.predict(X))
    training = data.draw(trainings(a))
    ha, hb = training.fit(a), training.fit(b)
    assert_identical(snapshot(a), snapshot(b))
    assert (ha is None) == (hb is None)
    if ha is not None:
        assert np.array_equal(ha["loss"], hb["loss"], equal_nan=True)
    assert_same_outputs(a.forward(X), b.forward(X))


@budget(30)
@given(net=nets(), data=st.data())
def test_fit_is_bit_identical_on_one_and_two_threads(net, data):
    """The same seed trains to the same bits on 1 and 2 threads (weights, patterns, module
    parameters, statistics, optimizer state, topology records)."""
    training = data.draw(trainings(net.build()))
    before = ts.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            ts.set_num_threads(threads)
            model = net.build()
            history = training.fit(model) or {}  # diverged: where it stopped must agree too
            positions = [
                np.concatenate([r["dropped_positions"], r["grown_positions"]])
                for r in history.get("topology", [])
            ]
            runs.append((snapshot(model), positions, model.forward(training.X)))
    finally:
        ts.set_num_threads(before)
    (s1, p1, o1), (s2, p2, o2) = runs
    assert_identical(s1, s2)
    assert len(p1) == len(p2) and all(np.array_equal(a, b) for a, b in zip(p1, p2))
    assert_same_outputs(o1, o2)


@budget(80)
@given(net=nets(), data=st.data())
def test_two_fits_of_one_epoch_equal_one_fit_of_two(net, data):
    """Without evolution and schedule, fit(epochs=1) twice gives the weights of fit(epochs=2)
    (docs/python-api.md#training): optimizer state, epoch counter (the shuffle) and step
    counter (dropout masks) carry over."""
    a = net.build()
    training = data.draw(trainings(a, evolution=False, schedule=False, epochs=st.just(2)))
    b = net.build()
    assume(training.fit(a) is not None)
    assume(training.fit(b, epochs=1) is not None and training.fit(b, epochs=1) is not None)
    assert_identical(snapshot(a), snapshot(b))
