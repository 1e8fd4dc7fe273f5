"""Negative log likelihood of log-probabilities Y (K,N) against targets T, label smoothing ε::

    T_ε = (1 − ε) T + ε / K
    L   = −elements_sum(T_ε ⊙ Y) / N
    DY  = −T_ε / N

Proves DY = ∂L/∂Y for symbolic Y, T and ε, and that negative log likelihood after a
log-softmax layer is the fused softmax cross entropy (same value, and the chain through
reference.LogSoftmax's backward gives the fused gradient). Then ties value and gradient to
reference.NegativeLogLikelihood.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

from proof_helpers import (
    assert_equal_matrices,
    assert_equal_scalars,
    gradient,
    matrix,
    reference,
    scalar,
    tie_to_reference,
)
from sympy_matrix_operations import (
    columns_sum,
    elements_sum,
    exp,
    hadamard,
    log,
    log_softmax,
    ones,
    row_repeat,
    softmax,
)

K, N = 3, 2


@functools.cache
def derivation():
    Y = matrix("y", K, N)
    T = matrix("t", K, N)
    eps = scalar("epsilon")
    T_eps = (1 - eps) * T + eps / K * ones(K, N)  # (K,N)
    L = -elements_sum(hadamard(T_eps, Y)) / N
    DY = -T_eps / N  # (K,N)
    return SimpleNamespace(Y=Y, T=T, eps=eps, L=L, DY=DY, derived_DY=gradient(L, Y))


def test_negative_log_likelihood_gradient_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DY, d.derived_DY, "DY")


def test_negative_log_likelihood_after_log_softmax_is_softmax_cross_entropy():
    Z = matrix("z", K, N)
    T = matrix("t", K, N)
    nll = -elements_sum(hadamard(T, log_softmax(Z))) / N
    lse = log(columns_sum(exp(Z)))  # (1,N)
    fused = (elements_sum(hadamard(row_repeat(lse, K), T)) - elements_sum(hadamard(T, Z))) / N
    assert_equal_scalars(nll, fused, "L")
    DY = -T / N  # NLL gradient
    DZ = DY - hadamard(softmax(Z), row_repeat(columns_sum(DY), K))  # LogSoftmax backward
    assert_equal_matrices(DZ, (hadamard(softmax(Z), row_repeat(columns_sum(T), K)) - T) / N, "DZ")
    assert_equal_matrices(DZ, gradient(nll, Z), "DZ")


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_reference_negative_log_likelihood_matches_the_derivation(eps):
    d = derivation()
    rng = np.random.default_rng(22)
    Y = reference.matrix_operations.log_softmax(rng.standard_normal((K, N)))
    T = reference.one_hot([1, 2], K)
    tie_to_reference(
        d,
        reference.NegativeLogLikelihood(label_smoothing=eps),
        Y=Y,
        T=T,
        eps=eps,
        outputs={"L": d.L, "DY": d.derived_DY},
    )
