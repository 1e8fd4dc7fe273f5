"""Models that cannot be built are refused before anything is allocated, with the figures.

A layer whose stored weights (or sizes) do not fit the engine's 32-bit indices, and a model
that needs more memory than this process can get, raise ValueError naming the layer and the
numbers, well under a second after the call (nothing is allocated). The estimates behind the
memory check (``_core.model_memory``, ``_core.training_memory``) equal the arrays a small
model really holds and allocates; ``cpp/include/truesparse/memory.h`` documents each term.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import truesparse as ts
from truesparse import _core
from truesparse import layers as L

FAST = 1.0  # seconds: a refusal allocates nothing, so it is immediate

memory_readable = pytest.mark.skipif(
    _core.available_memory() is None,
    reason="the memory this process can get cannot be read here: the memory check is skipped",
)


def refused(build, *parts: str, error=ValueError) -> str:
    """Calls build(), which must raise `error` quickly with every one of `parts` in it."""
    start = time.perf_counter()
    with pytest.raises(error) as info:
        build()
    elapsed = time.perf_counter() - start
    assert elapsed < FAST, f"the refusal took {elapsed:.2f} s"
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# --- the 32-bit index type --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_layer_with_more_weights_than_32_bit_indices_is_refused(dtype):
    refused(
        lambda: ts.MLP([784, 10**6, 10**6, 10], density=0.5, dtype=dtype),
        "layer 1 (1000000 × 1000000, density 0.4996",
        "would store 499,6",
        "a CSR layer holds at most 2,147,483,647 (32-bit indices)",
        "its density can be at most 0.0021",
    )
    refused(
        lambda: ts.Sequential(10**7, [L.Linear(10**7, density=0.01)], dtype=dtype),
        "[Sequential] layer 0 (10000000 × 10000000, density 0.01) would store "
        "1,000,000,000,000 weights",
    )
    refused(
        lambda: ts.MLP([784, 10**6, 10**6, 10], densities=[0.01, 0.5, 1.0], dtype=dtype),
        "layer 1 (1000000 × 1000000, density 0.5) would store 500,000,000,000 weights",
    )


def test_sizes_beyond_32_bit_indices_are_refused():
    refused(lambda: ts.MLP([784, 2**31, 10]), "2147483648")
    refused(lambda: ts.MLP([2**31, 10]), "2147483648")
    refused(lambda: ts.Sequential(2**40, [L.Linear(10)]), "inputs")
    # 2**31 - 1 is an int32, but its rows + 1 row pointers are not: the Python checks say so
    # first, the engine (for C++ callers and raw specs) with its own figure.
    refused(lambda: ts.MLP([2**31 - 1, 10]), "sizes[0] must be an integer in [1, 2147483646]")
    refused(lambda: L.Linear(2**31 - 1), "size must be an integer in [1, 2147483646]")
    spec = _core.LayerSpec()
    spec.size = 2**31 - 1
    refused(
        lambda: _core.Network_f32(inputs=784, layers=[spec]),
        "layer 0 has 2,147,483,647 outputs; a layer has at most 2,147,483,646",
    )


def test_the_engine_takes_any_integer_size_and_refuses_it_with_the_figure():
    spec = _core.LayerSpec()
    spec.size = 2**40  # stored; refused, naming the layer, when a network is built
    assert spec.size == 2**40
    refused(
        lambda: _core.Network_f32(inputs=784, layers=[spec]),
        "layer 0 has 1,099,511,627,776 outputs",
    )
    refused(lambda: setattr(spec, "size", 2**70), "[Linear] size is 1180591620717411303424")
    refused(lambda: setattr(spec, "size", 2.5), "[Linear] size must be an integer", error=TypeError)
    refused(
        lambda: setattr(spec, "size", True), "[Linear] size must be an integer", error=TypeError
    )
    spec.size = np.int64(12)
    assert spec.size == 12
    refused(
        lambda: _core.er_densities([784, 2**31, 10], 0.1),
        "[er_densities] sizes[1] is 2,147,483,648",
    )
    refused(lambda: _core.epsilon_densities([2**33, 10], 20.0), "sizes[0] is 8,589,934,592")
    refused(lambda: _core.nnz_for_density(0.5, 10, 2**31), "[nnz_for_density] sizes[1]")
    assert _core.nnz_for_density(0.5, 10, 20) == 100


# --- the memory this process can get ------------------------------------------------------------


@memory_readable
def test_a_model_beyond_the_available_memory_is_refused():
    # Dense layers have no CSR index: 2,000,000 × 2,000,000 weights (and 784 × 2,000,000) and
    # their gradients are 32,000 GB in float32.
    refused(
        lambda: ts.MLP([784, 2_000_000, 2_000_000, 10]),
        "the model needs about 32,012.7 GB (weights 16,006.4 GB, gradients 16,006.4 GB",
        "but this process can use about ",
    )
    # 100 sparse layers that each fit the indices (2,094,840,000 weights each): 3,300 GB with
    # the native kernels (Wᵀ's indices and permutation; no DW before a training run needs it),
    # 4,200 GB with MKL's (and Wᵀ's values).
    layers = []
    for _ in range(100):
        layers += [L.Linear(46000, density=0.99), L.ReLU()]
    refused(
        lambda: ts.Sequential(46000, layers),
        "[Sequential] the model needs about 3,335.1 GB (weights 837.9 GB, gradients 0.02 GB, "
        "biases 0.02 GB, indices 838.0 GB, transposes 1,659.1 GB) but this process can use about ",
    )
    refused(
        lambda: ts.Sequential(46000, layers, backend="mkl"),
        "[Sequential] the model needs about 4,164.6 GB (weights 837.9 GB, gradients 0.02 GB, "
        "biases 0.02 GB, indices 838.0 GB, transposes 2,488.7 GB) but this process can use about ",
    )


def test_available_memory_is_a_byte_count():
    available = _core.available_memory()
    assert available is None or (isinstance(available, int) and available > 0)


def test_normal_models_still_construct():
    m = ts.MLP([784, 1000, 1000, 10], density=0.05, seed=0)
    assert [layer.nnz for layer in m.layers] == [
        _core.nnz_for_density(d, n_in, n_out)
        for d, n_in, n_out in zip(
            ts.er_densities([784, 1000, 1000, 10], 0.05), [784, 1000, 1000], [1000, 1000, 10]
        )
    ]


# --- the estimates --------------------------------------------------------------------------------


def _specs(model):
    return [spec._spec() for spec in model._specs]


@pytest.mark.parametrize("backend", ["native", "mkl"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_model_estimate_is_the_arrays_of_the_built_model(dtype, backend):
    m = ts.Sequential(
        30,
        [L.Linear(40, density=0.3), L.BatchNorm(), L.ReLU(), L.Dropout(0.1)]
        + [L.Linear(20, density=0.9), L.Affine(), L.SReLU(), L.Linear(5)],
        dtype=dtype,
        backend=backend,
    )
    size = np.dtype(dtype).itemsize
    estimate = _core.model_memory(30, _specs(m), float64=dtype == np.float64, backend=backend)
    held = _core.training_memory(m._core, 1, ts.SGD()._config(), check=False)
    assert estimate["model"] == held["model"]
    assert estimate["peak"] >= estimate["model"]
    nnz = [layer.nnz for layer in m.layers]
    shapes = [layer.shape for layer in m.layers]
    assert estimate["values"] == sum(nnz) * size
    assert estimate["biases"] == sum(k for k, _ in shapes) * size
    # Db, and the dense layer's DW; a sparse layer's DW comes only with a training run that needs it
    dense_nnz = nnz[2]
    assert estimate["gradients"] == estimate["biases"] + dense_nnz * size
    # CSR indices and row pointers of the two sparse layers; the second keeps Wᵀ's pattern and
    # permutation, and with MKL's kernels a copy of Wᵀ's values too.
    assert estimate["indices"] == 4 * (nnz[0] + 41 + nnz[1] + 21)
    copy = size if backend == "mkl" else 0
    assert estimate["transposes"] == nnz[1] * (8 + copy) + 4 * (40 + 1)
    assert estimate["modules"] == (7 * 40 + 4 * 20) * size  # batch norm, affine


def test_model_memory_checks_the_indices_but_not_the_memory():
    refused(
        lambda: _core.model_memory(10**6, [L.Linear(10**6, density=0.5)._spec()]),
        "would store 500,000,000,000 weights",
    )
    huge = _core.model_memory(2_000_000, [L.Linear(2_000_000)._spec()])
    assert huge["values"] == 4 * 2_000_000**2
    refused(lambda: _core.model_memory(0, [L.Linear(3)._spec()]), "inputs must be >= 1")


def test_the_training_estimate_is_what_fit_allocates():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 30)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    m = ts.MLP([30, 40, 20, 5], densities=[0.3, 0.2, 1.0], seed=0)
    n = sum(layer.nnz for layer in m.layers) + 40 + 20 + 5  # weights and biases
    sgd = _core.training_memory(m._core, 16, ts.SGD()._config(), examples=64)
    assert sgd["optimizer"] == 0
    momentum = _core.training_memory(m._core, 16, ts.SGD(momentum=0.9)._config())
    assert momentum["optimizer"] == 4 * n
    adam = _core.training_memory(m._core, 16, ts.Adam()._config(), examples=64)
    assert adam["optimizer"] == 8 * n
    assert adam["activations"] > 0 and adam["batch"] > 0 and adam["evolution"] == 0
    sparse_nnz = m.layers[0].nnz + m.layers[1].nnz
    assert adam["weight_gradients"] == 4 * sparse_nnz  # Adam's update is not fused: DW is kept
    assert sgd["weight_gradients"] == 0 and momentum["weight_gradients"] == 0
    keys = ("optimizer", "weight_gradients", "activations", "batch")
    assert adam["training"] == sum(adam[k] for k in keys)
    assert _core.training_memory(m._core, 16, ts.Adam()._config(), evolution=True)["evolution"] > 0
    before = _core.training_memory(m._core, 1, ts.SGD()._config(), check=False)["model"]
    m.fit(X, y, epochs=1, batch_size=16, optimizer=ts.Adam(), verbose=0)
    again = _core.training_memory(m._core, 16, ts.Adam()._config(), examples=64)
    assert again["optimizer"] == 0 and again["activations"] == 0  # allocated by the first fit
    assert again["weight_gradients"] == 0
    assert (
        again["model"]
        == before + adam["optimizer"] + adam["weight_gradients"] + adam["activations"]
    )
    bigger = _core.training_memory(m._core, 16, ts.Adam()._config(), validation_batch=1000)
    assert bigger["activations"] > 0


@memory_readable
def test_training_beyond_the_available_memory_is_refused(monkeypatch):
    m = ts.MLP([784, 1000, 10], density=0.1, seed=0)
    available = _core.available_memory()
    message = refused(
        lambda: _core.training_memory(m._core, 10**9, ts.Adam()._config(), op="MLP.fit"),
        "[MLP.fit] training needs about ",
        " more than the model holds (optimizer state ",
        "activations and their gradients ",
        "but this process can use about ",
    )
    assert "GB" in message
    unchecked = _core.training_memory(m._core, 10**9, ts.Adam()._config(), check=False)
    assert unchecked["training"] > available and "available" not in unchecked
    monkeypatch.setenv("TRUESPARSE_MEMORY_CHECK", "0")
    assert _core.training_memory(m._core, 10**9, ts.Adam()._config())["training"] > available


def test_training_memory_arguments():
    m = ts.MLP([8, 4], seed=0)
    refused(lambda: _core.training_memory(m._core, 0, ts.SGD()._config()), "batch_size")
    refused(
        lambda: _core.training_memory(object(), 10, ts.SGD()._config()),
        "Network_f32 or Network_f64, got object",
        error=TypeError,
    )
    raw = getattr(m._core, "_engine", m._core)  # the engine itself works too
    assert _core.training_memory(raw, 4, ts.SGD()._config())["model"] > 0
