"""A progress bar for one training epoch, driven by the engine's poll between batches.

The engine calls a poll function between batches with ``(examples, loss, accuracy)``: the
examples of the epoch seen so far and the running mean loss and accuracy over them. An
:class:`EpochProgress` turns those calls into a `tqdm <https://tqdm.github.io>`_ bar on
stderr that shows the batches and examples of the epoch, the running loss and accuracy and
the examples per second; ``close(record)`` shows the epoch's final values::

    bars = epoch_progress_factory(progress=None, verbose=1)   # once per fit
    with bars(len(X), batch_size=100, epoch=1, epochs=20) as bar:
        core.train_epoch(..., poll=bar.wrap(guard.poll))        # bar.update(examples, loss, acc)
        ...
        bar.close(record)                                       # record of the epoch

By default a bar is shown only when ``verbose > 0`` and its output (stderr) is a terminal,
and tqdm is installed. A disabled bar does nothing, costs nothing and never imports tqdm.
"""

from __future__ import annotations

import math
import sys
from typing import IO, Any, Callable, Optional, Union

import numpy as np

from ._checks import _got, flag, integer

__all__ = ["EpochProgress", "epoch_progress_factory", "tqdm_available"]

INSTALL_HINT = "pip install tqdm"


def _is_terminal(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


def tqdm_available() -> bool:
    """Whether tqdm can be imported (it is imported to find out)."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class EpochProgress:
    """The progress bar of one epoch of ``examples`` training examples.

    examples: number of training examples in the epoch (the bar's total).
    batch_size: shows "batch b/B" when given.
    epoch, epochs: shown as "epoch e/E" (e alone when ``epochs`` is None).
    enabled: ``None`` (default) shows the bar when ``verbose > 0``, ``file`` is a terminal
        and tqdm is installed; ``True`` shows it regardless (``ImportError`` without tqdm);
        ``False`` never.
    file: where the bar is drawn (default: ``sys.stderr`` at creation).
    leave: keep the bar's last line (with the epoch's final values) after ``close``;
        ``False`` clears it, for a caller that prints its own line per epoch.

    Driven by ``update(examples, loss, accuracy)`` between batches (or the poll function
    of :meth:`wrap`) and ``close(record)`` at the end of the epoch; also a context manager
    that closes the bar on the way out (an interrupted epoch leaves its last state).
    """

    def __init__(
        self,
        examples: int,
        *,
        batch_size: Optional[int] = None,
        epoch: Optional[int] = None,
        epochs: Optional[int] = None,
        verbose: int = 1,
        enabled: Optional[bool] = None,
        file: Optional[IO[str]] = None,
        leave: bool = True,
    ) -> None:
        op = "EpochProgress"
        self.examples = integer(examples, "examples", op, minimum=0)
        self.batch_size = _optional(batch_size, "batch_size", op, 1)
        epoch = _optional(epoch, "epoch", op, 0)
        epochs = _optional(epochs, "epochs", op, 0)
        verbose = integer(verbose, "verbose", op, minimum=0)
        if enabled is not None and not isinstance(enabled, (bool, np.bool_)):
            raise TypeError(f"[{op}] enabled must be None, True or False, got {_got(enabled)}")
        leave = flag(leave, "leave", op)
        if file is not None and not callable(getattr(file, "write", None)):
            raise TypeError(f"[{op}] file must be a text stream (with write), got {_got(file)}")
        self.file = sys.stderr if file is None else file
        if enabled is None:
            enabled = bool(verbose) and _is_terminal(self.file) and tqdm_available()
        self.enabled = bool(enabled)
        self._bar = None
        self._seen = 0
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            raise ImportError(f"the progress bar needs tqdm: {INSTALL_HINT}") from None
        if epoch is None:
            desc = "train"
        else:
            desc = f"epoch {epoch}" if epochs is None else f"epoch {epoch}/{epochs}"
        self._bar = tqdm(
            total=self.examples,
            desc=desc,
            unit=" ex",
            leave=leave,
            file=self.file,
            dynamic_ncols=True,
        )

    @property
    def batches(self) -> Optional[int]:
        """Batches in the epoch (None without ``batch_size``)."""
        if self.batch_size is None:
            return None
        return -(-self.examples // self.batch_size)

    def update(self, examples: int, loss: float, accuracy: float) -> None:
        """The progress so far: ``examples`` seen in this epoch, running mean loss and
        accuracy over them (the values the engine's poll receives)."""
        if self._bar is None:
            return
        examples = int(examples)
        if examples > self._seen:
            self._bar.update(examples - self._seen)
            self._seen = examples
        parts = []
        if self.batch_size is not None:
            parts.append(f"batch {-(-examples // self.batch_size)}/{self.batches}")
        parts += [f"loss {_fmt(loss)}", f"acc {_fmt(accuracy)}"]
        self._bar.set_postfix_str(", ".join(parts), refresh=False)

    def wrap(self, poll: Optional[Callable[..., Any]] = None) -> Optional[Callable[..., Any]]:
        """A poll function for the engine: calls ``poll(examples, loss, accuracy)`` first (it
        may raise to stop training, e.g. on Ctrl-C), then :meth:`update`. A disabled bar
        returns ``poll`` itself, so it adds nothing to the training loop."""
        if self._bar is None:
            return poll

        def poll_and_update(examples: int, loss: float, accuracy: float) -> None:
            if poll is not None:
                poll(examples, loss, accuracy)
            self.update(examples, loss, accuracy)

        return poll_and_update

    def close(self, record: Optional[dict] = None) -> None:
        """End the bar. With the epoch's ``record`` (the dict ``fit`` passes to its callback:
        ``loss``, ``accuracy``, optionally ``val_loss``, ``val_accuracy``) the bar is
        completed and shows those final values. Closing twice is harmless."""
        bar, self._bar = self._bar, None
        if bar is None:
            return
        if record is not None:
            if self._seen < self.examples:
                bar.update(self.examples - self._seen)
                self._seen = self.examples
            parts = []
            if self.batch_size is not None:
                parts.append(f"{self.batches} batches")
            for key, label in (
                ("loss", "loss"),
                ("accuracy", "acc"),
                ("val_loss", "val_loss"),
                ("val_accuracy", "val_acc"),
            ):
                if key in record:
                    parts.append(f"{label} {_fmt(record[key])}")
            bar.set_postfix_str(", ".join(parts), refresh=False)
        bar.close()

    def __enter__(self) -> "EpochProgress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"EpochProgress({self.examples} examples, {state})"


def _optional(value: Any, name: str, op: str, minimum: int) -> Optional[int]:
    """None, or an integer >= ``minimum``."""
    return None if value is None else integer(value, name, op, minimum=minimum)


def _fmt(value: Any) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "?"
    return f"{x:.4f}" if math.isfinite(x) else str(x)


ProgressFactory = Callable[..., EpochProgress]


def epoch_progress_factory(
    progress: Union[None, bool, ProgressFactory] = None,
    verbose: int = 1,
    *,
    op: str = "epoch_progress_factory",
) -> ProgressFactory:
    """The per-epoch bar maker of one ``fit`` call, from its ``progress`` argument:

    - ``None``: a bar when ``verbose > 0``, stderr is a terminal and tqdm is installed;
    - ``True`` / ``False``: always (``ImportError`` without tqdm) / never;
    - a callable: used as is; it is called as
      ``progress(examples, batch_size=..., epoch=..., epochs=...)`` once per epoch and must
      return an :class:`EpochProgress` (or an object with ``wrap``, ``update``, ``close``
      and the context-manager methods), e.g.
      ``functools.partial(EpochProgress, enabled=True, leave=False)``.

    The returned callable takes those same arguments. ``op`` is the name errors start with
    (``[op] progress must be ...``): the caller's, such as ``MLP.fit``. ``verbose`` (an
    integer >= 0) is checked by :class:`EpochProgress` when a bar is made.
    """
    if callable(progress) and not isinstance(progress, bool):
        return progress
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(
            f"[{op}] progress must be None, True, False or a callable, got {_got(progress)}"
        )
    progress = None if progress is None else bool(progress)
    if progress is True and not tqdm_available():
        raise ImportError(f"[{op}] the progress bar needs tqdm: {INSTALL_HINT}")

    def make(
        examples: int,
        *,
        batch_size: Optional[int] = None,
        epoch: Optional[int] = None,
        epochs: Optional[int] = None,
    ) -> EpochProgress:
        return EpochProgress(
            examples,
            batch_size=batch_size,
            epoch=epoch,
            epochs=epochs,
            verbose=verbose,
            enabled=progress,
        )

    return make
