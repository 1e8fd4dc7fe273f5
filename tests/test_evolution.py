"""Dynamic sparse training (SET and RigL, docs/dynamic-sparse-training.md) against NumPy references.

Every check recomputes the expected result in the test from what the engine exposes
(layer.W, records, optimizer_state), on small float64 layers with random weights (no ties):
- nnz and CSR invariants survive every update, and forward/backward after an update equal
  the reference MLP (truesparse.reference) on the new dense W (so the MKL handles and the
  Wᵀ copy follow the pattern);
- SET drops exactly the sign-split selection and grows uniformly among the empty positions
  (chi-square over positions, with a check that the same statistic rejects biased samplers);
- RigL drops the k smallest |w| and grows the top-k of the dense gradient DZᵀA among the
  positions not kept; reselected positions keep their value; the drop-fraction schedules;
- survivors keep value and optimizer state bit for bit, new entries have zero state;
- same seed gives the same topology for 1 and 2 threads, another seed another topology;
- fit's topology history (counts, steps, ITOP rate, degree histograms); argument errors.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import chi2

import reference_network as refnet
import truesparse as ts
from conftest import (
    assert_close,
    assert_csr_valid,
    assert_same_pattern,
    csr_from_mask,
    match_all,
    read_params,
    set_random_weights,
)
from truesparse import reference as R

ACT = "tanh"  # smooth: no zero gradients, so no ties in RigL's growth criterion
LOSS = "softmax_cross_entropy"
SIZES = [6, 9, 7, 4]
DENSITIES = [0.4, 0.35, 0.5]


# -- helpers ------------------------------------------------------------------------------------
def _model(seed=0, sizes=SIZES, densities=DENSITIES, backend="mkl", weights_seed=None):
    """A float64 tanh model with random known weights (set_weights, so no ties)."""
    model = ts.MLP(
        sizes,
        densities=densities,
        activation=ACT,
        loss=LOSS,
        dtype=np.float64,
        seed=seed,
        backend=backend,
    )
    rng = np.random.default_rng(1000 + (seed if weights_seed is None else weights_seed))
    set_random_weights(model, rng)
    return model


def _data(sizes=SIZES, n=20, seed=7):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, sizes[0])), rng.integers(0, sizes[-1], size=n)


def _positions(W):
    """Flat positions i*in + j of the stored entries of CSR W, in storage order."""
    indptr = np.asarray(W.indptr, dtype=np.int64)
    rows = np.repeat(np.arange(W.shape[0], dtype=np.int64), np.diff(indptr))
    return rows * W.shape[1] + np.asarray(W.indices, dtype=np.int64)


def _sparse_layers(model):
    return [i for i, layer in enumerate(model.layers) if layer.is_sparse]


def _evolve(model, evolution, x, y):
    if isinstance(evolution, ts.RigL):
        return model.evolve(evolution, x, y)
    return model.evolve(evolution)


def _check_products(model, x, y):
    """Logits, loss, DW (on the pattern) and Db equal the reference MLP on the current W."""
    layers = refnet.reference_mlp(*read_params(model), ACT)
    assert_close(model.forward(x), refnet.forward(layers, x))
    _, value = refnet.forward_backward(layers, R.LOSSES[LOSS](), x, y)
    assert_close(model.backward(x, y), value)
    for layer, reference in zip(model.layers, refnet.linear_layers(layers)):
        if layer.is_sparse:
            assert_same_pattern(layer.DW, layer.W)
            assert_close(layer.DW.toarray(), reference.DW)
        else:
            assert_close(layer.DW, reference.DW)
        assert_close(layer.Db, reference.Db)


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


def _round_half_up(x):
    return math.floor(x + 0.5)


EVOLUTIONS = {
    "set_init": ts.SET(zeta=0.3),
    "set_zero": ts.SET(zeta=0.5, regrow="zero"),
    "set_normal": ts.SET(zeta=0.2, regrow="normal"),
    "rigl": ts.RigL(alpha=0.4),
}


# -- 1. nnz, CSR invariants, and products after an update --------------------------------------
@pytest.mark.parametrize("backend", ["mkl", "native"])
@pytest.mark.parametrize("name", list(EVOLUTIONS))
def test_evolve_keeps_nnz_and_products_follow_new_pattern(name, backend):
    evolution = EVOLUTIONS[name]
    model = _model(seed=1, backend=backend)
    x, y = _data()
    nnz0 = [layer.nnz for layer in model.layers]
    for _ in range(4):
        records = _evolve(model, evolution, x, y)
        assert [r["layer"] for r in records] == _sparse_layers(model)
        for r in records:
            assert r["nnz"] == nnz0[r["layer"]]
            assert r["dropped"] + r["reselected"] > 0  # the update did change something
        for li, layer in enumerate(model.layers):
            assert layer.nnz == nnz0[li]
            assert_csr_valid(layer.W, layer.shape)
        _check_products(model, x, y)
    if name == "set_zero":
        assert np.count_nonzero(model.layers[0].W.data == 0.0) > 0
    if name == "set_normal":  # N(0, 0.01²) draws are far below the He-scaled survivors
        grown = records[0]["grown_positions"]
        W = model.layers[0].W
        assert np.all(np.abs(W.data[np.isin(_positions(W), grown)]) < 0.06)


@pytest.mark.parametrize("backend", ["mkl", "native"])
@pytest.mark.parametrize(
    "evolution",
    [ts.SET(zeta=0.3), ts.SET(zeta=0.4, delta_t=3), ts.RigL(alpha=0.5, delta_t=2)],
    ids=["set_epoch", "set_delta_t", "rigl"],
)
def test_fit_with_evolution_keeps_nnz_and_invariants(evolution, backend):
    model = _model(seed=2, backend=backend)
    x, y = _data(n=30)
    nnz0 = [layer.nnz for layer in model.layers]
    seen_epochs = []

    def after_epoch(record):  # checks the model after every epoch's updates
        for li, layer in enumerate(model.layers):
            assert layer.nnz == nnz0[li]
            assert_csr_valid(layer.W, layer.shape)
        seen_epochs.append(record["epoch"])

    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=7,
        optimizer=ts.SGD(lr=0.05, momentum=0.9),
        callback=after_epoch,
        evolution=evolution,
    )
    assert seen_epochs == [1, 2, 3, 4]
    assert len(history["topology"]) > 0
    for r in history["topology"]:
        assert r["nnz"] == nnz0[r["layer"]]
    _check_products(model, x, y)


# -- 2. SET: drop selection and uniform growth -------------------------------------------------
def _set_reference_drop(values, positions, zeta):
    """Positions SET drops: every exact zero, round(ζ #pos) smallest positive, round(ζ #neg)
    negative closest to zero (#pos, #neg count the nonzero weights); ties by lower storage
    index (none here). As the original's thresholds: keep only w > smallest kept positive or
    w < largest kept negative."""
    idx = np.arange(values.size)
    dropped = [idx[values == 0]]
    for select in (values > 0, values < 0):
        cand = idx[select]
        mag = np.abs(values[cand])
        order = cand[np.lexsort((cand, mag))]  # by magnitude, then storage index
        dropped.append(order[: _round_half_up(zeta * cand.size)])
    return np.sort(positions[np.concatenate(dropped)])


def _single_layer_model(rng, K, D, density, n_zeros=0, seed=0):
    """Model with one sparse (K, D) layer whose values are distinct, n_zeros stored zeros."""
    model = ts.MLP([D, K], densities=[0.5], activation=ACT, dtype=np.float64, seed=seed)
    mask = np.zeros(K * D, dtype=bool)
    mask[rng.choice(K * D, size=round(density * K * D), replace=False)] = True
    mask = mask.reshape(K, D)
    w = rng.standard_normal((K, D))
    rows, cols = np.nonzero(mask)
    zero_at = rng.choice(rows.size, size=n_zeros, replace=False)
    w[rows[zero_at], cols[zero_at]] = 0.0
    W = csr_from_mask(mask, w)
    model.layers[0].set_weights(W)
    return model, W


@pytest.mark.parametrize("zeta", [0.0, 0.1, 0.3, 0.55, 1.0])
@pytest.mark.parametrize("shape,density", [((9, 11), 0.4), ((5, 4), 0.9), ((12, 30), 0.1)])
def test_set_drops_exactly_the_reference_and_grows_only_at_empty_positions(zeta, shape, density):
    rng = np.random.default_rng(int(zeta * 100) + shape[0])
    K, D = shape
    model, W0 = _single_layer_model(rng, K, D, density, n_zeros=2)
    pos0 = _positions(W0)
    expected_drop = _set_reference_drop(W0.data, pos0, zeta)
    rec = model.evolve(ts.SET(zeta=zeta))[0]
    assert_close(rec["dropped_positions"], expected_drop)
    assert rec["dropped"] == expected_drop.size
    grown = rec["grown_positions"]
    assert rec["grown"] == grown.size == expected_drop.size
    assert np.all(np.diff(grown) > 0) and (grown.size == 0 or (grown[0] >= 0 and grown[-1] < K * D))
    survivors = np.setdiff1d(pos0, expected_drop)
    assert np.intersect1d(grown, survivors).size == 0  # never at a survivor
    W1 = model.layers[0].W
    assert_csr_valid(W1, (K, D))
    assert_close(_positions(W1), np.union1d(survivors, grown))
    kept1 = np.isin(_positions(W1), survivors)
    kept0 = np.isin(pos0, survivors)
    assert np.array_equal(_bits(W1.data[kept1]), _bits(W0.data[kept0]))
    assert np.count_nonzero(W0.data[kept0] == 0.0) == 0  # stored zeros never survive
    assert np.count_nonzero(W0.data == 0.0) == 2


def _uniformity_statistic(counts, trials, k):
    """Pearson statistic of per-position counts of `trials` draws of k of n without replacement.

    Per trial, position i is drawn with p = k/n, and Cov(counts) = T p (1-p) n/(n-1) (I - 11ᵀ/n),
    so sum (O - E)² / (E (1-p) n/(n-1)) is asymptotically chi-square with n - 1 degrees of
    freedom (the plain Pearson sum would be too small by the factor (1-p) n/(n-1)).
    """
    n = counts.size
    p = k / n
    expected = trials * p
    return float(np.sum((counts - expected) ** 2) / (expected * (1 - p) * n / (n - 1)))


@pytest.mark.parametrize(
    "shape,density,zeta",
    # rejection sampling (>= 1/4 of the layer empty) and the listing branch (nearly dense)
    [((10, 12), 0.25, 0.5), ((10, 12), 110 / 120, 0.1)],
    ids=["sparse", "nearly_dense"],
)
def test_set_growth_is_uniform_over_empty_positions(shape, density, zeta):
    K, D = shape
    trials = 1500
    rng = np.random.default_rng(2024)
    model, W0 = _single_layer_model(rng, K, D, density)
    pos0 = _positions(W0)
    dropped = _set_reference_drop(W0.data, pos0, zeta)
    empty = np.setdiff1d(np.arange(K * D), np.setdiff1d(pos0, dropped))  # the candidates
    k = dropped.size
    counts = np.zeros(K * D)
    for _ in range(trials):  # each evolve uses a new random stream (the update counter grows)
        model.layers[0].set_weights(W0)
        rec = model.evolve(ts.SET(zeta=zeta))[0]
        assert_close(rec["dropped_positions"], dropped)
        assert rec["grown_positions"].size == k
        counts[rec["grown_positions"]] += 1
    assert np.all(counts[np.setdiff1d(np.arange(K * D), empty)] == 0)
    # degrees of freedom = #candidates - 1 (the total is fixed); quantile 0.999 of chi2(df):
    # a correct sampler fails with probability 1e-3 (and the seed is fixed).
    df = empty.size - 1
    threshold = chi2.ppf(0.999, df)
    assert _uniformity_statistic(counts[empty], trials, k) < threshold
    # The same statistic rejects samplers biased towards low positions (weights falling
    # linearly from 1.25 to 0.75) or towards the first rows (weight 1.5 on the first 20%).
    n = empty.size
    biased = {
        "low_positions": np.linspace(1.25, 0.75, n),
        "first_rows": np.where(np.arange(n) < n // 5, 1.5, 1.0),
    }
    sim = np.random.default_rng(5)
    for weights in biased.values():
        c = np.zeros(n)
        for _ in range(trials):
            c[sim.choice(n, size=k, replace=False, p=weights / weights.sum())] += 1
        assert _uniformity_statistic(c, trials, k) > threshold


def test_set_uses_the_model_seed():
    """Same starting weights, different model seeds: different grown positions."""
    grown = []
    for seed in (3, 4):
        rng = np.random.default_rng(11)
        model, _ = _single_layer_model(rng, 10, 12, 0.3, seed=seed)
        grown.append(model.evolve(ts.SET(zeta=0.3))[0]["grown_positions"])
    assert grown[0].size == grown[1].size > 0
    assert not np.array_equal(grown[0], grown[1])


# -- 3. RigL: drop, gradient growth, reselection, schedules ------------------------------------
@pytest.mark.parametrize("f", [0.0, 0.15, 0.4, 0.75, 1.0])
@pytest.mark.parametrize("sizes,densities", [(SIZES, DENSITIES), ([8, 5, 3], [0.6, 1.0])])
def test_rigl_drops_smallest_and_grows_top_k_of_dense_gradient(f, sizes, densities):
    model = _model(seed=5, sizes=sizes, densities=densities)
    x, y = _data(sizes, n=15, seed=8)
    ws, ms, bs = read_params(model)
    before = [layer.W for layer in model.layers]
    # Dense gradient of the batch-mean loss (pattern of ones): DW = DY Aᵀ, (K, D) = (K, N) (N, D).
    layers = refnet.reference_mlp(ws, [np.ones_like(m) for m in ms], bs, ACT)
    refnet.forward_backward(layers, R.LOSSES[LOSS](), x, y)
    dense_grads = [layer.DW for layer in refnet.linear_layers(layers)]
    records = model.evolve(ts.RigL(alpha=0.3), x, y, drop_fraction=f)
    assert [r["layer"] for r in records] == _sparse_layers(model)
    for r in records:
        li = r["layer"]
        W0, W1 = before[li], model.layers[li].W
        K, D = W0.shape
        pos0 = _positions(W0)
        k = math.floor(f * W0.nnz)
        drop = np.sort(pos0[np.argsort(np.abs(W0.data), kind="stable")[:k]])
        kept = np.setdiff1d(pos0, drop)
        eligible = np.setdiff1d(np.arange(K * D), kept)
        g = np.abs(dense_grads[li].ravel()[eligible])
        grow = np.sort(eligible[np.argsort(-g, kind="stable")[:k]])
        reselected = np.intersect1d(drop, grow)
        assert r["reselected"] == reselected.size
        assert_close(r["dropped_positions"], np.setdiff1d(drop, reselected))
        assert_close(r["grown_positions"], np.setdiff1d(grow, reselected))
        assert r["dropped"] == r["grown"] == k - reselected.size
        assert_csr_valid(W1, (K, D))
        assert_close(_positions(W1), np.union1d(kept, grow))
        # Survivors and reselected keep their value bit for bit; truly new ones are 0.
        old = dict(zip(pos0.tolist(), W0.data.tolist()))
        p1 = _positions(W1)
        new = np.isin(p1, np.setdiff1d(grow, reselected))
        assert np.all(W1.data[new] == 0.0)
        assert np.array_equal(_bits(W1.data[~new]), _bits([old[p] for p in p1[~new]]))
        # DW is the dense gradient restricted to the new pattern.
        mask1 = np.isin(np.arange(K * D), p1).reshape(K, D)
        assert_close(model.layers[li].DW.toarray(), dense_grads[li] * mask1)


@pytest.mark.parametrize("alpha", [0.3, 0.8])
@pytest.mark.parametrize(
    "schedule,exponent",
    [("cosine", 2.0), ("constant", 2.0), ("exponential", 2.0), ("exponential", 3.5)],
)
def test_rigl_drop_fraction_schedules(schedule, exponent, alpha):
    evolution = ts.RigL(alpha=alpha, schedule=schedule, exponent=exponent)
    t_end = 750.0
    for t in [0.0, 1.0, 100.0, 375.0, 600.0, 749.0, 750.0]:
        expected = {
            "cosine": alpha / 2 * (1 + math.cos(math.pi * t / t_end)),
            "constant": alpha,
            "exponential": alpha * (1 - t / t_end) ** exponent,
        }[schedule]
        assert_close(evolution.drop_fraction(t, t_end), expected, rtol=1e-14, atol=1e-15)
    for t in [751.0, 1000.0]:
        assert evolution.drop_fraction(t, t_end) == 0.0


@pytest.mark.parametrize("schedule", ["cosine", "constant", "exponential"])
@pytest.mark.parametrize("t_end", [0.75, 7, 1.0])
def test_rigl_in_fit_follows_the_schedule(schedule, t_end):
    model = _model(seed=6)
    x, y = _data(n=24)
    model.fit(x, y, epochs=1, batch_size=5, optimizer=ts.SGD(lr=0.05))  # t_begin = 5
    t_begin = 5
    evolution = ts.RigL(alpha=0.6, delta_t=2, t_end=t_end, schedule=schedule)
    epochs, steps_per_epoch = 2, 5
    nnz = [layer.nnz for layer in model.layers]
    history = model.fit(
        x, y, epochs=epochs, batch_size=5, optimizer=ts.SGD(lr=0.05), evolution=evolution
    )
    total = epochs * steps_per_epoch
    t_end_steps = int(t_end * total) if isinstance(t_end, float) else t_end
    # Updates at t % delta_t == 0, t <= T_end, and only where the drop fraction is positive
    # (the decaying schedules reach 0 at T_end, where an update would change nothing).
    update_steps = [
        t
        for t in range(1, total + 1)
        if t % 2 == 0 and t <= t_end_steps and evolution.drop_fraction(t, t_end_steps) > 0
    ]
    sparse = _sparse_layers(model)
    records = history["topology"]
    assert [r["step"] for r in records] == [t_begin + t for t in update_steps for _ in sparse]
    assert [r["layer"] for r in records] == sparse * len(update_steps)
    for r in records:
        f = evolution.drop_fraction(r["step"] - t_begin, t_end_steps)
        assert r["dropped"] + r["reselected"] == math.floor(f * nnz[r["layer"]])
        assert r["grown"] == r["dropped"]


@pytest.mark.parametrize("skip", [True, False])
def test_rigl_skips_the_optimizer_step_on_update_steps(skip):
    model = _model(seed=9)
    x, y = _data(n=10)
    b0 = [layer.b for layer in model.layers]
    evolution = ts.RigL(
        alpha=0.3, delta_t=1, t_end=1, schedule="constant", skip_optimizer_step=skip
    )
    history = model.fit(
        x, y, epochs=1, batch_size=10, optimizer=ts.SGD(lr=0.1), evolution=evolution
    )
    assert len(history["topology"]) == len(_sparse_layers(model))
    for layer, b in zip(model.layers, b0):
        assert np.array_equal(layer.b, b) == skip


# -- 4. survivors keep value and optimizer state bit for bit -----------------------------------
@pytest.mark.parametrize(
    "optimizer",
    [ts.SGD(lr=0.05, momentum=0.9), ts.Adam(lr=0.01), ts.AdamW(lr=0.01, weight_decay=0.1)],
    ids=["sgd_momentum", "adam", "adamw"],
)
@pytest.mark.parametrize("name", ["set_init", "set_zero", "rigl"])
def test_survivors_keep_value_and_state_new_entries_zero_state(name, optimizer):
    evolution = EVOLUTIONS[name]
    model = _model(seed=10)
    x, y = _data(n=16)
    model.fit(x, y, epochs=3, batch_size=6, optimizer=optimizer, shuffle=False)
    is_adam = isinstance(optimizer, ts.Adam)
    before = []
    for layer in model.layers:
        state = layer.optimizer_state
        # (a hidden unit without outgoing weights has zero gradient, hence some zero state)
        assert state["m"] is not None and np.count_nonzero(state["m"]) > layer.nnz // 2
        assert (state["v"] is not None) == is_adam
        before.append((layer.W, state, layer.b))
    records = _evolve(model, evolution, x, y)
    for r in records:
        li = r["layer"]
        W0, s0, b0 = before[li]
        layer = model.layers[li]
        W1, s1 = layer.W, layer.optimizer_state
        assert np.array_equal(layer.b, b0)
        assert s1["steps"] == s0["steps"]
        p0, p1 = _positions(W0), _positions(W1)
        new = np.isin(p1, r["grown_positions"])
        survivors = np.setdiff1d(p0, r["dropped_positions"])
        assert_close(np.sort(p1[~new]), survivors)
        at = np.searchsorted(p0, p1[~new])  # storage index of each survivor before
        assert np.array_equal(_bits(W1.data[~new]), _bits(W0.data[at]))
        for key in ("m", "v"):
            if s0[key] is None:
                assert s1[key] is None
                continue
            assert s1[key].shape == W1.data.shape
            assert np.array_equal(_bits(s1[key][~new]), _bits(s0[key][at]))
            assert np.all(s1[key][new] == 0.0)
        assert np.count_nonzero(new) == r["grown"] > 0


# -- 5. determinism ----------------------------------------------------------------------------
DETERMINISM = {
    "set_epoch": ts.SET(zeta=0.3),
    "set_delta_t": ts.SET(zeta=0.3, delta_t=3),
    "rigl": ts.RigL(alpha=0.4, delta_t=2),
}


def _train_topology(seed, threads, evolution):
    ts.set_num_threads(threads)
    assert ts.get_num_threads() == threads
    x, y = _data([12, 16, 10, 4], n=40, seed=3)
    model = ts.MLP(
        [12, 16, 10, 4], densities=[0.3, 0.4, 0.6], activation="relu", dtype=np.float64, seed=seed
    )
    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        optimizer=ts.SGD(lr=0.05, momentum=0.9),
        shuffle=True,
        evolution=evolution,
    )
    patterns = [(np.asarray(L.W.indptr), np.asarray(L.W.indices), L.W.data) for L in model.layers]
    grown = [r["grown_positions"] for r in history["topology"]]
    return patterns, grown


@pytest.mark.parametrize("name", list(DETERMINISM))
def test_same_seed_same_topology_for_any_thread_count(name, restore_threads):
    evolution = DETERMINISM[name]
    runs = [_train_topology(21, t, evolution) for t in (1, 2, 1)]
    for patterns, grown in runs[1:]:
        for (indptr, indices, data), (indptr0, indices0, data0) in zip(patterns, runs[0][0]):
            assert np.array_equal(indptr, indptr0)
            assert np.array_equal(indices, indices0)
            assert np.array_equal(_bits(data), _bits(data0))
        assert len(grown) == len(runs[0][1]) > 0
        assert all(np.array_equal(a, b) for a, b in zip(grown, runs[0][1]))
    other, _ = _train_topology(22, 1, evolution)
    assert any(
        not np.array_equal(a[1], b[1]) or not np.array_equal(a[0], b[0])
        for a, b in zip(other, runs[0][0])
    )


# -- 6. topology history in fit ----------------------------------------------------------------
HISTORY_SIZES = [10, 12, 8, 5]
HISTORY_DENSITIES = [0.3, 1.0, 0.4]  # the middle layer is dense: no records for it


@pytest.mark.parametrize(
    "evolution,update_steps",
    [
        (ts.SET(zeta=0.3), [5, 10, 15]),  # after every epoch but the last (4 epochs of 5 steps)
        (ts.SET(zeta=0.3, delta_t=6), [6, 12, 18]),
        (ts.RigL(alpha=0.5, delta_t=4), [4, 8, 12]),  # t_end = int(0.75 * 20) = 15
    ],
    ids=["set_epoch", "set_delta_t", "rigl"],
)
def test_fit_topology_history(evolution, update_steps):
    model = _model(seed=12, sizes=HISTORY_SIZES, densities=HISTORY_DENSITIES)
    x, y = _data(HISTORY_SIZES, n=24)
    sparse = _sparse_layers(model)
    assert sparse == [0, 2]
    ever = {li: set(_positions(model.layers[li].W).tolist()) for li in sparse}
    density0 = {li: model.layers[li].density for li in sparse}
    history = model.fit(
        x, y, epochs=4, batch_size=5, optimizer=ts.SGD(lr=0.05), evolution=evolution
    )
    records = history["topology"]
    assert len(records) == len(sparse) * len(update_steps)
    assert [r["layer"] for r in records] == sparse * len(update_steps)
    assert [r["step"] for r in records] == [t for t in update_steps for _ in sparse]
    last_itop = dict(density0)
    for r in records:
        li = r["layer"]
        K, D = model.layers[li].shape
        ever[li] |= set(r["grown_positions"].tolist())
        assert_close(r["itop_rate"], len(ever[li]) / (K * D))
        assert r["itop_rate"] >= last_itop[li]
        last_itop[li] = r["itop_rate"]
        h_in, h_out = r["in_degree_histogram"], r["out_degree_histogram"]
        assert h_in.sum() == D and h_out.sum() == K
        assert np.dot(np.arange(h_in.size), h_in) == r["nnz"]
        assert np.dot(np.arange(h_out.size), h_out) == r["nnz"]
    for li in sparse:
        layer = model.layers[li]
        assert_close(layer.itop_rate, last_itop[li])
        if isinstance(evolution, ts.SET):
            assert layer.itop_rate > density0[li]
        final = [r for r in records if r["layer"] == li][-1]
        W = layer.W
        assert_close(final["out_degree_histogram"], np.bincount(np.diff(W.indptr)))
        assert_close(
            final["in_degree_histogram"], np.bincount(np.bincount(W.indices, minlength=W.shape[1]))
        )


def test_fit_without_evolution_has_no_topology_history():
    model = _model(seed=13)
    x, y = _data(n=10)
    history = model.fit(x, y, epochs=2, batch_size=5)
    assert "topology" not in history


def test_set_per_epoch_single_epoch_makes_no_update():
    model = _model(seed=14)
    x, y = _data(n=10)
    pattern = [sp.csr_array(layer.W) for layer in model.layers]
    history = model.fit(x, y, epochs=1, batch_size=5, evolution=ts.SET())
    assert history["topology"] == []
    for layer, W in zip(model.layers, pattern):
        assert_same_pattern(layer.W, W)


# -- 7. errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,parts",
    [
        (lambda: ts.SET(zeta=1.5), ("[SET]", "zeta", 1.5)),
        (lambda: ts.SET(zeta=-0.1), ("[SET]", "zeta")),
        (lambda: ts.SET(delta_t=0), ("[SET]", "delta_t")),
        (lambda: ts.SET(regrow="glorot"), ("[SET]", "regrow", "glorot")),
        (lambda: ts.SET(regrow_std=-1.0), ("[SET]", "regrow_std", "-1.0")),
        (lambda: ts.RigL(alpha=-1), ("[RigL]", "alpha", -1)),
        (lambda: ts.RigL(alpha=1.5), ("[RigL]", "alpha")),
        (lambda: ts.RigL(delta_t=0), ("[RigL]", "delta_t", 0)),
        (lambda: ts.RigL(t_end=1.5), ("[RigL]", "t_end")),
        (lambda: ts.RigL(t_end=-3), ("[RigL]", "t_end")),
        (lambda: ts.RigL(schedule="x"), ("[RigL]", "schedule", "'x'")),
    ],
)
def test_invalid_evolution_settings(make, parts):
    with pytest.raises(ValueError, match=match_all(*parts)):
        make()


def test_evolve_and_fit_argument_errors():
    model = _model(seed=15)
    x, y = _data(n=10)
    with pytest.raises(ValueError, match=match_all("[MLP.evolve]", "RigL", "batch")):
        model.evolve(ts.RigL())
    with pytest.raises(ValueError, match=match_all("[MLP.evolve]", "RigL")):
        model.evolve(ts.RigL(), x)
    with pytest.raises(ValueError, match=match_all("[MLP.evolve]", "drop_fraction", 1.5)):
        model.evolve(ts.RigL(), x, y, drop_fraction=1.5)
    with pytest.raises(ValueError, match=match_all("[MLP.evolve]", "features")):
        model.evolve(ts.RigL(), x[:, :3], y)
    with pytest.raises(TypeError, match=match_all("[MLP.evolve]", "SET", "RigL", "str")):
        model.evolve("set")
    with pytest.raises(TypeError, match=match_all("[MLP.evolve]", "SGD")):
        model.evolve(ts.SGD())
    with pytest.raises(TypeError, match=match_all("[MLP.fit]", "evolution", "str")):
        model.fit(x, y, epochs=1, evolution="rigl")
    with pytest.raises(TypeError, match=match_all("[MLP.fit]", "evolution", "Adam")):
        model.fit(x, y, epochs=1, evolution=ts.Adam())
