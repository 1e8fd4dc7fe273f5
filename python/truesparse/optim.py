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

A learning-rate schedule (``schedule=CosineLR(T_max=...)`` etc.) sets the rate of each step
from ``lr`` and t, the optimizer steps since the start of the fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from . import _core

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Adam",
    "AdamW",
    "ConstantLR",
    "CosineLR",
    "ExponentialLR",
    "LinearWarmup",
    "MultiStepLR",
    "Schedule",
    "StepLR",
]


def _check_schedule(op: str, schedule) -> None:
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError(
            f"[{op}] schedule must be a truesparse schedule (e.g. CosineLR), "
            f"got {type(schedule).__name__}"
        )


def _check(
    op: str, name: str, value: float, low: float, high: float, *, high_open: bool = True
) -> None:
    ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"[{op}] {name} must be in [{low}, {high}{bracket}, got {value}")


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: Optional["Schedule"] = None

    def __post_init__(self) -> None:
        op = type(self).__name__
        _check_schedule(op, self.schedule)
        _check(op, "lr", self.lr, 0, math.inf)
        _check(op, "momentum", self.momentum, 0, 1)
        _check(op, "weight_decay", self.weight_decay, 0, math.inf)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"[{op}] nesterov=True needs momentum > 0")

    def _config(self) -> _core.OptimizerConfig:
        c = _core.OptimizerConfig()
        c.kind = _core.OptimizerKind.sgd
        c.lr, c.momentum, c.nesterov = self.lr, self.momentum, self.nesterov
        c.weight_decay = self.weight_decay
        if self.schedule is not None:
            c.schedule = self.schedule._config()
        return c


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as torch.optim.Adam."""

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    new_weight_warmup: int = 0
    schedule: Optional["Schedule"] = None

    _kind = "adam"

    def __post_init__(self) -> None:
        op = type(self).__name__
        _check_schedule(op, self.schedule)
        _check(op, "lr", self.lr, 0, math.inf)
        _check(op, "betas[0]", self.betas[0], 0, 1)
        _check(op, "betas[1]", self.betas[1], 0, 1)
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"[{op}] eps must be positive, got {self.eps}")
        _check(op, "weight_decay", self.weight_decay, 0, math.inf)
        if not (isinstance(self.new_weight_warmup, int) and 0 <= self.new_weight_warmup < 65535):
            raise ValueError(
                f"[{op}] new_weight_warmup must be an integer in [0, 65535), "
                f"got {self.new_weight_warmup!r}"
            )

    def _config(self) -> _core.OptimizerConfig:
        c = _core.OptimizerConfig()
        c.kind = getattr(_core.OptimizerKind, self._kind)
        c.lr, c.beta1, c.beta2, c.eps = self.lr, self.betas[0], self.betas[1], self.eps
        c.weight_decay, c.new_weight_warmup = self.weight_decay, self.new_weight_warmup
        if self.schedule is not None:
            c.schedule = self.schedule._config()
        return c


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): decoupled weight decay, as torch.optim.AdamW."""

    weight_decay: float = 0.01
    _kind = "adamw"


# -- learning-rate schedules ---------------------------------------------------------------------
# Closed forms of PyTorch's schedulers, evaluated at t = optimizer steps since the start of the
# fit (t = 0 for its first step); the same definitions as truesparse.reference.schedules.


class Schedule:
    """Base class of the learning-rate schedules (attach one with ``SGD(..., schedule=...)``)."""

    def _config(self) -> _core.LRSchedule:  # pragma: no cover - interface
        raise NotImplementedError

    def rate(self, lr: float, t: int) -> float:
        """The learning rate at step t for base rate lr."""
        return self._config().rate(float(lr), int(t))


def _schedule(kind: str, **fields) -> _core.LRSchedule:
    s = _core.LRSchedule()
    s.kind = getattr(_core.ScheduleKind, kind)
    for name, value in fields.items():
        setattr(s, name, value)
    return s


@dataclass(frozen=True)
class ConstantLR(Schedule):
    """lr(t) = lr."""

    def _config(self):
        return _schedule("constant")


@dataclass(frozen=True)
class StepLR(Schedule):
    """lr(t) = lr · gamma^⌊t / step_size⌋."""

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.step_size, int) and self.step_size >= 1):
            raise ValueError(
                f"[StepLR] step_size must be a positive integer, got {self.step_size!r}"
            )
        _check(type(self).__name__, "gamma", self.gamma, 0, math.inf)

    def _config(self):
        return _schedule("step", step_size=self.step_size, gamma=float(self.gamma))


@dataclass(frozen=True)
class MultiStepLR(Schedule):
    """lr(t) = lr · gamma^(number of milestones m <= t)."""

    milestones: tuple
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if any(int(m) < 0 for m in self.milestones):
            raise ValueError(f"[MultiStepLR] milestones must be >= 0, got {self.milestones}")
        _check(type(self).__name__, "gamma", self.gamma, 0, math.inf)

    def _config(self):
        return _schedule(
            "multistep", milestones=sorted(int(m) for m in self.milestones), gamma=float(self.gamma)
        )


@dataclass(frozen=True)
class ExponentialLR(Schedule):
    """lr(t) = lr · gamma^t."""

    gamma: float

    def __post_init__(self) -> None:
        _check(type(self).__name__, "gamma", self.gamma, 0, math.inf)

    def _config(self):
        return _schedule("exponential", gamma=float(self.gamma))


@dataclass(frozen=True)
class CosineLR(Schedule):
    """lr(t) = eta_min + (lr − eta_min)(1 + cos(π t / T_max)) / 2 (CosineAnnealingLR)."""

    T_max: int
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.T_max, int) and self.T_max >= 1):
            raise ValueError(f"[CosineLR] T_max must be a positive integer, got {self.T_max!r}")

    def _config(self):
        return _schedule("cosine", t_max=self.T_max, eta_min=float(self.eta_min))


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """schedule(t) · (start_factor + (1 − start_factor) · min(t, warmup_steps) / warmup_steps)."""

    schedule: Schedule
    warmup_steps: int
    start_factor: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        if isinstance(self.schedule, LinearWarmup) or not isinstance(self.schedule, Schedule):
            raise TypeError("[LinearWarmup] schedule must be a (non-warm-up) truesparse schedule")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"[LinearWarmup] warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not (0 < self.start_factor <= 1):
            raise ValueError(
                f"[LinearWarmup] start_factor must be in (0, 1], got {self.start_factor}"
            )

    def _config(self):
        s = self.schedule._config()
        s.warmup_steps, s.warmup_start_factor = self.warmup_steps, float(self.start_factor)
        return s


# The optimizer and schedule classes by name (the CLI's --optimizer and --schedule).
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
SCHEDULES = {
    "constant": ConstantLR,
    "step": StepLR,
    "multistep": MultiStepLR,
    "exponential": ExponentialLR,
    "cosine": CosineLR,
}
