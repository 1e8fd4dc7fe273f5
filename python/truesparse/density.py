"""How many weights each layer of a sparse network stores: the density allocations.

``ALLOCATIONS`` names the ways an overall density is spread over the layers (``MLP(init=...)``
and the CLI's ``--init``): Erdős–Rényi / ERK (:func:`er_densities`; "er" and "erk" are one
allocation, ``power`` scales the raw scores) or the same density everywhere
(:func:`uniform_densities`). SET's ε parametrisation is :func:`epsilon_densities`. The
definitions are in ``docs/sparse-layers.md#density-allocation``.
"""

from __future__ import annotations

import math
from typing import Sequence

from . import _core
from ._checks import MAX_LAYER_SIZE, choice, flag, integer, real, sequence

__all__ = [
    "ALLOCATIONS",
    "allocate",
    "check_sizes",
    "epsilon_densities",
    "er_densities",
    "uniform_densities",
]

ALLOCATIONS = ("erk", "er", "uniform")


def check_sizes(sizes: Sequence[int], op: str) -> list[int]:
    """``sizes`` as a list of Python ints, each in [1, 2³¹ − 1] (the engine's index type), at
    least 2 of them (inputs and outputs), or a TypeError / ValueError naming the entry."""
    items = sequence(sizes, "sizes", op)
    if len(items) < 2:
        raise ValueError(
            f"[{op}] sizes needs at least 2 entries (inputs and outputs), got {list(items)}"
        )
    return [
        integer(s, f"sizes[{i}]", op, minimum=1, maximum=MAX_LAYER_SIZE)
        for i, s in enumerate(items)
    ]


def _density(value, name: str, op: str) -> float:
    return real(value, name, op, low=0, high=1, low_open=True)


def _power(value, name: str, op: str) -> float:
    return real(value, name, op, low=0)


def _er(sizes: list[int], density: float, power: float, name: str, op: str) -> list[float]:
    """The ER/ERK densities, refused when ``power`` makes the scores unrepresentable.

    The scores ``((n_in + n_out) / (n_in n_out)) ** power`` of a large power under- or
    overflow in double precision: all 0 (the loop then reports every layer dense), one inf
    (NaN densities) or one 0 (a layer of density 0). Each breaks the defining property
    ``sum d_l N_l = density sum N_l`` with every ``d_l`` in (0, 1], which is checked here."""
    d = list(_core.er_densities(sizes, density, power))
    n = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    ok = all(math.isfinite(x) and 0 < x <= 1 for x in d)
    ok = ok and math.isclose(sum(x * k for x, k in zip(d, n)), density * sum(n), rel_tol=1e-6)
    if not ok:
        spread = max(abs(math.log((a + b) / (a * b))) for a, b in zip(sizes[:-1], sizes[1:]))
        spread = max(spread, 1e-300)  # > 0 here: equal scores cannot under- or overflow
        raise ValueError(
            f"[{op}] {name}={power!r} is too large for sizes {sizes}: the Erdős–Rényi scores "
            f"((n_in + n_out) / (n_in n_out))^{name} under- or overflow in double precision, "
            f"so no allocation of density {density!r} can be computed; for these sizes "
            f"{name} must be <= about {690 / spread:.3g} (1 is ERK, values in [0, 1) move "
            "it towards the uniform allocation)"
        )
    return d


def er_densities(sizes: Sequence[int], density: float, power: float = 1.0) -> list[float]:
    """Per-layer densities of an overall ``density`` by Erdős–Rényi / ERK (RigL's allocation).

    Raw scores ``r_l = ((n_in + n_out) / (n_in n_out)) ** power``; layers whose density would
    exceed 1 are made dense and the rest re-solved, so ``sum d_l N_l = density * sum N_l``.
    ``power`` is a finite number >= 0 (1: ER/ERK; 0: the uniform allocation; between them
    softer than ERK); a power so large that the scores under- or overflow in double
    precision for these sizes is refused.
    """
    op = "er_densities"
    sizes = check_sizes(sizes, op)
    density = _density(density, "density", op)
    return _er(sizes, density, _power(power, "power", op), "power", op)


def epsilon_densities(sizes: Sequence[int], epsilon: float) -> list[float]:
    """SET's Erdős–Rényi densities ``min(1, epsilon (n_in + n_out) / (n_in n_out))``
    (``epsilon`` a finite number > 0)."""
    op = "epsilon_densities"
    sizes = check_sizes(sizes, op)
    epsilon = real(epsilon, "epsilon", op, low=0, low_open=True)
    return list(_core.epsilon_densities(sizes, epsilon))


def uniform_densities(
    sizes: Sequence[int], density: float, *, dense_first: bool = False, dense_last: bool = False
) -> list[float]:
    """The same density in every layer, optionally keeping the first and/or last layer dense."""
    op = "uniform_densities"
    sizes = check_sizes(sizes, op)
    density = _density(density, "density", op)
    dense_first = flag(dense_first, "dense_first", op)
    dense_last = flag(dense_last, "dense_last", op)
    return _uniform(sizes, density, dense_first, dense_last)


def _uniform(sizes: list[int], density: float, dense_first: bool, dense_last: bool) -> list:
    d = [density] * (len(sizes) - 1)
    if dense_first:
        d[0] = 1.0
    if dense_last:
        d[-1] = 1.0
    return d


def allocate(
    sizes: Sequence[int],
    *,
    density: float | None = None,
    densities: Sequence[float] | None = None,
    epsilon: float | None = None,
    init: str = "erk",
    erk_power: float = 1.0,
    dense_first: bool = False,
    dense_last: bool = False,
    op: str = "MLP",
) -> list[float]:
    """One density per layer of an MLP of ``sizes``, from at most one of ``density`` (spread
    as ``init`` says), explicit ``densities`` or SET's ``epsilon``; all dense with none.

    Every argument is checked, used or not: ``density`` in (0, 1], ``densities`` one value in
    (0, 1] per layer, ``epsilon`` > 0, ``init`` one of ``ALLOCATIONS``, ``erk_power`` >= 0
    (see :func:`er_densities`), ``dense_first`` / ``dense_last`` True or False."""
    sizes = check_sizes(sizes, op)
    if density is not None:
        density = _density(density, "density", op)
    if epsilon is not None:
        epsilon = real(epsilon, "epsilon", op, low=0, low_open=True)
    if densities is not None:
        items = sequence(densities, "densities", op)
        if len(items) != len(sizes) - 1:
            raise ValueError(
                f"[{op}] densities must have {len(sizes) - 1} entries (one per layer), "
                f"got {len(items)}: {list(items)}"
            )
        densities = [_density(d, f"densities[{i}]", op) for i, d in enumerate(items)]
    init = choice(init, ALLOCATIONS, "init", op)
    erk_power = _power(erk_power, "erk_power", op)
    dense_first = flag(dense_first, "dense_first", op)
    dense_last = flag(dense_last, "dense_last", op)
    given = [
        name
        for name, v in (("density", density), ("densities", densities), ("epsilon", epsilon))
        if v is not None
    ]
    if len(given) > 1:
        raise ValueError(f"[{op}] give at most one of density, densities, epsilon; got {given}")
    if density is not None:
        if init == "uniform":
            return _uniform(sizes, density, dense_first, dense_last)
        return _er(sizes, density, erk_power, "erk_power", op)
    if epsilon is not None:
        return list(_core.epsilon_densities(sizes, epsilon))
    if densities is None:
        return [1.0] * (len(sizes) - 1)
    return densities
