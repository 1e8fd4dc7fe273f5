"""operand_dtype="bfloat16": the sparse layers gather bfloat16 copies of their dense operands.

A sparse linear layer of such a model computes Z = W·round(X) + b,
DW = (round(DZ)·round(X)ᵀ) ⊙ P and DX = Wᵀ·round(DZ), with round =
``reference.matrix_operations.round_to_bfloat16`` (round to nearest even), float32 weights and
sums, and Db from the float32 DZ; dense layers are unaffected.

Checked here: ``round_to_bfloat16`` against a construction of the two bfloat16 neighbours in
float64 arithmetic; the reference ``Linear`` with ``operand_dtype``; the engine against that
reference (outputs, losses, every gradient, a training run), and against the variants of the
equations that round one operand more or less, so the comparison could fail; the errors;
checkpoints, pickling, the scikit-learn estimators and ``from_torch``.

The reference computes in float64 and the engine in float32, so their operands differ by
float32 rounding noise; an operand within that noise of a bfloat16 tie (the midpoint of two
neighbours) can round up in one and down in the other, a difference of a bfloat16 step that
no tolerance of float32 noise covers. The networks compared are checked first to have no
hidden operand within ``TIE_MARGIN`` float32 steps of a tie (``assert_away_from_ties``).
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile

import numpy as np
import pytest

import reference_network as refnet
import truesparse as ts
from conftest import assert_close, csr_from_mask, dense_of, match_all, set_random_weights
from truesparse import layers as L
from truesparse import reference as R
from truesparse.reference.matrix_operations import round_to_bfloat16

pytestmark = pytest.mark.usefixtures("one_thread")  # small data: see conftest

BF16 = "bfloat16"
# Engine (float32, other summation order) against the float64 reference, relative to the
# largest expected value: a few float32 steps of rounding noise, far below the bfloat16 step
# (2^-8 relative) by which a rounded operand differs from the float32 one.
RTOL = 1e-5
# Hidden operands at least this many float32 steps (2^-23 relative) from a bfloat16 tie.
TIE_MARGIN = 16


def assert_scaled_close(actual, expected, rtol=RTOL, what=""):
    """|actual − expected| <= rtol · max|expected|, elementwise."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape}, expected {e.shape}"
    scale = float(np.max(np.abs(e)))
    err = float(np.max(np.abs(a - e)))
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol} × {scale:.3g}"


def scaled_error(actual, expected) -> float:
    """max|actual − expected| / max|expected|."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(a - e)) / np.max(np.abs(e)))


# -- 1. round_to_bfloat16 ----------------------------------------------------------------------

BF16_MAX = (2.0 - 2.0**-7) * 2.0**127  # the largest finite bfloat16
OVERFLOW_TIE = (2.0 - 2.0**-8) * 2.0**127  # halfway from it to 2^128: rounds to inf (even)


def neighbours(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For finite float32 values x (as float64): the bfloat16 values lo <= x <= hi next to x
    and their spacing, in float64 arithmetic (exact: every quantity is a float32 or a power of
    two times a small integer). bfloat16 has 8 significant bits, so the spacing in the binade
    [2^e, 2^(e+1)) is 2^(e−7); below 2^-126 (subnormals) it is 2^-133. hi may be 2^128, the
    value past the largest bfloat16, which stands for inf."""
    _, e = np.frexp(x)  # |x| = m 2^e, m in [0.5, 1): the binade of x is 2^(e−1)
    e = np.maximum(e - 1, -126)
    spacing = np.ldexp(1.0, e - 7)
    lo = np.floor(x / spacing) * spacing
    return lo, lo + spacing, spacing


def test_round_to_bfloat16_is_the_nearest_neighbour_ties_to_even():
    rng = np.random.default_rng(0)
    scales = [1e-42, 1e-39, 1e-20, 1e-3, 1.0, 7.0, 1e4, 1e30, 1e37]
    random = [s * rng.standard_normal(2000) for s in scales]
    one = 1.0 + 2.0**-7 * np.arange(128)  # the bfloat16 values in [1, 2): ties between them
    ties = [
        1 + 2.0**-8,  # between 1 (even) and 1 + 2^-7 (odd): down
        1 + 3 * 2.0**-8,  # between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up
        2.0**100 * (1 + 2.0**-8),
        3 * 2.0**-134,  # subnormal tie between 2^-133 (odd) and 2^-132 (even): up
        2.0**-134,  # between 0 (even) and 2^-133: down to 0
        2.0**-126 * (1 - 2.0**-8),  # the largest subnormal tie: up to 2^-126, a normal
        *(one[:-1] + one[1:]) / 2,
    ]
    ties = np.array(ties)
    f32 = np.finfo(np.float32)
    specials = [0.0, 2.0**-149, float(f32.tiny), float(f32.max), BF16_MAX]
    specials += [OVERFLOW_TIE, OVERFLOW_TIE * (1 - 2.0**-23)]
    x32 = np.concatenate([*random, one, ties, -ties, specials, np.negative(specials)])
    x32 = x32.astype(np.float32)  # every value in float32 (the function's first rounding)
    with np.errstate(over="ignore"):  # the float32 after the largest is inf
        up, down = (np.nextafter(x32, np.float32(s * np.inf)) for s in (1, -1))
    x32 = np.concatenate([x32, up, down])
    x32 = x32[np.isfinite(x32)]
    assert x32.dtype == np.float32
    r = round_to_bfloat16(x32)
    assert r.dtype == np.float64 and r.shape == x32.shape

    # bfloat16-representable: a float32 (or ±inf) whose low 16 bits are zero
    bits = r.astype(np.float32).view(np.uint32)
    assert np.array_equal(r.astype(np.float32).astype(np.float64), r)
    assert np.all(bits & np.uint32(0xFFFF) == 0)

    x = x32.astype(np.float64)
    lo, hi, spacing = neighbours(x)
    assert np.all((lo <= x) & (x <= hi))
    d_lo, d_hi = x - lo, hi - x
    tie = d_lo == d_hi
    even_lo = np.fmod(lo / spacing, 2) == 0  # lo's last significant bit is 0
    expected = np.where(d_lo < d_hi, lo, hi)
    expected = np.where(tie, np.where(even_lo, lo, hi), expected)
    expected = np.where(np.abs(expected) == 2.0**128, np.copysign(np.inf, x), expected)
    mismatch = np.flatnonzero(r != expected)
    assert mismatch.size == 0, (
        f"{mismatch.size} wrong, first: {x[mismatch[0]]!r} -> {r[mismatch[0]]!r}, "
        f"expected {expected[mismatch[0]]!r}"
    )
    # the cases meant above are there
    assert np.count_nonzero(tie) >= 2 * len(ties)
    assert np.any(tie & even_lo) and np.any(tie & ~even_lo), "ties rounded down and up"
    assert np.any((np.abs(x) < f32.tiny) & (r != 0)), "subnormals that stay nonzero"
    assert np.any((np.abs(x) > BF16_MAX) & np.isfinite(r)), "rounded down to the largest"


@pytest.mark.parametrize(
    "value, expected",
    [
        (1 + 2.0**-8, 1.0),
        (1 + 3 * 2.0**-8, 1 + 2.0**-6),
        (-(1 + 2.0**-8), -1.0),
        (-(1 + 3 * 2.0**-8), -(1 + 2.0**-6)),
        (1 + 2.0**-8 + 2.0**-23, 1 + 2.0**-7),  # just above the tie: up
        (1 + 2.0**-8 + 2.0**-40, 1.0),  # float32 first: exactly the tie, then down
        (0.1, 0.10009765625),
        (3 * 2.0**-134, 2.0**-132),
        (2.0**-149, 0.0),
        (float(np.finfo(np.float32).max), np.inf),
        (OVERFLOW_TIE, np.inf),  # the tie past the largest: to even, inf
        (OVERFLOW_TIE * (1 - 2.0**-24), BF16_MAX),  # the float32 below it
        (1e300, np.inf),  # beyond float32: inf first
        (np.inf, np.inf),
        (-np.inf, -np.inf),
        (-0.0, -0.0),
    ],
)
def test_round_to_bfloat16_values(value, expected):
    r = round_to_bfloat16(np.float64(value))
    assert r == expected and np.signbit(r) == np.signbit(expected), f"{value!r} -> {r!r}"


def test_round_to_bfloat16_nan_shapes_and_input_untouched():
    nan_payload = np.array([0x7F800001, 0xFFFFFFFF, 0x7FC00000], dtype=np.uint32).view(np.float32)
    assert np.all(np.isnan(round_to_bfloat16(nan_payload)))
    A = np.array([[1 + 2.0**-8, np.nan], [np.inf, -3.0]], dtype=np.float32)
    copy = A.copy()
    r = round_to_bfloat16(A)
    assert r.shape == (2, 2) and r.dtype == np.float64
    assert np.array_equal(A, copy, equal_nan=True)
    assert np.array_equal(r, [[1.0, np.nan], [np.inf, -3.0]], equal_nan=True)
    assert round_to_bfloat16([[0.5]]).shape == (1, 1)
    assert round_to_bfloat16(A.T).shape == (2, 2)  # a non-contiguous view
    assert np.array_equal(round_to_bfloat16(A.T), r.T, equal_nan=True)


# -- 2. the reference Linear with operand_dtype ------------------------------------------------


def test_reference_linear_rounds_the_gathered_operands():
    rng = np.random.default_rng(1)
    K, D, N = 4, 6, 5
    W, b = rng.standard_normal((K, D)), rng.standard_normal(K)
    P = rng.integers(0, 2, (K, D))
    X, DY = rng.standard_normal((D, N)), rng.standard_normal((K, N))
    WP = W * P
    layer = R.Linear(W, b, P, operand_dtype=BF16)
    assert layer.operand_dtype == BF16
    Y = layer.forward(X)
    DX = layer.backward(DY)
    Xr, DYr = round_to_bfloat16(X), round_to_bfloat16(DY)
    assert not np.allclose(Xr, X, rtol=1e-6) and not np.allclose(DYr, DY, rtol=1e-6)
    np.testing.assert_allclose(Y, WP @ Xr + b[:, None], rtol=1e-14)
    np.testing.assert_allclose(layer.DW, (DYr @ Xr.T) * P, rtol=1e-14)
    np.testing.assert_allclose(layer.Db, DY.sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(DX, WP.T @ DYr, rtol=1e-14)
    # float32 (the default): nothing rounded
    plain = R.Linear(W, b, P)
    assert plain.operand_dtype == "float32"
    np.testing.assert_allclose(plain.forward(X), WP @ X + b[:, None], rtol=1e-14)
    np.testing.assert_allclose(plain.backward(DY), WP.T @ DY, rtol=1e-14)
    np.testing.assert_allclose(plain.DW, (DY @ X.T) * P, rtol=1e-14)


@pytest.mark.parametrize("value", ["bf16", "float64", "", None, 3, np.float32])
def test_reference_linear_refuses_other_operand_dtypes(value):
    with pytest.raises(ValueError, match=match_all("[Linear]", "operand_dtype", repr(value))):
        R.Linear(np.ones((2, 3)), np.zeros(2), operand_dtype=value)


# -- 3. the engine against the reference -------------------------------------------------------


def reference_pass(layers, loss, X, y) -> tuple[np.ndarray, float, list[np.ndarray]]:
    """refnet.forward_backward, also returning the hidden operands that the sparse bfloat16
    layers round: their inputs (not the network's input X, exact in both), and the output
    gradients of those that compute a DX the engine uses (not the first module)."""
    operands = []
    A = np.asarray(X, dtype=np.float64).T
    for i, layer in enumerate(layers):
        if i > 0 and isinstance(layer, R.Linear) and layer.operand_dtype == BF16:
            operands.append(A)
        A = layer.forward(A)
    T = refnet.target_matrix(y, A.shape[0])
    value = loss.value(A, T)
    D = loss.gradient(A, T)
    for i, layer in reversed(list(enumerate(layers))):
        if i > 0 and isinstance(layer, R.Linear) and layer.operand_dtype == BF16:
            operands.append(D)
        D = layer.backward(D)
    return A.T, value, operands


def tie_distance(A) -> np.ndarray:
    """How many float32 steps each value is from the nearest bfloat16 tie (inf for zeros)."""
    low = (np.asarray(A, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFF)).astype(np.int64)
    return np.where(np.asarray(A) == 0, np.inf, np.abs(low - 0x8000))


def assert_away_from_ties(operands) -> None:
    """No operand is near enough a bfloat16 tie for the engine's float32 noise to round it the
    other way (see the module docstring): a precondition of the comparison, not of the engine."""
    closest = min(float(np.min(tie_distance(A))) for A in operands)
    assert closest > TIE_MARGIN, (
        f"an operand lies {closest:.0f} float32 steps from a bfloat16 tie: pick other data"
    )


def assert_gradients_match(model, layers, rtol=RTOL) -> None:
    for i, (module, layer) in enumerate(zip(model.modules, layers)):
        if module.kind == "linear":
            assert_scaled_close(dense_of(module.DW), layer.DW, rtol, f"module {i} DW")
            assert_scaled_close(module.Db, layer.Db, rtol, f"module {i} Db")


def gradient_error(model, layers) -> float:
    """The largest scaled error of the linear layers' DW."""
    return max(
        scaled_error(dense_of(m.DW), layer.DW)
        for m, layer in zip(model.modules, layers)
        if m.kind == "linear"
    )


NETWORKS = {
    "mlp-relu": (20, dict(sizes=[20, 30, 25, 5], density=0.3, activation="relu"), 6),
    "mlp-tanh": (20, dict(sizes=[20, 30, 25, 5], density=0.3, activation="tanh"), 3),
    "sequential-dense-middle": (
        20,
        [
            L.Linear(30, density=0.3),
            L.ReLU(),
            L.Linear(25),  # dense: float32 operands
            L.Tanh(),
            L.Linear(5, density=0.5),
        ],
        2,
    ),
}


def build(name, operand_dtype):
    """The network ``name`` with ``operand_dtype``, its specs and (X, y) of 16 examples."""
    inputs, arch, seed = NETWORKS[name]
    if isinstance(arch, dict):
        model = ts.MLP(**arch, seed=seed, operand_dtype=operand_dtype)
    else:
        model = ts.Sequential(inputs, arch, seed=seed, operand_dtype=operand_dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((16, inputs)).astype(np.float32)
    y = rng.integers(0, model.sizes[-1], 16)
    return model, model._specs, X, y


@pytest.mark.parametrize("name", NETWORKS)
def test_engine_matches_the_reference(name):
    model, specs, X, y = build(name, BF16)
    assert model._options["operand_dtype"] == BF16
    layers = refnet.reference_network(model, specs)
    linear = refnet.linear_layers(layers)
    assert [layer.operand_dtype for layer in linear] == [
        BF16 if view.is_sparse else "float32" for view in model.layers
    ]
    assert any(view.is_sparse for view in model.layers)
    loss = refnet.reference_loss(model)
    out, value, operands = reference_pass(layers, loss, X, y)
    assert_away_from_ties(operands)

    assert_scaled_close(model.forward(X), out, what="forward")
    assert_close(model.backward(X, y), value, rtol=RTOL, atol=0)
    assert_gradients_match(model, layers)


@pytest.mark.parametrize("name", NETWORKS)
def test_the_rounding_is_seen(name):
    """The same network with float32 operands (same seed: the same weights) differs from the
    bfloat16 one by far more than the tolerance, and matches the float32 reference."""
    bf, specs, X, y = build(name, BF16)
    f32, _, _, _ = build(name, "float32")
    for a, b in zip(bf.layers, f32.layers):
        assert np.array_equal(dense_of(a.W), dense_of(b.W)) and np.array_equal(a.b, b.b)
    ref_bf = refnet.reference_network(bf, specs)
    ref_f32 = refnet.reference_network(f32, specs)
    assert all(layer.operand_dtype == "float32" for layer in refnet.linear_layers(ref_f32))
    out_bf, out_f32 = bf.forward(X), f32.forward(X)
    expected_bf, expected_f32 = refnet.forward(ref_bf, X), refnet.forward(ref_f32, X)
    assert_scaled_close(out_bf, expected_bf, what="bfloat16 forward")
    assert_scaled_close(out_f32, expected_f32, what="float32 forward")
    assert scaled_error(out_bf, out_f32) > 30 * RTOL
    assert scaled_error(out_bf, expected_f32) > 30 * RTOL
    # and the gradients
    bf.backward(X, y)
    f32.backward(X, y)
    refnet.forward_backward(ref_bf, refnet.reference_loss(bf), X, y)
    refnet.forward_backward(ref_f32, refnet.reference_loss(f32), X, y)
    assert gradient_error(f32, ref_f32) <= RTOL
    assert gradient_error(bf, ref_bf) <= RTOL
    assert gradient_error(bf, ref_f32) > 30 * RTOL


class KeepsDYInDW(R.Linear):
    """A wrong variant: DW = (DY round(X)ᵀ) ⊙ P, DY not rounded."""

    def backward(self, DY):
        DX = super().backward(DY)
        DW = np.asarray(DY, dtype=np.float64) @ self.X.T
        self.DW = DW if self.pattern is None else DW * self.pattern
        return DX


class KeepsDYInDX(R.Linear):
    """A wrong variant: DX = (W ⊙ P)ᵀ DY, DY not rounded."""

    def backward(self, DY):
        super().backward(DY)
        return self.effective_weights().T @ DY


class KeepsXInDW(R.Linear):
    """A wrong variant: X rounded in the forward only, DW = (round(DY) Xᵀ) ⊙ P."""

    def forward(self, X):
        Y = super().forward(X)
        self.X = np.asarray(X, dtype=np.float64)
        return Y


@pytest.mark.parametrize("variant", [KeepsDYInDW, KeepsDYInDX, KeepsXInDW])
def test_engine_follows_the_specified_rounding_and_no_variant(variant):
    """[sparse, tanh, sparse, tanh, sparse]: the engine matches the reference and not the
    reference in which the sparse layers round one operand more or one less; the variants
    change only gradients."""
    specs = [L.Linear(24, density=0.4), L.Tanh(), L.Linear(18, density=0.4), L.Tanh()]
    specs.append(L.Linear(4, density=0.5))
    model = ts.Sequential(10, specs, seed=4, operand_dtype=BF16)
    rng = np.random.default_rng(4)
    set_random_weights(model, rng)
    X = rng.standard_normal((12, 10)).astype(np.float32)
    y = rng.integers(0, 4, 12)
    layers = refnet.reference_network(model, specs)
    loss = refnet.reference_loss(model)
    _, _, operands = reference_pass(layers, loss, X, y)
    assert_away_from_ties(operands)
    model.backward(X, y)
    assert_gradients_match(model, layers)

    wrong = [
        variant(layer.W, layer.b, layer.pattern, operand_dtype=BF16)
        if isinstance(layer, R.Linear)
        else layer
        for layer in layers
    ]
    refnet.forward_backward(wrong, loss, X, y)
    assert gradient_error(model, wrong) > 30 * RTOL


def test_a_dense_layer_made_sparse_rounds_too():
    """set_weights with a CSR matrix makes a dense layer sparse: it then rounds like one."""
    specs = [L.Linear(30), L.Tanh(), L.Linear(5)]
    model = ts.Sequential(20, specs, seed=3, operand_dtype=BF16)
    rng = np.random.default_rng(3)
    mask = rng.random((30, 20)) < 0.4
    W = rng.standard_normal((30, 20)).astype(np.float32)
    model.layers[0].set_weights(csr_from_mask(mask, W), np.zeros(30, np.float32))
    assert [view.is_sparse for view in model.layers] == [True, False]
    X = rng.standard_normal((8, 20)).astype(np.float32)
    layers = refnet.reference_network(model, specs)
    assert layers[0].operand_dtype == BF16
    assert_scaled_close(model.forward(X), refnet.forward(layers, X))
    layers[0].operand_dtype = "float32"
    assert scaled_error(model.forward(X), refnet.forward(layers, X)) > 30 * RTOL


# -- 4. training --------------------------------------------------------------------------------


def test_training_matches_the_reference():
    """Three epochs of four steps of momentum SGD (fit, shuffle=False) on a 12-16-8-4 network
    at density 0.5: weights and biases after each epoch and the epoch losses match the reference
    run; the weights of the float32 reference run differ."""
    specs = [L.Linear(16, density=0.5), L.ReLU(), L.Linear(8, density=0.5), L.ReLU()]
    specs.append(L.Linear(4, density=0.5))
    rng = np.random.default_rng(5)
    model = ts.Sequential(12, specs, seed=5, operand_dtype=BF16)
    set_random_weights(model, rng)
    X = rng.standard_normal((22, 12)).astype(np.float32)
    y = rng.integers(0, 4, 22)
    layers = refnet.reference_network(model, specs)
    f32 = refnet.reference_network(model, specs)
    for layer in refnet.linear_layers(f32):
        layer.operand_dtype = "float32"
    loss = refnet.reference_loss(model)

    states = []
    history = model.fit(
        X,
        y,
        epochs=3,
        batch_size=6,
        optimizer=ts.SGD(lr=0.05, momentum=0.9),
        shuffle=False,
        callback=lambda record: states.append(
            [dense_of(v.W) for v in model.layers] + [np.array(v.b) for v in model.layers]
        ),
    )

    def simulate(net):
        run = refnet.fit(
            net, loss, X, y, epochs=3, batch_size=6, make_optimizer=lambda: R.Momentum(0.05, 0.9)
        )
        losses, weights = [], []
        for value, _ in run:
            losses.append(value)
            linear = refnet.linear_layers(net)
            weights.append([x.W.copy() for x in linear] + [x.b.copy() for x in linear])
        return np.array(losses), weights

    losses, weights = simulate(layers)
    _, weights_f32 = simulate(f32)
    assert len(states) == len(weights) == 3
    for epoch, (got, expected) in enumerate(zip(states, weights)):
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_scaled_close(g, e, what=f"epoch {epoch + 1}, array {i} (W, then b)")
    assert_close(np.array(history["loss"]), losses, rtol=RTOL, atol=0)
    assert max(scaled_error(g, e) for g, e in zip(states[-1], weights_f32[-1])) > 10 * RTOL
    assert not np.allclose(states[-1][0], states[0][0])


# -- 5. errors ----------------------------------------------------------------------------------

SPECS = [L.Linear(8, density=0.5), L.ReLU(), L.Linear(3)]
BUILDERS = {
    "MLP": lambda **kw: ts.MLP([6, 8, 3], density=0.5, **kw),
    "Sequential": lambda **kw: ts.Sequential(6, SPECS, **kw),
}


@pytest.mark.parametrize("op", BUILDERS)
def test_bfloat16_needs_float32_and_the_native_backend(op):
    build = BUILDERS[op]
    with pytest.raises(ValueError, match=re.escape(f"[{op}] operand_dtype='bfloat16' needs dtype")):
        build(operand_dtype=BF16, dtype=np.float64)
    with pytest.raises(ValueError, match=match_all(f"[{op}]", "needs dtype float32", "float64")):
        build(operand_dtype=BF16, dtype=np.float64)
    with pytest.raises(ValueError, match=match_all(f"[{op}]", "needs backend='native'", "'mkl'")):
        build(operand_dtype=BF16, backend="mkl")
    # float32 operands: any dtype and backend
    for kw in (dict(dtype=np.float64), dict(backend="mkl"), dict(dtype=np.float64, backend="mkl")):
        assert build(operand_dtype="float32", **kw)._options["operand_dtype"] == "float32"
    assert build()._options["operand_dtype"] == "float32"  # the default


@pytest.mark.parametrize("op", BUILDERS)
@pytest.mark.parametrize(
    "value, error",
    [
        ("bf16", ValueError),
        ("BFLOAT16", ValueError),
        ("float64", ValueError),
        ("", ValueError),
        (3, TypeError),
        (None, TypeError),
        (np.float32, TypeError),
        (b"bfloat16", TypeError),
    ],
)
def test_bad_operand_dtype(op, value, error):
    choices = "must be one of ['bfloat16', 'float32']"
    with pytest.raises(error, match=match_all(f"[{op}]", "operand_dtype", choices)) as info:
        BUILDERS[op](operand_dtype=value)
    assert str(info.value).startswith(f"[{op}] operand_dtype {choices}, got ")
    if error is ValueError:
        assert str(info.value).endswith(f"got {value!r}")
    else:
        assert f"({type(value).__name__})" in str(info.value)


# -- 6. checkpoints and pickling ----------------------------------------------------------------


def trained_bf16_model():
    model = ts.MLP([12, 20, 4], density=0.4, seed=6, operand_dtype=BF16)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((30, 12)).astype(np.float32)
    y = rng.integers(0, 4, 30)
    model.fit(X, y, epochs=2, batch_size=10, optimizer=ts.SGD(lr=0.05, momentum=0.9), verbose=0)
    return model, X, y


def test_checkpoint_round_trip(tmp_path):
    model, X, y = trained_bf16_model()
    assert model._architecture()["operand_dtype"] == BF16
    path = tmp_path / "model.ckpt"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        assert json.loads(z.read("header.json"))["model"]["operand_dtype"] == BF16
    loaded = ts.load(path)
    assert type(loaded) is ts.MLP and loaded._options == model._options
    assert loaded._options["operand_dtype"] == BF16
    assert np.array_equal(loaded.forward(X), model.forward(X))
    # and both train on identically
    for m in (model, loaded):
        m.fit(X, y, epochs=1, batch_size=10, optimizer=ts.SGD(lr=0.05, momentum=0.9), verbose=0)
    assert np.array_equal(loaded.forward(X), model.forward(X))

    clone = pickle.loads(pickle.dumps(model))
    assert clone._options["operand_dtype"] == BF16
    assert np.array_equal(clone.forward(X), model.forward(X))


def test_checkpoint_without_the_key_loads_as_float32(tmp_path):
    """A file written before operand_dtype existed has no such key: float32 operands."""
    model, X, _ = trained_bf16_model()
    path = tmp_path / "old.ckpt"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    header = json.loads(members["header.json"])
    del header["model"]["operand_dtype"]
    members["header.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)

    loaded = ts.load(path)
    assert loaded._options["operand_dtype"] == "float32"
    for a, b in zip(loaded.layers, model.layers):  # the same weights
        assert np.array_equal(dense_of(a.W), dense_of(b.W)) and np.array_equal(a.b, b.b)
    # it computes with float32 operands: the float32 reference, not the bfloat16 model
    layers = refnet.reference_network(loaded, loaded._specs)
    assert all(layer.operand_dtype == "float32" for layer in refnet.linear_layers(layers))
    assert_scaled_close(loaded.forward(X), refnet.forward(layers, X))
    assert scaled_error(loaded.forward(X), model.forward(X)) > 30 * RTOL


# -- 7. scikit-learn ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, y = sklearn_datasets.load_digits(return_X_y=True)
    X = ((X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)).astype(np.float32)
    return X[:1200], y[:1200], X[1200:], y[1200:]


def test_sklearn_estimators_take_operand_dtype(digits):
    sk = pytest.importorskip("truesparse.sklearn")
    from sklearn.base import clone

    for Estimator in (sk.SparseMLPClassifier, sk.SparseMLPRegressor):
        assert Estimator().get_params()["operand_dtype"] == "float32"
        est = Estimator(operand_dtype=BF16)
        assert est.get_params()["operand_dtype"] == BF16
        assert clone(est).get_params()["operand_dtype"] == BF16

    X, y, X_test, y_test = digits
    params = dict(hidden_layer_sizes=(64,), density=0.3, max_iter=5, random_state=0)
    params.update(learning_rate_init=0.01, batch_size=32)
    clf = sk.SparseMLPClassifier(**params, operand_dtype=BF16).fit(X, y)
    assert clf.model_._options["operand_dtype"] == BF16
    assert clf.model_.layers[0].is_sparse
    predicted = clf.predict(X_test)
    assert predicted.shape == y_test.shape
    assert np.mean(predicted == y_test) > 0.8

    reg = sk.SparseMLPRegressor(**params, operand_dtype=BF16).fit(X, y.astype(np.float64))
    assert reg.model_._options["operand_dtype"] == BF16
    assert np.all(np.isfinite(reg.predict(X_test)))


@pytest.mark.parametrize(
    "params, error, message",
    [
        (dict(operand_dtype="bf16"), ValueError, "operand_dtype must be one of"),
        (dict(operand_dtype=3), TypeError, "operand_dtype must be one of"),
        (dict(operand_dtype=BF16, dtype=np.float64), ValueError, "needs dtype float32"),
        (dict(operand_dtype=BF16, backend="mkl"), ValueError, "needs backend='native'"),
    ],
)
def test_sklearn_bad_operand_dtype_fails_at_fit(params, error, message, digits):
    sk = pytest.importorskip("truesparse.sklearn")
    X, y, _, _ = digits
    est = sk.SparseMLPClassifier(hidden_layer_sizes=(8,), max_iter=1, **params)  # no error yet
    assert est.get_params()["operand_dtype"] is params["operand_dtype"]
    with pytest.raises(error, match=match_all("[SparseMLPClassifier.fit]", message)) as info:
        est.fit(X[:50], y[:50])
    assert str(info.value).startswith("[SparseMLPClassifier.fit] ")


# -- 8. from_torch ------------------------------------------------------------------------------


def test_from_torch_with_bfloat16_operands():
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    module = torch.nn.Sequential(
        torch.nn.Linear(20, 24), torch.nn.Tanh(), torch.nn.Linear(24, 6)
    ).eval()
    with torch.no_grad():
        module[0].weight.mul_((torch.rand(24, 20) < 0.3).float())
    model = ts.from_torch(module, operand_dtype=BF16)
    assert model._options["operand_dtype"] == BF16
    assert [view.is_sparse for view in model.layers] == [True, False]
    X = np.random.default_rng(7).standard_normal((10, 20)).astype(np.float32)
    layers = refnet.reference_network(model, model._specs)
    assert_scaled_close(model.forward(X), refnet.forward(layers, X))
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()  # float32 operands
    assert_close(ts.from_torch(module).forward(X), expected)
    assert scaled_error(model.forward(X), expected) > 30 * RTOL

    with pytest.raises(ValueError, match=match_all("[from_torch]", "operand_dtype", "'bf16'")):
        ts.from_torch(module, operand_dtype="bf16")
    with pytest.raises(TypeError, match=match_all("[from_torch]", "operand_dtype")):
        ts.from_torch(module, operand_dtype=1)
    with pytest.raises(ValueError, match=match_all("[from_torch]", "needs backend='native'")):
        ts.from_torch(module, operand_dtype=BF16, backend="mkl")
    with pytest.raises(ValueError, match=match_all("[from_torch]", "needs dtype float32")):
        ts.from_torch(module, operand_dtype=BF16, dtype=np.float64)
