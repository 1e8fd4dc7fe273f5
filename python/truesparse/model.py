"""The network classes: :class:`Sequential`, a sequence of layers (the general network), and
:class:`MLP`, a convenience that builds the standard layer list of a multilayer perceptron.

Inputs follow the NumPy convention, one example per row: ``X`` is (N, D). The C++ engine works
feature-major (one example per column) and transposes each batch once while gathering it.
Everything here converts and validates arguments, then calls ``truesparse._core``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp

from . import _core
from . import checkpoint as checkpoint_module
from . import layers as L
from ._checks import MAX_LAYER_SIZE, choice, flag, integer, real, show
from ._interrupt import InterruptGuard
from ._locking import LockedEngine, exclusive
from .callbacks import Callback
from .density import allocate, check_sizes
from .distributed import Communicator, digest, raised_on_every_rank
from .evolution import SET, RigL, record_to_dict
from .optim import SGD, Adam
from .plot import degrees
from .progress import epoch_progress_factory
from .views import LinearView, ModuleView, type_error_if_not_numeric

__all__ = ["LOSSES", "MLP", "WEIGHT_INITS", "Sequential", "load", "mlp_layers"]

# The names of the losses, weight initialisations, fan-in modes, backends and dtypes: each list
# is defined once, by the engine's enums, and the CLI offers the same.
LOSSES = dict(_core.Loss.__members__)
WEIGHT_INITS = dict(_core.Init.__members__)
FAN_INS = dict(_core.FanIn.__members__)
BACKENDS = dict(_core.Backend.__members__)
OPERAND_DTYPES = dict(_core.OperandDtype.__members__)
DTYPES = {np.dtype(np.float32): _core.Network_f32, np.dtype(np.float64): _core.Network_f64}
# The batch size of the engine's evaluate (validation in fit, evaluate, predict).
EVALUATION_BATCH = 1000
# What fit does when a batch's loss is NaN or infinite.
NONFINITE = ("raise", "warn", "ignore")
# Losses that need a particular last layer, which MLP appends and Sequential checks for.
LAST_LAYER = {"cross_entropy": L.Softmax, "negative_log_likelihood": L.LogSoftmax}


def _every_rank(error: BaseException, dp: Optional[Communicator]) -> BaseException:
    """``error``, marked as raised on every rank of a data-parallel fit at this point."""
    if dp is not None:
        error.truesparse_every_rank = True
    return error


def _epoch_line(record: dict) -> str:
    line = f"epoch {record['epoch']:3d}  loss {record['loss']:.4f}  acc {record['accuracy']:.4f}"
    if "val_loss" in record:
        line += f"  val_loss {record['val_loss']:.4f}  val_acc {record['val_accuracy']:.4f}"
    return line + f"  time {record['time']:.3f}s"


@dataclass
class _Run:
    """The data and settings of one ``fit`` call, as the engine takes them."""

    X: np.ndarray
    labels: Optional[np.ndarray]
    targets: Optional[np.ndarray]
    batch_size: int
    shuffle: bool
    val: Optional[tuple]
    evolution: Optional[Union[SET, RigL]]
    config: Any
    set_options: Any
    rigl_options: Any
    epochs: int
    verbose: int
    bars: Callable
    callback: Optional[Callable[[dict], Any]]
    callbacks: list
    checkpoint: Optional[Union[str, os.PathLike]]
    checkpoint_every: int
    input_noise: float
    on_nonfinite: str
    warned_nonfinite: bool = False
    dp: Optional[Communicator] = None  # data-parallel training over MPI (distributed.py)
    shard: bool = False
    local_batch: int = 0  # the batch the engine takes here: this rank's share when sharded

    def engine_arguments(self, steps: int = 0) -> dict:
        """The data-parallel keyword arguments of the engine's calls (none for one process)."""
        if self.dp is None:
            return {}
        return dict(self.dp.engine_arguments(self.shard), **({"steps": steps} if steps else {}))


def _choice(table: dict, value: Any, what: str, op: str) -> Any:
    """The entry of ``table`` that the string ``value`` names (see ``_checks.choice``)."""
    return table[choice(value, table, what, op)]


def operand_dtype_kind(operand_dtype: Any, dtype: np.dtype, backend: str, op: str) -> Any:
    """The engine's ``OperandDtype`` that ``operand_dtype`` names; a ValueError naming ``op``
    where the model cannot use it (bfloat16 needs float32 and the native backend)."""
    kind = _choice(OPERAND_DTYPES, operand_dtype, "operand_dtype", op)
    if operand_dtype == "bfloat16" and dtype != np.float32:
        raise ValueError(f"[{op}] operand_dtype='bfloat16' needs dtype float32, got {dtype}")
    if operand_dtype == "bfloat16" and backend != "native":
        raise ValueError(f"[{op}] operand_dtype='bfloat16' needs backend='native', got {backend!r}")
    return kind


def mlp_layers(
    densities: Sequence[float],
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    alpha: float = 0.01,
    batch_norm: bool = False,
    dropout: float = 0.0,
    loss: str = "softmax_cross_entropy",
) -> list[L.LayerSpec]:
    """The layer list of the standard MLP of ``sizes`` (``[inputs, hidden..., outputs]``) with
    one density per linear layer: per hidden layer ``Linear, [BatchNorm], activation,
    [Dropout]``, then the output ``Linear``, then ``Softmax``/``LogSoftmax`` when ``loss``
    needs one (cross_entropy, negative_log_likelihood)."""
    act = _choice(L.ACTIVATIONS, activation, "activation", "MLP")
    alpha = real(alpha, "alpha", "MLP")
    dropout = real(dropout, "dropout", "MLP", low=0, high=1, high_open=True)
    batch_norm = flag(batch_norm, "batch_norm", "MLP")
    specs: list[L.LayerSpec] = []
    for i, d in enumerate(densities):
        specs.append(L.Linear(int(sizes[i + 1]), density=d))
        if i + 1 < len(densities):  # hidden layer: [batch norm], activation, [dropout]
            if batch_norm:
                specs.append(L.BatchNorm())
            specs.append(act(alpha=alpha) if act in (L.LeakyReLU, L.AllReLU) else act())
            if dropout > 0:
                specs.append(L.Dropout(dropout))
    if loss in LAST_LAYER:
        specs.append(LAST_LAYER[loss]())
    return specs


class Sequential:
    """A network of explicit layers (see :mod:`truesparse.layers`) on ``inputs`` features::

        from truesparse import layers as L
        net = ts.Sequential(784, [L.Linear(1024, density=0.05), L.BatchNorm(), L.ReLU(),
                                  L.Dropout(0.2), L.Linear(10)], seed=0)

    ``model.layers`` are the linear layers (:class:`~truesparse.views.LinearView`),
    ``model.modules`` every layer in order (linear ones and
    :class:`~truesparse.views.ModuleView` for the others).

    Parameters
    ----------
    inputs : number of input features.
    layers : the layer specs, at least one ``layers.Linear``.
    loss : ``"softmax_cross_entropy"`` (fused, on logits; default), ``"squared_error"``,
        ``"logistic_cross_entropy"`` (on logits), ``"cross_entropy"`` (needs a Softmax last
        layer) or ``"negative_log_likelihood"`` (needs a LogSoftmax last layer).
    label_smoothing : ε for the label-based losses: targets (one-hot or given) become
        (1 − ε) T + ε/K.
    weight_init : xavier_uniform, xavier_normal, he_normal, he_uniform.
    sparse_fan_in : ``"actual"`` scales each row by its number of stored weights, ``"dense"``
        by the layer's full fan-in.
    dtype : ``np.float32`` (training) or ``np.float64`` (gradient checks).
    seed : drives initialisation, shuffling and dropout; results do not depend on the thread
        count.
    backend : ``"native"`` (truesparse's own kernels, the default) or ``"mkl"`` (oneMKL sparse BLAS)
        for the sparse products.
    operand_dtype : ``"float32"`` (the default) or ``"bfloat16"``: the sparse products gather
        their dense operands (activations in the forward and the weight gradient, output
        gradients in the input gradient) as bfloat16 copies, rounded to nearest even; weights,
        sums and outputs stay float32. Faster once the activations outgrow the caches (see
        docs/design.md, "bfloat16 operands", for speed and accuracy measured); needs
        ``dtype=np.float32`` and ``backend="native"``.
    """

    activation: Optional[str] = None  # the hidden activation of an MLP; None for a Sequential

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
        backend: str = "native",
        operand_dtype: str = "float32",
    ) -> None:
        self._setup(
            inputs,
            layers,
            loss=loss,
            label_smoothing=label_smoothing,
            weight_init=weight_init,
            sparse_fan_in=sparse_fan_in,
            dtype=dtype,
            seed=seed,
            backend=backend,
            operand_dtype=operand_dtype,
        )

    def _setup(
        self,
        inputs: int,
        layers: Sequence[L.LayerSpec],
        *,
        loss: str,
        label_smoothing: float,
        weight_init: str,
        sparse_fan_in: str,
        dtype,
        seed: int,
        backend: str,
        operand_dtype: str,
        draw_weights: bool = True,
    ) -> None:
        """What ``__init__`` does. ``draw_weights=False`` builds the layers without weights
        (sparse ones with no stored position, dense ones zeros) for a caller that gives every
        layer its own next: a checkpoint's load (``set_state``), ``from_torch`` (``set_weights``)."""
        op = type(self).__name__
        inputs = integer(inputs, "inputs", op, minimum=1, maximum=MAX_LAYER_SIZE)
        specs = list(layers)
        for spec in specs:
            if not isinstance(spec, L.LayerSpec):
                raise TypeError(
                    f"[{op}] layers must be truesparse.layers specs, got {type(spec).__name__}"
                )
        if not any(isinstance(spec, L.Linear) for spec in specs):
            raise ValueError(f"[{op}] the network needs at least one layers.Linear")
        try:  # None is no dtype here (NumPy would read it as float64)
            self.dtype = np.dtype(dtype) if dtype is not None else None
        except TypeError:
            raise TypeError(f"[{op}] dtype {dtype!r} is not a NumPy dtype") from None
        if self.dtype not in DTYPES:
            raise TypeError(f"[{op}] dtype must be float32 or float64, got {show(dtype)}")
        seed = integer(seed, "seed", op, minimum=0, maximum=2**64 - 1)
        label_smoothing = real(label_smoothing, "label_smoothing", op, low=0, high=1)
        loss_kind = _choice(LOSSES, loss, "loss", op)
        if loss in LAST_LAYER and (not specs or not isinstance(specs[-1], LAST_LAYER[loss])):
            raise ValueError(f"[{op}] loss {loss!r} needs a {LAST_LAYER[loss].__name__} last layer")
        backend_kind = _choice(BACKENDS, backend, "backend", op)
        operands = operand_dtype_kind(operand_dtype, self.dtype, backend, op)
        self.seed = int(seed)
        self.loss = loss
        self.label_smoothing = float(label_smoothing)
        self._specs = specs
        self._options = {
            "loss": loss,
            "label_smoothing": self.label_smoothing,
            "weight_init": weight_init,
            "sparse_fan_in": sparse_fan_in,
            "seed": self.seed,
            "backend": backend,
            "operand_dtype": operand_dtype,
        }
        self._core = LockedEngine(
            DTYPES[self.dtype](
                inputs=int(inputs),
                layers=[spec._spec() for spec in specs],
                loss=loss_kind,
                label_smoothing=self.label_smoothing,
                init=_choice(WEIGHT_INITS, weight_init, "weight_init", op),
                fan=_choice(FAN_INS, sparse_fan_in, "sparse_fan_in", op),
                seed=self.seed,
                backend=backend_kind,
                operands=operands,
                draw_weights=draw_weights,
            )
        )
        self.layers = [LinearView(self, i) for i in range(self._core.num_layers)]
        self.sizes = [int(inputs)] + [layer.shape[0] for layer in self.layers]
        linear_modules = {self._core.module_of_layer(i): v for i, v in enumerate(self.layers)}
        self.modules = [
            linear_modules.get(m) or ModuleView(self, m) for m in range(self._core.num_modules)
        ]
        self._has_gradients = False
        self._epochs_done = 0
        self._plan: Optional[dict] = None  # the planned run of the last fit (see fit)
        # Anything JSON-serialisable the user attaches; saved with every checkpoint.
        self.metadata: dict = {}
        self.history_: dict[str, list] = {}

    def _op(self, method: str) -> str:
        """The name of a method in error messages: ``MLP.fit``, ``Sequential.predict``."""
        return f"{type(self).__name__}.{method}"

    # -- argument conversion -------------------------------------------------------------------
    def _features(self, X, op: str) -> np.ndarray:
        if sp.issparse(X):
            raise TypeError(f"[{op}] X must be a dense array, got a scipy sparse matrix")
        X = np.asarray(X)
        type_error_if_not_numeric(X, op, "X")
        if X.ndim != 2:
            raise ValueError(f"[{op}] X must be 2-D (N, {self.sizes[0]}), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"[{op}] X is empty (shape {X.shape})")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(
                f"[{op}] X has {X.shape[1]} features but the model has {self.sizes[0]} inputs"
            )
        X = np.ascontiguousarray(X, dtype=self.dtype)
        bad = _core.first_nonfinite(X)  # in C++, on the engine's threads, without a temporary
        if bad is not None:
            raise ValueError(
                f"[{op}] X contains NaN or infinity (first at row {bad[0]}, column {bad[1]})"
            )
        return X

    def _targets(self, y, n: int, op: str):
        """Returns (labels int32 or None, targets (N, out) or None)."""
        y = np.asarray(y)
        type_error_if_not_numeric(y, op, "y")
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
        if (
            y.ndim == 1
            and self.loss == "squared_error"
            and classes == 1
            and np.issubdtype(y.dtype, np.floating)
        ):  # regression with one output: real-valued targets given as a vector
            return self._targets(y.reshape(-1, 1), n, op)
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
    @exclusive
    def forward(self, X, train: bool = False) -> np.ndarray:
        """Network output (N, out): for the standard MLP with the fused softmax cross entropy,
        the logits before any softmax. ``train=True`` runs batch norm with batch statistics
        (updating its running statistics) and dropout with a fresh mask, as ``backward`` does."""
        op = self._op("forward")
        return self._core.forward(self._features(X, op), flag(train, "train", op))

    @exclusive
    def backward(self, X, y) -> float:
        """Batch-mean loss of (X, y); leaves ``DW`` and ``Db`` on every layer."""
        X = self._features(X, self._op("backward"))
        labels, targets = self._targets(y, X.shape[0], self._op("backward"))
        loss = self._core.backward(X, labels, targets)
        self._has_gradients = True
        return float(loss)

    # -- training --------------------------------------------------------------------------------
    @exclusive
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
        *,
        callbacks: Sequence[Callback] = (),
        initial_epoch: Optional[int] = None,
        checkpoint: Optional[Union[str, os.PathLike]] = None,
        checkpoint_every: int = 1,
        progress=None,
        input_noise: float = 0.0,
        on_nonfinite: str = "raise",
        comm=None,
        shard: bool = False,
    ) -> dict[str, list]:
        """Train with mini-batch SGD; returns the history (also kept as ``history_``).

        ``history`` has per-epoch lists ``loss`` and ``accuracy`` (running over the epoch's
        batches), ``time`` (seconds of training), and ``val_loss``/``val_accuracy`` when
        ``validation_data=(X_val, y_val)`` is given.

        ``optimizer`` is :class:`SGD` (default ``SGD()``), :class:`Adam` or :class:`AdamW`.
        ``evolution`` is :class:`SET` or :class:`RigL`; then ``history["topology"]`` lists one
        record per sparse layer and update (:func:`truesparse.evolution.record_to_dict`).

        **A planned run.** A call plans ``epochs`` epochs: the learning-rate schedule's step 0,
        RigL's T_end and SET's skipped last update are placed by that plan. ``checkpoint=path``
        saves the model (:meth:`save`) after every ``checkpoint_every`` epochs and after the
        last; the plan is saved with it. ``initial_epoch=k`` continues the model's plan at its
        epoch k (the epochs it has done of it): a run of ``epochs`` epochs stopped after k and
        continued with ``fit(..., epochs=epochs, initial_epoch=k)`` and the same data and
        settings trains exactly as the uninterrupted run, and its ``history_`` continues the
        plan's.

        **Callbacks.** ``callback(record)`` is called after each epoch with that epoch's values;
        ``callbacks`` are :class:`truesparse.callbacks.Callback` objects (``on_train_begin``,
        ``on_epoch_end(model, record, history)``, ``on_train_end``), such as
        :class:`~truesparse.callbacks.EarlyStopping`. Returning ``False`` from either stops
        training.

        **Ctrl-C** stops training within one batch wherever it lands (training, validation, a
        topology update, a checkpoint, a callback) and raises ``KeyboardInterrupt``: the weights
        are those after the last finished batch, ``history_`` holds every epoch whose training
        batches finished (NaN validation values if its validation was interrupted) and
        ``history_["topology"]`` every update that ran. An ignored SIGINT stays ignored.

        ``input_noise=σ`` adds Gaussian noise N(0, σ²) to the inputs of every training batch
        (not to the targets, not in evaluation): with ``fit(X, X, ...)`` and
        ``loss="squared_error"`` this trains a denoising autoencoder.

        **Divergence.** A batch whose loss is NaN or infinite (a learning rate too large, say)
        stops training with ``FloatingPointError`` naming the epoch, the batch and the step
        (``on_nonfinite="raise"``, the default). That batch's update is not applied, so the
        model is left as after the last step with a finite loss; the message says whether that
        step already left non-finite weights. ``on_nonfinite="warn"`` trains on and warns
        (``RuntimeWarning``) once per call, ``"ignore"`` trains on silently.

        **On several processes (MPI).** ``comm`` (an mpi4py communicator, e.g.
        ``MPI.COMM_WORLD``) trains this model data-parallel on every rank of ``comm``: every
        rank calls ``fit`` with the same model and settings; each step, each rank computes the
        gradient of its part of the global batch of ``batch_size`` examples and one all-reduce
        of the stored weights' gradients sums them, so every rank applies the same step and
        holds the same model. With ``shard=False`` every rank passes the same whole data set
        and takes its slice of every batch (the same training as one process, up to summation
        order); with ``shard=True`` each rank passes its own part of the data. Only rank 0
        prints, shows progress and writes checkpoints. An error on one rank ends every rank.
        See docs/distributed.md.

        **Seeing it.** ``verbose=1`` prints one line per epoch, or shows a progress bar
        (batches, running loss and accuracy, examples per second) when stderr is a terminal
        and tqdm is installed; ``progress=True``/``False`` forces the bar on or off, and a
        callable makes the bars (:func:`truesparse.progress.epoch_progress_factory`). With
        ``evolution``, ``history["degrees"]`` holds every sparse layer's in/out-degree
        histograms at the start and the end of the plan (:func:`truesparse.plot.topology`).
        """
        op = self._op("fit")
        dp = None if comm is None else Communicator(comm, op)
        try:  # every check before the first step; with comm, the ranks agree on the outcome
            epochs = integer(epochs, "epochs", op, minimum=0)
            batch_size = integer(batch_size, "batch_size", op, minimum=1)
            checkpoint_every = integer(checkpoint_every, "checkpoint_every", op, minimum=1)
            input_noise = real(input_noise, "input_noise", op, low=0)
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
            bars = epoch_progress_factory(progress, verbose, op=op)
            on_nonfinite = choice(on_nonfinite, NONFINITE, "on_nonfinite", op)
            shuffle = flag(shuffle, "shuffle", op)
            verbose = integer(verbose, "verbose", op, minimum=0)
            if callback is not None and not callable(callback):
                raise TypeError(f"[{op}] callback must be callable, got {callback!r}")
            if isinstance(callbacks, Callback):
                callbacks = [callbacks]
            if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
                raise TypeError(
                    f"[{op}] callbacks must be a list of Callback objects, got {callbacks!r}"
                )
            callbacks = list(callbacks)
            for c in callbacks:
                if not isinstance(c, Callback):
                    raise TypeError(
                        f"[{op}] callbacks must be truesparse.callbacks.Callback objects, "
                        f"got {type(c).__name__}"
                    )
            if checkpoint is not None:
                directory = os.path.dirname(os.path.abspath(os.fspath(checkpoint)))
                if not os.path.isdir(directory):
                    raise ValueError(
                        f"[{op}] the directory of checkpoint {checkpoint!r} does not exist"
                    )
            X = self._features(X, op)
            labels, targets = self._targets(y, X.shape[0], op)
            val = None
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise ValueError(f"[{op}] validation_data must be a pair (X_val, y_val)")
                Xv, yv = validation_data
                Xv = self._features(Xv, f"{op}(validation_data)")
                val = (Xv, *self._targets(yv, Xv.shape[0], f"{op}(validation_data)"))
            shard = flag(shard, "shard", op)
            if shard and dp is None:
                raise ValueError(f"[{op}] shard=True needs comm (data-parallel training)")
            local_batch, examples = batch_size, X.shape[0]
            if dp is not None and shard:  # this rank's share of every global batch
                local_batch = (batch_size * (dp.rank + 1)) // dp.size - (
                    batch_size * dp.rank
                ) // dp.size
                if local_batch < 1:
                    raise ValueError(
                        f"[{op}] batch_size={batch_size} gives rank {dp.rank} of {dp.size} no "
                        "example per batch: use a batch_size of at least the number of ranks"
                    )
            steps_per_epoch = -(-X.shape[0] // local_batch)
            # full data on P ranks: every batch is split into P slices
            ranks = dp.size if dp is not None and not shard else 1
            self._check_batches(X.shape[0], local_batch, op, ranks)
            config = optimizer._config()
            # The memory this run adds (optimizer state, activations, batch buffers, evolution),
            # refused with the figures when this process cannot get it (docs/reliability.md).
            _core.training_memory(
                self._core,
                min(local_batch, X.shape[0]),
                config,
                examples=X.shape[0],
                validation_batch=min(EVALUATION_BATCH, len(val[0])) if val else 0,
                evolution=evolution is not None,
                op=op,
            )
            plan = {
                "epochs": epochs,
                "examples": examples,
                "batch_size": batch_size,
                "shuffle": bool(shuffle),
                "validation": val is not None,
                "optimizer": repr(optimizer),
                "evolution": repr(evolution),
                "input_noise": float(input_noise),
                "steps_per_epoch": steps_per_epoch,
                "start_epoch": self._epochs_done,
                "start_step": self._core.steps,
            }
        except Exception as e:
            if dp is None:
                raise
            dp.agree(e)  # raises on every rank
        if dp is not None:
            dp.agree(None)
            if shard:  # the plan counts the examples and steps of all ranks
                plan["examples"] = sum(dp.total(X.shape[0]))
                plan["steps_per_epoch"] = max(dp.total(steps_per_epoch))
            self._check_same_on_every_rank(dp, plan, X, labels, targets, shard)
            if not dp.root:  # rank 0 prints, shows progress and writes checkpoints
                verbose, checkpoint, bars = 0, None, epoch_progress_factory(False, 0, op=op)
        keys = ["loss", "accuracy", "time"] + (["val_loss", "val_accuracy"] if val else [])
        keys += ["topology"] if evolution is not None else []
        if initial_epoch is None:
            first = 0
            self.history_ = {key: [] for key in keys}
            if evolution is not None:
                self.history_["degrees"] = {"start": degrees(self)}
        else:
            try:
                first = self._continued_plan(plan, initial_epoch, op)
            except ValueError as e:  # the same on every rank (the ranks hold the same model)
                _every_rank(e, dp)
                raise
            plan = self._plan
        history = self.history_
        self._plan = plan
        run = _Run(
            X=X,
            labels=labels,
            targets=targets,
            batch_size=batch_size,
            shuffle=bool(shuffle),
            val=val,
            evolution=evolution,
            config=config,
            set_options=(
                evolution._options()
                if isinstance(evolution, SET) and evolution.delta_t is not None
                else None
            ),
            rigl_options=(
                evolution._options(plan["start_step"], epochs * plan["steps_per_epoch"])
                if isinstance(evolution, RigL)
                else None
            ),
            epochs=epochs,
            verbose=verbose,
            bars=bars,
            callback=callback,
            callbacks=callbacks,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            input_noise=float(input_noise),
            on_nonfinite=on_nonfinite,
            dp=dp,
            shard=shard,
            local_batch=local_batch,
        )
        run.config.schedule_start = plan["start_step"]  # the schedule's t = 0: the plan's start
        with InterruptGuard() as guard:
            try:
                for c in callbacks:
                    c.on_train_begin(self)
                self._fit_epochs(run, guard, first)
            except BaseException as e:
                # The engine stops every rank together (a Ctrl-C, a failure or a non-finite
                # loss on one rank: peer stops) and the epoch ends agree (above); anything else
                # raised on one rank leaves the others waiting in an all-reduce: abort them.
                if dp is not None and dp.size > 1 and not raised_on_every_rank(e):
                    dp.abort(e)
                raise
            finally:
                if "degrees" in history:
                    history["degrees"]["end"] = degrees(self)
        for c in callbacks:
            c.on_train_end(self)
        return history

    def _fit_epochs(self, run: "_Run", guard: InterruptGuard, first: int) -> None:
        """The epochs of ``fit``: train one, show it, checkpoint it, call the callbacks."""
        history, epochs = self.history_, run.epochs
        for epoch in range(first, epochs):
            last = epoch + 1 == epochs
            bar = run.bars(len(run.X), batch_size=run.batch_size, epoch=epoch + 1, epochs=epochs)
            with bar:
                record = self._fit_epoch(run, bar.wrap(guard.poll), guard.poll, last_epoch=last)
                bar.close(record)
            if run.verbose and not getattr(bar, "enabled", False):
                print(_epoch_line(record), file=sys.stdout, flush=True)
            try:
                if run.checkpoint is not None and ((epoch + 1) % run.checkpoint_every == 0 or last):
                    self.save(run.checkpoint)
                guard.raise_pending()  # a Ctrl-C held back while the epoch was recorded
                with guard.released():  # a Ctrl-C in the user's code raises there
                    stop = run.callback is not None and run.callback(record) is False
                    for c in run.callbacks:
                        stop = c.on_epoch_end(self, record, history) is False or stop
            except BaseException as e:
                if run.dp is None:
                    raise
                run.dp.agree(e)  # every rank raises: this one its error, the others a RuntimeError
            if run.dp is not None:  # the ranks stop together: when any rank's callbacks ask to
                run.dp.agree(None)
                stop = any(run.dp.total(bool(stop)))
            if stop:
                break

    def _check_same_on_every_rank(
        self, dp: Communicator, plan: dict, X, labels, targets, shard: bool
    ) -> None:
        """Data-parallel training needs the same model and settings on every rank (and, with
        the full data on every rank, the same data): checked once per fit, collectively, by
        SHA-256 digests (O(nnz + data) once, nothing per step)."""
        settings = repr(sorted((k, v) for k, v in plan.items() if k != "examples"))
        dp.same(settings.encode(), "the settings of fit")
        state = self._core.get_state()
        dp.same(digest(*(state[k] for k in sorted(state))), "the model (weights or state)")
        if not shard:
            dp.same(digest(X, labels, targets), "the training data (shard=False: the same on all)")

    def _check_batches(self, examples: int, batch_size: int, op: str, ranks: int = 1) -> None:
        """Batch norm normalises a training batch by its own statistics, which one example
        does not have: refuse a run that would reach such a batch before any step is taken.
        With ``ranks`` > 1 (data-parallel, full data) each batch is split into that many
        slices, each normalised on its own rank (an empty slice is skipped)."""
        if not any(isinstance(spec, L.BatchNorm) for spec in self._specs):
            return
        for size in {min(batch_size, examples), examples % batch_size or batch_size}:
            slices = [size * (r + 1) // ranks - size * r // ranks for r in range(ranks)]
            if 1 not in slices:
                continue
            if ranks == 1:
                raise ValueError(
                    f"[{op}] batch norm needs at least 2 examples per training batch, but "
                    f"{examples} example{'s' * (examples != 1)} in batches of "
                    f"batch_size={batch_size} leave a last batch of 1: choose another "
                    "batch_size, or drop or add an example"
                )
            raise ValueError(
                f"[{op}] batch norm needs at least 2 examples per training batch on each rank, "
                f"but a batch of {size} split over {ranks} ranks gives a rank 1 example: choose "
                "another batch_size"
            )

    def _continued_plan(self, plan: dict, initial_epoch, op: str) -> int:
        """Checks that ``fit(..., initial_epoch=k)`` continues the model's plan with the same
        settings; returns k."""
        k = integer(initial_epoch, "initial_epoch", op, minimum=0)
        saved = self._plan
        if saved is None:
            raise ValueError(
                f"[{op}] initial_epoch={k} continues a planned run, but this model has none "
                "(it has not been trained by fit, or was saved by an older truesparse)"
            )
        done = self._epochs_done - saved["start_epoch"]
        if k != done:
            raise ValueError(
                f"[{op}] initial_epoch={k}, but the model has done {done} epochs of its "
                f"{saved['epochs']}-epoch plan: continue with initial_epoch={done}"
            )
        ignored = ("start_epoch", "start_step")
        for key, value in plan.items():
            if key not in ignored and saved[key] != value:
                raise ValueError(
                    f"[{op}] initial_epoch continues a planned run with {key} {saved[key]!r}, "
                    f"but this call has {key} {value!r}; pass the plan's settings"
                )
        return k

    def _fit_epoch(self, run: "_Run", train_poll, val_poll, last_epoch: bool) -> dict:
        """One epoch of ``fit``: train, evolve, validate, and record it in ``history_``. A
        Ctrl-C (or an error) stops it between batches; what ran is recorded before it is
        raised: the topology records of the updates that ran and, once the training batches
        are done, the epoch itself (with NaN validation values when the validation was
        interrupted)."""
        history = self.history_
        start = time.perf_counter()
        try:  # with comm, the engine stops every rank together (distributed.h)
            loss, acc, _, records, stopped_by, nonfinite = self._core.train_epoch(
                run.X,
                run.labels,
                run.targets,
                run.local_batch,
                run.config,
                self._epochs_done,
                run.shuffle,
                run.set_options,
                run.rigl_options,
                poll=train_poll,
                input_noise=run.input_noise,
                stop_on_nonfinite=run.on_nonfinite == "raise",
                **run.engine_arguments(self._plan["steps_per_epoch"] if run.shard else 0),
            )
        except BaseException as e:
            _every_rank(e, run.dp)
            raise
        self._has_gradients = True
        if run.evolution is not None:
            history["topology"].extend(record_to_dict(r) for r in records)
        if stopped_by is not None:
            raise _every_rank(stopped_by, run.dp)
        if nonfinite is not None:
            raise _every_rank(FloatingPointError(self._nonfinite_message(run, *nonfinite)), run.dp)
        if run.on_nonfinite == "warn" and not np.isfinite(loss) and not run.warned_nonfinite:
            run.warned_nonfinite = True
            warnings.warn(
                f"[{self._op('fit')}] the training loss of epoch {self._epochs_done + 1} is "
                f"{loss}: training diverged (on_nonfinite='warn' trains on)",
                RuntimeWarning,
                stacklevel=4,
            )
        if isinstance(run.evolution, SET) and run.evolution.delta_t is None and not last_epoch:
            history["topology"].extend(
                record_to_dict(r) for r in self._core.evolve_set(run.evolution._options())
            )
        self._epochs_done += 1
        record = {
            "epoch": self._epochs_done,
            "loss": loss,
            "accuracy": acc,
            "time": time.perf_counter() - start,
        }
        try:
            if run.val is not None:
                record["val_loss"], record["val_accuracy"] = self._core.evaluate(
                    *run.val, poll=val_poll, **run.engine_arguments()
                )
        except BaseException as e:
            record["val_loss"] = record["val_accuracy"] = float("nan")
            _every_rank(e, run.dp)
            raise
        finally:
            for key in history:
                if key not in ("topology", "degrees"):
                    history[key].append(record[key])
        return record

    def _nonfinite_message(self, run: "_Run", batch: int, loss: float) -> str:
        """The error of a batch whose loss was not finite (its update was not applied)."""
        step = self._core.steps + 1
        batches = -(-len(run.X) // run.batch_size)
        bad = []  # parameters that hold NaN or infinity, with their counts
        for i in range(len(self.layers)):
            for name, a in (
                ("W", self._core.layer_values(i, False)),
                ("b", self._core.layer_bias(i, False)),
            ):
                if not np.all(np.isfinite(a)):
                    bad.append(
                        f"layer {i} {name}: {np.size(a) - np.count_nonzero(np.isfinite(a)):,} of {np.size(a):,}"
                    )
        for m, view in enumerate(self.modules):
            if not isinstance(view, ModuleView):
                continue
            for name, (value, _) in self._core.module_parameters(m).items():
                if not np.all(np.isfinite(value)):
                    bad.append(f"module {m} {name}")
        state = (
            "its parameters are finite"
            if not bad
            else "its parameters are NOT finite, so it is not usable (" + "; ".join(bad) + ")"
        )
        return (
            f"[{self._op('fit')}] the training loss is {loss} at epoch {self._epochs_done + 1}, "
            f"batch {batch + 1} of {batches} (step {step}): training diverged. That batch's "
            f"update was not applied: the model is as after step {step - 1}, the last with a "
            f"finite loss, and {state}. Lower the learning rate (or check the data), or pass "
            "on_nonfinite='warn' to train on"
        )

    @property
    def specs(self) -> tuple:
        """The layer specs the model was built from, one per entry of ``modules``."""
        return tuple(self._specs)

    # -- export ----------------------------------------------------------------------------------
    @exclusive
    def to_torch(self):
        """This model as a ``torch.nn.Module`` with the same forward (sparse layers as CSR
        tensors); see :func:`truesparse.interop.to_torch` (torch is imported only here)."""
        from .interop import to_torch

        return to_torch(self)

    @exclusive
    def export_npz(self, path: Union[str, os.PathLike]) -> None:
        """Every linear layer as SciPy CSR arrays and its bias, in one ``.npz`` that
        ``np.load`` reads (:func:`truesparse.interop.export_npz`)."""
        from .interop import export_npz

        export_npz(self, path)

    @property
    def epochs_done(self) -> int:
        """Epochs trained by ``fit`` over the model's life (they select the shuffles)."""
        return self._epochs_done

    @property
    def planned_run(self) -> Optional[dict]:
        """The plan of the last ``fit`` call (saved in checkpoints), or None: ``epochs`` (its
        length), ``done`` (its epochs done: the ``initial_epoch`` to continue it with) and the
        settings ``initial_epoch`` checks."""
        if self._plan is None:
            return None
        return {**self._plan, "done": self._epochs_done - self._plan["start_epoch"]}

    # -- checkpoints -----------------------------------------------------------------------------
    @exclusive
    def save(self, path: Union[str, os.PathLike], *, metadata: Optional[dict] = None) -> None:
        """Write a checkpoint of this model to ``path`` (atomically): the architecture, every
        layer's weights and statistics, the optimizer state, the counters of every random
        stream, the planned run and the history. :func:`truesparse.load` reads it back into a
        model that behaves identically. ``metadata`` (default: ``model.metadata``) is a
        JSON-serialisable dict stored with it. Format: :mod:`truesparse.checkpoint`."""
        checkpoint_module.save(self, path, metadata=metadata)

    @exclusive
    def __getstate__(self) -> dict:  # pickle and copy.deepcopy go through the checkpoint
        return {"checkpoint": checkpoint_module.dumps(self)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(checkpoint_module.loads(state["checkpoint"]).__dict__)
        for view in self.layers + self.modules:
            view._model = self

    def _architecture(self) -> dict:
        """What the model is rebuilt from (the checkpoint's ``model`` object)."""
        return {
            "class": type(self).__name__ if type(self) in (Sequential, MLP) else "Sequential",
            "inputs": self.sizes[0],
            "layers": [checkpoint_module.spec_to_json(s) for s in self._specs],
            **self._options,
            "dtype": self.dtype.name,
            "activation": self.activation,
        }

    @exclusive
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
                raise ValueError(
                    f"[{self._op('evolve')}] RigL needs a batch (X, y) for its gradient"
                )
            X = self._features(X, self._op("evolve"))
            labels, targets = self._targets(y, X.shape[0], self._op("evolve"))
            f = (
                evolution.alpha
                if drop_fraction is None
                else real(drop_fraction, "drop_fraction", self._op("evolve"), low=0, high=1)
            )
            records = self._core.evolve_rigl(X, labels, targets, f)
            self._has_gradients = True
        else:
            raise TypeError(
                f"[{self._op('evolve')}] evolution must be truesparse.SET or RigL, got {type(evolution).__name__}"
            )
        return [record_to_dict(r) for r in records]

    # -- input neurons (feature selection) ------------------------------------------------------
    @exclusive
    def input_strength(self) -> np.ndarray:
        """The strength of every input neuron (D,): the sum of |w| over its connections in the
        first linear layer, from the stored values in O(nnz) (QuickSelection's and NeuroFS's
        feature importance; a removed input has strength 0)."""
        layer = self.layers[0]
        values = np.abs(np.asarray(self._core.layer_values(0), dtype=np.float64))
        if not layer.is_sparse:
            return values.reshape(layer.shape).sum(axis=0)
        _, indices = self._core.layer_pattern(0)
        # float64 also when the layer stores no weight (bincount would give int64 zeros)
        return np.bincount(indices, weights=values, minlength=layer.shape[1]).astype(np.float64)

    @property
    @exclusive
    def removed_inputs(self) -> np.ndarray:
        """(D,) bool: the input neurons removed by :meth:`remove_inputs`."""
        return np.asarray(self._core.layer_excluded_inputs(0), dtype=bool)

    @exclusive
    def remove_inputs(self, columns, X=None, y=None, regrow: Optional[SET] = None) -> dict:
        """Remove input neurons (features) ``columns`` from the network, keeping its number of
        weights: every connection of theirs in the first linear layer (which must be sparse) is
        dropped and as many grow at empty positions of the other inputs, uniformly at random
        (values as ``regrow``, a :class:`SET`, says; default ``SET()``: uniform in
        ±√(6 / (n_in + n_out))) or, given a batch ``(X, y)``, where its gradient is largest, as
        RigL grows (values 0). The removed inputs get no connection again: SET and RigL
        never grow into them. Returns the update's record (:func:`record_to_dict`)."""
        op = self._op("remove_inputs")
        D = self.sizes[0]
        cols = np.asarray(columns)
        if cols.ndim != 1 or not (np.issubdtype(cols.dtype, np.integer) or cols.size == 0):
            raise TypeError(
                f"[{op}] columns must be a 1-D sequence of input indices, got {columns!r}"
            )
        if cols.size and (cols.min() < 0 or cols.max() >= D):
            bad = cols.min() if cols.min() < 0 else cols.max()
            raise ValueError(f"[{op}] input {bad} is outside [0, {D})")
        if regrow is None:
            regrow = SET()
        if not isinstance(regrow, SET):
            raise TypeError(f"[{op}] regrow must be a truesparse.SET, got {type(regrow).__name__}")
        if (X is None) != (y is None):
            raise ValueError(f"[{op}] give both X and y (gradient growth) or neither (random)")
        labels = targets = None
        if X is not None:
            X = self._features(X, op)
            labels, targets = self._targets(y, X.shape[0], op)
        record = self._core.remove_inputs(
            [int(c) for c in cols], X, labels, targets, regrow._options()
        )
        if X is not None:
            self._has_gradients = True
        return record_to_dict(record)

    @exclusive
    def evaluate(self, X, y) -> dict[str, float]:
        """Mean loss and accuracy over (X, y)."""
        X = self._features(X, self._op("evaluate"))
        labels, targets = self._targets(y, X.shape[0], self._op("evaluate"))
        loss, acc = self._core.evaluate(X, labels, targets)
        return {"loss": float(loss), "accuracy": float(acc)}

    @exclusive
    def predict(self, X) -> np.ndarray:
        """Class labels (N,), the argmax of the logits. (For regression, the predictions are
        the network's outputs: :meth:`forward`.)"""
        return np.argmax(self._core.forward(self._features(X, self._op("predict"))), axis=1).astype(
            np.int64
        )

    @property
    def nnz(self) -> int:
        return sum(layer.nnz for layer in self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{m.shape[1]}->{m.shape[0]}:{m.density:.3g}" if m.kind == "linear" else m.kind
            for m in self.modules
        )
        return f"{type(self).__name__}([{inner}], loss={self.loss!r}, dtype={self.dtype.name})"


class MLP(Sequential):
    """A multilayer perceptron whose sparse layers are CSR matrices: a :class:`Sequential` of
    the standard layer list (:func:`mlp_layers`) built from sizes and densities.

    Parameters
    ----------
    sizes : layer widths ``[inputs, hidden..., outputs]``.
    density : overall density in (0, 1], allocated per layer as ``init`` says.
    densities : explicit per-layer densities (``len(sizes) - 1`` values); 1 gives a dense layer.
    epsilon : SET's Erdős–Rényi parameter (:func:`~truesparse.epsilon_densities`).
        With none of the three, every layer is dense.
    activation : hidden activation: relu, leaky_relu, all_relu, sigmoid, tanh, identity.
    alpha : negative slope of leaky_relu / all_relu.
    loss : as for :class:`Sequential`; ``"cross_entropy"`` appends a Softmax layer and
        ``"negative_log_likelihood"`` a LogSoftmax layer.
    label_smoothing : ε for the label-based losses.
    batch_norm, dropout : add BatchNorm before and Dropout(dropout) after each hidden activation.
    init : how ``density`` is spread over the layers: ``"erk"``/``"er"`` (Erdős–Rényi, capped
        and re-solved, :func:`~truesparse.er_densities`; ``erk_power`` scales the raw scores),
        or ``"uniform"`` (every layer ``density``; ``dense_first``/``dense_last`` keep those
        dense).
    weight_init, sparse_fan_in, dtype, seed, backend, operand_dtype : as for :class:`Sequential`.
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
        backend: str = "native",
        operand_dtype: str = "float32",
    ) -> None:
        sizes = check_sizes(sizes, "MLP")
        layer_densities = allocate(
            sizes,
            density=density,
            densities=densities,
            epsilon=epsilon,
            init=init,
            erk_power=erk_power,
            dense_first=dense_first,
            dense_last=dense_last,
        )
        specs = mlp_layers(
            layer_densities,
            sizes,
            activation=activation,
            alpha=alpha,
            batch_norm=batch_norm,
            dropout=dropout,
            loss=loss,
        )
        super().__init__(
            sizes[0],
            specs,
            loss=loss,
            label_smoothing=label_smoothing,
            weight_init=weight_init,
            sparse_fan_in=sparse_fan_in,
            dtype=dtype,
            seed=seed,
            backend=backend,
            operand_dtype=operand_dtype,
        )
        self.activation = activation


def load(path: Union[str, os.PathLike]) -> Sequential:
    """The model saved by :meth:`Sequential.save` at ``path``, ready to predict or to continue
    training exactly (see :mod:`truesparse.checkpoint`)."""
    return checkpoint_module.load(path)


def _from_checkpoint(arch: dict, training: dict, arrays: dict) -> Sequential:
    """Rebuilds a model from a checkpoint's parts (checkpoint.py checks the file itself)."""
    classes = {"Sequential": Sequential, "MLP": MLP}
    cls = classes.get(arch["class"])
    if cls is None:
        raise ValueError(f"unknown model class {arch['class']!r}")
    model = cls.__new__(cls)
    options = {key: arch[key] for key in ("loss", "label_smoothing", "weight_init")}
    options.update({key: arch[key] for key in ("sparse_fan_in", "seed", "backend")})
    options["operand_dtype"] = arch.get(
        "operand_dtype", "float32"
    )  # not in files before it existed
    model._setup(  # no pattern sampled nor weight drawn: set_state below replaces them all
        arch["inputs"],
        [checkpoint_module.spec_from_json(e) for e in arch["layers"]],
        dtype=np.dtype(arch["dtype"]),
        draw_weights=False,
        **options,
    )
    model.activation = arch["activation"]
    prefix = "state/"
    state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    for i, layer in enumerate(model.layers):
        # A layer built dense (density 1) that set_weights made sparse: make it sparse again
        # with its saved pattern (set_state then fills in the rest).
        m = f"modules.{model._core.module_of_layer(i)}"
        if not layer.is_sparse and f"{m}.indptr" in state:
            model._core.set_sparse_layer(
                i, state[f"{m}.indptr"], state[f"{m}.indices"], state[f"{m}.W"], state[f"{m}.b"]
            )
    model._core.set_state(state)
    epochs_done, plan = training["epochs_done"], training["plan"]
    if not (isinstance(epochs_done, int) and epochs_done >= 0):
        raise ValueError(f"epochs_done is {epochs_done!r}")
    if plan is not None and not isinstance(plan, dict):
        raise ValueError(f"the planned run is {plan!r}")
    history: dict[str, list] = {}
    for key in training["history_keys"]:
        if key == "topology":
            history[key] = checkpoint_module.join_records(training["topology"], arrays)
        elif key in checkpoint_module.HISTORY_ARRAYS:
            history[key] = arrays[f"history/{key}"].tolist()
        else:
            history[key] = training["history_json"][key]
    model.history_ = history
    model._epochs_done = epochs_done
    model._plan = plan
    return model
