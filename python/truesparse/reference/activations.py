"""NumPy reference activation layers (elementwise): Y = act(X), DX = DY ⊙ act'(X).

The ReLU family follows ``cpp/include/truesparse/activation.h``: with the negative-side slope
s (0 for ReLU, alpha for leaky ReLU, ±alpha for All-ReLU),

    Y  = Relu(X) + s (X − Relu(X))          # branch-free form of the engine
    DX = DY ⊙ (Step(X) + s (1 − Step(X)))   # slope s at the kink x = 0, as the engine

SReLU (Jin et al. 2016) has four trainable scalars per layer. Proofs: validation/test_relu.py,
test_leaky_relu.py, test_all_relu.py, test_sigmoid.py, test_tanh.py, test_identity.py,
test_srelu.py.
"""

from __future__ import annotations

import numpy as np

from .layers import Layer, _matrix
from .matrix_operations import Relu, Step, elements_sum, hadamard
from .matrix_operations import Sigmoid as sigmoid
from .matrix_operations import Tanh as tanh

__all__ = ["AllReLU", "Identity", "LeakyReLU", "ReLU", "SReLU", "Sigmoid", "Tanh"]


class _SlopedReLU(Layer):
    """The ReLU family: identity for x > 0, slope ``negative_slope`` for x <= 0."""

    negative_slope: float = 0.0

    def __init__(self):
        self.X = None  # (D,N) input, kept for backward

    def forward(self, X) -> np.ndarray:
        X = _matrix(X, "X", f"{type(self).__name__}.forward")
        self.X = X
        s = self.negative_slope
        P = Relu(X)
        return P + s * (X - P)

    def backward(self, DY) -> np.ndarray:
        s = self.negative_slope
        S = Step(self.X)
        return hadamard(DY, S + s * (1.0 - S))


class ReLU(_SlopedReLU):
    """Y = max(X, 0); DX = DY ⊙ Step(X)."""

    negative_slope = 0.0


class LeakyReLU(_SlopedReLU):
    """Y = X for x > 0, alpha X otherwise."""

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = float(alpha)
        self.negative_slope = self.alpha


class AllReLU(_SlopedReLU):
    """All-ReLU (Curci et al. 2021): a leaky ReLU whose negative slope alternates in sign
    between hidden layers: ``layer`` is counted from 1; slope +alpha for odd layers, −alpha
    for even layers (as ``activation::negative_slope`` in activation.h)."""

    def __init__(self, alpha: float = 0.01, layer: int = 1):
        super().__init__()
        if int(layer) < 1:
            raise ValueError(f"[AllReLU] layer is counted from 1, got {layer}")
        self.alpha = float(alpha)
        self.layer = int(layer)
        self.negative_slope = self.alpha if self.layer % 2 == 1 else -self.alpha


class Sigmoid(Layer):
    """Y = 1 / (1 + exp(−X)); DX = DY ⊙ Y ⊙ (1 − Y), from the stored output."""

    def __init__(self):
        self.Y = None

    def forward(self, X) -> np.ndarray:
        self.Y = sigmoid(_matrix(X, "X", "Sigmoid.forward"))
        return self.Y

    def backward(self, DY) -> np.ndarray:
        return hadamard(DY, hadamard(self.Y, 1.0 - self.Y))


class Tanh(Layer):
    """Y = tanh(X); DX = DY ⊙ (1 − Y ⊙ Y), from the stored output."""

    def __init__(self):
        self.Y = None

    def forward(self, X) -> np.ndarray:
        self.Y = tanh(_matrix(X, "X", "Tanh.forward"))
        return self.Y

    def backward(self, DY) -> np.ndarray:
        return hadamard(DY, 1.0 - hadamard(self.Y, self.Y))


class Identity(Layer):
    """Y = X; DX = DY."""

    def forward(self, X) -> np.ndarray:
        return _matrix(X, "X", "Identity.forward").copy()

    def backward(self, DY) -> np.ndarray:
        return np.array(DY, dtype=np.float64)


class SReLU(Layer):
    """S-shaped ReLU (Jin et al. 2016) with four trainable scalars (tl < tr)::

        y = tr + ar (x − tr)   for x >= tr
        y = x                  for tl < x < tr
        y = tl + al (x − tl)   for x <= tl

    With the region indicators U = [X >= tr], Lo = [X <= tl], M = 1 − U − Lo (0/1 matrices):

        Y   = U ⊙ (tr + ar (X − tr)) + M ⊙ X + Lo ⊙ (tl + al (X − tl))
        DX  = DY ⊙ (ar U + M + al Lo)
        Dtl = elements_sum(DY ⊙ Lo) (1 − al)      Dal = elements_sum(DY ⊙ Lo ⊙ (X − tl))
        Dtr = elements_sum(DY ⊙ U) (1 − ar)       Dar = elements_sum(DY ⊙ U ⊙ (X − tr))

    At a threshold the derivative is that of the outer branch (the forward's choice).
    """

    def __init__(self, tl: float = 0.0, al: float = 0.01, tr: float = 1.0, ar: float = 1.0):
        self.tl, self.al, self.tr, self.ar = float(tl), float(al), float(tr), float(ar)
        self.Dtl = self.Dal = self.Dtr = self.Dar = 0.0
        self.X = None

    def parameters(self) -> dict:
        return {"tl": self.tl, "al": self.al, "tr": self.tr, "ar": self.ar}

    def _regions(self, X):
        U = np.where(X >= self.tr, 1.0, 0.0)  # upper region
        Lo = np.where(X <= self.tl, 1.0, 0.0) * (1.0 - U)  # lower region (U wins if tl >= tr)
        return U, 1.0 - U - Lo, Lo

    def forward(self, X) -> np.ndarray:
        X = _matrix(X, "X", "SReLU.forward")
        self.X = X
        U, M, Lo = self._regions(X)
        tl, al, tr, ar = self.tl, self.al, self.tr, self.ar
        return hadamard(U, tr + ar * (X - tr)) + hadamard(M, X) + hadamard(Lo, tl + al * (X - tl))

    def backward(self, DY) -> np.ndarray:
        DY = _matrix(DY, "DY", "SReLU.backward")
        X = self.X
        U, M, Lo = self._regions(X)
        self.Dtl = elements_sum(hadamard(DY, Lo)) * (1.0 - self.al)
        self.Dal = elements_sum(hadamard(DY, hadamard(Lo, X - self.tl)))
        self.Dtr = elements_sum(hadamard(DY, U)) * (1.0 - self.ar)
        self.Dar = elements_sum(hadamard(DY, hadamard(U, X - self.tr)))
        return hadamard(DY, self.ar * U + M + self.al * Lo)
