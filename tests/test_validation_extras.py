"""The parameters of the modules around the model (issue 12): the scikit-learn estimators, the
feature selectors, EarlyStopping, the progress bars, interop (PyTorch, .npz), checkpoints, the
data sets, the atomic writer, the configuration files and the plots. Like the optimizers,
layers and evolutions (test_validation.py) they check every parameter with
``truesparse._checks`` before doing any work: a TypeError for a value of the wrong type (bools
are no numbers, floats are no integers, strings are no numbers), a ValueError for a value out
of range or not finite, both starting with ``[op]`` and naming the parameter and the value.
Good values given as numpy scalars give the same results as Python values.

The estimators and selectors check in ``fit`` (scikit-learn's convention: ``__init__`` only
stores), before the data is looked at.
"""

from __future__ import annotations

import argparse
import io as _io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import processes
import truesparse as ts
from conftest import match_all
from test_validation import NON_FINITE, WRONG_TYPE, _case_id
from truesparse import _checks, callbacks, checkpoint, datasets, interop, progress
from truesparse import config as tsconfig
from truesparse import io as tsio

pytestmark = pytest.mark.usefixtures("one_thread")

NAN, INF = float("nan"), float("inf")
RNG = np.random.default_rng(0)
X = RNG.random((30, 6))
Y = np.arange(30) % 3


def _model():
    return ts.MLP([4, 3, 2], density=0.5, seed=0)


def _sklearn():
    return pytest.importorskip("truesparse.sklearn")


def _selection():
    return pytest.importorskip("truesparse.feature_selection")


def _classifier(tmp, **kw):
    sk = _sklearn()
    return sk.SparseMLPClassifier(**{"hidden_layer_sizes": (4,), "max_iter": 1, **kw}).fit(X, Y)


def _regressor(tmp, **kw):
    sk = _sklearn()
    return sk.SparseMLPRegressor(**{"hidden_layer_sizes": (4,), "max_iter": 1, **kw}).fit(
        X, X[:, 0]
    )


def _quick(tmp, **kw):
    fs = _selection()
    return fs.QuickSelection(**{"k": 2, "hidden_size": 4, "epochs": 1, **kw}).fit(X)


def _neurofs(tmp, **kw):
    fs = _selection()
    return fs.NeuroFS(**{"k": 2, "hidden_layer_sizes": (4,), "epochs": 1, **kw}).fit(X, Y)


def _removal_schedule(tmp, **kw):
    fs = _selection()
    return fs.removal_schedule(**{"n_features": 20, "k": 5, "epochs": 10, **kw})


def _select_top_k(tmp, **kw):
    fs = _selection()
    return fs.select_top_k(**{"scores": [3.0, 1.0, 2.0], "k": 2, **kw})


def _torch():
    return pytest.importorskip("torch")


def _sparse_linear(tmp, **kw):
    torch = _torch()
    args = {
        "in_features": 4,
        "out_features": 2,
        "crow_indices": torch.tensor([0, 1, 1]),
        "col_indices": torch.tensor([0]),
        "values": torch.ones(1),
    }
    return interop.SparseLinear(**{**args, **kw})


def _from_scipy(tmp, **kw):
    _torch()
    import scipy.sparse as sp

    return interop.SparseLinear.from_scipy(**{"W": sp.csr_array(np.eye(3)), **kw})


STATE_DICT = {"fc.weight": np.ones((3, 4)), "fc.bias": np.zeros(3)}


def _plot():
    pytest.importorskip("matplotlib")
    from truesparse import plot

    return plot


HISTORY = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.75]}


def _closing(figure_maker):
    """Call a plot function and close the figure it makes (pyplot keeps them)."""

    def run(tmp, **kw):
        fig = figure_maker(tmp, **kw)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return fig

    return run


def _parser():
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--epochs", type=int)
    return parser


# op -> a call of it with valid values for the other parameters (``tmp`` a temporary directory)
BUILD = {
    "SparseMLPClassifier.fit": _classifier,
    "SparseMLPRegressor.fit": _regressor,
    "QuickSelection.fit": _quick,
    "NeuroFS.fit": _neurofs,
    "removal_schedule": _removal_schedule,
    "select_top_k": _select_top_k,
    "EarlyStopping": lambda tmp, **kw: callbacks.EarlyStopping(**kw),
    "EpochProgress": lambda tmp, **kw: progress.EpochProgress(
        **{"examples": 10, "file": _io.StringIO(), **kw}
    ),
    "epoch_progress_factory": lambda tmp, **kw: progress.epoch_progress_factory(**kw),
    "from_torch": lambda tmp, **kw: interop.from_torch(
        **{"source": STATE_DICT, "activation": "relu", **kw}
    ),
    "to_torch": lambda tmp, **kw: (_torch(), interop.to_torch(**kw)),
    "SparseLinear": _sparse_linear,
    "SparseLinear.from_scipy": _from_scipy,
    "AllReLU": lambda tmp, **kw: (_torch(), interop.AllReLU(**kw)),
    "SReLU": lambda tmp, **kw: (_torch(), interop.SReLU(**kw)),
    "Affine": lambda tmp, **kw: (_torch(), interop.Affine(**{"num_features": 3, **kw})),
    "export_npz": lambda tmp, **kw: interop.export_npz(
        **{"model": _model(), "path": tmp / "w.npz", **kw}
    ),
    "load_npz": lambda tmp, **kw: interop.load_npz(**kw),
    "save": lambda tmp, **kw: checkpoint.save(**{"model": _model(), "path": tmp / "m.ts", **kw}),
    "dumps": lambda tmp, **kw: checkpoint.dumps(**kw),
    "load": lambda tmp, **kw: checkpoint.load(**kw),
    "loads": lambda tmp, **kw: checkpoint.loads(**kw),
    "read_metadata": lambda tmp, **kw: checkpoint.read_metadata(**kw),
    "datasets.load": lambda tmp, **kw: datasets.load(**{"name": "digits", **kw}),
    "random_split": lambda tmp, **kw: datasets.random_split(**{"X": X, "y": Y, **kw}),
    "stratified_split": lambda tmp, **kw: datasets.stratified_split(**{"X": X, "y": Y, **kw}),
    "datasets.synthetic": lambda tmp, **kw: datasets.synthetic(
        **{"n": 10, "d": 3, "classes": 2, **kw}
    ),
    "read_idx": lambda tmp, **kw: datasets.read_idx(**kw),
    "atomic_file": lambda tmp, **kw: tsio.atomic_file(**{"path": tmp / "a", **kw}).__enter__(),
    "write_text_atomic": lambda tmp, **kw: tsio.write_text_atomic(
        **{"path": tmp / "t", "text": "x", **kw}
    ),
    "write_json_atomic": lambda tmp, **kw: tsio.write_json_atomic(
        **{"path": tmp / "j", "obj": {}, **kw}
    ),
    "config.read": lambda tmp, **kw: tsconfig.read(**kw),
    "config.from_file": lambda tmp, **kw: tsconfig.from_file(
        **{"path": tmp / "c.toml", "parser": _parser(), **kw}
    ),
    "config.check": lambda tmp, **kw: tsconfig.check(**{"table": {}, "parser": _parser(), **kw}),
    "config.options": lambda tmp, **kw: tsconfig.options(**{"parser": _parser(), **kw}),
    "config.to_toml": lambda tmp, **kw: tsconfig.to_toml(**kw),
    "config.to_arguments": lambda tmp, **kw: tsconfig.to_arguments(
        **{"config": {}, "parser": _parser(), **kw}
    ),
    "config.resolve_exclusive": lambda tmp, **kw: tsconfig.resolve_exclusive(
        **{"args": argparse.Namespace(), "given": {}, "parser": _parser(), **kw}
    ),
    "plot.history": _closing(lambda tmp, **kw: _plot().history(**{"history": HISTORY, **kw})),
    "plot.topology": _closing(lambda tmp, **kw: _plot().topology(**kw)),
    "plot.run": _closing(lambda tmp, **kw: _plot().run(**{"data": HISTORY, **kw})),
    "plot.image_format": lambda tmp, **kw: _plot().image_format(**kw),
    "plot.degrees": lambda tmp, **kw: _plot().degrees(**kw),
}

_ESTIMATORS = ("SparseMLPClassifier.fit", "SparseMLPRegressor.fit")
_SELECTORS = ("QuickSelection.fit", "NeuroFS.fit")

# (op, parameter, kind, bad values in range of the type, optional) for the generated cases.
PARAMETERS = [
    *[
        (op, name, kind, bad, optional)
        for op in _ESTIMATORS
        for name, kind, bad, optional in [
            ("density", "real", [0, -0.1, 1.5], False),
            ("epsilon", "real", [0, -1], True),
            ("init", "choice", ["ERK", "random"], False),
            ("erk_power", "real", [-1], False),
            ("dense_first", "flag", [], False),
            ("dense_last", "flag", [], False),
            ("activation", "choice", ["logistic", "RELU"], False),
            ("activation_alpha", "real", [], False),
            ("batch_norm", "flag", [], False),
            ("dropout", "real", [-0.1, 1.0], False),
            ("weight_init", "choice", ["zeros"], False),
            ("sparse_fan_in", "choice", ["all"], False),
            ("solver", "choice", ["lbfgs", "SGD"], False),
            ("learning_rate_init", "real", [0, -1e-3], False),
            ("momentum", "real", [-0.1, 1.0], False),
            ("nesterovs_momentum", "flag", [], False),
            ("beta_1", "real", [-0.1, 1.0], False),
            ("beta_2", "real", [1.0, 2], False),
            ("adam_epsilon", "real", [0, -1e-8], False),
            ("weight_decay", "real", [-1e-4], False),
            ("new_weight_warmup", "int", [-1, 65535], False),
            ("warmup_steps", "int", [-1, 2**63], False),
            ("max_iter", "int", [0, -1], False),
            ("shuffle", "flag", [], False),
            ("tol", "real", [-1e-4], True),
            ("n_iter_no_change", "int", [0], False),
            ("zeta", "real", [-0.1, 1.5], False),
            ("drop_fraction", "real", [-0.1, 1.5], False),
            ("delta_t", "int", [0, -3], True),
            ("warm_start", "flag", [], False),
            ("backend", "choice", ["cuda"], False),
            ("operand_dtype", "choice", ["bf16", "float16"], False),
        ]
    ],
    ("SparseMLPClassifier.fit", "label_smoothing", "real", [-0.1, 1.5], False),
    ("SparseMLPRegressor.fit", "loss", "choice", ["absolute_error"], False),
    *[
        (op, name, kind, bad, optional)
        for op in _SELECTORS
        for name, kind, bad, optional in [
            ("k", "int", [0, -1], False),
            ("epsilon", "real", [0, -1], False),
            ("activation", "choice", ["gelu"], False),
            ("weight_init", "choice", ["ones"], False),
            ("epochs", "int", [0], False),
            ("batch_size", "int", [0], False),
            ("learning_rate", "real", [0, -0.1], False),
            ("momentum", "real", [-0.1, 1], False),
            ("weight_decay", "real", [-1], False),
        ]
    ],
    ("QuickSelection.fit", "hidden_size", "int", [0, 2**31], False),
    ("QuickSelection.fit", "zeta", "real", [-0.1, 1.5], False),
    ("QuickSelection.fit", "input_noise", "real", [-0.1], False),
    ("QuickSelection.fit", "dropout", "real", [-0.1, 1.0], False),
    ("NeuroFS.fit", "zeta_in", "real", [-0.1, 1.0], False),
    ("NeuroFS.fit", "zeta_hid", "real", [-0.1, 1.5], False),
    ("NeuroFS.fit", "frac_epoch_remove", "real", [0, 1.5], False),
    ("removal_schedule", "n_features", "int", [0, -5], False),
    ("removal_schedule", "k", "int", [0, 21], False),
    ("removal_schedule", "epochs", "int", [-1], False),
    ("removal_schedule", "zeta_in", "real", [-0.1, 1.0], False),
    ("removal_schedule", "frac_epoch_remove", "real", [0, 1.5], False),
    ("select_top_k", "k", "int", [-1], False),
    ("EarlyStopping", "patience", "int", [-1], False),
    ("EarlyStopping", "min_delta", "real", [-0.1], False),
    ("EarlyStopping", "mode", "choice", ["up", "MIN"], False),
    ("EarlyStopping", "restore_best_weights", "flag", [], False),
    ("EpochProgress", "examples", "int", [-1], False),
    ("EpochProgress", "batch_size", "int", [0], True),
    ("EpochProgress", "epoch", "int", [-1], True),
    ("EpochProgress", "epochs", "int", [-1], True),
    ("EpochProgress", "verbose", "int", [-1], False),
    ("EpochProgress", "leave", "flag", [], False),
    ("from_torch", "activation", "choice", ["gelu"], True),
    ("from_torch", "alpha", "real", [], False),
    ("from_torch", "loss", "choice", ["hinge"], True),
    ("from_torch", "label_smoothing", "real", [-0.1, 1.5], False),
    ("from_torch", "fold_batch_norm", "flag", [], False),
    ("from_torch", "weight_init", "choice", ["zeros"], False),
    ("from_torch", "sparse_fan_in", "choice", ["all"], False),
    ("from_torch", "seed", "int", [-1, 2**64], False),
    ("from_torch", "backend", "choice", ["cuda"], False),
    ("from_torch", "operand_dtype", "choice", ["bf16"], False),
    ("SparseLinear", "in_features", "int", [0, -4], False),
    ("SparseLinear", "out_features", "int", [0], False),
    ("AllReLU", "alpha", "real", [], False),
    ("AllReLU", "layer", "int", [0, -1], False),
    ("SReLU", "tl", "real", [], False),
    ("SReLU", "al", "real", [], False),
    ("SReLU", "tr", "real", [], False),
    ("SReLU", "ar", "real", [], False),
    ("Affine", "num_features", "int", [0], False),
    ("export_npz", "compressed", "flag", [], False),
    ("datasets.load", "name", "choice", ["mnist6k", "Digits"], False),
    ("datasets.load", "seed", "int", [-1], False),
    ("random_split", "test_fraction", "real", [0, 1, -0.5, 1.5], False),
    ("random_split", "seed", "int", [-1], False),
    ("stratified_split", "test_fraction", "real", [0.0, 1.0], False),
    ("stratified_split", "seed", "int", [-2], False),
    ("datasets.synthetic", "n", "int", [0, -1], False),
    ("datasets.synthetic", "d", "int", [0], False),
    ("datasets.synthetic", "classes", "int", [0], False),
    ("datasets.synthetic", "seed", "int", [-1], False),
    ("datasets.synthetic", "noise", "real", [-1], False),
    ("atomic_file", "mode", "choice", ["r", "a", "w+"], False),
    ("write_json_atomic", "indent", "int", [-1], True),
    ("plot.history", "dpi", "real", [0, -72], True),
    ("plot.run", "dpi", "real", [0], True),
]


# The values of the wrong type for each kind (None too unless the parameter is optional) and
# the non-finite numbers are test_validation's.
def _generated():
    cases = []
    for op, name, kind, bad, optional in PARAMETERS:
        for value in WRONG_TYPE[kind] + ([] if optional else [None]):
            cases.append((op, {name: value}, TypeError, [name, value]))
        for value in NON_FINITE if kind == "real" else []:
            cases.append((op, {name: value}, ValueError, [name, value]))
        for value in bad:
            cases.append((op, {name: value}, ValueError, [name, value]))
    return cases


def _estimators(params, error, words):
    return [(op, params, error, words) for op in _ESTIMATORS]


# Cases written out: sequences, parameters of several types, paths, combined conditions.
EXPLICIT = [
    # the estimators' hidden_layer_sizes: an integer or a sequence of integers >= 1
    *_estimators({"hidden_layer_sizes": 2.5}, TypeError, ["hidden_layer_sizes", "2.5"]),
    *_estimators({"hidden_layer_sizes": True}, TypeError, ["hidden_layer_sizes", "True"]),
    *_estimators({"hidden_layer_sizes": "8"}, TypeError, ["hidden_layer_sizes", "'8'"]),
    *_estimators({"hidden_layer_sizes": None}, TypeError, ["hidden_layer_sizes", "None"]),
    *_estimators({"hidden_layer_sizes": (8, 2.5)}, TypeError, ["hidden_layer_sizes[1]", "2.5"]),
    *_estimators({"hidden_layer_sizes": (8, True)}, TypeError, ["hidden_layer_sizes[1]", "True"]),
    *_estimators({"hidden_layer_sizes": (8.0,)}, TypeError, ["hidden_layer_sizes[0]", "8.0"]),
    *_estimators({"hidden_layer_sizes": (8, 0)}, ValueError, ["hidden_layer_sizes[1]", "0"]),
    *_estimators({"hidden_layer_sizes": -3}, ValueError, ["hidden_layer_sizes[0]", "-3"]),
    *_estimators(
        {"hidden_layer_sizes": (2**31,)}, ValueError, ["hidden_layer_sizes[0]", str(2**31)]
    ),
    *_estimators(
        {"hidden_layer_sizes": np.array([[8]])}, TypeError, ["hidden_layer_sizes", "ndarray"]
    ),
    ("NeuroFS.fit", {"hidden_layer_sizes": ()}, ValueError, ["hidden_layer_sizes", "()"]),
    ("NeuroFS.fit", {"hidden_layer_sizes": 2.5}, TypeError, ["hidden_layer_sizes", "2.5"]),
    ("NeuroFS.fit", {"hidden_layer_sizes": (4, 0)}, ValueError, ["hidden_layer_sizes[1]", "0"]),
    # densities: one number in (0, 1] per layer (hidden_layer_sizes (4,): 2 layers)
    *_estimators({"densities": [0.5]}, ValueError, ["densities", "2 entries", "1"]),
    *_estimators({"densities": 0.5}, TypeError, ["densities", "0.5"]),
    *_estimators({"densities": "ab"}, TypeError, ["densities", "'ab'"]),
    *_estimators({"densities": [0.5, "a"]}, TypeError, ["densities[1]", "'a'"]),
    *_estimators({"densities": [True, 0.5]}, TypeError, ["densities[0]", "True"]),
    *_estimators({"densities": [0.5, NAN]}, ValueError, ["densities[1]", "nan"]),
    *_estimators({"densities": [0.0, 0.5]}, ValueError, ["densities[0]", "0.0"]),
    *_estimators({"densities": [0.5, 1.5]}, ValueError, ["densities[1]", "1.5"]),
    *_estimators({"densities": [0.5, 0.5], "epsilon": 2}, ValueError, ["at most one", "densities"]),
    # batch_size: "auto" or an integer >= 1
    *_estimators({"batch_size": "all"}, TypeError, ["batch_size", "'auto'", "'all'"]),
    *_estimators({"batch_size": True}, TypeError, ["batch_size", "True"]),
    *_estimators({"batch_size": 2.0}, TypeError, ["batch_size", "2.0"]),
    *_estimators({"batch_size": None}, TypeError, ["batch_size", "None"]),
    *_estimators({"batch_size": 0}, ValueError, ["batch_size", "0"]),
    # verbose: an integer >= 0, or True/False as scikit-learn's estimators take
    *_estimators({"verbose": 1.5}, TypeError, ["verbose", "1.5"]),
    *_estimators({"verbose": "1"}, TypeError, ["verbose", "'1'"]),
    *_estimators({"verbose": None}, TypeError, ["verbose", "None"]),
    *_estimators({"verbose": -1}, ValueError, ["verbose", "-1"]),
    # random_state: None, an integer in [0, 2**64) or a RandomState
    *_estimators({"random_state": True}, TypeError, ["random_state", "True"]),
    *_estimators({"random_state": 1.5}, TypeError, ["random_state", "1.5"]),
    *_estimators({"random_state": "1"}, TypeError, ["random_state", "'1'"]),
    *_estimators(
        {"random_state": np.random.default_rng(0)}, TypeError, ["random_state", "Generator"]
    ),
    *_estimators({"random_state": -1}, ValueError, ["random_state", "-1"]),
    *_estimators({"random_state": 2**64}, ValueError, ["random_state", str(2**64)]),
    # dtype: float32 or float64; None is no dtype (NumPy would read it as float64)
    *_estimators({"dtype": None}, TypeError, ["dtype", "None"]),
    *_estimators({"dtype": np.float16}, TypeError, ["dtype", "float16"]),
    *_estimators({"dtype": "int32"}, TypeError, ["dtype", "'int32'"]),
    *_estimators({"dtype": "nonsense"}, TypeError, ["dtype", "'nonsense'"]),
    ("QuickSelection.fit", {"dtype": None}, TypeError, ["dtype", "None"]),
    ("NeuroFS.fit", {"dtype": np.int32}, TypeError, ["dtype", "int32"]),
    # lr_schedule: "constant", "cosine" or a schedule object; evolution: None, a name or an object
    *_estimators({"lr_schedule": 3}, TypeError, ["lr_schedule", "3"]),
    *_estimators({"lr_schedule": None}, TypeError, ["lr_schedule", "None"]),
    *_estimators({"lr_schedule": "step"}, ValueError, ["lr_schedule", "'step'"]),
    *_estimators(
        {"lr_schedule": ts.LinearWarmup(ts.ConstantLR(), 5), "warmup_steps": 3},
        ValueError,
        ["lr_schedule", "LinearWarmup", "warmup_steps", "3"],
    ),
    *_estimators(
        {"lr_schedule": ts.CosineLR(10, eta_min=0.1), "learning_rate_init": 0.01},
        ValueError,
        ["eta_min", "0.1", "0.01"],
    ),
    *_estimators({"evolution": 3}, TypeError, ["evolution", "3"]),
    *_estimators({"evolution": ts.SGD()}, TypeError, ["evolution", "SGD"]),
    *_estimators({"evolution": "prune"}, ValueError, ["evolution", "'prune'"]),
    # random_state of the selectors
    ("QuickSelection.fit", {"random_state": True}, TypeError, ["random_state", "True"]),
    ("NeuroFS.fit", {"random_state": -1}, ValueError, ["random_state", "-1"]),
    # k against the number of features (6): checked once the data is known
    ("QuickSelection.fit", {"k": 7}, ValueError, ["k", "[1, 6]", "7"]),
    ("NeuroFS.fit", {"k": 7}, ValueError, ["k", "[1, 6]", "7"]),
    # select_top_k's arrays
    ("select_top_k", {"scores": ["a", "b"]}, TypeError, ["scores"]),
    ("select_top_k", {"scores": [[1.0, 2.0]]}, ValueError, ["scores", "1-D", "(1, 2)"]),
    ("select_top_k", {"scores": [1.0, NAN]}, ValueError, ["scores", "NaN"]),
    ("select_top_k", {"allowed": [0, 2, 1]}, TypeError, ["allowed", "int"]),
    ("select_top_k", {"allowed": [True, False]}, ValueError, ["allowed", "(2,)", "(3,)"]),
    # EarlyStopping's monitor, the progress bars' enabled, file and progress
    ("EarlyStopping", {"monitor": 3}, TypeError, ["monitor", "3"]),
    ("EarlyStopping", {"monitor": None}, TypeError, ["monitor", "None"]),
    ("EpochProgress", {"enabled": 1}, TypeError, ["enabled", "1"]),
    ("EpochProgress", {"enabled": "yes"}, TypeError, ["enabled", "'yes'"]),
    ("EpochProgress", {"file": 3}, TypeError, ["file", "3"]),
    ("epoch_progress_factory", {"progress": "yes"}, TypeError, ["progress", "'yes'"]),
    ("epoch_progress_factory", {"progress": 1}, TypeError, ["progress", "1"]),
    # from_torch: the options are checked before the source is read
    ("from_torch", {"source": "garbage", "seed": -1}, ValueError, ["seed", "-1"]),
    ("from_torch", {"dtype": None}, TypeError, ["dtype", "None"]),
    ("from_torch", {"dtype": np.int32}, TypeError, ["dtype", "int32"]),
    ("from_torch", {"dtype": "float16"}, TypeError, ["dtype", "'float16'"]),
    # the torch modules' dtype: None or a floating-point torch dtype
    ("SparseLinear.from_scipy", {"dtype": np.float32}, TypeError, ["dtype", "float32"]),
    ("SReLU", {"dtype": "float64"}, TypeError, ["dtype", "'float64'"]),
    ("Affine", {"dtype": 3}, TypeError, ["dtype", "3"]),
    # a model where one is expected
    ("to_torch", {"model": {}}, TypeError, ["model", "dict"]),
    ("export_npz", {"model": "model"}, TypeError, ["model", "str"]),
    ("save", {"model": None}, TypeError, ["model", "NoneType"]),
    ("dumps", {"model": 3}, TypeError, ["model", "int"]),
    ("plot.degrees", {"model": [1, 2]}, TypeError, ["model", "list"]),
    ("loads", {"data": "text"}, TypeError, ["data", "str"]),
    ("loads", {"data": None}, TypeError, ["data", "NoneType"]),
    # paths: a str or os.PathLike of str, not empty; a file to read exists, one to write has
    # an existing directory and is no directory
    *[
        (op, {"path": value}, TypeError, ["path", shown])
        for op in (
            "export_npz",
            "load_npz",
            "save",
            "load",
            "read_metadata",
            "atomic_file",
            "write_text_atomic",
            "write_json_atomic",
            "config.read",
            "config.from_file",
            "plot.history",
            "plot.image_format",
        )
        for value, shown in ((3, "3"), (None, "None"), (b"x.npz", "b'x.npz'"), (2.5, "2.5"))
        if not (value is None and op == "plot.history")  # None: do not save
    ],
    *[
        (op, {"path": ""}, ValueError, ["path", "empty"])
        for op in ("export_npz", "load_npz", "save", "load", "atomic_file", "config.read")
    ],
    *[
        (op, {"path": "/no/such/dir/file.x"}, FileNotFoundError, ["no such file"])
        for op in ("load_npz", "load", "read_metadata")
    ],
    *[
        (op, {"path": "/no/such/dir/file.png"}, ValueError, ["directory", "does not exist"])
        for op in ("export_npz", "save", "plot.history", "plot.run")
    ],
    ("load", {"path": "/"}, FileNotFoundError, ["no such file", "directory"]),
    ("save", {"path": "/"}, ValueError, ["path", "is a directory"]),
    ("datasets.load", {"path": 3}, TypeError, ["path", "3"]),
    ("read_idx", {"path": 3}, TypeError, ["path", "3"]),
    ("read_idx", {"path": None}, TypeError, ["path", "None"]),
    ("plot.history", {"path": "curves.xyz"}, ValueError, ["curves.xyz", "'xyz'"]),
    ("plot.image_format", {"path": "curves.xyz"}, ValueError, ["curves.xyz", "'xyz'"]),
    # the splits' arrays
    ("random_split", {"X": 5}, TypeError, ["X", "5"]),
    ("random_split", {"y": Y[:5]}, ValueError, ["30 rows", "5"]),
    # the atomic writer's text, the configuration functions' parser and tables
    ("write_text_atomic", {"text": b"x"}, TypeError, ["text", "bytes"]),
    ("write_text_atomic", {"text": None}, TypeError, ["text", "None"]),
    ("config.check", {"table": [1]}, TypeError, ["table", "list"]),
    ("config.check", {"parser": None}, TypeError, ["parser", "NoneType"]),
    ("config.from_file", {"parser": "x"}, TypeError, ["parser", "str"]),
    ("config.options", {"parser": {}}, TypeError, ["parser", "dict"]),
    ("config.options", {"exclude": "config"}, TypeError, ["exclude", "'config'"]),
    ("config.to_toml", {"config": [("a", 1)]}, TypeError, ["config", "list"]),
    ("config.to_toml", {"config": {"x": {"nested": 1}}}, TypeError, ["config['x']", "dict"]),
    ("config.to_toml", {"config": {"x": [1, None]}}, TypeError, ["config['x']", "None"]),
    ("config.to_arguments", {"config": None}, TypeError, ["config", "NoneType"]),
    ("config.to_arguments", {"parser": 3}, TypeError, ["parser", "int"]),
    ("config.resolve_exclusive", {"given": None}, TypeError, ["given", "NoneType"]),
    # the plots' data, title and axes
    ("plot.history", {"history": [1.0, 2.0]}, TypeError, ["history", "list"]),
    ("plot.history", {"history": {"accuracy": [0.5]}}, ValueError, ["'loss'"]),
    ("plot.history", {"history": {"loss": []}}, ValueError, ["no epochs"]),
    ("plot.history", {"title": 3}, TypeError, ["title", "3"]),
    ("plot.history", {"ax": 3}, TypeError, ["ax", "3"]),
    ("plot.history", {"ax": [None, None, None]}, ValueError, ["ax", "2 entries", "3"]),
    ("plot.history", {"ax": (None, None)}, TypeError, ["ax[0]", "None"]),
    ("plot.topology", {"history": "run.json"}, TypeError, ["history", "str"]),
    ("plot.topology", {"history": {"loss": [1.0]}}, ValueError, ["nothing to draw"]),
    ("plot.topology", {"history": HISTORY, "fig": 3}, TypeError, ["fig", "3"]),
    ("plot.run", {"data": None}, TypeError, ["data", "NoneType"]),
    ("plot.run", {"data": {"accuracy": [1.0]}}, ValueError, ["'loss'"]),
    ("plot.run", {"title": ["a"]}, TypeError, ["title", "['a']"]),
]

CASES = _generated() + EXPLICIT
# The op of the messages where it is not the key of BUILD: the checkpoint's bytes and header
# functions speak as save and load (what pickle and the command line's --resume call them).
MESSAGE_OP = {"dumps": "save", "loads": "load", "read_metadata": "load"}


@pytest.mark.parametrize(("op", "kwargs", "error", "words"), CASES, ids=map(_case_id, CASES))
def test_bad_value_is_refused_with_op_name_and_value(op, kwargs, error, words, tmp_path):
    with pytest.raises(error) as info:
        BUILD[op](tmp_path, **kwargs)
    message = str(info.value)
    assert type(info.value) is error, (type(info.value), message)
    assert message.startswith(f"[{MESSAGE_OP.get(op, op)}] "), message
    assert "\n" not in message
    for word in words:
        shown = word if isinstance(word, str) else _checks.show(word)
        if isinstance(word, (float, np.floating)) and math.isnan(word):
            shown = "nan"
        assert re.search(match_all(shown), message), (shown, message)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_every_parameter_of_the_estimators_and_selectors_is_covered():
    """Each parameter of the estimators, the selectors and EarlyStopping has bad cases."""
    import inspect

    sk, fs = _sklearn(), _selection()
    covered = {(op, name) for op, kwargs, _, _ in CASES for name in kwargs}
    classes = {
        "SparseMLPClassifier.fit": sk.SparseMLPClassifier,
        "SparseMLPRegressor.fit": sk.SparseMLPRegressor,
        "QuickSelection.fit": fs.QuickSelection,
        "NeuroFS.fit": fs.NeuroFS,
        "EarlyStopping": callbacks.EarlyStopping,
        "EpochProgress": progress.EpochProgress,
    }
    missing = [
        (op, name)
        for op, cls in classes.items()
        for name in inspect.signature(cls.__init__).parameters
        if name != "self" and (op, name) not in covered
    ]
    assert missing == []


def test_estimators_check_their_parameters_before_the_data():
    """scikit-learn's order: a bad parameter is reported even when the data is bad too."""
    sk = _sklearn()
    for est in (
        sk.SparseMLPClassifier(max_iter=0),
        sk.SparseMLPRegressor(max_iter=0),
        _selection().QuickSelection(epochs=0),
        _selection().NeuroFS(epochs=0),
    ):
        with pytest.raises(ValueError, match=r"\] epochs must|\] max_iter must"):
            est.fit(np.full((3, 2), np.nan), [0, 1, 2])


def test_estimator_errors_from_the_model_name_the_estimator():
    """What only MLP can check (erk_power too large for these sizes) starts with the
    estimator's op."""
    sk = _sklearn()
    with pytest.raises(ValueError, match=match_all("[SparseMLPClassifier.fit]", "erk_power")):
        sk.SparseMLPClassifier(hidden_layer_sizes=(1000,), erk_power=1000).fit(X, Y)


# -- good values: numpy scalars give the results of the Python values ---------------------------
def test_estimator_numpy_scalars_give_the_same_model():
    sk = _sklearn()
    python = dict(
        hidden_layer_sizes=(8,),
        density=0.5,
        max_iter=2,
        batch_size=10,
        random_state=3,
        learning_rate_init=0.01,
        beta_1=0.5,
        delta_t=2,
        evolution="set",
        zeta=0.25,
        shuffle=True,
        verbose=0,
        new_weight_warmup=2,
        warmup_steps=3,
        tol=None,
        dtype="float64",
    )
    numpy = dict(
        python,
        hidden_layer_sizes=np.array([8]),
        density=np.float32(0.5),
        max_iter=np.int64(2),
        batch_size=np.int32(10),
        random_state=np.uint64(3),
        learning_rate_init=np.float64(0.01),
        beta_1=np.float32(0.5),
        delta_t=np.int16(2),
        evolution=np.str_("set"),
        zeta=np.float64(0.25),
        shuffle=np.True_,
        verbose=np.False_,
        new_weight_warmup=np.int8(2),
        warmup_steps=np.int64(3),
        dtype=np.float64,
    )
    a = sk.SparseMLPClassifier(**python).fit(X, Y)
    b = sk.SparseMLPClassifier(**numpy).fit(X, Y)
    assert a.loss_curve_ == b.loss_curve_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    r = sk.SparseMLPRegressor(**dict(numpy, hidden_layer_sizes=np.int64(4))).fit(X, X[:, 0])
    assert r.model_.sizes == [6, 4, 1]


def test_selector_numpy_scalars_give_the_same_selection():
    fs = _selection()
    quick = dict(k=2, hidden_size=8, epochs=2, batch_size=10, random_state=1, zeta=0.25)
    a = fs.QuickSelection(**quick).fit(X)
    b = fs.QuickSelection(
        k=np.int64(2),
        hidden_size=np.int32(8),
        epochs=np.uint8(2),
        batch_size=np.int64(10),
        random_state=np.int64(1),
        zeta=np.float32(0.25),
        dtype="float32",
    ).fit(X)
    np.testing.assert_array_equal(a.feature_importances_, b.feature_importances_)
    neuro = dict(k=2, hidden_layer_sizes=(8,), epochs=4, batch_size=10, random_state=2)
    c = fs.NeuroFS(**neuro, zeta_in=0.5).fit(X, Y)
    d = fs.NeuroFS(**dict(neuro, hidden_layer_sizes=np.array([8]), k=np.int8(2)), zeta_in=0.5)
    d.fit(X, Y)
    np.testing.assert_array_equal(c.support_, d.support_)
    assert (
        fs.removal_schedule(
            np.int64(784), np.int32(50), np.int64(100), np.float64(0.2), np.float32(0.625)
        ).tolist()
        == fs.removal_schedule(784, 50, 100, 0.2, 0.625).tolist()
    )
    assert fs.removal_schedule(10, 2, 0).tolist() == []  # no epochs: nothing to remove
    np.testing.assert_array_equal(
        fs.select_top_k(np.array([1.0, 3.0, 2.0]), np.int64(2), np.array([True, True, False])),
        [True, True, False],
    )
    assert fs.select_top_k([1.0, 2.0], 0).tolist() == [False, False]
    assert fs.select_top_k([1.0, 2.0], 5).tolist() == [True, True]  # fewer than k: all


def test_callbacks_and_progress_take_numpy_scalars():
    stop = callbacks.EarlyStopping(
        "loss", patience=np.int64(3), min_delta=np.float32(0.5), restore_best_weights=np.True_
    )
    assert (stop.patience, stop.min_delta, stop.restore_best_weights) == (3, 0.5, True)
    assert (type(stop.patience), type(stop.min_delta)) == (int, float)
    assert stop.restore_best_weights is True and stop.mode == "min"
    bar = progress.EpochProgress(
        np.int64(100), batch_size=np.int32(30), epoch=np.int64(1), epochs=np.uint8(3),
        verbose=np.int64(0), enabled=np.False_, file=_io.StringIO(), leave=np.True_,
    )  # fmt: skip
    assert (bar.examples, bar.batch_size, bar.batches, bar.enabled) == (100, 30, 4, False)
    assert type(bar.examples) is int
    assert not progress.epoch_progress_factory(np.False_)(10).enabled


def test_interop_takes_numpy_scalars():
    a = interop.from_torch(STATE_DICT, activation="relu", seed=3, label_smoothing=0.25)
    b = interop.from_torch(
        STATE_DICT,
        activation=np.str_("relu"),
        seed=np.uint64(3),
        label_smoothing=np.float32(0.25),
        alpha=np.float64(0.5),
        fold_batch_norm=np.False_,
        dtype=np.dtype("float32"),
    )
    assert (b.seed, b.label_smoothing, b.dtype) == (a.seed, a.label_smoothing, a.dtype)
    np.testing.assert_array_equal(a.forward(X[:, :4]), b.forward(X[:, :4]))
    torch = pytest.importorskip("torch")
    act = interop.AllReLU(np.float32(0.5), np.int64(2))
    assert (act.alpha, act.layer, act.slope) == (0.5, 2, -0.5) and type(act.layer) is int
    layer = interop.SparseLinear(
        np.int64(4), np.int32(2), torch.tensor([0, 1, 1]), torch.tensor([0]), torch.ones(1)
    )
    assert (layer.in_features, layer.out_features) == (4, 2)
    assert interop.Affine(np.int64(3), dtype=torch.float64).gamma.dtype == torch.float64
    srelu = interop.SReLU(np.float32(0.0), np.int64(0), 1, np.float64(1.0))
    assert float(srelu.al.detach()) == 0.0


def test_data_sets_take_numpy_scalars():
    a = datasets.synthetic(20, 3, 2, seed=1, noise=0.5)
    b = datasets.synthetic(np.int64(20), np.int32(3), np.int16(2), seed=np.uint8(1), noise=0.5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = datasets.random_split(X, Y, 0.25, seed=1)
    d = datasets.random_split(X, Y, np.float32(0.25), seed=np.int64(1))
    for x, y in zip(c, d):
        np.testing.assert_array_equal(x, y)
    e = datasets.stratified_split(X, Y, np.float64(0.5), seed=np.int32(4))
    f = datasets.stratified_split(X, Y, 0.5, seed=4)
    for x, y in zip(e, f):
        np.testing.assert_array_equal(x, y)


def test_files_and_plots_take_path_likes_and_numpy_scalars(tmp_path):
    model = _model()
    checkpoint.save(model, tmp_path / "m.ts", metadata={"a": 1})
    assert checkpoint.read_metadata(str(tmp_path / "m.ts")) == {"a": 1}
    assert checkpoint.loads(bytearray(checkpoint.dumps(model))).sizes == model.sizes
    interop.export_npz(model, str(tmp_path / "w.npz"), compressed=np.True_)
    assert len(interop.load_npz(tmp_path / "w.npz")) == 2
    tsio.write_json_atomic(tmp_path / "j.json", {"a": [1]}, indent=np.int64(1))
    assert (tmp_path / "j.json").read_text() == '{\n "a": [\n  1\n ]\n}\n'
    tsio.write_json_atomic(tmp_path / "k.json", {"a": 1}, indent=None)
    assert (tmp_path / "k.json").read_text() == '{"a": 1}\n'
    plot = _plot()
    plot.history(HISTORY, path=tmp_path / "h.png", dpi=np.int64(30), title="t")
    plot.run(HISTORY, path=str(tmp_path / "r.png"), dpi=np.float32(30.5))
    assert (tmp_path / "h.png").stat().st_size > 0 and (tmp_path / "r.png").stat().st_size > 0


def test_config_errors_of_a_file_stay_config_errors(tmp_path):
    """What a file says is a ConfigError (the command line's one line), not a TypeError."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": "x"}))
    with pytest.raises(tsconfig.ConfigError, match=match_all(str(path), "epochs")):
        tsconfig.from_file(path, _parser())
    with pytest.raises(tsconfig.ConfigError, match="no such file"):
        tsconfig.read(Path(tmp_path / "none.toml"))


def test_datasets_loaded_by_its_file_path_works_without_the_package():
    """datasets.py promises to work loaded by its file path, without a built engine: it
    then loads the checks by their file path too."""
    path = Path(datasets.__file__)
    code = f"""
import importlib.util, sys
sys.modules["truesparse"] = None  # no package at all
spec = importlib.util.spec_from_file_location("standalone_datasets", {str(path)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
X, y = module.synthetic(10, 3, 2)
try:
    module.synthetic(10, 3.0, 2)
except TypeError as e:
    print(e)
"""
    out = processes.run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[datasets.synthetic] d must be an integer, got 3.0")
