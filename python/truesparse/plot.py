"""Pictures of a training run: learning curves and the topology of the sparse layers.

    import truesparse.plot
    history = model.fit(X, y, epochs=20, validation_data=(Xv, yv), evolution=ts.SET())
    truesparse.plot.history(history, path="curves.png")     # loss and accuracy per epoch
    truesparse.plot.topology(history, path="topology.png")  # ITOP rate and degree distributions
    truesparse.plot.run(json.load(open("run.json")), path="run.png")  # `truesparse train --json`

Each function returns the matplotlib ``Figure``; given ``path`` it also saves it, atomically
(the format follows the suffix: png, pdf, svg, ...). matplotlib is an optional dependency
(``pip install "truesparse[plot]"``), imported only when something is drawn; without a
display (and without ``ax``/``fig`` and ``path``) the Agg backend is used. :func:`degrees`
needs only NumPy. The pictures are described in docs/plots.md.
"""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._checks import _got, real, sequence
from .checkpoint import check_model
from .io import atomic_file, file_to_write, path_argument

__all__ = ["degrees", "history", "image_format", "run", "topology"]

INSTALL_HINT = 'pip install "truesparse[plot]"'
PathLike = Union[str, "os.PathLike[str]"]


# --- degrees: what topology() draws at the start and the end of training -----------------------


def degrees(model) -> list[dict]:
    """The degree distributions of every sparse layer of ``model`` now, one dict per layer:

    ``layer`` (index among the linear layers, as in the topology records), ``shape``
    ``[out, in]``, ``nnz``, ``in_degree_histogram`` (``h[d]`` = number of input neurons,
    i.e. columns, with d stored weights) and ``out_degree_histogram`` (the same for output
    neurons, rows): the fields and meaning of the topology records' histograms, as lists of
    ints (JSON-ready). Dense layers are left out.
    """
    check_model(model, "plot.degrees")
    out = []
    for index, layer in enumerate(model.layers):
        if not layer.is_sparse:
            continue
        rows, cols = layer.shape
        indptr, indices = model._core.layer_pattern(index)  # the pattern without its values
        out_degree = np.diff(np.asarray(indptr, dtype=np.int64))
        in_degree = np.bincount(np.asarray(indices, dtype=np.int64), minlength=cols)
        out.append(
            {
                "layer": index,
                "shape": [int(rows), int(cols)],
                "nnz": int(indices.size),
                "in_degree_histogram": np.bincount(in_degree).tolist(),
                "out_degree_histogram": np.bincount(out_degree).tolist(),
            }
        )
    return out


# --- matplotlib, imported on first use ---------------------------------------------------------


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"truesparse.plot needs matplotlib: {INSTALL_HINT}") from None
    return matplotlib


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _new_figure(figsize: tuple[float, float], standalone: bool):
    """A new Figure. ``standalone`` (the caller only saves it): a plain Figure outside pyplot,
    which never opens a window and is freed with its last reference. Otherwise through
    pyplot, so that ``plt.show()`` and notebooks show it; without a display and without a
    backend chosen by the user, that is the non-interactive Agg backend."""
    matplotlib = _matplotlib()
    if standalone:
        from matplotlib.figure import Figure

        return Figure(figsize=figsize, layout="constrained")
    if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        if not _has_display():
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def image_format(path: PathLike) -> str:
    """The image format of ``path``, from its suffix (``png`` without one); ``ValueError``
    naming the path when matplotlib cannot write that format."""
    return _image_format(path, "plot.image_format")


def _image_format(path: PathLike, op: str) -> str:
    path = path_argument(path, op)
    _matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix[1:].lower() or "png"
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"[{op}] {path}: cannot write {fmt!r} images; use one of {', '.join(sorted(supported))}"
        )
    return fmt


def _output(op: str, path, title, dpi) -> tuple[Optional[str], Optional[float]]:
    """The options every drawing function takes, checked before anything is drawn: ``path``
    (None, or a file that can be written in a format matplotlib writes), ``title`` (None or
    a str) and ``dpi`` (None or a number > 0)."""
    if path is not None:
        path = file_to_write(path, op)
        _image_format(path, op)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"[{op}] title must be a str or None, got {_got(title)}")
    if dpi is not None:
        dpi = real(dpi, "dpi", op, low=0, low_open=True)
    return path, dpi


def _save(fig, path: Optional[str], dpi: Optional[float]) -> None:
    if path is None:
        return
    fmt = Path(path).suffix[1:].lower() or "png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)  # rendered first: a failure leaves no file
    with atomic_file(path, "wb") as f:
        f.write(buffer.getvalue())


# --- reading histories -------------------------------------------------------------------------


def _history_of(data: dict, op: str, name: str) -> dict:
    """The per-epoch lists: ``fit``'s history, or the ``history`` of a run's JSON output."""
    _check_dict(data, op, name)
    inner = data.get("history")
    return inner if isinstance(inner, dict) else data


def _values(series: Sequence[Any]) -> np.ndarray:
    """Floats; None (how the JSON output writes NaN and infinity) becomes NaN."""
    return np.array([math.nan if v is None else float(v) for v in series], dtype=np.float64)


def _check_dict(data, op: str, name: str) -> None:
    if not isinstance(data, dict):
        raise TypeError(
            f"[{op}] {name} must be a dict (fit's history or the JSON of truesparse train "
            f"--json), got {type(data).__name__}"
        )


# --- learning curves ---------------------------------------------------------------------------


def history(
    history: dict,
    *,
    ax=None,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: Optional[float] = None,
):
    """Learning curves: loss and accuracy per epoch, of training (running over the epoch's
    batches, as ``fit`` reports them) and of the validation data when the history has
    ``val_loss``/``val_accuracy``.

    history: what ``fit`` returns (``model.history_``), or the dict of a
        ``truesparse train --json`` file (its ``history`` is used).
    ax: None (a new figure with a loss and an accuracy panel), a pair of Axes (loss,
        accuracy), or one Axes (loss on it, accuracy on a twin y axis).
    path: also save the figure there (atomically; the format follows the suffix).
    Returns the Figure.
    """
    op = "plot.history"
    h = _history_of(history, op, "history")
    path, dpi = _output(op, path, title, dpi)
    if "loss" not in h:
        raise ValueError(
            f"[{op}] the history has no 'loss': expected fit's history or a run's JSON"
        )
    loss = _values(h["loss"])
    if loss.size == 0:
        raise ValueError(f"[{op}] the history has no epochs")
    if ax is not None:
        ax = _axes(ax, op)
    has_accuracy = "accuracy" in h or "val_accuracy" in h
    twin = False
    if ax is None:
        fig = _new_figure((10, 4) if has_accuracy else (6, 4), standalone=path is not None)
        panels = fig.subplots(1, 2 if has_accuracy else 1, squeeze=False)[0]
        loss_ax, acc_ax = panels[0], panels[1] if has_accuracy else None
    elif isinstance(ax, (list, tuple, np.ndarray)):
        loss_ax, acc_ax = ax
        fig = loss_ax.figure
        if not has_accuracy:
            acc_ax.set_axis_off()
            acc_ax = None
    else:
        loss_ax, fig = ax, ax.figure
        if has_accuracy:
            acc_ax, twin = ax.twinx(), True
        else:
            acc_ax = None
    _draw_history(h, loss_ax, acc_ax, twin=twin)
    if title is not None:
        fig.suptitle(title)
    _save(fig, path, dpi)
    return fig


def _axes(ax, op: str):
    """``ax``: one matplotlib Axes, or a sequence of two (a list, tuple or array)."""
    if isinstance(ax, (list, tuple, np.ndarray)):
        pair = sequence(ax, "ax", op, length=2)
        for i, a in enumerate(pair):
            if not hasattr(a, "plot"):
                raise TypeError(f"[{op}] ax[{i}] must be a matplotlib Axes, got {_got(a)}")
        return pair
    if not (hasattr(ax, "plot") and hasattr(ax, "twinx")):
        raise TypeError(f"[{op}] ax must be a matplotlib Axes or a pair of them, got {_got(ax)}")
    return ax


def _draw_history(h: dict, loss_ax, acc_ax, twin: bool = False) -> None:
    """Loss curves on ``loss_ax``; accuracy curves on ``acc_ax`` unless it is None (a history
    without accuracies: regression); ``twin``: ``acc_ax`` shares ``loss_ax``'s x axis."""
    epochs = np.arange(1, len(h["loss"]) + 1)
    style = {"marker": "o" if len(epochs) <= 30 else None, "markersize": 3}
    loss_ax.plot(epochs, _values(h["loss"]), color="C0", label="train loss", **style)
    if "val_loss" in h:
        loss_ax.plot(epochs, _values(h["val_loss"]), color="C1", label="val loss", **style)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    axes = [loss_ax]
    if acc_ax is not None:
        dashed = {"linestyle": "--"} if twin else {}
        for key, color, label in (
            ("accuracy", "C0", "train accuracy"),
            ("val_accuracy", "C1", "val accuracy"),
        ):
            if key in h:
                acc_ax.plot(epochs, _values(h[key]), color=color, label=label, **style, **dashed)
        acc_ax.set_ylabel("accuracy")
        axes.append(acc_ax)
    if twin:
        lines = loss_ax.get_lines() + acc_ax.get_lines()
        loss_ax.legend(lines, [line.get_label() for line in lines])
    else:
        loss_ax.set_title("loss")
        if acc_ax is not None:
            acc_ax.set_title("accuracy")
            acc_ax.set_xlabel("epoch")
        for a in axes:
            a.legend()
            a.grid(True, alpha=0.3)
    for a in axes:
        a.xaxis.get_major_locator().set_params(integer=True)


# --- topology ----------------------------------------------------------------------------------


def _topology_of(data: dict, op: str, name: str) -> tuple[list[dict], dict]:
    """(topology records, degree snapshots {"start": [...], "end": [...]}) of ``fit``'s
    history or of a run's JSON output (both keep them at the top level)."""
    _check_dict(data, op, name)
    records = data.get("topology") or []
    snapshots = data.get("degrees") or {}
    return list(records), dict(snapshots)


def _layers_of(records: list[dict], snapshots: dict) -> list[int]:
    found = {int(r["layer"]) for r in records}
    for snapshot in snapshots.values():
        found.update(int(d["layer"]) for d in snapshot or [])
    return sorted(found)


def topology(
    history: dict,
    *,
    fig=None,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: Optional[float] = None,
):
    """Per sparse layer, one row of three panels: the ITOP rate after each topology update
    (by training step, with the layer's density for reference), and the distributions of
    the in-degrees (input neurons) and out-degrees (output neurons) at the start and at the
    end of training.

    history: ``fit``'s history or the dict of a ``truesparse train --json`` file. The
        records are its ``topology`` list (``fit(evolution=...)``); the start and end degree
        distributions its ``degrees``: ``{"start": degrees(model) before training,
        "end": degrees(model) after}`` (see :func:`degrees`). Without ``degrees`` the
        distribution after the last update (from the last record) is drawn alone.
    fig: draw into this Figure (or SubFigure) instead of a new one.
    path: also save the figure there (atomically; the format follows the suffix).
    Returns the Figure. ``ValueError`` when there is nothing to draw.
    """
    op = "plot.topology"
    records, snapshots = _topology_of(history, op, "history")
    path, dpi = _output(op, path, title, dpi)
    if fig is not None and not hasattr(fig, "subplots"):
        raise TypeError(f"[{op}] fig must be a matplotlib Figure or SubFigure, got {_got(fig)}")
    layers = _layers_of(records, snapshots)
    if not layers:
        raise ValueError(
            f"[{op}] nothing to draw: the history has no topology records (fit with evolution=...) "
            "and no degree distributions"
        )
    if fig is None:
        fig = _new_figure((13, 3.2 * len(layers)), standalone=path is not None)
    _draw_topology(fig, records, snapshots, layers)
    if title is not None:
        fig.suptitle(title)
    _save(fig, path, dpi)
    return fig


def _draw_topology(fig, records: list[dict], snapshots: dict, layers: list[int]) -> None:
    axes = fig.subplots(len(layers), 3, squeeze=False)
    for row, layer in zip(axes, layers):
        mine = [r for r in records if int(r["layer"]) == layer]
        start = _snapshot(snapshots.get("start"), layer)
        end = _snapshot(snapshots.get("end"), layer)
        _draw_itop(row[0], layer, mine, start or end)
        if end is None and mine:
            end = dict(mine[-1], label="after the last update")
        for ax, key, what in (
            (row[1], "in_degree_histogram", "in-degree (input neurons)"),
            (row[2], "out_degree_histogram", "out-degree (output neurons)"),
        ):
            for snapshot, label, color in ((start, "start", "C0"), (end, "end", "C3")):
                if snapshot is None:
                    continue
                h = np.asarray(snapshot[key], dtype=np.int64)
                if h.size == 0:
                    continue
                ax.stairs(
                    h,
                    np.arange(h.size + 1) - 0.5,
                    color=color,
                    linewidth=1.5,
                    label=f"{snapshot.get('label', label)} ({_degree_summary(h)})",
                )
            ax.set_title(f"layer {layer}: {what}")
            ax.set_xlabel("degree (stored weights per neuron)")
            ax.set_ylabel("neurons")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize="small")
            ax.grid(True, alpha=0.3)


def _degree_summary(h: np.ndarray) -> str:
    """ "max D, sd S" of the degrees whose histogram is ``h``."""
    d = np.arange(h.size, dtype=np.float64)
    n = max(1.0, float(h.sum()))
    mean = float(np.dot(d, h)) / n
    sd = math.sqrt(max(0.0, float(np.dot(d * d, h)) / n - mean * mean))
    return f"max {int(np.flatnonzero(h)[-1]) if h.any() else 0}, sd {sd:.2f}"


def _snapshot(snapshot: Optional[list[dict]], layer: int) -> Optional[dict]:
    for d in snapshot or []:
        if int(d["layer"]) == layer:
            return d
    return None


def _density(record: dict) -> Optional[float]:
    """nnz / (out · in) of a record or snapshot; a histogram counts every neuron once."""
    if "shape" in record:
        out, inp = record["shape"]
    else:
        inp = int(np.sum(record["in_degree_histogram"]))
        out = int(np.sum(record["out_degree_histogram"]))
    return int(record["nnz"]) / (out * inp) if out and inp else None


def _draw_itop(ax, layer: int, records: list[dict], reference: Optional[dict]) -> None:
    ax.set_title(f"layer {layer}: ITOP rate")
    ax.set_xlabel("training step")
    ax.set_ylabel("fraction of positions ever active")
    density = _density(reference or (records[0] if records else {"nnz": 0, "shape": [0, 0]}))
    if density is not None:
        ax.axhline(
            density, color="0.5", linestyle="--", linewidth=1, label=f"density {density:.3g}"
        )
    if records:
        steps = [int(r["step"]) for r in records]
        rates = [float(r["itop_rate"]) for r in records]
        ax.plot(
            steps,
            rates,
            color="C2",
            marker="o" if len(steps) <= 50 else None,
            markersize=3,
            label="ITOP rate",
        )
    else:
        ax.text(0.5, 0.5, "no topology updates", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)


# --- a whole run -------------------------------------------------------------------------------


def run(
    data: dict,
    *,
    path: Optional[PathLike] = None,
    title: Optional[str] = None,
    dpi: Optional[float] = None,
):
    """The learning curves of a run and, when it has topology records, the topology panels
    below them, in one figure (what ``truesparse plot`` draws).

    data: the dict of a ``truesparse train --json`` file, or ``fit``'s history (with
        ``topology`` and ``degrees`` when recorded).
    Returns the Figure; saves it to ``path`` when given.
    """
    op = "plot.run"
    h = _history_of(data, op, "data")
    path, dpi = _output(op, path, title, dpi)
    if "loss" not in h:
        raise ValueError(
            f"[{op}] no 'history' with 'loss': expected the JSON of truesparse train --json"
        )
    records, snapshots = _topology_of(data, op, "data")
    layers = _layers_of(records, snapshots) if records else []
    height = 4.0 + 3.2 * len(layers)
    fig = _new_figure((13, height), standalone=path is not None)
    if layers:
        top, bottom = fig.subfigures(2, 1, height_ratios=[4.0, 3.2 * len(layers)])
    else:
        top, bottom = fig, None
    if "accuracy" in h or "val_accuracy" in h:
        loss_ax, acc_ax = top.subplots(1, 2)
    else:  # regression: no accuracies, the loss alone
        loss_ax, acc_ax = top.subplots(), None
    _draw_history(h, loss_ax, acc_ax)
    if bottom is not None:
        _draw_topology(bottom, records, snapshots, layers)
    if title is None:
        title = _run_title(data)
    if title:
        fig.suptitle(title)
    _save(fig, path, dpi)
    return fig


def _run_title(data: dict) -> str:
    """dataset, layer sizes and evolution of a run's JSON output ('' for a bare history)."""
    config = data.get("config")
    if not isinstance(config, dict):
        return ""
    parts = []
    if config.get("dataset"):
        parts.append(str(config["dataset"]))
    if data.get("sizes"):
        parts.append("-".join(str(s) for s in data["sizes"]))
    if config.get("evolution") not in (None, "none"):
        parts.append(str(config["evolution"]))
    if data.get("test_accuracy") is not None:
        parts.append(f"test accuracy {float(data['test_accuracy']):.4f}")
    elif data.get("test_loss") is not None:  # regression
        parts.append(f"test loss {float(data['test_loss']):.4g}")
    return " | ".join(parts)
