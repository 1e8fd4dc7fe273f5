"""The one way to check a public parameter: each checker returns the value as the plain
Python type the engine takes, or raises an error that starts with ``[op]`` and names the
parameter and the value it got.

- TypeError for a value of the wrong type, ValueError for a value of the right type that is
  out of range (or, for :func:`choice`, not one of the choices).
- Integers: a Python ``int`` or a numpy integer; never a bool, never a float (not even 2.0).
- Real numbers: an int, a float or a numpy integer or floating scalar; never a bool or a
  string; always finite (NaN and ±inf are refused).
- Flags: ``True``/``False`` or a numpy bool; never 0/1.
- Strings: one of a fixed set, listed in the message.
- Sequences: a list, tuple, range or 1-D numpy array (never a string); the entries are
  checked by the caller with the checkers above, named ``name[i]``.

Usage (``op`` is the public name of the class or function, as in its other errors)::

    lr = real(lr, "lr", "SGD", low=0)                                 # finite, >= 0
    p = real(p, "p", "Dropout", low=0, high=1, high_open=True)        # in [0, 1)
    steps = integer(steps, "warmup_steps", "LinearWarmup", minimum=0)
    nesterov = flag(nesterov, "nesterov", "SGD")
    regrow = choice(regrow, ("uniform", "init"), "regrow", "SET")
    betas = sequence(betas, "betas", "Adam", length=2)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import numpy as np

__all__ = ["choice", "flag", "integer", "real", "sequence", "show"]

INT32_MAX = 2**31 - 1  # index_t of the engine
MAX_LAYER_SIZE = INT32_MAX - 1  # a layer's rows + 1 (its CSR indptr) must fit index_t
INT64_MAX = 2**63 - 1  # std::int64_t of the engine (step counts)


def show(value: Any) -> str:
    """``repr(value)`` for messages, numpy scalars as the Python value they hold (``0.75``,
    not ``np.float32(0.75)``), cut to 80 characters."""
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _got(value: Any) -> str:
    """``show(value)`` and its type, for TypeErrors."""
    return f"{show(value)} ({type(value).__name__})"


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def integer(
    value: Any,
    name: str,
    op: str,
    *,
    minimum: Optional[int] = None,
    maximum: Optional[int] = None,
) -> int:
    """``value`` as a Python int in ``[minimum, maximum]`` (either bound optional)."""
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"[{op}] {name} must be an integer, got {_got(value)}")
    v = int(value)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        if maximum is None:
            bound = f">= {minimum}"
        elif minimum is None:
            bound = f"<= {maximum}"
        else:
            bound = f"in [{minimum}, {maximum}]"
        raise ValueError(f"[{op}] {name} must be an integer {bound}, got {show(value)}")
    return v


def real(
    value: Any,
    name: str,
    op: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite Python float in the interval from ``low`` to ``high`` (closed
    unless ``low_open`` / ``high_open``; an infinite bound only says there is none)."""
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"[{op}] {name} must be a real number, got {_got(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range
        v = math.inf if value > 0 else -math.inf
    inside = math.isfinite(v)
    if low > -math.inf:
        inside = inside and (low < v if low_open else low <= v)
    if high < math.inf:
        inside = inside and (v < high if high_open else v <= high)
    if not inside:
        if low == -math.inf and high == math.inf:
            bound = ""
        elif high == math.inf:
            bound = f" {'>' if low_open else '>='} {low:g}"
        elif low == -math.inf:
            bound = f" {'<' if high_open else '<='} {high:g}"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            bound = f" in {left}{low:g}, {high:g}{right}"
        raise ValueError(f"[{op}] {name} must be a finite number{bound}, got {show(value)}")
    return v


def flag(value: Any, name: str, op: str) -> bool:
    """``value`` (True/False or a numpy bool) as a Python bool."""
    if not _is_bool(value):
        raise TypeError(f"[{op}] {name} must be True or False, got {_got(value)}")
    return bool(value)


def choice(value: Any, choices: Iterable[str], name: str, op: str) -> str:
    """``value`` if it is one of the strings ``choices``: a TypeError for a value that is no
    string, a ValueError for an unknown string, both listing the choices."""
    options = sorted(choices)
    if not isinstance(value, str):
        raise TypeError(f"[{op}] {name} must be one of {options}, got {_got(value)}")
    if value not in options:
        raise ValueError(f"[{op}] {name} must be one of {options}, got {show(value)}")
    return str(value)


def sequence(
    value: Any,
    name: str,
    op: str,
    *,
    length: Optional[int] = None,
    min_length: int = 0,
) -> list:
    """``value`` (a list, tuple, range, 1-D numpy array or other sequence, never a string) as
    a list, with exactly ``length`` or at least ``min_length`` entries. The entries are not
    checked: check each with the checkers above as ``f"{name}[{i}]"``."""
    ok = isinstance(value, np.ndarray) and value.ndim == 1
    ok = ok or (isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)))
    if not ok:
        what = f"a sequence of {length} values" if length is not None else "a sequence"
        raise TypeError(f"[{op}] {name} must be {what} (a list or tuple), got {_got(value)}")
    items = list(value)
    if length is not None and len(items) != length:
        raise ValueError(
            f"[{op}] {name} must have {length} entries, got {len(items)}: {show(value)}"
        )
    if len(items) < min_length:
        raise ValueError(
            f"[{op}] {name} needs at least {min_length} entries, got {len(items)}: {show(value)}"
        )
    return items
