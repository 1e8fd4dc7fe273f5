"""Tests of the NumPy reference package truesparse.reference itself.

Its gradient equations are proven in validation/ (SymPy) and tied to this code there; here:
it imports with NumPy alone, every layer's backward agrees with float64 central differences
(parameters included), batch-norm running statistics, dropout masks, loss stability, the
optimizers against their update formulas (optimizer.h, PyTorch) and the learning-rate
schedules against values worked out by hand.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "python" / "truesparse" / "reference"


def _import_reference():
    """truesparse.reference, or the same package loaded by path if truesparse does not import."""
    try:
        from truesparse import reference
    except (ImportError, AttributeError):  # core missing or stale; the reference needs only NumPy
        name = "_truesparse_reference"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(
            name, REFERENCE_DIR / "__init__.py", submodule_search_locations=[str(REFERENCE_DIR)]
        )
        reference = importlib.util.module_from_spec(spec)
        sys.modules[name] = reference
        spec.loader.exec_module(reference)
    return reference


ref = _import_reference()


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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "softmax_cross_entropy" in out.stdout


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


def make_layers(rng):
    """(name, layer, input shape): every layer and activation, inputs away from kinks."""
    D, K, N = 4, 3, 5
    pattern = rng.integers(0, 2, (K, D))
    return [
        ("linear_dense", ref.Linear(rng.standard_normal((K, D)), rng.standard_normal(K)), (D, N)),
        (
            "linear_sparse",
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
        ("all_relu_1", ref.AllReLU(0.1, 1), (D, N)),
        ("all_relu_2", ref.AllReLU(0.1, 2), (D, N)),
        ("sigmoid", ref.Sigmoid(), (D, N)),
        ("tanh", ref.Tanh(), (D, N)),
        ("identity", ref.Identity(), (D, N)),
        ("srelu", ref.SReLU(-0.4, 0.2, 0.6, 0.5), (D, N)),
    ]


@pytest.mark.parametrize("index", range(15))
def test_layer_backward_matches_finite_differences(index):
    rng = np.random.default_rng(100 + index)
    name, layer, shape = make_layers(rng)[index]
    X = rng.standard_normal(shape)
    X[np.abs(X) < 0.05] = 0.3  # away from the ReLU kink
    if name == "srelu":
        for t in (layer.tl, layer.tr):
            X[np.abs(X - t) < 0.05] += 0.2
    DY = rng.standard_normal(layer.forward(X).shape)

    def objective():  # L = elements_sum(DY ⊙ forward(X))
        return float(np.sum(DY * layer.forward(X)))

    layer.forward(X)  # (batch norm: training mode; the running statistics do not enter Y)
    DX = layer.backward(DY)
    grads = {k: np.array(v, dtype=float) for k, v in layer.gradients().items()}
    np.testing.assert_allclose(DX, numeric_gradient(objective, X), rtol=1e-6, atol=1e-8)
    for pname, value in layer.parameters().items():
        if isinstance(value, np.ndarray):
            expected = numeric_gradient(objective, value)
        else:  # SReLU's scalar parameters

            def at(v, pname=pname):
                setattr(layer, pname, v)
                return objective()

            h = 1e-6
            expected = np.array((at(value + h) - at(value - h)) / (2 * h))
            setattr(layer, pname, value)
        if name == "linear_sparse" and pname == "W":
            expected = expected * layer.pattern
        np.testing.assert_allclose(
            grads["D" + pname], expected, rtol=1e-6, atol=1e-8, err_msg=pname
        )


def test_sparse_linear_ignores_weights_off_the_pattern():
    rng = np.random.default_rng(1)
    W, b, X = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal((4, 2))
    P = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]])
    sparse = ref.Linear(W, b, pattern=P)
    dense = ref.Linear(W * P, b)
    np.testing.assert_array_equal(sparse.forward(X), dense.forward(X))
    DY = rng.standard_normal((3, 2))
    np.testing.assert_array_equal(sparse.backward(DY), dense.backward(DY))
    assert np.all(sparse.DW[P == 0] == 0)
    np.testing.assert_array_equal(sparse.DW[P == 1], dense.DW[P == 1])


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
        np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-14)
        np.testing.assert_allclose(layer.running_var, rv, rtol=1e-14)
        Z = (X - X.mean(axis=1, keepdims=True)) / np.sqrt(
            X.var(axis=1, keepdims=True) + 1e-5
        )  # biased
        np.testing.assert_allclose(Y, Z, rtol=1e-12, atol=1e-12)
    layer.eval()
    X = rng.standard_normal((D, N))
    expected = (X - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5)
    np.testing.assert_allclose(layer.forward(X), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=0)  # unchanged in eval mode
    with pytest.raises(ValueError, match="more than 1"):
        layer.train().forward(np.zeros((D, 1)))


def test_dropout_draws_bernoulli_masks_and_scales():
    p = 0.25
    layer = ref.Dropout(p, rng=np.random.default_rng(3))
    X = np.ones((50, 200))
    Y = layer.forward(X)
    assert set(np.unique(layer.M)) <= {0.0, 1.0}
    np.testing.assert_array_equal(Y, layer.M / (1 - p))
    assert abs(layer.M.mean() - (1 - p)) < 0.02
    DY = np.full_like(X, 2.0)
    np.testing.assert_array_equal(layer.backward(DY), 2.0 * layer.M / (1 - p))
    Y2 = layer.forward(X)
    assert not np.array_equal(Y, Y2), "a new mask at every forward"
    layer.eval()
    np.testing.assert_array_equal(layer.forward(X), X)
    with pytest.raises(ValueError):
        ref.Dropout(1.0)


# ---------------------------------------------------------------- losses


def test_losses_are_stable_for_large_logits():
    Y = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 3.0]])
    T = ref.one_hot([0, 2], 3)
    sce = ref.SoftmaxCrossEntropy()
    assert sce.value(Y, T) == pytest.approx((0.0 + (1e4 - 3.0)) / 2)
    np.testing.assert_allclose(sce.gradient(Y, T), (ref.matrix_operations.softmax(Y) - T) / 2)
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
        np.testing.assert_allclose(S.sum(axis=0), 1.0)
        np.testing.assert_allclose(S, 0.8 * T + 0.05)
    Y = np.log(ref.matrix_operations.softmax(np.arange(12.0).reshape(4, 3)))
    sce, nll = ref.SoftmaxCrossEntropy(0.2), ref.NegativeLogLikelihood(0.2)
    assert sce.value(Y, T) == pytest.approx(nll.value(Y, T))  # Y is already log_softmax(Y)


def test_squared_error_matches_the_engine_convention():
    Y, T = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    loss = ref.SquaredError()
    assert loss.value(Y, T) == (1 + 0 + 4 + 16) / 2  # sum over outputs, mean over examples
    np.testing.assert_array_equal(loss.gradient(Y, T), (Y - T))  # 2 (Y − T) / N, N = 2


# ---------------------------------------------------------------- optimizers


def engine_sgd(w, g, v, lr, mu, nesterov, wd):
    """The SGD loops of optimizer_step in optimizer.h, transcribed loop by loop."""
    w, v = w.copy(), v.copy()
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
    return w, v


@pytest.mark.parametrize(
    "make, mu, nesterov",
    [
        (lambda: ref.SGD(0.1, weight_decay=0.01), 0.0, False),
        (lambda: ref.Momentum(0.1, 0.9, weight_decay=0.01), 0.9, False),
        (lambda: ref.Nesterov(0.1, 0.9, weight_decay=0.01), 0.9, True),
    ],
)
def test_sgd_family_matches_the_engine(make, mu, nesterov):
    rng = np.random.default_rng(4)
    opt = make()
    w = rng.standard_normal(7)
    w_engine, v_engine = w.copy(), np.zeros(7)
    for _ in range(4):
        g = rng.standard_normal(7)
        opt.step(w, g)
        w_engine, v_engine = engine_sgd(w_engine, g, v_engine, 0.1, mu, nesterov, 0.01)
        np.testing.assert_allclose(w, w_engine, rtol=1e-14, atol=1e-15)


def kingma_ba_adam(w, gs, lr, b1, b2, eps, wd, decoupled):
    """Adam as in Kingma & Ba (Algorithm 1), with L2 (Adam) or decoupled (AdamW) decay."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
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
    return w


@pytest.mark.parametrize("cls, decoupled", [(ref.Adam, False), (ref.AdamW, True)])
def test_adam_matches_the_algorithm(cls, decoupled):
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal(6)
    gs = [rng.standard_normal(6) for _ in range(5)]
    opt = cls(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-8, weight_decay=0.1)
    w = w0.copy()
    for g in gs:
        opt.step(w, g)
    # PyTorch's eps is added to sqrt(v)/sqrt(1 − β2ᵗ), i.e. to sqrt(v_hat): same algorithm
    expected = kingma_ba_adam(w0, gs, 0.01, 0.8, 0.95, 1e-8, 0.1, decoupled)
    np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-14)


def test_first_adam_step_is_lr_times_sign():
    w = np.array([1.0, -2.0, 3.0])
    g = np.array([0.5, -4.0, 1e-3])
    ref.Adam(lr=0.1, eps=0.0).step(w, g)
    np.testing.assert_allclose(w, [0.9, -1.9, 2.9], rtol=1e-14)
    w = np.array([1.0, -2.0])
    ref.AdamW(lr=0.1, weight_decay=0.5, eps=0.0).step(w, np.array([2.0, 2.0]))
    np.testing.assert_allclose(w, [1.0 * 0.95 - 0.1, -2.0 * 0.95 - 0.1], rtol=1e-14)


# ---------------------------------------------------------------- schedules


def test_schedules_match_pytorch_closed_forms():
    s = ref.schedules
    assert [s.constant(0.5)(t) for t in range(3)] == [0.5, 0.5, 0.5]
    assert [s.step(1.0, 2, 0.5)(t) for t in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    got = [s.multistep(1.0, [4, 2], 0.1)(t) for t in range(6)]
    np.testing.assert_allclose(got, [1, 1, 0.1, 0.1, 0.01, 0.01])
    np.testing.assert_allclose([s.exponential(2.0, 0.5)(t) for t in range(4)], [2, 1, 0.5, 0.25])
    cos = s.cosine(1.0, 10, eta_min=0.1)
    assert cos(0) == pytest.approx(1.0)
    assert cos(5) == pytest.approx(0.55)
    assert cos(10) == pytest.approx(0.1)
    assert cos(20) == pytest.approx(1.0)  # PyTorch's closed form is periodic
    warm = s.linear_warmup(s.constant(1.0), 4, start_factor=0.2)
    np.testing.assert_allclose([warm(t) for t in range(6)], [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    warm_step = s.linear_warmup(s.step(1.0, 3, 0.5), 2, start_factor=0.5)
    np.testing.assert_allclose([warm_step(t) for t in range(5)], [0.5, 0.75, 1.0, 0.5, 0.5])
    with pytest.raises(ValueError):
        s.step(1.0, 0)
