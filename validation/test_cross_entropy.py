"""Cross entropy of probabilities Y (K,N) > 0 against targets T, with label smoothing ε::

    T_ε = (1 − ε) T + ε / K
    L   = −elements_sum(T_ε ⊙ log(Y)) / N
    DY  = −T_ε ⊙ reciprocal(Y) / N

Proves DY = ∂L/∂Y for symbolic Y, T and ε (ε = 0 is plain cross entropy), and that
cross entropy of softmax(Z) has the gradient of the fused softmax cross entropy with
respect to the logits Z. Then ties value and gradient to reference.CrossEntropy.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

from proof_helpers import (
    assert_equal_matrices,
    gradient,
    matrix,
    reference,
    scalar,
    tie_to_reference,
)
from sympy_matrix_operations import (
    columns_sum,
    elements_sum,
    hadamard,
    log,
    ones,
    reciprocal,
    row_repeat,
    softmax,
)

K, N = 3, 2


@functools.cache
def derivation():
    Y = matrix("y", K, N, positive=True)
    T = matrix("t", K, N)
    eps = scalar("epsilon")
    T_eps = (1 - eps) * T + eps / K * ones(K, N)  # (K,N)
    L = -elements_sum(hadamard(T_eps, log(Y))) / N
    DY = -hadamard(T_eps, reciprocal(Y)) / N  # (K,N)
    return SimpleNamespace(Y=Y, T=T, eps=eps, L=L, DY=DY, derived_DY=gradient(L, Y))


def test_cross_entropy_gradient_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DY, d.derived_DY, "DY")


def test_cross_entropy_of_softmax_has_the_fused_gradient():
    Z = matrix("z", K, N)
    T = matrix("t", K, N)
    L = -elements_sum(hadamard(T, log(softmax(Z)))) / N
    fused = (hadamard(softmax(Z), row_repeat(columns_sum(T), K)) - T) / N  # (K,N)
    assert_equal_matrices(fused, gradient(L, Z), "DZ")


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_reference_cross_entropy_matches_the_derivation(eps):
    d = derivation()
    rng = np.random.default_rng(21)
    Y = rng.uniform(0.05, 1.0, (K, N))
    T = reference.one_hot([2, 0], K)
    tie_to_reference(
        d,
        reference.CrossEntropy(label_smoothing=eps),
        Y=Y,
        T=T,
        eps=eps,
        outputs={"L": d.L, "DY": d.derived_DY},
    )
