"""truesparse.feature_selection: QuickSelection and NeuroFS as scikit-learn feature selectors.

scikit-learn's estimator checks, then what they do not cover: the importances are the column
sums of |W| of the trained first layer (a NumPy recomputation), QuickSelection trains exactly
the denoising autoencoder its parameters describe, NeuroFS follows its removal schedule
(recomputed here from the reference code's rule) and removes the weakest remaining inputs,
transform picks the columns of get_support, Pipeline / clone / pickle, determinism for a
fixed random_state (also across thread counts), recovery of the informative features of
make_classification, and the parameter errors.

Everything runs on one thread (tiny networks: threads waiting for each other on a busy machine
only cost time), except the test that compares thread counts.
"""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import truesparse as ts
from truesparse.feature_selection import (
    NeuroFS,
    QuickSelection,
    removal_schedule,
    select_top_k,
)

# Small settings: the tests train many networks.
QS_SMALL = dict(hidden_size=24, epochs=6, batch_size=32, random_state=0)
NF_SMALL = dict(hidden_layer_sizes=(24, 24), epochs=8, batch_size=32, random_state=0)


pytestmark = pytest.mark.usefixtures("one_thread")  # small data: see conftest


@pytest.fixture(scope="module")
def data():
    """40 features: 5 informative (columns 0-4, shuffle=False), 35 noise; scaled to [0, 1]."""
    X, y = make_classification(
        n_samples=300,
        n_features=40,
        n_informative=5,
        n_redundant=0,
        n_repeated=0,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=1.5,
        shuffle=False,
        random_state=0,
    )
    return MinMaxScaler().fit_transform(X), y


# -- scikit-learn's checks -----------------------------------------------------------------------
@parametrize_with_checks(
    [
        QuickSelection(k=1, hidden_size=8, epochs=3),
        NeuroFS(k=1, hidden_layer_sizes=(8,), epochs=4),
    ]
)
def test_sklearn_checks(estimator, check):
    # k=1: the checks use data with a single feature. All checks pass; the array-API checks
    # are skipped by scikit-learn itself unless SCIPY_ARRAY_API=1.
    check(estimator)


# -- what the selection is -----------------------------------------------------------------------
def column_strength(W) -> np.ndarray:
    """Σ_i |W[i, j]| of every column j, from the layer's W as a dense float64 array."""
    dense = W.toarray() if hasattr(W, "toarray") else np.asarray(W)
    return np.abs(dense.astype(np.float64)).sum(axis=0)


def top_k(scores, k, allowed=None) -> set:
    """The k largest scores, by NumPy's stable sort (ties: the lower index)."""
    index = np.arange(len(scores)) if allowed is None else np.flatnonzero(allowed)
    order = index[np.argsort(-np.asarray(scores)[index], kind="stable")]
    return set(order[:k].tolist())


@pytest.mark.parametrize("Selector", [QuickSelection, NeuroFS])
def test_importances_are_the_column_sums_of_abs_W(Selector, data):
    X, y = data
    small = QS_SMALL if Selector is QuickSelection else NF_SMALL
    sel = Selector(k=6, **small).fit(X, y)
    W = sel.model_.layers[0].W
    expected = column_strength(W)
    assert sel.feature_importances_.dtype == np.float64
    assert sel.feature_importances_.shape == (40,)
    np.testing.assert_allclose(sel.feature_importances_, expected, rtol=1e-12, atol=0)
    allowed = None if Selector is QuickSelection else ~sel.model_.removed_inputs
    assert set(np.flatnonzero(sel.get_support()).tolist()) == top_k(expected, 6, allowed)
    assert sel.get_support().sum() == 6


def test_transform_picks_the_columns_of_get_support(data):
    X, y = data
    sel = QuickSelection(k=7, **QS_SMALL).fit(X)
    mask = sel.get_support()
    columns = sel.get_support(indices=True)
    np.testing.assert_array_equal(columns, np.flatnonzero(mask))
    Xt = sel.transform(X)
    assert Xt.shape == (300, 7) and Xt.dtype == X.dtype
    np.testing.assert_array_equal(Xt, X[:, columns])
    np.testing.assert_array_equal(sel.fit_transform(X), Xt)  # same seed, same selection
    back = sel.inverse_transform(Xt)
    np.testing.assert_array_equal(back[:, columns], Xt)
    assert not back[:, ~mask].any()
    names = sel.get_feature_names_out()
    assert list(names) == [f"x{j}" for j in columns]


def test_select_top_k_breaks_ties_by_index():
    scores = np.array([1.0, 3.0, 3.0, 0.5, 3.0])
    np.testing.assert_array_equal(select_top_k(scores, 2), [0, 1, 1, 0, 0])
    allowed = np.array([1, 0, 1, 1, 1], dtype=bool)
    np.testing.assert_array_equal(select_top_k(scores, 3, allowed), [1, 0, 1, 0, 1])
    np.testing.assert_array_equal(select_top_k(-scores, 1), [0, 0, 0, 1, 0])  # the weakest


def test_quickselection_trains_the_denoising_autoencoder_it_describes(data):
    """The same network built and trained by hand with the engine's API: bitwise the same."""
    X, _ = data
    sel = QuickSelection(k=5, **QS_SMALL).fit(X)
    model = sel.model_
    assert model.sizes == [40, 24, 40] and model.loss == "squared_error"
    assert [repr(s) for s in model.specs][1:3] == ["Sigmoid()", "Dropout(p=0.2)"]
    densities = ts.epsilon_densities([40, 24, 40], 13)
    assert [layer.nnz for layer in model.layers] == [
        round(d * 40 * 24) for d in densities
    ]  # SET keeps nnz
    assert len(model.history_["topology"]) == 2 * (QS_SMALL["epochs"] - 1)  # SET, both layers

    twin = ts.MLP(
        [40, 24, 40],
        densities=densities,
        activation="sigmoid",
        loss="squared_error",
        dropout=0.2,
        sparse_fan_in="dense",
        seed=0,
    )
    weights = np.random.default_rng([0, 0x51])  # "normal": N(0, 0.1²), biases 0
    for layer in twin.layers:
        W = layer.W
        W.data = weights.normal(0.0, 0.1, W.nnz)
        layer.set_weights(W, np.zeros(layer.shape[0]))
    twin.fit(
        X.astype(np.float32),
        X.astype(np.float32),
        epochs=6,
        batch_size=32,
        optimizer=ts.SGD(lr=0.01, momentum=0.9, weight_decay=1e-5),
        evolution=ts.SET(zeta=0.2, regrow="normal", regrow_std=0.1),
        input_noise=0.2,
    )
    for a, b in zip(model.layers, twin.layers):
        np.testing.assert_array_equal(a.W.toarray(), b.W.toarray())
    np.testing.assert_array_equal(sel.feature_importances_, twin.input_strength())
    assert sel.loss_curve_ == twin.history_["loss"]


def test_quickselection_ignores_y(data):
    X, y = data
    a = QuickSelection(k=5, **QS_SMALL).fit(X)
    b = QuickSelection(k=5, **QS_SMALL).fit(X, y)
    np.testing.assert_array_equal(a.feature_importances_, b.feature_importances_)


# -- NeuroFS's removal schedule ------------------------------------------------------------------
def reference_schedule(D, k, epochs, zeta_in, frac):
    """The reference code's rule, transcribed: R = int((1 - zeta_in) D - k) inputs in all;
    after epoch t (from 2 on) remove ceil((R - removed) / (t_remove - t)) while removed < R,
    t_remove = int(epochs * frac); here also no update after the last epoch."""
    total = max(0, int((1 - zeta_in) * D - k))
    t_remove = min(int(epochs * frac), epochs - 1)
    first = max(0, min(2, t_remove - 1))
    removed, out = 0, []
    for t in range(epochs):
        n = 0
        if first <= t < t_remove and removed < total:
            n = math.ceil((total - removed) / (t_remove - t))
        removed += n
        out.append(n)
    return out


@pytest.mark.parametrize(
    "D, k, epochs, zeta_in, frac",
    [(784, 50, 100, 0.2, 0.65), (64, 16, 100, 0.2, 0.65), (40, 5, 8, 0.2, 0.65), (10, 1, 3, 0.2, 0.65),
     (30, 10, 20, 0.0, 1.0), (13, 5, 1, 0.2, 0.65), (20, 18, 10, 0.2, 0.65)],
)  # fmt: skip
def test_removal_schedule_follows_the_reference_rule(D, k, epochs, zeta_in, frac):
    schedule = removal_schedule(D, k, epochs, zeta_in, frac)
    assert schedule.dtype == np.int64 and schedule.shape == (epochs,)
    assert schedule.tolist() == reference_schedule(D, k, epochs, zeta_in, frac)
    assert schedule[-1] == 0  # nothing after the last epoch
    assert schedule.sum() == max(0, int((1 - zeta_in) * D - k)) or epochs < 2


def test_removal_schedule_of_the_papers_setting():
    s = removal_schedule(784, 50, 100)
    assert s.sum() == 577  # 784 - 577 = 207 = 50 + 0.2 * 784 inputs remain
    assert np.flatnonzero(s).tolist() == list(range(2, 65))  # after epochs 2 to 64
    assert set(s[2:65].tolist()) == {9, 10}


def test_neurofs_removes_the_weakest_remaining_inputs_on_schedule(data, monkeypatch):
    """Every removal takes the weakest remaining inputs by the strength measured after that
    epoch's training; the connections move to the remaining inputs, nnz stays."""
    X, y = data
    calls = []
    strength, remove = ts.MLP.input_strength, ts.MLP.remove_inputs

    def record_strength(model):
        s = strength(model)
        calls.append(("strength", s.copy()))
        return s

    def record_removal(model, columns, *args, **kwargs):
        calls.append(("remove", np.asarray(columns).copy(), model.removed_inputs.copy()))
        return remove(model, columns, *args, **kwargs)

    monkeypatch.setattr(ts.MLP, "input_strength", record_strength)
    monkeypatch.setattr(ts.MLP, "remove_inputs", record_removal)
    sel = NeuroFS(k=5, **NF_SMALL).fit(X, y)
    monkeypatch.undo()

    schedule = removal_schedule(40, 5, NF_SMALL["epochs"])
    np.testing.assert_array_equal(sel.removal_schedule_, schedule)
    removals = [c for c in calls if c[0] == "remove"]
    assert [len(c[1]) for c in removals] == [n for n in schedule if n]
    for i, call in enumerate(calls):
        if call[0] != "remove":
            continue
        before = calls[i - 1][1]  # the strength measured just before this epoch's update
        assert calls[i - 1][0] == "strength"
        remaining = ~call[2]
        assert set(call[1].tolist()) == top_k(-before, len(call[1]), remaining)
    # removal_epoch_ records them; the model agrees; removed inputs hold no connection
    epochs_of_removal = [t for t, n in enumerate(schedule) for _ in range(n)]
    assert sorted(sel.removal_epoch_[sel.removal_epoch_ >= 0].tolist()) == epochs_of_removal
    removed = sel.removal_epoch_ >= 0
    np.testing.assert_array_equal(sel.model_.removed_inputs, removed)
    W = sel.model_.layers[0].W
    assert not np.isin(W.indices, np.flatnonzero(removed)).any()
    np.testing.assert_array_equal(sel.feature_importances_[removed], 0)
    assert not (sel.get_support() & removed).any()
    # the first layer's density: the Erdős–Rényi one, capped so the remaining inputs hold it
    sizes = [40, 24, 24, 3]
    cap = 0.5 * (40 - schedule.sum()) / 40
    density = min(ts.epsilon_densities(sizes, 30)[0], cap)
    assert W.nnz == round(density * 40 * 24)
    assert sel.model_.sizes == sizes and list(sel.classes_) == [0, 1, 2]


def test_neurofs_labels_of_any_kind(data):
    X, y = data
    names = np.array(["a", "b", "c"])[y]
    sel = NeuroFS(k=4, **NF_SMALL).fit(X, names)
    assert list(sel.classes_) == ["a", "b", "c"]
    same = NeuroFS(k=4, **NF_SMALL).fit(X, y + 10)
    np.testing.assert_array_equal(sel.feature_importances_, same.feature_importances_)


# -- scikit-learn plumbing -----------------------------------------------------------------------
@pytest.mark.parametrize("Selector", [QuickSelection, NeuroFS])
def test_pipeline_clone_and_pickle(Selector, data):
    X, y = data
    small = QS_SMALL if Selector is QuickSelection else NF_SMALL
    pipe = make_pipeline(MinMaxScaler(), Selector(k=5, **small), LogisticRegression())
    pipe.fit(X, y)
    sel = pipe[1]
    assert pipe[-1].coef_.shape == (3, 5)
    np.testing.assert_array_equal(pipe[:-1].transform(X), sel.transform(pipe[0].transform(X)))
    if Selector is NeuroFS:  # supervised: finds informative columns (QuickSelection: see below)
        assert pipe.score(X, y) > 0.5  # better than chance (1/3)

    fresh = clone(sel)
    assert fresh.get_params() == sel.get_params()
    assert not hasattr(fresh, "support_")
    with pytest.raises(NotFittedError):
        fresh.transform(X)

    copy = pickle.loads(pickle.dumps(sel))
    np.testing.assert_array_equal(copy.get_support(), sel.get_support())
    np.testing.assert_array_equal(copy.feature_importances_, sel.feature_importances_)
    np.testing.assert_array_equal(copy.transform(X), sel.transform(X))
    np.testing.assert_array_equal(copy.model_.input_strength(), sel.model_.input_strength())


@pytest.mark.parametrize("Selector", [QuickSelection, NeuroFS])
def test_determinism_for_a_fixed_random_state(Selector, data, restore_threads):
    X, y = data
    small = dict(QS_SMALL if Selector is QuickSelection else NF_SMALL)
    runs = []
    for threads, seed in [(1, 0), (2, 0), (1, 1)]:
        ts.set_num_threads(threads)
        small["random_state"] = seed
        runs.append(Selector(k=5, **small).fit(X, y).feature_importances_)
    np.testing.assert_array_equal(runs[0], runs[1])  # bitwise, on any number of threads
    assert not np.array_equal(runs[0], runs[2])  # another seed, another network


def test_neurofs_recovers_the_informative_features(data):
    """make_classification with shuffle=False: the informative features are columns 0-4."""
    X, y = data
    found = []
    for seed in range(3):
        sel = NeuroFS(k=5, hidden_layer_sizes=(48, 48), epochs=30, batch_size=32, random_state=seed)
        found.append(int(sel.fit(X, y).get_support()[:5].sum()))
    assert min(found) >= 3 and sum(found) >= 12, found  # most of them, every seed


def test_quickselection_recovers_the_correlated_features():
    """Unsupervised, QuickSelection finds the features that carry the data's structure: on
    make_classification, the 5 informative and 5 redundant (their linear combinations)
    columns 0-9, among 20 independent noise columns, with a bottleneck of 8 hidden neurons."""
    X, _ = make_classification(
        n_samples=600,
        n_features=30,
        n_informative=5,
        n_redundant=5,
        n_repeated=0,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=1.5,
        shuffle=False,
        random_state=0,
    )
    found = []
    for seed in range(3):
        sel = QuickSelection(k=10, hidden_size=8, epochs=40, random_state=seed).fit(X)
        found.append(int(sel.get_support()[:10].sum()))
    assert min(found) >= 8, found


def test_importing_truesparse_does_not_import_scikit_learn():
    code = (
        "import sys; sys.modules['sklearn'] = None; import truesparse; "
        "assert 'truesparse.feature_selection' not in sys.modules\n"
        "try:\n    import truesparse.feature_selection\n"
        "except ImportError as e:\n    print('ImportError', e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ImportError"), out.stdout + out.stderr


# -- errors --------------------------------------------------------------------------------------
BAD = [
    (QuickSelection, dict(k=0), ValueError, "k must be an integer >= 1, got 0"),
    (QuickSelection, dict(k=41), ValueError, "k must be an integer in [1, n_features] = [1, 40], got 41"),
    (NeuroFS, dict(k=41), ValueError, "k must be an integer in [1, n_features] = [1, 40], got 41"),
    (QuickSelection, dict(k=2.5), TypeError, "k must be an integer, got 2.5"),
    (QuickSelection, dict(k="5"), TypeError, "k must be an integer, got '5'"),
    (QuickSelection, dict(zeta=1.5), ValueError, "zeta must be a finite number in [0, 1], got 1.5"),
    (QuickSelection, dict(epsilon=0), ValueError, "epsilon must be a finite number > 0, got 0"),
    (QuickSelection, dict(input_noise=-0.1), ValueError, "input_noise must be a finite number >= 0, got -0.1"),
    (QuickSelection, dict(dropout=1), ValueError, "dropout must be a finite number in [0, 1), got 1"),
    (QuickSelection, dict(hidden_size=0), ValueError, "hidden_size must be an integer in [1, 2147483646], got 0"),
    (QuickSelection, dict(epochs=0), ValueError, "epochs must be an integer >= 1, got 0"),
    (QuickSelection, dict(learning_rate=0), ValueError, "learning_rate must be a finite number > 0, got 0"),
    (QuickSelection, dict(momentum=1), ValueError, "momentum must be a finite number in [0, 1), got 1"),
    (QuickSelection, dict(activation="gelu"), ValueError, "activation must be one of"),
    (QuickSelection, dict(weight_init="ones"), ValueError, "weight_init must be one of ['he_normal', 'he_uniform', 'normal', 'xavier_normal', 'xavier_uniform'], got 'ones'"),
    (QuickSelection, dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (QuickSelection, dict(random_state="seed"), TypeError, "random_state must be None, an integer or a numpy.random.RandomState, got 'seed'"),
    (NeuroFS, dict(zeta_in=1), ValueError, "zeta_in must be a finite number in [0, 1), got 1"),
    (NeuroFS, dict(zeta_hid=-0.1), ValueError, "zeta_hid must be a finite number in [0, 1], got -0.1"),
    (NeuroFS, dict(frac_epoch_remove=0), ValueError, "frac_epoch_remove must be a finite number in (0, 1], got 0"),
    (NeuroFS, dict(hidden_layer_sizes=()), ValueError, "hidden_layer_sizes needs at least 1 entries, got 0: ()"),
    (NeuroFS, dict(hidden_layer_sizes="big"), TypeError, "hidden_layer_sizes must be an integer or a sequence of integers, got 'big' (str)"),
    (NeuroFS, dict(batch_size=0), ValueError, "batch_size must be an integer >= 1, got 0"),
    (NeuroFS, dict(weight_decay=-1), ValueError, "weight_decay must be a finite number >= 0, got -1"),
]  # fmt: skip


@pytest.mark.parametrize(
    "Selector, params, error, message", BAD, ids=[f"{s.__name__}-{p}" for s, p, _, _ in BAD]
)
def test_errors_name_the_parameter_and_value(Selector, params, error, message, data):
    X, y = data
    sel = Selector(**{"k": 5, "epochs": 1, **params})  # checked in fit, not in __init__
    with pytest.raises(error, match=re.escape(f"[{Selector.__name__}.fit] {message}")):
        sel.fit(X, y)


def test_neurofs_needs_class_labels(data):
    X, _ = data
    with pytest.raises(ValueError, match="requires y to be passed"):
        NeuroFS(k=5).fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        NeuroFS(k=5).fit(X, np.linspace(0, 1, len(X)))
