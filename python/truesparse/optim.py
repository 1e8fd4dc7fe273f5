"""Optimizer settings passed to :meth:`truesparse.MLP.fit`.

The updates run in C++ on the value arrays of each layer; for a sparse layer the state arrays
(momentum, Adam moments) are aligned with the pattern and move with it when the topology
changes. PyTorch semantics, so learning rates transfer::

    SGD    g = dW + weight_decay W;  v = momentum v + g
           step = g + momentum v  if nesterov  else v      (momentum == 0: step = g)
           W -= lr step
    Adam   g = dW + weight_decay W;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²
           W -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    AdamW  W -= lr weight_decay W, then the Adam step without weight decay

``new_weight_warmup=n`` (Adam, AdamW) lets a weight created by a topology update step with
``lr (age + 1) / (n + 1)`` for its first n steps instead of taking full-size steps from zero
moments, which is what causes loss spikes after topology updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import _core

__all__ = ["SGD", "Adam", "AdamW"]


def _check(name: str, value: float, low: float, high: float, *, high_open: bool = True) -> None:
    ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"[optimizer] {name} must be in [{low}, {high}{bracket}, got {value}")


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _check("lr", self.lr, 0, math.inf)
        _check("momentum", self.momentum, 0, 1)
        _check("weight_decay", self.weight_decay, 0, math.inf)
        if self.nesterov and self.momentum == 0:
            raise ValueError("[optimizer] nesterov=True needs momentum > 0")

    def _config(self) -> _core.OptimizerConfig:
        c = _core.OptimizerConfig()
        c.kind = _core.OptimizerKind.sgd
        c.lr, c.momentum, c.nesterov = self.lr, self.momentum, self.nesterov
        c.weight_decay = self.weight_decay
        return c


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as torch.optim.Adam."""

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    new_weight_warmup: int = 0

    _kind = "adam"

    def __post_init__(self) -> None:
        _check("lr", self.lr, 0, math.inf)
        _check("betas[0]", self.betas[0], 0, 1)
        _check("betas[1]", self.betas[1], 0, 1)
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"[optimizer] eps must be positive, got {self.eps}")
        _check("weight_decay", self.weight_decay, 0, math.inf)
        if not (isinstance(self.new_weight_warmup, int) and 0 <= self.new_weight_warmup < 65535):
            raise ValueError(f"[optimizer] new_weight_warmup must be an integer in [0, 65535), "
                             f"got {self.new_weight_warmup!r}")

    def _config(self) -> _core.OptimizerConfig:
        c = _core.OptimizerConfig()
        c.kind = getattr(_core.OptimizerKind, self._kind)
        c.lr, c.beta1, c.beta2, c.eps = self.lr, self.betas[0], self.betas[1], self.eps
        c.weight_decay, c.new_weight_warmup = self.weight_decay, self.new_weight_warmup
        return c


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): decoupled weight decay, as torch.optim.AdamW."""

    weight_decay: float = 0.01
    _kind = "adamw"
