"""Identity activation: Y = X; proves DX = DY is the derivative of L = elements_sum(DY ⊙ Y),
and ties it to reference.Identity.
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
from sympy_matrix_operations import elements_sum, hadamard

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    Y = X  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    return SimpleNamespace(X=X, DY=DY, Y=Y, DX=DY, derived_DX=gradient(L, X))


def test_identity_backward_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DX, d.derived_DX, "DX")


def test_reference_identity_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(8)
    X = rng.standard_normal((D, N))
    DY = rng.standard_normal((D, N))
    tie_to_reference(d, reference.Identity(), X=X, DY=DY, outputs={"Y": d.Y, "DX": d.derived_DX})
