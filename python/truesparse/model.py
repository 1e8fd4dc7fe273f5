"""The user-facing MLP and its layers.

Inputs follow the NumPy convention, one example per row: ``X`` is (N, D). The C++ engine works
feature-major (one example per column) and transposes each batch once while gathering it.
Everything here converts and validates arguments, then calls ``truesparse._core``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp

from . import _core
from . import layers as L
from .evolution import SET, RigL, record_to_dict
from .optim import SGD, Adam

__all__ = [
    "MLP",
    "Sequential",
    "LinearView",
    "ModuleView",
    "er_densities",
    "epsilon_densities",
    "uniform_densities",
]

_LOSSES = {
    name: getattr(_core.Loss, name)
    for name in (
        "softmax_cross_entropy",
        "squared_error",
        "cross_entropy",
        "negative_log_likelihood",
        "logistic_cross_entropy",
    )
}
# Losses that need a particular last layer, which MLP appends and Sequential checks for.
_LAST_LAYER = {"cross_entropy": L.Softmax, "negative_log_likelihood": L.LogSoftmax}
_INITS = {
    name: getattr(_core.Init, name)
    for name in ("xavier_uniform", "xavier_normal", "he_normal", "he_uniform")
}
_FANS = {"actual": _core.FanIn.actual, "dense": _core.FanIn.dense}
_BACKENDS = {"mkl": _core.Backend.mkl, "native": _core.Backend.native}
_DTYPES = {np.dtype(np.float32): _core.MLP_f32, np.dtype(np.float64): _core.MLP_f64}


def _choice(table: dict, value: Any, what: str) -> Any:
    if value not in table:
        raise ValueError(f"[MLP] unknown {what} {value!r}; choose one of {sorted(table)}")
    return table[value]


def _check_sizes(sizes: Sequence[int], op: str) -> list[int]:
    try:
        sizes = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise TypeError(f"[{op}] sizes must be a sequence of integers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"[{op}] sizes needs at least 2 entries (inputs and outputs), got {sizes}")
    if any(s < 1 for s in sizes):
        raise ValueError(f"[{op}] every size must be >= 1, got {sizes}")
    return sizes


def er_densities(sizes: Sequence[int], density: float, power: float = 1.0) -> list[float]:
    """Per-layer densities of an overall ``density`` by Erdős–Rényi / ERK (RigL's allocation).

    Raw scores ``r_l = ((n_in + n_out) / (n_in n_out)) ** power``; layers whose density would
    exceed 1 are made dense and the rest re-solved, so ``sum d_l N_l = density * sum N_l``.
    """
    sizes = _check_sizes(sizes, "er_densities")
    return list(_core.er_densities(sizes, float(density), float(power)))


def epsilon_densities(sizes: Sequence[int], epsilon: float) -> list[float]:
    """SET's Erdős–Rényi densities ``min(1, epsilon (n_in + n_out) / (n_in n_out))``."""
    sizes = _check_sizes(sizes, "epsilon_densities")
    return list(_core.epsilon_densities(sizes, float(epsilon)))


def uniform_densities(
    sizes: Sequence[int], density: float, *, dense_first: bool = False, dense_last: bool = False
) -> list[float]:
    """The same density in every layer, optionally keeping the first and/or last layer dense."""
    sizes = _check_sizes(sizes, "uniform_densities")
    if not (0 < density <= 1):
        raise ValueError(f"[uniform_densities] density must be in (0, 1], got {density}")
    d = [float(density)] * (len(sizes) - 1)
    if dense_first:
        d[0] = 1.0
    if dense_last:
        d[-1] = 1.0
    return d


def _type_error_if_not_numeric(a: np.ndarray, op: str, name: str) -> None:
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"[{op}] {name} has dtype {a.dtype}, which cannot be converted to numbers")


class LinearView:
    """A view of one linear layer of an :class:`MLP`: ``Z = X Wᵀ + b`` with W of shape (out, in).

    ``W``/``DW`` are ``scipy.sparse.csr_array`` for a sparse layer and ``ndarray`` for a dense
    one; every access returns a fresh copy.
    """

    def __init__(self, model: "MLP", index: int) -> None:
        self._model = model
        self._index = index

    kind = "linear"

    @property
    def _core(self):
        return self._model._core

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self._core.layer_shape(self._index))

    @property
    def is_sparse(self) -> bool:
        return bool(self._core.layer_is_sparse(self._index))

    @property
    def nnz(self) -> int:
        return int(self._core.layer_nnz(self._index))

    @property
    def density(self) -> float:
        out, inp = self.shape
        return self.nnz / (out * inp)

    def _matrix(self, gradient: bool):
        values = self._core.layer_values(self._index, gradient)
        if not self.is_sparse:
            return values
        indptr, indices = self._core.layer_pattern(self._index)
        return sp.csr_array((values, indices, indptr), shape=self.shape)

    @property
    def W(self):
        return self._matrix(False)

    @property
    def b(self) -> np.ndarray:
        return self._core.layer_bias(self._index, False)

    @property
    def DW(self):
        return self._matrix(True) if self._model._has_gradients else None

    @property
    def Db(self) -> Optional[np.ndarray]:
        return self._core.layer_bias(self._index, True) if self._model._has_gradients else None

    @property
    def optimizer_state(self) -> dict:
        """The optimizer state of W, aligned with ``W.data`` (sparse) or ``W.ravel()`` (dense):
        ``{"m": first moment or momentum or None, "v": second moment or None, "steps": int}``."""
        return self._core.layer_optimizer_state(self._index)

    @property
    def itop_rate(self) -> float:
        """Fraction of this layer's positions that have ever held a stored weight."""
        return float(self._core.layer_itop_rate(self._index))

    def set_weights(self, W, b=None) -> None:
        """Replace W (and b). A scipy sparse W makes this a sparse layer whose pattern is W's
        stored entries (explicit zeros included); an ndarray keeps a dense layer dense and gives
        a sparse layer the ndarray's nonzeros as its pattern. Optimizer state is reset."""
        op = "Linear.set_weights"
        out, inp = self.shape
        dtype = self._model.dtype
        if b is None:
            b = self.b
        b = np.asarray(b)
        _type_error_if_not_numeric(b, op, "b")
        b = np.ascontiguousarray(b, dtype=dtype)
        if b.shape != (out,):
            raise ValueError(
                f"[{op}] b has shape {b.shape} but layer {self._index} has {out} outputs"
            )
        if not np.all(np.isfinite(b)):
            raise ValueError(f"[{op}] b contains NaN or infinity")
        if sp.issparse(W):
            if W.shape != (out, inp):
                raise ValueError(
                    f"[{op}] W has shape {W.shape} but layer {self._index} is {(out, inp)}"
                )
            if W.format != "csr":
                coo = W.tocoo()
                keys = coo.row.astype(np.int64) * inp + coo.col
                if np.unique(keys).size != keys.size:
                    raise ValueError(f"[{op}] W has duplicate entries")
                W = sp.csr_array(coo)
            W = sp.csr_array(W, copy=True)
            indptr = np.asarray(W.indptr, dtype=np.int64)
            indices = np.asarray(W.indices, dtype=np.int64)
            if indptr.shape != (out + 1,):
                raise ValueError(f"[{op}] W.indptr has {indptr.size} entries, expected {out + 1}")
            bad = np.flatnonzero((indices < 0) | (indices >= inp))
            if bad.size:
                row = int(np.searchsorted(indptr, bad[0], side="right") - 1)
                raise ValueError(
                    f"[{op}] column index {indices[bad[0]]} in row {row} is outside [0, {inp})"
                )
            if not W.has_sorted_indices:
                W.sort_indices()
            values = np.ascontiguousarray(W.data, dtype=dtype)
            if not np.all(np.isfinite(values)):
                raise ValueError(f"[{op}] W contains NaN or infinity")
            self._core.set_sparse_layer(
                self._index,
                np.asarray(W.indptr, np.int32),
                np.asarray(W.indices, np.int32),
                values,
                b,
            )
        else:
            W = np.asarray(W)
            _type_error_if_not_numeric(W, op, "W")
            W = np.ascontiguousarray(W, dtype=dtype)
            if W.shape != (out, inp):
                raise ValueError(
                    f"[{op}] W has shape {W.shape} but layer {self._index} is {(out, inp)}"
                )
            if not np.all(np.isfinite(W)):
                raise ValueError(f"[{op}] W contains NaN or infinity")
            if self.is_sparse:
                csr = sp.csr_array(W)
                csr.eliminate_zeros()
                self._core.set_sparse_layer(
                    self._index,
                    np.asarray(csr.indptr, np.int32),
                    np.asarray(csr.indices, np.int32),
                    np.ascontiguousarray(csr.data, dtype=dtype),
                    b,
                )
            else:
                self._core.set_dense_layer(self._index, W, b)
        self._model._has_gradients = False

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        out, inp = self.shape
        return f"Linear({inp} -> {out}, {kind}, nnz={self.nnz}, density={self.density:.4g})"


class ModuleView:
    """A view of one non-linear layer of a model (activation, softmax, batch norm, dropout,
    SReLU, affine). ``parameters``/``gradients`` are dicts of copies (batch norm and affine:
    ``gamma``, ``beta``; SReLU: ``t`` = [tl, al, tr, ar]); ``set(name, value)`` replaces one."""

    def __init__(self, model: "MLP", index: int) -> None:
        self._model = model
        self._index = index
        self.kind = model._core.module_kind(index)

    @property
    def parameters(self) -> dict:
        return {k: v for k, (v, _) in self._model._core.module_parameters(self._index).items()}

    @property
    def gradients(self) -> Optional[dict]:
        if not self._model._has_gradients:
            return None
        return {k: g for k, (_, g) in self._model._core.module_parameters(self._index).items()}

    def set(self, name: str, value) -> None:
        value = np.ascontiguousarray(value, dtype=self._model.dtype).ravel()
        if not np.all(np.isfinite(value)):
            raise ValueError(f"[{self.kind}.set] {name} contains NaN or infinity")
        self._model._core.set_module_parameter(self._index, name, value)

    @property
    def running_mean(self) -> np.ndarray:
        return self._model._core.module_statistics(self._index)[0]

    @property
    def running_var(self) -> np.ndarray:
        return self._model._core.module_statistics(self._index)[1]

    def __repr__(self) -> str:
        return f"{self.kind}()"


class MLP:
    """A multilayer perceptron whose sparse layers are CSR matrices.

    ``model.layers`` are the linear layers (:class:`LinearView`), ``model.modules`` every
    layer in order (linear ones and :class:`ModuleView` for the others).

    Parameters
    ----------
    sizes : layer widths ``[inputs, hidden..., outputs]``.
    density : overall density in (0, 1], allocated per layer as ``init`` says.
    densities : explicit per-layer densities (``len(sizes) - 1`` values); 1 gives a dense layer.
    epsilon : SET's Erdős–Rényi parameter (:func:`epsilon_densities`).
        With none of the three, every layer is dense.
    activation : hidden activation: relu, leaky_relu, all_relu, sigmoid, tanh, identity.
    alpha : negative slope of leaky_relu / all_relu.
    loss : ``"softmax_cross_entropy"`` (labels) or ``"squared_error"``.
    init : how ``density`` is spread over the layers: ``"erk"``/``"er"`` (Erdős–Rényi, capped
        and re-solved, :func:`er_densities`; ``erk_power`` scales the raw scores), or
        ``"uniform"`` (every layer ``density``; ``dense_first``/``dense_last`` keep those dense).
    weight_init : xavier_uniform, xavier_normal, he_normal, he_uniform.
    sparse_fan_in : ``"actual"`` scales each row by its number of stored weights, ``"dense"``
        by the layer's full fan-in.
    dtype : ``np.float32`` (training) or ``np.float64`` (gradient checks).
    seed : drives initialisation and shuffling; results do not depend on the thread count.
    backend : ``"mkl"`` (oneMKL sparse BLAS) or ``"native"`` (truesparse's own OpenMP kernels)
        for the sparse products.
    loss : ``"softmax_cross_entropy"`` (fused, on logits; default), ``"squared_error"``,
        ``"logistic_cross_entropy"`` (on logits), ``"cross_entropy"`` (a Softmax layer is
        appended) or ``"negative_log_likelihood"`` (a LogSoftmax layer is appended).
    label_smoothing : ε for the label-based losses: targets (one-hot or given) become
        (1 − ε) T + ε/K.
    batch_norm, dropout : add BatchNorm before and Dropout(dropout) after each hidden activation.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        density: Optional[float] = None,
        *,
        densities: Optional[Sequence[float]] = None,
        epsilon: Optional[float] = None,
        activation: str = "relu",
        alpha: float = 0.01,
        loss: str = "softmax_cross_entropy",
        label_smoothing: float = 0.0,
        batch_norm: bool = False,
        dropout: float = 0.0,
        init: str = "erk",
        erk_power: float = 1.0,
        dense_first: bool = False,
        dense_last: bool = False,
        weight_init: str = "he_normal",
        sparse_fan_in: str = "actual",
        dtype=np.float32,
        seed: int = 0,
        backend: str = "mkl",
    ) -> None:
        sizes = _check_sizes(sizes, "MLP")
        given = [
            name
            for name, v in (("density", density), ("densities", densities), ("epsilon", epsilon))
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(f"[MLP] give at most one of density, densities, epsilon; got {given}")
        if init not in ("er", "erk", "uniform"):
            raise ValueError(f"[MLP] unknown init {init!r}; choose one of ['er', 'erk', 'uniform']")
        if density is not None:
            if not (0 < density <= 1):
                raise ValueError(f"[MLP] density must be in (0, 1], got {density}")
            if init == "uniform":
                layer_densities = uniform_densities(
                    sizes, density, dense_first=dense_first, dense_last=dense_last
                )
            else:
                layer_densities = er_densities(sizes, density, erk_power)
        elif epsilon is not None:
            layer_densities = epsilon_densities(sizes, epsilon)
        elif densities is not None:
            layer_densities = [float(d) for d in densities]
            if len(layer_densities) != len(sizes) - 1:
                raise ValueError(
                    f"[MLP] {len(layer_densities)} densities given for {len(sizes) - 1} layers"
                )
            for i, d in enumerate(layer_densities):
                if not (0 < d <= 1):
                    raise ValueError(f"[MLP] density of layer {i} is {d}, it must be in (0, 1]")
        else:
            layer_densities = [1.0] * (len(sizes) - 1)
        act = _choice(L.ACTIVATIONS, activation, "activation")
        if not (0 <= dropout < 1):
            raise ValueError(f"[MLP] dropout must be in [0, 1), got {dropout}")
        specs: list[L.LayerSpec] = []
        for i, d in enumerate(layer_densities):
            specs.append(L.Linear(sizes[i + 1], density=d))
            if i + 1 < len(layer_densities):  # hidden layer: [batch norm], activation, [dropout]
                if batch_norm:
                    specs.append(L.BatchNorm())
                specs.append(act(alpha=alpha) if act in (L.LeakyReLU, L.AllReLU) else act())
                if dropout > 0:
                    specs.append(L.Dropout(dropout))
        if loss in _LAST_LAYER:
            specs.append(_LAST_LAYER[loss]())
        self.activation = activation
        self._setup(
            sizes[0],
            specs,
            loss=loss,
            label_smoothing=label_smoothing,
            weight_init=weight_init,
            sparse_fan_in=sparse_fan_in,
            dtype=dtype,
            seed=seed,
            backend=backend,
        )

    def _setup(
        self,
        inputs: int,
        specs: Sequence[L.LayerSpec],
        *,
        loss: str,
        label_smoothing: float,
        weight_init: str,
        sparse_fan_in: str,
        dtype,
        seed: int,
        backend: str,
    ) -> None:
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"[MLP] dtype {dtype!r} is not a NumPy dtype") from None
        if self.dtype not in _DTYPES:
            raise TypeError(f"[MLP] dtype must be float32 or float64, got {self.dtype}")
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2**64):
            raise ValueError(f"[MLP] seed must be an integer in [0, 2**64), got {seed!r}")
        if not (0 <= label_smoothing <= 1):
            raise ValueError(f"[MLP] label_smoothing must be in [0, 1], got {label_smoothing}")
        for spec in specs:
            if not isinstance(spec, L.LayerSpec):
                raise TypeError(
                    f"[MLP] layers must be truesparse.layers specs, got {type(spec).__name__}"
                )
        if loss in _LAST_LAYER and (not specs or not isinstance(specs[-1], _LAST_LAYER[loss])):
            raise ValueError(f"[MLP] loss {loss!r} needs a {_LAST_LAYER[loss].__name__} last layer")
        self.seed = int(seed)
        self.loss = loss
        self.label_smoothing = float(label_smoothing)
        self._core = _DTYPES[self.dtype](
            [],
            [],
            _core.Activation.relu,
            0.0,
            int(inputs),
            [spec._spec() for spec in specs],
            _choice(_LOSSES, loss, "loss"),
            float(label_smoothing),
            _choice(_INITS, weight_init, "weight_init"),
            _choice(_FANS, sparse_fan_in, "sparse_fan_in"),
            self.seed,
            _choice(_BACKENDS, backend, "backend"),
        )
        self.layers = [LinearView(self, i) for i in range(self._num_linear(specs))]
        self.sizes = [int(inputs)] + [layer.shape[0] for layer in self.layers]
        linear_modules = {self._core.module_of_layer(i): v for i, v in enumerate(self.layers)}
        self.modules = [
            linear_modules.get(m) or ModuleView(self, m) for m in range(self._core.num_modules)
        ]
        self._has_gradients = False
        self._epochs_done = 0
        self.history_: dict[str, list] = {}

    @staticmethod
    def _num_linear(specs) -> int:
        return sum(isinstance(spec, L.Linear) for spec in specs)

    # -- argument conversion -------------------------------------------------------------------
    def _features(self, X, op: str) -> np.ndarray:
        if sp.issparse(X):
            raise TypeError(f"[{op}] X must be a dense array, got a scipy sparse matrix")
        X = np.asarray(X)
        _type_error_if_not_numeric(X, op, "X")
        if X.ndim != 2:
            raise ValueError(f"[{op}] X must be 2-D (N, {self.sizes[0]}), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"[{op}] X is empty (shape {X.shape})")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(
                f"[{op}] X has {X.shape[1]} features but the model has {self.sizes[0]} inputs"
            )
        X = np.ascontiguousarray(X, dtype=self.dtype)
        rows = max(1, (1 << 20) // X.shape[1])  # checked in blocks: no X-sized temporary
        for start in range(0, X.shape[0], rows):
            block = X[start : start + rows]
            if not np.isfinite(block).all():
                bad = np.argwhere(~np.isfinite(block))[0]
                raise ValueError(
                    f"[{op}] X contains NaN or infinity (first at row "
                    f"{start + bad[0]}, column {bad[1]})"
                )
        return X

    def _targets(self, y, n: int, op: str):
        """Returns (labels int32 or None, targets (N, out) or None)."""
        y = np.asarray(y)
        _type_error_if_not_numeric(y, op, "y")
        classes = self._core.outputs
        if y.ndim == 2:
            if y.shape != (n, classes):
                raise ValueError(f"[{op}] targets have shape {y.shape}, expected {(n, classes)}")
            t = np.ascontiguousarray(y, dtype=self.dtype)
            if not np.isfinite(t).all():
                raise ValueError(f"[{op}] targets contain NaN or infinity")
            if self.loss in ("softmax_cross_entropy", "cross_entropy", "negative_log_likelihood"):
                sums = t.sum(axis=1, dtype=np.float64)
                bad = np.flatnonzero((t < 0).any(axis=1) | (np.abs(sums - 1) > 1e-3))
                if bad.size:
                    raise ValueError(
                        f"[{op}] targets of {self.loss} must be probabilities (>= 0, "
                        f"summing to 1); row {bad[0]} sums to {sums[bad[0]]:g}"
                    )
            return None, t
        if y.ndim != 1:
            raise ValueError(
                f"[{op}] y must be 1-D class labels of length {n}, got shape {y.shape}"
            )
        if y.shape[0] != n:
            raise ValueError(f"[{op}] y has {y.shape[0]} labels but X has {n} rows")
        if not np.issubdtype(y.dtype, np.integer):
            if y.dtype == np.bool_ or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise ValueError(f"[{op}] labels must be integers in [0, {classes})")
        if y.size and (y.min() < 0 or y.max() >= classes):
            bad = y.min() if y.min() < 0 else y.max()
            raise ValueError(f"[{op}] label {bad} is outside [0, {classes})")
        return np.ascontiguousarray(y, dtype=np.int32), None

    # -- inspection API --------------------------------------------------------------------------
    def forward(self, X, train: bool = False) -> np.ndarray:
        """Network output (N, out): for the standard MLP with the fused softmax cross entropy,
        the logits before any softmax. ``train=True`` runs batch norm with batch statistics
        (updating its running statistics) and dropout with a fresh mask, as ``backward`` does."""
        return self._core.forward(self._features(X, "MLP.forward"), bool(train))

    def backward(self, X, y) -> float:
        """Batch-mean loss of (X, y); leaves ``DW`` and ``Db`` on every layer."""
        X = self._features(X, "MLP.backward")
        labels, targets = self._targets(y, X.shape[0], "MLP.backward")
        loss = self._core.backward(X, labels, targets)
        self._has_gradients = True
        return float(loss)

    # -- training --------------------------------------------------------------------------------
    def fit(
        self,
        X,
        y,
        epochs: int = 10,
        batch_size: int = 100,
        optimizer=None,
        validation_data=None,
        shuffle: bool = True,
        verbose: int = 0,
        callback: Optional[Callable[[dict], Any]] = None,
        evolution: Optional[Union[SET, RigL]] = None,
    ) -> dict[str, list]:
        """Train with mini-batch SGD; returns the history (also kept as ``history_``).

        ``history`` has per-epoch lists ``loss`` and ``accuracy`` (running over the epoch's
        batches), ``time`` (seconds of training), and ``val_loss``/``val_accuracy`` when
        ``validation_data=(X_val, y_val)`` is given. ``callback(record)`` is called after each
        epoch with that epoch's values; returning ``False`` stops training. Ctrl-C stops between
        batches and raises ``KeyboardInterrupt``; the weights are those after the last finished
        batch and ``history_`` holds the finished epochs.

        ``optimizer`` is :class:`SGD` (default ``SGD()``), :class:`Adam` or :class:`AdamW`.
        ``evolution`` is :class:`SET` or :class:`RigL`; then ``history["topology"]`` lists one
        record per sparse layer and update (:func:`truesparse.evolution.record_to_dict`).
        """
        op = "fit"
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"[{op}] epochs must be a non-negative integer, got {epochs!r}")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size <= 0
        ):
            raise ValueError(f"[{op}] batch_size must be a positive integer, got {batch_size!r}")
        optimizer = SGD() if optimizer is None else optimizer
        if not isinstance(optimizer, (SGD, Adam)):
            raise TypeError(
                f"[{op}] optimizer must be truesparse.SGD, Adam or AdamW, "
                f"got {type(optimizer).__name__}"
            )
        if evolution is not None and not isinstance(evolution, (SET, RigL)):
            raise TypeError(
                f"[{op}] evolution must be truesparse.SET or RigL, got {type(evolution).__name__}"
            )
        X = self._features(X, op)
        labels, targets = self._targets(y, X.shape[0], op)
        val = None
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._features(Xv, "fit(validation_data)")
            val = (Xv, *self._targets(yv, Xv.shape[0], "fit(validation_data)"))
        history: dict[str, list] = {"loss": [], "accuracy": [], "time": []}
        if val is not None:
            history.update(val_loss=[], val_accuracy=[])
        if evolution is not None:
            history["topology"] = []
        self.history_ = history
        config = optimizer._config()
        config.schedule_start = self._core.steps  # the schedule's t = 0 at this fit's first step
        steps_per_epoch = -(-X.shape[0] // int(batch_size))
        set_options = rigl_options = None
        if isinstance(evolution, SET) and evolution.delta_t is not None:
            set_options = evolution._options()
        if isinstance(evolution, RigL):
            rigl_options = evolution._options(self._core.steps, epochs * steps_per_epoch)
        for epoch in range(epochs):
            start = time.perf_counter()
            loss, acc, _, records, interrupt = self._core.train_epoch(
                X,
                labels,
                targets,
                int(batch_size),
                config,
                self._epochs_done,
                shuffle,
                set_options,
                rigl_options,
            )
            if interrupt is not None:  # Ctrl-C between batches: keep what changed, then raise
                self._has_gradients = True
                if evolution is not None:
                    history["topology"].extend(record_to_dict(r) for r in records)
                raise interrupt
            if isinstance(evolution, SET) and evolution.delta_t is None and epoch + 1 < epochs:
                records = records + self._core.evolve_set(evolution._options())
            elapsed = time.perf_counter() - start
            if evolution is not None:
                history["topology"].extend(record_to_dict(r) for r in records)
            self._epochs_done += 1
            self._has_gradients = True
            record = {"epoch": self._epochs_done, "loss": loss, "accuracy": acc, "time": elapsed}
            if val is not None:
                record["val_loss"], record["val_accuracy"] = self._core.evaluate(*val)
            for key in history:
                if key != "topology":
                    history[key].append(record[key])
            if verbose:
                line = f"epoch {record['epoch']:3d}  loss {loss:.4f}  acc {acc:.4f}"
                if val is not None:
                    line += (
                        f"  val_loss {record['val_loss']:.4f}  val_acc {record['val_accuracy']:.4f}"
                    )
                print(line + f"  time {elapsed:.3f}s", file=sys.stdout, flush=True)
            if callback is not None and callback(record) is False:
                break
        return history

    def evolve(
        self, evolution: Union[SET, RigL], X=None, y=None, drop_fraction: Optional[float] = None
    ) -> list[dict]:
        """Apply one topology update now and return its records (one per sparse layer).

        SET needs no data. RigL computes the gradient of the batch (X, y) and drops and regrows
        ``drop_fraction`` (default: ``evolution.alpha``) of each sparse layer's weights.
        Optimizer state follows the pattern: survivors keep theirs, new weights start at zero.
        """
        if isinstance(evolution, SET):
            records = self._core.evolve_set(evolution._options())
        elif isinstance(evolution, RigL):
            if X is None or y is None:
                raise ValueError("[MLP.evolve] RigL needs a batch (X, y) for its gradient")
            X = self._features(X, "MLP.evolve")
            labels, targets = self._targets(y, X.shape[0], "MLP.evolve")
            f = evolution.alpha if drop_fraction is None else float(drop_fraction)
            records = self._core.evolve_rigl(X, labels, targets, f)
            self._has_gradients = True
        else:
            raise TypeError(
                f"[MLP.evolve] evolution must be truesparse.SET or RigL, "
                f"got {type(evolution).__name__}"
            )
        return [record_to_dict(r) for r in records]

    def evaluate(self, X, y) -> dict[str, float]:
        """Mean loss and accuracy over (X, y)."""
        X = self._features(X, "evaluate")
        labels, targets = self._targets(y, X.shape[0], "evaluate")
        loss, acc = self._core.evaluate(X, labels, targets)
        return {"loss": float(loss), "accuracy": float(acc)}

    def predict(self, X) -> np.ndarray:
        """Class labels (N,), the argmax of the logits."""
        return np.argmax(self._core.forward(self._features(X, "predict")), axis=1).astype(np.int64)

    @property
    def nnz(self) -> int:
        return sum(layer.nnz for layer in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{m.shape[1]}->{m.shape[0]}:{m.density:.3g}" if m.kind == "linear" else m.kind
            for m in self.modules
        )
        return f"{type(self).__name__}([{inner}], loss={self.loss!r}, dtype={self.dtype.name})"


class Sequential(MLP):
    """A network of explicit layers (see :mod:`truesparse.layers`) on ``inputs`` features::

        from truesparse import layers as L
        net = ts.Sequential(784, [L.Linear(1024, density=0.05), L.BatchNorm(), L.ReLU(),
                                  L.Dropout(0.2), L.Linear(10)], seed=0)

    Everything else (fit, evolution, forward/backward, the layer views) is as for :class:`MLP`.
    ``loss="cross_entropy"`` needs a Softmax last layer, ``"negative_log_likelihood"`` a
    LogSoftmax one.
    """

    def __init__(
        self,
        inputs: int,
        layers: Sequence[L.LayerSpec],
        *,
        loss: str = "softmax_cross_entropy",
        label_smoothing: float = 0.0,
        weight_init: str = "he_normal",
        sparse_fan_in: str = "actual",
        dtype=np.float32,
        seed: int = 0,
        backend: str = "mkl",
    ) -> None:
        if not (isinstance(inputs, (int, np.integer)) and inputs >= 1):
            raise ValueError(f"[Sequential] inputs must be a positive integer, got {inputs!r}")
        layers = list(layers)
        if not any(isinstance(spec, L.Linear) for spec in layers):
            raise ValueError("[Sequential] the network needs at least one layers.Linear")
        self.activation = None
        self._setup(
            int(inputs),
            layers,
            loss=loss,
            label_smoothing=label_smoothing,
            weight_init=weight_init,
            sparse_fan_in=sparse_fan_in,
            dtype=dtype,
            seed=seed,
            backend=backend,
        )
