"""The C++ engine against the NumPy reference ``truesparse.reference`` (the last rung of the
validation ladder, docs/index.md#validation-ladder).

Each test builds a small engine network with known weights, runs it, and runs the same
network through the reference (``reference_network.py`` builds it from the engine's values;
examples are rows here and columns there). Compared: outputs, losses, every parameter
gradient (a layer's DX is checked through the gradient of the linear layer before it),
batch-norm running statistics, dropout with the engine's own masks, whole training
trajectories with every optimizer, and the learning-rate schedules.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import reference_network as refnet
import truesparse as ts
from conftest import (
    DEFAULT_TOLERANCES,
    assert_close,
    assert_same_pattern,
    csr_from_mask,
    dense_of,
    mask_of,
    set_random_weights,
)
from truesparse import layers as L
from truesparse import reference as R
from truesparse.reference import schedules as S

DTYPES = [np.float32, np.float64]
LABEL_LOSSES = ("softmax_cross_entropy", "cross_entropy", "negative_log_likelihood")
LAST_LAYER = {"cross_entropy": L.Softmax, "negative_log_likelihood": L.LogSoftmax}


def tolerances(dtype, factor=1.0) -> dict:
    rtol, atol = DEFAULT_TOLERANCES[np.dtype(dtype)]
    return {"rtol": rtol * factor, "atol": atol * factor}


def assert_loss_close(actual: float, expected: float, dtype, factor=1.0) -> None:
    assert np.isfinite(actual), f"loss {actual}"
    assert_close(np.float64(actual), np.float64(expected), **tolerances(dtype, factor))


def assert_gradients_match(model, layers, dtype, factor=1.0) -> None:
    """Every parameter gradient of the engine equals the reference's; a sparse layer's DW
    has exactly W's pattern."""
    tol = tolerances(dtype, factor)
    for m, (module, layer) in enumerate(zip(model.modules, layers)):
        expected = refnet.gradients(layer)
        if module.kind == "linear":
            if module.is_sparse:
                assert_same_pattern(module.DW, module.W)
            assert_close(dense_of(module.DW), expected["DW"], dtype=dtype, **tol)
            assert_close(module.Db, expected["Db"], dtype=dtype, **tol)
        else:
            got = module.gradients
            assert sorted(got) == sorted(expected), f"module {m} ({module.kind})"
            for name in got:
                assert_close(got[name], expected[name], dtype=dtype, **tol)


# -- 1. every layer kind inside [Linear, LAYER..., Linear] ----------------------------------------

SRELU_T = [-0.3, 0.2, 0.4, 1.5]  # tl, al, tr, ar


def _set_batch_norm(module, rng):
    module.set("gamma", rng.uniform(0.5, 1.5, module.parameters["gamma"].size))
    module.set("beta", rng.normal(0.0, 0.5, module.parameters["beta"].size))


def _set_modules(model, rng) -> None:
    """Known non-default parameters for every module that has some."""
    for module in model.modules:
        if module.kind in ("batch_norm", "affine"):
            _set_batch_norm(module, rng)
        elif module.kind == "srelu":
            module.set("t", SRELU_T)


def _linear_case(density):
    """A sparse (or dense) linear layer of the given density between two dense ones; ``1.0``
    is a sparse layer whose pattern is full, ``"dense"`` a dense layer."""
    d = 0.5 if density == 1.0 else (1.0 if density == "dense" else density)
    return lambda H: [L.Linear(H + 1, density=d), L.Sigmoid()]


LAYER_CASES = {
    **{f"linear-{d}": _linear_case(d) for d in ("dense", 1.0, 0.5, 0.1)},
    "relu": lambda H: [L.ReLU()],
    "leaky_relu": lambda H: [L.LeakyReLU(0.1)],
    "all_relu-odd": lambda H: [L.AllReLU(0.3)],
    "all_relu-even": lambda H: [L.Tanh(), L.Linear(H), L.AllReLU(0.3)],  # slope −alpha
    "sigmoid": lambda H: [L.Sigmoid()],
    "tanh": lambda H: [L.Tanh()],
    "identity": lambda H: [L.Identity()],
    "softmax": lambda H: [L.Softmax()],
    "log_softmax": lambda H: [L.LogSoftmax()],
    "batch_norm": lambda H: [L.BatchNorm(momentum=0.3, eps=1e-3)],
    "batch_norm-relu": lambda H: [L.BatchNorm(), L.ReLU()],
    "dropout-0.2": lambda H: [L.Dropout(0.2), L.Tanh()],
    "dropout-0.5": lambda H: [L.Dropout(0.5)],
    "srelu": lambda H: [L.SReLU()],
    "affine": lambda H: [L.Affine(), L.Tanh()],
}

# (N, D, H, K): a single example, odd sizes, a batch larger than the layer widths
SHAPES = [(1, 3, 5, 2), (2, 4, 6, 3), (7, 5, 9, 3), (16, 11, 13, 5)]


def _layer_params():
    for case in LAYER_CASES:
        backends = ("mkl", "native") if case.startswith("linear") else ("mkl",)
        for shape in SHAPES:
            if case.startswith("batch_norm") and shape[0] < 2:
                continue  # batch-norm training needs N >= 2
            for backend in backends:
                for dtype in DTYPES:
                    yield pytest.param(
                        case,
                        shape,
                        backend,
                        dtype,
                        id=f"{case}-N{shape[0]}-{backend}-{np.dtype(dtype).name}",
                    )


def _dropout_masks(specs, D, X, seed, dtype, calls: int) -> list[list[np.ndarray]]:
    """The masks the engine's dropout layers draw in their first ``calls`` training forwards,
    recovered from a twin network (same seed, same dropout shapes) whose dropout inputs are
    all ones and whose output is the last dropout's output: Y = M / (1 − p)."""
    dropouts = [i for i, s in enumerate(specs) if isinstance(s, L.Dropout)]
    if not dropouts:
        return [[] for _ in range(calls)]
    assert len(dropouts) == 1, "the twin recovers one dropout layer's masks"
    i = dropouts[0]
    H = specs[i - 1].size
    p = specs[i].p
    twin = ts.Sequential(D, [L.Linear(H), specs[i], L.Linear(H)], dtype=dtype, seed=seed)
    twin.layers[0].set_weights(np.zeros((H, D)), np.ones(H))  # dropout input: all ones
    twin.layers[1].set_weights(np.eye(H), np.zeros(H))  # output = dropout output
    masks = []
    for _ in range(calls):
        Y = twin.forward(X, train=True)
        keep = Y != 0
        scale = np.asarray(1.0 / (1.0 - p), dtype=dtype)
        assert np.all(Y[keep] == scale), "kept entries are scaled by exactly 1/(1 − p)"
        masks.append([keep])
    return masks


@pytest.mark.parametrize("case, shape, backend, dtype", list(_layer_params()))
def test_layer_matches_reference(case, shape, backend, dtype):
    """[Linear(H), LAYER..., Linear(K)]: training-mode outputs, loss, every gradient and the
    batch-norm running statistics after two training passes, then evaluation-mode outputs."""
    N, D, H, K = shape
    rng = np.random.default_rng(zlib.crc32(f"{case}{shape}".encode()))
    specs = [L.Linear(H)] + LAYER_CASES[case](H) + [L.Linear(K)]
    seed = 11
    model = ts.Sequential(D, specs, dtype=dtype, seed=seed, backend=backend)
    masks = None
    if case == "linear-1.0":  # a sparse layer whose pattern is every position
        masks = [None, np.ones(model.layers[1].shape, dtype=bool), None]
    weights, _, _ = set_random_weights(model, rng, masks)
    _set_modules(model, rng)
    if case == "srelu":  # pre-activations in every region of SReLU: biases from −2 to 2
        model.layers[0].set_weights(0.3 * weights[0], np.linspace(-2.0, 2.0, H))
    if case == "linear-1.0":
        assert model.layers[1].is_sparse and model.layers[1].density == 1.0
    if case == "linear-dense":
        assert not model.layers[1].is_sparse
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, K, N)
    dropout_masks = _dropout_masks(specs, D, X, seed, dtype, calls=2)

    layers = refnet.reference_network(model, specs)
    loss = refnet.reference_loss(model)
    if case == "all_relu-even":
        assert [layer.negative_slope for layer in layers if isinstance(layer, R.AllReLU)] == [-0.3]

    # a training-mode forward (batch statistics, the first dropout mask)
    refnet.set_dropout_masks(layers, dropout_masks[0])
    assert_close(model.forward(X, train=True), refnet.forward(layers, X), dtype=dtype)

    # a training pass (batch statistics again, the second dropout mask)
    refnet.set_dropout_masks(layers, dropout_masks[1])
    value = model.backward(X, y)
    _, expected = refnet.forward_backward(layers, loss, X, y)
    assert_loss_close(value, expected, dtype)
    assert_gradients_match(model, layers, dtype)
    if case == "srelu":  # the pre-activations reached every region of SReLU
        z = layers[1].X
        tl, _, tr, _ = SRELU_T
        assert (z <= tl).any() and ((z > tl) & (z < tr)).any() and (z >= tr).any()

    for module, layer in zip(model.modules, layers):
        if module.kind == "batch_norm":  # after two updates
            assert_close(module.running_mean, layer.running_mean, dtype=dtype)
            assert_close(module.running_var, layer.running_var, dtype=dtype)

    # evaluation mode: running statistics, no dropout
    X2 = rng.standard_normal((N + 2, D)).astype(dtype)
    refnet.set_mode(layers, train=False)
    assert_close(model.forward(X2, train=False), refnet.forward(layers, X2), dtype=dtype)


def test_dropout_masks_are_fresh_per_call_and_near_the_rate():
    """Sanity of the mask recovery used above: masks differ between calls, keep about 1 − p."""
    X = np.zeros((400, 3))
    specs = [L.Linear(50), L.Dropout(0.3), L.Linear(2)]
    (m0,), (m1,) = _dropout_masks(specs, 3, X, seed=5, dtype=np.float64, calls=2)
    assert not np.array_equal(m0, m1)
    for m in (m0, m1):
        assert abs(m.mean() - 0.7) < 0.02


# -- 2. losses: value and DY through a single linear layer with X = I ----------------------------
# With X = I (N, N) and W = the desired logits (K, N), the logits are exactly W and the
# linear layer's DW (K, N) is exactly the gradient at its output (Db its column sums).


def _loss_model(loss, logits, dtype, label_smoothing):
    N, K = logits.shape
    specs = [L.Linear(K)] + ([LAST_LAYER[loss]()] if loss in LAST_LAYER else [])
    model = ts.Sequential(N, specs, loss=loss, label_smoothing=label_smoothing, dtype=dtype)
    model.layers[0].set_weights(np.ascontiguousarray(logits.T), np.zeros(K))
    return model, specs


def _targets(loss, kind, N, K, rng):
    if kind == "labels":
        return rng.integers(0, K, N)
    if loss in LABEL_LOSSES:  # probabilities
        return rng.dirichlet(np.ones(K), size=N)
    if loss == "logistic_cross_entropy":
        return rng.uniform(0.0, 1.0, (N, K))
    return rng.standard_normal((N, K))


def _check_loss(loss, logits, y, dtype, label_smoothing, factor=1.0):
    model, specs = _loss_model(loss, logits, dtype, label_smoothing)
    N = logits.shape[0]
    X = np.eye(N, dtype=dtype)
    layers = refnet.reference_network(model, specs)
    assert_close(model.forward(X), refnet.forward(layers, X), dtype=dtype)
    value = model.backward(X, y)
    _, expected = refnet.forward_backward(layers, refnet.reference_loss(model), X, y)
    assert_loss_close(value, expected, dtype, factor)
    assert np.all(np.isfinite(model.layers[0].DW))
    assert_gradients_match(model, layers, dtype, factor)


def _loss_params():
    losses = LABEL_LOSSES + ("squared_error", "logistic_cross_entropy")
    for loss in losses:
        for kind in ("labels", "soft"):
            for eps in (0.0, 0.1):
                if kind == "soft" and eps > 0 and loss in LABEL_LOSSES:
                    continue  # test_label_smoothing_of_soft_targets
                for dtype in DTYPES:
                    yield pytest.param(
                        loss, kind, eps, dtype, id=f"{loss}-{kind}-eps{eps}-{np.dtype(dtype).name}"
                    )


@pytest.mark.parametrize("N, K", [(1, 3), (6, 4), (9, 2)])
@pytest.mark.parametrize("loss, targets, label_smoothing, dtype", list(_loss_params()))
def test_loss_matches_reference(loss, targets, label_smoothing, dtype, N, K):
    """Loss value and gradient; label smoothing applies to the label-based losses only
    (the reference squared error and logistic cross entropy have none)."""
    rng = np.random.default_rng(N * 100 + K)
    logits = (2.0 * rng.standard_normal((N, K))).astype(dtype)
    _check_loss(loss, logits, _targets(loss, targets, N, K, rng), dtype, label_smoothing)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LABEL_LOSSES)
def test_label_smoothing_of_soft_targets(loss, dtype):
    """The reference (and validation/test_<loss>.py) smooth any targets T: (1 − ε) T + ε/K,
    so soft targets are smoothed too, as PyTorch's CrossEntropyLoss does."""
    rng = np.random.default_rng(3)
    N, K = 5, 4
    logits = (2.0 * rng.standard_normal((N, K))).astype(dtype)
    _check_loss(loss, logits, _targets(loss, "soft", N, K, rng), dtype, 0.2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize(
    "loss", ["softmax_cross_entropy", "negative_log_likelihood", "logistic_cross_entropy"]
)
def test_loss_stable_for_huge_logits(loss, label_smoothing, dtype):
    """Logits of magnitude 1e4 (huge weights): loss and gradient finite and equal to the
    reference's at the same logits."""
    rng = np.random.default_rng(4)
    N, K = 6, 5
    logits = (1e4 * rng.standard_normal((N, K))).astype(dtype)
    logits[0] = [1e4, -1e4, 1e4, 0.0, -1e4]  # ties at the maximum
    y = rng.integers(0, K, N)
    # float32: the engine's log-softmax output of logits ~1e4 is exact only to ulp(1e4) ~ 1e-3,
    # so the gradient through it carries a relative error of that size
    factor = 10.0 if loss == "negative_log_likelihood" and dtype == np.float32 else 1.0
    _check_loss(loss, logits, y, dtype, label_smoothing, factor)


# -- 3. training trajectories: fit against a NumPy loop of reference steps ------------------------

NETWORKS = {
    "mlp": lambda: [
        L.Linear(16, density=0.5),
        L.ReLU(),
        L.Linear(8, density=0.5),
        L.ReLU(),
        L.Linear(4, density=0.5),
    ],
    # batch norm after tanh: a bias followed by batch norm through an (piecewise) affine map
    # can have an exactly zero gradient, whose rounding noise Adam blows up to full-size steps
    # of either sign
    "modules": lambda: [
        L.Linear(16, density=0.5),
        L.Tanh(),
        L.BatchNorm(),
        L.Linear(8, density=0.5),
        L.SReLU(-0.5, 0.1, 0.5, 1.2),
        L.Affine(),
        L.Linear(4, density=0.5),
    ],
}

OPTIMIZERS = {
    "sgd": (ts.SGD(lr=0.05, weight_decay=1e-3), lambda: R.SGD(0.05, weight_decay=1e-3)),
    "momentum": (
        ts.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda: R.Momentum(0.05, 0.9, weight_decay=1e-3),
    ),
    "nesterov": (ts.SGD(lr=0.05, momentum=0.8, nesterov=True), lambda: R.Nesterov(0.05, 0.8)),
    "adam": (ts.Adam(lr=0.01, weight_decay=1e-3), lambda: R.Adam(0.01, weight_decay=1e-3)),
    "adamw": (
        ts.AdamW(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
        lambda: R.AdamW(0.01, 0.8, 0.99, weight_decay=0.05),
    ),
}


def _engine_state(model) -> list[dict]:
    state = []
    for module in model.modules:
        if module.kind == "linear":
            state.append({"W": dense_of(module.W), "b": np.asarray(module.b)})
        else:
            s = dict(module.parameters)
            if module.kind == "batch_norm":
                s["running_mean"], s["running_var"] = module.running_mean, module.running_var
            state.append(s)
    return state


def _reference_state(layers) -> list[dict]:
    state = []
    for layer in layers:
        s = {k: v.copy() for k, v in refnet.parameters(layer).items()}
        if isinstance(layer, R.BatchNorm):
            s["running_mean"], s["running_var"] = layer.running_mean, layer.running_var
        state.append(s)
    return state


def _simulate(layers, loss, X, y, *, batch_size, epochs, make_optimizer, schedule=None):
    """The fit of the engine (shuffle=False) as a NumPy loop of ``refnet.fit``: per
    batch a reference training pass and one reference optimizer step per parameter array,
    with the rate of step t from ``schedule`` (t = 0 at the first step). Returns the state
    and mean loss after each epoch."""
    states, losses = [], []
    for value, _ in refnet.fit(
        layers,
        loss,
        X,
        y,
        epochs=epochs,
        batch_size=batch_size,
        make_optimizer=make_optimizer,
        schedule=schedule,
    ):
        states.append(_reference_state(layers))
        losses.append(value)
    return states, losses


def _fit_and_simulate(
    specs, optimizer, make_optimizer, dtype, *, schedule=None, epochs=5, N=18, batch_size=5, seed=0
):
    """fit() for ``epochs`` epochs of ceil(N / batch_size) steps, recording the engine's
    parameters after each epoch, and the reference simulation of the same steps."""
    rng = np.random.default_rng(seed)
    model = ts.Sequential(12, specs, dtype=dtype, seed=seed)
    set_random_weights(model, rng)
    _set_modules(model, rng)
    for module in model.modules:
        if module.kind == "srelu":
            module.set("t", [-0.5, 0.1, 0.5, 1.2])
    X = rng.standard_normal((N, 12)).astype(dtype)
    y = rng.integers(0, 4, N)
    layers = refnet.reference_network(model, specs)
    loss = refnet.reference_loss(model)
    engine_states = []
    history = model.fit(
        X,
        y,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        shuffle=False,
        callback=lambda record: engine_states.append(_engine_state(model)),
    )
    ref_states, ref_losses = _simulate(
        layers,
        loss,
        X,
        y,
        batch_size=batch_size,
        epochs=epochs,
        make_optimizer=make_optimizer,
        schedule=schedule,
    )
    return model, engine_states, ref_states, history["loss"], ref_losses


def _assert_states_close(engine_states, ref_states, dtype, **tol):
    assert len(engine_states) == len(ref_states)
    for epoch, (got, expected) in enumerate(zip(engine_states, ref_states)):
        for m, (g, e) in enumerate(zip(got, expected)):
            assert sorted(g) == sorted(e), f"epoch {epoch}, module {m}"
            for name in g:
                try:
                    assert_close(g[name], e[name], dtype=dtype, **tol)
                except AssertionError as err:
                    raise AssertionError(f"epoch {epoch + 1}, module {m}, {name}: {err}") from None


TRAJECTORY_TOLERANCES = {
    np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-11},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 2e-5},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("network", NETWORKS)
def test_training_trajectory_matches_reference(network, optimizer, dtype):
    """20 steps (5 epochs of batches 5, 5, 5, 3, in order) of a 12-16-8-4 network at density
    0.5: the parameters (and batch-norm running statistics) after every epoch, and the
    per-epoch mean losses."""
    engine_opt, make_ref_opt = OPTIMIZERS[optimizer]
    model, got, expected, losses, ref_losses = _fit_and_simulate(
        NETWORKS[network](), engine_opt, make_ref_opt, dtype
    )
    assert all(layer.is_sparse for layer in model.layers)
    tol = TRAJECTORY_TOLERANCES[np.dtype(dtype)]
    _assert_states_close(got, expected, dtype, **tol)
    assert_close(np.array(losses), np.array(ref_losses), **tol)
    # the weights moved: the comparison is not of untouched initial values
    assert not np.allclose(got[-1][0]["W"], got[0][0]["W"])


# -- 4. learning-rate schedules ---------------------------------------------------------------

SCHEDULES = {
    "constant": (ts.ConstantLR(), S.constant),
    "step": (ts.StepLR(step_size=3, gamma=0.5), lambda lr: S.step(lr, 3, 0.5)),
    "multistep": (
        ts.MultiStepLR(milestones=(9, 2, 5, 5), gamma=0.3),  # 5 counts twice
        lambda lr: S.multistep(lr, [2, 5, 5, 9], 0.3),
    ),
    "exponential": (ts.ExponentialLR(gamma=0.9), lambda lr: S.exponential(lr, 0.9)),
    "cosine": (ts.CosineLR(T_max=7, eta_min=0.001), lambda lr: S.cosine(lr, 7, 0.001)),
    "warmup-cosine": (
        ts.LinearWarmup(ts.CosineLR(T_max=10), warmup_steps=4),
        lambda lr: S.linear_warmup(S.cosine(lr, 10), 4),
    ),
    "warmup-step": (
        ts.LinearWarmup(ts.StepLR(2, gamma=0.7), warmup_steps=3, start_factor=0.1),
        lambda lr: S.linear_warmup(S.step(lr, 2, 0.7), 3, 0.1),
    ),
    "warmup-multistep": (
        ts.LinearWarmup(ts.MultiStepLR((1, 4), 0.5), warmup_steps=5),
        lambda lr: S.linear_warmup(S.multistep(lr, [1, 4], 0.5), 5),
    ),
    "warmup-none": (
        ts.LinearWarmup(ts.ExponentialLR(0.8), warmup_steps=0),
        lambda lr: S.linear_warmup(S.exponential(lr, 0.8), 0),
    ),
}


@pytest.mark.parametrize("lr", [0.1, 0.03])
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_rate_matches_reference(name, lr):
    schedule, make_reference = SCHEDULES[name]
    reference = make_reference(lr)
    for t in range(40):  # beyond every milestone, step and T_max (cosine is periodic)
        assert schedule.rate(lr, t) == pytest.approx(reference(t), rel=1e-12, abs=1e-15), f"t={t}"


@pytest.mark.parametrize("name", SCHEDULES)
def test_fit_with_schedule_matches_reference(name):
    """Two epochs of four steps with momentum SGD: step t of the fit (counted across its
    epochs from 0) uses the schedule's rate at t."""
    schedule, make_reference = SCHEDULES[name]
    lr = 0.1
    rates = make_reference(lr)
    _, got, expected, losses, ref_losses = _fit_and_simulate(
        NETWORKS["mlp"](),
        ts.SGD(lr=lr, momentum=0.5, schedule=schedule),
        lambda: R.Momentum(lr, 0.5),
        np.float64,
        schedule=rates,
        epochs=2,
        N=14,
        batch_size=4,
    )
    tol = TRAJECTORY_TOLERANCES[np.dtype(np.float64)]
    _assert_states_close(got, expected, np.float64, **tol)
    assert_close(np.array(losses), np.array(ref_losses), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_schedule_restarts_at_each_fit(dtype):
    """t = 0 at every fit's first step: two fits of three steps take rates r(0..2) twice."""
    rng = np.random.default_rng(8)
    specs = NETWORKS["mlp"]()
    model = ts.Sequential(12, specs, dtype=dtype, seed=8)
    set_random_weights(model, rng)
    X = rng.standard_normal((9, 12)).astype(dtype)
    y = rng.integers(0, 4, 9)
    layers = refnet.reference_network(model, specs)
    loss = refnet.reference_loss(model)
    optimizer = ts.SGD(lr=0.2, schedule=ts.StepLR(step_size=1, gamma=0.5))
    for _ in range(2):
        model.fit(X, y, epochs=1, batch_size=3, optimizer=optimizer, shuffle=False)
        (expected,), _ = _simulate(
            layers,
            loss,
            X,
            y,
            batch_size=3,
            epochs=1,
            make_optimizer=lambda: R.SGD(0.2),
            schedule=S.step(0.2, 1, 0.5),
        )
    _assert_states_close(
        [_engine_state(model)], [expected], dtype, **TRAJECTORY_TOLERANCES[np.dtype(dtype)]
    )


# -- sparse layers with explicit zeros in their pattern ------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_stored_zeros_are_trained_as_weights(dtype):
    """A stored weight whose value is 0 is part of the pattern: it gets a gradient and moves,
    as the reference's pattern entry does; positions off the pattern stay 0."""
    rng = np.random.default_rng(9)
    specs = [L.Linear(6, density=0.5), L.Tanh(), L.Linear(3, density=0.5)]
    model = ts.Sequential(5, specs, dtype=dtype, seed=9)
    mask = rng.random((6, 5)) < 0.5
    mask[0, :] = True
    w = np.where(mask, rng.standard_normal((6, 5)), 0.0).astype(dtype)
    w[0, :] = 0.0  # stored zeros
    model.layers[0].set_weights(csr_from_mask(mask, w), np.zeros(6))
    assert model.layers[0].nnz == mask.sum()
    X = rng.standard_normal((8, 5)).astype(dtype)
    y = rng.integers(0, 3, 8)
    layers = refnet.reference_network(model, specs)
    assert np.array_equal(layers[0].pattern, mask)
    model.backward(X, y)
    refnet.forward_backward(layers, refnet.reference_loss(model), X, y)
    assert_gradients_match(model, layers, dtype)
    model.fit(X, y, epochs=1, batch_size=8, optimizer=ts.SGD(lr=0.1), shuffle=False)
    R.SGD(0.1).step(layers[0].W, layers[0].DW)
    assert_close(dense_of(model.layers[0].W), layers[0].W, dtype=dtype)
    assert np.array_equal(mask_of(model.layers[0].W), mask)
