"""Shared test helpers: the one tolerance helper, CSR invariant checks and fixtures.

Test modules import the helpers with ``from conftest import ...``; this file puts its own
directory on ``sys.path`` so that works under every pytest import mode. The engine is
compared with the NumPy reference ``truesparse.reference``; ``reference_network.py`` beside
this file builds the reference twin of an engine network.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from truesparse.reference.testing import DEFAULT_TOLERANCES, assert_close  # noqa: F401

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def assert_csr_valid(m, shape=None):
    """Check the invariants of a scipy CSR array (docs/sparse-layers.md#storage)."""
    assert sp.issparse(m), f"expected a scipy sparse matrix, got {type(m).__name__}"
    assert m.format == "csr", f"expected CSR, got {m.format}"
    if shape is not None:
        assert m.shape == tuple(shape), f"shape {m.shape}, expected {tuple(shape)}"
    rows, cols = m.shape
    indptr = np.asarray(m.indptr)
    indices = np.asarray(m.indices)
    assert indptr.dtype.kind in "iu" and indices.dtype.kind in "iu", "index arrays must be integers"
    assert indptr.shape == (rows + 1,), f"indptr has length {indptr.shape}, expected {rows + 1}"
    assert indptr[0] == 0, f"indptr[0] == {indptr[0]}"
    assert np.all(np.diff(indptr.astype(np.int64)) >= 0), "indptr is not nondecreasing"
    nnz = len(m.data)
    assert indptr[-1] == nnz, f"indptr[-1] == {indptr[-1]} but there are {nnz} stored values"
    assert len(indices) == nnz, f"{len(indices)} indices for {nnz} values"
    if nnz:
        assert indices.min() >= 0 and indices.max() < cols, "column index out of range"
    for r in range(rows):
        row = indices[indptr[r] : indptr[r + 1]].astype(np.int64)
        assert np.all(np.diff(row) > 0), f"row {r}: indices not sorted and unique: {row}"


def assert_same_pattern(a, b):
    """Two CSR arrays have identical shape, indptr and indices."""
    assert a.shape == b.shape, f"shape {a.shape} vs {b.shape}"
    assert np.array_equal(np.asarray(a.indptr), np.asarray(b.indptr)), "indptr differs"
    assert np.array_equal(np.asarray(a.indices), np.asarray(b.indices)), "indices differ"


def dense_of(w):
    """Dense ndarray of a layer's W (ndarray or scipy sparse); keeps the dtype."""
    return w.toarray() if sp.issparse(w) else np.asarray(w)


def mask_of(w):
    """0/1 pattern of a layer's W: stored entries for sparse, all ones for dense."""
    if sp.issparse(w):
        c = sp.csr_array(w, copy=True)
        c.data = np.ones_like(c.data)
        return c.toarray().astype(bool)
    return np.ones(np.shape(w), dtype=bool)


def number_regex(value):
    """Regex for a number as a whole token, in any of its usual spellings.

    1 matches "1" and "1.0"; 0.5 matches "0.5" and "0.500000"; nan matches "nan" / "NaN".
    """
    v = float(value)
    if np.isnan(v):
        core = "nan"
    elif v in (float("inf"), float("-inf")):
        core = re.escape("-" if v < 0 else "") + "inf"
    elif v == int(v):
        core = re.escape(str(int(v))) + r"(?:\.0*)?(?:e\+?0+)?"
    else:
        core = re.escape(repr(v)) + "0*"
    return rf"(?<![0-9.]){core}(?![0-9]|\.[0-9])"


def match_all(*parts):
    """Regex for pytest.raises(match=...) requiring every part, in any order, any case.

    Numbers (int / float, or strings that spell one) match as whole tokens in any usual
    spelling (see number_regex), so 63 does not match inside 630.
    """
    looks = []
    for p in parts:
        if isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool):
            looks.append(rf"(?=.*{number_regex(p)})")
        elif isinstance(p, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]*)?", p):
            looks.append(rf"(?=.*{number_regex(float(p))})")
        else:
            looks.append(rf"(?=.*{re.escape(str(p))})")
    return r"(?is)^" + "".join(looks)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def restore_threads():
    """Restore truesparse's thread count after a test that changes it."""
    import truesparse as ts

    before = ts.get_num_threads()
    yield before
    ts.set_num_threads(before)


def csr_from_mask(mask, values):
    """CSR array whose stored entries are exactly the True positions of ``mask``.

    Built from raw arrays, so entries whose value is zero are still stored.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask)  # row-major order: sorted by row, then column
    indptr = np.zeros(mask.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=indptr[1:])
    data = np.asarray(values)[rows, cols]
    return sp.csr_array((data, cols.astype(np.int32), indptr), shape=mask.shape)


def random_weights(rng, shape, dtype, mask=None):
    """Random weights (dense ndarray, zero off ``mask``) scaled by the row fan-in."""
    out = shape[0]
    if mask is None:
        mask = np.ones(shape, dtype=bool)
    fan_in = max(1.0, mask.sum() / max(1, out))
    w = rng.standard_normal(shape) / np.sqrt(fan_in)
    return np.where(mask, w, 0.0).astype(dtype), mask


def set_random_weights(model, rng, masks=None):
    """Give every layer random known weights and biases via set_weights.

    Sparse layers keep their current pattern unless ``masks[l]`` is given; dense layers get
    a dense ndarray. Returns (dense weights, masks, biases), in the model's dtype, exactly
    as passed to set_weights.
    """
    dtype = np.dtype(model.dtype)
    weights, out_masks, biases = [], [], []
    for li, layer in enumerate(model.layers):
        mask = None if masks is None else masks[li]
        if mask is None:
            mask = mask_of(layer.W)
        w, mask = random_weights(rng, layer.shape, dtype, mask)
        b = (rng.standard_normal(layer.shape[0]) * 0.5).astype(dtype)
        if layer.is_sparse:
            layer.set_weights(csr_from_mask(mask, w), b)
        else:
            assert mask.all(), "a dense layer takes a full pattern"
            layer.set_weights(w, b)
        weights.append(w)
        out_masks.append(mask)
        biases.append(b)
    return weights, out_masks, biases


def read_params(model):
    """(dense weights, masks, biases) as currently stored by the model."""
    ws = [dense_of(layer.W) for layer in model.layers]
    ms = [mask_of(layer.W) for layer in model.layers]
    bs = [np.asarray(layer.b) for layer in model.layers]
    return ws, ms, bs


@pytest.fixture(scope="module")
def one_thread():
    """One engine thread for a module: on small data a second OpenMP thread only adds
    synchronisation (and stalls on a busy machine)."""
    import truesparse as ts

    before = ts.get_num_threads()
    ts.set_num_threads(1)
    yield
    ts.set_num_threads(before)
