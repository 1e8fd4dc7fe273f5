"""Ctrl-C during fit: a real SIGINT stops training between batches, raises KeyboardInterrupt,
and leaves a model that still works (finite weights, finished epochs in history_, and the
topology records of every update that ran, the interrupted epoch's included)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import truesparse as ts

    rng = np.random.default_rng(0)
    X = rng.random((20000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 20000)
    model = ts.MLP([784, 1024, 10], densities=[0.5, 1.0], seed=0)

    def started(record):
        print("epoch done", flush=True)

    try:
        model.fit(X, y, epochs=1000, batch_size=100, optimizer=ts.SGD(lr=0.01),
                  callback=started, evolution=ts.RigL(delta_t=20, t_end=1.0))
        print("finished without interruption", flush=True)
    except KeyboardInterrupt:
        W = model.layers[0].W
        assert np.isfinite(W.data).all()
        # the records of every update that ran are kept, those of the interrupted epoch too
        steps = sorted({r["step"] for r in model.history_["topology"]})
        assert steps == list(range(20, steps[-1] + 1, 20)), steps
        done = model._core.steps  # batches trained before the interruption
        assert steps[-1] == done // 20 * 20, (steps[-1], done)
        result = model.evaluate(X[:100], y[:100])
        print(f"interrupted cleanly after {len(model.history_['loss'])} epochs, "
              f"loss {result['loss']:.3f}", flush=True)
        sys.exit(3)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_stops_training_between_batches():
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()  # after the first finished epoch
        assert line.strip() == "epoch done", proc.stderr.read()
        time.sleep(0.5)  # inside the next epoch (about 1 s long), after some of its updates
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        stopped_after = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "interrupted cleanly after" in out
    assert stopped_after < 10  # between batches, not at the end of a 1000-epoch run
