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

from dataclasses import dataclass
from typing import Optional, Union

from . import _core

__all__ = ["EVOLUTIONS", "SET", "RigL"]

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

    zeta: fraction of the positive and of the negative weights dropped per update; weights
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
    regrow_std: σ of ``regrow="normal"``.
    """

    zeta: float = 0.3
    delta_t: Optional[int] = None
    regrow: str = "uniform"
    regrow_std: float = 0.01

    def __post_init__(self) -> None:
        if not (0 <= self.zeta <= 1):
            raise ValueError(f"[SET] zeta must be in [0, 1], got {self.zeta}")
        if self.delta_t is not None and (not isinstance(self.delta_t, int) or self.delta_t < 1):
            raise ValueError(
                f"[SET] delta_t must be None or a positive integer, got {self.delta_t!r}"
            )
        if self.regrow not in _REGROW:
            raise ValueError(f"[SET] regrow must be one of {sorted(_REGROW)}, got {self.regrow!r}")
        if not (isinstance(self.regrow_std, (int, float)) and 0 <= self.regrow_std < float("inf")):
            raise ValueError(
                f"[SET] regrow_std must be a finite number >= 0, got {self.regrow_std!r}"
            )

    def _options(self) -> _core.SETOptions:
        o = _core.SETOptions()
        o.zeta, o.init, o.delta_t = self.zeta, _REGROW[self.regrow], self.delta_t or 0
        o.regrow_std = float(self.regrow_std)
        return o


@dataclass(frozen=True)
class RigL:
    """RigL topology evolution.

    alpha: initial drop fraction. delta_t: steps between updates.
    t_end: last update step: a float in (0, 1] is a fraction of the fit's total steps
        (default 0.75), an int an absolute number of steps from the start of the fit.
    schedule: ``"cosine"`` α/2 (1 + cos(π t / T_end)), ``"constant"`` α, or
        ``"exponential"`` α (1 − t/T_end)^exponent.
    skip_optimizer_step: skip the ordinary optimizer step on update steps (RigL's reference).
    """

    alpha: float = 0.3
    delta_t: int = 100
    t_end: Union[float, int] = 0.75
    schedule: str = "cosine"
    exponent: float = 2.0
    skip_optimizer_step: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.alpha <= 1):
            raise ValueError(f"[RigL] alpha must be in [0, 1], got {self.alpha}")
        if not isinstance(self.delta_t, int) or self.delta_t < 1:
            raise ValueError(f"[RigL] delta_t must be a positive integer, got {self.delta_t!r}")
        if isinstance(self.t_end, float) and not (0 < self.t_end <= 1):
            raise ValueError(f"[RigL] t_end as a fraction must be in (0, 1], got {self.t_end}")
        if isinstance(self.t_end, int) and self.t_end < 0:
            raise ValueError(f"[RigL] t_end must be non-negative, got {self.t_end}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(
                f"[RigL] schedule must be one of {sorted(_SCHEDULES)}, got {self.schedule!r}"
            )

    def drop_fraction(self, t: float, t_end: float) -> float:
        """The drop fraction f(t) of this schedule (0 after t_end)."""
        return _core.drop_fraction(
            _SCHEDULES[self.schedule], self.alpha, float(t), float(t_end), self.exponent
        )

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
