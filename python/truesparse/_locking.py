"""One model, many threads; fork.

The engine releases the GIL while it computes, so without a guard two threads could run on
one network at once (its activations, gradients and CSR arrays are shared buffers). Every
model therefore owns a reentrant lock, and every call into its engine holds it:

- :class:`LockedEngine` wraps the engine object: each method call and attribute read holds
  the lock for its duration, so ``predict``/``forward`` from several threads give the
  sequential results and a weight read is a consistent snapshot.
- :func:`exclusive` marks the model's methods made of several engine calls (``fit``,
  ``evolve``, ``set_weights``, ``save``, ...): they hold the lock from start to end, so a
  ``fit`` in one thread and an ``evolve`` in another run one after the other, and a weight
  read during ``fit`` waits for the end of the ``fit``.

The lock is reentrant, so a callback running inside ``fit`` (same thread) can use the model.
Waiting for the lock releases the GIL; separate models have separate locks and train in
parallel.

fork: a child inherits a lock held by a thread that does not exist in it. After a fork every
live model's lock is checked: a lock held by another thread at the fork is replaced, and
that model is marked unusable in the child (its arrays may be half-updated there); a model
that was idle, or in use by the forking thread itself, stays usable.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_live: "weakref.WeakSet[LockedEngine]" = weakref.WeakSet()


class LockedEngine:
    """The engine object of a model, each call and attribute read under the model's lock."""

    __slots__ = ("_engine", "lock", "broken", "__weakref__")

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.lock = threading.RLock()
        self.broken = ""  # why this model cannot be used (set in a forked child)
        _live.add(self)

    def __getattr__(self, name: str) -> Any:
        if self.broken:
            raise RuntimeError(self.broken)
        with self.lock:
            attribute = getattr(self._engine, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return attribute(*args, **kwargs)

        return call


def exclusive(method: F) -> F:
    """Run a model method with the model's engine lock held from start to end."""

    @functools.wraps(method)
    def locked(self, *args: Any, **kwargs: Any) -> Any:
        engine = self._core
        if engine.broken:
            raise RuntimeError(engine.broken)
        with engine.lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def _after_fork_in_child() -> None:
    for engine in list(_live):
        lock = engine.lock
        if lock._is_owned():  # the forking thread itself (a fork inside a callback)
            continue
        if lock.acquire(blocking=False):
            lock.release()
            continue
        engine.lock = threading.RLock()
        engine.broken = (
            "this model was in use by another thread when the process forked, so its state in "
            "the child process may be half-updated; fork when no thread is using it, or load "
            "a saved copy (truesparse.load) in the child"
        )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
