"""Callbacks of :meth:`truesparse.Sequential.fit`: objects whose hooks ``fit`` calls at the
start of training, after each epoch and at the end.

>>> model.fit(X, y, epochs=100, validation_data=(Xv, yv),
...           callbacks=[ts.callbacks.EarlyStopping(monitor="val_loss", patience=5)])
"""

from __future__ import annotations

import math
from typing import Optional

from ._checks import _got, choice, flag, integer, real

__all__ = ["Callback", "EarlyStopping"]


class Callback:
    """Base class: override the hooks you need. ``fit`` calls ``on_train_begin(model)`` before
    the first epoch, ``on_epoch_end(model, record, history)`` after each epoch (``record`` is
    that epoch's values: ``epoch``, ``loss``, ``accuracy``, ``time``, ``val_loss``,
    ``val_accuracy``; ``history`` the lists so far, ``model.history_``) and
    ``on_train_end(model)`` when training ends without an error or Ctrl-C. Returning
    ``False`` from ``on_epoch_end`` stops training after this epoch."""

    def on_train_begin(self, model) -> None:
        pass

    def on_epoch_end(self, model, record: dict, history: dict) -> Optional[bool]:
        return None

    def on_train_end(self, model) -> None:
        pass


# State entries that count what has happened (they seed the random streams): restoring the
# best weights leaves them as they are, so that training on after it draws fresh numbers.
def _is_counter(name: str) -> bool:
    return name in ("network.steps", "network.topology_updates") or name.endswith(".calls")


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs. ``mode`` is ``"min"`` (losses), ``"max"`` (accuracies) or ``"auto"``
    (``"max"`` for names containing "accuracy"). With ``restore_best_weights`` (default), the
    model gets back the state of its best epoch at the end of training: weights, sparse
    patterns, batch-norm statistics and optimizer state (the history keeps every epoch). A
    NaN value is never an improvement. ``best``, ``best_epoch`` and ``stopped_epoch`` (0 if
    training ran to its end) tell what happened."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
    ) -> None:
        op = "EarlyStopping"
        if not isinstance(monitor, str):
            raise TypeError(f"[{op}] monitor must be a string, got {_got(monitor)}")
        self.monitor = str(monitor)
        self.patience = integer(patience, "patience", op, minimum=0)
        self.min_delta = real(min_delta, "min_delta", op, low=0)
        mode = choice(mode, ("auto", "min", "max"), "mode", op)
        self.mode = ("max" if "accuracy" in monitor else "min") if mode == "auto" else mode
        self.restore_best_weights = flag(restore_best_weights, "restore_best_weights", op)

    def on_train_begin(self, model) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self._wait = 0
        self._best_state = None

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, model, record: dict, history: dict) -> Optional[bool]:
        if self.monitor not in record:
            raise ValueError(
                f"[EarlyStopping] monitor {self.monitor!r} is not among the epoch's values "
                f"{sorted(record)} (val_* needs validation_data)"
            )
        value = float(record[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self._wait = value, record["epoch"], 0
            if self.restore_best_weights:
                self._best_state = model._core.get_state()
            return None
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = record["epoch"]
            return False
        return None

    def on_train_end(self, model) -> None:
        if self._best_state is None or self.best_epoch == model._epochs_done:
            return
        now = model._core.get_state()
        state = {k: now[k] if _is_counter(k) else v for k, v in self._best_state.items()}
        model._core.set_state(state)
        model._has_gradients = False
        self._best_state = None
