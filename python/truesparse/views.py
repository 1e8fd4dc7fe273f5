"""Views of a model's layers: :class:`LinearView` for the linear layers (``model.layers``) and
:class:`ModuleView` for the others (with the linear ones, ``model.modules``).

A view holds no arrays: every property reads a fresh copy from the C++ network, and the
setters check their arguments and write through to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import scipy.sparse as sp

from . import layers as L
from ._checks import show
from ._locking import exclusive

if TYPE_CHECKING:
    from .model import Sequential

__all__ = ["LinearView", "ModuleView", "type_error_if_not_numeric"]


def type_error_if_not_numeric(a: np.ndarray, op: str, name: str) -> None:
    """A TypeError naming ``op`` and ``name`` if ``a`` cannot be converted to numbers."""
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"[{op}] {name} has dtype {a.dtype}, which cannot be converted to numbers")


class LinearView:
    """A view of one linear layer of a model: ``Z = X Wᵀ + b`` with W of shape (out, in).

    ``W``/``DW`` are ``scipy.sparse.csr_array`` for a sparse layer and ``ndarray`` for a dense
    one; every access returns a fresh copy.
    """

    def __init__(self, model: "Sequential", index: int) -> None:
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
    @exclusive
    def density(self) -> float:
        out, inp = self.shape
        return self.nnz / (out * inp)

    @exclusive
    def _matrix(self, gradient: bool):
        values = self._core.layer_values(self._index, gradient)
        if values is None or not self.is_sparse:
            return values  # None: a gradient that fused SGD steps did not keep
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

    @exclusive
    def set_weights(self, W, b=None) -> None:
        """Replace W (and b). A scipy sparse W makes this a sparse layer whose pattern is W's
        stored entries (explicit zeros included); an ndarray keeps a dense layer dense and gives
        a sparse layer the ndarray's nonzeros as its pattern. Optimizer state is reset."""
        op = "Linear.set_weights"
        out, inp = self.shape
        dtype = self._model.dtype
        keep_bias = b is None  # the layer's own bias, whatever it holds (NaN after divergence)
        if keep_bias:
            b = self.b
        b = np.asarray(b)
        type_error_if_not_numeric(b, op, "b")
        b = np.ascontiguousarray(b, dtype=dtype)
        if b.shape != (out,):
            raise ValueError(
                f"[{op}] b has shape {b.shape} but layer {self._index} has {out} outputs"
            )
        if not keep_bias and not np.all(np.isfinite(b)):
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
            type_error_if_not_numeric(W, op, "W")
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
    ``gamma``, ``beta``; SReLU: ``t`` = [tl, al, tr, ar]); ``set(name, value)`` replaces one;
    batch norm's ``running_mean``/``running_var`` are replaced by ``set_statistic``."""

    def __init__(self, model: "Sequential", index: int) -> None:
        self._model = model
        self._index = index
        self.kind = model._core.module_kind(index)

    @property
    def _core(self):
        return self._model._core

    @property
    def parameters(self) -> dict:
        return {k: v for k, (v, _) in self._model._core.module_parameters(self._index).items()}

    @property
    def gradients(self) -> Optional[dict]:
        if not self._model._has_gradients:
            return None
        return {k: g for k, (_, g) in self._model._core.module_parameters(self._index).items()}

    @exclusive
    def set(self, name: str, value) -> None:
        op = f"{L.KIND_NAMES.get(self.kind, self.kind)}.set"
        current = self.parameters
        if not isinstance(name, str) or name not in current:
            raise ValueError(
                f"[{op}] no parameter named {name!r}; this layer has {sorted(current)}"
            )
        value = self._checked(value, current[name].size, op, name)
        if self.kind == "srelu" and not value[0] < value[2]:
            raise ValueError(
                f"[{op}] t = [tl, al, tr, ar] needs tl < tr, got tl={show(value[0])}, tr={show(value[2])}"
            )
        self._model._core.set_module_parameter(self._index, name, value)

    def _checked(self, value, size: int, op: str, name: str) -> np.ndarray:
        """``value`` as a flat array of the model's dtype with ``size`` finite numbers."""
        value = np.asarray(value)
        type_error_if_not_numeric(value, op, name)
        value = np.ascontiguousarray(value, dtype=self._model.dtype).ravel()
        if value.size != size:
            raise ValueError(f"[{op}] {name} needs {size} values, got {value.size}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"[{op}] {name} contains NaN or infinity")
        return value

    @exclusive
    def set_statistic(self, name: str, value) -> None:
        """Replace a running statistic (batch norm's ``running_mean`` or ``running_var``, which
        must be >= 0)."""
        op = f"{L.KIND_NAMES.get(self.kind, self.kind)}.set_statistic"
        current = self._model._core.module_statistics(self._index)
        if not isinstance(name, str) or name not in current:
            raise ValueError(
                f"[{op}] no statistic named {name!r}; this layer has {sorted(current)}"
            )
        value = self._checked(value, current[name].size, op, name)
        if name == "running_var" and np.any(value < 0):
            raise ValueError(f"[{op}] running_var must be >= 0, got {value.min()}")
        self._model._core.set_module_statistic(self._index, name, value)

    def _statistic(self, name: str) -> np.ndarray:
        statistics = self._model._core.module_statistics(self._index)
        if name not in statistics:
            raise AttributeError(f"{L.KIND_NAMES.get(self.kind, self.kind)} layer has no {name}")
        return statistics[name]

    @property
    def running_mean(self) -> np.ndarray:
        """Batch norm's running mean (copy)."""
        return self._statistic("running_mean")

    @property
    def running_var(self) -> np.ndarray:
        """Batch norm's running variance (copy)."""
        return self._statistic("running_var")

    def __repr__(self) -> str:
        return f"{self.kind}()"
