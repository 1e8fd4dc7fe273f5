"""NumPy reference layers: linear, softmax, log-softmax, batch norm, affine, dropout.

Batch matrix form, feature-major (one example per column): a layer maps X (D,N) to Y (K,N).
Each layer is a class with explicit buffers and two verbs, ``forward(X) -> Y`` and
``backward(DY) -> DX``; ``backward`` also stores the parameter gradients as attributes
(``DW``, ``Db``, ...). The equations are those proven in ``validation/test_<name>.py`` and
derived in ``docs/backprop.md`` and ``docs/layers/<name>.md``; the activations are in
``activations.py``.
Computations are in float64 whatever the dtype of the inputs.
"""

from __future__ import annotations

import numpy as np

from .matrix_operations import (
    column_repeat,
    columns_sum,
    exp,
    hadamard,
    inv_sqrt,
    log_softmax,
    round_to_bfloat16,
    row_repeat,
    rows_sum,
    softmax,
)

__all__ = ["Affine", "BatchNorm", "Dropout", "Layer", "Linear", "LogSoftmax", "Softmax"]


def _matrix(X, name: str, op: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"[{op}] {name} must be a 2-D (features, N) array, got shape {X.shape}")
    return X


class Layer:
    """Base class: a training flag and the two verbs.

    ``parameters()`` and ``gradients()`` return dicts name -> array (the same names, the
    gradient prefixed with D), so an optimizer can walk them.
    """

    training: bool = True

    def forward(self, X) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, DY) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def train(self) -> Layer:
        self.training = True
        return self

    def eval(self) -> Layer:
        self.training = False
        return self

    def parameters(self) -> dict:
        return {}

    def gradients(self) -> dict:
        return {"D" + name: getattr(self, "D" + name) for name in self.parameters()}


class Linear(Layer):
    """Y = W X + b 1ᵀ, sparse when a 0/1 ``pattern`` of W's shape is given.

    Sparse: the effective weights are W ⊙ pattern (dense weights times a 0/1 pattern stand
    in for the engine's CSR matrix), and DW is zero off the pattern::

        Y  = (W ⊙ P) X + column_repeat(b, N)     # (K,N) = (K,D) (D,N) + (K,N)
        DW = (DY Xᵀ) ⊙ P                         # (K,D) = (K,N) (N,D)
        Db = rows_sum(DY)                        # (K,)
        DX = (W ⊙ P)ᵀ DY                         # (D,N) = (D,K) (K,N)

    ``operand_dtype="bfloat16"`` is the engine's option of that name for its sparse layers:
    the dense operands of the sparse products, X in the forward and in DW, DY in DX and in DW,
    are rounded to bfloat16 (``round_to_bfloat16``, round to nearest even); the weights, the
    sums and Db are not::

        Xr = round_to_bfloat16(X)                # (D,N)
        DYr = round_to_bfloat16(DY)              # (K,N)
        Y  = (W ⊙ P) Xr + column_repeat(b, N)    # (K,N) = (K,D) (D,N) + (K,N)
        DW = (DYr Xrᵀ) ⊙ P                       # (K,D) = (K,N) (N,D)
        Db = rows_sum(DY)                        # (K,)
        DX = (W ⊙ P)ᵀ DYr                        # (D,N) = (D,K) (K,N)
    """

    OPERAND_DTYPES = ("float32", "bfloat16")

    def __init__(self, W, b, pattern=None, *, operand_dtype: str = "float32"):
        if not isinstance(operand_dtype, str) or operand_dtype not in self.OPERAND_DTYPES:
            raise ValueError(
                f"[Linear] operand_dtype must be one of {list(self.OPERAND_DTYPES)}, "
                f"got {operand_dtype!r}"
            )
        self.operand_dtype = operand_dtype
        self.W = np.array(W, dtype=np.float64)  # (K,D)
        self.b = np.array(b, dtype=np.float64).reshape(-1)  # (K,)
        K, D = self.W.shape
        if self.b.shape != (K,):
            raise ValueError(f"[Linear] b has shape {self.b.shape} but W is ({K}, {D})")
        if pattern is None:
            self.pattern = None
        else:
            self.pattern = np.asarray(pattern).astype(np.float64)  # (K,D) of 0/1
            if self.pattern.shape != (K, D):
                raise ValueError(
                    f"[Linear] pattern has shape {self.pattern.shape} but W is ({K}, {D})"
                )
            if not np.all((self.pattern == 0) | (self.pattern == 1)):
                raise ValueError("[Linear] pattern must contain only 0 and 1")
        self.X = None  # (D,N) input (rounded with bfloat16 operands), kept for DW
        self.DW = np.zeros_like(self.W)  # (K,D)
        self.Db = np.zeros_like(self.b)  # (K,)

    def parameters(self) -> dict:
        return {"W": self.W, "b": self.b}

    def effective_weights(self) -> np.ndarray:
        """W ⊙ pattern (K,D), or W for a dense layer."""
        return self.W if self.pattern is None else hadamard(self.W, self.pattern)

    def forward(self, X) -> np.ndarray:
        X = _matrix(X, "X", "Linear.forward")
        D = self.W.shape[1]
        if X.shape[0] != D:
            raise ValueError(
                f"[Linear.forward] X has {X.shape[0]} rows but the layer has {D} inputs"
            )
        N = X.shape[1]
        X = self.operand(X)  # (D,N)
        self.X = X
        W = self.effective_weights()  # (K,D)
        return W @ X + column_repeat(self.b, N)  # (K,N) = (K,D) (D,N) + (K,N)

    def backward(self, DY) -> np.ndarray:
        DY = _matrix(DY, "DY", "Linear.backward")
        DYr = self.operand(DY)  # (K,N)
        DW = DYr @ self.X.T  # (K,D) = (K,N) (N,D)
        self.DW = DW if self.pattern is None else hadamard(DW, self.pattern)
        self.Db = rows_sum(DY)  # (K,)
        W = self.effective_weights()  # (K,D)
        return W.T @ DYr  # (D,N) = (D,K) (K,N)

    def operand(self, A) -> np.ndarray:
        """A gathered operand as the products compute with it: A, or round_to_bfloat16(A)."""
        return round_to_bfloat16(A) if self.operand_dtype == "bfloat16" else A


class Softmax(Layer):
    """Column-wise softmax, Y = softmax(X); backward is the Jacobian-vector product::

    DX = Y ⊙ (DY − row_repeat(columns_sum(Y ⊙ DY), K))     # (K,N)
    """

    def __init__(self):
        self.Y = None  # (K,N) output, kept for backward

    def forward(self, X) -> np.ndarray:
        self.Y = softmax(_matrix(X, "X", "Softmax.forward"))
        return self.Y

    def backward(self, DY) -> np.ndarray:
        Y = self.Y
        K = Y.shape[0]
        return hadamard(Y, DY - row_repeat(columns_sum(hadamard(Y, DY)), K))


class LogSoftmax(Layer):
    """Column-wise log-softmax, Y = X − row_repeat(log(columns_sum(exp(X))), K); backward::

    DX = DY − softmax(X) ⊙ row_repeat(columns_sum(DY), K)   # (K,N)
    """

    def __init__(self):
        self.Y = None  # (K,N) output; softmax(X) = exp(Y)

    def forward(self, X) -> np.ndarray:
        self.Y = log_softmax(_matrix(X, "X", "LogSoftmax.forward"))
        return self.Y

    def backward(self, DY) -> np.ndarray:
        K = self.Y.shape[0]
        return DY - hadamard(exp(self.Y), row_repeat(columns_sum(DY), K))


class Affine(Layer):
    """Per-feature scale and shift, the learnable part of batch norm::

    Y      = column_repeat(gamma, N) ⊙ X + column_repeat(beta, N)   # (D,N)
    DX     = column_repeat(gamma, N) ⊙ DY                           # (D,N)
    Dgamma = rows_sum(DY ⊙ X)                                       # (D,)
    Dbeta  = rows_sum(DY)                                           # (D,)
    """

    def __init__(self, gamma, beta):
        self.gamma = np.array(gamma, dtype=np.float64).reshape(-1)  # (D,)
        self.beta = np.array(beta, dtype=np.float64).reshape(-1)  # (D,)
        if self.gamma.shape != self.beta.shape:
            raise ValueError(f"[Affine] gamma {self.gamma.shape} and beta {self.beta.shape} differ")
        self.X = None
        self.Dgamma = np.zeros_like(self.gamma)
        self.Dbeta = np.zeros_like(self.beta)

    def parameters(self) -> dict:
        return {"gamma": self.gamma, "beta": self.beta}

    def forward(self, X) -> np.ndarray:
        X = _matrix(X, "X", "Affine.forward")
        N = X.shape[1]
        self.X = X
        return hadamard(column_repeat(self.gamma, N), X) + column_repeat(self.beta, N)

    def backward(self, DY) -> np.ndarray:
        N = DY.shape[1]
        self.Dgamma = rows_sum(hadamard(DY, self.X))
        self.Dbeta = rows_sum(DY)
        return hadamard(column_repeat(self.gamma, N), DY)


class BatchNorm(Layer):
    """Batch normalization per feature (row) over the batch (columns), PyTorch semantics.

    Training mode::

        mu      = rows_sum(X) / N                                   # (D,)
        R       = X − column_repeat(mu, N)                          # (D,N)
        var     = rows_sum(R ⊙ R) / N                               # (D,) biased
        inv_std = inv_sqrt(var + eps)                               # (D,)
        Z       = R ⊙ column_repeat(inv_std, N)                     # (D,N)
        Y       = column_repeat(gamma, N) ⊙ Z + column_repeat(beta, N)

        Dbeta   = rows_sum(DY)
        Dgamma  = rows_sum(DY ⊙ Z)
        DZ      = column_repeat(gamma, N) ⊙ DY
        DX      = column_repeat(inv_std / N, N) ⊙
                  (N DZ − column_repeat(rows_sum(DZ), N) − Z ⊙ column_repeat(rows_sum(DZ ⊙ Z), N))

    and the running statistics are updated as in ``torch.nn.BatchNorm1d``::

        running_mean = (1 − momentum) running_mean + momentum mu
        running_var  = (1 − momentum) running_var  + momentum var · N / (N − 1)   # unbiased

    Evaluation mode normalizes with the running statistics (a fixed affine map)::

        inv_std = inv_sqrt(running_var + eps);  Z = (X − column_repeat(running_mean, N)) ⊙ column_repeat(inv_std, N)
        DX      = column_repeat(gamma ⊙ inv_std, N) ⊙ DY
    """

    def __init__(self, D: int, momentum: float = 0.1, eps: float = 1e-5):
        self.D = int(D)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.gamma = np.ones(self.D)  # (D,)
        self.beta = np.zeros(self.D)  # (D,)
        self.running_mean = np.zeros(self.D)  # (D,)
        self.running_var = np.ones(self.D)  # (D,)
        self.Dgamma = np.zeros(self.D)
        self.Dbeta = np.zeros(self.D)
        self.Z = None  # (D,N) normalized input
        self.inv_std = None  # (D,)

    def parameters(self) -> dict:
        return {"gamma": self.gamma, "beta": self.beta}

    def forward(self, X) -> np.ndarray:
        X = _matrix(X, "X", "BatchNorm.forward")
        D, N = X.shape
        if D != self.D:
            raise ValueError(
                f"[BatchNorm.forward] X has {D} rows but the layer has {self.D} features"
            )
        if self.training:
            if N < 2:
                raise ValueError("[BatchNorm.forward] training needs more than 1 example per batch")
            mu = rows_sum(X) / N  # (D,)
            R = X - column_repeat(mu, N)  # (D,N)
            var = rows_sum(hadamard(R, R)) / N  # (D,)
            self.inv_std = inv_sqrt(var + self.eps)  # (D,)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mu
            self.running_var = (1 - m) * self.running_var + m * var * N / (N - 1)
        else:
            R = X - column_repeat(self.running_mean, N)
            self.inv_std = inv_sqrt(self.running_var + self.eps)
        self.Z = hadamard(R, column_repeat(self.inv_std, N))  # (D,N)
        return hadamard(column_repeat(self.gamma, N), self.Z) + column_repeat(self.beta, N)

    def backward(self, DY) -> np.ndarray:
        DY = _matrix(DY, "DY", "BatchNorm.backward")
        N = DY.shape[1]
        Z = self.Z
        self.Dbeta = rows_sum(DY)  # (D,)
        self.Dgamma = rows_sum(hadamard(DY, Z))  # (D,)
        DZ = hadamard(column_repeat(self.gamma, N), DY)  # (D,N)
        if not self.training:
            return hadamard(column_repeat(self.inv_std, N), DZ)
        return hadamard(
            column_repeat(self.inv_std / N, N),
            N * DZ
            - column_repeat(rows_sum(DZ), N)
            - hadamard(Z, column_repeat(rows_sum(hadamard(DZ, Z)), N)),
        )


class Dropout(Layer):
    """Inverted dropout: Y = X ⊙ M / (1 − p), M ~ Bernoulli(1 − p) per entry; DX = DY ⊙ M / (1 − p).

    Pass ``mask`` (a fixed 0/1 array of X's shape, used at every forward) for exact tests,
    or ``rng`` (a ``numpy.random.Generator``) to draw a new mask at each forward. In
    evaluation mode the layer is the identity.
    """

    def __init__(self, p: float, rng=None, mask=None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"[Dropout] p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng
        self.fixed_mask = None if mask is None else np.asarray(mask).astype(np.float64)
        if self.fixed_mask is None and rng is None:
            self.rng = np.random.default_rng()
        self.M = None  # (D,N) mask of the last training forward

    def forward(self, X) -> np.ndarray:
        X = _matrix(X, "X", "Dropout.forward")
        if not self.training:
            self.M = None
            return X.copy()
        if self.fixed_mask is not None:
            if self.fixed_mask.shape != X.shape:
                raise ValueError(
                    f"[Dropout.forward] mask has shape {self.fixed_mask.shape} but X has {X.shape}"
                )
            self.M = self.fixed_mask
        else:
            self.M = (self.rng.random(X.shape) < 1.0 - self.p).astype(np.float64)
        return hadamard(X, self.M) / (1.0 - self.p)

    def backward(self, DY) -> np.ndarray:
        DY = _matrix(DY, "DY", "Dropout.backward")
        if self.M is None:
            return DY.copy()
        return hadamard(DY, self.M) / (1.0 - self.p)
