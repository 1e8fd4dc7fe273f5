"""Log-softmax layer, per column: Y = log_softmax(X) = X − row_repeat(log(columns_sum(exp(X))), K).

Proves:
- the backward of reference.LogSoftmax, DX = DY − softmax(X) ⊙ row_repeat(columns_sum(DY), K),
  is the derivative of L = elements_sum(DY ⊙ Y);
- it is the Jacobian-vector product column by column: DX[:, n] = J_nᵀ DY[:, n] with
  J_n = ∂y_n/∂x_n = I − 1 softmax(x_n)ᵀ;
- log_softmax(X + row_repeat(c, K)) = log_softmax(X) for any row c (the stable form with the
  column maxima subtracted has the same value).
Then ties the derived gradient to reference.LogSoftmax, also at logits of magnitude 1e3.
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
from sympy_matrix_operations import (
    columns_sum,
    elements_sum,
    hadamard,
    identity,
    log_softmax,
    ones,
    row_repeat,
    softmax,
)

K, N = 3, 2


@functools.cache
def derivation():
    X = matrix("x", K, N)
    DY = matrix("dy", K, N)
    Y = log_softmax(X)  # (K,N)
    L = elements_sum(hadamard(DY, Y))
    DX = DY - hadamard(softmax(X), row_repeat(columns_sum(DY), K))  # (K,N)
    return SimpleNamespace(X=X, DY=DY, Y=Y, DX=DX, derived_DX=gradient(L, X))


def test_log_softmax_backward_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DX, d.derived_DX, "DX")


def test_log_softmax_backward_is_the_jacobian_vector_product():
    d = derivation()
    S = softmax(d.X)
    for n in range(N):
        J = identity(K) - ones(K, 1) * S[:, n].T  # (K,K) = (K,K) − (K,1) (1,K)
        assert_equal_matrices(d.DX[:, n], J.T * d.DY[:, n], f"DX[:, {n}]")  # (K,1) = (K,K) (K,1)


def test_log_softmax_is_invariant_to_a_shift_of_each_column():
    d = derivation()
    c = matrix("c", 1, N)
    assert_equal_matrices(log_softmax(d.X + row_repeat(c, K)), d.Y, "log_softmax(X + 1 c)")


def test_reference_log_softmax_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(11)
    DY = rng.standard_normal((K, N))
    for scale in (1.0, 1e3):
        X = rng.standard_normal((K, N)) * scale
        tie_to_reference(
            d,
            reference.LogSoftmax(),
            X=X,
            DY=DY,
            outputs={"Y": d.Y, "DX": d.derived_DX},
        )
