"""One way to build a network: MLP is a convenience that builds a Sequential layer list.

The same layer list given to Sequential gives the same network (layers, patterns, values,
outputs, training); the list MLP builds is the documented one; and the module views name
their layer with its public name in errors.
"""

from __future__ import annotations

import numpy as np
import pytest

import truesparse as ts
from conftest import assert_close, match_all
from truesparse import layers as L
from truesparse.model import mlp_layers


def test_mlp_is_a_sequential_of_its_layer_list():
    sizes, densities = [12, 20, 16, 4], [0.4, 1.0, 0.5]
    options = dict(activation="leaky_relu", alpha=0.1, batch_norm=True, dropout=0.2)
    mlp = ts.MLP(sizes, densities=densities, loss="cross_entropy", seed=3, **options)
    specs = mlp_layers(densities, sizes, loss="cross_entropy", **options)
    seq = ts.Sequential(sizes[0], specs, loss="cross_entropy", seed=3)
    assert isinstance(mlp, ts.Sequential) and not isinstance(seq, ts.MLP)
    assert [m.kind for m in mlp.modules] == [m.kind for m in seq.modules]
    for a, b in zip(mlp.layers, seq.layers):
        assert a.is_sparse == b.is_sparse and a.shape == b.shape
        Wa, Wb = (a.W.toarray(), b.W.toarray()) if a.is_sparse else (a.W, b.W)
        assert np.array_equal(Wa, Wb)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 12)), rng.integers(0, 4, 40)
    assert np.array_equal(mlp.forward(X), seq.forward(X))
    opt = ts.SGD(lr=0.05, momentum=0.9)
    h1 = mlp.fit(X, y, epochs=2, batch_size=10, optimizer=opt)
    h2 = seq.fit(X, y, epochs=2, batch_size=10, optimizer=opt)
    assert h1["loss"] == h2["loss"]
    assert_close(mlp.forward(X), seq.forward(X), rtol=0, atol=0)


def test_the_mlp_layer_list():
    specs = mlp_layers([0.5, 0.5, 1.0], [8, 6, 5, 3], batch_norm=True, dropout=0.1)
    assert [type(s) for s in specs] == [
        *[L.Linear, L.BatchNorm, L.ReLU, L.Dropout] * 2,
        L.Linear,
    ]
    assert [s.size for s in specs if isinstance(s, L.Linear)] == [6, 5, 3]
    assert type(mlp_layers([1.0], [4, 2], loss="negative_log_likelihood")[-1]) is L.LogSoftmax
    assert [type(s) for s in mlp_layers([1.0, 1.0], [4, 3, 2], activation="all_relu")] == [
        L.Linear,
        L.AllReLU,
        L.Linear,
    ]


def test_errors_name_the_class_that_was_called():
    with pytest.raises(ValueError, match=match_all("[MLP]", "activation", "swish")):
        ts.MLP([4, 3, 2], activation="swish")
    with pytest.raises(ValueError, match=match_all("[Sequential]", "loss", "hinge")):
        ts.Sequential(4, [L.Linear(2)], loss="hinge")
    model = ts.Sequential(4, [L.Linear(3), L.ReLU(), L.Linear(2)])
    with pytest.raises(ValueError, match=match_all("[Sequential.predict]", "features")):
        model.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=match_all("[MLP.fit]", "batch_size")):
        ts.MLP([4, 2]).fit(np.zeros((2, 4)), [0, 1], batch_size=0)


def test_module_views_check_set_with_public_names():
    model = ts.Sequential(4, [L.Linear(3), L.BatchNorm(), L.SReLU(), L.Linear(2)])
    bn, srelu = model.modules[1], model.modules[2]
    with pytest.raises(ValueError, match=match_all("[BatchNorm.set]", "delta", "beta", "gamma")):
        bn.set("delta", np.ones(3))
    with pytest.raises(ValueError, match=match_all("[BatchNorm.set]", "gamma", "3", "2")):
        bn.set("gamma", np.ones(2))
    with pytest.raises(TypeError, match=match_all("[SReLU.set]", "t")):
        srelu.set("t", np.array(["a", "b", "c", "d"]))
    bn.set("gamma", [1.0, 2.0, 3.0])
    assert_close(bn.parameters["gamma"], np.array([1, 2, 3], np.float32))
    assert_close(bn.running_var, np.ones(3, np.float32))
    with pytest.raises(AttributeError, match="SReLU layer has no running_mean"):
        _ = srelu.running_mean


def test_batch_norm_statistics_can_be_set_and_are_used_in_evaluation():
    model = ts.Sequential(
        3, [L.Linear(3), L.BatchNorm(eps=1e-5)], loss="squared_error", dtype=np.float64
    )
    model.layers[0].set_weights(np.eye(3), np.zeros(3))
    bn = model.modules[1]
    mean, var = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 1.0])
    bn.set_statistic("running_mean", mean)
    bn.set_statistic("running_var", var)
    assert_close(bn.running_mean, mean)
    assert_close(bn.running_var, var)
    X = np.random.default_rng(0).standard_normal((5, 3))
    assert_close(model.forward(X), (X - mean) / np.sqrt(var + 1e-5))  # γ = 1, β = 0
    with pytest.raises(ValueError, match=match_all("[BatchNorm.set_statistic]", "running_std")):
        bn.set_statistic("running_std", var)
    with pytest.raises(ValueError, match=match_all("[BatchNorm.set_statistic]", ">= 0")):
        bn.set_statistic("running_var", -var)
    with pytest.raises(ValueError, match=match_all("[BatchNorm.set_statistic]", "needs 3", "2")):
        bn.set_statistic("running_mean", mean[:2])
    with pytest.raises(ValueError, match=match_all("[BatchNorm.set_statistic]", "NaN")):
        bn.set_statistic("running_mean", [np.nan, 0, 0])
    assert_close(bn.running_var, var)  # refused values changed nothing
