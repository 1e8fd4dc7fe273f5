"""fit's callbacks: the hooks are called in order with the model and the history, False stops,
and EarlyStopping stops after `patience` epochs without improvement and restores the state of
the best epoch (checked against snapshots taken by a callback of its own)."""

from __future__ import annotations

import numpy as np
import pytest

import truesparse as ts
from truesparse.callbacks import Callback, EarlyStopping


def data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 10), dtype=np.float32)
    return X, (X[:, 0] + 0.3 * rng.standard_normal(n) > 0.5).astype(int)


def model():
    return ts.MLP([10, 64, 2], density=0.3, seed=0)


class Recorder(Callback):
    """Records the hook calls and a snapshot of the engine state after every epoch."""

    def __init__(self):
        self.calls, self.states = [], {}

    def on_train_begin(self, model):
        self.calls.append("begin")

    def on_epoch_end(self, model, record, history):
        assert history is model.history_ and history["loss"][-1] == record["loss"]
        self.calls.append(record["epoch"])
        self.states[record["epoch"]] = model._core.get_state()

    def on_train_end(self, model):
        self.calls.append("end")


def test_hooks_are_called_in_order_and_false_stops():
    class StopAt3(Callback):
        def on_epoch_end(self, model, record, history):
            return record["epoch"] < 3

    recorder = Recorder()
    history = model().fit(*data(100, 0), epochs=10, batch_size=20, callbacks=[recorder, StopAt3()])
    assert recorder.calls == ["begin", 1, 2, 3, "end"]
    assert len(history["loss"]) == 3


def test_callbacks_must_be_callback_objects():
    with pytest.raises(TypeError, match=r"\[MLP.fit\] callbacks must be .*Callback.*got function"):
        model().fit(*data(50, 0), callbacks=[lambda m, r, h: None])


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    X, y = data(200, 0)
    # a learning rate high enough that the validation loss goes up and down
    stopper, recorder = EarlyStopping(monitor="val_loss", patience=2), Recorder()
    m = model()
    history = m.fit(
        X,
        y,
        epochs=60,
        batch_size=10,
        optimizer=ts.SGD(lr=0.5, momentum=0.9),
        validation_data=data(100, 1),
        evolution=ts.SET(0.3),
        callbacks=[recorder, stopper],
    )
    val = history["val_loss"]
    best = int(np.argmin(val)) + 1
    assert stopper.best_epoch == best and stopper.best == min(val)
    assert stopper.stopped_epoch == best + 2 == len(val)  # two epochs without improvement
    final, snapshot = m._core.get_state(), recorder.states[best]
    for key in final:
        if key in ("network.steps", "network.topology_updates"):  # counters go on
            assert final[key] == recorder.states[len(val)][key]
        else:
            assert np.array_equal(final[key], snapshot[key]), key
    assert m.evaluate(*data(100, 1))["loss"] == pytest.approx(min(val), rel=1e-6)


def test_early_stopping_modes_min_delta_and_nan():
    stopper = EarlyStopping(monitor="val_accuracy", patience=0, restore_best_weights=False)
    assert stopper.mode == "max"
    stopper.on_train_begin(None)
    assert stopper.on_epoch_end(None, {"epoch": 1, "val_accuracy": 0.5}, {}) is None
    assert stopper.on_epoch_end(None, {"epoch": 2, "val_accuracy": 0.4}, {}) is False
    loss = EarlyStopping(monitor="loss", patience=1, min_delta=0.1, restore_best_weights=False)
    loss.on_train_begin(None)
    assert loss.on_epoch_end(None, {"epoch": 1, "loss": 1.0}, {}) is None
    assert loss.on_epoch_end(None, {"epoch": 2, "loss": 0.95}, {}) is False  # not by > 0.1
    nan = EarlyStopping(monitor="loss", patience=1, restore_best_weights=False)
    nan.on_train_begin(None)
    assert nan.on_epoch_end(None, {"epoch": 1, "loss": float("nan")}, {}) is False
    assert nan.best_epoch == 0


def test_early_stopping_errors():
    with pytest.raises(ValueError, match=r"\[EarlyStopping\] monitor 'val_loss' is not among"):
        model().fit(*data(50, 0), epochs=2, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match=r"\[EarlyStopping\] patience must be"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match=r"\[EarlyStopping\] mode must be"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"\[EarlyStopping\] min_delta must be"):
        EarlyStopping(min_delta=float("nan"))
