"""Softmax layer, per column: Y = softmax(X) = exp(X) ⊙ row_repeat(reciprocal(columns_sum(exp(X))), K).

Proves:
- the backward of reference.Softmax, DX = Y ⊙ (DY − row_repeat(columns_sum(Y ⊙ DY), K)),
  is the derivative of L = elements_sum(DY ⊙ Y);
- it is the Jacobian-vector product column by column: DX[:, n] = J_n DY[:, n] with
  J_n = Diag(y_n) − y_n y_nᵀ (symmetric, so Jᵀ v = J v);
- softmax(X + row_repeat(c, K)) = softmax(X) for any row c: subtracting the column maxima,
  as the NumPy reference does for stability, does not change the value.
Then ties the derived gradient to reference.Softmax, also at logits of magnitude 1e3.
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
from sympy_matrix_operations import Diag, columns_sum, elements_sum, hadamard, row_repeat, softmax

K, N = 3, 2


@functools.cache
def derivation():
    X = matrix("x", K, N)
    DY = matrix("dy", K, N)
    Y = softmax(X)  # (K,N)
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(Y, DY - row_repeat(columns_sum(hadamard(Y, DY)), K))  # (K,N)
    return SimpleNamespace(X=X, DY=DY, Y=Y, DX=DX, derived_DX=gradient(L, X))


def test_softmax_backward_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DX, d.derived_DX, "DX")


def test_softmax_backward_is_the_jacobian_vector_product():
    d = derivation()
    for n in range(N):
        y = d.Y[:, n]  # (K,1)
        J = Diag(y) - y * y.T  # (K,K) = (K,K) − (K,1) (1,K)
        assert_equal_matrices(d.DX[:, n], J * d.DY[:, n], f"DX[:, {n}]")  # (K,1) = (K,K) (K,1)


def test_softmax_is_invariant_to_a_shift_of_each_column():
    d = derivation()
    c = matrix("c", 1, N)
    assert_equal_matrices(softmax(d.X + row_repeat(c, K)), d.Y, "softmax(X + 1 c)")


def test_reference_softmax_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(10)
    DY = rng.standard_normal((K, N))
    for scale in (1.0, 1e3):
        X = rng.standard_normal((K, N)) * scale
        tie_to_reference(d, reference.Softmax(), X=X, DY=DY, outputs={"Y": d.Y, "DX": d.derived_DX})
