"""Checkpoints: save, load in a new process, train on — bit for bit the same as never stopping.

The reference for "the same" is the same calls on a model that was never saved: weights,
patterns, optimizer state, every counter (the engine's whole state, ``_core.get_state``) and
the history must be identical. Also: planned runs continued with ``initial_epoch`` after a
``kill -9``, the file format read without truesparse, refused files, atomic writes, pickle.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import signal
import textwrap
import zipfile

import numpy as np
import pytest

import processes
import truesparse as ts
from truesparse import checkpoint
from truesparse import layers as L

OPTIMIZERS = {
    "sgd": ts.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "adam": ts.Adam(lr=0.01, new_weight_warmup=50),
}
EVOLUTIONS = {"static": None, "set": ts.SET(0.3), "rigl": ts.RigL(delta_t=4, alpha=0.3)}


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 12), dtype=np.float32), rng.integers(0, 3, n)


def build(dtype=np.float32):
    """Sparse and dense layers, batch norm, SReLU and dropout: every kind of state."""
    layers = [
        L.Linear(24, density=0.3),
        L.BatchNorm(),
        L.ReLU(),
        L.Dropout(0.2),
        L.Linear(16, density=0.4),
        L.SReLU(),
        L.Linear(3),
    ]
    return ts.Sequential(12, layers, seed=7, dtype=dtype)


def assert_same_model(a, b):
    """The whole engine state, the history and the planned run are identical."""
    sa, sb = a._core.get_state(), b._core.get_state()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key
    assert a._epochs_done == b._epochs_done and a._plan == b._plan
    assert a.history_.keys() == b.history_.keys()
    for key in a.history_:
        if key == "time":
            continue
        if key == "topology":
            assert len(a.history_[key]) == len(b.history_[key])
            for ra, rb in zip(a.history_[key], b.history_[key]):
                assert ra.keys() == rb.keys()
                for field in ra:
                    assert np.array_equal(ra[field], rb[field]), field
        else:
            assert a.history_[key] == b.history_[key], key


def fit(model, optimizer, evolution, epochs, **kwargs):
    X, y = data()
    kwargs.setdefault("batch_size", 10)
    return model.fit(
        X,
        y,
        epochs=epochs,
        optimizer=OPTIMIZERS[optimizer],
        evolution=EVOLUTIONS[evolution],
        validation_data=data(40, seed=1),
        **kwargs,
    )


@pytest.mark.parametrize("evolution", list(EVOLUTIONS))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_save_load_train_on_equals_never_saving(tmp_path, optimizer, evolution):
    straight = build()
    fit(straight, optimizer, evolution, 3)
    fit(straight, optimizer, evolution, 2)

    saved = build()
    fit(saved, optimizer, evolution, 3)
    saved.save(tmp_path / "m.tsck")
    loaded = ts.load(tmp_path / "m.tsck")
    assert_same_model(loaded, saved)
    assert np.array_equal(loaded.forward(data()[0]), saved.forward(data()[0]))
    fit(loaded, optimizer, evolution, 2)
    assert_same_model(loaded, straight)


RESUME_IN_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import truesparse as ts
    from test_checkpoint import fit
    model = ts.load({src!r})
    fit(model, {optimizer!r}, {evolution!r}, 2)
    model.save({dst!r})
    """
)


@pytest.mark.parametrize("optimizer,evolution", [("sgd", "set"), ("adam", "rigl")])
def test_resume_in_a_new_process_is_bit_exact(tmp_path, optimizer, evolution):
    straight = build()
    fit(straight, optimizer, evolution, 3)
    straight.save(tmp_path / "after3.tsck")
    fit(straight, optimizer, evolution, 2)
    code = RESUME_IN_CHILD.format(
        tests=os.path.dirname(__file__),
        src=str(tmp_path / "after3.tsck"),
        dst=str(tmp_path / "after5.tsck"),
        optimizer=optimizer,
        evolution=evolution,
    )
    result = processes.run_python(code)
    assert result.returncode == 0, result.stderr
    assert_same_model(ts.load(tmp_path / "after5.tsck"), straight)


# -- planned runs ------------------------------------------------------------------------------
PLANNED = dict(
    optimizer=ts.SGD(lr=0.05, momentum=0.9, schedule=ts.CosineLR(T_max=72)),
    evolution=ts.RigL(delta_t=4, alpha=0.3),  # T_end = 75% of the planned 72 steps
)

KILLED_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import truesparse as ts
    from test_checkpoint import PLANNED, build, data
    X, y = data()
    model = build()
    model.fit(X, y, epochs=6, batch_size=10, checkpoint={path!r}, checkpoint_every=1,
              callback=lambda record: print("epoch", record["epoch"], flush=True), **PLANNED)
    print("finished", flush=True)
    """
)


def test_a_planned_run_killed_and_continued_equals_the_uninterrupted_run(tmp_path):
    X, y = data()
    uninterrupted = build()
    uninterrupted.fit(X, y, epochs=6, batch_size=10, **PLANNED)

    path = tmp_path / "run.tsck"
    code = KILLED_CHILD.format(tests=os.path.dirname(__file__), path=str(path))
    with processes.started_python(code) as proc:
        for expected in ("epoch 1", "epoch 2", "epoch 3"):
            assert proc.stdout.readline().strip() == expected, proc.stderr.read()
        proc.send_signal(signal.SIGKILL)  # during epoch 4 (or its checkpoint)
        proc.wait(timeout=60)
    resumed = ts.load(path)
    done = resumed.planned_run["done"]
    assert done in (3, 4) and resumed.planned_run["epochs"] == 6  # the last finished epoch's
    history = resumed.fit(X, y, epochs=6, batch_size=10, initial_epoch=done, **PLANNED)
    assert len(history["loss"]) == 6  # the plan's history, continued
    assert_same_model(resumed, uninterrupted)


def test_split_calls_without_initial_epoch_are_two_plans():
    """What initial_epoch is for: two fit calls of 3 epochs plan 3 epochs each (the cosine
    schedule and RigL's T_end restart), so they differ from one 6-epoch run."""
    X, y = data()
    one, two = build(), build()
    one.fit(X, y, epochs=6, batch_size=10, **PLANNED)
    two.fit(X, y, epochs=3, batch_size=10, **PLANNED)
    two.fit(X, y, epochs=3, batch_size=10, **PLANNED)
    assert not np.array_equal(one.layers[0].W.data, two.layers[0].W.data)


def test_initial_epoch_checks_the_plan(tmp_path):
    X, y = data()
    fresh = build()
    with pytest.raises(ValueError, match=r"\[Sequential.fit\] initial_epoch=0 .* has none"):
        fresh.fit(X, y, epochs=6, initial_epoch=0)
    model = build()
    model.fit(X, y, epochs=6, batch_size=10, callback=lambda r: r["epoch"] < 2, **PLANNED)
    with pytest.raises(ValueError, match=r"done 2 epochs of its 6-epoch plan: .*initial_epoch=2"):
        model.fit(X, y, epochs=6, batch_size=10, initial_epoch=3, **PLANNED)
    with pytest.raises(ValueError, match="with epochs 6, but this call has epochs 8"):
        model.fit(X, y, epochs=8, batch_size=10, initial_epoch=2, **PLANNED)
    with pytest.raises(ValueError, match="with batch_size 10, but this call has batch_size 20"):
        model.fit(X, y, epochs=6, batch_size=20, initial_epoch=2, **PLANNED)
    with pytest.raises(ValueError, match="with optimizer"):
        model.fit(X, y, epochs=6, batch_size=10, initial_epoch=2, evolution=PLANNED["evolution"])
    with pytest.raises(ValueError, match="initial_epoch must be an integer >= 0"):
        model.fit(X, y, epochs=6, batch_size=10, initial_epoch=-1, **PLANNED)
    history = model.fit(X, y, epochs=6, batch_size=10, initial_epoch=2, **PLANNED)
    assert len(history["loss"]) == 6


def test_checkpoint_every_k_epochs_and_after_the_last(tmp_path):
    X, y = data()
    saved_at = []
    path = tmp_path / "every.tsck"

    def after(record):
        saved_at.append(ts.load(path)._epochs_done if path.exists() else 0)

    build().fit(X, y, epochs=5, batch_size=10, checkpoint=path, checkpoint_every=2, callback=after)
    assert saved_at == [0, 2, 2, 4, 5]
    with pytest.raises(ValueError, match=r"checkpoint_every must be an integer >= 1, got 0"):
        build().fit(X, y, checkpoint=path, checkpoint_every=0)
    with pytest.raises(ValueError, match="the directory of checkpoint .* does not exist"):
        build().fit(X, y, checkpoint=tmp_path / "missing" / "c.tsck")


# -- the file ------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    model = build()
    fit(model, "adam", "rigl", 2)
    path = tmp_path / "m.tsck"
    model.save(path, metadata={"run": "test", "seed": 7})
    return model, path


def test_the_file_is_read_without_truesparse(saved):
    model, path = saved
    with zipfile.ZipFile(path) as z:
        header = json.loads(z.read("header.json"))
    assert header["format"] == "truesparse-checkpoint" and header["version"] == 1
    assert header["metadata"] == {"run": "test", "seed": 7}
    assert header["model"]["layers"][0] == {"type": "Linear", "size": 24, "density": 0.3}
    with np.load(path, allow_pickle=False) as z:
        W = model.layers[0].W
        assert np.array_equal(z["state/modules.0.indptr"], W.indptr)
        assert np.array_equal(z["state/modules.0.indices"], W.indices)
        assert np.array_equal(z["state/modules.0.W"], W.data)
        assert np.array_equal(z["history/loss"], model.history_["loss"])
        for member, info in header["arrays"].items():
            assert list(z[member].shape) == info["shape"] and z[member].dtype.str == info["dtype"]
    assert checkpoint.read_metadata(path) == {"run": "test", "seed": 7}


def rewrite(path, edit):
    """Rewrites the archive at path with edit(name, bytes) -> bytes or None (drop)."""
    with zipfile.ZipFile(path) as z:
        members = [(name, z.read(name)) for name in z.namelist()]
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members:
            content = edit(name, content)
            if content is not None:
                z.writestr(name, content)


def edit_header(path, change):
    def edit(name, content):
        if name != "header.json":
            return content
        header = json.loads(content)
        change(header)
        return json.dumps(header)

    rewrite(path, edit)


def write_foreign_npz(path):
    with path.open("wb") as f:
        np.savez(f, a=np.zeros(3))


def flip_byte(name, content):
    if name != "state/modules.0.W.npy":
        return content
    return content[:-1] + bytes([content[-1] ^ 1])


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a ZIP archive"),
        (lambda p: p.write_bytes(b""), "not a ZIP archive"),
        (lambda p: p.write_text("hello"), "not a ZIP archive"),
        (write_foreign_npz, "it has no header.json"),
        (lambda p: rewrite(p, flip_byte), "modules.0.W.npy' does not match its checksum"),
        (
            lambda p: rewrite(p, lambda n, c: None if n == "state/modules.0.b.npy" else c),
            "member 'state/modules.0.b.npy' is missing",
        ),
        (
            lambda p: rewrite(p, lambda n, c: b"{" if n == "header.json" else c),
            "header.json cannot be read",
        ),
        (lambda p: edit_header(p, lambda h: h.update(format="other")), "does not name"),
        (
            lambda p: edit_header(p, lambda h: h.update(version=2)),
            "has format version 2 .* reads versions up to 1: upgrade truesparse",
        ),
        (
            lambda p: edit_header(p, lambda h: h["model"]["layers"][0].update(type="os.system")),
            "unknown layer type 'os.system'",
        ),
        (
            lambda p: edit_header(p, lambda h: h["model"]["layers"][0].update(size=25)),
            "is corrupted: modules.0.b has 24 entries, the model needs 25",
        ),
    ],
    ids=[
        "truncated",
        "empty",
        "text",
        "foreign-npz",
        "flipped-byte",
        "missing-array",
        "bad-header",
        "foreign-format",
        "newer-version",
        "unknown-layer",
        "wrong-architecture",
    ],
)
def test_a_damaged_or_foreign_file_is_refused_naming_it(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises(ValueError, match=message) as info:
        ts.load(path)
    assert str(path) in str(info.value) and str(info.value).startswith("[load]")


def test_a_missing_file_or_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"\[load\] no such file"):
        ts.load(tmp_path / "none.tsck")
    with pytest.raises(ValueError, match=r"\[save\] the directory of .* does not exist"):
        build().save(tmp_path / "missing" / "m.tsck")
    with pytest.raises(ValueError, match=r"\[save\] metadata must be JSON-serialisable"):
        build().save(tmp_path / "m.tsck", metadata={"x": object()})
    assert not (tmp_path / "m.tsck").exists()


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal
    import truesparse as ts
    from truesparse import io
    model = ts.MLP([12, 64, 3], density=0.5, seed=1)
    def die(fd):  # the new checkpoint is written but not yet renamed into place
        os.kill(os.getpid(), signal.SIGKILL)
    io.os.fsync = die
    model.save({path!r})
    """
)


def test_a_writer_killed_mid_save_leaves_the_previous_checkpoint(saved, tmp_path):
    model, path = saved
    result = processes.run_python(KILLED_WRITER.format(path=str(path)))
    assert result.returncode == -signal.SIGKILL
    assert_same_model(ts.load(path), model)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] != []  # its debris
    # ... which the next save does not mind
    model.save(path)
    assert_same_model(ts.load(path), model)


# -- pickle, copies, classes ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pickle_and_deepcopy_round_trip(dtype):
    model = build(dtype)
    fit(model, "sgd", "set", 2)
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert_same_model(twin, model)
        assert twin.dtype == model.dtype
        assert twin.layers[0]._model is twin  # the views belong to the copy
        X = data()[0]
        assert np.array_equal(twin.forward(X), model.forward(X))
        fit(twin, "sgd", "set", 1)
        assert twin._epochs_done == model._epochs_done + 1


def test_an_mlp_stays_an_mlp(tmp_path):
    model = ts.MLP([12, 32, 3], density=0.3, activation="tanh", loss="cross_entropy", seed=2)
    model.save(tmp_path / "mlp.tsck")
    loaded = ts.load(tmp_path / "mlp.tsck")
    assert type(loaded) is ts.MLP and loaded.activation == "tanh"
    assert repr(loaded) == repr(model)
    X = data()[0]
    assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("backend", ["native", "mkl"])
def test_load_builds_the_layers_without_drawing_weights(tmp_path, backend):
    """load builds the network empty (no pattern sampled, no weight drawn: most of the time of
    a large model's load) and fills it from the file alone."""
    model = ts.Sequential(12, build()._specs, seed=7, backend=backend)
    fit(model, "sgd", "set", 1)
    empty = ts.Sequential.__new__(ts.Sequential)
    empty._setup(12, model._specs, draw_weights=False, dtype=np.float32, **model._options)
    for layer in empty.layers:
        assert layer.nnz == 0 if layer.is_sparse else not layer.W.any()
    empty._core.set_state(model._core.get_state())
    X = data()[0]
    assert np.array_equal(empty.forward(X), model.forward(X))
    model.save(tmp_path / "m.tsck")
    assert_same_model(ts.load(tmp_path / "m.tsck"), model)


def test_a_model_never_trained_resumes_too(tmp_path):
    model = build()
    model.save(tmp_path / "new.tsck")
    loaded = ts.load(tmp_path / "new.tsck")
    assert_same_model(loaded, model)
    assert loaded.layers[0].DW is None  # no gradients until it trains
