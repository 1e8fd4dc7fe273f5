"""The vocabulary of matrix operations in SymPy, with the names and meanings of the NumPy
reference's ``truesparse/reference/matrix_operations.py``.

One difference of representation only: SymPy has no 1-D arrays, so a vector of m entries
is an (m,1) column matrix when it indexes rows (``rows_sum`` returns one) and a (1,n) row
matrix when it indexes columns (``columns_sum`` returns one). ``row_repeat`` and
``column_repeat`` take either form. Elementwise functions apply to every entry.

The ReLU family and SReLU are Piecewise expressions; ``Step(x)`` is 1 for x > 0 and 0 for
x <= 0, the engine's convention at the kink.
"""

from __future__ import annotations

import sympy as sp

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
    "row_repeat",
    "rows_max",
    "rows_sum",
    "softmax",
    "sqrt",
    "zeros",
]


def zeros(m: int, n: int = 1) -> sp.Matrix:
    return sp.zeros(m, n)


def ones(m: int, n: int = 1) -> sp.Matrix:
    return sp.ones(m, n)


def identity(n: int) -> sp.Matrix:
    return sp.eye(n)


def _as_row(x) -> sp.Matrix:
    x = sp.Matrix(x)
    return x if x.rows == 1 else x.T


def _as_column(x) -> sp.Matrix:
    x = sp.Matrix(x)
    return x if x.cols == 1 else x.T


def row_repeat(x, m: int) -> sp.Matrix:
    """(m,n) matrix whose every row is x (1,n): 1 x."""
    return ones(m, 1) * _as_row(x)  # (m,n) = (m,1) (1,n)


def column_repeat(x, n: int) -> sp.Matrix:
    """(m,n) matrix whose every column is x (m,1): x 1ᵀ."""
    return _as_column(x) * ones(1, n)  # (m,n) = (m,1) (1,n)


def rows_sum(X: sp.Matrix) -> sp.Matrix:
    """(m,1) sums of the rows of X (m,n): X 1."""
    return X * ones(X.cols, 1)  # (m,1) = (m,n) (n,1)


def columns_sum(X: sp.Matrix) -> sp.Matrix:
    """(1,n) sums of the columns of X (m,n): 1ᵀ X."""
    return ones(1, X.rows) * X  # (1,n) = (1,m) (m,n)


def rows_max(X: sp.Matrix) -> sp.Matrix:
    """(m,1) maximum of each row."""
    return sp.Matrix([[sp.Max(*X.row(i))] for i in range(X.rows)])


def columns_max(X: sp.Matrix) -> sp.Matrix:
    """(1,n) maximum of each column."""
    return sp.Matrix([[sp.Max(*X.col(j)) for j in range(X.cols)]])


def elements_sum(X: sp.Matrix):
    """Sum of all entries: a scalar."""
    return sum(X, sp.Integer(0))


def hadamard(A: sp.Matrix, B: sp.Matrix) -> sp.Matrix:
    """A ⊙ B."""
    assert A.shape == B.shape, f"[hadamard] shapes {A.shape} and {B.shape} differ"
    return A.multiply_elementwise(B)


def diag(X: sp.Matrix) -> sp.Matrix:
    """(n,1) diagonal of the square matrix X (n,n)."""
    return sp.Matrix([X[i, i] for i in range(X.rows)])


def Diag(x) -> sp.Matrix:
    """(n,n) diagonal matrix with the entries of the vector x on its diagonal."""
    return sp.diag(*list(sp.Matrix(x)))


def exp(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(sp.exp)


def log(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(sp.log)


def sqrt(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(sp.sqrt)


def inv_sqrt(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(lambda x: 1 / sp.sqrt(x))


def reciprocal(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(lambda x: 1 / x)


def Relu(X: sp.Matrix) -> sp.Matrix:
    """max(x, 0) elementwise."""
    return X.applyfunc(lambda x: sp.Piecewise((x, x > 0), (0, True)))


def Step(X: sp.Matrix) -> sp.Matrix:
    """1 where x > 0, 0 where x <= 0 (the derivative of Relu, negative side at the kink)."""
    return X.applyfunc(lambda x: sp.Piecewise((1, x > 0), (0, True)))


def Sigmoid(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(lambda x: 1 / (1 + sp.exp(-x)))


def Tanh(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(sp.tanh)


def Softplus(X: sp.Matrix) -> sp.Matrix:
    """log(1 + exp(x)) elementwise."""
    return X.applyfunc(lambda x: sp.log(1 + sp.exp(x)))


def log_sigmoid(X: sp.Matrix) -> sp.Matrix:
    return X.applyfunc(lambda x: sp.log(1 / (1 + sp.exp(-x))))


def softmax(X: sp.Matrix) -> sp.Matrix:
    """Column-wise softmax: exp(X) ⊙ row_repeat(reciprocal(columns_sum(exp(X))), K).

    Written without the column-max shift that the NumPy reference applies for stability;
    test_softmax.py proves the shift leaves the value unchanged."""
    K = X.rows
    E = exp(X)
    return hadamard(E, row_repeat(reciprocal(columns_sum(E)), K))


def log_softmax(X: sp.Matrix) -> sp.Matrix:
    """Column-wise log-softmax: X − row_repeat(log(columns_sum(exp(X))), K)."""
    K = X.rows
    return X - row_repeat(log(columns_sum(exp(X))), K)
