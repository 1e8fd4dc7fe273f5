"""ReLU: Y = Relu(X); proves DX = DY ⊙ Step(X) on every sign region of X.

Relu and Step are Piecewise; each entry of X is replaced by a positive or a negative symbol
(all positive, all negative, checkerboard), which decides every branch, and the
hand-written backward must equal the derivative of L = elements_sum(DY ⊙ Y). The kink x = 0
has no derivative; the engine and the reference use the negative side (Step(0) = 0).
Then ties the derived gradient to reference.ReLU at a random point.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from proof_helpers import (
    assert_equal_on_sign_regions,
    gradient,
    matrix,
    reference,
    tie_to_reference,
)
from sympy_matrix_operations import Relu, Step, elements_sum, hadamard

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    Y = Relu(X)  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(DY, Step(X))  # (D,N)
    return SimpleNamespace(X=X, DY=DY, Y=Y, DX=DX, derived_DX=gradient(L, X))


def test_relu_backward_is_the_derivative_on_every_region():
    d = derivation()
    assert_equal_on_sign_regions(d.DX, d.derived_DX, d.X, "DX")


def test_reference_relu_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(2)
    X = rng.standard_normal((D, N))
    X[np.abs(X) < 0.1] = 0.5  # away from the kink
    DY = rng.standard_normal((D, N))
    tie_to_reference(d, reference.ReLU(), X=X, DY=DY, outputs={"Y": d.Y, "DX": d.derived_DX})


def test_reference_relu_uses_the_negative_side_at_the_kink():
    layer = reference.ReLU()
    layer.forward(np.zeros((D, N)))
    assert np.all(layer.backward(np.ones((D, N))) == 0.0)
