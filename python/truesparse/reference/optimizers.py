"""NumPy reference optimizers on value arrays, with PyTorch's semantics.

One optimizer object updates one array: ``step(w, g)`` changes ``w`` in place from its
gradient ``g``, and the state arrays (velocity, Adam moments) are aligned with ``w`` (for a
sparse layer: with its stored values), allocated as zeros at the first step. ``lr`` is a
plain attribute, so a schedule (``schedules.py``) can set it before each step. A network
has one optimizer object per parameter array, as PyTorch keeps one state per parameter.

With weight decay λ, learning rate η, momentum μ (SGD family as ``optimizer.h``)::

    SGD        g' = g + λ w;   w ← w − η g'
    Momentum   g' = g + λ w;   v ← μ v + g';   w ← w − η v
    Nesterov   g' = g + λ w;   v ← μ v + g';   w ← w − η (g' + μ v)
    Adam       g' = g + λ w;   m ← β1 m + (1 − β1) g';   v ← β2 v + (1 − β2) g'²;   t ← t + 1
               w ← w − (η / (1 − β1ᵗ)) m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
    AdamW      w ← w − η λ w  (decoupled), then the Adam step with g' = g

These are ``torch.optim.SGD`` (dampening 0; the first velocity is g' because v starts at
zero), ``torch.optim.Adam`` and ``torch.optim.AdamW`` (amsgrad off), written in the order
PyTorch evaluates them.

Dynamic sparse training (docs/dynamic-sparse-training.md#3-applying-a-change) adds two
things. ``update_topology(dropped, grown)`` restarts the state of the entries a topology
update removed or created at zero (survivors keep theirs). And Adam/AdamW with
``new_weight_warmup`` n > 0 give a weight created by a topology update a smaller rate
during its first n steps: with ``age`` its number of steps since it was created,

    η_k = η (age_k + 1) / (n + 1)   while age_k < n  (then age_k ← age_k + 1);   η_k = η after

used for both the decoupled decay and the Adam step of entry k (``optimizer.h``). Every
entry starts mature (age n) at the first step, so only weights created later warm up.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Adam", "AdamW", "Momentum", "Nesterov", "Optimizer"]


def _check(name: str, value: float, low: float, high: float = np.inf, high_open=False) -> float:
    value = float(value)
    ok = low <= value and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"[{name}] invalid value {value}")
    return value


def _set_entries(a: np.ndarray, where, value) -> None:
    """a[where] = value, where ``where`` is a boolean mask, an index array, a tuple of index
    arrays (e.g. ``np.unravel_index(positions, a.shape)``), or None for no entry."""
    if where is not None:
        a[where if isinstance(where, tuple) else np.asarray(where)] = value


class Optimizer:
    """Base class: ``step(w, g)`` updates the array ``w`` in place.

    ``state_names`` lists the state arrays aligned with ``w`` (None before the first step).
    """

    state_names: tuple = ()

    def step(self, w: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def update_topology(self, dropped=None, grown=None) -> None:
        """A topology update of the sparse layer whose array ``w`` this optimizer steps:
        the state of the ``dropped`` and ``grown`` entries (boolean masks or indices into
        ``w``) restarts at zero; every other entry keeps its state, and the step count ``t``
        is unchanged. The caller changes ``w`` and the layer's pattern itself. Before the
        first step there is no state and nothing to do."""
        for name in self.state_names:
            state = getattr(self, name)
            if state is not None:
                _set_entries(state, dropped, 0)
                _set_entries(state, grown, 0)

    @staticmethod
    def _arrays(w, g):
        if not isinstance(w, np.ndarray):
            raise TypeError("[optimizer.step] w must be a NumPy array (it is updated in place)")
        g = np.asarray(g, dtype=w.dtype)
        if g.shape != w.shape:
            raise ValueError(f"[optimizer.step] g has shape {g.shape} but w has {w.shape}")
        return g


class SGD(Optimizer):
    """w ← w − lr (g + weight_decay w)."""

    def __init__(self, lr: float, weight_decay: float = 0.0):
        self.lr = _check("SGD lr", lr, 0.0)
        self.weight_decay = _check("SGD weight_decay", weight_decay, 0.0)

    def step(self, w, g) -> None:
        g = self._arrays(w, g)
        w -= self.lr * (g + self.weight_decay * w)


class Momentum(Optimizer):
    """Heavy-ball momentum: v ← mu v + (g + weight_decay w);  w ← w − lr v."""

    nesterov = False
    state_names = ("v",)

    def __init__(self, lr: float, mu: float = 0.9, weight_decay: float = 0.0):
        self.lr = _check("Momentum lr", lr, 0.0)
        self.mu = _check("Momentum mu", mu, 0.0, 1.0, high_open=True)
        self.weight_decay = _check("Momentum weight_decay", weight_decay, 0.0)
        self.v = None  # velocity, aligned with w

    def step(self, w, g) -> None:
        g = self._arrays(w, g)
        if self.v is None or self.v.shape != w.shape:
            self.v = np.zeros_like(w)
        g = g + self.weight_decay * w
        self.v = self.mu * self.v + g
        w -= self.lr * (g + self.mu * self.v if self.nesterov else self.v)


class Nesterov(Momentum):
    """Nesterov momentum, PyTorch form: v ← mu v + g';  w ← w − lr (g' + mu v)."""

    nesterov = True


class Adam(Optimizer):
    """Adam with bias correction; weight decay is L2 added to the gradient (torch.optim.Adam).

    ``new_weight_warmup`` n > 0 warms up the weights created by ``update_topology(grown=...)``:
    rate η (age + 1) / (n + 1) during their first n steps (module docstring).
    """

    decoupled = False
    state_names = ("m", "v")

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        new_weight_warmup: int = 0,
    ):
        name = type(self).__name__
        self.lr = _check(f"{name} lr", lr, 0.0)
        self.beta1 = _check(f"{name} beta1", beta1, 0.0, 1.0, high_open=True)
        self.beta2 = _check(f"{name} beta2", beta2, 0.0, 1.0, high_open=True)
        self.eps = _check(f"{name} eps", eps, 0.0)
        self.weight_decay = _check(f"{name} weight_decay", weight_decay, 0.0)
        if int(new_weight_warmup) != new_weight_warmup or new_weight_warmup < 0:
            raise ValueError(f"[{name} new_weight_warmup] invalid value {new_weight_warmup}")
        self.new_weight_warmup = int(new_weight_warmup)
        self.t = 0  # steps taken
        self.m = None  # first moment, aligned with w
        self.v = None  # second moment, aligned with w
        self.age = None  # steps since each weight was created (up to n), aligned with w

    def update_topology(self, dropped=None, grown=None) -> None:
        """As ``Optimizer.update_topology``; the ``grown`` entries are new weights (age 0)."""
        super().update_topology(dropped, grown)
        if self.age is not None:
            _set_entries(self.age, grown, 0)

    def _rates(self) -> np.ndarray:
        """The rate of each entry at this step, η (age + 1) / (n + 1) for the young entries
        and η for the others; the young ones age by one step."""
        n = self.new_weight_warmup
        young = self.age < n
        rates = np.where(young, self.lr * (self.age + 1) / (n + 1), self.lr)
        self.age[young] += 1
        return rates

    def step(self, w, g) -> None:
        g = self._arrays(w, g)
        if self.m is None or self.m.shape != w.shape:
            self.m = np.zeros_like(w)
            self.v = np.zeros_like(w)
            self.age = np.full(w.shape, self.new_weight_warmup)  # every entry mature
        rate = self._rates() if self.new_weight_warmup > 0 else self.lr
        if self.decoupled:
            w *= 1.0 - rate * self.weight_decay
        else:
            g = g + self.weight_decay * w
        self.t += 1
        self.m = self.beta1 * self.m + (1.0 - self.beta1) * g
        self.v = self.beta2 * self.v + (1.0 - self.beta2) * g * g
        bias_correction1 = 1.0 - self.beta1**self.t
        bias_correction2 = 1.0 - self.beta2**self.t
        step_size = rate / bias_correction1
        denom = np.sqrt(self.v) / np.sqrt(bias_correction2) + self.eps
        w -= step_size * self.m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): w ← w (1 − lr wd), then Adam
    on the plain gradient. PyTorch's default weight_decay for AdamW is 0.01."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        new_weight_warmup: int = 0,
    ):
        super().__init__(lr, beta1, beta2, eps, weight_decay, new_weight_warmup)
