"""End to end: a sparse 64-128-10 MLP learns scikit-learn's digits.

Trains a few epochs at density 0.3 and checks held-out accuracy, the history returned by
fit, and that predict and evaluate agree with each other and with forward.
"""

import numpy as np
import pytest

import truesparse as ts
from conftest import assert_csr_valid

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits():
    data = sklearn_datasets.load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


@pytest.fixture(scope="module")
def trained(digits):
    (x, y), (xv, yv) = digits
    model = ts.MLP([64, 128, 10], density=0.3, activation="relu", seed=1)
    history = model.fit(
        x,
        y,
        epochs=8,
        batch_size=32,
        optimizer=ts.SGD(lr=0.05, momentum=0.9),
        validation_data=(xv, yv),
        shuffle=True,
        verbose=0,
    )
    return model, history


def test_digits_accuracy(trained, digits):
    model, _ = trained
    _, (xv, yv) = digits
    pred = model.predict(xv)
    assert np.mean(pred == yv) > 0.85


def test_history(trained):
    _, history = trained
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "time"):
        assert len(history[key]) == 8, key
        assert all(np.isfinite(v) for v in history[key]), key
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > history["accuracy"][0]
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"] + history["val_accuracy"])


def test_predict_and_evaluate_are_consistent(trained, digits):
    model, history = trained
    _, (xv, yv) = digits
    pred = model.predict(xv)
    assert pred.shape == (len(yv),)
    assert pred.dtype == np.int64
    assert pred.min() >= 0 and pred.max() < 10
    logits = model.forward(xv)
    assert logits.shape == (len(yv), 10) and logits.dtype == np.float32
    assert np.array_equal(pred, np.argmax(logits, axis=1))
    result = model.evaluate(xv, yv)
    assert isinstance(result["loss"], float) and isinstance(result["accuracy"], float)
    assert result["accuracy"] == pytest.approx(np.mean(pred == yv), abs=1e-12)
    z = logits.astype(np.float64)
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    assert result["loss"] == pytest.approx(np.mean(lse - z[np.arange(len(yv)), yv]), rel=1e-4)
    assert result["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-5)
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-12)


def test_sparse_layers_stay_sparse(trained):
    model, _ = trained
    densities = ts.er_densities([64, 128, 10], 0.3)
    for layer, d in zip(model.layers, densities):
        assert layer.nnz == round(d * layer.shape[0] * layer.shape[1])
        if layer.is_sparse:
            assert_csr_valid(layer.W, layer.shape)


def test_regression_with_a_vector_of_real_targets():
    """squared_error with one output takes real targets as a vector (as an (N, 1) array), and
    learns a linear function well enough to beat predicting the mean by far."""
    rng = np.random.default_rng(0)
    X = rng.random((400, 5), dtype=np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.5).astype(np.float32)
    model = ts.MLP([5, 64, 1], density=0.5, loss="squared_error", seed=0)
    twin = ts.MLP([5, 64, 1], density=0.5, loss="squared_error", seed=0)
    sgd = ts.SGD(lr=0.01, momentum=0.9)
    model.fit(X, y, epochs=30, batch_size=20, optimizer=sgd)
    twin.fit(X, y[:, None], epochs=30, batch_size=20, optimizer=sgd)
    assert np.array_equal(model.forward(X), twin.forward(X))
    residual = model.forward(X)[:, 0] - y
    assert np.mean(residual**2) < 0.02 * np.var(y)
    with pytest.raises(ValueError, match="labels must be integers"):
        ts.MLP([5, 8, 3], loss="squared_error").fit(X, y)  # three outputs: a vector is labels
