"""Linear layers' forward and backward against the NumPy reference (truesparse.reference).

Every test sets known weights with set_weights, then compares model.forward (logits),
model.backward (loss, DW, Db of every layer; DX enters through the earlier layers' DW) with
the reference MLP built from the same arrays (reference_network.reference_mlp): dense W times
the 0/1 pattern P, examples as columns there, Y = (W ⊙ P) X + b 1ᵀ,
DW = (DY Xᵀ) ⊙ P, Db = rows_sum(DY), DX = (W ⊙ P)ᵀ DY. Grids cover densities, dtypes, every
hidden activation of ts.MLP, two losses and odd shapes (1x1 layers, N = 1, empty rows and
columns, an empty layer).
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
    csr_from_mask,
    dense_of,
    random_weights,
    read_params,
    set_random_weights,
)
from truesparse import layers as L

DTYPES = [np.float32, np.float64]
ACTIVATIONS = list(L.ACTIVATIONS)  # every hidden activation of ts.MLP
LOSSES = ("softmax_cross_entropy", "squared_error")
DENSITIES = [1.0, 0.5, 0.1, 0.01]
ALPHA = 0.1


def _labels(rng, n, classes):
    return rng.integers(0, classes, size=n).astype(np.int64)


def check_against_reference(model, x, y, weights, masks, biases, act, alpha=ALPHA):
    """Compare forward, backward loss, DW and Db of every layer with the reference MLP of the
    given arrays (the model's loss)."""
    dtype = np.dtype(model.dtype)
    layers = refnet.reference_mlp(weights, masks, biases, act, alpha)
    logits = model.forward(x)
    assert_close(logits, refnet.forward(layers, x).astype(dtype), dtype=dtype)

    _, value = refnet.forward_backward(layers, refnet.reference_loss(model), x, y)
    got = model.backward(x, y)
    assert isinstance(got, float)
    f32 = dtype == np.float32
    assert_close(
        np.float64(got), np.float64(value), rtol=1e-4 if f32 else 1e-10, atol=1e-6 if f32 else 1e-12
    )
    for li, (layer, reference) in enumerate(zip(model.layers, refnet.linear_layers(layers))):
        dw, db = layer.DW, layer.Db
        if layer.is_sparse:
            assert sp.issparse(dw), f"layer {li}: DW of a sparse layer is {type(dw).__name__}"
            assert_csr_valid(dw, layer.shape)
            assert_same_pattern(dw, layer.W)
            assert dw.dtype == dtype
        else:
            assert isinstance(dw, np.ndarray)
        assert_close(dense_of(dw), reference.DW.astype(dtype), dtype=dtype)
        assert_close(db, reference.Db.astype(dtype), dtype=dtype)


def check_weights_are(model, weights, masks, biases):
    """The model stores exactly the given weights (pattern and values) and biases."""
    for li, layer in enumerate(model.layers):
        if layer.is_sparse:
            assert sp.issparse(layer.W)
            assert_csr_valid(layer.W, layer.shape)
            expected = csr_from_mask(masks[li], weights[li])
            assert_same_pattern(layer.W, expected)
            assert layer.nnz == expected.nnz
            assert np.array_equal(layer.W.data, expected.data)
            assert layer.W.dtype == weights[li].dtype
        else:
            assert isinstance(layer.W, np.ndarray)
            assert layer.W.dtype == weights[li].dtype
            assert np.array_equal(layer.W, weights[li])
        assert np.array_equal(layer.b, biases[li])
        assert layer.b.dtype == biases[li].dtype


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("density", DENSITIES)
def test_mlp_forward_backward_matches_reference(density, dtype, act, loss):
    rng = np.random.default_rng(1)
    sizes = [37, 29, 23, 11]
    n = 13
    model = ts.MLP(
        sizes, densities=[density] * 3, activation=act, alpha=ALPHA, loss=loss, dtype=dtype, seed=3
    )
    for layer in model.layers:
        assert layer.is_sparse == (density < 1.0)
    weights, masks, biases = set_random_weights(model, rng)
    check_weights_are(model, weights, masks, biases)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = _labels(rng, n, sizes[-1])
    check_against_reference(model, x, y, weights, masks, biases, act)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("sizes", "n", "densities"),
    [
        ([1, 1], 1, [1.0]),
        ([1, 1], 3, [1.0]),
        ([1, 1, 1], 1, [1.0, 1.0]),
        ([1, 1, 1], 2, [0.9, 0.9]),
        ([3, 1, 2], 1, [0.6, 1.0]),
        ([1, 6, 1], 5, [0.5, 0.5]),
        ([2, 9, 3], 1, [0.3, 0.4]),
        ([50, 2, 40, 3], 7, [0.2, 0.5, 0.1]),
    ],
)
@pytest.mark.parametrize("loss", LOSSES)
def test_odd_shapes(sizes, n, densities, dtype, loss):
    rng = np.random.default_rng(2)
    model = ts.MLP(sizes, densities=densities, activation="tanh", loss=loss, dtype=dtype, seed=4)
    masks = []
    for layer in model.layers:
        if layer.is_sparse:
            mask = rng.random(layer.shape) < 0.5
            mask.flat[rng.integers(mask.size)] = True  # at least one stored entry
            masks.append(mask)
        else:
            masks.append(None)
    weights, masks, biases = set_random_weights(model, rng, masks)
    check_weights_are(model, weights, masks, biases)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = _labels(rng, n, sizes[-1])
    check_against_reference(model, x, y, weights, masks, biases, "tanh")


@pytest.mark.parametrize("act", ["relu", "all_relu", "sigmoid"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_rows_and_columns(dtype, act):
    rng = np.random.default_rng(3)
    sizes = [9, 8, 7, 5]
    model = ts.MLP(
        sizes, densities=[0.5, 0.5, 0.5], activation=act, alpha=ALPHA, dtype=dtype, seed=5
    )
    empties = [([0, 3, 7], [2, 8]), ([1], [0, 5, 7]), ([0, 4], [6])]
    masks = []
    for layer, (rows, cols) in zip(model.layers, empties):
        mask = rng.random(layer.shape) < 0.6
        mask[rows, :] = False
        mask[:, cols] = False
        masks.append(mask)
    weights, masks, biases = set_random_weights(model, rng, masks)
    check_weights_are(model, weights, masks, biases)
    for layer, (rows, cols) in zip(model.layers, empties):
        counts = np.diff(layer.W.indptr)
        assert np.all(counts[rows] == 0)
        assert not np.isin(layer.W.indices, cols).any()
    x = rng.standard_normal((6, sizes[0])).astype(dtype)
    y = _labels(rng, 6, sizes[-1])
    check_against_reference(model, x, y, weights, masks, biases, act)


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_without_stored_weights(dtype, which):
    rng = np.random.default_rng(4)
    sizes = [6, 5, 4, 3]
    model = ts.MLP(
        sizes,
        densities=[0.5, 0.5, 0.5],
        activation="tanh",
        loss="squared_error",
        dtype=dtype,
        seed=6,
    )
    masks = [None, None, None]
    masks[which] = np.zeros(model.layers[which].shape, dtype=bool)
    weights, masks, biases = set_random_weights(model, rng, masks)
    check_weights_are(model, weights, masks, biases)
    assert model.layers[which].nnz == 0
    x = rng.standard_normal((4, sizes[0])).astype(dtype)
    y = _labels(rng, 4, sizes[-1])
    check_against_reference(model, x, y, weights, masks, biases, "tanh")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_layer_with_full_pattern(dtype):
    rng = np.random.default_rng(5)
    model = ts.MLP([7, 6, 4], densities=[0.3, 0.5], activation="relu", dtype=dtype, seed=7)
    masks = [np.ones((6, 7), dtype=bool), np.ones((4, 6), dtype=bool)]
    weights, masks, biases = set_random_weights(model, rng, masks)
    assert all(layer.is_sparse for layer in model.layers)
    assert [layer.nnz for layer in model.layers] == [42, 24]
    x = rng.standard_normal((5, 7)).astype(dtype)
    check_against_reference(model, x, _labels(rng, 5, 4), weights, masks, biases, "relu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_alpha_is_001(dtype):
    rng = np.random.default_rng(6)
    model = ts.MLP(
        [5, 8, 6, 3], densities=[0.5, 1.0, 0.5], activation="all_relu", dtype=dtype, seed=8
    )
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((9, 5)).astype(dtype)
    y = _labels(rng, 9, 3)
    check_against_reference(model, x, y, weights, masks, biases, "all_relu", alpha=0.01)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_error_with_float_targets(dtype):
    rng = np.random.default_rng(7)
    model = ts.MLP(
        [6, 7, 4],
        densities=[0.5, 0.5],
        activation="sigmoid",
        loss="squared_error",
        dtype=dtype,
        seed=9,
    )
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((5, 6)).astype(dtype)
    t = rng.standard_normal((5, 4)).astype(dtype)
    check_against_reference(model, x, t, weights, masks, biases, "sigmoid")


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_attributes_and_initial_state(dtype):
    model = ts.MLP([12, 10, 8, 3], densities=[0.5, 1.0, 0.4], dtype=dtype, seed=11)
    assert list(model.sizes) == [12, 10, 8, 3]
    assert np.dtype(model.dtype) == np.dtype(dtype)
    assert model.seed == 11
    assert len(model.layers) == 3
    assert [layer.shape for layer in model.layers] == [(10, 12), (8, 10), (3, 8)]
    assert [layer.is_sparse for layer in model.layers] == [True, False, True]
    for layer in model.layers:
        assert layer.DW is None and layer.Db is None
        assert layer.b.shape == (layer.shape[0],) and layer.b.dtype == np.dtype(dtype)
        assert layer.W.dtype == np.dtype(dtype)
        if layer.is_sparse:
            assert_csr_valid(layer.W, layer.shape)
            assert layer.nnz == layer.W.nnz
        else:
            assert isinstance(layer.W, np.ndarray) and layer.W.shape == layer.shape
            assert layer.nnz == layer.W.size
        assert np.all(np.isfinite(dense_of(layer.W)))
    assert model.layers[0].nnz == 60 and model.layers[2].nnz == round(0.4 * 24)


def test_W_is_a_copy():
    model = ts.MLP([5, 4, 3], densities=[0.5, 1.0], seed=1)
    w0 = model.layers[0].W
    before = w0.data.copy()
    w0.data[:] = 123.0
    assert np.array_equal(model.layers[0].W.data, before)
    d = model.layers[1].W
    before_d = d.copy()
    d[:] = 123.0
    assert np.array_equal(model.layers[1].W, before_d)


@pytest.mark.parametrize("dtype", DTYPES)
def test_set_weights_stores_exactly_the_given_entries(dtype):
    rng = np.random.default_rng(8)
    model = ts.MLP([8, 6, 3], densities=[0.5, 0.5], dtype=dtype, seed=2)
    layer = model.layers[0]
    # COO input in scrambled order, with one explicitly stored zero, and a different nnz.
    rows = np.array([5, 0, 3, 0, 2, 5, 1])
    cols = np.array([7, 4, 0, 1, 2, 0, 6])
    vals = np.array([1.5, -2.0, 0.0, 3.25, -0.5, 0.75, 2.0])
    coo = sp.coo_array((vals, (rows, cols)), shape=(6, 8))
    b = np.arange(6, dtype=np.float64) - 2.5
    layer.set_weights(coo, b)
    w = layer.W
    assert_csr_valid(w, (6, 8))
    assert layer.nnz == 7 and w.nnz == 7
    order = np.lexsort((cols, rows))
    assert np.array_equal(w.indptr, [0, 2, 3, 4, 5, 5, 7])
    assert np.array_equal(w.indices, cols[order])
    assert_close(w.data, vals[order].astype(dtype), dtype=dtype, rtol=0, atol=0)
    assert_close(layer.b, b.astype(dtype), dtype=dtype, rtol=0, atol=0)
    # The explicit zero is part of the pattern, so its gradient is reported.
    x = rng.standard_normal((4, 8)).astype(dtype)
    model.backward(x, np.array([0, 1, 2, 0]))
    assert_same_pattern(layer.DW, w)


@pytest.mark.parametrize("fmt", ["csr_array", "csr_matrix", "csc", "coo", "lil", "unsorted_csr"])
def test_set_weights_accepts_every_sparse_format(fmt):
    rng = np.random.default_rng(9)
    model = ts.MLP([7, 5, 2], densities=[0.5, 0.5], dtype=np.float64, seed=3)
    mask = rng.random((5, 7)) < 0.5
    w, _ = random_weights(rng, (5, 7), np.float64, mask)
    ref_csr = csr_from_mask(mask, w)
    if fmt == "csr_array":
        arg = ref_csr
    elif fmt == "csr_matrix":
        arg = sp.csr_matrix(ref_csr)
    elif fmt == "csc":
        arg = ref_csr.tocsc()
    elif fmt == "coo":
        arg = ref_csr.tocoo()
    elif fmt == "lil":
        arg = sp.lil_array(ref_csr)
    else:
        # Same entries, indices reversed inside every row.
        indices = ref_csr.indices.copy()
        data = ref_csr.data.copy()
        for r in range(5):
            s = slice(ref_csr.indptr[r], ref_csr.indptr[r + 1])
            indices[s] = indices[s][::-1]
            data[s] = data[s][::-1]
        arg = sp.csr_array((data, indices, ref_csr.indptr.copy()), shape=(5, 7))
    model.layers[0].set_weights(arg, np.zeros(5))
    got = model.layers[0].W
    assert_csr_valid(got, (5, 7))
    assert_same_pattern(got, ref_csr)
    assert np.array_equal(got.data, ref_csr.data)


def test_set_weights_ndarray_on_sparse_layer_uses_nonzeros():
    model = ts.MLP([4, 3, 2], densities=[0.5, 0.5], dtype=np.float64, seed=1)
    w = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 4.0, 0.0]])
    model.layers[0].set_weights(w, np.ones(3))
    got = model.layers[0].W
    assert sp.issparse(got)
    assert_csr_valid(got, (3, 4))
    assert np.array_equal(got.indptr, [0, 2, 2, 4])
    assert np.array_equal(got.indices, [1, 3, 0, 2])
    assert np.array_equal(got.data, [1.0, 2.0, 3.0, 4.0])
    assert model.layers[0].nnz == 4


def test_set_weights_on_dense_layer():
    rng = np.random.default_rng(10)
    model = ts.MLP([4, 3, 2], dtype=np.float32, seed=1)
    assert not model.layers[0].is_sparse
    w = rng.standard_normal((3, 4))
    b = rng.standard_normal(3)
    model.layers[0].set_weights(w, b)
    assert_close(model.layers[0].W, w.astype(np.float32), dtype=np.float32, rtol=0, atol=0)
    assert_close(model.layers[0].b, b.astype(np.float32), dtype=np.float32, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_accepts_convertible_and_strided_inputs(dtype):
    rng = np.random.default_rng(11)
    model = ts.MLP([6, 5, 3], densities=[0.5, 1.0], activation="tanh", dtype=dtype, seed=5)
    set_random_weights(model, rng)
    base = rng.integers(-3, 4, size=(7, 6))
    expected = model.forward(base.astype(dtype))
    assert expected.shape == (7, 3) and expected.dtype == np.dtype(dtype)
    wide = np.zeros((7, 12), dtype=dtype)
    wide[:, ::2] = base
    variants = {
        "int64": base,
        "int32": base.astype(np.int32),
        "float32": base.astype(np.float32),
        "float64": base.astype(np.float64),
        "fortran": np.asfortranarray(base.astype(dtype)),
        "strided": wide[:, ::2],
        "list": base.tolist(),
    }
    for name, x in variants.items():
        out = model.forward(x)
        assert out.dtype == np.dtype(dtype), name
        assert np.array_equal(out, expected), name


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
def test_backward_accepts_integer_label_dtypes(label_dtype):
    rng = np.random.default_rng(12)
    model = ts.MLP([6, 5, 3], densities=[0.5, 1.0], dtype=np.float64, seed=5)
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((7, 6))
    y = _labels(rng, 7, 3)
    layers = refnet.reference_mlp(weights, masks, biases, "relu")
    _, expected = refnet.forward_backward(layers, refnet.reference_loss(model), x, y)
    assert model.backward(x, y.astype(label_dtype)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_leaves_weights_unchanged(dtype):
    rng = np.random.default_rng(13)
    model = ts.MLP([6, 5, 4, 3], densities=[0.5, 1.0, 0.5], dtype=dtype, seed=5)
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((7, 6)).astype(dtype)
    model.backward(x, _labels(rng, 7, 3))
    model.forward(x)
    check_weights_are(model, weights, masks, biases)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_are_overwritten_not_accumulated(dtype):
    rng = np.random.default_rng(14)
    model = ts.MLP([6, 5, 3], densities=[0.5, 0.5], dtype=dtype, seed=5)
    set_random_weights(model, rng)
    x = rng.standard_normal((7, 6)).astype(dtype)
    y = _labels(rng, 7, 3)
    model.backward(x, y)
    first = [(dense_of(layer.DW).copy(), layer.Db.copy()) for layer in model.layers]
    model.backward(x, y)
    for (dw, db), layer in zip(first, model.layers):
        assert np.array_equal(dense_of(layer.DW), dw)
        assert np.array_equal(layer.Db, db)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_and_evaluate_match_reference(dtype, loss):
    rng = np.random.default_rng(15)
    model = ts.MLP([10, 12, 4], densities=[0.4, 0.6], loss=loss, dtype=dtype, seed=5)
    weights, masks, biases = set_random_weights(model, rng)
    x = rng.standard_normal((40, 10)).astype(dtype)
    y = _labels(rng, 40, 4)
    logits = refnet.forward(refnet.reference_mlp(weights, masks, biases, "relu"), x)
    pred = model.predict(x)
    assert pred.shape == (40,) and pred.dtype == np.int64
    top2 = np.sort(logits, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3  # ignore near ties
    assert np.array_equal(pred[clear], np.argmax(logits, axis=1)[clear])
    result = model.evaluate(x, y)
    assert set(result) >= {"loss", "accuracy"}
    expected_loss = refnet.reference_loss(model).value(logits.T, refnet.target_matrix(y, 4))
    assert result["loss"] == pytest.approx(
        expected_loss, rel=1e-4 if dtype == np.float32 else 1e-10
    )
    assert result["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-12)


def test_read_params_roundtrip():
    rng = np.random.default_rng(16)
    model = ts.MLP([9, 7, 3], density=0.5, dtype=np.float64, seed=5)
    ws, ms, bs = read_params(model)
    x = rng.standard_normal((5, 9))
    assert_close(model.forward(x), refnet.forward(refnet.reference_mlp(ws, ms, bs, "relu"), x))
    for w, m in zip(ws, ms):
        assert not np.any(w[~m])
