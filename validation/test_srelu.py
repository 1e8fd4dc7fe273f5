"""SReLU (Jin et al. 2016), four trainable scalars tl < tr, al, ar per layer::

    y = tr + ar (x − tr)   for x >= tr
    y = x                  for tl < x < tr
    y = tl + al (x − tl)   for x <= tl

The reference (reference.SReLU) writes it with 0/1 region indicators built from Step:
U = [X >= tr] = 1 − Step(tr − X), Lo = [X <= tl] ⊙ (1 − U), M = 1 − U − Lo, and::

    Y   = U ⊙ (tr + ar (X − tr)) + M ⊙ X + Lo ⊙ (tl + al (X − tl))
    DX  = DY ⊙ (ar U + M + al Lo)
    Dtl = elements_sum(DY ⊙ Lo) (1 − al)      Dal = elements_sum(DY ⊙ Lo ⊙ (X − tl))
    Dtr = elements_sum(DY ⊙ U) (1 − ar)       Dar = elements_sum(DY ⊙ U ⊙ (X − tr))

Proof: the gradients of L = elements_sum(DY ⊙ Y) are derived from the paper's Piecewise
definition, with X, tl, tr, al, ar independent symbols. Each region is then entered by a
substitution with positive symbols p, q, r, s: lower entries x = tl − q, middle entries
x = tl + p, tr = tl + (sum of the middle p) + s, upper entries x = tr + r. This decides
every branch (no Piecewise remains) and the hand-written equations must equal the derived
ones on all-lower, all-middle, all-upper and a mixed matrix holding all three regions.
Then ties the derived gradients to reference.SReLU at a random point.
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
from sympy_matrix_operations import Step, elements_sum, hadamard, ones

D, N = 2, 3
PARAMETERS = ("tl", "al", "tr", "ar")


def srelu_textbook(x, tl, al, tr, ar):
    return sp.Piecewise((tr + ar * (x - tr), x >= tr), (x, x > tl), (tl + al * (x - tl), True))


@functools.cache
def derivation():
    X = matrix("x", D, N)
    DY = matrix("dy", D, N)
    tl, al, tr, ar = (scalar(name) for name in PARAMETERS)
    one = ones(D, N)

    Y = X.applyfunc(lambda x: srelu_textbook(x, tl, al, tr, ar))  # (D,N)
    L = elements_sum(hadamard(DY, Y))
    derived = SimpleNamespace(
        DX=gradient(L, X),
        Dtl=sp.diff(L, tl),
        Dal=sp.diff(L, al),
        Dtr=sp.diff(L, tr),
        Dar=sp.diff(L, ar),
    )

    U = one - Step(tr * one - X)  # [X >= tr]
    Lo = hadamard(one - Step(X - tl * one), one - U)  # [X <= tl]
    M = one - U - Lo  # [tl < X < tr]
    Y_hand = (
        hadamard(U, tr * one + ar * (X - tr * one))
        + hadamard(M, X)
        + hadamard(Lo, tl * one + al * (X - tl * one))
    )
    hand = SimpleNamespace(
        DX=hadamard(DY, ar * U + M + al * Lo),
        Dtl=elements_sum(hadamard(DY, Lo)) * (1 - al),
        Dal=elements_sum(hadamard(DY, hadamard(Lo, X - tl * one))),
        Dtr=elements_sum(hadamard(DY, U)) * (1 - ar),
        Dar=elements_sum(hadamard(DY, hadamard(U, X - tr * one))),
    )
    return SimpleNamespace(
        X=X, DY=DY, tl=tl, al=al, tr=tr, ar=ar, Y=Y, Y_hand=Y_hand, hand=hand, derived=derived
    )


REGIONS = {
    "lower": [["lower"] * N for _ in range(D)],
    "middle": [["middle"] * N for _ in range(D)],
    "upper": [["upper"] * N for _ in range(D)],
    "mixed": [["lower", "middle", "upper"], ["upper", "lower", "middle"]],
}


def region_substitution(d, regions) -> dict:
    """Symbols placing each entry of X in its region (see the module docstring)."""
    positive = {"positive": True}
    p = {(i, j): sp.Symbol(f"p_{i}_{j}", **positive) for i in range(D) for j in range(N)}
    middle_sum = sum(
        (p[i, j] for i in range(D) for j in range(N) if regions[i][j] == "middle"), sp.Integer(0)
    )
    tr = d.tl + middle_sum + sp.Symbol("s", **positive)
    sub = {d.tr: tr}
    for i in range(D):
        for j in range(N):
            region = regions[i][j]
            if region == "lower":
                sub[d.X[i, j]] = d.tl - sp.Symbol(f"q_{i}_{j}", **positive)
            elif region == "middle":
                sub[d.X[i, j]] = d.tl + p[i, j]
            else:
                sub[d.X[i, j]] = tr + sp.Symbol(f"r_{i}_{j}", **positive)
    return sub


@pytest.mark.parametrize("region", list(REGIONS))
def test_srelu_forward_and_backward_on_each_region(region):
    d = derivation()
    sub = region_substitution(d, REGIONS[region])

    def at(expr):
        out = expr.xreplace(sub)
        assert not out.has(sp.Piecewise), f"{region}: a branch is undecided in {out}"
        return out

    assert_equal_matrices(at(d.Y_hand), at(d.Y), f"Y ({region})")
    assert_equal_matrices(at(d.hand.DX), at(d.derived.DX), f"DX ({region})")
    for name in ("Dtl", "Dal", "Dtr", "Dar"):
        assert_equal_scalars(
            at(getattr(d.hand, name)), at(getattr(d.derived, name)), f"{name} ({region})"
        )


def test_reference_srelu_matches_the_derivation():
    d = derivation()
    rng = np.random.default_rng(9)
    tl, al, tr, ar = -0.5, 0.2, 0.8, 0.3
    X = np.array([[-1.5, 0.1, 1.7], [2.2, -0.9, 0.4]])  # all three regions, away from tl, tr
    DY = rng.standard_normal((D, N))
    tie_to_reference(
        d,
        reference.SReLU(tl, al, tr, ar),
        X=X,
        DY=DY,
        tl=tl,
        al=al,
        tr=tr,
        ar=ar,
        outputs={"Y": d.Y, **vars(d.derived)},
    )
