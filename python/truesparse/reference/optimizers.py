"""NumPy reference optimizers on value arrays, with PyTorch's semantics.

One optimizer object updates one array: ``step(w, g)`` changes ``w`` in place from its
gradient ``g``, and the state arrays (velocity, Adam moments) are aligned with ``w`` (for a
sparse layer: with its stored values), allocated as zeros at the first step. ``lr`` is a
plain attribute, so a schedule (``schedules.py``) can set it before each step.

With weight decay λ, learning rate η, momentum μ (SGD family as ``optimizer.h``)::

    SGD        g' = g + λ w;   w ← w − η g'
    Momentum   g' = g + λ w;   v ← μ v + g';   w ← w − η v
    Nesterov   g' = g + λ w;   v ← μ v + g';   w ← w − η (g' + μ v)
    Adam       g' = g + λ w;   m ← β1 m + (1 − β1) g';   v ← β2 v + (1 − β2) g'²;   t ← t + 1
               w ← w − (η / (1 − β1ᵗ)) m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
    AdamW      w ← w − η λ w  (decoupled), then the Adam step with g' = g

These are ``torch.optim.SGD`` (dampening 0; the first velocity is g' because v starts at
zero), ``torch.optim.Adam`` and ``torch.optim.AdamW`` (amsgrad off), written in the order
PyTorch evaluates them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Adam", "AdamW", "Momentum", "Nesterov", "Optimizer"]


def _check(name: str, value: float, low: float, high: float = np.inf, high_open=False) -> float:
    value = float(value)
    ok = low <= value and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"[{name}] invalid value {value}")
    return value


class Optimizer:
    """Base class: ``step(w, g)`` updates the array ``w`` in place."""

    def step(self, w: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def _arrays(w, g):
        if not isinstance(w, np.ndarray):
            raise TypeError("[optimizer.step] w must be a NumPy array (it is updated in place)")
        g = np.asarray(g, dtype=w.dtype)
        if g.shape != w.shape:
            raise ValueError(f"[optimizer.step] g has shape {g.shape} but w has {w.shape}")
        return g


class SGD(Optimizer):
    """w ← w − lr (g + weight_decay w)."""

    def __init__(self, lr: float, weight_decay: float = 0.0):
        self.lr = _check("SGD lr", lr, 0.0)
        self.weight_decay = _check("SGD weight_decay", weight_decay, 0.0)

    def step(self, w, g) -> None:
        g = self._arrays(w, g)
        w -= self.lr * (g + self.weight_decay * w)


class Momentum(Optimizer):
    """Heavy-ball momentum: v ← mu v + (g + weight_decay w);  w ← w − lr v."""

    nesterov = False

    def __init__(self, lr: float, mu: float = 0.9, weight_decay: float = 0.0):
        self.lr = _check("Momentum lr", lr, 0.0)
        self.mu = _check("Momentum mu", mu, 0.0, 1.0, high_open=True)
        self.weight_decay = _check("Momentum weight_decay", weight_decay, 0.0)
        self.v = None  # velocity, aligned with w

    def step(self, w, g) -> None:
        g = self._arrays(w, g)
        if self.v is None or self.v.shape != w.shape:
            self.v = np.zeros_like(w)
        g = g + self.weight_decay * w
        self.v = self.mu * self.v + g
        w -= self.lr * (g + self.mu * self.v if self.nesterov else self.v)


class Nesterov(Momentum):
    """Nesterov momentum, PyTorch form: v ← mu v + g';  w ← w − lr (g' + mu v)."""

    nesterov = True


class Adam(Optimizer):
    """Adam with bias correction; weight decay is L2 added to the gradient (torch.optim.Adam)."""

    decoupled = False

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.lr = _check(f"{type(self).__name__} lr", lr, 0.0)
        self.beta1 = _check(f"{type(self).__name__} beta1", beta1, 0.0, 1.0, high_open=True)
        self.beta2 = _check(f"{type(self).__name__} beta2", beta2, 0.0, 1.0, high_open=True)
        self.eps = _check(f"{type(self).__name__} eps", eps, 0.0)
        self.weight_decay = _check(f"{type(self).__name__} weight_decay", weight_decay, 0.0)
        self.t = 0  # steps taken
        self.m = None  # first moment, aligned with w
        self.v = None  # second moment, aligned with w

    def step(self, w, g) -> None:
        g = self._arrays(w, g)
        if self.m is None or self.m.shape != w.shape:
            self.m = np.zeros_like(w)
            self.v = np.zeros_like(w)
        if self.decoupled:
            w *= 1.0 - self.lr * self.weight_decay
        else:
            g = g + self.weight_decay * w
        self.t += 1
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * g
        self.v = self.beta2 * self.v + (1.0 - self.beta2) * g * g
        bias_correction1 = 1.0 - self.beta1**self.t
        bias_correction2 = 1.0 - self.beta2**self.t
        step_size = self.lr / bias_correction1
        denom = np.sqrt(self.v) / np.sqrt(bias_correction2) + self.eps
        w -= step_size * self.m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): w ← w (1 − lr wd), then Adam
    on the plain gradient. PyTorch's default weight_decay for AdamW is 0.01."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        super().__init__(lr, beta1, beta2, eps, weight_decay)
