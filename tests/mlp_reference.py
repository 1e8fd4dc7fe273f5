"""Independent NumPy reference of the whole MLP, written for the tests (rows convention).

Examples are rows: X (N, D). Layer l has dense weights W (K, D) with zeros off the pattern
and a 0/1 mask giving the pattern. Forward: Z = X Wᵀ + b, Y = act_l(Z) for hidden layers,
the last layer's Z are the logits. Backward of a batch-mean loss:
DZ (N, K); DW = (DZᵀ X) ⊙ mask; Db = DZ.sum(0); DX = DZ W.
Computations are done in float64 whatever the dtype of the inputs, so the engine's float32
results are compared with an accurate value. Deliberately does not use truesparse.reference.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("relu", "leaky_relu", "all_relu", "sigmoid", "tanh", "identity")
LOSSES = ("softmax_cross_entropy", "squared_error")


def _sigmoid(z):
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def activation(name, z, layer, alpha):
    """act(z) for hidden layer ``layer`` (counted from 1)."""
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "all_relu":
        slope = alpha if layer % 2 == 1 else -alpha
        return np.where(z > 0, z, slope * z)
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "identity":
        return z.copy()
    raise ValueError(name)


def activation_derivative(name, z, layer, alpha):
    """act'(z) elementwise (the subgradient 'slope for z <= 0' at the kink)."""
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, alpha)
    if name == "all_relu":
        slope = alpha if layer % 2 == 1 else -alpha
        return np.where(z > 0, 1.0, slope)
    if name == "sigmoid":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "identity":
        return np.ones_like(z)
    raise ValueError(name)


def targets(y, n_out):
    """Float targets (N, n_out): one-hot of int labels, or the float targets themselves."""
    y = np.asarray(y)
    if y.ndim == 1:
        t = np.zeros((y.shape[0], n_out))
        t[np.arange(y.shape[0]), y.astype(np.int64)] = 1.0
        return t
    return y.astype(np.float64)


def loss_and_gradient(name, logits, y):
    """Batch-mean loss and its gradient with respect to the logits (N, K)."""
    z = np.asarray(logits, dtype=np.float64)
    n, k = z.shape
    if name == "softmax_cross_entropy":
        y = np.asarray(y).astype(np.int64)
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        loss = float(np.mean(lse - z[np.arange(n), y]))
        p = np.exp(z - lse[:, None])
        p[np.arange(n), y] -= 1.0
        return loss, p / n
    if name == "squared_error":
        t = targets(y, k)
        r = z - t
        return float(np.mean(np.sum(r * r, axis=1))), 2.0 * r / n
    raise ValueError(name)


def forward(weights, biases, x, act, alpha=0.01):
    """Return (Zs, Ys): pre-activations of every layer and inputs of every layer.

    Ys[0] = X, Ys[l] = act(Zs[l-1]); Zs[-1] are the logits.
    """
    ys = [np.asarray(x, dtype=np.float64)]
    zs = []
    n_layers = len(weights)
    for li, (w, b) in enumerate(zip(weights, biases)):
        z = ys[-1] @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)
        zs.append(z)
        if li < n_layers - 1:
            ys.append(activation(act, z, li + 1, alpha))
    return zs, ys


def backward(weights, masks, biases, x, y, act, loss, alpha=0.01):
    """Return (loss, DWs, Dbs, DX) of the batch-mean loss; DWs are dense and masked."""
    zs, ys = forward(weights, biases, x, act, alpha)
    value, dz = loss_and_gradient(loss, zs[-1], y)
    dws = [None] * len(weights)
    dbs = [None] * len(weights)
    dx = None
    for li in reversed(range(len(weights))):
        w = np.asarray(weights[li], dtype=np.float64)
        dws[li] = (dz.T @ ys[li]) * masks[li]  # (K, D) = (K, N) (N, D), restricted to the pattern
        dbs[li] = dz.sum(axis=0)  # (K,)
        dx = dz @ w  # (N, D) = (N, K) (K, D)
        if li > 0:
            dz = dx * activation_derivative(act, zs[li - 1], li, alpha)
    return value, dws, dbs, dx


def loss_value(weights, biases, x, y, act, loss, alpha=0.01):
    zs, _ = forward(weights, biases, x, act, alpha)
    return loss_and_gradient(loss, zs[-1], y)[0]


def sgd_step(params, grads, velocities, lr, momentum, nesterov, weight_decay):
    """One PyTorch-semantics SGD step on lists of arrays, in place; masks are applied by the caller.

    g = dW + wd*W ; v = mu*v + g ; step = g + mu*v if nesterov else v (mu == 0: step = g).
    """
    for i, (p, g0) in enumerate(zip(params, grads)):
        g = g0 + weight_decay * p
        if momentum != 0.0:
            velocities[i] = momentum * velocities[i] + g
            step = g + momentum * velocities[i] if nesterov else velocities[i]
        else:
            step = g
        p -= lr * step
