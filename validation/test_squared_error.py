"""Squared error of the batch mean, as loss.h (sum over the K outputs, no factor ½, mean over
the N examples)::

    L  = elements_sum((Y − T) ⊙ (Y − T)) / N
    DY = 2 (Y − T) / N

Proves DY = ∂L/∂Y for symbolic Y and T, and that L is loss.h's (1/N) Σ_n Σ_k (y_kn − t_kn)².
Then ties value and gradient to reference.SquaredError.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from proof_helpers import (
    assert_equal_matrices,
    assert_equal_scalars,
    gradient,
    matrix,
    reference,
    tie_to_reference,
)
from sympy_matrix_operations import elements_sum, hadamard

K, N = 3, 2


@functools.cache
def derivation():
    Y = matrix("y", K, N)
    T = matrix("t", K, N)
    E = Y - T  # (K,N)
    L = elements_sum(hadamard(E, E)) / N
    DY = 2 * (Y - T) / N  # (K,N)
    return SimpleNamespace(Y=Y, T=T, L=L, DY=DY, derived_DY=gradient(L, Y))


def test_squared_error_gradient_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DY, d.derived_DY, "DY")


def test_squared_error_is_the_engine_loss():
    d = derivation()
    per_example = [sum((d.Y[k, n] - d.T[k, n]) ** 2 for k in range(K)) for n in range(N)]  # loss.h
    assert_equal_scalars(d.L, sum(per_example) / N, "L")


def test_reference_squared_error_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(20)
    Y, T = rng.standard_normal((K, N)), rng.standard_normal((K, N))
    tie_to_reference(d, reference.SquaredError(), Y=Y, T=T, outputs={"L": d.L, "DY": d.derived_DY})
