"""SGD (plain, momentum, Nesterov, weight decay) inside fit against a NumPy simulation.

Starting from known weights, fit(shuffle=False) runs a few steps on consecutive batches;
the simulation (reference_network.train_epoch) runs the reference MLP's training pass and
the PyTorch-semantics reference optimizers (truesparse.reference: SGD, Momentum, Nesterov)
on the same batches, one optimizer per array (W and b of every layer):
g = DW + wd W ; v = mu v + g ; step = g + mu v (Nesterov) or v (mu == 0: step = g) ;
W -= lr step. Sparse layers are simulated as dense W with a 0/1 pattern, so positions off
the pattern stay zero. The pattern must not change during fit.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import reference_network as refnet
import truesparse as ts
from conftest import (
    assert_close,
    assert_csr_valid,
    assert_same_pattern,
    dense_of,
    read_params,
    set_random_weights,
)
from truesparse import reference as R

# name: (the engine's optimizer, a maker of the reference optimizer of one array)
OPTIMIZERS = {
    "sgd": (ts.SGD(lr=0.1), lambda: R.SGD(0.1)),
    "momentum": (ts.SGD(lr=0.05, momentum=0.9), lambda: R.Momentum(0.05, 0.9)),
    "nesterov": (
        ts.SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda: R.Nesterov(0.05, 0.9),
    ),
    "weight_decay": (ts.SGD(lr=0.1, weight_decay=0.05), lambda: R.SGD(0.1, weight_decay=0.05)),
    "all": (
        ts.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
        lambda: R.Nesterov(0.05, 0.8, weight_decay=0.01),
    ),
    "momentum_wd": (
        ts.SGD(lr=0.05, momentum=0.5, weight_decay=0.02),
        lambda: R.Momentum(0.05, 0.5, weight_decay=0.02),
    ),
}


def simulate(weights, masks, biases, x, y, act, loss, epochs, batch_size, make_optimizer):
    """Run the reference simulation of fit(shuffle=False) from the given arrays; returns the
    final (weights, biases) and per-epoch (mean loss, accuracy)."""
    layers = refnet.reference_mlp(weights, masks, biases, act)
    reference_loss = R.LOSSES[loss]()
    stats = list(
        refnet.fit(
            layers,
            reference_loss,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            make_optimizer=make_optimizer,
        )
    )
    linear = refnet.linear_layers(layers)
    for layer, m in zip(linear, masks):
        assert not np.any(layer.W[~m])
    return [layer.W for layer in linear], [layer.b for layer in linear], stats


def _setup(dtype, sizes, densities, n, seed, loss="softmax_cross_entropy", act="tanh"):
    rng = np.random.default_rng(seed)
    model = ts.MLP(sizes, densities=densities, activation=act, loss=loss, dtype=dtype, seed=seed)
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=n)
    return model, weights, masks, biases, x, y


def _check_model(model, weights, biases, patterns, dtype, rtol):
    for li, layer in enumerate(model.layers):
        if layer.is_sparse:
            assert_csr_valid(layer.W, layer.shape)
            assert_same_pattern(layer.W, patterns[li])
        assert_close(dense_of(layer.W), weights[li].astype(dtype), dtype=dtype, rtol=rtol)
        assert_close(layer.b, biases[li].astype(dtype), dtype=dtype, rtol=rtol)


def _patterns(model):
    return [sp.csr_array(layer.W, copy=True) if layer.is_sparse else None for layer in model.layers]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize(("epochs", "n", "batch_size"), [(1, 16, 16), (3, 16, 16), (2, 12, 4)])
def test_sgd_matches_numpy_simulation(name, dtype, epochs, n, batch_size):
    opt, make_opt = OPTIMIZERS[name]
    model, weights, masks, biases, x, y = _setup(dtype, [9, 11, 7, 4], [0.4, 1.0, 0.5], n, seed=31)
    patterns = _patterns(model)
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=opt,
        shuffle=False,
        verbose=0,
    )
    ws, bs, stats = simulate(
        weights, masks, biases, x, y, "tanh", "softmax_cross_entropy", epochs, batch_size, make_opt
    )
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    _check_model(model, ws, bs, patterns, dtype, rtol)
    assert len(history["loss"]) == epochs
    assert_close(
        np.array(history["loss"], dtype=np.float64),
        np.array([s[0] for s in stats]),
        rtol=rtol,
        atol=1e-6,
    )
    assert_close(
        np.array(history["accuracy"], dtype=np.float64),
        np.array([s[1] for s in stats]),
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_squared_error_relu_momentum(dtype):
    opt, make_opt = OPTIMIZERS["nesterov"]
    model, weights, masks, biases, x, y = _setup(
        dtype, [6, 10, 3], [0.5, 0.7], 8, seed=32, loss="squared_error", act="leaky_relu"
    )
    patterns = _patterns(model)
    model.fit(x, y, epochs=2, batch_size=4, optimizer=opt, shuffle=False, verbose=0)
    # the simulation uses leaky_relu with the default alpha 0.01
    ws, bs, _ = simulate(
        weights, masks, biases, x, y, "leaky_relu", "squared_error", 2, 4, make_opt
    )
    _check_model(model, ws, bs, patterns, dtype, 1e-9 if dtype == np.float64 else 1e-4)


def test_last_partial_batch_is_used():
    opt, make_opt = OPTIMIZERS["momentum"]
    model, weights, masks, biases, x, y = _setup(np.float64, [5, 6, 3], [0.5, 0.5], 10, seed=33)
    patterns = _patterns(model)
    model.fit(x, y, epochs=1, batch_size=4, optimizer=opt, shuffle=False, verbose=0)
    ws, bs, _ = simulate(
        weights, masks, biases, x, y, "tanh", "softmax_cross_entropy", 1, 4, make_opt
    )
    _check_model(model, ws, bs, patterns, np.float64, 1e-9)


def test_batch_size_larger_than_data_is_one_batch():
    opt, make_opt = OPTIMIZERS["sgd"]
    model, weights, masks, biases, x, y = _setup(np.float64, [5, 6, 3], [0.5, 0.5], 7, seed=34)
    patterns = _patterns(model)
    model.fit(x, y, epochs=1, batch_size=100, optimizer=opt, shuffle=False, verbose=0)
    ws, bs, _ = simulate(
        weights, masks, biases, x, y, "tanh", "softmax_cross_entropy", 1, 7, make_opt
    )
    _check_model(model, ws, bs, patterns, np.float64, 1e-9)


def test_pattern_unchanged_by_shuffled_training():
    model, _, _, _, x, y = _setup(np.float32, [20, 30, 10, 5], [0.1, 0.3, 1.0], 64, seed=35)
    patterns = _patterns(model)
    nnz = [layer.nnz for layer in model.layers]
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=10,
        optimizer=ts.SGD(lr=0.1, momentum=0.9),
        shuffle=True,
        verbose=0,
    )
    for layer, pattern, k in zip(model.layers, patterns, nnz):
        assert layer.nnz == k
        if layer.is_sparse:
            assert_csr_valid(layer.W, layer.shape)
            assert_same_pattern(layer.W, pattern)
        assert np.all(np.isfinite(dense_of(layer.W)))


def test_fit_zero_epochs_changes_nothing():
    model, weights, _, biases, x, y = _setup(np.float64, [5, 6, 3], [0.5, 1.0], 8, seed=36)
    patterns = _patterns(model)
    history = model.fit(x, y, epochs=0, batch_size=4, optimizer=ts.SGD(lr=0.5), verbose=0)
    assert history["loss"] == []
    _check_model(model, weights, biases, patterns, np.float64, 0.0)


def test_optimizer_state_persists_across_fit_calls_or_restarts_consistently():
    """Two fit calls of one epoch each equal either one 2-epoch fit (state kept) or two
    independent 1-epoch fits (state reset); both are defensible, but the result must be one
    of them."""
    optimizer, make_opt = OPTIMIZERS["momentum"]
    model, weights, masks, biases, x, y = _setup(np.float64, [5, 6, 3], [0.5, 0.5], 8, seed=37)
    model.fit(x, y, epochs=1, batch_size=8, optimizer=optimizer, shuffle=False, verbose=0)
    model.fit(x, y, epochs=1, batch_size=8, optimizer=optimizer, shuffle=False, verbose=0)
    loss = "softmax_cross_entropy"
    kept_w, _, _ = simulate(weights, masks, biases, x, y, "tanh", loss, 2, 8, make_opt)
    w1, b1, _ = simulate(weights, masks, biases, x, y, "tanh", loss, 1, 8, make_opt)
    reset_w, _, _ = simulate(w1, masks, b1, x, y, "tanh", loss, 1, 8, make_opt)
    got = [dense_of(layer.W) for layer in model.layers]
    match_kept = all(np.allclose(g, e, rtol=1e-9, atol=1e-12) for g, e in zip(got, kept_w))
    match_reset = all(np.allclose(g, e, rtol=1e-9, atol=1e-12) for g, e in zip(got, reset_w))
    assert match_kept or match_reset


def test_history_and_validation_data():
    model, _, _, _, x, y = _setup(np.float32, [8, 12, 3], [0.5, 1.0], 30, seed=38)
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((11, 8)).astype(np.float32)
    yv = rng.integers(0, 3, size=11)
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=10,
        optimizer=ts.SGD(lr=0.05),
        validation_data=(xv, yv),
        verbose=0,
    )
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "time"):
        assert len(history[key]) == 2, key
    assert all(t >= 0 for t in history["time"])
    final = model.evaluate(xv, yv)
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)
    assert history["val_accuracy"][-1] == pytest.approx(final["accuracy"], abs=1e-12)
    no_val = model.fit(x, y, epochs=1, batch_size=10, optimizer=ts.SGD(lr=0.05), verbose=0)
    assert "val_loss" not in no_val or no_val["val_loss"] == []


def test_sgd_defaults():
    opt = ts.SGD()
    for attr, value in (
        ("lr", 0.01),
        ("momentum", 0.0),
        ("nesterov", False),
        ("weight_decay", 0.0),
    ):
        if hasattr(opt, attr):
            assert getattr(opt, attr) == value


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_after_set_weights_with_new_pattern(dtype):
    """set_weights with a new pattern (different nnz, empty rows and columns) is what fit
    trains: the transposed copy / handles must follow the new pattern."""
    rng = np.random.default_rng(39)
    sizes = [9, 8, 7, 4]
    model = ts.MLP(sizes, densities=[0.3, 0.3, 1.0], activation="tanh", dtype=dtype, seed=39)
    masks = []
    for layer, (rows, cols) in zip(model.layers[:2], [([0, 5], [1, 8]), ([2], [0, 3])]):
        mask = rng.random(layer.shape) < 0.7
        mask[rows, :] = False
        mask[:, cols] = False
        masks.append(mask)
    masks.append(None)
    weights, masks, biases = set_random_weights(model, rng, masks)
    patterns = _patterns(model)
    x = rng.standard_normal((12, 9)).astype(dtype)
    y = rng.integers(0, 4, size=12)
    opt, make_opt = OPTIMIZERS["all"]
    model.fit(x, y, epochs=2, batch_size=6, optimizer=opt, shuffle=False, verbose=0)
    ws, bs, _ = simulate(
        weights, masks, biases, x, y, "tanh", "softmax_cross_entropy", 2, 6, make_opt
    )
    _check_model(model, ws, bs, patterns, dtype, 1e-9 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_after_fit_uses_updated_weights(dtype):
    """After optimizer steps, forward and backward (including DX through Wᵀ) see the new values."""
    model, _, _, _, x, y = _setup(dtype, [9, 11, 7, 4], [0.4, 0.5, 0.5], 16, seed=40)
    model.fit(x, y, epochs=2, batch_size=4, optimizer=ts.SGD(lr=0.1, momentum=0.9), verbose=0)
    layers = refnet.reference_mlp(*read_params(model), "tanh")
    assert_close(model.forward(x), refnet.forward(layers, x).astype(dtype), dtype=dtype)
    _, value = refnet.forward_backward(layers, R.SoftmaxCrossEntropy(), x, y)
    f32 = dtype == np.float32
    assert model.backward(x, y) == pytest.approx(value, rel=1e-4 if f32 else 1e-10)
    for layer, reference in zip(model.layers, refnet.linear_layers(layers)):
        assert_close(dense_of(layer.DW), reference.DW.astype(dtype), dtype=dtype)
        assert_close(layer.Db, reference.Db.astype(dtype), dtype=dtype)
