"""Layer specifications for :class:`truesparse.Sequential` (and what :class:`truesparse.MLP`
builds from its arguments). Each spec describes one layer; the model builds the C++ layer.

>>> from truesparse import layers as L
>>> net = ts.Sequential(784, [L.Linear(1024, density=0.05), L.BatchNorm(), L.ReLU(),
...                           L.Dropout(0.2), L.Linear(10)])

Every layer computes on a batch of examples as columns internally; its forward and backward
equations are in ``docs/layers/`` and proven in ``validation/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _core
from ._checks import MAX_LAYER_SIZE, integer, real

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


def _store(spec: LayerSpec, name: str, value) -> None:
    """Stores a checked value in a field of a frozen spec (as the plain Python type)."""
    object.__setattr__(spec, name, value)


def _spec(kind: str, **fields) -> _core.LayerSpec:
    s = _core.LayerSpec()
    s.kind = getattr(_core.LayerKind, kind)
    for name, value in fields.items():
        setattr(s, name, value)
    return s


@dataclass(frozen=True)
class Linear(LayerSpec):
    """``Y = W X + b`` with ``size`` outputs (an integer in [1, 2³¹ − 1]); sparse (CSR) when
    ``density < 1`` (a number in (0, 1])."""

    size: int
    density: float = 1.0

    def __post_init__(self) -> None:
        _store(
            self, "size", integer(self.size, "size", "Linear", minimum=1, maximum=MAX_LAYER_SIZE)
        )
        _store(
            self, "density", real(self.density, "density", "Linear", low=0, high=1, low_open=True)
        )

    def _spec(self):
        return _spec("linear", size=self.size, density=float(self.density))


@dataclass(frozen=True)
class _Activation(LayerSpec):
    _name = "relu"

    def __post_init__(self) -> None:
        if hasattr(self, "alpha"):  # LeakyReLU, AllReLU: any finite slope
            _store(self, "alpha", real(self.alpha, "alpha", type(self).__name__))

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
    """``max(x, 0) + alpha min(x, 0)``, ``alpha`` a finite number."""

    alpha: float = 0.01
    _name = "leaky_relu"


@dataclass(frozen=True)
class AllReLU(_Activation):
    """Leaky ReLU whose negative slope is +alpha in odd and −alpha in even hidden layers
    (counted from 1 among the activation layers of the network; Curci et al. 2021);
    ``alpha`` a finite number."""

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
    variance for evaluation (PyTorch semantics: ``momentum``, in [0, 1], weights the new
    batch; ``eps`` is a finite number > 0)."""

    momentum: float = 0.1
    eps: float = 1e-5

    def __post_init__(self) -> None:
        _store(self, "momentum", real(self.momentum, "momentum", "BatchNorm", low=0, high=1))
        _store(self, "eps", real(self.eps, "eps", "BatchNorm", low=0, low_open=True))

    def _spec(self):
        return _spec("batch_norm", momentum=float(self.momentum), eps=float(self.eps))


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Inverted dropout with probability ``p`` while training (seeded by the model's seed);
    the identity in evaluation; ``p`` in [0, 1)."""

    p: float = 0.5

    def __post_init__(self) -> None:
        _store(self, "p", real(self.p, "p", "Dropout", low=0, high=1, high_open=True))

    def _spec(self):
        return _spec("dropout", p=float(self.p))


@dataclass(frozen=True)
class SReLU(LayerSpec):
    """S-shaped ReLU with four trainable scalars (Jin et al. 2016): identity between the
    thresholds tl < tr, slopes al below tl and ar above tr (all four finite numbers)."""

    tl: float = 0.0
    al: float = 0.01
    tr: float = 1.0
    ar: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tl", "al", "tr", "ar"):
            _store(self, name, real(getattr(self, name), name, "SReLU"))
        if not self.tl < self.tr:
            raise ValueError(f"[SReLU] needs tl < tr, got tl={self.tl!r}, tr={self.tr!r}")

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
