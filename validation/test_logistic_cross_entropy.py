"""Logistic (binary) cross entropy on logits Y (K,N), per element, sum over outputs, mean
over examples, in the stable softplus form of reference.LogisticCrossEntropy::

    L  = elements_sum(Softplus(Y) − T ⊙ Y) / N
    DY = (Sigmoid(Y) − T) / N

Proves DY = ∂L/∂Y for symbolic Y and T, and that the softplus form equals the textbook
−[t log σ(y) + (1 − t) log(1 − σ(y))] per element: the difference has derivative 0 in y
and t and is 0 at y = 0, so it is 0 everywhere. Then ties value and gradient to
reference.LogisticCrossEntropy, also at logits of magnitude 1e3 (where the textbook form
would overflow or take log 0 in floating point).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import sympy as sp

from proof_helpers import (
    assert_equal_matrices,
    gradient,
    is_zero,
    matrix,
    reference,
    tie_to_reference,
)
from sympy_matrix_operations import Sigmoid, Softplus, elements_sum, hadamard

K, N = 2, 3


@functools.cache
def derivation():
    Y = matrix("y", K, N)
    T = matrix("t", K, N)
    L = elements_sum(Softplus(Y) - hadamard(T, Y)) / N
    DY = (Sigmoid(Y) - T) / N  # (K,N)
    return SimpleNamespace(Y=Y, T=T, L=L, DY=DY, derived_DY=gradient(L, Y))


def test_logistic_cross_entropy_gradient_is_the_derivative():
    d = derivation()
    assert_equal_matrices(d.DY, d.derived_DY, "DY")


def test_softplus_form_is_the_binary_cross_entropy():
    y, t = sp.symbols("y t", real=True)
    sigma = 1 / (1 + sp.exp(-y))
    textbook = -(t * sp.log(sigma) + (1 - t) * sp.log(1 - sigma))
    softplus = sp.log(1 + sp.exp(y)) - t * y
    difference = textbook - softplus
    assert is_zero(sp.diff(difference, y))
    assert is_zero(sp.diff(difference, t))
    assert is_zero(difference.subs(y, 0))


def test_reference_logistic_cross_entropy_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(23)
    T = rng.uniform(0, 1, (K, N))
    loss = reference.LogisticCrossEntropy()
    for scale in (1.0, 1e3):
        Y = rng.standard_normal((K, N)) * scale
        tie_to_reference(d, loss, Y=Y, T=T, outputs={"L": d.L, "DY": d.derived_DY})
