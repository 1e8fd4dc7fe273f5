"""The vocabulary of matrix operations of the NumPy reference.

The same names, with the same meaning, are defined in SymPy in
``validation/sympy_matrix_operations.py`` and (where the engine needs them) in C++ in
``cpp/include/truesparse/matrix.h``, so that a layer's equations read alike in all three.

Conventions: matrices are 2-D float64 arrays; vectors are 1-D arrays. ``rows_sum`` of an
(m, n) matrix is a vector of m entries (one per row), ``columns_sum`` a vector of n entries
(one per column). ``row_repeat`` stacks a row vector m times, ``column_repeat`` places a
column vector side by side n times. Elementwise functions (``exp``, ``Relu``, ``Step``, ...)
apply to every entry. Batches are feature-major: one example per column.

``round_to_bfloat16`` has no SymPy twin: it is no equation but the rounding of the operands
that the engine's sparse products gather with ``operand_dtype="bfloat16"``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Diag",
    "Relu",
    "Sigmoid",
    "Softplus",
    "Step",
    "Tanh",
    "column_repeat",
    "columns_max",
    "columns_sum",
    "diag",
    "elements_sum",
    "exp",
    "hadamard",
    "identity",
    "inv_sqrt",
    "log",
    "log_sigmoid",
    "log_softmax",
    "ones",
    "reciprocal",
    "round_to_bfloat16",
    "row_repeat",
    "rows_max",
    "rows_sum",
    "softmax",
    "sqrt",
    "zeros",
]


def zeros(m: int, n: int = 1) -> np.ndarray:
    """(m,n) matrix of zeros."""
    return np.zeros((m, n))


def ones(m: int, n: int = 1) -> np.ndarray:
    """(m,n) matrix of ones."""
    return np.ones((m, n))


def identity(n: int) -> np.ndarray:
    """(n,n) identity matrix."""
    return np.eye(n)


def row_repeat(x, m: int) -> np.ndarray:
    """(m,n) matrix whose every row is x; x is (1,n) or (n,). Equals 1 xᵀ."""
    x = np.asarray(x, dtype=float).reshape(1, -1)
    return np.repeat(x, m, axis=0)


def column_repeat(x, n: int) -> np.ndarray:
    """(m,n) matrix whose every column is x; x is (m,1) or (m,). Equals x 1ᵀ."""
    x = np.asarray(x, dtype=float).reshape(-1, 1)
    return np.repeat(x, n, axis=1)


def rows_sum(X) -> np.ndarray:
    """(m,) sums of the rows of X (m,n): X 1."""
    return np.sum(X, axis=1)


def columns_sum(X) -> np.ndarray:
    """(n,) sums of the columns of X (m,n): 1ᵀ X."""
    return np.sum(X, axis=0)


def rows_max(X) -> np.ndarray:
    """(m,) maximum of each row of X (m,n)."""
    return np.max(X, axis=1)


def columns_max(X) -> np.ndarray:
    """(n,) maximum of each column of X (m,n)."""
    return np.max(X, axis=0)


def elements_sum(X) -> float:
    """Sum of all entries of X."""
    return float(np.sum(X))


def hadamard(A, B) -> np.ndarray:
    """A ⊙ B, the elementwise product of two matrices of the same shape."""
    A = np.asarray(A)
    B = np.asarray(B)
    assert A.shape == B.shape, f"[hadamard] shapes {A.shape} and {B.shape} differ"
    return A * B


def diag(X) -> np.ndarray:
    """(n,) diagonal of the square matrix X (n,n)."""
    return np.diagonal(np.asarray(X)).copy()


def Diag(x) -> np.ndarray:
    """(n,n) diagonal matrix with the vector x (n,) on its diagonal."""
    return np.diag(np.asarray(x, dtype=float).ravel())


def exp(X) -> np.ndarray:
    return np.exp(X)


def log(X) -> np.ndarray:
    return np.log(X)


def sqrt(X) -> np.ndarray:
    return np.sqrt(X)


def inv_sqrt(X) -> np.ndarray:
    """1 / sqrt(x) elementwise."""
    return 1.0 / np.sqrt(X)


def reciprocal(X) -> np.ndarray:
    """1 / x elementwise."""
    return 1.0 / np.asarray(X, dtype=float)


def Relu(X) -> np.ndarray:
    """max(x, 0) elementwise."""
    return np.maximum(X, 0.0)


def Step(X) -> np.ndarray:
    """Heaviside-like step, 1 where x > 0 and 0 where x <= 0: the derivative of Relu with the
    engine's convention at the kink (the negative side)."""
    return np.where(np.asarray(X) > 0, 1.0, 0.0)


def Sigmoid(X) -> np.ndarray:
    """1 / (1 + exp(-x)) elementwise, evaluated without overflow for large |x|."""
    X = np.asarray(X, dtype=float)
    E = np.exp(-np.abs(X))  # in (0, 1]: never overflows
    return np.where(X >= 0, 1.0 / (1.0 + E), E / (1.0 + E))


def Tanh(X) -> np.ndarray:
    return np.tanh(X)


def Softplus(X) -> np.ndarray:
    """log(1 + exp(x)) elementwise, stable: max(x, 0) + log1p(exp(-|x|))."""
    X = np.asarray(X, dtype=float)
    return np.maximum(X, 0.0) + np.log1p(np.exp(-np.abs(X)))


def log_sigmoid(X) -> np.ndarray:
    """log(sigmoid(x)) = -softplus(-x) elementwise, stable."""
    return -Softplus(-np.asarray(X, dtype=float))


def softmax(X) -> np.ndarray:
    """Column-wise softmax of X (K,N): exp(X) / row_repeat(columns_sum(exp(X)), K).

    The column maxima are subtracted first (softmax is unchanged by a shift of each column,
    proven in validation/test_softmax.py), so every exp argument is <= 0.
    """
    X = np.asarray(X, dtype=float)
    K = X.shape[0]
    E = exp(X - row_repeat(columns_max(X), K))  # (K,N)
    return hadamard(E, row_repeat(reciprocal(columns_sum(E)), K))


def log_softmax(X) -> np.ndarray:
    """Column-wise log-softmax of X (K,N): X - row_repeat(log(columns_sum(exp(X))), K),
    with the log-sum-exp evaluated stably (column maxima subtracted)."""
    X = np.asarray(X, dtype=float)
    K = X.shape[0]
    m = columns_max(X)  # (N,)
    lse = m + log(columns_sum(exp(X - row_repeat(m, K))))  # (N,)
    return X - row_repeat(lse, K)


def round_to_bfloat16(A) -> np.ndarray:
    """A rounded to float32 and then to bfloat16, round to nearest even, as a float64 array.

    bfloat16 is the upper 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa bits), so
    a float32 with bits u rounds to the multiple of 2^16 nearest to u, ties to the one whose
    bit 16 (the last mantissa bit kept) is 0::

        u = bits(float32(a))                                  # uint32
        round(a) = float32((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000)

    Adding to the bits carries into the exponent where the mantissa overflows, so the rounding
    is right across binades, for subnormals, and past the largest bfloat16 (which rounds to
    ±inf, as IEEE round to nearest even does); ±inf stay. NaN stays NaN (its bits are not
    rounded: a NaN payload in the low bits alone would otherwise round to inf).
    """
    with np.errstate(over="ignore"):  # float64 beyond the float32 range becomes ±inf
        F = np.array(A, dtype=np.float32, order="C", copy=True)
    nan = np.isnan(F)
    F[nan] = 0.0
    u = F.view(np.uint32)
    # the sum does not wrap around: without NaNs, u <= 0xFF800000 (-inf)
    u += np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    u &= np.uint32(0xFFFF0000)
    F[nan] = np.nan
    return F.astype(np.float64)
