"""Tanh: Y = Tanh(X); proves DX = DY ⊙ (1 − Y ⊙ Y), the backward from the stored output
(activation.h, reference.Tanh), is the derivative of L = elements_sum(DY ⊙ Y). Then ties
the derived gradient to reference.Tanh.
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
from sympy_matrix_operations import Tanh, elements_sum, hadamard, ones

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    Y = Tanh(X)  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(DY, ones(D, N) - hadamard(Y, Y))  # (D,N)
    return SimpleNamespace(X=X, DY=DY, Y=Y, DX=DX, derived_DX=gradient(L, X))


def test_tanh_backward_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DX, d.derived_DX, "DX")


def test_reference_tanh_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(7)
    X = rng.standard_normal((D, N)) * 2
    DY = rng.standard_normal((D, N))
    tie_to_reference(d, reference.Tanh(), X=X, DY=DY, outputs={"Y": d.Y, "DX": d.derived_DX})
