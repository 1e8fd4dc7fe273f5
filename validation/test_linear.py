"""Linear layer, sparse through a pattern P: Y = (W ⊙ P) X + column_repeat(b, N).

Proves the backward equations of reference.Linear (and of linear.h)::

    DW = (DY Xᵀ) ⊙ P      Db = rows_sum(DY)      DX = (W ⊙ P)ᵀ DY

from L = elements_sum(DY ⊙ Y) with a symbolic DY. P has symbolic entries, so the proof
holds for every pattern (dense: P = ones). Then evaluates the derived gradients at a random
point and compares them with reference.Linear.
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

D, K, N = 3, 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    W = matrix("w", K, D)
    P = matrix("p", K, D)
    b = matrix("b", K, 1)
    DY = matrix("dy", K, N)

    Y = hadamard(W, P) * X + column_repeat(b, N)  # (K,N) = (K,D) (D,N) + (K,N)
    L = elements_sum(hadamard(DY, Y))

    hand = SimpleNamespace(
        DW=hadamard(DY * X.T, P),  # (K,D) = (K,N) (N,D)
        Db=rows_sum(DY),  # (K,1)
        DX=hadamard(W, P).T * DY,  # (D,N) = (D,K) (K,N)
    )
    derived = SimpleNamespace(DW=gradient(L, W), Db=gradient(L, b), DX=gradient(L, X))
    return SimpleNamespace(X=X, W=W, P=P, b=b, DY=DY, Y=Y, hand=hand, derived=derived)


def test_linear_backward_equations_are_the_derivatives():
    d = derivation()
    for name in ("DW", "Db", "DX"):
        assert_equal_matrices(getattr(d.hand, name), getattr(d.derived, name), name)


def test_reference_linear_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(1)
    X, W, b, DY = (rng.standard_normal(s) for s in ((D, N), (K, D), (K,), (K, N)))
    for pattern in (None, np.array([[1, 0, 1], [0, 1, 1]])):
        P = np.ones((K, D)) if pattern is None else pattern
        tie_to_reference(
            d,
            reference.Linear(W, b, pattern=pattern),
            X=X,
            W=W,
            P=P,
            b=b,
            DY=DY,
            outputs={"Y": d.Y, **vars(d.derived)},
        )
