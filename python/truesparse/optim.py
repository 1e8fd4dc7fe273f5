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

from dataclasses import dataclass
from typing import Optional

from . import _core
from ._checks import INT64_MAX, flag, integer, real, sequence, show

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


def _store(obj, name: str, value) -> None:
    """Stores a checked value in a field of a frozen dataclass (as the plain Python type)."""
    object.__setattr__(obj, name, value)


def _check_schedule(op: str, schedule, lr: float) -> None:
    """``schedule`` is None or a truesparse schedule; a cosine one must not end above ``lr``."""
    if schedule is None:
        return
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"[{op}] schedule must be a truesparse schedule (e.g. CosineLR) or None, "
            f"got {show(schedule)} ({type(schedule).__name__})"
        )
    inner = schedule.schedule if isinstance(schedule, LinearWarmup) else schedule
    if isinstance(inner, CosineLR) and inner.eta_min > lr:
        raise ValueError(
            f"[{op}] schedule CosineLR(eta_min={inner.eta_min!r}) anneals from lr down to "
            f"eta_min, so eta_min must be <= lr, got lr={lr!r}"
        )


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    lr, weight_decay: finite numbers >= 0; momentum in [0, 1); nesterov True or False (True
    needs momentum > 0); schedule None or a :class:`Schedule` (a :class:`CosineLR` with
    ``eta_min <= lr``).
    """

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: Optional["Schedule"] = None

    def __post_init__(self) -> None:
        op = type(self).__name__
        _store(self, "lr", real(self.lr, "lr", op, low=0))
        _store(self, "momentum", real(self.momentum, "momentum", op, low=0, high=1, high_open=True))
        _store(self, "nesterov", flag(self.nesterov, "nesterov", op))
        _store(self, "weight_decay", real(self.weight_decay, "weight_decay", op, low=0))
        _check_schedule(op, self.schedule, self.lr)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"[{op}] nesterov=True needs momentum > 0, got momentum=0")

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
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as torch.optim.Adam.

    lr, weight_decay: finite numbers >= 0; betas: two numbers in [0, 1); eps: a finite number
    > 0; new_weight_warmup: an integer in [0, 65534]; schedule as for :class:`SGD`.
    """

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    new_weight_warmup: int = 0
    schedule: Optional["Schedule"] = None

    _kind = "adam"

    def __post_init__(self) -> None:
        op = type(self).__name__
        _store(self, "lr", real(self.lr, "lr", op, low=0))
        betas = sequence(self.betas, "betas", op, length=2)
        _store(
            self,
            "betas",
            tuple(
                real(b, f"betas[{i}]", op, low=0, high=1, high_open=True)
                for i, b in enumerate(betas)
            ),
        )
        _store(self, "eps", real(self.eps, "eps", op, low=0, low_open=True))
        _store(self, "weight_decay", real(self.weight_decay, "weight_decay", op, low=0))
        _store(
            self,
            "new_weight_warmup",
            integer(self.new_weight_warmup, "new_weight_warmup", op, minimum=0, maximum=65534),
        )
        _check_schedule(op, self.schedule, self.lr)

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
    """AdamW (Loshchilov & Hutter): decoupled weight decay, as torch.optim.AdamW (parameters
    as for :class:`Adam`)."""

    weight_decay: float = 0.01
    _kind = "adamw"


# -- learning-rate schedules ---------------------------------------------------------------------
# Closed forms of PyTorch's schedulers, evaluated at t = optimizer steps since the start of the
# fit (t = 0 for its first step); the same definitions as truesparse.reference.schedules.
# Each checks its own fields; the optimizer it is attached to checks what involves lr
# (CosineLR's eta_min <= lr).


class Schedule:
    """Base class of the learning-rate schedules (attach one with ``SGD(..., schedule=...)``)."""

    def _config(self) -> _core.LRSchedule:  # pragma: no cover - interface
        raise NotImplementedError

    def rate(self, lr: float, t: int) -> float:
        """The learning rate at step t (an integer >= 0) for base rate lr (a finite number
        >= 0)."""
        op = f"{type(self).__name__}.rate"
        lr = real(lr, "lr", op, low=0)
        t = integer(t, "t", op, minimum=0, maximum=INT64_MAX)
        return self._config().rate(lr, t)


def _schedule(kind: str, **fields) -> _core.LRSchedule:
    s = _core.LRSchedule()
    s.kind = getattr(_core.ScheduleKind, kind)
    for name, value in fields.items():
        setattr(s, name, value)
    return s


def _gamma(schedule: Schedule) -> None:
    op = type(schedule).__name__
    _store(schedule, "gamma", real(schedule.gamma, "gamma", op, low=0, low_open=True))


@dataclass(frozen=True)
class ConstantLR(Schedule):
    """lr(t) = lr."""

    def _config(self):
        return _schedule("constant")


@dataclass(frozen=True)
class StepLR(Schedule):
    """lr(t) = lr · gamma^⌊t / step_size⌋; step_size an integer >= 1, gamma a finite number
    > 0."""

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        step_size = integer(self.step_size, "step_size", "StepLR", minimum=1, maximum=INT64_MAX)
        _store(self, "step_size", step_size)
        _gamma(self)

    def _config(self):
        return _schedule("step", step_size=self.step_size, gamma=self.gamma)


@dataclass(frozen=True)
class MultiStepLR(Schedule):
    """lr(t) = lr · gamma^(number of milestones m <= t); milestones a sequence of integers
    >= 0 (stored as a tuple; a repeated one counts twice, as in PyTorch), gamma a finite
    number > 0."""

    milestones: tuple
    gamma: float = 0.1

    def __post_init__(self) -> None:
        op = "MultiStepLR"
        items = sequence(self.milestones, "milestones", op)
        milestones = tuple(
            integer(m, f"milestones[{i}]", op, minimum=0, maximum=INT64_MAX)
            for i, m in enumerate(items)
        )
        _store(self, "milestones", milestones)
        _gamma(self)

    def _config(self):
        return _schedule("multistep", milestones=sorted(self.milestones), gamma=self.gamma)


@dataclass(frozen=True)
class ExponentialLR(Schedule):
    """lr(t) = lr · gamma^t; gamma a finite number > 0."""

    gamma: float

    def __post_init__(self) -> None:
        _gamma(self)

    def _config(self):
        return _schedule("exponential", gamma=self.gamma)


@dataclass(frozen=True)
class CosineLR(Schedule):
    """lr(t) = eta_min + (lr − eta_min)(1 + cos(π t / T_max)) / 2 (CosineAnnealingLR);
    T_max an integer >= 1, eta_min a finite number >= 0 (a rate is never negative). The
    optimizer the schedule is given to checks eta_min <= lr (the schedule anneals from lr
    down to eta_min)."""

    T_max: int
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _store(
            self, "T_max", integer(self.T_max, "T_max", "CosineLR", minimum=1, maximum=INT64_MAX)
        )
        _store(self, "eta_min", real(self.eta_min, "eta_min", "CosineLR", low=0))

    def _config(self):
        return _schedule("cosine", t_max=self.T_max, eta_min=self.eta_min)


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """schedule(t) · (start_factor + (1 − start_factor) · min(t, warmup_steps) / warmup_steps);
    schedule a truesparse schedule other than LinearWarmup, warmup_steps an integer >= 0,
    start_factor a number in (0, 1]."""

    schedule: Schedule
    warmup_steps: int
    start_factor: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        op = "LinearWarmup"
        if isinstance(self.schedule, LinearWarmup) or not isinstance(self.schedule, Schedule):
            raise TypeError(
                f"[{op}] schedule must be a (non-warm-up) truesparse schedule, "
                f"got {show(self.schedule)} ({type(self.schedule).__name__})"
            )
        steps = integer(self.warmup_steps, "warmup_steps", op, minimum=0, maximum=INT64_MAX)
        _store(self, "warmup_steps", steps)
        factor = real(self.start_factor, "start_factor", op, low=0, high=1, low_open=True)
        _store(self, "start_factor", factor)

    def _config(self):
        s = self.schedule._config()
        s.warmup_steps, s.warmup_start_factor = self.warmup_steps, self.start_factor
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
