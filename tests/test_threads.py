"""Adaptive threads: on or off, training gives the same bits (the kernels do not depend on
the thread count); the switch is a checked flag."""

import numpy as np
import pytest

import truesparse as ts


@pytest.fixture
def adaptive_setting():
    saved, threads = ts.get_adaptive_threads(), ts.get_num_threads()
    yield
    ts.set_adaptive_threads(saved)
    ts.set_num_threads(threads)


def _trained(adaptive: bool) -> list[np.ndarray]:
    ts.set_adaptive_threads(adaptive)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 300), dtype=np.float32)
    y = (X[:, :10].sum(axis=1) > 0).astype(np.int32)
    model = ts.MLP([300, 400, 200, 2], density=0.05, seed=1)
    model.fit(X, y, epochs=2, batch_size=20, optimizer=ts.SGD(lr=0.05, momentum=0.9))
    return [
        layer.W.toarray() if hasattr(layer.W, "toarray") else np.asarray(layer.W)
        for layer in model.layers
    ]


def test_adaptive_threads_do_not_change_the_result(adaptive_setting):
    ts.set_num_threads(2)
    on, off = _trained(True), _trained(False)
    for a, b in zip(on, off):
        assert np.array_equal(a, b)
    ts.set_num_threads(1)
    one = _trained(False)
    for a, b in zip(on, one):
        assert np.array_equal(a, b)


def test_the_switch_is_a_flag(adaptive_setting):
    ts.set_adaptive_threads(False)
    assert ts.get_adaptive_threads() is False
    ts.set_adaptive_threads(np.bool_(True))
    assert ts.get_adaptive_threads() is True
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match=r"\[set_adaptive_threads\] on must be True or False"):
            ts.set_adaptive_threads(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_data_check_finds_the_first_bad_value_on_any_thread_count(adaptive_setting, dtype):
    from truesparse import _core

    rng = np.random.default_rng(4)
    X = rng.standard_normal((5000, 130)).astype(dtype)
    model = ts.MLP([130, 20, 3], density=0.5, seed=0, dtype=dtype)
    for threads in (1, 2):
        ts.set_num_threads(threads)
        assert _core.first_nonfinite(X) is None
    # several bad values in different blocks of rows: the first in row-major order is reported
    X[4100, 7], X[2500, 120], X[2500, 121], X[64, 0] = np.nan, np.inf, np.nan, -np.inf
    for threads in (1, 2):
        ts.set_num_threads(threads)
        assert _core.first_nonfinite(X) == (64, 0)
        with pytest.raises(
            ValueError, match=r"X contains NaN or infinity \(first at row 64, column 0\)"
        ):
            model.predict(X)
    X[64, 0] = 0.0
    assert _core.first_nonfinite(X) == (2500, 120)


def test_fused_sgd_keeps_no_gradient_unless_one_exists():
    """fit with SGD fuses a sparse layer's update into its gradient kernel: DW is None after it,
    unless the layer had a gradient already (backward), which fit then keeps current."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 12)).astype(np.float64)
    y = rng.integers(0, 3, 40)
    model = ts.MLP([12, 16, 3], densities=[0.5, 1.0], seed=2, dtype=np.float64)
    model.fit(X, y, epochs=1, batch_size=40, optimizer=ts.SGD(lr=0.1, momentum=0.9), shuffle=False)
    sparse, dense = model.layers
    assert sparse.DW is None and sparse.Db is not None and dense.DW is not None

    other = ts.MLP([12, 16, 3], densities=[0.5, 1.0], seed=2, dtype=np.float64)
    other.backward(X, y)  # the layer now has a gradient, which fit keeps current
    other.fit(X, y, epochs=1, batch_size=40, optimizer=ts.SGD(lr=0.1, momentum=0.9), shuffle=False)
    # the gradient of that (only) batch at the weights before the step
    reference = ts.MLP([12, 16, 3], densities=[0.5, 1.0], seed=2, dtype=np.float64)
    reference.backward(X, y)
    assert np.allclose(other.layers[0].DW.toarray(), reference.layers[0].DW.toarray(), atol=1e-12)
    assert np.allclose(other.layers[0].W.toarray(), model.layers[0].W.toarray(), atol=1e-12)
