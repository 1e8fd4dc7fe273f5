"""Builds the truesparse.reference twin of an engine network and runs it, for the tests that
compare the engine with the reference (test_engine_vs_reference.py, the last rung of the
validation ladder, docs/index.md#validation-ladder; test_layers.py, test_optim*.py, ...).

The engine takes examples as rows, X (N, D); the reference takes them as columns, X (D, N).
Everything here transposes at that boundary and computes in float64 from the values the
engine holds or the test chose (float32 values are widened exactly), so a float32 engine is
compared with an accurate result for the same inputs.

Two builders: ``reference_network(model, specs)`` for any layer stack, from the engine's
current values, and ``reference_mlp(weights, masks, biases, activation)`` for ``ts.MLP``'s
[Linear, activation, ..., Linear] from the test's own arrays. ``train_epoch`` is the
reference twin of one epoch of ``fit(shuffle=False)``.
"""

from __future__ import annotations

import numpy as np

from conftest import dense_of, mask_of
from truesparse import layers as L
from truesparse import reference as R

_ACTIVATIONS = {
    L.ReLU: lambda spec, layer: R.ReLU(),
    L.LeakyReLU: lambda spec, layer: R.LeakyReLU(spec.alpha),
    L.AllReLU: lambda spec, layer: R.AllReLU(spec.alpha, layer=layer),
    L.Sigmoid: lambda spec, layer: R.Sigmoid(),
    L.Tanh: lambda spec, layer: R.Tanh(),
    L.Identity: lambda spec, layer: R.Identity(),
}

_LOSSES = {
    "softmax_cross_entropy": R.SoftmaxCrossEntropy,
    "cross_entropy": R.CrossEntropy,
    "negative_log_likelihood": R.NegativeLogLikelihood,
    "squared_error": R.SquaredError,
    "logistic_cross_entropy": R.LogisticCrossEntropy,
}


_GRADIENT_OF = {"W": "DW", "b": "Db"}  # the gradient of a parameter in ``gradients``


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def reference_network(model, specs) -> list:
    """The reference layers of ``model`` (built from the layer ``specs`` it was made of),
    in training mode, holding copies of the engine's current weights, parameters and
    running statistics.

    Sparse linear layers become ``reference.Linear`` with their pattern as the 0/1 pattern and
    the model's ``operand_dtype`` (dense ones are always float32).
    All-ReLU layers get their number among the network's activation layers, counted from 1,
    as the engine does. Dropout layers need their masks from ``set_dropout_masks``.
    """
    specs = list(specs)
    assert len(specs) == len(model.modules), "one spec per engine module"
    operands = model._options["operand_dtype"]
    layers, activations = [], 0
    for spec, module in zip(specs, model.modules):
        if isinstance(spec, L.Linear):
            pattern = mask_of(module.W) if module.is_sparse else None
            layer = R.Linear(
                _f64(dense_of(module.W)),
                _f64(module.b),
                pattern=pattern,
                operand_dtype=operands if module.is_sparse else "float32",
            )
        elif type(spec) in _ACTIVATIONS:
            activations += 1
            layer = _ACTIVATIONS[type(spec)](spec, activations)
        elif isinstance(spec, L.Softmax):
            layer = R.Softmax()
        elif isinstance(spec, L.LogSoftmax):
            layer = R.LogSoftmax()
        elif isinstance(spec, L.BatchNorm):
            p = module.parameters
            layer = R.BatchNorm(p["gamma"].size, momentum=spec.momentum, eps=spec.eps)
            layer.gamma, layer.beta = _f64(p["gamma"]), _f64(p["beta"])
            layer.running_mean = _f64(module.running_mean)
            layer.running_var = _f64(module.running_var)
        elif isinstance(spec, L.Affine):
            p = module.parameters
            layer = R.Affine(_f64(p["gamma"]), _f64(p["beta"]))
        elif isinstance(spec, L.SReLU):
            layer = R.SReLU(*(float(v) for v in module.parameters["t"]))
        elif isinstance(spec, L.Dropout):
            layer = R.Dropout(spec.p, mask=None, rng=np.random.default_rng(0))
        else:  # pragma: no cover - a new layer kind needs a line here
            raise TypeError(f"no reference for {type(spec).__name__}")
        layers.append(layer)
    return layers


def reference_mlp(weights, masks, biases, activation: str, alpha: float = 0.01) -> list:
    """The reference layers of ``ts.MLP(..., activation=activation, alpha=alpha)`` with linear
    layers of the given dense (K, D) weights, 0/1 masks (the pattern) and biases:
    [Linear, act, Linear, act, ..., Linear], hidden activations counted from 1 (All-ReLU),
    with ``alpha`` the negative slope of leaky_relu and all_relu. The MLP's losses that need
    a last layer (cross_entropy, negative_log_likelihood) are not covered."""
    cls = R.ACTIVATIONS[activation]
    layers = []
    for i, (W, mask, b) in enumerate(zip(weights, masks, biases)):
        if i > 0:
            if cls is R.AllReLU:
                layers.append(R.AllReLU(alpha, layer=i))
            elif cls is R.LeakyReLU:
                layers.append(R.LeakyReLU(alpha))
            else:
                layers.append(cls())
        layers.append(R.Linear(_f64(W), _f64(b), pattern=np.asarray(mask, dtype=bool)))
    return layers


def linear_layers(layers) -> list:
    """The ``reference.Linear`` layers of a reference network, in order (``model.layers``'
    twins)."""
    return [layer for layer in layers if isinstance(layer, R.Linear)]


def set_mode(layers, train: bool) -> None:
    """Training (batch statistics, dropout masks) or evaluation mode for every layer."""
    for layer in layers:
        layer.train() if train else layer.eval()


def set_dropout_masks(layers, masks) -> None:
    """Fix the (N, D) 0/1 mask (rows, as the engine's outputs) of each dropout layer, in order."""
    dropouts = [layer for layer in layers if isinstance(layer, R.Dropout)]
    assert len(dropouts) == len(masks), f"{len(masks)} masks for {len(dropouts)} dropout layers"
    for layer, mask in zip(dropouts, masks):
        layer.fixed_mask = _f64(mask).T  # (D, N)


def reference_loss(model):
    """The reference loss of the model, with its label smoothing where it applies."""
    cls = _LOSSES[model.loss]
    if cls in (R.SquaredError, R.LogisticCrossEntropy):
        return cls()
    return cls(label_smoothing=model.label_smoothing)


def target_matrix(y, K: int) -> np.ndarray:
    """(K, N) targets: one-hot columns of labels (N,), or the transpose of soft targets (N, K)."""
    y = np.asarray(y)
    return R.one_hot(y, K) if y.ndim == 1 else _f64(y).T


def forward(layers, X) -> np.ndarray:
    """Network output (N, K) of rows X (N, D)."""
    A = _f64(X).T  # (D, N)
    for layer in layers:
        A = layer.forward(A)
    return A.T


def linear_outputs(layers, X) -> list:
    """The output (N, K) of every linear layer for rows X (N, D): the hidden pre-activations,
    and the logits last when the network ends with a linear layer."""
    A = _f64(X).T  # (D, N)
    outputs = []
    for layer in layers:
        A = layer.forward(A)
        if isinstance(layer, R.Linear):
            outputs.append(A.T)
    return outputs


def forward_backward(layers, loss, X, y) -> tuple[np.ndarray, float]:
    """One training pass of the batch (X, y): returns (output (N, K), batch-mean loss) and
    leaves every layer's parameter gradients on it."""
    A = _f64(X).T  # (D, N)
    for layer in layers:
        A = layer.forward(A)
    T = target_matrix(y, A.shape[0])  # (K, N)
    value = loss.value(A, T)
    D = loss.gradient(A, T)  # (K, N)
    for layer in reversed(layers):
        D = layer.backward(D)
    return A.T, value


def gradients(layer) -> dict:
    """The parameter gradients of one reference layer under the engine's names: linear
    ``DW``/``Db``, batch norm and affine ``gamma``/``beta``, SReLU ``t`` = [tl, al, tr, ar]."""
    if isinstance(layer, R.Linear):
        return {"DW": layer.DW, "Db": layer.Db}
    if isinstance(layer, (R.BatchNorm, R.Affine)):
        return {"gamma": layer.Dgamma, "beta": layer.Dbeta}
    if isinstance(layer, R.SReLU):
        return {"t": np.array([layer.Dtl, layer.Dal, layer.Dtr, layer.Dar])}
    return {}


def parameters(layer) -> dict:
    """The trainable arrays of one reference layer under the engine's names (linear ``W``/``b``,
    ``gamma``/``beta``, SReLU ``t``), as arrays an optimizer can update in place."""
    if isinstance(layer, R.Linear):
        return {"W": layer.W, "b": layer.b}
    if isinstance(layer, (R.BatchNorm, R.Affine)):
        return {"gamma": layer.gamma, "beta": layer.beta}
    if isinstance(layer, R.SReLU):
        return {"t": np.array([layer.tl, layer.al, layer.tr, layer.ar])}
    return {}


def set_srelu(layer, t) -> None:
    """Write SReLU's [tl, al, tr, ar] back after an optimizer updated the array."""
    layer.tl, layer.al, layer.tr, layer.ar = (float(v) for v in t)


def train_epoch(layers, loss, X, y, *, batch_size, optimizers, make_optimizer, schedule=None, t=0):
    """One epoch of the engine's ``fit(shuffle=False)`` on the reference network: for each
    consecutive batch (the last may be shorter), a training pass, then one step of a
    reference optimizer per parameter array, at rate ``schedule(t)`` for the t-th step
    (``lr`` unchanged without a schedule).

    ``optimizers`` maps (reference layer, parameter name) to the optimizer of that array;
    missing ones are made by ``make_optimizer()``, so the optimizer state lasts as long as
    the dict is passed again (across epochs, and across fits as the engine keeps it).
    Returns (mean loss over the examples, accuracy of the outputs' argmax against labels y
    (nan for soft targets), t after the epoch); the accuracy and loss of a batch are those of
    the training pass, before its step.
    """
    y = np.asarray(y)
    total, correct = 0.0, 0
    for start in range(0, X.shape[0], batch_size):
        Xb, yb = X[start : start + batch_size], y[start : start + batch_size]
        out, value = forward_backward(layers, loss, Xb, yb)
        total += value * Xb.shape[0]
        if y.ndim == 1:
            correct += int(np.sum(np.argmax(out, axis=1) == yb))
        for layer in layers:
            grads = gradients(layer)
            for name, w in parameters(layer).items():
                opt = optimizers.get((layer, name))
                if opt is None:
                    opt = optimizers[(layer, name)] = make_optimizer()
                if schedule is not None:
                    opt.lr = schedule(t)
                opt.step(w, grads[_GRADIENT_OF.get(name, name)])
                if isinstance(layer, R.SReLU):
                    set_srelu(layer, w)
        t += 1
    n = X.shape[0]
    return total / n, (correct / n if y.ndim == 1 else float("nan")), t


def fit(layers, loss, X, y, *, epochs, batch_size, make_optimizer, optimizers=None, schedule=None):
    """The engine's ``fit(shuffle=False)`` for ``epochs`` epochs on the reference network:
    ``train_epoch`` repeated with one optimizer dict and a running step count t. Yields
    (mean loss, accuracy) after each epoch, so a caller can read the network in between;
    pass ``optimizers`` to keep the optimizer state across calls, as the engine does."""
    optimizers = {} if optimizers is None else optimizers
    t = 0
    for _ in range(epochs):
        value, accuracy, t = train_epoch(
            layers,
            loss,
            X,
            y,
            batch_size=batch_size,
            optimizers=optimizers,
            make_optimizer=make_optimizer,
            schedule=schedule,
            t=t,
        )
        yield value, accuracy
