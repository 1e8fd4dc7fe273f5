"""How many weights each layer of a sparse network stores: the density allocations.

``ALLOCATIONS`` names the ways an overall density is spread over the layers (``MLP(init=...)``
and the CLI's ``--init``): Erdős–Rényi / ERK (:func:`er_densities`; "er" and "erk" are one
allocation, ``power`` scales the raw scores) or the same density everywhere
(:func:`uniform_densities`). SET's ε parametrisation is :func:`epsilon_densities`. The
definitions are in ``docs/sparse-layers.md#density-allocation``.
"""

from __future__ import annotations

from typing import Sequence

from . import _core

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
    """``sizes`` as a list of positive integers (at least inputs and outputs), or an error."""
    try:
        sizes = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise TypeError(f"[{op}] sizes must be a sequence of integers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"[{op}] sizes needs at least 2 entries (inputs and outputs), got {sizes}")
    if any(s < 1 for s in sizes):
        raise ValueError(f"[{op}] every size must be >= 1, got {sizes}")
    return sizes


def er_densities(sizes: Sequence[int], density: float, power: float = 1.0) -> list[float]:
    """Per-layer densities of an overall ``density`` by Erdős–Rényi / ERK (RigL's allocation).

    Raw scores ``r_l = ((n_in + n_out) / (n_in n_out)) ** power``; layers whose density would
    exceed 1 are made dense and the rest re-solved, so ``sum d_l N_l = density * sum N_l``.
    """
    sizes = check_sizes(sizes, "er_densities")
    return list(_core.er_densities(sizes, float(density), float(power)))


def epsilon_densities(sizes: Sequence[int], epsilon: float) -> list[float]:
    """SET's Erdős–Rényi densities ``min(1, epsilon (n_in + n_out) / (n_in n_out))``."""
    sizes = check_sizes(sizes, "epsilon_densities")
    return list(_core.epsilon_densities(sizes, float(epsilon)))


def uniform_densities(
    sizes: Sequence[int], density: float, *, dense_first: bool = False, dense_last: bool = False
) -> list[float]:
    """The same density in every layer, optionally keeping the first and/or last layer dense."""
    sizes = check_sizes(sizes, "uniform_densities")
    if not (0 < density <= 1):
        raise ValueError(f"[uniform_densities] density must be in (0, 1], got {density}")
    d = [float(density)] * (len(sizes) - 1)
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
    as ``init`` says), explicit ``densities`` or SET's ``epsilon``; all dense with none."""
    given = [
        name
        for name, v in (("density", density), ("densities", densities), ("epsilon", epsilon))
        if v is not None
    ]
    if len(given) > 1:
        raise ValueError(f"[{op}] give at most one of density, densities, epsilon; got {given}")
    if init not in ALLOCATIONS:
        raise ValueError(f"[{op}] unknown init {init!r}; choose one of {sorted(ALLOCATIONS)}")
    if density is not None:
        if not (0 < density <= 1):
            raise ValueError(f"[{op}] density must be in (0, 1], got {density}")
        if init == "uniform":
            return uniform_densities(sizes, density, dense_first=dense_first, dense_last=dense_last)
        return er_densities(sizes, density, erk_power)
    if epsilon is not None:
        return epsilon_densities(sizes, epsilon)
    if densities is None:
        return [1.0] * (len(sizes) - 1)
    result = [float(d) for d in densities]
    if len(result) != len(sizes) - 1:
        raise ValueError(f"[{op}] {len(result)} densities given for {len(sizes) - 1} layers")
    for i, d in enumerate(result):
        if not (0 < d <= 1):
            raise ValueError(f"[{op}] density of layer {i} is {d}, it must be in (0, 1]")
    return result
