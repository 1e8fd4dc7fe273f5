"""scikit-learn estimators around :class:`truesparse.MLP`: :class:`SparseMLPClassifier` and
:class:`SparseMLPRegressor`.

They follow scikit-learn's conventions (``fit``/``predict``/``score``, ``get_params`` and
``set_params``, ``clone``, ``Pipeline``, ``GridSearchCV``, ``check_estimator``) and take
scikit-learn's names for what :class:`sklearn.neural_network.MLPClassifier` also has
(``hidden_layer_sizes``, ``solver``, ``learning_rate_init``, ``max_iter``, ``batch_size``,
``tol``, ``n_iter_no_change``, ``random_state``, ...) and truesparse's names for the rest
(``density``, ``densities``, ``epsilon``, ``init``, ``evolution``, ``dtype``, ...). Nothing is
scaled or standardised: put a ``StandardScaler`` in front, as for any neural network.

The fitted network is ``model_`` (a :class:`truesparse.MLP`); ``history_`` is the history of the
last ``fit`` and ``loss_curve_`` the training loss of every epoch. Parameters, defaults and the
scikit-learn checks that are skipped are in ``docs/sklearn.md``.

This module needs scikit-learn >= 1.6; the rest of truesparse does not.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

try:
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # scikit-learn < 1.6: no validate_data, no __sklearn_tags__
    raise ImportError(
        "truesparse.sklearn needs scikit-learn >= 1.6: pip install 'scikit-learn>=1.6'"
    ) from None

from . import layers as _layers
from ._checks import INT64_MAX, MAX_LAYER_SIZE, _got, choice, flag, integer, real, sequence, show
from .density import ALLOCATIONS
from .evolution import SET, RigL
from .interop import float_dtype
from .model import BACKENDS, FAN_INS, MLP, WEIGHT_INITS, operand_dtype_kind
from .optim import SGD, Adam, AdamW, ConstantLR, CosineLR, LinearWarmup, Schedule

__all__ = ["SparseMLPClassifier", "SparseMLPRegressor", "expected_failed_checks"]


def expected_failed_checks(estimator) -> dict[str, str]:
    """The checks of ``sklearn.utils.estimator_checks`` that ``estimator`` is known to fail,
    ``{check name: reason}``: pass this function as ``expected_failed_checks`` to
    ``parametrize_with_checks``, or its result to ``check_estimator``."""
    failed = {}
    try:
        float32 = np.dtype(estimator.get_params()["dtype"]) == np.float32
    except TypeError:
        float32 = False
    if float32:
        failed["check_methods_subset_invariance"] = (
            "float32: an example's outputs depend in their last bits (about 1e-6 relative) on "
            "the other examples of the batch, because MKL's dense GEMM of the dense layers "
            "picks its kernel by the batch size; the check wants 1e-7. With dtype=float64 "
            "the check passes."
        )
    return failed


SOLVERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
LR_SCHEDULES = ("constant", "cosine")
EVOLUTIONS = ("set", "rigl")
_INPUT_DTYPES = (np.float64, np.float32)  # what validate_data keeps; the model converts


# -- parameter checks: every message names the estimator's method, the parameter and its value --
# (truesparse._checks: a TypeError for a value of the wrong type, a ValueError for one out of
# range; scikit-learn's estimators also check their parameters in fit, not in __init__)
def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _random_state(op: str, random_state):
    """scikit-learn's ``random_state`` checked: None or a RandomState as they are, an integer
    as a Python int in [0, 2**64)."""
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return random_state
    if _is_integer(random_state):
        return integer(random_state, "random_state", op, minimum=0, maximum=2**64 - 1)
    raise TypeError(
        f"[{op}] random_state must be None, an integer or a numpy.random.RandomState, "
        f"got {_got(random_state)}"
    )


def _seed(op: str, random_state) -> int:
    """The engine's seed from ``random_state``: the integer, or drawn from the RandomState
    (None: NumPy's global one)."""
    random_state = _random_state(op, random_state)
    if isinstance(random_state, int):
        return random_state
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def _hidden_layer_sizes(value, op: str, *, allow_empty: bool) -> list[int]:
    """``hidden_layer_sizes`` (an integer or a sequence of integers >= 1) as a list."""
    if _is_integer(value):
        value = [value]
    try:
        sizes = sequence(value, "hidden_layer_sizes", op, min_length=0 if allow_empty else 1)
    except TypeError:
        raise TypeError(
            f"[{op}] hidden_layer_sizes must be an integer or a sequence of integers, "
            f"got {_got(value)}"
        ) from None
    return [
        integer(v, f"hidden_layer_sizes[{i}]", op, minimum=1, maximum=MAX_LAYER_SIZE)
        for i, v in enumerate(sizes)
    ]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class _SparseMLPBase(BaseEstimator):
    """What the classifier and the regressor share: parameter checks, building and training
    the :class:`truesparse.MLP`. Subclasses define ``__init__`` (scikit-learn reads the
    parameters from its signature), the targets and the predictions."""

    _model_loss = "softmax_cross_entropy"

    def _op(self, method: str) -> str:
        return f"{type(self).__name__}.{method}"

    # -- parameters ------------------------------------------------------------------------------
    def _check_params(self, op: str) -> dict:
        """Every parameter checked, whatever the solver and the evolution, before the data is
        looked at (scikit-learn's estimators check theirs in ``fit`` too: ``__init__`` only
        stores them): the values ``fit`` uses. ``optimizer`` builds the optimizer for a number
        of training steps (a cosine schedule needs it); ``batch_size`` None is "auto"."""
        hidden = _hidden_layer_sizes(self.hidden_layer_sizes, op, allow_empty=True)
        params = {
            "hidden": hidden,
            "model": self._model_kwargs(op, len(hidden) + 1),
            "random_state": _random_state(op, self.random_state),
            "optimizer": self._optimizer(op),
            "evolution": self._evolution(op),
            "max_iter": integer(self.max_iter, "max_iter", op, minimum=1),
            "batch_size": self._batch_size(op),
            "shuffle": flag(self.shuffle, "shuffle", op),
            "warm_start": flag(self.warm_start, "warm_start", op),
            "tol": None if self.tol is None else real(self.tol, "tol", op, low=0),
            "patience": integer(self.n_iter_no_change, "n_iter_no_change", op, minimum=1),
            "verbose": self._verbose(op),
        }
        try:  # what the optimizer checks of its parts (a schedule's eta_min <= lr)
            params["optimizer"](1)
        except (TypeError, ValueError) as e:
            raise type(e)(f"[{op}] {e}") from None
        return params

    def _density_kwargs(self, op: str, layers: int) -> dict:
        """``density``, or ``densities`` / ``epsilon`` when given (they replace it)."""
        density = real(self.density, "density", op, low=0, high=1, low_open=True)
        if self.densities is not None and self.epsilon is not None:
            raise ValueError(f"[{op}] give at most one of densities and epsilon, got both")
        if self.densities is not None:
            ds = sequence(self.densities, "densities", op)
            if len(ds) != layers:
                raise ValueError(
                    f"[{op}] densities must have {layers} entries (one per layer: "
                    f"len(hidden_layer_sizes) + 1), got {len(ds)}: {show(self.densities)}"
                )
            return {
                "densities": [
                    real(d, f"densities[{i}]", op, low=0, high=1, low_open=True)
                    for i, d in enumerate(ds)
                ]
            }
        if self.epsilon is not None:
            return {"epsilon": real(self.epsilon, "epsilon", op, low=0, low_open=True)}
        return {"density": density}

    def _model_kwargs(self, op: str, layers: int) -> dict:
        """The keyword arguments of :class:`truesparse.MLP` but ``sizes`` and ``seed``."""
        kwargs = self._density_kwargs(op, layers)
        kwargs.update(
            activation=choice(self.activation, _layers.ACTIVATIONS, "activation", op),
            alpha=real(self.activation_alpha, "activation_alpha", op),
            loss=self._model_loss,
            batch_norm=flag(self.batch_norm, "batch_norm", op),
            dropout=real(self.dropout, "dropout", op, low=0, high=1, high_open=True),
            init=choice(self.init, ALLOCATIONS, "init", op),
            erk_power=real(self.erk_power, "erk_power", op, low=0),
            dense_first=flag(self.dense_first, "dense_first", op),
            dense_last=flag(self.dense_last, "dense_last", op),
            weight_init=choice(self.weight_init, WEIGHT_INITS, "weight_init", op),
            sparse_fan_in=choice(self.sparse_fan_in, FAN_INS, "sparse_fan_in", op),
            dtype=float_dtype(self.dtype, op),
            backend=choice(self.backend, BACKENDS, "backend", op),
            operand_dtype=self.operand_dtype,
        )
        # a known name, usable with the dtype and backend
        operand_dtype_kind(self.operand_dtype, kwargs["dtype"], kwargs["backend"], op)
        return kwargs

    def _schedule(self, op: str) -> Callable[[int], Optional[Schedule]]:
        """``lr_schedule`` and ``warmup_steps`` checked: the schedule of a run of that many
        steps (None: a constant rate)."""
        warmup = integer(self.warmup_steps, "warmup_steps", op, minimum=0, maximum=INT64_MAX)
        given = self.lr_schedule
        if isinstance(given, LinearWarmup) and warmup:
            raise ValueError(
                f"[{op}] lr_schedule is already a LinearWarmup; leave warmup_steps at 0, "
                f"got {warmup}"
            )
        if not isinstance(given, (str, Schedule)):
            raise TypeError(
                f"[{op}] lr_schedule must be one of {sorted(LR_SCHEDULES)} or a truesparse "
                f"schedule, got {_got(given)}"
            )
        if isinstance(given, str):
            given = choice(given, LR_SCHEDULES, "lr_schedule", op)

        def schedule(total_steps: int) -> Optional[Schedule]:
            s = given
            if not isinstance(s, Schedule):
                s = CosineLR(T_max=total_steps) if s == "cosine" else None
            return LinearWarmup(s or ConstantLR(), warmup_steps=warmup) if warmup else s

        return schedule

    def _optimizer(self, op: str) -> Callable[[int], Any]:
        """The optimizer's parameters checked (all of them, whatever the solver): the
        optimizer of a run of that many steps."""
        solver = choice(self.solver, SOLVERS, "solver", op)
        lr = real(self.learning_rate_init, "learning_rate_init", op, low=0, low_open=True)
        weight_decay = real(self.weight_decay, "weight_decay", op, low=0)
        momentum = real(self.momentum, "momentum", op, low=0, high=1, high_open=True)
        nesterov = flag(self.nesterovs_momentum, "nesterovs_momentum", op)
        betas = (
            real(self.beta_1, "beta_1", op, low=0, high=1, high_open=True),
            real(self.beta_2, "beta_2", op, low=0, high=1, high_open=True),
        )
        eps = real(self.adam_epsilon, "adam_epsilon", op, low=0, low_open=True)
        new_weight_warmup = integer(
            self.new_weight_warmup, "new_weight_warmup", op, minimum=0, maximum=65534
        )
        schedule = self._schedule(op)

        def optimizer(total_steps: int):
            if solver == "sgd":
                return SGD(
                    lr=lr,
                    momentum=momentum,
                    nesterov=nesterov and momentum > 0,
                    weight_decay=weight_decay,
                    schedule=schedule(total_steps),
                )
            return SOLVERS[solver](
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                new_weight_warmup=new_weight_warmup,
                schedule=schedule(total_steps),
            )

        return optimizer

    def _evolution(self, op: str):
        """``evolution`` (and ``zeta``, ``drop_fraction``, ``delta_t``, checked in any case):
        None, the SET or RigL object given, or the one the string names."""
        zeta = real(self.zeta, "zeta", op, low=0, high=1)
        drop_fraction = real(self.drop_fraction, "drop_fraction", op, low=0, high=1)
        delta_t = self.delta_t
        if delta_t is not None:
            delta_t = integer(delta_t, "delta_t", op, minimum=1, maximum=INT64_MAX)
        e = self.evolution
        if e is None or isinstance(e, (SET, RigL)):
            return e
        if not isinstance(e, str):
            raise TypeError(
                f"[{op}] evolution must be None, one of {sorted(EVOLUTIONS)} or a truesparse "
                f"SET or RigL, got {_got(e)}"
            )
        if choice(e, EVOLUTIONS, "evolution", op) == "set":
            return SET(zeta=zeta, delta_t=delta_t)
        return RigL(alpha=drop_fraction, delta_t=100 if delta_t is None else delta_t)

    def _batch_size(self, op: str) -> Optional[int]:
        """``batch_size``: None for "auto", else an integer >= 1."""
        if isinstance(self.batch_size, str) and self.batch_size == "auto":
            return None
        if not _is_integer(self.batch_size):
            raise TypeError(
                f"[{op}] batch_size must be 'auto' or an integer, got {_got(self.batch_size)}"
            )
        return integer(self.batch_size, "batch_size", op, minimum=1)

    def _verbose(self, op: str) -> int:
        """``verbose``: an integer >= 0; True and False too, as scikit-learn's estimators take."""
        verbose = self.verbose
        if isinstance(verbose, (bool, np.bool_)):
            verbose = int(verbose)
        return integer(verbose, "verbose", op, minimum=0)

    # -- training --------------------------------------------------------------------------------
    def _continues(self, params: dict) -> bool:
        return params["warm_start"] and hasattr(self, "model_")

    def _fit_model(self, X: np.ndarray, y: np.ndarray, outputs: int, params: dict) -> None:
        """Build (or, with ``warm_start``, keep) ``model_`` and train it on (X, y) with the
        checked parameters ``params`` (:meth:`_check_params`)."""
        op = self._op("fit")
        n = X.shape[0]
        max_iter, tol, patience = params["max_iter"], params["tol"], params["patience"]
        batch_size = params["batch_size"] or min(200, n)
        optimizer = params["optimizer"](max_iter * -(-n // batch_size))
        continues = self._continues(params)
        if continues:
            model = self.model_
            if model.sizes[-1] != outputs:
                raise ValueError(
                    f"[{op}] warm_start: y has {outputs} outputs but the fitted model has "
                    f"{model.sizes[-1]}"
                )
        else:
            sizes = [X.shape[1], *params["hidden"], outputs]
            try:  # what MLP checks of the sizes together (erk_power too large for them)
                model = MLP(sizes, seed=_seed(op, params["random_state"]), **params["model"])
            except (TypeError, ValueError) as e:
                raise type(e)(f"[{op}] {e}") from None
        # scikit-learn's stopping rule (MLPClassifier): stop once the training loss has not
        # improved by at least tol for more than n_iter_no_change consecutive epochs.
        state = {"best": math.inf, "count": 0}

        def callback(record: dict) -> bool:
            loss = record["loss"]
            if tol is None:
                return True
            state["count"] = state["count"] + 1 if loss > state["best"] - tol else 0
            state["best"] = min(state["best"], loss)
            return state["count"] <= patience

        try:  # MLP.fit refuses, before any step, a last batch of 1 that batch norm cannot use
            history = model.fit(
                X,
                y,
                epochs=max_iter,
                batch_size=batch_size,
                optimizer=optimizer,
                shuffle=params["shuffle"],
                verbose=params["verbose"],
                callback=callback,
                evolution=params["evolution"],
            )
        except ValueError as e:
            raise ValueError(f"[{op}] {str(e).removeprefix('[MLP.fit] ')}") from None
        except FloatingPointError as e:  # scikit-learn's estimators raise ValueError for it
            raise ValueError(
                f"[{op}] the training loss became non-finite; try a smaller learning_rate_init. "
                + str(e).removeprefix("[MLP.fit] ")
            ) from None
        self.model_ = model
        self.history_ = history
        self.loss_curve_ = (self.loss_curve_ if continues else []) + list(history["loss"])
        self.n_iter_ = (self.n_iter_ if continues else 0) + len(history["loss"])

    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_INPUT_DTYPES, reset=False)
        return self.model_.forward(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(256, 256)
        Widths of the hidden layers; ``()`` gives a single (linear) layer.
    density : float in (0, 1], default=0.1
        Overall density, spread over the layers as ``init`` says (1 gives a dense network).
        Not used when ``densities`` or ``epsilon`` is given.
    densities : sequence of float, default=None
        One density in (0, 1] per layer (``len(hidden_layer_sizes) + 1`` values).
    epsilon : float > 0, default=None
        SET's Erdős–Rényi parameter (``truesparse.epsilon_densities``). Not Adam's epsilon:
        that is ``adam_epsilon``.
    init : {"erk", "er", "uniform"}, default="erk"
        How ``density`` is spread over the layers (``truesparse.MLP``'s ``init``).
    erk_power : float >= 0, default=1.0
        Exponent of the ER/ERK raw scores.
    dense_first, dense_last : bool, default=False
        With ``init="uniform"``: keep the first / last layer dense.
    activation : {"relu", "leaky_relu", "all_relu", "sigmoid", "tanh", "identity"}, \
default="relu"
        Hidden activation.
    activation_alpha : float, default=0.01
        Negative slope of ``leaky_relu`` and ``all_relu`` (``truesparse.MLP``'s ``alpha``).
    batch_norm : bool, default=False
        Batch normalization before every hidden activation.
    dropout : float in [0, 1), default=0.0
        Dropout probability after every hidden activation.
    weight_init : {"he_normal", "he_uniform", "xavier_normal", "xavier_uniform"}, \
default="he_normal"
        Initializer of the weights.
    sparse_fan_in : {"actual", "dense"}, default="actual"
        Fan-in of a sparse row for the initializer: its stored weights, or the layer's inputs.
    solver : {"sgd", "adam", "adamw"}, default="adam"
        ``truesparse.SGD``, ``truesparse.Adam`` or ``truesparse.AdamW`` (PyTorch semantics).
    learning_rate_init : float > 0, default=0.001
        Learning rate.
    momentum : float in [0, 1), default=0.9
        SGD momentum (``solver="sgd"`` only).
    nesterovs_momentum : bool, default=True
        Nesterov momentum (``solver="sgd"`` with ``momentum > 0`` only).
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's moment decay rates.
    adam_epsilon : float > 0, default=1e-8
        Adam's epsilon (scikit-learn's ``epsilon``).
    weight_decay : float >= 0, default=0.0
        Weight decay: L2 added to the gradient (sgd, adam), decoupled (adamw). scikit-learn's
        ``alpha`` corresponds to ``weight_decay = alpha / batch_size``.
    new_weight_warmup : int in [0, 65535), default=0
        Adam/AdamW: learning-rate warm-up of weights created by a topology update.
    lr_schedule : {"constant", "cosine"} or a truesparse schedule, default="constant"
        ``"cosine"`` decays to 0 over ``max_iter`` epochs; a schedule object is used as is.
    warmup_steps : int >= 0, default=0
        Linear learning-rate warm-up from lr/3 over this many steps (batches).
    max_iter : int >= 1, default=200
        Maximum number of epochs.
    batch_size : int or "auto", default="auto"
        Examples per batch; ``"auto"`` is ``min(200, n_samples)``.
    shuffle : bool, default=True
        Shuffle the examples every epoch.
    tol : float >= 0 or None, default=1e-4
        Training stops when the training loss has not improved by at least ``tol`` for
        more than ``n_iter_no_change`` consecutive epochs. ``None``: always ``max_iter``
        epochs.
    n_iter_no_change : int >= 1, default=10
        See ``tol``.
    evolution : {None, "set", "rigl"} or a truesparse.SET / truesparse.RigL, default=None
        Topology evolution during training. An object is used as is (``zeta``,
        ``drop_fraction`` and ``delta_t`` are then not used).
    zeta : float in [0, 1], default=0.3
        SET: fraction of the positive and of the negative weights dropped per update.
    drop_fraction : float in [0, 1], default=0.3
        RigL: initial drop fraction (RigL's alpha).
    delta_t : int >= 1 or None, default=None
        Steps between topology updates; ``None``: SET after every epoch, RigL every 100 steps.
    warm_start : bool, default=False
        ``fit`` continues training ``model_`` (optimizer state included) instead of building
        a new network.
    random_state : int, RandomState instance or None, default=None
        An integer is the model's ``seed`` (initial patterns and weights, shuffling, dropout,
        SET's draws); ``None`` draws a seed from NumPy's global random state.
    dtype : numpy.float32 or numpy.float64, default=numpy.float32
        Precision of the network.
    backend : {"native", "mkl"}, default="native"
        Kernels of the sparse products.
    operand_dtype : {"float32", "bfloat16"}, default="float32"
        What the sparse products gather: float32 activations and gradients, or bfloat16
        copies of them (faster for layers whose activations outgrow the caches; needs float32
        and the native backend). See :class:`truesparse.Sequential`.
    verbose : int >= 0 or bool, default=0
        ``1`` (or ``True``) prints one line per epoch.
"""

_ATTRIBUTES_DOC = """
    model_ : truesparse.MLP
        The trained network.
    history_ : dict
        The history of the last ``fit`` (``truesparse.MLP.fit``): per-epoch ``loss``,
        ``accuracy``, ``time``, and ``topology`` with ``evolution``.
    loss_curve_ : list of float
        Training loss of every epoch (over all ``fit`` calls with ``warm_start``).
    n_iter_ : int
        Epochs run (over all ``fit`` calls with ``warm_start``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
"""


class SparseMLPClassifier(ClassifierMixin, _SparseMLPBase):
    __doc__ = (
        """A classifier: a sparse multilayer perceptron (:class:`truesparse.MLP`) trained with
    the softmax cross entropy. Any class labels (numbers, strings); ``predict_proba`` is the
    softmax of the logits.
"""
        + _PARAMETERS_DOC
        + """    label_smoothing : float in [0, 1], default=0.0
        Label smoothing ε: targets become (1 − ε) one-hot + ε / n_classes.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted; output k of the network is ``classes_[k]``.
"""
        + _ATTRIBUTES_DOC
    )

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        *,
        density=0.1,
        densities=None,
        epsilon=None,
        init="erk",
        erk_power=1.0,
        dense_first=False,
        dense_last=False,
        activation="relu",
        activation_alpha=0.01,
        batch_norm=False,
        dropout=0.0,
        weight_init="he_normal",
        sparse_fan_in="actual",
        solver="adam",
        learning_rate_init=0.001,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        new_weight_warmup=0,
        lr_schedule="constant",
        warmup_steps=0,
        max_iter=200,
        batch_size="auto",
        shuffle=True,
        tol=1e-4,
        n_iter_no_change=10,
        evolution=None,
        zeta=0.3,
        drop_fraction=0.3,
        delta_t=None,
        warm_start=False,
        random_state=None,
        dtype=np.float32,
        backend="native",
        operand_dtype="float32",
        verbose=0,
        label_smoothing=0.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.density = density
        self.densities = densities
        self.epsilon = epsilon
        self.init = init
        self.erk_power = erk_power
        self.dense_first = dense_first
        self.dense_last = dense_last
        self.activation = activation
        self.activation_alpha = activation_alpha
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.weight_init = weight_init
        self.sparse_fan_in = sparse_fan_in
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.adam_epsilon = adam_epsilon
        self.weight_decay = weight_decay
        self.new_weight_warmup = new_weight_warmup
        self.lr_schedule = lr_schedule
        self.warmup_steps = warmup_steps
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.evolution = evolution
        self.zeta = zeta
        self.drop_fraction = drop_fraction
        self.delta_t = delta_t
        self.warm_start = warm_start
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self.operand_dtype = operand_dtype
        self.verbose = verbose
        self.label_smoothing = label_smoothing

    def _model_kwargs(self, op: str, layers: int) -> dict:
        kwargs = super()._model_kwargs(op, layers)
        kwargs["label_smoothing"] = real(self.label_smoothing, "label_smoothing", op, low=0, high=1)
        return kwargs

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and the class labels y (n_samples,)."""
        params = self._check_params(self._op("fit"))
        continues = self._continues(params)
        X, y = validate_data(self, X, y, dtype=_INPUT_DTYPES, reset=not continues)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if continues and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"[{self._op('fit')}] warm_start: y has the classes {classes.tolist()} but the "
                f"fitted model has {self.classes_.tolist()}"
            )
        self._fit_model(X, labels.astype(np.int64), len(classes), params)
        self.classes_ = classes
        return self

    def predict(self, X) -> np.ndarray:
        """The class of each row of X: ``classes_[argmax of the logits]``."""
        logits = self._logits(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(logits, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """(n_samples, n_classes) float64: the softmax of the logits."""
        return _softmax(self._logits(X))

    def predict_log_proba(self, X) -> np.ndarray:
        """The logarithm of :meth:`predict_proba`, computed stably from the logits."""
        z = np.asarray(self._logits(X), dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags


class SparseMLPRegressor(RegressorMixin, _SparseMLPBase):
    __doc__ = (
        """A regressor: a sparse multilayer perceptron (:class:`truesparse.MLP`) trained with the
    squared error on real-valued targets, 1-D (one output) or 2-D (n_samples, n_outputs).
    Targets are not scaled: scale them yourself (e.g. ``TransformedTargetRegressor``).
"""
        + _PARAMETERS_DOC
        + """    loss : {"squared_error"}, default="squared_error"
        The loss: the mean over the batch of Σ_k (prediction_k − y_k)² (no ½).

    Attributes
    ----------
    n_outputs_ : int
        Number of outputs.
"""
        + _ATTRIBUTES_DOC
    )

    _model_loss = "squared_error"

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        *,
        density=0.1,
        densities=None,
        epsilon=None,
        init="erk",
        erk_power=1.0,
        dense_first=False,
        dense_last=False,
        activation="relu",
        activation_alpha=0.01,
        batch_norm=False,
        dropout=0.0,
        weight_init="he_normal",
        sparse_fan_in="actual",
        solver="adam",
        learning_rate_init=0.001,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        new_weight_warmup=0,
        lr_schedule="constant",
        warmup_steps=0,
        max_iter=200,
        batch_size="auto",
        shuffle=True,
        tol=1e-4,
        n_iter_no_change=10,
        evolution=None,
        zeta=0.3,
        drop_fraction=0.3,
        delta_t=None,
        warm_start=False,
        random_state=None,
        dtype=np.float32,
        backend="native",
        operand_dtype="float32",
        verbose=0,
        loss="squared_error",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.density = density
        self.densities = densities
        self.epsilon = epsilon
        self.init = init
        self.erk_power = erk_power
        self.dense_first = dense_first
        self.dense_last = dense_last
        self.activation = activation
        self.activation_alpha = activation_alpha
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.weight_init = weight_init
        self.sparse_fan_in = sparse_fan_in
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.adam_epsilon = adam_epsilon
        self.weight_decay = weight_decay
        self.new_weight_warmup = new_weight_warmup
        self.lr_schedule = lr_schedule
        self.warmup_steps = warmup_steps
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.evolution = evolution
        self.zeta = zeta
        self.drop_fraction = drop_fraction
        self.delta_t = delta_t
        self.warm_start = warm_start
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self.operand_dtype = operand_dtype
        self.verbose = verbose
        self.loss = loss

    def _model_kwargs(self, op: str, layers: int) -> dict:
        choice(self.loss, ("squared_error",), "loss", op)
        return super()._model_kwargs(op, layers)

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and real targets y, (n_samples,) or
        (n_samples, n_outputs)."""
        params = self._check_params(self._op("fit"))
        continues = self._continues(params)
        X, y = validate_data(
            self,
            X,
            y,
            dtype=_INPUT_DTYPES,
            multi_output=True,
            y_numeric=True,
            reset=not continues,
        )
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        self._fit_model(X, targets, targets.shape[1], params)
        self.n_outputs_ = targets.shape[1]
        self._y_1d = y.ndim == 1
        return self

    def predict(self, X) -> np.ndarray:
        """(n_samples,) float64 predictions if fitted on 1-D y, else (n_samples, n_outputs)."""
        out = np.asarray(self._logits(X), dtype=np.float64)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
