"""Adam and AdamW inside fit against a NumPy simulation (PyTorch semantics), and the warm-up
of new weights after a topology update.

From known weights (set_weights), fit(shuffle=False) takes one step per consecutive batch; the
simulation (reference_network.train_epoch) runs the reference MLP's training pass on the same
batches and the reference optimizers truesparse.reference.Adam / AdamW, one per array (W and b):
    Adam   g = DW + wd W;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
           W -= rate (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    AdamW  W -= rate wd W, then the Adam step with g = DW
with rate = lr, or lr (age + 1)/(warmup + 1) for a weight created by a topology update during
its first `warmup` steps (new_weight_warmup; the reference's update_topology marks them).
Sparse layers are simulated as dense arrays with a 0/1 pattern: off the pattern the gradient,
moments and weights stay zero.
"""

import numpy as np
import pytest

import reference_network as refnet
import truesparse as ts
from conftest import (
    assert_close,
    assert_csr_valid,
    assert_same_pattern,
    read_params,
    set_random_weights,
)
from truesparse import reference as R

ACT = "tanh"
LOSS = "softmax_cross_entropy"
SIZES = [5, 7, 6, 3]
DENSITIES = [0.5, 1.0, 0.6]  # sparse, dense, sparse


def _setup(seed, n):
    rng = np.random.default_rng(seed)
    model = ts.MLP(
        SIZES, densities=DENSITIES, activation=ACT, loss=LOSS, dtype=np.float64, seed=seed
    )
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((n, SIZES[0]))
    y = rng.integers(0, SIZES[-1], size=n)
    return model, weights, masks, biases, x, y


class Simulation:
    """The reference MLP and its optimizers (one per array, kept across ``run`` calls as the
    engine keeps its optimizer state across fits)."""

    def __init__(self, weights, masks, biases, make_optimizer):
        self.layers = refnet.reference_mlp(weights, masks, biases, ACT)
        self.linear = refnet.linear_layers(self.layers)
        self.make_optimizer = make_optimizer
        self.optimizers = {}

    def run(self, x, y, epochs, batch_size):
        """Simulated fit(shuffle=False); returns the per-epoch mean losses."""
        losses = [
            value
            for value, _ in refnet.fit(
                self.layers,
                R.LOSSES[LOSS](),
                x,
                y,
                epochs=epochs,
                batch_size=batch_size,
                make_optimizer=self.make_optimizer,
                optimizers=self.optimizers,
            )
        ]
        for layer in self.linear:
            assert not np.any(layer.W[layer.pattern == 0])
        return losses

    def optimizer(self, li):
        """The reference optimizer of linear layer li's W."""
        return self.optimizers[(self.linear[li], "W")]


def _check(model, sim):
    for li, layer in enumerate(model.layers):
        reference = sim.linear[li]
        W = layer.W
        dense = W.toarray() if layer.is_sparse else W
        if layer.is_sparse:
            assert_csr_valid(W, layer.shape)
        assert_close(dense, reference.W)
        assert_close(layer.b, reference.b)
        state, opt = layer.optimizer_state, sim.optimizer(li)
        assert state["steps"] == opt.t
        # The state is aligned with W.data (row-major over the pattern) or W.ravel().
        on_pattern = reference.pattern == 1
        assert_close(state["m"], opt.m[on_pattern])
        assert_close(state["v"], opt.v[on_pattern])


# name: (the engine's optimizer, a maker of the reference optimizer of one array)
OPTIMIZERS = {
    "adam": (ts.Adam(lr=0.01), lambda: R.Adam(0.01)),
    "adam_betas_eps": (
        ts.Adam(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
        lambda: R.Adam(0.02, 0.8, 0.99, eps=1e-6),
    ),
    "adam_weight_decay": (
        ts.Adam(lr=0.01, weight_decay=0.05),
        lambda: R.Adam(0.01, weight_decay=0.05),
    ),
    "adamw": (ts.AdamW(lr=0.01), lambda: R.AdamW(0.01)),  # weight_decay 0.01 in both
    "adamw_strong_decay": (
        ts.AdamW(lr=0.03, betas=(0.85, 0.95), weight_decay=0.3),
        lambda: R.AdamW(0.03, 0.85, 0.95, weight_decay=0.3),
    ),
}


@pytest.mark.parametrize("epochs,batch_size", [(1, 12), (3, 5), (2, 4)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_adam_fit_matches_numpy(name, epochs, batch_size):
    opt, make_opt = OPTIMIZERS[name]
    model, weights, masks, biases, x, y = _setup(seed=31, n=12)
    patterns = [layer.W for layer in model.layers]
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer=opt, shuffle=False)
    sim = Simulation(weights, masks, biases, make_opt)
    losses = sim.run(x, y, epochs, batch_size)
    assert_close(np.array(history["loss"]), np.array(losses))
    _check(model, sim)
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
    opt_class, ref_class = (ts.Adam, R.Adam) if kind == "adam" else (ts.AdamW, R.AdamW)
    opt = opt_class(lr=0.02, weight_decay=0.05, new_weight_warmup=warmup)
    model, weights, masks, biases, x, y = _setup(seed=33, n=12)
    n = x.shape[0]
    model.fit(x, y, epochs=2, batch_size=n, optimizer=opt, shuffle=False)
    sim = Simulation(
        weights,
        masks,
        biases,
        lambda: ref_class(0.02, weight_decay=0.05, new_weight_warmup=warmup),
    )
    sim.run(x, y, 2, n)  # the existing weights are mature: full steps
    _check(model, sim)

    records = model.evolve(ts.SET(zeta=0.3, regrow="normal"))
    for li, layer in enumerate(model.layers):
        if not layer.is_sparse:
            continue
        r = next(r for r in records if r["layer"] == li)
        assert r["grown"] > 0
        W = layer.W.toarray()
        reference = sim.linear[li]
        dropped = np.unravel_index(r["dropped_positions"], layer.shape)
        grown = np.unravel_index(r["grown_positions"], layer.shape)
        # dropped: off the pattern, zero; new: the engine's initial value, zero moments, age 0
        reference.W[dropped] = 0.0
        reference.W[grown] = W[grown]
        reference.pattern[dropped] = 0.0
        reference.pattern[grown] = 1.0
        sim.optimizer(li).update_topology(dropped=dropped, grown=grown)
        assert np.array_equal(reference.W != 0, W != 0)
        assert np.array_equal(reference.pattern == 1, W != 0)
    _check(model, sim)  # survivors and state unchanged by the update

    steps = warmup + 2
    model.fit(x, y, epochs=steps, batch_size=n, optimizer=opt, shuffle=False)
    sim.run(x, y, steps, n)
    _check(model, sim)


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
