"""Feature selection by truly sparse training: :class:`QuickSelection` and :class:`NeuroFS`.

Both are scikit-learn feature selectors (``fit``, ``transform``, ``get_support``,
``feature_importances_``; usable in a ``Pipeline``, with ``clone`` and ``pickle``). They train a
sparse network on the engine (CSR layers, SET or RigL updates, no masks) and rank the input
features by the *strength* of their input neurons, the sum of the absolute weights of each
input's connections (``model.input_strength()``):

- :class:`QuickSelection` (Atashgahi et al., "Quick and Robust Feature Selection: the Strength
  of Energy-efficient Sparse Training for Autoencoders", Machine Learning 2022): unsupervised.
  A sparse denoising autoencoder ``[D, H, D]`` is trained with SET; the k strongest inputs are
  selected.
- :class:`NeuroFS` (Atashgahi et al., "Supervised Feature Selection with Neuron Evolution in
  Sparse Neural Networks", TMLR 2023): supervised. A sparse MLP classifier is trained with
  dynamic sparse training while the weakest input neurons are removed on a schedule
  (:func:`removal_schedule`); the k strongest of the remaining inputs are selected.

The defaults are those of the papers' reference code; each parameter's docstring names its
source. Equations, defaults, what differs from the papers and the benchmark are in
``docs/feature-selection.md``.

This module needs scikit-learn >= 1.6 (like :mod:`truesparse.sklearn`); the rest of truesparse
does not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.multiclass import check_classification_targets

try:
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # scikit-learn < 1.6
    raise ImportError(
        "truesparse.feature_selection needs scikit-learn >= 1.6: pip install 'scikit-learn>=1.6'"
    ) from None

from . import layers as _layers
from ._checks import MAX_LAYER_SIZE, _got, choice, integer, real
from .density import epsilon_densities
from .evolution import SET, RigL
from .interop import float_dtype
from .model import MLP, WEIGHT_INITS
from .optim import SGD
from .sklearn import _hidden_layer_sizes, _random_state, _seed

__all__ = ["NeuroFS", "QuickSelection", "removal_schedule", "select_top_k"]

_INPUT_DTYPES = (np.float64, np.float32)  # what validate_data keeps; the model converts
# "normal": N(0, 0.1²) for every stored weight (the SET and QuickSelection reference code);
# the engine's initializers use the layer's dense fan-in and fan-out.
_WEIGHT_INITS = ("normal", *WEIGHT_INITS)
_NORMAL_STD = 0.1
# NeuroFS: the first removal comes after this epoch (0-based): the reference code only rewires
# the connections after epochs 0 and 1 and removes input neurons from epoch 2 on.
_FIRST_REMOVAL_EPOCH = 2


def removal_schedule(
    n_features: int,
    k: int,
    epochs: int,
    zeta_in: float = 0.2,
    frac_epoch_remove: float = 0.65,
) -> np.ndarray:
    """NeuroFS's input-neuron removal schedule: how many input neurons are removed after each
    epoch, an int64 array of length ``epochs``.

    ``R = max(0, floor((1 - zeta_in) * n_features - k))`` neurons are removed in all, so
    ``n_features - R`` (about ``k + zeta_in * n_features``) remain, of which the k strongest
    are selected. The removals run after the epochs ``t0 <= t < t_remove`` (0-based) with
    ``t_remove = min(floor(frac_epoch_remove * epochs), epochs - 1)`` and
    ``t0 = min(2, t_remove - 1)``; after epoch t, ``ceil((R - removed so far) / (t_remove - t))``
    neurons go, so the last removal epoch takes what is left. No update follows the last epoch.

    ``n_features`` is an integer >= 1, ``k`` an integer in [1, n_features], ``epochs`` an
    integer >= 0, ``zeta_in`` a number in [0, 1) and ``frac_epoch_remove`` one in (0, 1].
    """
    op = "removal_schedule"
    D = integer(n_features, "n_features", op, minimum=1)
    k = integer(k, "k", op, minimum=1, maximum=D)
    T = integer(epochs, "epochs", op, minimum=0)
    zeta_in = _zeta_in(zeta_in, op)
    frac_epoch_remove = _frac_epoch_remove(frac_epoch_remove, op)
    total = max(0, math.floor((1 - zeta_in) * D - k))
    t_remove = min(math.floor(frac_epoch_remove * T), T - 1)
    t0 = max(0, min(_FIRST_REMOVAL_EPOCH, t_remove - 1))
    out = np.zeros(max(T, 0), dtype=np.int64)
    removed = 0
    for t in range(t0, max(t_remove, 0)):
        n = -(-(total - removed) // (t_remove - t))
        out[t] = n
        removed += n
    return out


def _zeta_in(value, op: str) -> float:
    return real(value, "zeta_in", op, low=0, high=1, high_open=True)


def _frac_epoch_remove(value, op: str) -> float:
    return real(value, "frac_epoch_remove", op, low=0, high=1, low_open=True)


def select_top_k(scores, k: int, allowed=None) -> np.ndarray:
    """Boolean mask of the ``k`` largest ``scores`` (ties: the lower index first), among the
    ``allowed`` entries when a mask is given. ``scores`` is a 1-D array of numbers (no NaN),
    ``k`` an integer >= 0 (all the allowed entries when there are fewer), ``allowed`` None or
    a boolean array of the shape of ``scores``."""
    op = "select_top_k"
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"[{op}] scores must be an array of numbers, got {_got(scores)}") from None
    if scores.ndim != 1:
        raise ValueError(f"[{op}] scores must be 1-D, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"[{op}] scores must not contain NaN")
    k = integer(k, "k", op, minimum=0)
    index = np.arange(scores.size)
    if allowed is not None:
        mask = np.asarray(allowed)
        if mask.dtype != np.bool_:
            raise TypeError(f"[{op}] allowed must be None or a boolean array, got {mask.dtype}")
        if mask.shape != scores.shape:
            raise ValueError(
                f"[{op}] allowed must have the shape of scores {scores.shape}, got {mask.shape}"
            )
        index = index[mask]
    order = index[np.lexsort((index, -scores[index]))]
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:k]] = True
    return mask


def _k(op: str, k: Any, n_features: int) -> int:
    """``k`` (checked with the other parameters) against the number of features."""
    if k > n_features:
        raise ValueError(
            f"[{op}] k must be an integer in [1, n_features] = [1, {n_features}], got {k}"
        )
    return k


def _normal_init(model: MLP, seed: int) -> None:
    """Every stored weight drawn from N(0, 0.1²), every bias 0, before training (the reference
    code's ``createSparseWeights``); the pattern stays."""
    rng = np.random.default_rng([seed, 0x51])
    for layer in model.layers:
        W = layer.W
        if layer.is_sparse:
            W.data = rng.normal(0.0, _NORMAL_STD, W.nnz)
        else:
            W = rng.normal(0.0, _NORMAL_STD, W.shape)
        layer.set_weights(W, np.zeros(layer.shape[0]))


class _StrengthSelector(SelectorMixin, BaseEstimator):
    """What both selectors share: the selected mask, checks and tags."""

    def _op(self, method: str) -> str:
        return f"{type(self).__name__}.{method}"

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    def _check_params(self, op: str) -> dict:
        """The parameters both selectors have, checked before the data is looked at (``k``
        against the number of features after: :func:`_k`)."""
        return {
            "k": integer(self.k, "k", op, minimum=1),
            "epsilon": real(self.epsilon, "epsilon", op, low=0, low_open=True),
            "activation": choice(self.activation, _layers.ACTIVATIONS, "activation", op),
            "weight_init": choice(self.weight_init, _WEIGHT_INITS, "weight_init", op),
            "epochs": integer(self.epochs, "epochs", op, minimum=1),
            "batch_size": integer(self.batch_size, "batch_size", op, minimum=1),
            "optimizer": SGD(
                lr=real(self.learning_rate, "learning_rate", op, low=0, low_open=True),
                momentum=real(self.momentum, "momentum", op, low=0, high=1, high_open=True),
                nesterov=False,
                weight_decay=real(self.weight_decay, "weight_decay", op, low=0),
            ),
            "random_state": _random_state(op, self.random_state),
            "dtype": float_dtype(self.dtype, op),
        }

    def _build(
        self, op: str, params: dict, sizes: list, densities: list, loss: str, **kwargs
    ) -> MLP:
        """The MLP of the checked ``params``, with their ``weight_init``."""
        init = params["weight_init"]
        seed = _seed(op, params["random_state"])
        try:  # what MLP checks of the sizes together
            model = MLP(
                sizes,
                densities=densities,
                activation=params["activation"],
                loss=loss,
                weight_init="xavier_normal" if init == "normal" else init,
                sparse_fan_in="dense",
                dtype=params["dtype"],
                seed=seed,
                **kwargs,
            )
        except (TypeError, ValueError) as e:
            raise type(e)(f"[{op}] {e}") from None
        if init == "normal":
            _normal_init(model, seed)
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


class QuickSelection(_StrengthSelector):
    """Unsupervised feature selection with a sparse denoising autoencoder trained with SET
    (QuickSelection, Atashgahi et al., Machine Learning 2022).

    ``fit(X)`` trains ``truesparse.MLP([D, hidden_size, D], loss="squared_error")`` on
    ``fit(X, X, input_noise=input_noise, evolution=SET(zeta))``: Gaussian noise is added to
    the inputs of every batch and the network reconstructs the clean inputs. The layers start
    as Erdős–Rényi graphs of parameter ``epsilon`` and evolve with SET after every epoch but
    the last. A feature's importance is the strength of its input neuron after training, the
    sum of the absolute weights of its connections in the first layer; the ``k`` strongest
    features are selected (ties: the lower index). ``y`` is ignored. Nothing is scaled: the
    paper standardises the data; put a scaler in front.

    Defaults: the reference code (github.com/zahraatashgahi/QuickSelection), file
    ``QuickSelection/train_sparse_DAE.py`` unless said otherwise.

    Parameters
    ----------
    k : int, default=50
        Number of features to select (``QuickSelection/QuickSelection.py``: k = 50).
    hidden_size : int, default=1000
        Hidden neurons (``noHiddenNeuronsLayer``).
    epsilon : float > 0, default=13
        Erdős–Rényi parameter of both layers: density ``min(1, ε (n_in + n_out) /
        (n_in n_out))`` (``epsilon``).
    zeta : float in [0, 1], default=0.2
        SET: fraction of the positive and of the negative weights replaced after every epoch
        (``zeta``). New connections start from N(0, 0.1²) (``Sparse_DAE.py``,
        ``weightsEvolution_II``).
    input_noise : float >= 0, default=0.2
        Standard deviation σ of the Gaussian noise added to the inputs (``noise_factor``).
    dropout : float in [0, 1), default=0.2
        Dropout on the hidden neurons (``dropoutRate``).
    activation : str, default="sigmoid"
        Hidden activation; the output is linear (``Sigmoid, Linear``).
    weight_init : str, default="normal"
        ``"normal"``: every initial weight from N(0, 0.1²) and the biases 0
        (``Sparse_DAE.py``, ``createSparseWeights``); or an engine initializer
        (``"xavier_uniform"``, ``"xavier_normal"``, ``"he_normal"``, ``"he_uniform"``) with the
        layer's dense fan-in and fan-out.
    epochs : int >= 1, default=100
        Training epochs (the README's ``epoch=100``; the paper's QuickSelection₁₀₀).
    batch_size : int >= 1, default=100
        Examples per batch (``batchSize``).
    learning_rate : float > 0, default=0.01
        SGD learning rate (``learningRate``).
    momentum : float in [0, 1), default=0.9
        SGD momentum, not Nesterov (``momentum``).
    weight_decay : float >= 0, default=1e-5
        Weight decay (``weightDecay``), as ``truesparse.SGD`` applies it: added to the gradient.
        The reference code subtracts ``weight_decay * w`` from every weight after each step.
    random_state : int, RandomState or None, default=None
        An integer is the model's seed (pattern, initial weights, shuffling, noise, dropout,
        SET): the same seed gives the same selection on any number of threads. ``None`` draws
        a seed from NumPy's global random state.
    dtype : numpy.float32 or numpy.float64, default=numpy.float32
        Precision of the network.

    Attributes
    ----------
    feature_importances_ : ndarray of shape (n_features_in_,), float64
        The input neurons' strengths after training (``model_.input_strength()``).
    support_ : ndarray of bool
        The selected features (``get_support()``).
    model_ : truesparse.MLP
        The trained autoencoder.
    loss_curve_ : list of float
        Training loss (the squared reconstruction error of the clean inputs, on noisy inputs)
        of every epoch.
    n_features_in_, feature_names_in_ : as in scikit-learn.
    """

    def __init__(
        self,
        k=50,
        *,
        hidden_size=1000,
        epsilon=13,
        zeta=0.2,
        input_noise=0.2,
        dropout=0.2,
        activation="sigmoid",
        weight_init="normal",
        epochs=100,
        batch_size=100,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=1e-5,
        random_state=None,
        dtype=np.float32,
    ):
        self.k = k
        self.hidden_size = hidden_size
        self.epsilon = epsilon
        self.zeta = zeta
        self.input_noise = input_noise
        self.dropout = dropout
        self.activation = activation
        self.weight_init = weight_init
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.dtype = dtype

    def fit(self, X, y=None):
        """Train the denoising autoencoder on X (n_samples, n_features); y is ignored."""
        op = self._op("fit")
        params = self._check_params(op)
        hidden = integer(self.hidden_size, "hidden_size", op, minimum=1, maximum=MAX_LAYER_SIZE)
        zeta = real(self.zeta, "zeta", op, low=0, high=1)
        # new connections start from N(0, 0.1²), as in the reference (weightsEvolution_II)
        evolution = SET(zeta, regrow="normal", regrow_std=0.1)
        noise = real(self.input_noise, "input_noise", op, low=0)
        dropout = real(self.dropout, "dropout", op, low=0, high=1, high_open=True)
        epochs, batch_size, optimizer = params["epochs"], params["batch_size"], params["optimizer"]
        X = validate_data(self, X, dtype=_INPUT_DTYPES)
        n, D = X.shape
        k = _k(op, params["k"], D)
        sizes = [D, hidden, D]
        densities = epsilon_densities(sizes, params["epsilon"])
        model = self._build(op, params, sizes, densities, "squared_error", dropout=dropout)
        X = np.ascontiguousarray(X, dtype=model.dtype)
        history = model.fit(
            X,
            X,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            evolution=evolution,
            input_noise=noise,
        )
        self.model_ = model
        self.loss_curve_ = list(history["loss"])
        self.feature_importances_ = np.asarray(model.input_strength(), dtype=np.float64)
        self.support_ = select_top_k(self.feature_importances_, k)
        return self


class NeuroFS(_StrengthSelector):
    """Supervised feature selection by input-neuron removal during dynamic sparse training
    (NeuroFS, Atashgahi et al., TMLR 2023).

    ``fit(X, y)`` trains a sparse MLP classifier ``[D, *hidden_layer_sizes, n_classes]``
    (softmax cross entropy) epoch by epoch. After every epoch but the last, every sparse layer
    is updated as in RigL: the fraction ``zeta_hid`` of its weights of smallest magnitude is
    dropped and as many connections grow where the loss gradient of a random batch is
    largest. On the schedule of :func:`removal_schedule` the weakest input neurons (by
    strength, measured before the update) are removed: their connections are dropped and
    regrown at the largest gradients of the remaining inputs (``model.remove_inputs``), so
    the number of connections stays and a removed input never reconnects. After training the
    ``k`` strongest remaining inputs are selected (ties: the lower index). Class labels can be
    anything ``numpy.unique`` sorts. Nothing is scaled: the paper scales the features to
    [0, 1]; put a scaler in front.

    Defaults: the reference code (github.com/zahraatashgahi/NeuroFS): the command in its
    ``README.md`` unless said otherwise; the other settings in ``code/utils.py``
    (``parse_arguments``) and ``code/NeuroFS.py``.

    Parameters
    ----------
    k : int, default=50
        Number of features to select (README: ``K=50``).
    hidden_layer_sizes : sequence of int, default=(1000, 1000, 1000)
        Hidden layers (README ``--num_hidden 1000``; three hidden layers in ``NeuroFS.py``).
    epsilon : float > 0, default=30
        Erdős–Rényi parameter: layer density ``min(1, ε (n_in + n_out) / (n_in n_out))``
        (README ``--epsilon 30``). The first layer's density is capped at
        ``0.5 (D − R) / D``, R the number of inputs removed (:func:`removal_schedule`), so the
        inputs that remain can hold its connections at most half full (own choice: the
        reference code's data sets never reach it; on small D, such as 64 inputs, the
        Erdős–Rényi density would not fit).
    zeta_in : float in [0, 1), default=0.2
        Sets how many inputs remain: ``k + zeta_in · D`` (README ``--zeta_in 0.2``;
        ``dim_to_remove`` in ``utils.py``).
    zeta_hid : float in [0, 1], default=0.3
        Fraction of every sparse layer's weights dropped and regrown after each epoch
        (README ``--zeta_hid 0.3``).
    frac_epoch_remove : float in (0, 1], default=0.65
        The removals end after this fraction of the epochs (README ``--frac_epoch_remove``).
    activation : str, default="tanh"
        Hidden activation (README ``--activation "tanh"``; ``NeuroFS.py`` uses ReLU for
        isolet only).
    weight_init : str, default="xavier_uniform"
        An engine initializer with the layer's dense fan-in and fan-out (Keras' default
        ``glorot_uniform`` of the reference's ``Dense`` layers), or ``"normal"``: N(0, 0.1²).
    epochs : int >= 1, default=100
        Training epochs (README ``--epochs 100``).
    batch_size : int >= 1, default=100
        Examples per batch (README ``--batch_size 100``); also the size of the random batch
        whose gradient places grown connections.
    learning_rate : float > 0, default=0.01
        SGD learning rate (README ``--lr 0.01``).
    momentum : float in [0, 1), default=0.9
        SGD momentum, not Nesterov (``utils.py``: ``--momentum 0.9``).
    weight_decay : float >= 0, default=1e-5
        Weight decay added to the gradient (``truesparse.SGD``); README ``--wd 0.00001``, which
        the reference code uses as a Keras ``l2`` penalty (gradient ``2 · wd · w``).
    random_state : int, RandomState or None, default=None
        An integer is the model's seed and seeds the random gradient batches: the same seed
        gives the same selection on any number of threads. ``None`` draws a seed from NumPy's
        global random state.
    dtype : numpy.float32 or numpy.float64, default=numpy.float32
        Precision of the network.

    Attributes
    ----------
    feature_importances_ : ndarray of shape (n_features_in_,), float64
        The input neurons' strengths after training; 0 for removed inputs.
    support_ : ndarray of bool
        The selected features (``get_support()``).
    removal_schedule_ : ndarray of int64, shape (epochs,)
        Inputs removed after each epoch (:func:`removal_schedule`).
    removal_epoch_ : ndarray of int64, shape (n_features_in_,)
        The epoch (0-based) after which each input was removed; -1 for the inputs that remain.
    classes_ : ndarray
        The class labels, sorted; output j of the network is ``classes_[j]``.
    model_ : truesparse.MLP
        The trained classifier.
    loss_curve_ : list of float
        Training loss of every epoch.
    n_features_in_, feature_names_in_ : as in scikit-learn.
    """

    def __init__(
        self,
        k=50,
        *,
        hidden_layer_sizes=(1000, 1000, 1000),
        epsilon=30,
        zeta_in=0.2,
        zeta_hid=0.3,
        frac_epoch_remove=0.65,
        activation="tanh",
        weight_init="xavier_uniform",
        epochs=100,
        batch_size=100,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=1e-5,
        random_state=None,
        dtype=np.float32,
    ):
        self.k = k
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epsilon = epsilon
        self.zeta_in = zeta_in
        self.zeta_hid = zeta_hid
        self.frac_epoch_remove = frac_epoch_remove
        self.activation = activation
        self.weight_init = weight_init
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.dtype = dtype

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and the class labels y (n_samples,), removing
        input neurons on the schedule, and select the k strongest remaining inputs."""
        op = self._op("fit")
        params = self._check_params(op)
        hidden = _hidden_layer_sizes(self.hidden_layer_sizes, op, allow_empty=False)
        zeta_in = _zeta_in(self.zeta_in, op)
        zeta_hid = real(self.zeta_hid, "zeta_hid", op, low=0, high=1)
        frac = _frac_epoch_remove(self.frac_epoch_remove, op)
        epochs, batch_size, optimizer = params["epochs"], params["batch_size"], params["optimizer"]
        X, y = validate_data(self, X, y, dtype=_INPUT_DTYPES)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        n, D = X.shape
        k = _k(op, params["k"], D)

        schedule = removal_schedule(D, k, epochs, zeta_in, frac)
        sizes = [D, *hidden, len(classes)]
        densities = epsilon_densities(sizes, params["epsilon"])
        if schedule.sum() > 0:  # the remaining inputs must hold the first layer's connections
            densities[0] = min(densities[0], 0.5 * (D - int(schedule.sum())) / D)
        model = self._build(op, params, sizes, densities, "softmax_cross_entropy")
        X = np.ascontiguousarray(X, dtype=model.dtype)
        labels = labels.astype(np.int64)
        rigl = RigL(alpha=zeta_hid)
        rng = np.random.default_rng([model.seed, 0x4E46])  # the gradient batches
        removal_epoch = np.full(D, -1, dtype=np.int64)
        losses = []
        for t in range(epochs):
            history = model.fit(X, labels, epochs=1, batch_size=batch_size, optimizer=optimizer)
            losses.append(history["loss"][0])
            if t == epochs - 1:
                break  # no update after the last epoch
            strength = np.asarray(model.input_strength(), dtype=np.float64)
            batch = rng.choice(n, size=min(batch_size, n), replace=False)
            Xb, yb = X[batch], labels[batch]
            model.evolve(rigl, Xb, yb, drop_fraction=zeta_hid)
            if schedule[t]:
                # the weakest remaining inputs (ties: the lower index)
                weakest = select_top_k(-strength, int(schedule[t]), removal_epoch < 0)
                columns = np.flatnonzero(weakest)
                model.remove_inputs(columns, Xb, yb)
                removal_epoch[columns] = t
        self.model_ = model
        self.loss_curve_ = losses
        self.classes_ = classes
        self.removal_schedule_ = schedule
        self.removal_epoch_ = removal_epoch
        importances = np.asarray(model.input_strength(), dtype=np.float64)
        importances[removal_epoch >= 0] = 0.0
        self.feature_importances_ = importances
        self.support_ = select_top_k(importances, k, removal_epoch < 0)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
