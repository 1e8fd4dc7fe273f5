"""Tests of truesparse.plot: learning curves and topology panels rendered to image files
(PNG signature, readable by matplotlib, a sensible size), with and without validation data
and topology records; the degree distributions computed from the CSR; matplotlib imported
only when drawing, and a clear ImportError without it."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import processes
import truesparse as ts
from truesparse import datasets
from truesparse import plot as tsplot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 50  # small images: rendering is most of these tests' time


@pytest.fixture(scope="module")
def data():
    X, y = datasets.synthetic(300, 20, 4, seed=0)
    return X[:240], y[:240], X[240:], y[240:]


def train(data, *, validation=True, evolution=None, epochs=3, sizes=(20, 16, 12, 4)):
    X, y, Xv, yv = data
    model = ts.MLP(list(sizes), density=0.3, seed=0)
    start = tsplot.degrees(model)
    history = model.fit(
        X,
        y,
        epochs=epochs,
        batch_size=40,
        optimizer=ts.SGD(lr=0.05, momentum=0.9),
        validation_data=(Xv, yv) if validation else None,
        evolution=evolution,
    )
    history = dict(history)
    return model, history, start


def check_png(path, min_size=(150, 250)):
    """A PNG file that matplotlib reads, at least min_size (rows, columns) pixels."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    assert np.ptp(image[..., :3]) > 0  # not a blank image
    return image.shape


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


# --- degrees: NumPy only ------------------------------------------------------------------


def test_degrees_are_the_histograms_of_the_csr(data):
    model = ts.MLP([20, 16, 12, 4], densities=[0.3, 1.0, 0.5], seed=0)
    found = tsplot.degrees(model)
    assert [d["layer"] for d in found] == [0, 2]  # the dense layer is left out
    for d in found:
        W = model.layers[d["layer"]].W
        rows, cols = W.shape
        dense = W.toarray() != 0
        assert d["shape"] == [rows, cols] and d["nnz"] == W.nnz
        assert d["in_degree_histogram"] == np.bincount(dense.sum(axis=0)).tolist()
        assert d["out_degree_histogram"] == np.bincount(dense.sum(axis=1)).tolist()
        assert sum(d["in_degree_histogram"]) == cols
        assert sum(d["out_degree_histogram"]) == rows
        degrees = np.arange(len(d["in_degree_histogram"]))
        assert int(np.dot(degrees, d["in_degree_histogram"])) == W.nnz
    json.dumps(found)  # JSON-ready: plain ints and lists


def test_degrees_at_the_end_match_the_last_topology_record(data):
    """SET updates after every epoch but the last, so the last record's histograms are the
    final pattern's: the engine's histograms and ours agree."""
    model, history, _ = train(data, evolution=ts.SET(zeta=0.3))
    end = tsplot.degrees(model)
    assert history["topology"]
    for d in end:
        last = [r for r in history["topology"] if r["layer"] == d["layer"]][-1]
        assert d["in_degree_histogram"] == list(last["in_degree_histogram"])
        assert d["out_degree_histogram"] == list(last["out_degree_histogram"])
        assert d["nnz"] == last["nnz"]


# --- learning curves ----------------------------------------------------------------------


@pytest.mark.parametrize("validation", [True, False], ids=["validation", "no-validation"])
def test_history_png(mpl, data, tmp_path, validation):
    _, history, _ = train(data, validation=validation)
    path = tmp_path / "curves.png"
    fig = tsplot.history(history, path=path, dpi=DPI)
    assert isinstance(fig, mpl.figure.Figure)
    check_png(path)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left
    loss_ax, acc_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels == (["train loss", "val loss"] if validation else ["train loss"])
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), history["loss"])
    assert len(acc_ax.get_lines()) == (2 if validation else 1)


def test_history_of_a_json_run_with_nulls(mpl, tmp_path):
    """The JSON output writes NaN as null (an interrupted validation): drawn as a gap."""
    run = {
        "history": {
            "loss": [2.0, 1.5, 1.0],
            "accuracy": [0.2, 0.5, 0.7],
            "val_loss": [2.1, 1.6, None],
            "val_accuracy": [0.2, 0.4, None],
            "time": [0.1, 0.1, 0.1],
        }
    }
    path = tmp_path / "run.png"
    fig = tsplot.history(run, path=path, dpi=DPI)
    check_png(path)
    assert np.isnan(fig.axes[0].get_lines()[1].get_ydata()[-1])


def test_history_without_accuracy_has_one_panel(mpl, tmp_path):
    """A regression history (squared_error, one output) has no accuracies."""
    from matplotlib.figure import Figure

    run = {"history": {"loss": [900.0, 500.0], "val_loss": [950.0, 600.0], "time": [0, 0]}}
    path = tmp_path / "regression.png"
    fig = tsplot.history(run, path=path, dpi=DPI)
    check_png(path, min_size=(150, 200))
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2
    assert len(tsplot.run(run).axes) == 1
    single = Figure().subplots()
    assert len(tsplot.history(run, ax=single).axes) == 1  # no twin axis


def test_history_into_given_axes(mpl, data):
    from matplotlib.figure import Figure

    _, history, _ = train(data, epochs=2)
    fig = Figure()
    pair = fig.subplots(1, 2)
    assert tsplot.history(history, ax=pair) is fig
    assert len(pair[0].get_lines()) == 2 and len(pair[1].get_lines()) == 2
    single = Figure().subplots()
    fig = tsplot.history(history, ax=single)
    assert len(fig.axes) == 2  # accuracy on a twin axis
    assert len(single.get_lines()) == 2


def test_history_without_path_is_a_pyplot_figure(mpl, data):
    import matplotlib.pyplot as plt

    _, history, _ = train(data, epochs=1)
    fig = tsplot.history(history)
    try:
        assert plt.fignum_exists(fig.number)
    finally:
        plt.close(fig)


def test_history_errors(mpl):
    with pytest.raises(ValueError, match="loss"):
        tsplot.history({"accuracy": [0.5]})
    with pytest.raises(ValueError, match="no epochs"):
        tsplot.history({"loss": []})
    with pytest.raises(TypeError):
        tsplot.history([1.0, 2.0])


# --- topology -----------------------------------------------------------------------------


def test_topology_png_with_start_and_end_degrees(mpl, data, tmp_path):
    model, history, start = train(data, evolution=ts.RigL(delta_t=2, alpha=0.3))
    history["degrees"] = {"start": start, "end": tsplot.degrees(model)}
    path = tmp_path / "topology.png"
    fig = tsplot.topology(history, path=path, dpi=DPI)
    check_png(path)
    sparse = [d["layer"] for d in start]
    assert len(fig.axes) == 3 * len(sparse)
    itop = fig.axes[0]
    steps = [r["step"] for r in history["topology"] if r["layer"] == sparse[0]]
    line = [ln for ln in itop.get_lines() if ln.get_label() == "ITOP rate"][0]
    assert list(line.get_xdata()) == steps
    in_degrees = fig.axes[1]
    labels = [text.get_text() for text in in_degrees.get_legend().get_texts()]
    assert labels[0].startswith("start") and labels[1].startswith("end")


def test_topology_png_from_records_alone(mpl, data, tmp_path):
    """Without degree snapshots the distribution after the last update is drawn."""
    model, history, _ = train(data, evolution=ts.SET(zeta=0.3), validation=False)
    path = tmp_path / "topology.png"
    fig = tsplot.topology(history, path=path, dpi=DPI)  # fit recorded the degrees
    check_png(path)
    labels = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert len(labels) == 2 and labels[0].startswith("start") and labels[1].startswith("end")
    assert history["degrees"]["end"] == tsplot.degrees(model)
    del history["degrees"]
    fig = tsplot.topology(history, path=path, dpi=DPI)
    check_png(path)
    labels = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert len(labels) == 1 and labels[0].startswith("after the last update")


def test_topology_of_a_static_run_with_degrees(mpl, data, tmp_path):
    model, history, start = train(data)
    assert "topology" not in history
    history["degrees"] = {"start": start, "end": tsplot.degrees(model)}
    path = tmp_path / "static.png"
    tsplot.topology(history, path=path, dpi=DPI)
    check_png(path)


def test_topology_with_nothing_to_draw(mpl, data):
    _, history, _ = train(data, epochs=1)
    with pytest.raises(ValueError, match="no topology records"):
        tsplot.topology(history)


# --- a whole run --------------------------------------------------------------------------


def test_run_draws_topology_panels_only_with_records(mpl, data, tmp_path):
    model, history, start = train(data, evolution=ts.SET(zeta=0.3))
    history["degrees"] = {"start": start, "end": tsplot.degrees(model)}
    fig = tsplot.run(history, path=tmp_path / "with.png", dpi=DPI)
    with_shape = check_png(tmp_path / "with.png")
    assert len(fig.axes) == 2 + 3 * len(start)

    _, static, _ = train(data)
    fig = tsplot.run(static, path=tmp_path / "without.png", dpi=DPI)
    without_shape = check_png(tmp_path / "without.png")
    assert len(fig.axes) == 2
    assert with_shape[0] > without_shape[0]  # taller with the topology rows


def test_other_formats_and_replacing_a_file(mpl, data, tmp_path):
    _, history, _ = train(data, epochs=1)
    svg = tmp_path / "curves.svg"
    tsplot.history(history, path=svg, dpi=DPI)
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    png = tmp_path / "curves.png"
    png.write_bytes(b"old")
    tsplot.history(history, path=png, dpi=DPI)
    check_png(png)


def test_unknown_format_writes_nothing(mpl, data, tmp_path):
    _, history, _ = train(data, epochs=1)
    target = tmp_path / "curves.xyz"
    with pytest.raises(ValueError, match="curves.xyz"):
        tsplot.history(history, path=target)
    assert list(tmp_path.iterdir()) == []


# --- matplotlib is optional ---------------------------------------------------------------


def test_without_matplotlib_the_error_names_the_extra(monkeypatch, data):
    _, history, _ = train(data, epochs=1)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "truesparse\[plot\]"'):
        tsplot.history(history)
    with pytest.raises(ImportError, match=r"truesparse\[plot\]"):
        tsplot.run(history)


def test_importing_the_module_does_not_import_matplotlib():
    result = processes.run_python(
        "import sys, truesparse as ts, truesparse.plot as p; "
        "p.degrees(ts.MLP([8, 4, 2], density=0.5)); "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    assert result.returncode == 0, result.stderr
