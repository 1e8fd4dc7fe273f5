"""Leaky ReLU with slope alpha for x <= 0, in the engine's branch-free form (activation.h)::

    Y  = Relu(X) + alpha (X − Relu(X))
    DX = DY ⊙ (Step(X) + alpha (1 − Step(X)))

Proves, on every sign region of X (entries replaced by positive / negative symbols), that
the branch-free forward equals the textbook definition (x for x > 0, alpha x otherwise)
and that DX is the derivative of L = elements_sum(DY ⊙ Y), for a symbolic alpha. Then ties
the derived gradient to reference.LeakyReLU.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import sympy as sp

from proof_helpers import (
    assert_equal_on_sign_regions,
    gradient,
    matrix,
    reference,
    scalar,
    tie_to_reference,
)
from sympy_matrix_operations import Relu, Step, elements_sum, hadamard, ones

D, N = 2, 3


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    alpha = scalar("alpha")
    Y = Relu(X) + alpha * (X - Relu(X))  # (D,N)
    textbook = X.applyfunc(lambda x: sp.Piecewise((x, x > 0), (alpha * x, True)))
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(DY, Step(X) + alpha * (ones(D, N) - Step(X)))  # (D,N)
    return SimpleNamespace(
        X=X, DY=DY, alpha=alpha, Y=Y, textbook=textbook, DX=DX, derived_DX=gradient(L, X)
    )


def test_leaky_relu_forward_is_the_textbook_definition():
    d = derivation()
    assert_equal_on_sign_regions(d.Y, d.textbook, d.X, "Y")


def test_leaky_relu_backward_is_the_derivative_on_every_region():
    d = derivation()
    assert_equal_on_sign_regions(d.DX, d.derived_DX, d.X, "DX")


def test_reference_leaky_relu_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(3)
    X = rng.standard_normal((D, N))
    X[np.abs(X) < 0.1] = -0.5  # away from the kink
    DY = rng.standard_normal((D, N))
    alpha = 0.07
    tie_to_reference(
        d,
        reference.LeakyReLU(alpha),
        X=X,
        DY=DY,
        alpha=alpha,
        outputs={"Y": d.Y, "DX": d.derived_DX},
    )
