"""Mechanics shared by the SymPy proofs in validation/test_*.py.

Each proof file writes its layer's forward equation and hand-written backward equations
with the vocabulary of ``sympy_matrix_operations``; this module supplies what is not
mathematics: symbolic matrices, the symbolic gradient of a scalar, the check that two
matrices are symbolically equal, region substitutions for piecewise functions, and
``tie_to_reference``, which evaluates a proven derivation at a numeric point and compares
it with the NumPy reference (``truesparse.reference``, imported here, by path if the
compiled core is missing) through the reference's own ``testing.assert_close``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import sympy as sp


def _import_reference():
    """truesparse.reference; if the truesparse package does not import (compiled core
    missing or out of date), the same reference package loaded by path: it needs only NumPy."""
    try:
        from truesparse import reference
    except (ImportError, AttributeError):  # compiled core missing, or stale (_core lacks a name)
        path = Path(__file__).resolve().parents[1] / "python" / "truesparse" / "reference"
        name = "_truesparse_reference"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
        reference = importlib.util.module_from_spec(spec)
        sys.modules[name] = reference
        spec.loader.exec_module(reference)
    return reference


reference = _import_reference()


def matrix(name: str, m: int, n: int, **assumptions) -> sp.Matrix:
    """(m,n) matrix of independent symbols name_i_j (real unless other assumptions given)."""
    if not assumptions:
        assumptions = {"real": True}
    return sp.Matrix(m, n, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", **assumptions))


def scalar(name: str, **assumptions) -> sp.Symbol:
    if not assumptions:
        assumptions = {"real": True}
    return sp.Symbol(name, **assumptions)


def gradient(L, X: sp.Matrix) -> sp.Matrix:
    """∂L/∂X: the matrix of the derivatives of the scalar L by every entry of X."""
    return X.applyfunc(lambda x: sp.diff(L, x))


def is_zero(expr) -> bool:
    """Symbolic proof that expr is identically 0: expand, then cancel, then simplify.

    Cheap rewrites are tried first so that large expressions rarely reach simplify; each
    step is an exact symbolic identity, so any of them returning 0 is a proof."""
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if expr.has(sp.Piecewise):
        expr = sp.piecewise_fold(expr)
    for rewrite in (sp.expand, lambda e: sp.cancel(sp.together(e)), sp.simplify):
        expr = rewrite(expr)
        if expr == 0:
            return True
    return False


def assert_equal_matrices(hand: sp.Matrix, derived: sp.Matrix, name: str = "") -> None:
    """Prove hand == derived entry by entry (simplify(hand − derived) == zeros)."""
    hand = sp.Matrix(hand)
    derived = sp.Matrix(derived)
    assert hand.shape == derived.shape, f"{name}: shapes {hand.shape} and {derived.shape}"
    for i in range(hand.rows):
        for j in range(hand.cols):
            difference = hand[i, j] - derived[i, j]
            assert is_zero(difference), (
                f"{name}[{i},{j}]: hand-written {hand[i, j]} differs from derived {derived[i, j]}"
            )


def assert_equal_scalars(hand, derived, name: str = "") -> None:
    assert is_zero(sp.sympify(hand) - sp.sympify(derived)), (
        f"{name}: hand-written {hand} differs from derived {derived}"
    )


def region_substitution(X: sp.Matrix, signs) -> dict:
    """Replace each entry x_i_j of X by a new symbol that is positive (sign +1) or negative
    (sign −1), so that Piecewise functions of X collapse to one branch per entry."""
    out = {}
    for i in range(X.rows):
        for j in range(X.cols):
            kind = {"positive": True} if signs[i][j] > 0 else {"negative": True}
            out[X[i, j]] = sp.Symbol(
                f"{X[i, j].name}_{'pos' if signs[i][j] > 0 else 'neg'}", **kind
            )
    return out


def sign_patterns(m: int, n: int) -> dict:
    """The regions used for the ReLU family: all positive, all negative, and a checkerboard
    (each entry's derivative must depend on its own sign only)."""
    return {
        "positive": [[1] * n for _ in range(m)],
        "negative": [[-1] * n for _ in range(m)],
        "mixed": [[1 if (i + j) % 2 == 0 else -1 for j in range(n)] for i in range(m)],
    }


def bind(symbols, values) -> dict:
    """{symbol: float} pairing a symbolic matrix (or scalar) with a NumPy array (or float)."""
    if isinstance(symbols, sp.MatrixBase):
        values = np.asarray(values, dtype=np.float64).reshape(symbols.shape)
        return {
            symbols[i, j]: float(values[i, j])
            for i in range(symbols.rows)
            for j in range(symbols.cols)
        }
    return {symbols: float(values)}


def evaluate(expr, values: dict) -> np.ndarray:
    """Numeric value of a symbolic matrix or scalar at the point ``values``, as float64."""
    if isinstance(expr, sp.MatrixBase):
        return np.array(expr.xreplace(values).evalf(), dtype=np.float64)
    return np.float64(sp.sympify(expr).xreplace(values).evalf())


def assert_equal_on_sign_regions(hand: sp.Matrix, derived: sp.Matrix, X: sp.Matrix, name: str = ""):
    """Prove hand == derived on every region of ``sign_patterns``: each entry of X replaced
    by a positive or a negative symbol, after which no Piecewise may remain (every branch is
    decided), and the two sides must be symbolically equal."""
    for region, signs in sign_patterns(X.rows, X.cols).items():
        sub = region_substitution(X, signs)
        h = hand.xreplace(sub)
        g = derived.xreplace(sub)
        assert not h.has(sp.Piecewise) and not g.has(sp.Piecewise), f"{name}: {region} undecided"
        assert_equal_matrices(h, g, f"{name} ({region} region)")


# The proofs compare in float64: the reference computes in float64 and SymPy evaluates the
# derivation to float64 precision (reference.testing.assert_close scales ATOL by
# max(1, max|expected|)).
RTOL, ATOL = 1e-10, 1e-12


def _reference_shape(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The symbolic value in the reference's layout: SymPy has no 1-D arrays, so a vector the
    reference returns as (m,) is an (m,1) or (1,n) matrix in the derivation."""
    if actual.ndim == 1 and expected.ndim == 2 and 1 in expected.shape:
        return expected.ravel()
    return expected


def _run(component, values: dict) -> dict:
    """The reference's results at the point: a Layer's forward, backward and parameter
    gradients, or a Loss's value and gradient, by the names of the derivations."""
    if isinstance(component, reference.Layer):
        return {
            "Y": component.forward(values["X"]),
            "DX": component.backward(values["DY"]),
            **component.gradients(),
        }
    if isinstance(component, reference.Loss):
        return {
            "L": component.value(values["Y"], values["T"]),
            "DY": component.gradient(values["Y"], values["T"]),
        }
    raise TypeError(f"{component!r} is neither a reference.Layer nor a reference.Loss")


def tie_to_reference(derivation, component, /, *, outputs: dict, **values) -> dict:
    """Tie a proven derivation to the NumPy reference at one numeric point.

    ``values`` is the point: each keyword names a symbol (or symbolic matrix) of the
    ``derivation`` namespace and gives its NumPy value (``X=X`` binds ``derivation.X``).
    Every free symbol of the compared expressions must be bound. The reference
    ``component`` runs at that point:

    - a ``reference.Layer``: ``Y = forward(X)``, ``DX = backward(DY)`` and its parameter
      gradients ``gradients()`` (``DW``, ``Dgamma``, ...);
    - a ``reference.Loss``: ``L = value(Y, T)`` and ``DY = gradient(Y, T)``.

    ``outputs`` maps every one of these names to the symbolic expression it must equal
    (nothing the reference computes goes unchecked). Each expression is evaluated at the
    point and compared in float64 by ``reference.testing.assert_close`` at ``RTOL`` and
    ``ATOL``. Returns the reference's results, for checks beyond the tie.
    """
    point = {}
    for name, value in values.items():
        assert hasattr(derivation, name), f"the derivation has no symbol {name!r}"
        point.update(bind(getattr(derivation, name), value))
    results = _run(component, values)
    assert set(outputs) == set(results), (
        f"{type(component).__name__} computes {sorted(results)}; outputs names {sorted(outputs)}"
    )
    for name, expr in outputs.items():
        assert isinstance(expr, (sp.Basic, sp.MatrixBase)), f"{name}: not a symbolic expression"
        unbound = expr.free_symbols - set(point)
        assert not unbound, f"{name}: symbols without a value {sorted(map(str, unbound))}"
        actual = np.asarray(results[name])
        expected = _reference_shape(evaluate(expr, point), actual)
        try:
            reference.testing.assert_close(actual, expected, dtype=np.float64, rtol=RTOL, atol=ATOL)
        except AssertionError as error:
            raise AssertionError(
                f"{type(component).__name__} {name} differs from the derivation: {error}"
            ) from None
    return results
