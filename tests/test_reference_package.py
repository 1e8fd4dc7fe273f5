"""Tests of the NumPy reference package truesparse.reference itself.

The engine is compared with this reference everywhere else, so the reference is checked here
on its own: it imports with NumPy alone; the backward of every layer and activation, the
gradient of every loss, and whole networks of them agree with float64 central differences
(parameters included); a small case worked out by hand; batch-norm running statistics,
dropout masks, loss stability; the optimizers against their update formulas (optimizer.h,
PyTorch), the new-weight warm-up and topology updates included; and the learning-rate
schedules against values worked out by hand. Its gradient equations are also proven in
validation/ (SymPy) and tied to this code there.

The per-component checks are parametrised by the names in ``reference.LAYERS``,
``ACTIVATIONS``, ``LOSSES`` and ``OPTIMIZERS``: a name without a case here is a failing test.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest

import processes
from conftest import assert_close
from truesparse import reference as ref

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "python" / "truesparse" / "reference"


def test_reference_imports_without_the_compiled_core():
    code = f"""
import importlib.util, sys
sys.modules["truesparse._core"] = None  # any import of the core now fails
spec = importlib.util.spec_from_file_location(
    "standalone_reference", {str(REFERENCE_DIR / "__init__.py")!r},
    submodule_search_locations=[{str(REFERENCE_DIR)!r}])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
assert "scipy" not in sys.modules, "the reference must need NumPy only"
print(sorted(module.LOSSES))
"""
    out = processes.run_python(code)
    assert out.returncode == 0, out.stderr
    assert "softmax_cross_entropy" in out.stdout


# ---------------------------------------------------------------- cases, by registered name

D, K, N = 4, 3, 5  # input features, outputs, examples


def make_layers(rng):
    """(name, layer, input shape) for every case of a layer or activation, its name as
    registered in reference.LAYERS or ACTIVATIONS; a name may have several cases."""
    pattern = rng.integers(0, 2, (K, D))
    return [
        ("linear", ref.Linear(rng.standard_normal((K, D)), rng.standard_normal(K)), (D, N)),
        (
            "linear",  # sparse
            ref.Linear(rng.standard_normal((K, D)), rng.standard_normal(K), pattern),
            (D, N),
        ),
        ("softmax", ref.Softmax(), (K, N)),
        ("log_softmax", ref.LogSoftmax(), (K, N)),
        ("batch_norm", ref.BatchNorm(D, eps=1e-3), (D, N)),
        ("affine", ref.Affine(rng.standard_normal(D), rng.standard_normal(D)), (D, N)),
        ("dropout", ref.Dropout(0.3, mask=rng.integers(0, 2, (D, N))), (D, N)),
        ("relu", ref.ReLU(), (D, N)),
        ("leaky_relu", ref.LeakyReLU(0.1), (D, N)),
        ("all_relu", ref.AllReLU(0.1, 1), (D, N)),  # odd layer: slope +alpha
        ("all_relu", ref.AllReLU(0.1, 2), (D, N)),  # even layer: slope −alpha
        ("sigmoid", ref.Sigmoid(), (D, N)),
        ("tanh", ref.Tanh(), (D, N)),
        ("identity", ref.Identity(), (D, N)),
        ("srelu", ref.SReLU(-0.4, 0.2, 0.6, 0.5), (D, N)),
    ]


def _layer_cases() -> dict:
    """make_layers' cases by name: {name: {variant: index in make_layers}}, the variants of a
    name numbered from "0"."""
    cases = {}
    for index, (name, _, _) in enumerate(make_layers(np.random.default_rng(0))):
        variants = cases.setdefault(name, {})
        variants[str(len(variants))] = index
    return cases


LAYER_CASES = _layer_cases()

# name in reference.ACTIVATIONS: make(layer) -> the activation of hidden layer ``layer``
# (counted from 1) of a network
HIDDEN_CASES = {
    "relu": lambda layer: ref.ReLU(),
    "leaky_relu": lambda layer: ref.LeakyReLU(0.1),
    "all_relu": lambda layer: ref.AllReLU(0.1, layer),
    "sigmoid": lambda layer: ref.Sigmoid(),
    "tanh": lambda layer: ref.Tanh(),
    "identity": lambda layer: ref.Identity(),
    "srelu": lambda layer: ref.SReLU(-0.4, 0.2, 0.6, 0.5),
}


def _one_hot(rng, K, N):
    return ref.one_hot(rng.integers(0, K, N), K)


# name in reference.LOSSES: {variant: make(rng) -> (loss, Y (K,N) in its domain, T (K,N))}
LOSS_CASES = {
    "squared_error": {
        "": lambda rng: (
            ref.SquaredError(),
            rng.standard_normal((K, N)),
            rng.standard_normal((K, N)),
        ),
    },
    "cross_entropy": {
        "": lambda rng: (
            ref.CrossEntropy(),
            ref.matrix_operations.softmax(rng.standard_normal((K, N))),
            _one_hot(rng, K, N),
        ),
        "smoothed": lambda rng: (
            ref.CrossEntropy(0.1),
            ref.matrix_operations.softmax(rng.standard_normal((K, N))),
            _one_hot(rng, K, N),
        ),
    },
    "logistic_cross_entropy": {
        "": lambda rng: (
            ref.LogisticCrossEntropy(),
            rng.standard_normal((K, N)),
            rng.uniform(0.0, 1.0, (K, N)),
        ),
    },
    "negative_log_likelihood": {
        "": lambda rng: (
            ref.NegativeLogLikelihood(),
            ref.matrix_operations.log_softmax(rng.standard_normal((K, N))),
            _one_hot(rng, K, N),
        ),
        "smoothed": lambda rng: (
            ref.NegativeLogLikelihood(0.1),
            ref.matrix_operations.log_softmax(rng.standard_normal((K, N))),
            _one_hot(rng, K, N),
        ),
    },
    "softmax_cross_entropy": {
        "": lambda rng: (
            ref.SoftmaxCrossEntropy(),
            rng.standard_normal((K, N)),
            _one_hot(rng, K, N),
        ),
        "smoothed": lambda rng: (
            ref.SoftmaxCrossEntropy(0.1),
            rng.standard_normal((K, N)),
            _one_hot(rng, K, N),
        ),
        "soft_targets": lambda rng: (
            ref.SoftmaxCrossEntropy(),
            rng.standard_normal((K, N)),
            rng.dirichlet(np.ones(K), size=N).T,
        ),
    },
}


def _params(names, cases):
    """One param (name, variant) per variant of the case of every name in ``names``; a case
    that is not a dict is a single variant "". A name without a case gives the variant None,
    for which the test fails."""
    for name in names:
        case = cases.get(name)
        if case is None:
            yield pytest.param(name, None, id=f"{name}-MISSING")
        elif isinstance(case, dict):
            for variant in case:
                yield pytest.param(
                    name, variant, id=f"{name}-{variant}" if len(case) > 1 and variant else name
                )
        else:
            yield pytest.param(name, "", id=name)


def _case(cases, name, variant):
    if variant is None:
        pytest.fail(f"{name!r} is registered in truesparse.reference but has no case here")
    case = cases[name]
    return case[variant] if isinstance(case, dict) else case


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def test_every_case_is_a_registered_name():
    """The other direction: no case for a name the reference no longer registers."""
    assert set(LAYER_CASES) <= set(ref.LAYERS) | set(ref.ACTIVATIONS)
    assert set(HIDDEN_CASES) <= set(ref.ACTIVATIONS)
    assert set(LOSS_CASES) <= set(ref.LOSSES)
    assert set(OPTIMIZER_CASES) <= set(ref.OPTIMIZERS)


# ---------------------------------------------------------------- finite differences


def numeric_gradient(f, x, h=1e-6):
    """Central differences of the scalar f() with respect to the array x (changed in place)."""
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def kinks(layer) -> list:
    """The inputs at which an activation's derivative jumps (none for smooth layers)."""
    if isinstance(layer, (ref.ReLU, ref.LeakyReLU, ref.AllReLU)):
        return [0.0]
    if isinstance(layer, ref.SReLU):
        return [layer.tl, layer.tr]
    return []


def check_parameter_gradients(layer, objective, h=1e-6) -> None:
    """The gradients the last ``backward`` stored on ``layer`` equal central differences of
    ``objective()`` in each of its parameters (zero off the pattern of a sparse linear)."""
    grads = {k: np.array(v, dtype=float) for k, v in layer.gradients().items()}
    for pname, value in layer.parameters().items():
        if isinstance(value, np.ndarray):
            expected = numeric_gradient(objective, value, h)
        else:  # SReLU's scalar parameters

            def at(v, pname=pname):
                setattr(layer, pname, v)
                return objective()

            expected = np.array((at(value + h) - at(value - h)) / (2 * h))
            setattr(layer, pname, value)
        if isinstance(layer, ref.Linear) and layer.pattern is not None and pname == "W":
            expected = expected * layer.pattern
        assert_close(grads["D" + pname], expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "name, variant", list(_params([*ref.LAYERS, *ref.ACTIVATIONS], LAYER_CASES))
)
def test_layer_backward_matches_finite_differences(name, variant):
    index = _case(LAYER_CASES, name, variant)
    rng = _rng(name, variant)
    _, layer, shape = make_layers(rng)[index]
    X = rng.standard_normal(shape)
    for kink in kinks(layer):
        X[np.abs(X - kink) < 0.05] += 0.2  # away from the kinks
    DY = rng.standard_normal(layer.forward(X).shape)

    def objective():  # L = elements_sum(DY ⊙ forward(X))
        return float(np.sum(DY * layer.forward(X)))

    layer.forward(X)  # (batch norm: training mode; the running statistics do not enter Y)
    DX = layer.backward(DY)
    assert_close(DX, numeric_gradient(objective, X), rtol=1e-6, atol=1e-8)
    check_parameter_gradients(layer, objective)


@pytest.mark.parametrize("name, variant", list(_params(ref.LOSSES, LOSS_CASES)))
def test_loss_gradient_matches_finite_differences(name, variant):
    loss, Y, T = _case(LOSS_CASES, name, variant)(_rng(name, variant))
    DY = loss.gradient(Y, T)
    assert DY.shape == Y.shape
    assert_close(DY, numeric_gradient(lambda: loss.value(Y, T), Y), rtol=1e-6, atol=1e-8)


# A loss on probabilities or log-probabilities needs the network to end with that layer.
LAST_LAYER = {"cross_entropy": ref.Softmax, "negative_log_likelihood": ref.LogSoftmax}


def _network(rng, make_activation, loss_name):
    """[Linear, act, Linear, act, Linear (, last layer)] of sizes 5-6-4-3, the first two
    linear layers sparse, with a batch whose hidden pre-activations avoid the kinks."""
    sizes, densities, n = [5, 6, 4, 3], [0.7, 0.6, 1.0], 4
    while True:
        layers = []
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(make_activation(i))
            pattern = rng.random((d_out, d_in)) < densities[i]
            W = rng.standard_normal((d_out, d_in)) * pattern
            layers.append(ref.Linear(W, 0.5 * rng.standard_normal(d_out), pattern))
        if loss_name in LAST_LAYER:
            layers.append(LAST_LAYER[loss_name]())
        X = rng.standard_normal((sizes[0], n))
        A, margin = X, np.inf
        for layer in layers:
            for kink in kinks(layer):
                margin = min(margin, np.abs(A - kink).min())
            A = layer.forward(A)
        if margin > 1e-3:
            return layers, X, ref.one_hot(rng.integers(0, sizes[-1], n), sizes[-1])


@pytest.mark.parametrize("loss_name", list(ref.LOSSES))
@pytest.mark.parametrize("activation, variant", list(_params(ref.ACTIVATIONS, HIDDEN_CASES)))
def test_network_backward_matches_finite_differences(activation, variant, loss_name):
    """The chain rule through a whole network: every parameter gradient left by a backward
    pass of the loss gradient equals central differences of the batch-mean loss."""
    make_activation = _case(HIDDEN_CASES, activation, variant)
    layers, X, T = _network(_rng(activation, loss_name), make_activation, loss_name)
    loss = ref.LOSSES[loss_name]()

    def objective():  # forward only: the gradients stored by the pass below stay
        A = X
        for layer in layers:
            A = layer.forward(A)
        return loss.value(A, T)

    A = X
    for layer in layers:
        A = layer.forward(A)
    DY = loss.gradient(A, T)
    for layer in reversed(layers):
        DY = layer.backward(DY)
    for layer in layers:
        check_parameter_gradients(layer, objective)


def test_network_worked_out_by_hand():
    """One linear layer 2 -> 2, one example, squared error: y = W x + b."""
    W = np.array([[1.0, 2.0], [0.0, -1.0]])
    b = np.array([0.5, 0.25])
    x = np.array([[1.0], [3.0]])  # one example, a column
    layer = ref.Linear(W, b)
    Y = layer.forward(x)
    assert_close(Y, np.array([[7.5], [-2.75]]))  # [1 + 6 + 0.5, -3 + 0.25]
    T = ref.one_hot([0], 2)  # [1, 0]
    loss = ref.SquaredError()
    assert loss.value(Y, T) == pytest.approx(6.5**2 + 2.75**2)
    DY = loss.gradient(Y, T)
    assert_close(DY, np.array([[2 * 6.5], [2 * -2.75]]))
    DX = layer.backward(DY)
    assert_close(layer.Db, DY[:, 0])
    assert_close(layer.DW, DY @ x.T)
    assert_close(DX, W.T @ DY)
    # Softmax cross entropy of equal logits over 2 classes is log 2.
    zero = ref.Linear(np.zeros((2, 2)), np.zeros(2))
    assert ref.SoftmaxCrossEntropy().value(zero.forward(x), ref.one_hot([1], 2)) == (
        pytest.approx(np.log(2.0))
    )


def test_all_relu_alternates_sign():
    X = np.array([[-2.0], [3.0]])
    assert_close(ref.AllReLU(0.1, layer=1).forward(X), np.array([[-0.2], [3.0]]))
    assert_close(ref.AllReLU(0.1, layer=2).forward(X), np.array([[0.2], [3.0]]))
    assert_close(ref.AllReLU(0.1, layer=3).forward(X), np.array([[-0.2], [3.0]]))


def test_sparse_linear_ignores_weights_off_the_pattern():
    rng = np.random.default_rng(1)
    W, b, X = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal((4, 2))
    P = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]])
    sparse = ref.Linear(W, b, pattern=P)
    dense = ref.Linear(W * P, b)
    assert_close(sparse.forward(X), dense.forward(X), rtol=0, atol=0)
    DY = rng.standard_normal((3, 2))
    assert_close(sparse.backward(DY), dense.backward(DY), rtol=0, atol=0)
    assert np.all(sparse.DW[P == 0] == 0)
    assert_close(sparse.DW[P == 1], dense.DW[P == 1], rtol=0, atol=0)


# ---------------------------------------------------------------- batch norm, dropout


def test_batch_norm_running_statistics_follow_pytorch():
    rng = np.random.default_rng(2)
    D, N, m = 3, 6, 0.2
    layer = ref.BatchNorm(D, momentum=m)
    rm, rv = np.zeros(D), np.ones(D)
    for _ in range(3):
        X = rng.standard_normal((D, N)) * 2 + 1
        Y = layer.forward(X)
        rm = (1 - m) * rm + m * X.mean(axis=1)
        rv = (1 - m) * rv + m * X.var(axis=1, ddof=1)  # unbiased
        assert_close(layer.running_mean, rm, rtol=1e-14, atol=0)
        assert_close(layer.running_var, rv, rtol=1e-14, atol=0)
        Z = (X - X.mean(axis=1, keepdims=True)) / np.sqrt(
            X.var(axis=1, keepdims=True) + 1e-5
        )  # biased
        assert_close(Y, Z, rtol=1e-12, atol=1e-12)
    layer.eval()
    X = rng.standard_normal((D, N))
    expected = (X - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5)
    assert_close(layer.forward(X), expected, rtol=1e-12, atol=1e-12)
    assert_close(layer.running_mean, rm, rtol=0, atol=0)  # unchanged in eval mode
    with pytest.raises(ValueError, match="more than 1"):
        layer.train().forward(np.zeros((D, 1)))


def test_dropout_draws_bernoulli_masks_and_scales():
    p = 0.25
    layer = ref.Dropout(p, rng=np.random.default_rng(3))
    X = np.ones((50, 200))
    Y = layer.forward(X)
    assert set(np.unique(layer.M)) <= {0.0, 1.0}
    assert_close(Y, layer.M / (1 - p), rtol=0, atol=0)
    assert abs(layer.M.mean() - (1 - p)) < 0.02
    DY = np.full_like(X, 2.0)
    assert_close(layer.backward(DY), 2.0 * layer.M / (1 - p), rtol=0, atol=0)
    Y2 = layer.forward(X)
    assert not np.array_equal(Y, Y2), "a new mask at every forward"
    layer.eval()
    assert_close(layer.forward(X), X, rtol=0, atol=0)
    with pytest.raises(ValueError):
        ref.Dropout(1.0)


# ---------------------------------------------------------------- losses


def test_losses_are_stable_for_large_logits():
    Y = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 3.0]])
    T = ref.one_hot([0, 2], 3)
    sce = ref.SoftmaxCrossEntropy()
    assert sce.value(Y, T) == pytest.approx((0.0 + (1e4 - 3.0)) / 2)
    assert_close(sce.gradient(Y, T), (ref.matrix_operations.softmax(Y) - T) / 2, rtol=1e-7)
    lce = ref.LogisticCrossEntropy()
    # column 0: log 2 (the 0 logit); column 1: 1e4 (logit 1e4, target 0) + log1p(e^-3)
    assert lce.value(Y, T) == pytest.approx((math.log(2) + 1e4 + math.log1p(math.exp(-3))) / 2)
    assert np.all(np.isfinite(lce.gradient(Y, T)))


def test_label_smoothing_targets():
    T = ref.one_hot([1, 0, 2], 4)
    for loss in (
        ref.CrossEntropy(0.2),
        ref.NegativeLogLikelihood(0.2),
        ref.SoftmaxCrossEntropy(0.2),
    ):
        S = loss.targets(T)
        assert_close(S.sum(axis=0), np.ones(3), rtol=1e-7)
        assert_close(S, 0.8 * T + 0.05, rtol=1e-7)
    Y = np.log(ref.matrix_operations.softmax(np.arange(12.0).reshape(4, 3)))
    sce, nll = ref.SoftmaxCrossEntropy(0.2), ref.NegativeLogLikelihood(0.2)
    assert sce.value(Y, T) == pytest.approx(nll.value(Y, T))  # Y is already log_softmax(Y)


def test_squared_error_matches_the_engine_convention():
    Y, T = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    loss = ref.SquaredError()
    assert loss.value(Y, T) == (1 + 0 + 4 + 16) / 2  # sum over outputs, mean over examples
    assert_close(loss.gradient(Y, T), Y - T, rtol=0, atol=0)  # 2 (Y − T) / N, N = 2


# ---------------------------------------------------------------- optimizers


def engine_sgd(w, gs, lr, mu, nesterov, wd):
    """The SGD loops of optimizer_step in optimizer.h, transcribed loop by loop; the weights
    after each step."""
    w, v, trajectory = w.copy(), np.zeros_like(w), []
    for g in gs:
        for k in range(w.size):
            if mu == 0:
                w[k] -= lr * (g[k] + wd * w[k])
            elif nesterov:
                gk = g[k] + wd * w[k]
                v[k] = mu * v[k] + gk
                w[k] -= lr * (gk + mu * v[k])
            else:
                v[k] = mu * v[k] + g[k] + wd * w[k]
                w[k] -= lr * v[k]
        trajectory.append(w.copy())
    return trajectory


def kingma_ba_adam(w, gs, lr, b1, b2, eps, wd, decoupled):
    """Adam as in Kingma & Ba (Algorithm 1), with L2 (Adam) or decoupled (AdamW) decay; the
    weights after each step."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    trajectory = []
    for t, g in enumerate(gs, start=1):
        if decoupled:
            w = w - lr * wd * w
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append(w)
    return trajectory


# name in reference.OPTIMIZERS: (make the optimizer, its weights after each gradient of gs)
OPTIMIZER_CASES = {
    "sgd": (
        lambda: ref.SGD(0.1, weight_decay=0.01),
        lambda w, gs: engine_sgd(w, gs, 0.1, 0.0, False, 0.01),
    ),
    "momentum": (
        lambda: ref.Momentum(0.1, 0.9, weight_decay=0.01),
        lambda w, gs: engine_sgd(w, gs, 0.1, 0.9, False, 0.01),
    ),
    "nesterov": (
        lambda: ref.Nesterov(0.1, 0.9, weight_decay=0.01),
        lambda w, gs: engine_sgd(w, gs, 0.1, 0.9, True, 0.01),
    ),
    # PyTorch's eps is added to sqrt(v)/sqrt(1 − β2ᵗ), i.e. to sqrt(v_hat): the same algorithm
    "adam": (
        lambda: ref.Adam(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-8, weight_decay=0.1),
        lambda w, gs: kingma_ba_adam(w, gs, 0.01, 0.8, 0.95, 1e-8, 0.1, False),
    ),
    "adamw": (
        lambda: ref.AdamW(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-8, weight_decay=0.1),
        lambda w, gs: kingma_ba_adam(w, gs, 0.01, 0.8, 0.95, 1e-8, 0.1, True),
    ),
}


@pytest.mark.parametrize("name, variant", list(_params(ref.OPTIMIZERS, OPTIMIZER_CASES)))
def test_optimizer_matches_its_update_formula(name, variant):
    make, trajectory = _case(OPTIMIZER_CASES, name, variant)
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(7)
    gs = [rng.standard_normal(7) for _ in range(5)]
    opt, w = make(), w0.copy()
    for g, expected in zip(gs, trajectory(w0, gs)):
        opt.step(w, g)
        assert_close(w, expected, rtol=1e-12, atol=1e-14)


def test_first_adam_step_is_lr_times_sign():
    w = np.array([1.0, -2.0, 3.0])
    g = np.array([0.5, -4.0, 1e-3])
    ref.Adam(lr=0.1, eps=0.0).step(w, g)
    assert_close(w, np.array([0.9, -1.9, 2.9]), rtol=1e-14, atol=0)
    w = np.array([1.0, -2.0])
    ref.AdamW(lr=0.1, weight_decay=0.5, eps=0.0).step(w, np.array([2.0, 2.0]))
    assert_close(w, np.array([1.0 * 0.95 - 0.1, -2.0 * 0.95 - 0.1]), rtol=1e-14, atol=0)


def engine_adam(w, gs, updates, lr, b1, b2, eps, wd, decoupled, warmup):
    """The Adam loop of optimizer_step in optimizer.h, transcribed loop by loop, with the
    state remap of a topology update (docs/dynamic-sparse-training.md#3-applying-a-change):
    before the step of index s, ``updates[s] = (new values, grown entries)`` sets those
    weights and gives them zero moments and age 0; a state array that does not exist yet
    (before the first step) stays empty. The weights after each step."""
    w = w.copy()
    m = v = age = None
    trajectory = []
    for steps, g in enumerate(gs, start=1):
        if steps - 1 in updates:
            values, grown = updates[steps - 1]
            for k in grown:
                w[k] = values[k]
                if m is not None:
                    m[k] = v[k] = 0.0
                if age is not None:
                    age[k] = 0
        if m is None:
            m, v = np.zeros_like(w), np.zeros_like(w)
        if warmup > 0 and age is None:
            age = np.full(w.size, warmup)
        c1 = 1.0 / (1.0 - b1**steps)
        c2 = 1.0 / (1.0 - b2**steps)
        for k in range(w.size):
            rate = lr
            if age is not None and age[k] < warmup:
                rate = lr * (age[k] + 1) / (warmup + 1)
                age[k] += 1
            if decoupled:
                w[k] -= rate * wd * w[k]
            gk = g[k] if decoupled else g[k] + wd * w[k]
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk * gk
            w[k] -= rate * (m[k] * c1) / (math.sqrt(v[k] * c2) + eps)
        trajectory.append(w.copy())
    return trajectory


@pytest.mark.parametrize("warmup", [0, 1, 3])
@pytest.mark.parametrize("cls", [ref.Adam, ref.AdamW])
def test_adam_new_weight_warmup_matches_the_engine_loop(cls, warmup):
    """Weights grown by two topology updates (one before the first step: no warm-up, every
    entry starts mature) step with rate lr (age + 1) / (warmup + 1) for their first
    ``warmup`` steps; the others with lr."""
    rng = np.random.default_rng(6)
    w0 = rng.standard_normal(8)
    gs = [rng.standard_normal(8) for _ in range(9)]
    updates = {0: (rng.standard_normal(8), [6]), 3: (rng.standard_normal(8), [1, 4])}
    opt = cls(lr=0.05, beta1=0.8, beta2=0.95, eps=1e-8, weight_decay=0.1, new_weight_warmup=warmup)
    w = w0.copy()
    expected = engine_adam(w0, gs, updates, 0.05, 0.8, 0.95, 1e-8, 0.1, cls is ref.AdamW, warmup)
    for s, g in enumerate(gs):
        if s in updates:
            values, grown = updates[s]
            w[grown] = values[grown]
            opt.update_topology(grown=np.array(grown))
        opt.step(w, g)
        assert_close(w, expected[s], rtol=1e-12, atol=1e-14)
    if warmup > 0:
        assert opt.age.tolist() == [warmup] * 8  # every new weight has matured


def test_update_topology_restarts_only_the_given_entries():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((3, 4))
    dropped = np.unravel_index([1, 6], W.shape)
    grown = np.zeros(W.shape, dtype=bool)
    grown[2, 3] = True
    for opt, names in (
        (ref.SGD(0.1), ()),
        (ref.Momentum(0.1, 0.9), ("v",)),
        (ref.Nesterov(0.1, 0.9), ("v",)),
        (ref.Adam(0.1, new_weight_warmup=2), ("m", "v")),
        (ref.AdamW(0.1), ("m", "v")),
    ):
        opt.update_topology(dropped=dropped, grown=grown)  # before any step: no state yet
        assert all(getattr(opt, name) is None for name in names)
        w = W.copy()
        opt.step(w, rng.standard_normal(W.shape))
        before = {name: getattr(opt, name).copy() for name in names}
        t = getattr(opt, "t", None)
        opt.update_topology(dropped=dropped, grown=grown)
        for name in names:
            state = getattr(opt, name)
            assert np.all(state[dropped] == 0) and np.all(state[grown] == 0)
            kept = np.ones(W.shape, dtype=bool)
            kept[dropped] = False
            kept &= ~grown
            assert_close(state[kept], before[name][kept], rtol=0, atol=0)
        assert getattr(opt, "t", None) == t  # the step count (bias correction) is kept
        if isinstance(opt, ref.Adam) and opt.new_weight_warmup > 0:
            assert opt.age[2, 3] == 0 and opt.age[0, 1] == 2  # only grown entries are new


def test_adam_rejects_an_invalid_warmup():
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="new_weight_warmup"):
            ref.Adam(new_weight_warmup=bad)


# ---------------------------------------------------------------- schedules


def test_schedules_match_pytorch_closed_forms():
    s = ref.schedules
    assert [s.constant(0.5)(t) for t in range(3)] == [0.5, 0.5, 0.5]
    assert [s.step(1.0, 2, 0.5)(t) for t in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    got = [s.multistep(1.0, [4, 2], 0.1)(t) for t in range(6)]
    assert_close(np.array(got), np.array([1, 1, 0.1, 0.1, 0.01, 0.01]), rtol=1e-7)
    got = [s.exponential(2.0, 0.5)(t) for t in range(4)]
    assert_close(np.array(got), np.array([2, 1, 0.5, 0.25]), rtol=1e-7)
    cos = s.cosine(1.0, 10, eta_min=0.1)
    assert cos(0) == pytest.approx(1.0)
    assert cos(5) == pytest.approx(0.55)
    assert cos(10) == pytest.approx(0.1)
    assert cos(20) == pytest.approx(1.0)  # PyTorch's closed form is periodic
    warm = s.linear_warmup(s.constant(1.0), 4, start_factor=0.2)
    got = [warm(t) for t in range(6)]
    assert_close(np.array(got), np.array([0.2, 0.4, 0.6, 0.8, 1.0, 1.0]), rtol=1e-7)
    warm_step = s.linear_warmup(s.step(1.0, 3, 0.5), 2, start_factor=0.5)
    got = [warm_step(t) for t in range(5)]
    assert_close(np.array(got), np.array([0.5, 0.75, 1.0, 0.5, 0.5]), rtol=1e-7)
    with pytest.raises(ValueError):
        s.step(1.0, 0)
