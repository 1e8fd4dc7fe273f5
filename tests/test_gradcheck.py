"""Float64 central finite differences of the engine's loss against its own backward.

Independent of the NumPy reference's equations: the loss is the value model.backward
returns, the weights are perturbed through set_weights (same pattern, one stored value
changed), and the difference quotient is compared with DW / Db. Three layers mixing sparse
and dense, a smooth activation and piecewise-linear ones with inputs kept away from the
kinks (the reference MLP's forward only tells where the hidden pre-activations are).
"""

import numpy as np
import pytest
import scipy.sparse as sp

import reference_network as refnet
import truesparse as ts
from conftest import assert_close, csr_from_mask, set_random_weights
from truesparse import layers as L

H = 1e-6
SIZES = [6, 8, 7, 4]


def _set_layer(layer, w, mask, b):
    if layer.is_sparse:
        layer.set_weights(csr_from_mask(mask, w), b)
    else:
        layer.set_weights(w, b)


def _model_away_from_kinks(act, loss, densities, seed):
    """A float64 model with known weights and data such that no hidden |z| is below 1e-3."""
    rng = np.random.default_rng(seed)
    model = ts.MLP(
        SIZES,
        densities=densities,
        activation=act,
        alpha=0.1,
        loss=loss,
        dtype=np.float64,
        seed=seed,
    )
    n = 5
    for _ in range(1000):
        weights, masks, biases = set_random_weights(model, rng)
        x = rng.standard_normal((n, SIZES[0]))
        layers = refnet.reference_mlp(weights, masks, biases, act, alpha=0.1)
        hidden = refnet.linear_outputs(layers, x)[:-1]  # pre-activations
        if min(np.abs(z).min() for z in hidden) > 1e-3:
            break
    else:
        pytest.fail("could not draw weights away from the kinks")
    y = rng.integers(0, SIZES[-1], size=n)
    return model, weights, masks, biases, x, y, rng


@pytest.mark.parametrize("densities", [[0.5, 1.0, 0.6], [1.0, 0.4, 0.7], [0.3, 0.3, 1.0]])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "squared_error"])
@pytest.mark.parametrize("act", list(L.ACTIVATIONS))
def test_backward_matches_central_differences(act, loss, densities):
    model, weights, masks, biases, x, y, rng = _model_away_from_kinks(act, loss, densities, seed=21)
    model.backward(x, y)
    grads = [
        (layer.DW.toarray() if sp.issparse(layer.DW) else np.array(layer.DW), np.array(layer.Db))
        for layer in model.layers
    ]

    for li, layer in enumerate(model.layers):
        rows, cols = np.nonzero(masks[li])
        pick = rng.choice(len(rows), size=min(10, len(rows)), replace=False)
        fd_w, an_w = [], []
        for k in pick:
            i, j = rows[k], cols[k]
            values = []
            for sign in (1.0, -1.0):
                w = weights[li].copy()
                w[i, j] += sign * H
                _set_layer(layer, w, masks[li], biases[li])
                values.append(model.backward(x, y))
            fd_w.append((values[0] - values[1]) / (2 * H))
            an_w.append(grads[li][0][i, j])
        _set_layer(layer, weights[li], masks[li], biases[li])
        assert_close(np.array(an_w), np.array(fd_w), rtol=1e-6, atol=1e-8)

        fd_b = []
        for i in range(layer.shape[0]):
            values = []
            for sign in (1.0, -1.0):
                b = biases[li].copy()
                b[i] += sign * H
                _set_layer(layer, weights[li], masks[li], b)
                values.append(model.backward(x, y))
            fd_b.append((values[0] - values[1]) / (2 * H))
        _set_layer(layer, weights[li], masks[li], biases[li])
        assert_close(grads[li][1], np.array(fd_b), rtol=1e-6, atol=1e-8)


def test_gradient_is_zero_off_pattern_and_unreported():
    """A sparse layer's DW holds values only at stored positions (no dense leak)."""
    model, _, masks, _, x, y, _ = _model_away_from_kinks(
        "tanh", "softmax_cross_entropy", [0.3, 1.0, 0.5], 22
    )
    model.backward(x, y)
    for li in (0, 2):
        dw = model.layers[li].DW
        assert dw.nnz == masks[li].sum()
        assert not np.any(dw.toarray()[~masks[li]])
