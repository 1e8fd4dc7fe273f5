"""Density allocation (ER / ERK, explicit, epsilon) and the initial sparse pattern.

ts.er_densities is compared with an independent implementation of the allocation in
docs/sparse-layers.md#density-allocation, including capping at 1 and re-solving; the realised nnz of every
layer is round(d_l * n_in * n_out) and the total is within one per layer of
round(D * sum N_l); the initial pattern is a uniformly random set of positions.
"""

import math

import numpy as np
import pytest

import truesparse as ts
from conftest import assert_csr_valid


def er_reference(sizes, density, power=1.0):
    """ER/ERK densities: eps = (D*sum N - sum_dense N) / sum_rest r_l N_l, cap and re-solve."""
    n = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    r = [((a + b) / (a * b)) ** power for a, b in zip(sizes[:-1], sizes[1:])]
    dense = set()
    eps = 0.0
    while True:
        rest = [li for li in range(len(n)) if li not in dense]
        if not rest:
            break
        budget = density * sum(n) - sum(n[li] for li in dense)
        eps = budget / sum(r[li] * n[li] for li in rest)
        exceed = {li for li in rest if eps * r[li] > 1.0}
        if not exceed:
            break
        dense |= exceed
    return [1.0 if li in dense else eps * r[li] for li in range(len(n))]


def _is_round(count, x):
    """count is a nearest integer of x (either rounding of an exact half is accepted)."""
    return abs(count - x) <= 0.5 + 1e-9


SIZE_CASES = [
    [784, 300, 100, 10],
    [64, 128, 10],
    [3072, 4000, 1000, 4000, 10],
    [10, 1000, 10],
    [5, 5],
    [100, 100, 100, 100],
    [1000, 2, 1000],
]
DENSITY_CASES = [0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("density", DENSITY_CASES)
@pytest.mark.parametrize("sizes", SIZE_CASES, ids=lambda s: "-".join(map(str, s)))
def test_er_densities_match_reference(sizes, density):
    got = ts.er_densities(sizes, density)
    expected = er_reference(sizes, density)
    assert isinstance(got, list) and len(got) == len(sizes) - 1
    for g, e in zip(got, expected):
        assert isinstance(g, float)
        assert 0.0 < g <= 1.0
        assert g == pytest.approx(e, rel=1e-12, abs=1e-15)
    n = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    assert sum(g * k for g, k in zip(got, n)) == pytest.approx(density * sum(n), rel=1e-9)


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("sizes", [[784, 300, 100, 10], [100, 20, 100, 5]], ids=str)
def test_er_densities_power(sizes, power):
    for density in (0.05, 0.2, 0.6):
        got = ts.er_densities(sizes, density, power=power)
        assert got == pytest.approx(er_reference(sizes, density, power), rel=1e-12, abs=1e-15)


def test_er_densities_caps_small_layers():
    got = ts.er_densities([784, 300, 100, 10], 0.3)
    assert got[-1] == 1.0
    assert all(d < 1.0 for d in got[:-1])
    assert ts.er_densities([784, 300, 100, 10], 1.0) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("density", [0.01, 0.05, 0.3, 0.7])
@pytest.mark.parametrize(
    "sizes", [[784, 300, 100, 10], [64, 128, 10], [100, 100, 100, 100], [1000, 2, 1000]], ids=str
)
def test_realised_nnz_of_overall_density(sizes, density):
    model = ts.MLP(sizes, density=density, seed=1)
    ds = er_reference(sizes, density)
    total = 0
    for layer, d, (n_in, n_out) in zip(model.layers, ds, zip(sizes[:-1], sizes[1:])):
        assert layer.shape == (n_out, n_in)
        assert _is_round(layer.nnz, d * n_in * n_out), (layer.nnz, d * n_in * n_out)
        assert layer.is_sparse == (d < 1.0)
        if layer.is_sparse:
            assert_csr_valid(layer.W, layer.shape)
            assert layer.W.nnz == layer.nnz
        total += layer.nnz
    n_total = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    assert abs(total - round(density * n_total)) <= len(model.layers)


@pytest.mark.parametrize(
    ("sizes", "densities"),
    [
        ([784, 300, 100, 10], [0.01, 0.1, 1.0]),
        ([50, 40, 30], [0.5, 0.25]),
        ([7, 3, 9], [1.0, 0.333]),
        ([20, 20], [0.05]),
    ],
)
def test_explicit_densities(sizes, densities):
    model = ts.MLP(sizes, densities=densities, seed=2)
    for layer, d, (n_in, n_out) in zip(model.layers, densities, zip(sizes[:-1], sizes[1:])):
        assert _is_round(layer.nnz, d * n_in * n_out)
        assert layer.is_sparse == (d < 1.0)
        if d == 1.0:
            assert isinstance(layer.W, np.ndarray) and layer.W.shape == (n_out, n_in)
        else:
            assert_csr_valid(layer.W, (n_out, n_in))


@pytest.mark.parametrize("epsilon", [1.0, 5.0, 20.0, 1000.0])
def test_epsilon_densities(epsilon):
    sizes = [784, 300, 100, 10]
    model = ts.MLP(sizes, epsilon=epsilon, seed=3)
    for layer, (n_in, n_out) in zip(model.layers, zip(sizes[:-1], sizes[1:])):
        d = min(1.0, epsilon * (n_in + n_out) / (n_in * n_out))
        assert _is_round(layer.nnz, d * n_in * n_out)
        assert layer.is_sparse == (d < 1.0)


def test_no_density_means_dense():
    model = ts.MLP([30, 20, 10], seed=0)
    assert [layer.is_sparse for layer in model.layers] == [False, False]
    assert [layer.nnz for layer in model.layers] == [600, 200]


def test_overall_density_one_is_dense():
    model = ts.MLP([30, 20, 10], density=1.0, seed=0)
    assert [layer.is_sparse for layer in model.layers] == [False, False]


def _chi2(counts, expected):
    counts = np.asarray(counts, dtype=np.float64)
    return float(np.sum((counts - expected) ** 2 / expected))


@pytest.mark.parametrize("seed", [0, 1])
def test_initial_pattern_is_uniform(seed):
    rows, cols, density = 200, 300, 0.1
    model = ts.MLP([cols, rows, 5], densities=[density, 1.0], seed=seed)
    w = model.layers[0].W
    assert_csr_valid(w, (rows, cols))
    m = w.nnz
    assert m == round(density * rows * cols)
    total = rows * cols
    # Without replacement the counts are hypergeometric: variance factor (1 - m/total).
    shrink = 1.0 - m / total
    row_counts = np.diff(w.indptr)
    col_counts = np.bincount(w.indices, minlength=cols)
    for counts, k in ((row_counts, rows), (col_counts, cols)):
        df = k - 1
        stat = _chi2(counts, m / k)
        mean, sd = df * shrink, math.sqrt(2 * df) * shrink
        assert mean - 6 * sd < stat < mean + 6 * sd, (stat, mean, sd)
    # 4 x 4 blocks: catches samplers with uniform marginals but structure (bands, diagonals).
    r_idx = np.repeat(np.arange(rows), row_counts)
    blocks = (r_idx // (rows // 4)) * 4 + w.indices // (cols // 4)
    stat = _chi2(np.bincount(blocks, minlength=16), m / 16)
    assert stat < 15 * shrink + 6 * math.sqrt(30)
    # Position-level: the stored positions are not concentrated at small linear indices.
    pos = r_idx.astype(np.int64) * cols + w.indices
    assert abs(pos.mean() / (total - 1) - 0.5) < 0.02


def test_initial_pattern_depends_on_seed():
    a = ts.MLP([100, 80, 5], densities=[0.1, 1.0], seed=0).layers[0].W
    b = ts.MLP([100, 80, 5], densities=[0.1, 1.0], seed=1).layers[0].W
    c = ts.MLP([100, 80, 5], densities=[0.1, 1.0], seed=0).layers[0].W
    assert np.array_equal(a.indptr, c.indptr) and np.array_equal(a.indices, c.indices)
    assert not (np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices))


def test_layers_get_different_patterns():
    model = ts.MLP([60, 60, 60, 60], densities=[0.1, 0.1, 0.1], seed=0)
    pats = [(layer.W.indptr.tobytes(), layer.W.indices.tobytes()) for layer in model.layers]
    assert len(set(pats)) == 3


@pytest.mark.parametrize("fan_in", ["actual", "dense"])
def test_he_normal_scale(fan_in):
    n_in, n_out, density = 400, 300, 0.05
    model = ts.MLP(
        [n_in, n_out, 2],
        densities=[density, 1.0],
        weight_init="he_normal",
        sparse_fan_in=fan_in,
        dtype=np.float64,
        seed=5,
    )
    w = model.layers[0].W
    per_row = np.repeat(np.diff(w.indptr), np.diff(w.indptr)).astype(np.float64)
    fan = per_row if fan_in == "actual" else np.full_like(per_row, n_in)
    z = w.data / np.sqrt(2.0 / fan)
    assert abs(np.mean(z)) < 0.05
    assert 0.9 < np.std(z) < 1.1


@pytest.mark.parametrize("fan_in", ["actual", "dense"])
def test_he_uniform_bound(fan_in):
    n_in, n_out, density = 400, 300, 0.05
    model = ts.MLP(
        [n_in, n_out, 2],
        densities=[density, 1.0],
        weight_init="he_uniform",
        sparse_fan_in=fan_in,
        dtype=np.float64,
        seed=5,
    )
    w = model.layers[0].W
    per_row = np.repeat(np.diff(w.indptr), np.diff(w.indptr)).astype(np.float64)
    fan = per_row if fan_in == "actual" else np.full_like(per_row, n_in)
    u = w.data / np.sqrt(6.0 / fan)  # uniform on [-1, 1]
    assert np.all(np.abs(u) <= 1.0 + 1e-12)
    assert abs(np.mean(u)) < 0.05
    assert abs(np.var(u) - 1.0 / 3.0) < 0.03


# -- uniform allocation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dense_first,dense_last", [(False, False), (True, False), (False, True), (True, True)]
)
def test_uniform_allocation(dense_first, dense_last):
    sizes = [40, 30, 20, 10]
    expected = [0.1, 0.1, 0.1]
    if dense_first:
        expected[0] = 1.0
    if dense_last:
        expected[-1] = 1.0
    assert (
        ts.uniform_densities(sizes, 0.1, dense_first=dense_first, dense_last=dense_last) == expected
    )
    model = ts.MLP(
        sizes, density=0.1, init="uniform", dense_first=dense_first, dense_last=dense_last, seed=0
    )
    for layer, d, n_in, n_out in zip(model.layers, expected, sizes[:-1], sizes[1:]):
        assert layer.is_sparse == (d < 1)
        assert layer.nnz == (n_in * n_out if d == 1 else round(d * n_in * n_out))


def test_unknown_allocation_is_rejected():
    with pytest.raises(ValueError, match="init"):
        ts.MLP([4, 3, 2], density=0.5, init="random")
    with pytest.raises(ValueError, match="uniform_densities"):
        ts.uniform_densities([4, 3, 2], 1.5)
