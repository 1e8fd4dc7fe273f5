"""Ctrl-C during ``fit``: where it stops, and what it keeps.

A SIGINT must stop training within one batch wherever it lands, and must never leave the model
and its records out of step (a topology update applied but not recorded, an epoch trained but
missing from the history). :class:`InterruptGuard` does this by holding a Ctrl-C back while
``fit`` records what a finished step changed, and delivering it at the next safe point: the
engine's poll between batches (training and validation), the end of the epoch's bookkeeping,
or at once inside the user's callback.

The guard replaces the SIGINT handler only when it is Python's default one and only in the
main thread. An ignored SIGINT (``nohup``, a background job of a non-interactive shell) stays
ignored, and a handler of the user's own stays in place: the engine's poll still runs it, and
whatever it raises stops training like a Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional


class InterruptGuard:
    """Context manager for one ``fit`` call. Inside it, a Ctrl-C is pending until ``poll``
    (between batches) or ``raise_pending`` (after the bookkeeping) raises it as
    ``KeyboardInterrupt``; inside ``released()`` it raises at once."""

    def __init__(self) -> None:
        self.pending = False
        self._holding = True
        self._previous: Optional[object] = None

    def __enter__(self) -> "InterruptGuard":
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if exc_type is None:
            self.raise_pending()  # a Ctrl-C during the last bookkeeping still stops the caller

    def _handler(self, signum, frame) -> None:
        if self._holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def raise_pending(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def poll(self, examples: int = 0, loss: float = 0.0, accuracy: float = 0.0) -> None:
        """The engine's poll between batches (after it ran the signal handlers)."""
        self.raise_pending()

    def released(self) -> "_Released":
        """Inside this block (the user's callback) a Ctrl-C raises where it lands."""
        return _Released(self)


class _Released:
    def __init__(self, guard: InterruptGuard) -> None:
        self.guard = guard

    def __enter__(self) -> None:
        self.guard.raise_pending()
        self.guard._holding = False

    def __exit__(self, exc_type, exc, tb) -> None:
        self.guard._holding = True
