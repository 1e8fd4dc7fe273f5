"""Self-checks of the tests' own NumPy reference MLP (mlp_reference.py), without the engine.

The engine is compared with that reference everywhere else, so the reference itself is
checked here: its backward against central finite differences of its forward, and a tiny
case worked out by hand.
"""

import numpy as np
import pytest

import mlp_reference as ref
from conftest import assert_close


def _random_mlp(rng, sizes, densities):
    weights, masks, biases = [], [], []
    for (n_in, n_out), d in zip(zip(sizes[:-1], sizes[1:]), densities):
        mask = rng.random((n_out, n_in)) < d
        weights.append(rng.standard_normal((n_out, n_in)) * mask)
        masks.append(mask)
        biases.append(rng.standard_normal(n_out) * 0.5)
    return weights, masks, biases


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_reference_backward_matches_finite_differences(act, loss):
    rng = np.random.default_rng(7)
    sizes = [5, 6, 4, 3]
    n = 4
    while True:
        weights, masks, biases = _random_mlp(rng, sizes, [0.7, 0.6, 1.0])
        x = rng.standard_normal((n, sizes[0]))
        zs, _ = ref.forward(weights, biases, x, act, 0.1)
        if min(np.abs(z).min() for z in zs[:-1]) > 1e-3:  # stay away from kinks
            break
    y = rng.integers(0, sizes[-1], size=n)
    value, dws, dbs, _ = ref.backward(weights, masks, biases, x, y, act, loss, 0.1)
    assert value == pytest.approx(ref.loss_value(weights, biases, x, y, act, loss, 0.1), rel=1e-14)
    h = 1e-6
    for li in range(len(weights)):
        fd_w = np.zeros_like(weights[li])
        for i, j in zip(*np.nonzero(masks[li])):
            wp = [w.copy() for w in weights]
            wm = [w.copy() for w in weights]
            wp[li][i, j] += h
            wm[li][i, j] -= h
            fd_w[i, j] = (
                ref.loss_value(wp, biases, x, y, act, loss, 0.1)
                - ref.loss_value(wm, biases, x, y, act, loss, 0.1)
            ) / (2 * h)
        assert_close(dws[li], fd_w, rtol=1e-6, atol=1e-8)
        fd_b = np.zeros_like(biases[li])
        for i in range(len(biases[li])):
            bp = [b.copy() for b in biases]
            bm = [b.copy() for b in biases]
            bp[li][i] += h
            bm[li][i] -= h
            fd_b[i] = (
                ref.loss_value(weights, bp, x, y, act, loss, 0.1)
                - ref.loss_value(weights, bm, x, y, act, loss, 0.1)
            ) / (2 * h)
        assert_close(dbs[li], fd_b, rtol=1e-6, atol=1e-8)


def test_reference_tiny_case_by_hand():
    # One layer 2 -> 2, one example, squared error: z = W x + b.
    w = np.array([[1.0, 2.0], [0.0, -1.0]])
    b = np.array([0.5, 0.25])
    x = np.array([[1.0, 3.0]])
    # z = [1 + 6 + 0.5, -3 + 0.25] = [7.5, -2.75]; target one-hot of label 0 = [1, 0]
    value, dws, dbs, dx = ref.backward(
        [w], [np.ones((2, 2), bool)], [b], x, np.array([0]), "relu", "squared_error"
    )
    assert value == pytest.approx(6.5**2 + 2.75**2)
    dz = np.array([[2 * 6.5, 2 * -2.75]])
    assert_close(dbs[0], dz[0])
    assert_close(dws[0], dz.T @ x)
    assert_close(dx, dz @ w)
    # Softmax cross entropy of equal logits over 2 classes is log 2.
    value, _, _, _ = ref.backward(
        [np.zeros((2, 2))],
        [np.ones((2, 2), bool)],
        [np.zeros(2)],
        x,
        np.array([1]),
        "relu",
        "softmax_cross_entropy",
    )
    assert value == pytest.approx(np.log(2.0))


def test_reference_all_relu_alternates_sign():
    z = np.array([-2.0, 3.0])
    assert_close(ref.activation("all_relu", z, 1, 0.1), np.array([-0.2, 3.0]))
    assert_close(ref.activation("all_relu", z, 2, 0.1), np.array([0.2, 3.0]))
    assert_close(ref.activation("all_relu", z, 3, 0.1), np.array([-0.2, 3.0]))
