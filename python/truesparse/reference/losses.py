"""NumPy reference losses of the batch mean: L = (1/N) Σ_n l_n, DY = ∂L/∂Y.

Y (K,N) are the network outputs and T (K,N) the targets, one example per column (one-hot
or soft targets; ``one_hot`` turns labels into T). Every loss sums over the K outputs and
averages over the N examples, so DY already carries the factor 1/N, as ``loss.h`` does.
Each loss is a class with ``value(Y, T) -> float`` and ``gradient(Y, T) -> DY (K,N)``;
the gradient equations are proven in ``validation/test_<name>.py``.

The label-based losses (cross entropy, negative log likelihood, softmax cross entropy)
take ``label_smoothing=ε``: the targets become T ← (1 − ε) T + ε / K before use.
"""

from __future__ import annotations

import numpy as np

from .matrix_operations import (
    Sigmoid,
    Softplus,
    columns_sum,
    elements_sum,
    hadamard,
    log,
    log_softmax,
    reciprocal,
    row_repeat,
    softmax,
)

__all__ = [
    "CrossEntropy",
    "LogisticCrossEntropy",
    "Loss",
    "NegativeLogLikelihood",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "one_hot",
]


def one_hot(labels, K: int) -> np.ndarray:
    """(K,N) one-hot targets of N integer labels in [0, K)."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"[one_hot] labels must be in [0, {K})")
    T = np.zeros((K, labels.size))
    T[labels, np.arange(labels.size)] = 1.0
    return T


def _pair(Y, T, op: str):
    Y = np.asarray(Y, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if Y.ndim != 2 or Y.shape != T.shape:
        raise ValueError(f"[{op}] Y {Y.shape} and T {T.shape} must be (K, N) arrays of one shape")
    return Y, T


class Loss:
    """Base class: ``value`` and ``gradient`` of the batch-mean loss."""

    label_smoothing: float = 0.0

    def targets(self, T: np.ndarray) -> np.ndarray:
        """T, smoothed when label_smoothing > 0: (1 − ε) T + ε / K."""
        eps = self.label_smoothing
        if eps == 0.0:
            return T
        K = T.shape[0]
        return (1.0 - eps) * T + eps / K

    def value(self, Y, T) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def gradient(self, Y, T) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class _LabelLoss(Loss):
    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"[{type(self).__name__}] label_smoothing must be in [0, 1]")
        self.label_smoothing = float(label_smoothing)


class SquaredError(Loss):
    """L = elements_sum((Y − T) ⊙ (Y − T)) / N;  DY = 2 (Y − T) / N.

    The sum over outputs without a factor ½, averaged over examples: ``loss.h``'s squared
    error (PyTorch's ``MSELoss()`` is this divided by K)."""

    def value(self, Y, T) -> float:
        Y, T = _pair(Y, T, "SquaredError.value")
        E = Y - T
        return elements_sum(hadamard(E, E)) / Y.shape[1]

    def gradient(self, Y, T) -> np.ndarray:
        Y, T = _pair(Y, T, "SquaredError.gradient")
        return 2.0 * (Y - T) / Y.shape[1]


class CrossEntropy(_LabelLoss):
    """Y are probabilities: L = −elements_sum(T ⊙ log(Y)) / N;  DY = −T ⊙ reciprocal(Y) / N."""

    def value(self, Y, T) -> float:
        Y, T = _pair(Y, T, "CrossEntropy.value")
        T = self.targets(T)
        return -elements_sum(hadamard(T, log(Y))) / Y.shape[1]

    def gradient(self, Y, T) -> np.ndarray:
        Y, T = _pair(Y, T, "CrossEntropy.gradient")
        T = self.targets(T)
        return -hadamard(T, reciprocal(Y)) / Y.shape[1]


class LogisticCrossEntropy(Loss):
    """Binary cross entropy of sigmoid(Y) per element, summed over outputs, mean over examples::

        L  = elements_sum(Softplus(Y) − T ⊙ Y) / N
           = −elements_sum(T ⊙ log(Sigmoid(Y)) + (1 − T) ⊙ log(1 − Sigmoid(Y))) / N
        DY = (Sigmoid(Y) − T) / N

    The softplus form (``Softplus(y) = max(y, 0) + log1p(exp(−|y|))``) is stable for any
    magnitude of Y. PyTorch's ``BCEWithLogitsLoss()`` averages over all N·K elements, i.e.
    it is this loss divided by K."""

    def value(self, Y, T) -> float:
        Y, T = _pair(Y, T, "LogisticCrossEntropy.value")
        return elements_sum(Softplus(Y) - hadamard(T, Y)) / Y.shape[1]

    def gradient(self, Y, T) -> np.ndarray:
        Y, T = _pair(Y, T, "LogisticCrossEntropy.gradient")
        return (Sigmoid(Y) - T) / Y.shape[1]


class NegativeLogLikelihood(_LabelLoss):
    """Y are log-probabilities: L = −elements_sum(T ⊙ Y) / N;  DY = −T / N."""

    def value(self, Y, T) -> float:
        Y, T = _pair(Y, T, "NegativeLogLikelihood.value")
        T = self.targets(T)
        return -elements_sum(hadamard(T, Y)) / Y.shape[1]

    def gradient(self, Y, T) -> np.ndarray:
        Y, T = _pair(Y, T, "NegativeLogLikelihood.gradient")
        return -self.targets(T) / Y.shape[1]


class SoftmaxCrossEntropy(_LabelLoss):
    """Fused softmax + cross entropy on logits Y, stable (column max subtracted)::

        L  = −elements_sum(T ⊙ log_softmax(Y)) / N
        DY = (softmax(Y) ⊙ row_repeat(columns_sum(T), K) − T) / N     # (softmax(Y) − T)/N, one-hot T

    ``log_softmax`` evaluates the log-sum-exp with the column maximum subtracted, so logits
    of magnitude 1e4 neither overflow nor lose the loss to log(0). This is ``loss.h``'s
    softmax cross entropy (labels there are one-hot targets here)."""

    def value(self, Y, T) -> float:
        Y, T = _pair(Y, T, "SoftmaxCrossEntropy.value")
        T = self.targets(T)
        return -elements_sum(hadamard(T, log_softmax(Y))) / Y.shape[1]

    def gradient(self, Y, T) -> np.ndarray:
        Y, T = _pair(Y, T, "SoftmaxCrossEntropy.gradient")
        T = self.targets(T)
        K, N = Y.shape
        return (hadamard(softmax(Y), row_repeat(columns_sum(T), K)) - T) / N
