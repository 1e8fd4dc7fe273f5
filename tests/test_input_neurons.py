"""Input neurons on the engine, for feature selection: their strength (O(nnz) from the CSR
values), their removal (connections moved to the other inputs, nnz kept, never regrown into),
noise injected into the inputs of every training batch (denoising autoencoders), and SET's
new-weight values. Each against a NumPy recomputation."""

from __future__ import annotations

import numpy as np
import pytest

import truesparse as ts
from conftest import assert_close, assert_csr_valid, match_all
from truesparse import _core
from truesparse import layers as L


def sparse_model(D=30, K=20, density=0.2, seed=0, dtype=np.float64):
    return ts.Sequential(D, [L.Linear(K, density=density), L.ReLU(), L.Linear(3)],
                         seed=seed, dtype=dtype)  # fmt: skip


def data(n=40, D=30, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)), rng.integers(0, 3, n)


# -- strength ------------------------------------------------------------------------------------
def test_input_strength_is_the_column_sum_of_absolute_weights():
    model = sparse_model()
    model.fit(*data(), epochs=2, batch_size=10, evolution=ts.SET(0.3))
    W = model.layers[0].W
    assert_close(model.input_strength(), np.abs(W.toarray()).sum(axis=0), rtol=1e-12, atol=0)
    dense = ts.MLP([6, 4, 2], seed=0)
    W = dense.layers[0].W.astype(np.float64)
    assert_close(dense.input_strength(), np.abs(W).sum(axis=0), rtol=1e-12, atol=0)


# -- removal -------------------------------------------------------------------------------------
def test_removing_inputs_moves_their_connections_and_keeps_nnz():
    model = sparse_model()
    W0 = model.layers[0].W
    removed = [0, 3, 7, 29]
    rec = model.remove_inputs(removed)
    W1 = model.layers[0].W
    assert_csr_valid(W1, W0.shape)
    assert W1.nnz == W0.nnz
    cols0, cols1 = W0.tocoo().col, W1.tocoo().col
    moved = np.isin(cols0, removed).sum()
    assert rec["dropped"] == rec["grown"] == moved > 0
    assert not np.isin(cols1, removed).any()  # nothing left in a removed input
    mask = np.zeros(30, bool)
    mask[removed] = True
    assert np.array_equal(model.removed_inputs, mask)
    assert np.all(model.input_strength()[removed] == 0)
    # the other connections survive with their values
    survivors = W0.multiply(np.asarray(~mask, dtype=float)[None, :]).tocsr()
    survivors.eliminate_zeros()
    assert_close(W1.multiply(survivors != 0).toarray(), survivors.toarray(), rtol=0, atol=0)
    # the new weights are SET's: uniform in ±sqrt(6 / (n_in + n_out))
    new = np.setdiff1d(rec["grown_positions"], [])
    values = W1.toarray().ravel()[new]
    assert np.all(np.abs(values) <= np.sqrt(6 / (30 + 20)))


@pytest.mark.parametrize("evolution", [ts.SET(0.5), ts.RigL(alpha=0.5, delta_t=2, t_end=1.0)])
def test_removed_inputs_are_never_grown_into(evolution):
    model = sparse_model(density=0.5)
    removed = list(range(0, 30, 2))  # half the inputs: SET/RigL growth would find them often
    model.remove_inputs(removed)
    nnz = model.layers[0].nnz
    model.fit(*data(), epochs=4, batch_size=10, evolution=evolution)
    for r in model.history_["topology"]:
        if r["layer"] == 0:
            assert not np.isin(r["grown_positions"] % 30, removed).any()
    W = model.layers[0].W
    assert W.nnz == nnz and not np.isin(W.tocoo().col, removed).any()
    rec = model.evolve(ts.SET(1.0))[0]  # replace every weight: all land in kept inputs
    assert not np.isin(rec["grown_positions"] % 30, removed).any()


def test_removal_by_gradient_grows_where_the_batch_gradient_is_largest():
    """One linear layer and the fused softmax cross entropy: DZ = (softmax(Z) - onehot) / N,
    so the dense gradient DZ Xᵀ is computable in NumPy."""
    D, K = 12, 5
    model = ts.Sequential(D, [L.Linear(K, density=0.3)], seed=2, dtype=np.float64)
    X, y = data(n=16, D=D, seed=3)
    y = y % K
    W0 = model.layers[0].W.toarray()
    Z = X @ W0.T + model.layers[0].b
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    DZ = (P - np.eye(K)[y]) / len(X)
    G = np.abs(DZ.T @ X)  # (K, D)
    removed = [1, 4]
    held = W0 != 0
    k = int(held[:, removed].sum())
    eligible = ~held
    eligible[:, removed] = False
    order = np.lexsort((np.arange(K * D), -G.ravel()))  # largest first, then lower position
    expected = np.sort([p for p in order if eligible.ravel()[p]][:k])
    rec = model.remove_inputs(removed, X, y)
    assert np.array_equal(rec["grown_positions"], expected)
    assert np.all(model.layers[0].W.toarray().ravel()[expected] == 0)  # new weights start at 0


def test_removed_inputs_survive_a_checkpoint(tmp_path):
    model = sparse_model()
    model.remove_inputs([5, 6])
    model.save(tmp_path / "m.tsck")
    loaded = ts.load(tmp_path / "m.tsck")
    assert np.array_equal(loaded.removed_inputs, model.removed_inputs)
    rec = loaded.evolve(ts.SET(1.0))[0]
    assert not np.isin(rec["grown_positions"] % 30, [5, 6]).any()


def test_remove_inputs_errors():
    model = sparse_model()
    op = "[Sequential.remove_inputs]"
    with pytest.raises(ValueError, match=match_all(op, "input 30", "[0, 30)")):
        model.remove_inputs([30])
    with pytest.raises(TypeError, match=match_all(op, "columns")):
        model.remove_inputs([1.5])
    with pytest.raises(ValueError, match=match_all(op, "both X and y")):
        model.remove_inputs([1], X=data()[0])
    model.remove_inputs([2])
    with pytest.raises(
        ValueError, match=match_all("[remove_inputs]", "input 2", "removed already")
    ):
        model.remove_inputs([2])
    with pytest.raises(ValueError, match=match_all("[remove_inputs]", "listed twice")):
        model.remove_inputs([3, 3])
    with pytest.raises(ValueError, match=match_all("[remove_inputs]", "dense")):
        ts.MLP([4, 3, 2], seed=0).remove_inputs([0])
    full = sparse_model(D=4, K=3, density=0.9)
    with pytest.raises(ValueError, match=match_all("[remove_inputs]", "do not fit")):
        full.remove_inputs([0, 1])
    assert not full.removed_inputs.any()  # a refused removal changes nothing


# -- noise injection -----------------------------------------------------------------------------
def test_input_noise_is_added_to_each_training_batch_only():
    """With one batch in order, the epoch's reported loss is the loss of X + noise before the
    step, where noise is the engine's own stream (input_noise exposes it)."""
    X, y = data(n=20)
    sigma = 0.3
    model = sparse_model()
    before = model._core.get_state()
    noise = _core.input_noise(model.seed, 0, 0, 30, 20, sigma).T  # (D, B) feature-major
    expected = model.evaluate(X + noise, y)["loss"]
    clean = model.evaluate(X, y)["loss"]
    history = model.fit(X, y, epochs=1, batch_size=20, shuffle=False, input_noise=sigma)
    assert history["loss"][0] == pytest.approx(expected, rel=1e-12) and expected != clean
    assert abs(noise.std() - sigma) < 0.05 and abs(noise.mean()) < 0.05
    # the same without noise trains differently; evaluation never adds noise
    twin = sparse_model()
    twin._core.set_state(before)
    assert twin.fit(X, y, epochs=1, batch_size=20, shuffle=False)["loss"][0] == pytest.approx(clean)
    assert model.evaluate(X, y)["loss"] == model.evaluate(X, y)["loss"]


def test_input_noise_is_reproducible_and_checked():
    X, y = data()
    a, b = sparse_model(), sparse_model()
    for m in (a, b):
        m.fit(X, y, epochs=2, batch_size=10, input_noise=0.2)
    assert np.array_equal(a.layers[0].W.data, b.layers[0].W.data)
    with pytest.raises(ValueError, match=match_all("[Sequential.fit]", "input_noise", "-0.1")):
        a.fit(X, y, input_noise=-0.1)
    with pytest.raises(TypeError, match=match_all("[Sequential.fit]", "input_noise")):
        a.fit(X, y, input_noise="0.2")


def test_a_denoising_autoencoder_trains():
    rng = np.random.default_rng(0)
    X = rng.random((200, 16)).astype(np.float32)
    X[:, 8:] = X[:, :8]  # redundant: reconstructible through a narrower hidden layer
    model = ts.MLP([16, 32, 16], density=0.5, activation="sigmoid", loss="squared_error", seed=0)
    history = model.fit(X, X, epochs=30, batch_size=20, input_noise=0.1,
                        optimizer=ts.SGD(lr=0.05, momentum=0.9), evolution=ts.SET(0.2))  # fmt: skip
    assert history["loss"][-1] < 0.5 * history["loss"][0]


# -- SET's new weights ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "regrow,check",
    [
        ("uniform", lambda v, lim: np.all(np.abs(v) <= lim) and np.abs(v).max() > 0.5 * lim),
        ("zero", lambda v, lim: np.all(v == 0)),
        ("normal", lambda v, lim: abs(v.std() - 0.05) < 0.015),
    ],
)
def test_set_new_weight_values(regrow, check):
    model = sparse_model(D=60, K=40, density=0.2, dtype=np.float64)
    rec = model.evolve(ts.SET(0.5, regrow=regrow, regrow_std=0.05))[0]
    values = model.layers[0].W.toarray().ravel()[rec["grown_positions"]]
    assert values.size > 100 and check(values, np.sqrt(6 / (60 + 40)))
