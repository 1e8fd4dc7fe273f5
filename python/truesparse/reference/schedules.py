"""Learning-rate schedules as functions of the step (or epoch) count t = 0, 1, 2, ...

Each factory returns a function ``lr(t)``: the learning rate to use for step t, where t is
the number of ``scheduler.step()`` calls PyTorch would have made before it. With base rate
lr0 the definitions are the closed forms of the PyTorch schedulers::

    constant(lr0)                          lr0                                  (ConstantLR with factor 1)
    step(lr0, step_size, gamma)            lr0 γ^⌊t / step_size⌋                  StepLR
    multistep(lr0, milestones, gamma)      lr0 γ^(number of milestones <= t)      MultiStepLR
    exponential(lr0, gamma)                lr0 γ^t                                ExponentialLR
    cosine(lr0, T_max, eta_min)            η_min + (lr0 − η_min)(1 + cos(π t / T_max)) / 2
                                                                                  CosineAnnealingLR
    linear_warmup(schedule, warmup_steps, start_factor)
                                           schedule(t) · f(t),
                                           f(t) = start_factor + (1 − start_factor) min(t, W) / W

``linear_warmup`` multiplies another schedule by PyTorch's ``LinearLR(start_factor,
end_factor=1, total_iters=warmup_steps)`` factor, i.e. ``LambdaLR`` with the product of the
two factors (for step, multistep and exponential this equals ``ChainedScheduler``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Callable

__all__ = ["constant", "cosine", "exponential", "linear_warmup", "multistep", "step"]

Schedule = Callable[[int], float]


def _t(t) -> int:
    t = int(t)
    if t < 0:
        raise ValueError(f"[schedule] t must be >= 0, got {t}")
    return t


def constant(lr: float) -> Schedule:
    """lr(t) = lr."""

    def rate(t) -> float:
        _t(t)
        return float(lr)

    return rate


def step(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """lr(t) = lr · gamma ** (t // step_size), as torch.optim.lr_scheduler.StepLR."""
    if int(step_size) < 1:
        raise ValueError(f"[step] step_size must be >= 1, got {step_size}")
    return lambda t: float(lr) * gamma ** (_t(t) // int(step_size))


def multistep(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    """lr(t) = lr · gamma ** (number of milestones m with m <= t), as MultiStepLR.

    A milestone listed twice counts twice, as in PyTorch (which keeps a Counter)."""
    ms = sorted(int(m) for m in milestones)
    return lambda t: float(lr) * gamma ** bisect.bisect_right(ms, _t(t))


def exponential(lr: float, gamma: float) -> Schedule:
    """lr(t) = lr · gamma ** t, as ExponentialLR."""
    return lambda t: float(lr) * gamma ** _t(t)


def cosine(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:
    """lr(t) = eta_min + (lr − eta_min) (1 + cos(π t / T_max)) / 2, the closed form of
    CosineAnnealingLR (periodic with period 2 T_max beyond T_max, as PyTorch's)."""
    if int(T_max) < 1:
        raise ValueError(f"[cosine] T_max must be >= 1, got {T_max}")
    return lambda t: eta_min + (float(lr) - eta_min) * (1 + math.cos(math.pi * _t(t) / T_max)) / 2


def linear_warmup(
    schedule: Schedule, warmup_steps: int, start_factor: float = 1.0 / 3.0
) -> Schedule:
    """lr(t) = schedule(t) · (start_factor + (1 − start_factor) · min(t, warmup_steps) / warmup_steps).

    The factor is PyTorch's LinearLR(start_factor, end_factor=1.0, total_iters=warmup_steps);
    the default start_factor 1/3 is LinearLR's. warmup_steps = 0 disables the warm-up."""
    W = int(warmup_steps)
    if W < 0:
        raise ValueError(f"[linear_warmup] warmup_steps must be >= 0, got {warmup_steps}")
    if not 0.0 < start_factor <= 1.0:
        raise ValueError(f"[linear_warmup] start_factor must be in (0, 1], got {start_factor}")

    def lr(t) -> float:
        t = _t(t)
        factor = 1.0 if W == 0 else start_factor + (1.0 - start_factor) * min(t, W) / W
        return schedule(t) * factor

    return lr
