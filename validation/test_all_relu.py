"""All-ReLU (Curci et al. 2021): a leaky ReLU whose negative slope alternates in sign between
hidden layers, as ``activation::negative_slope`` in activation.h::

    s  = +alpha if layer is odd else −alpha          (layer counted from 1)
    Y  = Relu(X) + s (X − Relu(X))
    DX = DY ⊙ (Step(X) + s (1 − Step(X)))

Proves, for layers 1 to 4 and a symbolic alpha, on every sign region of X, that the forward
is x for x > 0 and s x otherwise and that DX is the derivative of L = elements_sum(DY ⊙ Y).
Then ties the derived gradient to reference.AllReLU for odd and even layers.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
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


def negative_slope(alpha, layer: int):
    """The sign rule of activation.h: +alpha on odd layers, −alpha on even layers."""
    return alpha if layer % 2 == 1 else -alpha


@functools.cache
def derivation(layer: int):
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    alpha = scalar("alpha", positive=True)
    s = negative_slope(alpha, layer)
    Y = Relu(X) + s * (X - Relu(X))  # (D,N)
    # Curci et al.: x for x > 0; alpha x (odd layers) or −alpha x (even layers) otherwise
    sign = 1 if layer % 2 == 1 else -1
    textbook = X.applyfunc(lambda x: sp.Piecewise((x, x > 0), (sign * alpha * x, True)))
    L = elements_sum(hadamard(DY, Y))
    DX = hadamard(DY, Step(X) + s * (ones(D, N) - Step(X)))  # (D,N)
    return SimpleNamespace(
        X=X, DY=DY, alpha=alpha, Y=Y, textbook=textbook, DX=DX, derived_DX=gradient(L, X)
    )


@pytest.mark.parametrize("layer", [1, 2, 3, 4])
def test_all_relu_forward_and_backward_on_every_region(layer):
    d = derivation(layer)
    assert_equal_on_sign_regions(d.Y, d.textbook, d.X, "Y")
    assert_equal_on_sign_regions(d.DX, d.derived_DX, d.X, "DX")


@pytest.mark.parametrize("layer", [1, 2])
def test_reference_all_relu_matches_the_derivation(layer):
    d = derivation(layer)
    rng = np.random.default_rng(4 + layer)
    X = rng.standard_normal((D, N))
    X[np.abs(X) < 0.1] = -0.5  # away from the kink
    DY = rng.standard_normal((D, N))
    alpha = 0.3
    tie_to_reference(
        d,
        reference.AllReLU(alpha, layer),
        X=X,
        DY=DY,
        alpha=alpha,
        outputs={"Y": d.Y, "DX": d.derived_DX},
    )
