"""Adam and AdamW inside fit against a NumPy simulation (PyTorch semantics), and the warm-up
of new weights after a topology update.

From known weights (set_weights), fit(shuffle=False) takes one step per consecutive batch; the
simulation runs mlp_reference's backward on the same batches and, for every array (W and b):
    Adam   g = dW + wd W;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
           W -= rate (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    AdamW  W -= rate wd W, then the Adam step with g = dW
with rate = lr, or lr (age + 1)/(warmup + 1) for a weight created by a topology update during
its first `warmup` steps. Sparse layers are simulated as dense arrays with a 0/1 mask: off the
pattern the gradient, moments and weights stay zero.
"""

import numpy as np
import pytest

import mlp_reference as ref
import truesparse as ts
from conftest import (
    assert_close,
    assert_csr_valid,
    assert_same_pattern,
    read_params,
    set_random_weights,
)

ACT = "tanh"
LOSS = "softmax_cross_entropy"
SIZES = [5, 7, 6, 3]
DENSITIES = [0.5, 1.0, 0.6]  # sparse, dense, sparse


class AdamSim:
    """PyTorch-semantics Adam/AdamW on a list of dense arrays, with per-entry warm-up ages."""

    def __init__(self, params, lr, betas, eps, weight_decay, decoupled, warmup=0):
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.age = [np.full(p.shape, warmup) for p in self.params]  # warmup = mature
        self.t = 0
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.wd, self.decoupled, self.warmup = weight_decay, decoupled, warmup

    def step(self, grads):
        self.t += 1
        for p, g, m, v, age in zip(self.params, grads, self.m, self.v, self.age):
            young = age < self.warmup
            rate = np.where(young, self.lr * (age + 1) / (self.warmup + 1), self.lr)
            age[young] += 1
            if self.decoupled:
                p -= rate * self.wd * p
            else:
                g = g + self.wd * p
            m[...] = self.b1 * m + (1 - self.b1) * g
            v[...] = self.b2 * v + (1 - self.b2) * g * g
            m_hat = m / (1 - self.b1**self.t)
            v_hat = v / (1 - self.b2**self.t)
            p -= rate * m_hat / (np.sqrt(v_hat) + self.eps)


def _setup(seed, n):
    rng = np.random.default_rng(seed)
    model = ts.MLP(
        SIZES, densities=DENSITIES, activation=ACT, loss=LOSS, dtype=np.float64, seed=seed
    )
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((n, SIZES[0]))
    y = rng.integers(0, SIZES[-1], size=n)
    return model, weights, masks, biases, x, y


def _sim(opt, weights, biases, warmup=0):
    kw = {
        "lr": opt.lr,
        "betas": opt.betas,
        "eps": opt.eps,
        "weight_decay": opt.weight_decay,
        "decoupled": isinstance(opt, ts.AdamW),
        "warmup": warmup,
    }
    return AdamSim(weights, **kw), AdamSim(biases, **kw)


def _run(sim_w, sim_b, masks, x, y, epochs, batch_size):
    """Simulated fit(shuffle=False); returns the per-epoch mean losses."""
    losses = []
    for _ in range(epochs):
        values, counts = [], []
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            value, dws, dbs, _ = ref.backward(sim_w.params, masks, sim_b.params, xb, yb, ACT, LOSS)
            values.append(value)
            counts.append(len(yb))
            sim_w.step(dws)
            sim_b.step(dbs)
        losses.append(float(np.average(values, weights=counts)))
    for w, m in zip(sim_w.params, masks):
        assert not np.any(w[~m])
    return losses


def _check(model, sim_w, sim_b, masks):
    for li, layer in enumerate(model.layers):
        W = layer.W
        dense = W.toarray() if layer.is_sparse else W
        if layer.is_sparse:
            assert_csr_valid(W, layer.shape)
        assert_close(dense, sim_w.params[li])
        assert_close(layer.b, sim_b.params[li])
        state = layer.optimizer_state
        assert state["steps"] == sim_w.t
        # The state is aligned with W.data (row-major over the pattern) or W.ravel().
        assert_close(state["m"], sim_w.m[li][masks[li]])
        assert_close(state["v"], sim_w.v[li][masks[li]])


OPTIMIZERS = {
    "adam": ts.Adam(lr=0.01),
    "adam_betas_eps": ts.Adam(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
    "adam_weight_decay": ts.Adam(lr=0.01, weight_decay=0.05),
    "adamw": ts.AdamW(lr=0.01),
    "adamw_strong_decay": ts.AdamW(lr=0.03, betas=(0.85, 0.95), weight_decay=0.3),
}


@pytest.mark.parametrize("epochs,batch_size", [(1, 12), (3, 5), (2, 4)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_adam_fit_matches_numpy(name, epochs, batch_size):
    opt = OPTIMIZERS[name]
    model, weights, masks, biases, x, y = _setup(seed=31, n=12)
    patterns = [layer.W for layer in model.layers]
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer=opt, shuffle=False)
    sim_w, sim_b = _sim(opt, weights, biases)
    losses = _run(sim_w, sim_b, masks, x, y, epochs, batch_size)
    assert_close(np.array(history["loss"]), np.array(losses))
    _check(model, sim_w, sim_b, masks)
    for layer, pattern in zip(model.layers, patterns):
        if layer.is_sparse:
            assert_same_pattern(layer.W, pattern)


def test_adam_and_adamw_differ_only_with_weight_decay():
    results = {}
    for name, opt in [
        ("adam", ts.Adam(lr=0.01)),
        ("adamw0", ts.AdamW(lr=0.01, weight_decay=0.0)),
        ("adamw", ts.AdamW(lr=0.01, weight_decay=0.1)),
    ]:
        model, _, _, _, x, y = _setup(seed=32, n=10)
        model.fit(x, y, epochs=2, batch_size=5, optimizer=opt, shuffle=False)
        results[name] = read_params(model)[0]
    for a, b in zip(results["adam"], results["adamw0"]):
        assert np.array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(results["adam"], results["adamw"]))


@pytest.mark.parametrize("warmup", [0, 1, 3])
@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_new_weight_warmup_after_set_update(kind, warmup):
    """Train, SET update, train: new weights step with lr (age+1)/(warmup+1) at first."""
    opt_class = ts.Adam if kind == "adam" else ts.AdamW
    opt = opt_class(lr=0.02, weight_decay=0.05, new_weight_warmup=warmup)
    model, weights, masks, biases, x, y = _setup(seed=33, n=12)
    n = x.shape[0]
    model.fit(x, y, epochs=2, batch_size=n, optimizer=opt, shuffle=False)
    sim_w, sim_b = _sim(opt, weights, biases, warmup)
    _run(sim_w, sim_b, masks, x, y, 2, n)  # the existing weights are mature: full steps
    _check(model, sim_w, sim_b, masks)

    records = model.evolve(ts.SET(zeta=0.3, regrow="normal"))
    new_masks = []
    for li, layer in enumerate(model.layers):
        if not layer.is_sparse:
            new_masks.append(masks[li])
            continue
        r = next(r for r in records if r["layer"] == li)
        assert r["grown"] > 0
        W = layer.W
        new_mask = W.toarray() != 0
        shape = layer.shape
        for key, positions in (
            ("dropped", r["dropped_positions"]),
            ("grown", r["grown_positions"]),
        ):
            at = np.unravel_index(positions, shape)
            # dropped or new: zero moments; new: age 0 and the engine's initial value
            sim_w.m[li][at] = 0.0
            sim_w.v[li][at] = 0.0
            sim_w.params[li][at] = 0.0
            if key == "grown":
                sim_w.age[li][at] = 0
                sim_w.params[li][at] = W.toarray()[at]
        assert np.array_equal(sim_w.params[li] != 0, new_mask)
        new_masks.append(new_mask)
    _check(model, sim_w, sim_b, new_masks)  # survivors and state unchanged by the update

    steps = warmup + 2
    model.fit(x, y, epochs=steps, batch_size=n, optimizer=opt, shuffle=False)
    _run(sim_w, sim_b, new_masks, x, y, steps, n)
    _check(model, sim_w, sim_b, new_masks)


def test_warmup_makes_new_weights_move_less():
    """Identical conditions, warmup 3 vs 0: after one step the new weights moved exactly 1/4
    as far (zero moments make Adam's first step ±rate), the survivors the same distance."""
    moved = {}
    for warmup in (0, 3):
        opt = ts.Adam(lr=0.02, new_weight_warmup=warmup)
        model, _, _, _, x, y = _setup(seed=34, n=12)
        model.fit(x, y, epochs=2, batch_size=12, optimizer=opt, shuffle=False)
        records = model.evolve(ts.SET(zeta=0.3))
        before = model.layers[0].W
        new = np.isin(
            np.arange(before.shape[0] * before.shape[1]), records[0]["grown_positions"]
        ).reshape(before.shape)
        model.fit(x, y, epochs=1, batch_size=12, optimizer=opt, shuffle=False)
        delta = np.abs(model.layers[0].W.toarray() - before.toarray())
        moved[warmup] = (delta[new], delta[~new & (before.toarray() != 0)])
    assert moved[0][0].size > 0
    assert_close(moved[3][0], moved[0][0] / 4)
    assert_close(moved[3][1], moved[0][1])
