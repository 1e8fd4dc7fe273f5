"""Inverted dropout with a mask M (0/1 entries, M ~ Bernoulli(1 − p)): Y = X ⊙ M / (1 − p).

Proves the backward of reference.Dropout, DX = DY ⊙ M / (1 − p), is the derivative of
L = elements_sum(DY ⊙ Y) for symbolic M and p (the mask is fixed during the pass), and that
E[Y] = X when each entry of M is 1 with probability 1 − p (why the output is scaled).
Then ties the derived gradient to reference.Dropout with an explicit mask, and evaluation
mode (the identity) to the derivation with nothing dropped and no scaling (M = 1, p = 0).
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
    scalar,
    tie_to_reference,
)
from sympy_matrix_operations import elements_sum, hadamard

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    M = matrix("m", D, N)
    p = scalar("p", positive=True)
    Y = hadamard(X, M) / (1 - p)  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(DY, M) / (1 - p)  # (D,N)
    return SimpleNamespace(X=X, DY=DY, M=M, p=p, Y=Y, DX=DX, derived_DX=gradient(L, X))


def test_dropout_backward_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DX, d.derived_DX, "DX")


def test_dropout_output_is_unbiased():
    d = derivation()
    # E[Y] = (1 − p) Y|_{M=1} + p Y|_{M=0}, entry by entry
    expected = (1 - d.p) * d.Y.xreplace({m: 1 for m in d.M}) + d.p * d.Y.xreplace(
        {m: 0 for m in d.M}
    )
    assert_equal_matrices(expected, d.X, "E[Y]")


def test_reference_dropout_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(15)
    X, DY = rng.standard_normal((D, N)), rng.standard_normal((D, N))
    M = np.array([[1, 0, 1], [0, 1, 1]])
    p = 0.25
    layer = reference.Dropout(p, mask=M)
    outputs = {"Y": d.Y, "DX": d.derived_DX}
    tie_to_reference(d, layer, X=X, DY=DY, M=M, p=p, outputs=outputs)
    # evaluation mode is the derivation with nothing dropped and no scaling: the identity
    tie_to_reference(d, layer.eval(), X=X, DY=DY, M=np.ones((D, N)), p=0.0, outputs=outputs)
