"""Affine layer, the learnable part of batch norm: Y = column_repeat(gamma, N) ⊙ X + column_repeat(beta, N).

Proves the backward equations of reference.Affine::

    DX = column_repeat(gamma, N) ⊙ DY      Dgamma = rows_sum(DY ⊙ X)      Dbeta = rows_sum(DY)

from L = elements_sum(DY ⊙ Y), and ties the derived gradients to reference.Affine.
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
from sympy_matrix_operations import column_repeat, elements_sum, hadamard, rows_sum

D, N = 3, 2


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    gamma = matrix("gamma", D, 1)
    beta = matrix("beta", D, 1)
    Y = hadamard(column_repeat(gamma, N), X) + column_repeat(beta, N)  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    hand = SimpleNamespace(
        DX=hadamard(column_repeat(gamma, N), DY),  # (D,N)
        Dgamma=rows_sum(hadamard(DY, X)),  # (D,1)
        Dbeta=rows_sum(DY),  # (D,1)
    )
    derived = SimpleNamespace(DX=gradient(L, X), Dgamma=gradient(L, gamma), Dbeta=gradient(L, beta))
    return SimpleNamespace(X=X, DY=DY, gamma=gamma, beta=beta, Y=Y, hand=hand, derived=derived)


def test_affine_backward_equations_are_the_derivatives():
    d = derivation()
    for name in ("DX", "Dgamma", "Dbeta"):
        assert_equal_matrices(getattr(d.hand, name), getattr(d.derived, name), name)


def test_reference_affine_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(14)
    X, DY = rng.standard_normal((D, N)), rng.standard_normal((D, N))
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    tie_to_reference(
        d,
        reference.Affine(gamma, beta),
        X=X,
        DY=DY,
        gamma=gamma,
        beta=beta,
        outputs={"Y": d.Y, **vars(d.derived)},
    )
