"""Batch normalization per feature (row) over the batch (columns), training mode::

    mu      = rows_sum(X) / N                        R = X − column_repeat(mu, N)
    var     = rows_sum(R ⊙ R) / N  (biased)          inv_std = inv_sqrt(var + eps)
    Z       = R ⊙ column_repeat(inv_std, N)          Y = column_repeat(gamma, N) ⊙ Z + column_repeat(beta, N)

Proves the backward equations of reference.BatchNorm::

    Dbeta  = rows_sum(DY)
    Dgamma = rows_sum(DY ⊙ Z)
    DZ     = column_repeat(gamma, N) ⊙ DY
    DX     = column_repeat(inv_std / N, N) ⊙ (N DZ − column_repeat(rows_sum(DZ), N)
                                              − Z ⊙ column_repeat(rows_sum(DZ ⊙ Z), N))

from L = elements_sum(DY ⊙ Y), with symbolic X, gamma, beta, DY and eps > 0, and in
evaluation mode (running mean m and variance v fixed) DX = column_repeat(gamma ⊙ inv_sqrt(v + eps), N) ⊙ DY.
Then ties the derived gradients to reference.BatchNorm in both modes.
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
from sympy_matrix_operations import column_repeat, elements_sum, hadamard, inv_sqrt, ones, rows_sum

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    gamma = matrix("gamma", D, 1)
    beta = matrix("beta", D, 1)
    eps = scalar("epsilon", positive=True)

    mu = rows_sum(X) / N  # (D,1)
    R = X - column_repeat(mu, N)  # (D,N)
    var = rows_sum(hadamard(R, R)) / N  # (D,1)
    inv_std = inv_sqrt(var + eps * ones(D, 1))  # (D,1)
    Z = hadamard(R, column_repeat(inv_std, N))  # (D,N)
    Y = hadamard(column_repeat(gamma, N), Z) + column_repeat(beta, N)  # (D,N)
    L = elements_sum(hadamard(DY, Y))

    DZ = hadamard(column_repeat(gamma, N), DY)  # (D,N)
    hand = SimpleNamespace(
        Dbeta=rows_sum(DY),
        Dgamma=rows_sum(hadamard(DY, Z)),
        DX=hadamard(
            column_repeat(inv_std / N, N),
            N * DZ
            - column_repeat(rows_sum(DZ), N)
            - hadamard(Z, column_repeat(rows_sum(hadamard(DZ, Z)), N)),
        ),
    )
    derived = SimpleNamespace(Dbeta=gradient(L, beta), Dgamma=gradient(L, gamma), DX=gradient(L, X))
    return SimpleNamespace(
        X=X, DY=DY, gamma=gamma, beta=beta, eps=eps, Y=Y, hand=hand, derived=derived
    )


@functools.cache
def derivation_eval():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    gamma = matrix("gamma", D, 1)
    beta = matrix("beta", D, 1)
    m = matrix("m", D, 1)
    v = matrix("v", D, 1, positive=True)
    eps = scalar("epsilon", positive=True)
    inv_std = inv_sqrt(v + eps * ones(D, 1))  # (D,1)
    Z = hadamard(X - column_repeat(m, N), column_repeat(inv_std, N))  # (D,N)
    Y = hadamard(column_repeat(gamma, N), Z) + column_repeat(beta, N)  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    hand = SimpleNamespace(
        Dbeta=rows_sum(DY),
        Dgamma=rows_sum(hadamard(DY, Z)),
        DX=hadamard(column_repeat(hadamard(gamma, inv_std), N), DY),
    )
    derived = SimpleNamespace(Dbeta=gradient(L, beta), Dgamma=gradient(L, gamma), DX=gradient(L, X))
    return SimpleNamespace(
        X=X, DY=DY, gamma=gamma, beta=beta, m=m, v=v, eps=eps, Y=Y, hand=hand, derived=derived
    )


def test_batch_norm_backward_equations_are_the_derivatives():
    d = derivation()
    for name in ("Dbeta", "Dgamma", "DX"):
        assert_equal_matrices(getattr(d.hand, name), getattr(d.derived, name), name)


def test_batch_norm_eval_mode_backward_equations_are_the_derivatives():
    d = derivation_eval()
    for name in ("Dbeta", "Dgamma", "DX"):
        assert_equal_matrices(getattr(d.hand, name), getattr(d.derived, name), name)


def test_reference_batch_norm_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(12)
    X = rng.standard_normal((D, N)) * 2 + 1
    DY = rng.standard_normal((D, N))
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    eps = 1e-3
    layer = reference.BatchNorm(D, eps=eps)
    layer.gamma[:], layer.beta[:] = gamma, beta
    tie_to_reference(
        d,
        layer,
        X=X,
        DY=DY,
        gamma=gamma,
        beta=beta,
        eps=eps,
        outputs={"Y": d.Y, **vars(d.derived)},
    )


def test_reference_batch_norm_eval_mode_matches_the_derivation():
    d = derivation_eval()
    rng = np.random.default_rng(13)
    X = rng.standard_normal((D, N))
    DY = rng.standard_normal((D, N))
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    m, v = rng.standard_normal(D), rng.uniform(0.5, 2.0, D)
    eps = 1e-5
    layer = reference.BatchNorm(D, eps=eps).eval()
    layer.gamma[:], layer.beta[:] = gamma, beta
    layer.running_mean[:], layer.running_var[:] = m, v
    tie_to_reference(
        d,
        layer,
        X=X,
        DY=DY,
        gamma=gamma,
        beta=beta,
        m=m,
        v=v,
        eps=eps,
        outputs={"Y": d.Y, **vars(d.derived)},
    )
