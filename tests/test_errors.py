"""Bad input raises ValueError / TypeError naming the operation and the value at fault.

Covers every error listed in the API contract: feature count, dtype, NaN / inf, labels out
of range, empty data, batch_size and epochs, X / y length mismatch, invalid sparse matrices
in set_weights, invalid sizes, densities, epsilon and names. After each error the model
must still work and hold its previous weights.
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp

import truesparse as ts
from conftest import match_all

N_IN, N_OUT = 64, 10


@pytest.fixture
def model():
    return ts.MLP([N_IN, 32, N_OUT], densities=[0.5, 0.5], seed=0)


def _good(n=6):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, N_IN)).astype(np.float32), rng.integers(0, N_OUT, size=n)


OPS = {
    "forward": lambda m, x, y: m.forward(x),
    "backward": lambda m, x, y: m.backward(x, y),
    "fit": lambda m, x, y: m.fit(x, y, epochs=1, batch_size=2, verbose=0),
    "predict": lambda m, x, y: m.predict(x),
    "evaluate": lambda m, x, y: m.evaluate(x, y),
}
LABEL_OPS = ["backward", "fit", "evaluate"]


def _op_regex(op, alternatives):
    return rf"(?is)^(?=.*{re.escape(op)})(?=.*({alternatives}))"


def _still_works(model):
    x, y = _good()
    w_before = [layer.W.copy() for layer in model.layers]
    out = model.forward(x)
    assert out.shape == (6, N_OUT) and np.all(np.isfinite(out))
    assert np.isfinite(model.backward(x, y))
    for layer, w in zip(model.layers, w_before):
        a = layer.W.toarray() if sp.issparse(layer.W) else layer.W
        b = w.toarray() if sp.issparse(w) else w
        assert np.array_equal(a, b)


@pytest.mark.parametrize("features", [N_IN - 1, N_IN + 1, 1])
@pytest.mark.parametrize("op", sorted(OPS))
def test_wrong_feature_count(model, op, features):
    _, y = _good()
    bad = np.zeros((6, features), dtype=np.float32)
    with pytest.raises(ValueError, match=match_all(op, features, N_IN)):
        OPS[op](model, bad, y)
    _still_works(model)


@pytest.mark.parametrize("op", sorted(OPS))
def test_wrong_number_of_dimensions(model, op):
    _, y = _good()
    with pytest.raises(ValueError, match=match_all(op)):
        OPS[op](model, np.zeros((6, N_IN, 1), dtype=np.float32), y)
    _still_works(model)


@pytest.mark.parametrize(
    "bad",
    [
        np.full((6, N_IN), "abc"),
        np.full((6, N_IN), None, dtype=object),
        np.full((6, N_IN), {}, dtype=object),
    ],
    ids=["str", "object-None", "object-dict"],
)
@pytest.mark.parametrize("op", sorted(OPS))
def test_non_convertible_dtype(model, op, bad):
    _, y = _good()
    with pytest.raises((TypeError, ValueError), match=match_all(op)):
        OPS[op](model, bad, y)
    _still_works(model)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("op", sorted(OPS))
def test_non_finite_X(model, op, value):
    x, y = _good()
    x[3, 17] = value
    with pytest.raises(ValueError, match=_op_regex(op, "nan|inf|finite")):
        OPS[op](model, x, y)
    _still_works(model)


@pytest.mark.parametrize("label", [-1, N_OUT, N_OUT + 5])
@pytest.mark.parametrize("op", LABEL_OPS)
def test_labels_out_of_range(model, op, label):
    x, y = _good()
    y = y.copy()
    y[2] = label
    with pytest.raises(ValueError, match=match_all(op, label)):
        OPS[op](model, x, y)
    _still_works(model)


@pytest.mark.parametrize("op", sorted(OPS))
def test_empty_data(model, op):
    x = np.zeros((0, N_IN), dtype=np.float32)
    y = np.zeros((0,), dtype=np.int64)
    with pytest.raises(ValueError, match=_op_regex(op, r"empty|(?<![0-9.])0(?![0-9.])")):
        OPS[op](model, x, y)
    _still_works(model)


@pytest.mark.parametrize(("n_x", "n_y"), [(6, 5), (6, 7), (6, 1)])
@pytest.mark.parametrize("op", LABEL_OPS)
def test_mismatched_lengths(model, op, n_x, n_y):
    x, _ = _good(n_x)
    y = np.zeros(n_y, dtype=np.int64)
    with pytest.raises(ValueError, match=match_all(op, n_x, n_y)):
        OPS[op](model, x, y)
    _still_works(model)


@pytest.mark.parametrize("batch_size", [0, -1, -32])
def test_bad_batch_size(model, batch_size):
    x, y = _good()
    with pytest.raises(ValueError, match=match_all("fit", "batch_size", batch_size)):
        model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
    _still_works(model)


@pytest.mark.parametrize("epochs", [-1, -10])
def test_negative_epochs(model, epochs):
    x, y = _good()
    with pytest.raises(ValueError, match=match_all("fit", "epochs", epochs)):
        model.fit(x, y, epochs=epochs, batch_size=2, verbose=0)
    _still_works(model)


def test_bad_validation_data(model):
    x, y = _good()
    xv = np.zeros((4, N_IN - 1), dtype=np.float32)
    with pytest.raises(ValueError, match=match_all("fit", N_IN - 1)):
        model.fit(x, y, epochs=1, batch_size=2, validation_data=(xv, y[:4]), verbose=0)
    xv = np.zeros((4, N_IN), dtype=np.float32)
    with pytest.raises(ValueError, match=match_all("fit", N_OUT)):
        model.fit(x, y, epochs=1, batch_size=2, validation_data=(xv, np.full(4, N_OUT)), verbose=0)
    _still_works(model)


@pytest.mark.parametrize("op", ["backward", "evaluate"])
def test_target_matrix_of_wrong_width(op):
    m = ts.MLP([N_IN, 8, N_OUT], loss="squared_error", seed=0)
    x, _ = _good()
    t = np.zeros((6, N_OUT - 1), dtype=np.float32)
    with pytest.raises(ValueError, match=match_all(op, N_OUT - 1)):
        OPS[op](m, x, t)


@pytest.mark.parametrize("op", LABEL_OPS)
def test_two_dimensional_labels_for_cross_entropy(model, op):
    x, _ = _good()
    with pytest.raises(ValueError, match=match_all(op)):
        OPS[op](model, x, np.zeros((6, N_OUT)))
    _still_works(model)


# ---------------------------------------------------------------- set_weights


def _raw_csr(data, indices, indptr, shape):
    data = np.asarray(data, dtype=np.float32)
    indices = np.asarray(indices, dtype=np.int32)
    indptr = np.asarray(indptr, dtype=np.int32)
    try:
        return sp.csr_array((data, indices, indptr), shape=shape)
    except ValueError:
        pytest.skip("scipy refuses to build this invalid CSR array")


def _layer_state(layer):
    return layer.W.copy(), layer.b.copy(), layer.nnz


def _unchanged(layer, state):
    w, b, nnz = state
    assert layer.nnz == nnz
    got = layer.W
    if sp.issparse(got):
        assert np.array_equal(got.indptr, w.indptr) and np.array_equal(got.indices, w.indices)
        assert np.array_equal(got.data, w.data)
    else:
        assert np.array_equal(got, w)
    assert np.array_equal(layer.b, b)


@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (4, 6), (5, 5)])
def test_set_weights_wrong_shape_sparse(shape):
    m = ts.MLP([5, 4, 2], densities=[0.5, 0.5], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    w = sp.random_array(shape, density=0.5, rng=np.random.default_rng(0), format="csr")
    bad = [str(s) for s, ok in zip(shape, (4, 5)) if s != ok]
    with pytest.raises(ValueError, match=match_all("set_weights", *bad)):
        layer.set_weights(w, np.zeros(4))
    _unchanged(layer, state)


@pytest.mark.parametrize("shape", [(3, 5), (4, 6), (5,), (4, 5, 1)])
def test_set_weights_wrong_shape_dense(shape):
    m = ts.MLP([5, 4, 2], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    with pytest.raises(ValueError, match=match_all("set_weights")):
        layer.set_weights(np.zeros(shape), np.zeros(4))
    _unchanged(layer, state)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("b_len", [3, 5, 0])
def test_set_weights_wrong_bias_length(sparse, b_len):
    m = ts.MLP([5, 4, 2], densities=[0.5 if sparse else 1.0, 1.0], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    w = layer.W
    with pytest.raises(ValueError, match=match_all("set_weights", b_len)):
        layer.set_weights(w, np.zeros(b_len))
    _unchanged(layer, state)


def test_set_weights_duplicate_indices():
    m = ts.MLP([5, 4, 2], densities=[0.5, 0.5], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    w = _raw_csr([1.0, 2.0, 3.0], [1, 1, 4], [0, 2, 2, 3, 3], (4, 5))
    with pytest.raises(ValueError, match=_op_regex("set_weights", "duplicate")):
        layer.set_weights(w, np.zeros(4))
    _unchanged(layer, state)


@pytest.mark.parametrize("bad_index", [5, 7, -1])
def test_set_weights_index_out_of_range(bad_index):
    m = ts.MLP([5, 4, 2], densities=[0.5, 0.5], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    w = _raw_csr([1.0, 2.0, 3.0], [0, bad_index, 2], [0, 1, 2, 3, 3], (4, 5))
    with pytest.raises(ValueError, match=match_all("set_weights", bad_index)):
        layer.set_weights(w, np.zeros(4))
    _unchanged(layer, state)


def test_set_weights_decreasing_indptr():
    m = ts.MLP([5, 4, 2], densities=[0.5, 0.5], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    w = _raw_csr([1.0, 2.0, 3.0], [0, 1, 2], [0, 2, 1, 3, 3], (4, 5))
    with pytest.raises(ValueError, match=match_all("set_weights")):
        layer.set_weights(w, np.zeros(4))
    _unchanged(layer, state)


def test_set_weights_non_numeric():
    m = ts.MLP([5, 4, 2], densities=[0.5, 0.5], seed=0)
    layer = m.layers[0]
    state = _layer_state(layer)
    with pytest.raises((TypeError, ValueError), match=match_all("set_weights")):
        layer.set_weights(np.full((4, 5), "x"), np.zeros(4))
    _unchanged(layer, state)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("sizes", "fault"),
    [([], "[]"), ([5], "[5]"), ([4, 0, 3], 0), ([0, 3], 0), ([4, -2, 3], -2), ([4, 3, 0], 0)],
    ids=["empty", "single", "zero-hidden", "zero-input", "negative", "zero-output"],
)
def test_invalid_sizes(sizes, fault):
    # The message names the operation (MLP), the argument (size / sizes) and the fault.
    with pytest.raises(ValueError, match=match_all("MLP", "size", fault)):
        ts.MLP(sizes)


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan")])
def test_density_out_of_range(density):
    with pytest.raises(ValueError, match=match_all("MLP", "density", density)):
        ts.MLP([10, 8, 3], density=density)


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5])
def test_er_densities_out_of_range(density):
    with pytest.raises(ValueError, match=match_all("density", density)):
        ts.er_densities([10, 8, 3], density)


@pytest.mark.parametrize(
    ("densities", "fault"),
    [([0.5], 1), ([0.5, 0.5, 0.5], 3), ([0.0, 0.5], 0.0), ([0.5, 1.5], 1.5), ([-0.2, 0.5], -0.2)],
)
def test_bad_explicit_densities(densities, fault):
    with pytest.raises(ValueError, match=match_all("MLP", "densit", fault)):
        ts.MLP([10, 8, 3], densities=densities)


@pytest.mark.parametrize("epsilon", [0.0, -1.0])
def test_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match=match_all("epsilon", epsilon)):
        ts.MLP([10, 8, 3], epsilon=epsilon)


@pytest.mark.parametrize(
    ("kwargs", "fault"),
    [
        ({"activation": "relu6"}, "relu6"),
        ({"loss": "hinge"}, "hinge"),
        ({"init": "orthogonal"}, "orthogonal"),
        ({"sparse_fan_in": "sometimes"}, "sometimes"),
    ],
)
def test_bad_names(kwargs, fault):
    with pytest.raises(ValueError, match=match_all(fault)):
        ts.MLP([10, 8, 3], **kwargs)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64])
def test_bad_dtype(dtype):
    with pytest.raises((TypeError, ValueError), match=match_all("dtype")):
        ts.MLP([10, 8, 3], dtype=dtype)
