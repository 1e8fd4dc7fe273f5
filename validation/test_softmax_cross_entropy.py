"""Fused softmax cross entropy on logits Y (K,N), targets T (one-hot or soft), label
smoothing ε (T_ε = (1 − ε) T + ε / K)::

    L  = −elements_sum(T_ε ⊙ log_softmax(Y)) / N
    DY = (softmax(Y) ⊙ row_repeat(columns_sum(T_ε), K) − T_ε) / N

Proves, for symbolic Y, T and ε:
- DY = ∂L/∂Y;
- for one-hot T (labels y_n): DY = (softmax(Y) − T_ε) / N, and L is loss.h's
  (1/N) Σ_n (lse_n − Y[y_n, n]) with lse_n = log Σ_k exp(Y[k, n]) when ε = 0;
- the stable form: lse_n = m_n + log Σ_k exp(Y[k, n] − m_n) for any shift m_n (the engine
  and the reference use the column maximum), so L is unchanged.
Then ties value and gradient to reference.SoftmaxCrossEntropy, including logits of
magnitude 1e4, evaluated exactly by SymPy.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp

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
LABELS = (2, 0)


@functools.cache
def derivation():
    Y = matrix("y", K, N)
    T = matrix("t", K, N)
    eps = scalar("epsilon")
    T_eps = (1 - eps) * T + eps / K * ones(K, N)  # (K,N)
    L = -elements_sum(hadamard(T_eps, log_softmax(Y))) / N
    DY = (hadamard(softmax(Y), row_repeat(columns_sum(T_eps), K)) - T_eps) / N  # (K,N)
    return SimpleNamespace(Y=Y, T=T, eps=eps, T_eps=T_eps, L=L, DY=DY, derived_DY=gradient(L, Y))


def one_hot_substitution(d) -> dict:
    return {d.T[k, n]: int(k == LABELS[n]) for k in range(K) for n in range(N)}


def test_softmax_cross_entropy_gradient_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DY, d.derived_DY, "DY")


def test_one_hot_gradient_is_softmax_minus_targets():
    d = derivation()
    sub = one_hot_substitution(d)
    assert_equal_matrices(
        (softmax(d.Y) - d.T_eps.xreplace(sub)) / N, d.derived_DY.xreplace(sub), "DY"
    )


def test_one_hot_loss_is_the_engine_loss():
    d = derivation()
    sub = {**one_hot_substitution(d), d.eps: 0}
    engine = (
        sum(sp.log(sum(sp.exp(d.Y[k, n]) for k in range(K))) - d.Y[LABELS[n], n] for n in range(N))
        / N
    )
    assert_equal_scalars(d.L.xreplace(sub), engine, "L")


def test_log_sum_exp_is_invariant_to_the_subtracted_maximum():
    d = derivation()
    m = matrix("m", 1, N)
    lse = log(columns_sum(exp(d.Y)))  # (1,N)
    shifted = m + log(columns_sum(exp(d.Y - row_repeat(m, K))))  # (1,N)
    assert_equal_matrices(shifted, lse, "lse")


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_reference_softmax_cross_entropy_matches_the_derivation(eps, scale):
    d = derivation()
    rng = np.random.default_rng(24)
    Y = rng.standard_normal((K, N)) * scale
    loss = reference.SoftmaxCrossEntropy(label_smoothing=eps)
    outputs = {"L": d.L, "DY": d.derived_DY}
    T = reference.one_hot(LABELS, K)
    results = tie_to_reference(d, loss, Y=Y, T=T, eps=eps, outputs=outputs)
    assert np.isfinite(results["L"])
    soft = rng.uniform(0, 1, (K, N))  # soft targets, columns not summing to 1
    tie_to_reference(d, loss, Y=Y, T=soft, eps=eps, outputs=outputs)
