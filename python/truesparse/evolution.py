"""Dynamic sparse training: the topology of every sparse layer evolves in place during
training, as CSR, with no masks (definitions in docs/dynamic-sparse-training.md).

- :class:`SET` (Mocanu et al. 2018): drop the weights that are exactly zero and the fraction
  ``zeta`` of the positive weights with the smallest values and of the negative weights
  closest to zero, regrow as many connections at positions drawn uniformly from the empty
  ones, with small values (uniform in ±√(6 / (n_in + n_out))). Every epoch (default; not after the last) or
  every ``delta_t`` steps.
- :class:`RigL` (Evci et al. 2020): every ``delta_t`` steps until ``t_end``, drop the
  ``k = floor(f(t) nnz)`` weights of smallest magnitude and grow the ``k`` positions not kept with
  the largest gradient magnitude of the current batch; ``f`` follows a cosine (default),
  constant or exponential schedule from ``alpha``.

Surviving weights keep their values and optimizer state bit for bit; new weights start with
zero optimizer state. Each update returns one record per sparse layer (see
:func:`record_to_dict`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from . import _core
from ._checks import INT64_MAX, choice, flag, integer, real, show

__all__ = ["EVOLUTIONS", "SET", "RigL"]


def _store(evolution, name: str, value) -> None:
    """Stores a checked value in a field of a frozen evolution (as the plain Python type)."""
    object.__setattr__(evolution, name, value)


_REGROW = {
    "uniform": _core.RegrowInit.uniform,
    "init": _core.RegrowInit.layer,
    "zero": _core.RegrowInit.zero,
    "normal": _core.RegrowInit.normal,
}
_SCHEDULES = {
    "cosine": _core.DropSchedule.cosine,
    "constant": _core.DropSchedule.constant,
    "exponential": _core.DropSchedule.exponential,
}


@dataclass(frozen=True)
class SET:
    """SET topology evolution.

    zeta: fraction (in [0, 1]) of the positive and of the negative weights dropped per update; weights
        that are exactly zero are dropped as well (they never survive an update, as in the
        original, so a connection that cannot learn is replaced).
    delta_t: None = update after every epoch except the last (the original); an integer = every
        ``delta_t`` training steps.
    regrow: initial value of new weights:

        - ``"uniform"`` (default): uniform in ±√(6 / (n_in + n_out)) with the layer's dense
          fans, as the original SET code (Mocanu et al. 2018) initialises new connections;
        - ``"normal"``: N(0, regrow_std²), as another SET implementation does (σ = 0.1
          there; default here 0.01);
        - ``"init"``: the layer's own initializer (``weight_init`` with its fan-in), full
          scale: new weights far larger than the survivors at low density;
        - ``"zero"``: 0 (they move with their first optimizer step).

        On digits at 3 % density the default matches static sparse training where ``"init"``
        cost 4.6 points (docs/dynamic-sparse-training.md#measured).
    regrow_std: σ of ``regrow="normal"`` (a finite number >= 0).
    """

    zeta: float = 0.3
    delta_t: Optional[int] = None
    regrow: str = "uniform"
    regrow_std: float = 0.01

    def __post_init__(self) -> None:
        op = "SET"
        _store(self, "zeta", real(self.zeta, "zeta", op, low=0, high=1))
        if self.delta_t is not None:
            _store(
                self, "delta_t", integer(self.delta_t, "delta_t", op, minimum=1, maximum=INT64_MAX)
            )
        _store(self, "regrow", choice(self.regrow, _REGROW, "regrow", op))
        _store(self, "regrow_std", real(self.regrow_std, "regrow_std", op, low=0))

    def _options(self) -> _core.SETOptions:
        o = _core.SETOptions()
        o.zeta, o.init, o.delta_t = self.zeta, _REGROW[self.regrow], self.delta_t or 0
        o.regrow_std = self.regrow_std
        return o


def _t_end(value, op: str) -> Union[float, int]:
    """RigL's t_end: an integer >= 0 (steps) or a float in (0, 1] (a fraction of the steps)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"[{op}] t_end must be a fraction in (0, 1] of the fit's steps or an integer number "
            f"of steps >= 0, got {show(value)} ({type(value).__name__})"
        )
    if isinstance(value, numbers.Integral):
        return integer(value, "t_end", op, minimum=0, maximum=INT64_MAX)
    v = float(value)
    if not 0 < v <= 1:  # NaN too
        raise ValueError(
            f"[{op}] t_end as a fraction of the fit's steps must be in (0, 1], got {show(value)} "
            "(an integer >= 0 is a number of steps)"
        )
    return v


@dataclass(frozen=True)
class RigL:
    """RigL topology evolution.

    alpha: initial drop fraction, in [0, 1]. delta_t: steps between updates, an integer >= 1.
    t_end: last update step: a float (Python or numpy) in (0, 1] is a fraction of the fit's
        total steps (default 0.75), an integer >= 0 (Python or numpy) an absolute number of
        steps from the start of the fit.
    schedule: ``"cosine"`` α/2 (1 + cos(π t / T_end)), ``"constant"`` α, or
        ``"exponential"`` α (1 − t/T_end)^exponent.
    exponent: the power of the exponential schedule, a finite number > 0 (checked whatever
        the schedule).
    skip_optimizer_step: skip the ordinary optimizer step on update steps (RigL's reference);
        True or False.
    """

    alpha: float = 0.3
    delta_t: int = 100
    t_end: Union[float, int] = 0.75
    schedule: str = "cosine"
    exponent: float = 2.0
    skip_optimizer_step: bool = True

    def __post_init__(self) -> None:
        op = "RigL"
        _store(self, "alpha", real(self.alpha, "alpha", op, low=0, high=1))
        _store(self, "delta_t", integer(self.delta_t, "delta_t", op, minimum=1, maximum=INT64_MAX))
        _store(self, "t_end", _t_end(self.t_end, op))
        _store(self, "schedule", choice(self.schedule, _SCHEDULES, "schedule", op))
        _store(self, "exponent", real(self.exponent, "exponent", op, low=0, low_open=True))
        _store(
            self,
            "skip_optimizer_step",
            flag(self.skip_optimizer_step, "skip_optimizer_step", op),
        )

    def drop_fraction(self, t: float, t_end: float) -> float:
        """The drop fraction f(t) of this schedule at step ``t`` >= 0 for the last update step
        ``t_end`` >= 0 (0 after t_end)."""
        t = real(t, "t", "RigL.drop_fraction", low=0)
        t_end = real(t_end, "t_end", "RigL.drop_fraction", low=0)
        return _core.drop_fraction(_SCHEDULES[self.schedule], self.alpha, t, t_end, self.exponent)

    def _options(self, t_begin: int, total_steps: int) -> _core.RigLOptions:
        o = _core.RigLOptions()
        o.alpha, o.delta_t, o.t_begin = self.alpha, self.delta_t, t_begin
        o.t_end = (
            int(self.t_end * total_steps) if isinstance(self.t_end, float) else int(self.t_end)
        )
        o.schedule, o.exponent = _SCHEDULES[self.schedule], self.exponent
        o.skip_optimizer_step = self.skip_optimizer_step
        return o


# The evolution classes by name (the CLI's --evolution).
EVOLUTIONS = {"set": SET, "rigl": RigL}


def record_to_dict(r) -> dict:
    """A topology record as a dict: layer, step, nnz, dropped, grown, reselected, itop_rate,
    dropped_positions and grown_positions (flat positions ``i * in + j``, sorted), and
    in/out_degree_histogram (``h[d]`` = number of input/output neurons with degree d)."""
    return {
        "layer": r.layer,
        "step": r.step,
        "nnz": r.nnz,
        "dropped": r.dropped,
        "grown": r.grown,
        "reselected": r.reselected,
        "itop_rate": r.itop_rate,
        "dropped_positions": r.dropped_positions,
        "grown_positions": r.grown_positions,
        "in_degree_histogram": r.in_degree_histogram,
        "out_degree_histogram": r.out_degree_histogram,
    }
