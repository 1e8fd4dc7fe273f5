"""What users do around training: one model shared by threads, fork, divergence, batch norm's
last batch (docs/reliability.md).

Fork cases run in a child interpreter with a timeout, so that a hang fails the test instead
of the suite."""

from __future__ import annotations

import textwrap
import threading

import numpy as np
import pytest

import truesparse as ts
from conftest import assert_csr_valid
from processes import run_python
from truesparse import cli
from truesparse import layers as L

RNG = np.random.default_rng(0)
X = RNG.standard_normal((240, 20)).astype(np.float32)
Y = (X[:, :4].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 4] > 0)


def _model(seed: int = 0, **kwargs) -> ts.MLP:
    return ts.MLP([20, 64, 64, 4], density=0.3, seed=seed, **kwargs)


def _state(model) -> dict:
    return {k: np.array(v, copy=True) for k, v in model._core.get_state().items()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture
def two_threads():
    before = ts.get_num_threads()
    ts.set_num_threads(2)
    yield
    ts.set_num_threads(before)


# --- threads ------------------------------------------------------------------------------------
def test_fit_in_a_thread_while_another_evolves_and_reads(two_threads):
    """The reported crash: fit in a thread, evolve/set_weights/W in the main thread."""
    model = _model()
    nnz = model.nnz
    errors: list[BaseException] = []

    def train():
        try:
            model.fit(X, Y, epochs=4, batch_size=16, evolution=ts.SET(0.3))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=train)
    t.start()
    reads = 0
    while t.is_alive() or reads < 3:
        model.evolve(ts.SET(0.5))
        W = model.layers[1].W
        assert_csr_valid(W, (64, 64))
        model.layers[1].set_weights(W, model.layers[1].b)
        reads += 1
    t.join()
    assert not errors
    assert model.nnz == nnz
    assert len(model.history_["loss"]) == 4
    for layer in model.layers[:2]:  # the sparse ones (ERK makes the last layer dense)
        assert_csr_valid(layer.W, layer.shape)
        assert np.all(np.isfinite(layer.W.data))


def test_concurrent_forward_gives_the_sequential_results(two_threads):
    model = _model()
    model.fit(X, Y, epochs=1, batch_size=16)
    expected = [model.forward(X[i::4]) for i in range(4)]
    got: list = [None] * 4 * 5

    def work(i):
        for r in range(5):
            got[i * 5 + r] = model.forward(X[i::4]) if r % 2 else model.predict(X[i::4])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for r in range(5):
            want = expected[i] if r % 2 else np.argmax(expected[i], axis=1)
            np.testing.assert_array_equal(got[i * 5 + r], want)


def test_two_fits_of_one_model_run_one_after_the_other(two_threads):
    """Two fits from two threads are serialised: the result is one of the two orders, each
    bit for bit, never a mixture."""
    plain, set_first = _model(), _model()
    plain.fit(X, Y, epochs=2, batch_size=16)
    plain.fit(X, Y, epochs=2, batch_size=16, evolution=ts.SET(0.3))
    set_first.fit(X, Y, epochs=2, batch_size=16, evolution=ts.SET(0.3))
    set_first.fit(X, Y, epochs=2, batch_size=16)

    model = _model()
    threads = [
        threading.Thread(target=model.fit, args=(X, Y), kwargs=dict(epochs=2, batch_size=16)),
        threading.Thread(
            target=model.fit,
            args=(X, Y),
            kwargs=dict(epochs=2, batch_size=16, evolution=ts.SET(0.3)),
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = _state(model)
    matches = []
    for order in (plain, set_first):
        other = _state(order)
        matches.append(all(np.array_equal(state[k], other[k]) for k in state))
    assert any(matches)


def test_separate_models_train_in_parallel_as_alone(two_threads):
    alone = [_model(seed=s) for s in range(2)]
    for m in alone:
        m.fit(X, Y, epochs=2, batch_size=16, evolution=ts.RigL(delta_t=5))
    together = [_model(seed=s) for s in range(2)]
    threads = [
        threading.Thread(
            target=m.fit,
            args=(X, Y),
            kwargs=dict(epochs=2, batch_size=16, evolution=ts.RigL(delta_t=5)),
        )
        for m in together
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        _assert_same_state(_state(a), _state(b))


def test_a_callback_may_use_the_model_it_runs_in():
    """The lock is reentrant: fit's own thread can evolve, read and save from a callback."""
    model = _model()
    seen = []

    def callback(record):
        seen.append(model.layers[0].nnz)
        model.evolve(ts.SET(0.1))

    model.fit(X, Y, epochs=2, batch_size=32, callback=callback)
    assert seen == [model.layers[0].nnz] * 2


# --- fork ---------------------------------------------------------------------------------------
_FORK_PRELUDE = """
import os, sys, numpy as np, truesparse as ts
rng = np.random.default_rng(0)
X = rng.standard_normal((300, 20)).astype(np.float32)
Y = (X[:, :4].sum(axis=1) > 0).astype(np.int64)
ts.set_num_threads({threads})
model = ts.MLP([20, 256, 256, 2], density=0.3, seed=0)
model.fit(X, Y, epochs=2, batch_size=16)
"""


def _run_fork_script(body: str, threads: int) -> str:
    code = textwrap.dedent(_FORK_PRELUDE.format(threads=threads)) + textwrap.dedent(body)
    result = run_python(code, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("threads", [1, 2])
def test_os_fork_child_predicts_and_trains(threads):
    """The reported hang: a child forked after 2-thread training waited forever in libgomp.
    The child's results equal the parent's doing the same (determinism across thread counts)."""
    out = _run_fork_script(
        """
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            p = model.predict(X)
            model.fit(X, Y, epochs=1, batch_size=16)
            os.write(w, np.concatenate([p, model.predict(X)]).astype(np.int64).tobytes())
            os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 1 << 16):
            data += chunk
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        p = model.predict(X)
        model.fit(X, Y, epochs=1, batch_size=16)
        assert np.array_equal(np.frombuffer(data, np.int64), np.concatenate([p, model.predict(X)]))
        print("threads in parent", ts.get_num_threads())
        """,
        threads,
    )
    assert f"threads in parent {threads}" in out


def test_fork_pool_trains_seeds():
    out = _run_fork_script(
        """
        import multiprocessing as mp

        def train(seed):
            m = ts.MLP([20, 64, 2], density=0.3, seed=seed)
            m.fit(X, Y, epochs=2, batch_size=16)
            return ts.get_num_threads(), m.evaluate(X, Y)["accuracy"], m.layers[0].W.sum()

        with mp.get_context("fork").Pool(2) as pool:
            forked = pool.map(train, range(3))
        alone = [train(s) for s in range(3)]
        assert [f[0] for f in forked] == [1, 1, 1], forked
        assert [f[1:] for f in forked] == [a[1:] for a in alone]
        print("ok")
        """,
        2,
    )
    assert "ok" in out


def test_forked_child_refuses_more_threads_with_a_message():
    out = _run_fork_script(
        """
        pid = os.fork()
        if pid == 0:
            try:
                ts.set_num_threads(2)
            except RuntimeError as e:
                print("refused:", e, flush=True)
                os._exit(0)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        """,
        2,
    )
    assert "refused: [set_num_threads]" in out and "'spawn'" in out


def test_fork_while_another_thread_trains_marks_that_model():
    """A model in use by another thread at the fork may be half-updated in the child: using
    it there is a clear error; a model that was idle works."""
    out = _run_fork_script(
        """
        import threading, time
        busy = ts.MLP([20, 256, 256, 2], density=0.3, seed=1)
        started, stop = threading.Event(), threading.Event()

        def epoch_done(record):
            started.set()
            return not stop.is_set()  # False stops the fit

        def train():
            busy.fit(X, Y, epochs=1000, batch_size=4, callback=epoch_done)

        t = threading.Thread(target=train)
        t.start()
        started.wait()
        pid = os.fork()
        if pid == 0:
            try:
                busy.predict(X)
                os._exit(3)
            except RuntimeError as e:
                assert "in use by another thread when the process forked" in str(e), e
            model.predict(X)  # idle at the fork: usable
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        stop.set()
        t.join()
        print("child exit", code)
        """,
        1,
    )
    assert "child exit 0" in out


# --- divergence ---------------------------------------------------------------------------------
def _diverging(**kwargs) -> ts.MLP:
    return ts.MLP([20, 64, 64, 4], density=0.3, seed=0, batch_norm=True, dropout=0.2, **kwargs)


def test_divergence_stops_with_the_model_after_the_last_finite_step():
    model = _diverging()
    with pytest.raises(FloatingPointError) as info:
        model.fit(X, Y, epochs=3, batch_size=16, optimizer=ts.SGD(lr=1e8), shuffle=False)
    message = str(info.value)
    steps = model._core.steps
    assert steps > 0  # a few steps ran before the loss overflowed
    assert message.startswith("[MLP.fit] the training loss is")
    assert f"epoch 1, batch {steps + 1} of 15 (step {steps + 1})" in message
    assert f"as after step {steps}" in message and "on_nonfinite='warn'" in message
    assert model.history_["loss"] == []  # no epoch finished
    # The same model trained on exactly the `steps` batches that had a finite loss.
    same = _diverging()
    same.fit(X[: 16 * steps], Y[: 16 * steps], epochs=1, batch_size=16, shuffle=False,
             optimizer=ts.SGD(lr=1e8))  # fmt: skip
    _assert_same_state(_state(model), _state(same))  # batch norm statistics, dropout counters


def test_divergence_message_says_when_the_weights_are_not_finite():
    """A finite loss whose gradient overflows the update: the last finite step left infinite
    weights, and the message says so."""
    model = ts.MLP([20, 64, 4], density=0.5, seed=0, loss="squared_error", dtype=np.float64)
    targets = np.full((len(X), 4), 1e30)
    with pytest.raises(FloatingPointError, match=r"after step 1,.*NOT finite, so it is not usable"):
        model.fit(X, targets, epochs=2, batch_size=16, optimizer=ts.SGD(lr=1e300))


def test_divergence_can_be_warned_about_or_ignored():
    model = _model()
    with pytest.warns(RuntimeWarning, match=r"training loss of epoch 1 is nan") as record:
        history = model.fit(X, Y, epochs=3, batch_size=16, optimizer=ts.SGD(lr=1e12),
                            on_nonfinite="warn")  # fmt: skip
    assert len(record) == 1 and len(history["loss"]) == 3
    model = _model()
    history = model.fit(X, Y, epochs=2, batch_size=16, optimizer=ts.SGD(lr=1e12),
                        on_nonfinite="ignore")  # fmt: skip
    assert np.isnan(history["loss"][-1])
    with pytest.raises(ValueError, match=r"\[MLP.fit\] on_nonfinite must be one of"):
        model.fit(X, Y, on_nonfinite="stop")


def test_cli_divergence_exits_1_with_one_line(capsys):
    pytest.importorskip("sklearn")
    argv = ["train", "--dataset", "digits", "--epochs", "2", "--lr", "1e12", "--quiet"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("truesparse train: error: [MLP.fit] the training")


# --- batch norm's last batch ----------------------------------------------------------------------
@pytest.mark.parametrize("examples,batch_size", [(21, 10), (1, 10), (31, 15)])
def test_batch_norm_last_batch_of_one_is_refused_before_any_step(examples, batch_size):
    model = ts.Sequential(20, [L.Linear(16), L.BatchNorm(), L.ReLU(), L.Linear(4)])
    before = _state(model)
    with pytest.raises(
        ValueError, match=r"batch norm needs at least 2 examples .* last batch of 1"
    ):
        model.fit(X[:examples], Y[:examples], epochs=2, batch_size=batch_size)
    _assert_same_state(before, _state(model))
    assert model.history_ == {}


def test_batch_norm_other_batch_sizes_train():
    model = ts.Sequential(20, [L.Linear(16), L.BatchNorm(), L.ReLU(), L.Linear(4)])
    model.fit(X[:22], Y[:22], epochs=1, batch_size=10)  # last batch of 2
    assert len(model.history_["loss"]) == 1


# --- fit's other arguments ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
        (dict(verbose=1.5), TypeError, "verbose must be an integer, got 1.5"),
        (dict(verbose=-1), ValueError, "verbose must be an integer >= 0, got -1"),
        (dict(on_nonfinite=None), TypeError, "on_nonfinite must be one of"),
        (dict(input_noise=float("nan")), ValueError, "input_noise must be a finite number"),
        (dict(callback=3), TypeError, "callback must be callable"),
        (dict(callbacks=3), TypeError, "callbacks must be a list"),
        (dict(validation_data=(X,)), ValueError, "validation_data must be a pair"),
        (dict(epochs=2.0), TypeError, "epochs must be an integer, got 2.0"),
        (dict(batch_size=True), TypeError, "batch_size must be an integer, got True"),
        (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1, got 0"),
    ],
)
def test_fit_refuses_bad_arguments_before_any_step(kwargs, error, words):
    model = _model()
    before = _state(model)
    with pytest.raises(error, match=r"\[MLP.fit\] " + words):
        model.fit(X, Y, **kwargs)
    _assert_same_state(before, _state(model))


def test_lock_is_not_shared_by_copies_and_pickles():
    import copy
    import pickle

    model = _model()
    clone, unpickled = copy.deepcopy(model), pickle.loads(pickle.dumps(model))
    assert clone._core.lock is not model._core.lock
    assert unpickled._core.lock is not model._core.lock
    with model._core.lock:  # held here: the copies are free to use from another thread
        done = []
        t = threading.Thread(target=lambda: done.append(clone.predict(X).shape))
        t.start()
        t.join(timeout=30)
        assert done == [(len(X),)]


def test_fit_refuses_a_run_that_cannot_fit_in_memory_before_any_step():
    """Wide layers with few weights: the model is small, but a batch of 4,000 examples needs
    activations of 2,000,000 × 4,000 floats per layer (32 GB each)."""
    if ts._core.available_memory() is None:
        pytest.skip("this machine does not say how much memory is available")
    model = ts.MLP([20, 2_000_000, 2_000_000, 4], densities=[1e-2, 1e-7, 1.0], seed=0)
    before = _state(model)
    X4k, Y4k = np.resize(X, (4000, 20)), np.resize(Y, 4000)
    with pytest.raises(ValueError, match=r"\[MLP.fit\] training needs about [\d,.]+ GB more"):
        model.fit(X4k, Y4k, epochs=1, batch_size=4000)
    _assert_same_state(before, _state(model))
    assert model.history_ == {}


@pytest.mark.parametrize(
    "kind,field,value,words",
    [
        ("activation", "alpha", float("nan"), "[activation] alpha must be a finite number"),
        ("batch_norm", "eps", float("inf"), "[BatchNorm] eps must be a finite number > 0"),
        ("srelu", "srelu", [0.0, float("nan"), 1.0, 1.0], "[SReLU] tl, al, tr, ar must be finite"),
    ],
)
def test_the_engine_refuses_non_finite_layer_settings_of_raw_specs(kind, field, value, words):
    """The Python specs check these first; the engine does too, for C++ callers."""
    spec = ts._core.LayerSpec()
    spec.kind = getattr(ts._core.LayerKind, kind)
    setattr(spec, field, value)
    linear = ts._core.LayerSpec()
    linear.size = 4
    with pytest.raises(ValueError) as info:
        ts._core.Network_f32(inputs=3, layers=[linear, spec, linear])
    assert words in str(info.value)


def test_module_parameters_must_be_finite():
    model = ts.Sequential(20, [L.Linear(8), L.SReLU(), L.Linear(4)])
    with pytest.raises(ValueError, match=r"\[SReLU.set\] t contains NaN or infinity"):
        model.modules[1].set("t", [0.0, float("nan"), 1.0, 1.0])
    with pytest.raises(ValueError, match=r"needs tl < tr, got tl=2.0, tr=1.0"):
        model.modules[1].set("t", [2.0, 0.1, 1.0, 1.0])
    model.modules[1].set("t", [-1.0, 0.25, 1.0, 0.5])
    np.testing.assert_array_equal(model.modules[1].parameters["t"], [-1.0, 0.25, 1.0, 0.5])


# --- found by the property tests (tests/test_properties.py) ---------------------------------------
def test_a_dense_layer_made_sparse_survives_save_load_and_pickle(tmp_path):
    import pickle

    import scipy.sparse as sp

    model = ts.Sequential(3, [L.Linear(6), L.ReLU(), L.Linear(2)], seed=0)
    W = sp.random(6, 3, density=0.5, format="csr", random_state=0, dtype=np.float32)
    model.layers[0].set_weights(W)
    for copy in (pickle.loads(pickle.dumps(model)), _saved_and_loaded(model, tmp_path)):
        assert copy.layers[0].is_sparse
        _assert_same_state(_state(model), _state(copy))
        np.testing.assert_array_equal(copy.forward(X[:5, :3]), model.forward(X[:5, :3]))
    model.layers[0].set_weights(sp.csr_array((6, 3), dtype=np.float32))  # no weight at all
    assert pickle.loads(pickle.dumps(model)).layers[0].nnz == 0


def _saved_and_loaded(model, tmp_path):
    model.save(tmp_path / "m.tsck")
    return ts.load(tmp_path / "m.tsck")


def test_a_refused_remove_inputs_with_a_batch_changes_nothing():
    model = ts.Sequential(2, [L.Linear(3, density=0.9), L.BatchNorm(), L.ReLU(), L.Linear(2)])
    before = _state(model)
    with pytest.raises(ValueError, match=r"\[remove_inputs\]"):
        model.remove_inputs([0], X[:4, :2], np.array([0, 1, 0, 1]))
    _assert_same_state(before, _state(model))


def test_input_strength_is_float64_with_no_weight():
    import scipy.sparse as sp

    model = ts.Sequential(3, [L.Linear(4, density=0.5)], seed=0)
    model.layers[0].set_weights(sp.csr_array((4, 3)))
    strength = model.input_strength()
    assert strength.dtype == np.float64 and np.all(strength == 0)


def test_set_weights_without_b_keeps_a_bias_that_diverged():
    model = ts.MLP([20, 64, 4], density=0.5, seed=0, loss="squared_error", dtype=np.float64)
    with pytest.raises(FloatingPointError, match="NOT finite"):  # as in the test above
        model.fit(
            X, np.full((len(X), 4), 1e30), epochs=2, batch_size=16, optimizer=ts.SGD(lr=1e300)
        )
    layer = next(layer for layer in model.layers if not np.all(np.isfinite(layer.b)))
    bias = layer.b
    layer.set_weights(np.zeros(layer.shape))  # b=None: the layer's own bias, kept as it is
    np.testing.assert_array_equal(layer.b, bias)
    with pytest.raises(ValueError, match="b contains NaN or infinity"):  # a b given is checked
        layer.set_weights(np.zeros(layer.shape), bias)
