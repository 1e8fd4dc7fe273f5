"""Layer specifications for :class:`truesparse.Sequential` (and what :class:`truesparse.MLP`
builds from its arguments). Each spec describes one layer; the model builds the C++ layer.

>>> from truesparse import layers as L
>>> net = ts.Sequential(784, [L.Linear(1024, density=0.05), L.BatchNorm(), L.ReLU(),
...                           L.Dropout(0.2), L.Linear(10)])

Every layer computes on a batch of examples as columns internally; its forward and backward
equations are in ``docs/layers/`` and proven in ``validation/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import _core

__all__ = [
    "ACTIVATIONS",
    "KIND_NAMES",
    "Affine",
    "AllReLU",
    "BatchNorm",
    "Dropout",
    "Identity",
    "LayerSpec",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "ReLU",
    "SReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


class LayerSpec:
    """Base class of the layer specifications."""

    def _spec(self) -> _core.LayerSpec:  # pragma: no cover - interface
        raise NotImplementedError


def _spec(kind: str, **fields) -> _core.LayerSpec:
    s = _core.LayerSpec()
    s.kind = getattr(_core.LayerKind, kind)
    for name, value in fields.items():
        setattr(s, name, value)
    return s


@dataclass(frozen=True)
class Linear(LayerSpec):
    """``Y = W X + b`` with ``size`` outputs; sparse (CSR) when ``density < 1``."""

    size: int
    density: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and self.size >= 1):
            raise ValueError(f"[Linear] size must be a positive integer, got {self.size!r}")
        if not (0 < self.density <= 1):
            raise ValueError(f"[Linear] density must be in (0, 1], got {self.density}")

    def _spec(self):
        return _spec("linear", size=self.size, density=float(self.density))


@dataclass(frozen=True)
class _Activation(LayerSpec):
    _name = "relu"

    def _spec(self):
        return _spec(
            "activation",
            activation=getattr(_core.Activation, self._name),
            alpha=float(getattr(self, "alpha", 0.0)),
        )


@dataclass(frozen=True)
class ReLU(_Activation):
    _name = "relu"


@dataclass(frozen=True)
class LeakyReLU(_Activation):
    alpha: float = 0.01
    _name = "leaky_relu"


@dataclass(frozen=True)
class AllReLU(_Activation):
    """Leaky ReLU whose negative slope is +alpha in odd and −alpha in even hidden layers
    (counted from 1 among the activation layers of the network; Curci et al. 2021)."""

    alpha: float = 0.6
    _name = "all_relu"


@dataclass(frozen=True)
class Sigmoid(_Activation):
    _name = "sigmoid"


@dataclass(frozen=True)
class Tanh(_Activation):
    _name = "tanh"


@dataclass(frozen=True)
class Identity(_Activation):
    _name = "identity"


@dataclass(frozen=True)
class Softmax(LayerSpec):
    """Softmax over the outputs of each example (use with ``loss="cross_entropy"``)."""

    def _spec(self):
        return _spec("softmax")


@dataclass(frozen=True)
class LogSoftmax(LayerSpec):
    """Log-softmax over the outputs of each example (use with ``loss="negative_log_likelihood"``)."""

    def _spec(self):
        return _spec("log_softmax")


@dataclass(frozen=True)
class BatchNorm(LayerSpec):
    """Batch normalization per feature with learnable scale and shift; running mean and
    variance for evaluation (PyTorch semantics: ``momentum`` weights the new batch)."""

    momentum: float = 0.1
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if not (0 <= self.momentum <= 1):
            raise ValueError(f"[BatchNorm] momentum must be in [0, 1], got {self.momentum}")
        if not (self.eps > 0 and math.isfinite(self.eps)):
            raise ValueError(f"[BatchNorm] eps must be positive, got {self.eps}")

    def _spec(self):
        return _spec("batch_norm", momentum=float(self.momentum), eps=float(self.eps))


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Inverted dropout with probability ``p`` while training (seeded by the model's seed);
    the identity in evaluation."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not (0 <= self.p < 1):
            raise ValueError(f"[Dropout] p must be in [0, 1), got {self.p}")

    def _spec(self):
        return _spec("dropout", p=float(self.p))


@dataclass(frozen=True)
class SReLU(LayerSpec):
    """S-shaped ReLU with four trainable scalars (Jin et al. 2016): identity between the
    thresholds tl < tr, slopes al below tl and ar above tr."""

    tl: float = 0.0
    al: float = 0.01
    tr: float = 1.0
    ar: float = 1.0

    def __post_init__(self) -> None:
        if not self.tl < self.tr:
            raise ValueError(f"[SReLU] needs tl < tr, got tl={self.tl}, tr={self.tr}")

    def _spec(self):
        s = _spec("srelu")
        s.srelu = [float(self.tl), float(self.al), float(self.tr), float(self.ar)]
        return s


@dataclass(frozen=True)
class Affine(LayerSpec):
    """Per-feature scale and shift ``Y = γ ⊙ X + β`` with learnable γ (init 1) and β (init 0)."""

    def _spec(self):
        return _spec("affine")


ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "all_relu": AllReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "identity": Identity,
}

# The public name of each engine module kind (``model.modules[i].kind``), for error messages.
KIND_NAMES = {
    "activation": "activation",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
    "batch_norm": "BatchNorm",
    "dropout": "Dropout",
    "srelu": "SReLU",
    "affine": "Affine",
}
