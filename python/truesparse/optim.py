"""Optimizer settings passed to :meth:`truesparse.MLP.fit`.

The update itself runs in C++ on the value arrays of each layer (aligned with the sparse
pattern), with PyTorch's SGD semantics so learning rates transfer::

    g = dW + weight_decay * W
    v = momentum * v + g
    step = g + momentum * v   if nesterov   else v     (momentum == 0: step = g)
    W -= lr * step
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SGD"]


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"[SGD] lr must be a non-negative number, got {self.lr}")
        if not (0 <= self.momentum < 1):
            raise ValueError(f"[SGD] momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"[SGD] weight_decay must be non-negative, got {self.weight_decay}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("[SGD] nesterov=True needs momentum > 0")
