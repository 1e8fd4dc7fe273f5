"""Every public parameter of the optimizers, schedules, evolutions, layer specs and density
functions is checked at construction (issue 12): a TypeError for a value of the wrong type
(bools are no numbers, floats are no integers, strings are no numbers), a ValueError for a
value out of range or not finite, both starting with ``[op]`` and naming the parameter and
the value. Good values given as numpy scalars are stored as the plain Python values and give
the same results as Python scalars, down to a fit (RigL with ``t_end=np.float32(0.75)``
updates as often as with 0.75). The C++ checks refuse the same values when the Python ones
are bypassed.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

import truesparse as ts
from conftest import match_all
from truesparse import _checks, _core
from truesparse import density as D
from truesparse import layers as L

NAN, INF = float("nan"), float("inf")
SIZES = [8, 4, 3]


# -- the constructors and functions, with valid values for the other parameters ---------------
def _rate(**kw):
    return ts.CosineLR(10).rate(**{"lr": 0.1, "t": 3, **kw})


def _drop_fraction(**kw):
    return ts.RigL().drop_fraction(**{"t": 1.0, "t_end": 10.0, **kw})


BUILD = {
    "SGD": lambda **kw: ts.SGD(**kw),
    "Adam": lambda **kw: ts.Adam(**kw),
    "AdamW": lambda **kw: ts.AdamW(**kw),
    "StepLR": lambda **kw: ts.StepLR(**{"step_size": 2, **kw}),
    "MultiStepLR": lambda **kw: ts.MultiStepLR(**{"milestones": (1, 3), **kw}),
    "ExponentialLR": lambda **kw: ts.ExponentialLR(**{"gamma": 0.9, **kw}),
    "CosineLR": lambda **kw: ts.CosineLR(**{"T_max": 10, **kw}),
    "LinearWarmup": lambda **kw: ts.LinearWarmup(
        **{"schedule": ts.ConstantLR(), "warmup_steps": 3, **kw}
    ),
    "CosineLR.rate": _rate,
    "SET": lambda **kw: ts.SET(**kw),
    "RigL": lambda **kw: ts.RigL(**kw),
    "RigL.drop_fraction": _drop_fraction,
    "Linear": lambda **kw: L.Linear(**{"size": 4, **kw}),
    "LeakyReLU": lambda **kw: L.LeakyReLU(**kw),
    "AllReLU": lambda **kw: L.AllReLU(**kw),
    "BatchNorm": lambda **kw: L.BatchNorm(**kw),
    "Dropout": lambda **kw: L.Dropout(**kw),
    "SReLU": lambda **kw: L.SReLU(**kw),
    "er_densities": lambda **kw: ts.er_densities(**{"sizes": SIZES, "density": 0.5, **kw}),
    "epsilon_densities": lambda **kw: ts.epsilon_densities(
        **{"sizes": SIZES, "epsilon": 1.0, **kw}
    ),
    "uniform_densities": lambda **kw: ts.uniform_densities(
        **{"sizes": SIZES, "density": 0.5, **kw}
    ),
    "MLP": lambda **kw: D.allocate(**{"sizes": SIZES, **kw}),  # MLP's allocation, op "MLP"
}

# (op, parameter, kind, bad values in range of the type, optional) for the generated cases.
# kind: "int", "real", "flag" or "choice"; the type errors of each kind are added below.
PARAMETERS = [
    ("SGD", "lr", "real", [-0.1], False),
    ("SGD", "momentum", "real", [-0.1, 1.0, 1.5], False),
    ("SGD", "nesterov", "flag", [], False),
    ("SGD", "weight_decay", "real", [-1e-4], False),
    ("Adam", "lr", "real", [-1], False),
    ("Adam", "eps", "real", [0, -1e-8], False),
    ("Adam", "weight_decay", "real", [-0.5], False),
    ("Adam", "new_weight_warmup", "int", [-1, 65535, 2**40], False),
    ("AdamW", "lr", "real", [-1], False),
    ("AdamW", "weight_decay", "real", [-0.01], False),
    ("AdamW", "eps", "real", [0], False),
    ("AdamW", "new_weight_warmup", "int", [-1], False),
    ("StepLR", "step_size", "int", [0, -2], False),
    ("StepLR", "gamma", "real", [0, -0.5], False),
    ("MultiStepLR", "gamma", "real", [0.0, -1], False),
    ("ExponentialLR", "gamma", "real", [0, -0.9], False),
    ("CosineLR", "T_max", "int", [0, -1], False),
    ("CosineLR", "eta_min", "real", [-1, -1e-9], False),
    ("LinearWarmup", "warmup_steps", "int", [-1], False),
    ("LinearWarmup", "start_factor", "real", [0, -0.5, 1.5], False),
    ("CosineLR.rate", "lr", "real", [-0.1], False),
    ("CosineLR.rate", "t", "int", [-1], False),
    ("SET", "zeta", "real", [-0.1, 1.5], False),
    ("SET", "delta_t", "int", [0, -5], True),
    ("SET", "regrow", "choice", ["glorot", "Uniform", ""], False),
    ("SET", "regrow_std", "real", [-1.0], False),
    ("RigL", "alpha", "real", [-1, 1.5], False),
    ("RigL", "delta_t", "int", [0, -1], False),
    ("RigL", "schedule", "choice", ["linear", "COSINE"], False),
    ("RigL", "exponent", "real", [-1, -2.5, 0], False),
    ("RigL", "skip_optimizer_step", "flag", [], False),
    ("RigL.drop_fraction", "t", "real", [-1], False),
    ("RigL.drop_fraction", "t_end", "real", [-1], False),
    ("Linear", "size", "int", [0, -3, 2**31], False),
    ("Linear", "density", "real", [0, -0.5, 1.5], False),
    ("LeakyReLU", "alpha", "real", [], False),
    ("AllReLU", "alpha", "real", [], False),
    ("BatchNorm", "momentum", "real", [-0.1, 1.5], False),
    ("BatchNorm", "eps", "real", [0, -1e-5], False),
    ("Dropout", "p", "real", [-0.1, 1.0, 2], False),
    ("SReLU", "tl", "real", [], False),
    ("SReLU", "al", "real", [], False),
    ("SReLU", "tr", "real", [], False),
    ("SReLU", "ar", "real", [], False),
    ("er_densities", "density", "real", [0, -0.5, 1.5], False),
    ("er_densities", "power", "real", [-1, -0.5], False),
    ("epsilon_densities", "epsilon", "real", [0, -1], False),
    ("uniform_densities", "density", "real", [0, 1.01], False),
    ("uniform_densities", "dense_first", "flag", [], False),
    ("uniform_densities", "dense_last", "flag", [], False),
    ("MLP", "density", "real", [0, -0.1, 1.5], True),
    ("MLP", "epsilon", "real", [0, -2], True),
    ("MLP", "init", "choice", ["orthogonal", "ERK"], False),
    ("MLP", "erk_power", "real", [-1], False),
    ("MLP", "dense_first", "flag", [], False),
    ("MLP", "dense_last", "flag", [], False),
]

# The values of the wrong type for each kind (None too unless the parameter is optional).
WRONG_TYPE = {
    "int": [True, False, np.True_, 2.0, 2.5, np.float64(3.0), "3", 1j, [3]],
    "real": [True, np.False_, "0.5", "nan", 1j, [0.5], (0.5,), np.array(0.5)],
    "flag": [1, 0, np.int64(1), 1.0, "True", "yes"],
    "choice": [3, 0.5, True, ["cosine"], b"uniform"],
}
NON_FINITE = [NAN, INF, -INF, np.float32("nan"), np.float64("inf")]


def _generated():
    cases = []
    for op, name, kind, bad, optional in PARAMETERS:
        for value in WRONG_TYPE[kind] + ([] if optional else [None]):
            cases.append((op, {name: value}, TypeError, [name, value]))
        if kind in ("int", "real"):
            for value in NON_FINITE if kind == "real" else []:
                cases.append((op, {name: value}, ValueError, [name, value]))
        for value in bad:
            cases.append((op, {name: value}, ValueError, [name, value]))
    return cases


# Cases written out: sequences, combined conditions and the values reported in issue 12.
EXPLICIT = [
    # Adam's betas: a sequence of two numbers in [0, 1)
    ("Adam", {"betas": (0.9,)}, ValueError, ["betas", "2 entries", "(0.9,)"]),
    ("Adam", {"betas": (0.9, 0.99, 0.5)}, ValueError, ["betas", "2 entries"]),
    ("Adam", {"betas": ()}, ValueError, ["betas", "2 entries"]),
    ("Adam", {"betas": 0.9}, TypeError, ["betas", "0.9"]),
    ("Adam", {"betas": "ab"}, TypeError, ["betas", "'ab'"]),
    ("Adam", {"betas": None}, TypeError, ["betas", "None"]),
    ("Adam", {"betas": {0.9, 0.99}}, TypeError, ["betas"]),
    ("Adam", {"betas": (0.9, "x")}, TypeError, ["betas[1]", "'x'"]),
    ("Adam", {"betas": (True, 0.9)}, TypeError, ["betas[0]", "True"]),
    ("Adam", {"betas": (0.9, 1.0)}, ValueError, ["betas[1]", "1.0"]),
    ("Adam", {"betas": (-0.1, 0.9)}, ValueError, ["betas[0]", "-0.1"]),
    ("Adam", {"betas": (NAN, 0.9)}, ValueError, ["betas[0]", "nan"]),
    ("AdamW", {"betas": (0.9, INF)}, ValueError, ["betas[1]", "inf"]),
    ("AdamW", {"betas": np.array([[0.9, 0.99]])}, TypeError, ["betas"]),
    # MultiStepLR's milestones: a sequence of integers >= 0
    ("MultiStepLR", {"milestones": 5}, TypeError, ["milestones", "5"]),
    ("MultiStepLR", {"milestones": "12"}, TypeError, ["milestones", "'12'"]),
    ("MultiStepLR", {"milestones": None}, TypeError, ["milestones", "None"]),
    ("MultiStepLR", {"milestones": (1, 2.0)}, TypeError, ["milestones[1]", "2.0"]),
    ("MultiStepLR", {"milestones": (True,)}, TypeError, ["milestones[0]", "True"]),
    ("MultiStepLR", {"milestones": (1, "3")}, TypeError, ["milestones[1]", "'3'"]),
    ("MultiStepLR", {"milestones": (4, -1)}, ValueError, ["milestones[1]", "-1"]),
    ("MultiStepLR", {"milestones": np.array([1.0, 2.0])}, TypeError, ["milestones[0]", "1.0"]),
    # schedules inside schedules and optimizers
    ("LinearWarmup", {"schedule": "cosine"}, TypeError, ["schedule", "'cosine'"]),
    ("LinearWarmup", {"schedule": None}, TypeError, ["schedule", "None"]),
    (
        "LinearWarmup",
        {"schedule": ts.LinearWarmup(ts.ConstantLR(), 2)},
        TypeError,
        ["schedule", "LinearWarmup"],
    ),
    ("SGD", {"schedule": "cosine"}, TypeError, ["schedule", "'cosine'"]),
    ("SGD", {"schedule": ts.Adam()}, TypeError, ["schedule", "Adam"]),
    ("Adam", {"schedule": 3}, TypeError, ["schedule", "3"]),
    ("AdamW", {"schedule": ts.ConstantLR}, TypeError, ["schedule", "ConstantLR"]),
    # a cosine schedule anneals from lr down to eta_min: checked by the optimizer
    (
        "SGD",
        {"lr": 0.01, "schedule": ts.CosineLR(10, eta_min=0.1)},
        ValueError,
        ["eta_min", "0.1", "lr", "0.01"],
    ),
    (
        "Adam",
        {"lr": 0.01, "schedule": ts.LinearWarmup(ts.CosineLR(10, eta_min=0.5), 3)},
        ValueError,
        ["eta_min", "0.5", "lr", "0.01"],
    ),
    ("SGD", {"nesterov": True}, ValueError, ["nesterov", "momentum"]),
    ("SGD", {"nesterov": np.True_, "momentum": 0.0}, ValueError, ["nesterov", "momentum"]),
    # RigL's t_end: an integer >= 0 (steps) or a float in (0, 1] (a fraction of the steps)
    ("RigL", {"t_end": True}, TypeError, ["t_end", "True"]),
    ("RigL", {"t_end": np.False_}, TypeError, ["t_end", "False"]),
    ("RigL", {"t_end": "0.5"}, TypeError, ["t_end", "'0.5'"]),
    ("RigL", {"t_end": None}, TypeError, ["t_end", "None"]),
    ("RigL", {"t_end": 1.5}, ValueError, ["t_end", "1.5"]),
    ("RigL", {"t_end": np.float32(1.5)}, ValueError, ["t_end", "1.5"]),
    ("RigL", {"t_end": 0.0}, ValueError, ["t_end", "0.0"]),
    ("RigL", {"t_end": -0.5}, ValueError, ["t_end", "-0.5"]),
    ("RigL", {"t_end": NAN}, ValueError, ["t_end", "nan"]),
    ("RigL", {"t_end": INF}, ValueError, ["t_end", "inf"]),
    ("RigL", {"t_end": -3}, ValueError, ["t_end", "-3"]),
    ("RigL", {"t_end": np.int64(-1)}, ValueError, ["t_end", "-1"]),
    ("RigL", {"t_end": 2**63}, ValueError, ["t_end"]),
    # SReLU's thresholds
    ("SReLU", {"tl": 1.0, "tr": 1.0}, ValueError, ["tl", "tr"]),
    ("SReLU", {"tl": 2.0, "tr": 1.0}, ValueError, ["tl", "2.0", "tr", "1.0"]),
    # sizes: a sequence of at least 2 integers in [1, 2^31 - 1]
    ("er_densities", {"sizes": [8, 2.5, 3]}, TypeError, ["sizes[1]", "2.5"]),
    ("er_densities", {"sizes": [8, True, 3]}, TypeError, ["sizes[1]", "True"]),
    ("er_densities", {"sizes": [8, "4", 3]}, TypeError, ["sizes[1]", "'4'"]),
    ("er_densities", {"sizes": [8, None, 3]}, TypeError, ["sizes[1]", "None"]),
    ("er_densities", {"sizes": [8.0, 4, 3]}, TypeError, ["sizes[0]", "8.0"]),
    ("er_densities", {"sizes": np.array([8.0, 4.0, 3.0])}, TypeError, ["sizes[0]", "8.0"]),
    ("er_densities", {"sizes": "843"}, TypeError, ["sizes", "'843'"]),
    ("er_densities", {"sizes": 8}, TypeError, ["sizes", "8"]),
    ("er_densities", {"sizes": None}, TypeError, ["sizes", "None"]),
    ("er_densities", {"sizes": [8]}, ValueError, ["sizes", "[8]"]),
    ("er_densities", {"sizes": []}, ValueError, ["sizes", "[]"]),
    ("er_densities", {"sizes": [8, 0, 3]}, ValueError, ["sizes[1]", "0"]),
    ("er_densities", {"sizes": [8, 4, -3]}, ValueError, ["sizes[2]", "-3"]),
    ("er_densities", {"sizes": [8, 2**31, 3]}, ValueError, ["sizes[1]", str(2**31)]),
    ("epsilon_densities", {"sizes": [8, 2.5, 3]}, TypeError, ["sizes[1]", "2.5"]),
    ("uniform_densities", {"sizes": [8, True, 3]}, TypeError, ["sizes[1]", "True"]),
    ("MLP", {"sizes": [8, 2.5, 3]}, TypeError, ["sizes[1]", "2.5"]),
    # ER/ERK's power: >= 0, and small enough for the scores to exist in double precision
    ("er_densities", {"power": 1000}, ValueError, ["power", "1000", "too large", "[8, 4, 3]"]),
    (
        "MLP",
        {"sizes": [784, 1000, 10], "density": 0.1, "erk_power": 1000},
        ValueError,
        ["erk_power", "1000", "too large", "[784, 1000, 10]"],
    ),
    (
        "MLP",
        {"sizes": [784, 1000, 10], "density": 0.1, "erk_power": 130},
        ValueError,
        ["erk_power", "130"],
    ),
    # MLP's explicit densities: one number in (0, 1] per layer
    ("MLP", {"densities": [0.5]}, ValueError, ["densities", "2 entries", "1"]),
    ("MLP", {"densities": [0.5, 0.5, 0.5]}, ValueError, ["densities", "2 entries", "3"]),
    ("MLP", {"densities": 0.5}, TypeError, ["densities", "0.5"]),
    ("MLP", {"densities": [0.5, "a"]}, TypeError, ["densities[1]", "'a'"]),
    ("MLP", {"densities": [True, 0.5]}, TypeError, ["densities[0]", "True"]),
    ("MLP", {"densities": [0.5, NAN]}, ValueError, ["densities[1]", "nan"]),
    ("MLP", {"densities": [0.0, 0.5]}, ValueError, ["densities[0]", "0.0"]),
    ("MLP", {"densities": [0.5, 1.5]}, ValueError, ["densities[1]", "1.5"]),
    ("MLP", {"density": 0.5, "epsilon": 2.0}, ValueError, ["at most one", "density", "epsilon"]),
]

CASES = _generated() + EXPLICIT


def _case_id(case):
    op, kwargs, error, _ = case
    args = ",".join(f"{k}={_checks.show(v)}" for k, v in kwargs.items())
    return f"{op}({args})-{error.__name__}"


@pytest.mark.parametrize(("op", "kwargs", "error", "words"), CASES, ids=map(_case_id, CASES))
def test_bad_value_is_refused_with_op_name_and_value(op, kwargs, error, words):
    with pytest.raises(error) as info:
        BUILD[op](**kwargs)
    message = str(info.value)
    assert type(info.value) is error
    assert message.startswith(f"[{op}] "), message
    for word in words:
        shown = word if isinstance(word, str) else _checks.show(word)
        if isinstance(word, (float, np.floating)) and math.isnan(word):
            shown = "nan"
        assert re.search(match_all(shown), message), (shown, message)


def test_every_parameter_of_every_constructor_is_covered():
    """Each dataclass field of the public classes has generated or explicit bad cases."""
    covered = {(op, name) for op, kwargs, _, _ in CASES for name in kwargs}
    classes = {
        "SGD": ts.SGD,
        "Adam": ts.Adam,
        "AdamW": ts.AdamW,
        "StepLR": ts.StepLR,
        "MultiStepLR": ts.MultiStepLR,
        "ExponentialLR": ts.ExponentialLR,
        "CosineLR": ts.CosineLR,
        "LinearWarmup": ts.LinearWarmup,
        "SET": ts.SET,
        "RigL": ts.RigL,
        "Linear": L.Linear,
        "LeakyReLU": L.LeakyReLU,
        "AllReLU": L.AllReLU,
        "BatchNorm": L.BatchNorm,
        "Dropout": L.Dropout,
        "SReLU": L.SReLU,
    }
    missing = [
        (op, f.name)
        for op, cls in classes.items()
        for f in dataclasses.fields(cls)
        if (op, f.name) not in covered
    ]
    assert missing == []
    for cls in (L.ReLU, L.Sigmoid, L.Tanh, L.Identity, L.Softmax, L.LogSoftmax, L.Affine):
        assert dataclasses.fields(cls) == ()  # nothing to check


# -- good values: numpy scalars are accepted and stored as the Python values -----------------
GOOD = [
    (
        lambda: ts.SGD(lr=0.5, momentum=0.5, nesterov=True, weight_decay=0.25),
        lambda: ts.SGD(
            lr=np.float32(0.5),
            momentum=np.float64(0.5),
            nesterov=np.True_,
            weight_decay=np.float16(0.25),
        ),
    ),
    (
        lambda: ts.SGD(lr=1, schedule=ts.CosineLR(5, eta_min=1)),  # eta_min == lr is allowed
        lambda: ts.SGD(lr=np.int64(1), schedule=ts.CosineLR(np.int32(5), eta_min=np.uint8(1))),
    ),
    (
        lambda: ts.Adam(lr=0.5, betas=(0.5, 0.75), eps=1e-8, new_weight_warmup=3),
        lambda: ts.Adam(
            lr=np.float32(0.5),
            betas=np.array([0.5, 0.75]),
            eps=np.float64(1e-8),
            new_weight_warmup=np.int32(3),
        ),
    ),
    (
        lambda: ts.AdamW(betas=[0.0, 0.5], weight_decay=0, new_weight_warmup=65534),
        lambda: ts.AdamW(
            betas=(0, np.float32(0.5)), weight_decay=np.int8(0), new_weight_warmup=65534
        ),
    ),
    (lambda: ts.StepLR(2, 0.5), lambda: ts.StepLR(np.int64(2), np.float32(0.5))),
    (
        lambda: ts.MultiStepLR((1, 3, 3), 2),
        lambda: ts.MultiStepLR(np.array([1, 3, 3]), np.int64(2)),
    ),
    (lambda: ts.MultiStepLR([], 0.5), lambda: ts.MultiStepLR((), np.float32(0.5))),
    (lambda: ts.ExponentialLR(0.5), lambda: ts.ExponentialLR(np.float32(0.5))),
    (lambda: ts.CosineLR(10, 0.25), lambda: ts.CosineLR(np.uint16(10), np.float32(0.25))),
    (
        lambda: ts.LinearWarmup(ts.ConstantLR(), 3, 0.5),
        lambda: ts.LinearWarmup(ts.ConstantLR(), np.int64(3), np.float32(0.5)),
    ),
    (
        lambda: ts.SET(zeta=0.25, delta_t=4, regrow="normal", regrow_std=0.5),
        lambda: ts.SET(
            zeta=np.float64(0.25),
            delta_t=np.int16(4),
            regrow=np.str_("normal"),
            regrow_std=np.float32(0.5),
        ),
    ),
    (lambda: ts.SET(zeta=1, regrow_std=0), lambda: ts.SET(zeta=np.int64(1), regrow_std=0.0)),
    (
        lambda: ts.RigL(alpha=0.5, delta_t=3, t_end=0.75, exponent=2, skip_optimizer_step=False),
        lambda: ts.RigL(
            alpha=np.float32(0.5),
            delta_t=np.int64(3),
            t_end=np.float32(0.75),
            exponent=np.int64(2),
            skip_optimizer_step=np.False_,
        ),
    ),
    (lambda: ts.RigL(t_end=7), lambda: ts.RigL(t_end=np.int64(7))),
    (lambda: ts.RigL(t_end=1.0), lambda: ts.RigL(t_end=np.float64(1.0))),
    (lambda: L.Linear(4, 0.5), lambda: L.Linear(np.int64(4), np.float32(0.5))),
    (lambda: L.Linear(2**31 - 2), lambda: L.Linear(np.int64(2**31 - 2), np.int64(1))),
    (lambda: L.LeakyReLU(-0.25), lambda: L.LeakyReLU(np.float32(-0.25))),
    (lambda: L.AllReLU(0.5), lambda: L.AllReLU(np.float64(0.5))),
    (lambda: L.BatchNorm(0.5, 1e-5), lambda: L.BatchNorm(np.float32(0.5), np.float64(1e-5))),
    (lambda: L.Dropout(0.25), lambda: L.Dropout(np.float32(0.25))),
    (lambda: L.Dropout(0), lambda: L.Dropout(np.int64(0))),
    (
        lambda: L.SReLU(0.0, 0.25, 1.0, 1.0),
        lambda: L.SReLU(np.float32(0), np.float32(0.25), np.int64(1), 1),
    ),
]


@pytest.mark.parametrize(("python", "numpy"), GOOD)
def test_numpy_scalars_are_stored_as_python_values(python, numpy):
    a, b = python(), numpy()
    assert a == b
    for f in dataclasses.fields(a):
        value = getattr(b, f.name)
        assert type(value) is type(getattr(a, f.name)), (f.name, type(value))
        if isinstance(value, tuple):
            assert all(type(x) in (int, float) for x in value)
    if isinstance(a, ts.RigL):
        assert isinstance(b.t_end, float if isinstance(a.t_end, float) else int)


def test_numpy_values_give_the_same_results_in_functions():
    sizes = np.array([8, 4, 3], dtype=np.int32)
    assert ts.er_densities(sizes, np.float32(0.5), np.int64(1)) == ts.er_densities(SIZES, 0.5, 1.0)
    assert ts.er_densities(SIZES, 0.5, 0) == ts.uniform_densities(SIZES, 0.5)  # power 0
    assert ts.epsilon_densities(sizes, np.float64(1.5)) == ts.epsilon_densities(SIZES, 1.5)
    assert ts.uniform_densities(
        sizes, np.float32(0.5), dense_first=np.True_, dense_last=np.False_
    ) == ts.uniform_densities(SIZES, 0.5, dense_first=True)
    assert D.allocate(tuple(sizes), densities=np.array([0.5, 1.0])) == [0.5, 1.0]
    assert D.check_sizes(range(3, 6), "x") == [3, 4, 5]
    s = ts.CosineLR(10, eta_min=0.01)
    assert s.rate(np.float32(0.5), np.int64(3)) == s.rate(0.5, 3)
    r = ts.RigL(schedule="exponential")
    assert r.drop_fraction(np.int64(5), np.float32(10)) == r.drop_fraction(5.0, 10.0)


def test_large_erk_power_is_honest_or_refused():
    """A power up to the limit the message names gives a true allocation: every density in
    (0, 1], the overall density kept; beyond it the allocation cannot be computed."""
    sizes = [784, 1000, 10]
    n = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    with pytest.raises(ValueError, match=r"must be <= about ([0-9.]+)") as info:
        ts.er_densities(sizes, 0.1, 1000)
    limit = float(re.search(r"about ([0-9.]+)", str(info.value)).group(1))
    for power in (0.5, 2.0, 10.0, limit * 0.99):
        d = ts.er_densities(sizes, 0.1, power)
        assert all(0 < x <= 1 for x in d)
        assert sum(x * k for x, k in zip(d, n)) == pytest.approx(0.1 * sum(n), rel=1e-9)
    assert ts.er_densities(sizes, 1.0, 1000) == [1.0, 1.0]  # density 1: dense, nothing to solve


def test_mlp_refuses_the_reported_values():
    with pytest.raises(TypeError, match=match_all("[MLP]", "sizes[1]", "2.5")):
        ts.MLP([8, 2.5, 3])
    with pytest.raises(TypeError, match=match_all("[MLP]", "sizes[1]", "True")):
        ts.MLP([8, True, 3])
    with pytest.raises(ValueError, match=match_all("[MLP]", "erk_power", "1000")):
        ts.MLP([784, 1000, 10], density=0.1, erk_power=1000)
    with pytest.raises(ValueError, match=match_all("alpha", "nan")):
        ts.MLP([8, 4, 3], activation="leaky_relu", alpha=NAN)
    with pytest.raises(ValueError, match=match_all("alpha", "inf")):
        ts.MLP([8, 4, 3], activation="all_relu", alpha=INF)


# -- the same training with numpy values as with Python values --------------------------------
def _data(n=24):
    rng = np.random.default_rng(3)
    return rng.standard_normal((n, 6)), rng.integers(0, 3, size=n)


def _train(layers, **fit):
    model = ts.Sequential(6, layers(), dtype=np.float64, seed=4)
    x, y = _data()
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, **fit)
    return model, history


FITS = {
    "rigl_t_end": (
        dict(evolution=ts.RigL(alpha=0.5, delta_t=1, t_end=0.75)),
        dict(evolution=ts.RigL(alpha=np.float32(0.5), delta_t=np.int64(1), t_end=np.float32(0.75))),
    ),
    "rigl_exponential": (
        dict(evolution=ts.RigL(delta_t=2, t_end=9, schedule="exponential", exponent=3)),
        dict(
            evolution=ts.RigL(
                delta_t=2, t_end=np.int32(9), exponent=np.float32(3.0), schedule="exponential"
            )
        ),
    ),
    "set_delta_t": (
        dict(evolution=ts.SET(zeta=0.25, delta_t=5), optimizer=ts.SGD(lr=0.1, momentum=0.5)),
        dict(
            evolution=ts.SET(zeta=np.float64(0.25), delta_t=np.int64(5)),
            optimizer=ts.SGD(lr=np.float64(0.1), momentum=np.float32(0.5)),
        ),
    ),
    "adam_schedule": (
        dict(optimizer=ts.Adam(lr=0.01, betas=(0.5, 0.75), schedule=ts.CosineLR(18, 0.001))),
        dict(
            optimizer=ts.Adam(
                lr=np.float64(0.01),
                betas=np.array([0.5, 0.75]),
                schedule=ts.CosineLR(np.int64(18), np.float64(0.001)),
            )
        ),
    ),
}


def _layers(size=8, density=0.5, alpha=0.25):
    return lambda: [L.Linear(size, density=density), L.LeakyReLU(alpha), L.Linear(3)]


@pytest.mark.parametrize("name", sorted(FITS))
def test_numpy_values_train_as_python_values(name, one_thread):
    python, numpy = FITS[name]
    a, ha = _train(_layers(), **python)
    b, hb = _train(_layers(np.int64(8), np.float32(0.5), np.float32(0.25)), **numpy)
    assert [r["step"] for r in ha.get("topology", [])] == [
        r["step"] for r in hb.get("topology", [])
    ]
    assert ha["loss"] == hb["loss"]
    for la, lb in zip(a.layers, b.layers):
        wa, wb = la.W, lb.W
        wa, wb = (w.toarray() if hasattr(w, "toarray") else w for w in (wa, wb))
        assert np.array_equal(wa, wb)
    if name == "rigl_t_end":  # 18 steps, t_end = int(0.75 * 18) = 13: an update while f > 0
        rigl = numpy["evolution"]
        expected = [t for t in range(1, 14) if rigl.drop_fraction(t, 13) > 0]
        assert len(expected) == 12
        assert sorted({r["step"] for r in hb["topology"]}) == expected


# -- the C++ checks refuse the same values when the Python checks are bypassed ----------------
def _tampered(obj, **fields):
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


@pytest.mark.parametrize(
    ("optimizer", "words"),
    [
        (_tampered(ts.SGD(), lr=NAN), ["[SGD]", "lr", "nan"]),
        (_tampered(ts.SGD(), weight_decay=INF), ["[SGD]", "weight_decay", "inf"]),
        (_tampered(ts.SGD(), momentum=NAN), ["[SGD]", "momentum", "nan"]),
        (_tampered(ts.Adam(), eps=INF), ["[Adam]", "eps", "inf"]),
        (_tampered(ts.Adam(), betas=(0.9, NAN)), ["[Adam]", "betas[1]", "nan"]),
        (_tampered(ts.AdamW(), lr=-1.0), ["[AdamW]", "lr", "-1"]),
        (
            ts.SGD(schedule=_tampered(ts.CosineLR(10), eta_min=-1.0)),
            ["[CosineLR]", "eta_min", "-1"],
        ),
        (
            ts.SGD(schedule=_tampered(ts.CosineLR(10), eta_min=NAN)),
            ["[CosineLR]", "eta_min", "nan"],
        ),
        (
            _tampered(ts.SGD(lr=0.01), schedule=ts.CosineLR(10, eta_min=0.5)),
            ["[SGD]", "eta_min", "0.5", "lr", "0.01"],
        ),
        (ts.SGD(schedule=_tampered(ts.StepLR(2), gamma=INF)), ["[StepLR]", "gamma", "inf"]),
        (
            ts.SGD(schedule=_tampered(ts.MultiStepLR((1,)), milestones=(-2,))),
            ["[MultiStepLR]", "milestones", "-2"],
        ),
        (
            ts.SGD(schedule=_tampered(ts.LinearWarmup(ts.ConstantLR(), 2), start_factor=NAN)),
            ["[LinearWarmup]", "start_factor", "nan"],
        ),
    ],
)
def test_cpp_refuses_bad_optimizer_config(optimizer, words):
    model = ts.MLP([6, 3], seed=0)
    x, y = _data()
    with pytest.raises(ValueError, match=match_all(*words)):
        model.fit(x, y, epochs=1, batch_size=4, optimizer=optimizer, verbose=0)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0.3, 1.0, 10.0, -1.0), ["[RigL]", "exponent", "-1"]),
        ((0.3, 1.0, 10.0, NAN), ["[RigL]", "exponent", "nan"]),
        ((0.3, 1.0, 10.0, 0.0), ["[RigL]", "exponent", "0"]),
        ((NAN, 1.0, 10.0, 2.0), ["[RigL]", "alpha", "nan"]),
        ((1.5, 1.0, 10.0, 2.0), ["[RigL]", "alpha", "1.5"]),
        ((0.3, NAN, 10.0, 2.0), ["[RigL]", "t", "nan"]),
        ((0.3, -1.0, 10.0, 2.0), ["[RigL]", "t", "-1"]),
        ((0.3, 1.0, INF, 2.0), ["[RigL]", "t_end", "inf"]),
    ],
)
def test_cpp_drop_fraction_refuses_bad_values(args, words):
    alpha, t, t_end, exponent = args
    with pytest.raises(ValueError, match=match_all(*words)):
        _core.drop_fraction(_core.DropSchedule.exponential, alpha, t, t_end, exponent)


def test_cpp_refuses_bad_evolution_settings():
    model = ts.MLP([6, 8, 3], densities=[0.5, 1.0], seed=0)
    x, y = _data()
    with pytest.raises(ValueError, match=match_all("[SET]", "regrow_std", "-1")):
        model.evolve(_tampered(ts.SET(regrow="normal"), regrow_std=-1.0))
    with pytest.raises(ValueError, match=match_all("[SET]", "zeta", "nan")):
        model.evolve(_tampered(ts.SET(), zeta=NAN))
    with pytest.raises(ValueError, match=match_all("[RigL]", "exponent", "-1")):
        model.fit(
            x,
            y,
            epochs=1,
            batch_size=4,
            evolution=_tampered(ts.RigL(delta_t=1), exponent=-1.0),
            verbose=0,
        )


# -- the checkers themselves -------------------------------------------------------------------
def test_checkers():
    assert _checks.integer(np.uint64(2**63), "n", "op") == 2**63
    assert type(_checks.integer(np.int8(3), "n", "op", minimum=0, maximum=3)) is int
    with pytest.raises(ValueError, match=r"^\[op\] n must be an integer in \[0, 2\], got 3$"):
        _checks.integer(3, "n", "op", minimum=0, maximum=2)
    with pytest.raises(ValueError, match=r"^\[op\] n must be an integer <= 2, got 3$"):
        _checks.integer(3, "n", "op", maximum=2)
    with pytest.raises(TypeError, match=r"^\[op\] n must be an integer, got 2\.0 \(float\)$"):
        _checks.integer(2.0, "n", "op")
    assert type(_checks.real(np.float32(0.5), "x", "op")) is float
    assert _checks.real(3, "x", "op", low=0, high=3) == 3.0
    with pytest.raises(ValueError, match=r"must be a finite number in \(0, 3\), got 3$"):
        _checks.real(3, "x", "op", low=0, high=3, low_open=True, high_open=True)
    with pytest.raises(ValueError, match=r"must be a finite number < 3, got 3$"):
        _checks.real(3, "x", "op", high=3, high_open=True)
    with pytest.raises(ValueError, match=r"must be a finite number, got 1000"):
        _checks.real(10**400, "x", "op")
    with pytest.raises(TypeError, match=r"must be a real number, got True \(bool\)$"):
        _checks.real(True, "x", "op")
    assert _checks.flag(np.True_, "f", "op") is True
    assert _checks.choice(np.str_("b"), ("a", "b"), "c", "op") == "b"
    with pytest.raises(ValueError, match=r"must be one of \['a', 'b'\], got 'c'$"):
        _checks.choice("c", ("b", "a"), "c", "op")
    with pytest.raises(TypeError, match=r"must be one of \['a', 'b'\], got \['a'\] \(list\)$"):
        _checks.choice(["a"], ("b", "a"), "c", "op")
    assert _checks.sequence(range(2), "s", "op", length=2) == [0, 1]
    assert _checks.show(np.float32(0.75)) == "0.75" and _checks.show("x" * 100).endswith("...")
