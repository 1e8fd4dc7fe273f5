"""Ctrl-C during fit: a SIGINT stops training within one batch wherever it lands (a training
batch, a RigL update, SET's update at the end of an epoch, validation, the user's callback),
raises KeyboardInterrupt, and leaves a model that still works and records that agree with it:
finite weights, every epoch whose training batches finished in ``history_`` (all lists of the
same length), and the topology records of every update that ran.

The signal is sent at chosen points: from inside the engine's poll between batches (the test
wraps the poll it is given), at the start of a topology update, or from the callback. The
tests set SIGINT's disposition themselves, so they test the same thing wherever the suite
runs, including as a background job that inherited SIGINT as ignored; an ignored SIGINT is
left ignored by fit."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import numpy as np
import pytest

import processes
import truesparse as ts

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

N, BATCH = 200, 10
BATCHES = N // BATCH  # per epoch


@pytest.fixture
def sigint(request):
    """Sets SIGINT to Python's default handler (or to ignored, with ``indirect`` "ignored") for
    the test and restores the runner's own disposition afterwards."""
    previous = signal.getsignal(signal.SIGINT)
    ignored = getattr(request, "param", "default") == "ignored"
    signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def send_sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


class SignalAt:
    """Stands in for ``model._core`` and sends this process SIGINT during the ``call``-th call
    of ``method``: before the engine's ``poll``-th poll of that call (the poll before its
    ``poll``-th batch), or, with ``poll=None``, when the call starts."""

    def __init__(self, core, method: str, call: int, poll=None) -> None:
        self._core, self._method, self._call, self._poll = core, method, call, poll
        self.calls = 0
        self.sent = False

    def __getattr__(self, name):
        attr = getattr(self._core, name)
        return self._wrap(attr) if name == self._method else attr

    def _send(self) -> None:
        self.sent = True
        send_sigint()

    def _wrap(self, method):
        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self._call:
                if self._poll is None:
                    self._send()
                else:
                    inner, polls = kwargs["poll"], [0]

                    def poll(*progress):
                        polls[0] += 1
                        if polls[0] == self._poll:
                            self._send()
                        return inner(*progress)

                    kwargs["poll"] = poll
            return method(*args, **kwargs)

        return call


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 20), dtype=np.float32), rng.integers(0, 4, n)


def model():
    return ts.MLP([20, 32, 4], densities=[0.3, 1.0], seed=0)


def assert_consistent(m, epochs_done: int, delta_t=None):
    """The model works and its records agree with it after an interruption."""
    for layer in m.layers:
        assert np.isfinite(layer.W.data).all() and np.isfinite(layer.b).all()
    lengths = {key: len(v) for key, v in m.history_.items() if key not in ("topology", "degrees")}
    assert set(lengths.values()) == {epochs_done}, lengths
    assert m._epochs_done == epochs_done
    if "degrees" in m.history_:  # the degrees at the end were recorded despite the interrupt
        assert m.history_["degrees"]["end"] == ts.plot.degrees(m)
    if delta_t is not None:  # every update that ran is recorded, once per sparse layer
        steps = [r["step"] for r in m.history_["topology"]]
        assert steps == list(range(delta_t, m._core.steps + 1, delta_t)), (steps, m._core.steps)
    X, y = data(50, seed=1)
    assert np.isfinite(m.evaluate(X, y)["loss"])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit restored it


@pytest.mark.parametrize("batch", [1, 7, BATCHES])
def test_sigint_during_training_batches_stops_within_one_batch(sigint, batch):
    m = model()
    m._core = probe = SignalAt(m._core, "train_epoch", call=2, poll=batch)
    X, y = data()
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=5, batch_size=BATCH)
    m._core = probe._core
    assert probe.sent
    done_in_epoch = m._core.steps - BATCHES
    assert done_in_epoch in (batch - 1, batch)  # the batch before which it landed, or one more
    assert_consistent(m, epochs_done=1)


def test_sigint_right_after_a_rigl_update_keeps_its_records(sigint):
    m = model()
    # RigL updates after batches 5, 10, ...: the signal lands just after the one at batch 5
    m._core = probe = SignalAt(m._core, "train_epoch", call=1, poll=6)
    X, y = data()
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=5, batch_size=BATCH, evolution=ts.RigL(delta_t=5, t_end=1.0))
    m._core = probe._core
    assert m._core.steps in (5, 6)
    assert {r["step"] for r in m.history_["topology"]} == {5}
    assert_consistent(m, epochs_done=0, delta_t=5)


def test_sigint_during_set_update_at_epoch_end_records_it_then_stops(sigint):
    m = model()
    m._core = probe = SignalAt(m._core, "evolve_set", call=1)
    X, y = data()
    called = []
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=5, batch_size=BATCH, evolution=ts.SET(0.3), callback=called.append)
    m._core = probe._core
    assert m._core.steps == BATCHES  # stopped after the update that ended epoch 1
    assert len(m.history_["topology"]) == 1  # one sparse layer, one update: recorded
    assert m.history_["topology"][0]["step"] == BATCHES
    assert called == []  # the interruption came before the callback
    assert_consistent(m, epochs_done=1)


def test_sigint_during_validation_stops_it_and_keeps_the_trained_epoch(sigint):
    m = model()
    # validation runs in batches of 1000: 3,000 examples take 3 polls
    m._core = probe = SignalAt(m._core, "evaluate", call=2, poll=2)
    X, y = data()
    Xv, yv = data(3000, seed=2)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=5, batch_size=BATCH, validation_data=(Xv, yv))
    m._core = probe._core
    assert m._core.steps == 2 * BATCHES
    assert np.isfinite(m.history_["val_loss"][0])
    assert np.isnan(m.history_["val_loss"][1]) and np.isnan(m.history_["val_accuracy"][1])
    assert np.isfinite(m.history_["loss"]).all()
    assert_consistent(m, epochs_done=2)


def test_sigint_in_the_callback_raises_there(sigint):
    m = model()
    X, y = data()
    seen = []

    def callback(record):
        seen.append(record["epoch"])
        if record["epoch"] == 2:
            send_sigint()
            for _ in range(1000):  # the user's code goes on until the signal reaches it
                seen.append(None)
        return True

    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=5, batch_size=BATCH, callback=callback)
    assert seen[:2] == [1, 2] and len(seen) < 1000  # stopped inside the callback
    assert m._core.steps == 2 * BATCHES
    assert_consistent(m, epochs_done=2)


def test_a_model_interrupted_trains_on(sigint):
    m = model()
    m._core = probe = SignalAt(m._core, "train_epoch", call=1, poll=3)
    X, y = data()
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=2, batch_size=BATCH)
    m._core = probe._core
    history = m.fit(X, y, epochs=2, batch_size=BATCH)
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("sigint", ["ignored"], indirect=True)
def test_an_ignored_sigint_stays_ignored(sigint):
    m = model()
    m._core = probe = SignalAt(m._core, "train_epoch", call=1, poll=3)
    X, y = data()
    history = m.fit(X, y, epochs=2, batch_size=BATCH)
    m._core = probe._core
    assert probe.sent
    assert len(history["loss"]) == 2 and m._core.steps == 2 * BATCHES
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_handler_of_the_users_own_is_run_and_what_it_raises_stops_training(sigint):
    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop

    signal.signal(signal.SIGINT, handler)
    m = model()
    m._core = probe = SignalAt(m._core, "train_epoch", call=1, poll=4)
    X, y = data()
    with pytest.raises(Stop):
        m.fit(X, y, epochs=2, batch_size=BATCH)
    m._core = probe._core
    assert m._core.steps in (3, 4)
    assert signal.getsignal(signal.SIGINT) is handler


# -- a real Ctrl-C from another process --------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import signal, sys
    import numpy as np
    import truesparse as ts

    if {restore}:  # explicit: a process started as a background job inherits SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    X = rng.random((4000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 4000)
    model = ts.MLP([784, 256, 10], densities=[0.5, 1.0], seed=0)
    try:
        model.fit(X, y, epochs={epochs}, batch_size=100, optimizer=ts.SGD(lr=0.01),
                  callback=lambda record: print("epoch done", flush=True),
                  evolution=ts.RigL(delta_t=20, t_end=1.0))
        print(f"finished {{len(model.history_['loss'])}} epochs", flush=True)
    except KeyboardInterrupt:
        assert np.isfinite(model.layers[0].W.data).all()
        print(f"interrupted after {{len(model.history_['loss'])}} epochs", flush=True)
        sys.exit(3)
    """
)


@pytest.mark.parametrize("starts", ["default", "ignored"])
def test_ctrl_c_from_another_process_stops_training(starts):
    code = CHILD.format(restore=True, epochs=100_000)
    with processes.started_python(code, sigint=starts) as proc:
        assert proc.stdout.readline().strip() == "epoch done", proc.stderr.read()
        proc.send_signal(signal.SIGINT)  # lands wherever the child is in its next epoch
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "interrupted after" in out


def test_a_process_that_keeps_sigint_ignored_trains_to_the_end():
    code = CHILD.format(restore=False, epochs=3)
    with processes.started_python(code, sigint="ignored") as proc:
        assert proc.stdout.readline().strip() == "epoch done", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "finished 3 epochs" in out
