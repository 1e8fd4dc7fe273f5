"""Sigmoid: Y = Sigmoid(X); proves DX = DY ⊙ Y ⊙ (1 − Y), the backward from the stored output
(activation.h, reference.Sigmoid), is the derivative of L = elements_sum(DY ⊙ Y). Then ties
the derived gradient to reference.Sigmoid, including large |x| where the reference's
overflow-free evaluation is used.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from proof_helpers import (
    assert_equal_matrices,
    gradient,
    matrix,
    reference,
    tie_to_reference,
)
from sympy_matrix_operations import Sigmoid, elements_sum, hadamard, ones

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    Y = Sigmoid(X)  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(DY, hadamard(Y, ones(D, N) - Y))  # (D,N)
    return SimpleNamespace(X=X, DY=DY, Y=Y, DX=DX, derived_DX=gradient(L, X))


def test_sigmoid_backward_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DX, d.derived_DX, "DX")


def test_reference_sigmoid_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(6)
    X = rng.standard_normal((D, N)) * 3
    X[0, 0], X[1, 1] = 40.0, -40.0
    DY = rng.standard_normal((D, N))
    tie_to_reference(
        d,
        reference.Sigmoid(),
        X=X,
        DY=DY,
        outputs={"Y": d.Y, "DX": d.derived_DX},
    )
