"""Tests of truesparse.progress: the per-epoch progress bar a training loop drives from the
engine's poll (examples seen, running loss, running accuracy) and closes with the epoch's
record. It is shown only when asked or when verbose and writing to a terminal; otherwise it
does nothing and never imports tqdm."""

from __future__ import annotations

import functools
import io
import sys

import pytest

import processes
from truesparse import progress
from truesparse.progress import EpochProgress, epoch_progress_factory

RECORD = {"epoch": 2, "loss": 0.25, "accuracy": 0.875, "time": 0.1}
RECORD_VAL = {**RECORD, "val_loss": 0.5, "val_accuracy": 0.75}


class Terminal(io.StringIO):
    """A text file that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_tqdm(monkeypatch):
    """tqdm cannot be imported (and a disabled bar must not try)."""
    monkeypatch.setitem(sys.modules, "tqdm", None)


def drive(bar: EpochProgress, examples: int, batch_size: int, record=None):
    """The engine's poll values of one epoch: cumulative examples, running loss/accuracy."""
    seen = 0
    while seen < examples:
        seen = min(examples, seen + batch_size)
        bar.update(seen, 1.0 / seen, seen / (2 * examples))
    bar.close(record)


def test_bar_on_a_terminal_shows_batches_examples_loss_and_rate():
    pytest.importorskip("tqdm")
    out = Terminal()
    bar = EpochProgress(1438, batch_size=100, epoch=2, epochs=5, file=out)
    assert bar.enabled and bar.batches == 15
    bar.update(300, 0.75, 0.5)
    bar._bar.refresh()  # tqdm redraws at most every 0.1 s; draw now
    text = out.getvalue()
    assert "epoch 2/5" in text
    assert "300/1438" in text
    assert "batch 3/15" in text
    assert "loss 0.7500" in text and "acc 0.5000" in text
    assert "ex/s" in text
    bar.close(RECORD_VAL)
    final = out.getvalue().split("\r")[-1]
    assert "1438/1438" in final and "100%" in final
    assert "15 batches" in final
    assert "loss 0.2500" in final and "acc 0.8750" in final
    assert "val_loss 0.5000" in final and "val_acc 0.7500" in final
    assert final.endswith("\n")  # leave=True keeps the final line


def test_close_without_validation_values_and_leave_false_clears_the_line():
    pytest.importorskip("tqdm")
    out = Terminal()
    drive(EpochProgress(250, batch_size=100, file=out, leave=False), 250, 100, RECORD)
    text = out.getvalue()
    assert "val_loss" not in text
    assert not text.endswith("\n")  # cleared: the caller prints its own line next


def test_examples_only_move_forward_and_nan_is_shown():
    pytest.importorskip("tqdm")
    out = Terminal()
    bar = EpochProgress(100, file=out)
    bar.update(60, 1.0, 0.5)
    bar.update(40, float("nan"), 0.5)  # never backwards
    assert bar._bar.n == 60
    bar._bar.refresh()
    assert "loss nan" in out.getvalue()
    assert "batch" not in out.getvalue()  # no batch size given
    bar.close()


def test_disabled_when_quiet_or_not_a_terminal_or_asked(no_tqdm):
    for bar in (
        EpochProgress(100, file=Terminal(), verbose=0),
        EpochProgress(100, file=io.StringIO(), verbose=1),
        EpochProgress(100, file=Terminal(), enabled=False),
    ):
        assert not bar.enabled
        out = bar.file
        drive(bar, 100, 10, RECORD)
        bar.close()
        assert out.getvalue() == ""


def test_disabled_bar_adds_nothing_to_the_poll(no_tqdm):
    bar = EpochProgress(100, file=io.StringIO())

    def poll(examples, loss, accuracy):
        pass

    assert bar.wrap(poll) is poll
    assert bar.wrap(None) is None


def test_not_shown_by_default_without_tqdm(no_tqdm):
    assert not EpochProgress(100, file=Terminal()).enabled


def test_asked_for_without_tqdm_names_the_install(no_tqdm):
    with pytest.raises(ImportError, match="pip install tqdm"):
        EpochProgress(100, file=Terminal(), enabled=True)
    with pytest.raises(ImportError, match="pip install tqdm"):
        epoch_progress_factory(True)


def test_default_output_is_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = EpochProgress(10)
    assert bar.file is sys.stderr and not bar.enabled


def test_wrap_runs_the_poll_first_and_stops_with_it():
    pytest.importorskip("tqdm")
    calls = []

    def poll(examples, loss, accuracy):
        calls.append(examples)
        if examples >= 20:
            raise KeyboardInterrupt

    bar = EpochProgress(100, file=Terminal())
    wrapped = bar.wrap(poll)
    wrapped(10, 0.5, 0.5)
    assert calls == [10] and bar._bar.n == 10
    with pytest.raises(KeyboardInterrupt):
        wrapped(20, 0.5, 0.5)
    assert bar._bar.n == 10  # the interrupted batch is not counted
    bar.close()


def test_context_manager_closes_on_an_error():
    pytest.importorskip("tqdm")
    out = Terminal()
    with pytest.raises(KeyboardInterrupt):
        with EpochProgress(100, file=out) as bar:
            bar.update(30, 0.5, 0.5)
            raise KeyboardInterrupt
    assert bar._bar is None
    assert "30/100" in out.getvalue()  # the last state stays
    bar.close(RECORD)  # closing again is harmless


def test_enabled_must_be_none_or_a_bool():
    with pytest.raises(TypeError, match="enabled"):
        EpochProgress(10, enabled="yes")


def test_factory_of_fit_arguments(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    auto = epoch_progress_factory(None, verbose=1)
    bar = auto(100, batch_size=10, epoch=1, epochs=3)
    assert isinstance(bar, EpochProgress) and bar.batches == 10
    assert bar.enabled == progress.tqdm_available()
    bar.close()
    assert not epoch_progress_factory(None, verbose=0)(100).enabled
    assert not epoch_progress_factory(False, verbose=1)(100).enabled
    custom = functools.partial(EpochProgress, enabled=False)
    assert epoch_progress_factory(custom) is custom
    with pytest.raises(TypeError, match="progress"):
        epoch_progress_factory("yes")


def test_importing_the_module_does_not_import_tqdm():
    result = processes.run_python(
        "import sys, truesparse.progress as p; "
        "bar = p.EpochProgress(10); bar.update(5, 1.0, 0.5); bar.close(); "
        "assert 'tqdm' not in sys.modules, 'tqdm imported'"
    )
    assert result.returncode == 0, result.stderr
