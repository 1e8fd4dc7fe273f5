"""Interoperability with PyTorch and SciPy: a truesparse model as a ``torch.nn.Module``
(:func:`to_torch`), a PyTorch MLP as a truesparse model (:func:`from_torch`), and every layer's
weights as SciPy CSR matrices in one ``.npz`` file (:func:`export_npz`, :func:`load_npz`).

>>> import truesparse as ts
>>> from truesparse.interop import to_torch, from_torch, export_npz, load_npz
>>> module = to_torch(model)             # torch.nn.Sequential; sparse layers as CSR tensors
>>> model2 = from_torch(module)          # and back: the same patterns and values
>>> export_npz(model, "weights.npz")     # np.load(..., allow_pickle=False) reads it
>>> for W, b in load_npz("weights.npz"):   # scipy.sparse.csr_array, ndarray
...     ...

PyTorch is imported only by the functions that need it, so ``import truesparse.interop`` and
the ``.npz`` functions work without it. The PyTorch modules that have no counterpart in
``torch.nn`` (:class:`SparseLinear`, :class:`AllReLU`, :class:`SReLU`, :class:`Affine`) are
attributes of this module, created on first access (which imports PyTorch).

The layer mapping, the ``.npz`` key layout and what is not supported are in
``docs/interop.md``.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp

from . import layers as L
from ._checks import _got, choice, flag, integer, real
from ._version import __version__
from .checkpoint import check_model, spec_to_json
from .io import atomic_file, file_to_read, file_to_write
from .model import (
    BACKENDS,
    DTYPES,
    FAN_INS,
    LAST_LAYER,
    LOSSES,
    WEIGHT_INITS,
    Sequential,
    operand_dtype_kind,
)
from .views import LinearView

__all__ = [
    "NPZ_FORMAT",
    "NpzWeights",
    "export_npz",
    "from_torch",
    "load_npz",
    "to_torch",
]

# The PyTorch modules of this module, built on first access (see __getattr__).
_TORCH_CLASSES = ("SparseLinear", "AllReLU", "SReLU", "Affine")

NPZ_FORMAT = "truesparse.npz"  # the "format" entry of the architecture JSON of export_npz
NPZ_VERSION = 1

# The engine kind (``model.modules[i].kind``) of each layer spec class.
_SPEC_KIND = {
    L.Linear: "linear",
    **{cls: "activation" for cls in L.ACTIVATIONS.values()},
    L.Softmax: "softmax",
    L.LogSoftmax: "log_softmax",
    L.BatchNorm: "batch_norm",
    L.Dropout: "dropout",
    L.SReLU: "srelu",
    L.Affine: "affine",
}
# The filters of PyTorch's warnings about sparse CSR tensors, applied around every place that
# builds one (the beta-state notice is a warn-once warning of torch's C++ core).
_SPARSE_WARNINGS = ("Sparse CSR tensor support is in beta state",)


# -- PyTorch, imported on demand -------------------------------------------------------------------
def _import_torch(op: str):
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"[{op}] needs PyTorch, which is not installed: pip install torch "
            f"(CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        ) from e
    return torch


def _torch_float_dtype(dtype, op: str, torch):
    """``dtype``: None or a floating-point torch dtype (``torch.float32``, ...)."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(
            f"[{op}] dtype must be None or a floating-point torch dtype (torch.float32, "
            f"torch.float64), got {_got(dtype)}"
        )
    return dtype


def float_dtype(value, op: str, name: str = "dtype") -> np.dtype:
    """``value`` (``np.float32``, ``"float64"``, a NumPy dtype, ...) as the NumPy dtype
    float32 or float64, the engine's two; a TypeError naming it for anything else, None
    included (NumPy reads None as float64)."""
    try:
        dtype = None if value is None else np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype not in DTYPES:
        raise TypeError(f"[{op}] {name} must be float32 or float64, got {_got(value)}")
    return dtype


class _quiet_sparse(warnings.catch_warnings):
    """Ignore PyTorch's beta-state warning about sparse CSR tensors (and only that one)."""

    def __enter__(self):
        result = super().__enter__()
        for message in _SPARSE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        return result


_torch_classes_cache: dict[str, type] = {}


def _torch_classes() -> dict[str, type]:
    """Build the PyTorch modules of this module once (importing torch) and return them."""
    if _torch_classes_cache:
        return _torch_classes_cache
    torch = _import_torch("truesparse.interop")
    nn = torch.nn
    F = nn.functional

    def csr_tensor(crow, col, values, size):
        with _quiet_sparse():
            return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)

    class _SparseMatmul(torch.autograd.Function):
        """``Y = X Wᵀ`` for a CSR ``W`` given by (crow, col, values): the forward and the input
        gradient are sparse × dense products (the latter with a CSR copy of Wᵀ), the values'
        gradient is an SDDMM on the pattern; nothing of W's dense size is formed."""

        @staticmethod
        def forward(ctx, x, values, module):
            shape = (module.out_features, module.in_features)
            W = csr_tensor(module.crow_indices, module.col_indices, values, shape)
            with _quiet_sparse():
                y = torch.sparse.mm(W, x.t()).t().contiguous()
            ctx.save_for_backward(x, values)
            ctx.module = module
            return y

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_y):
            x, values = ctx.saved_tensors
            module = ctx.module
            grad_x = grad_values = None
            with _quiet_sparse():
                if ctx.needs_input_grad[0]:
                    crow_t, col_t, perm = module._transpose()
                    Wt = csr_tensor(
                        crow_t, col_t, values[perm], (module.in_features, module.out_features)
                    )
                    grad_x = torch.sparse.mm(Wt, grad_y.t()).t()
                if ctx.needs_input_grad[1]:
                    pattern = csr_tensor(
                        module.crow_indices,
                        module.col_indices,
                        torch.zeros_like(values),
                        (module.out_features, module.in_features),
                    )
                    grad_values = torch.sparse.sampled_addmm(
                        pattern, grad_y.t(), x, beta=0.0
                    ).values()
            return grad_x, grad_values, None

    class SparseLinear(nn.Module):
        """``y = x Wᵀ + b`` with a sparse CSR weight ``W`` (out_features, in_features).

        The pattern is the buffers ``crow_indices`` and ``col_indices`` (CSR, sorted columns
        in every row), the stored weights the parameter ``values`` (aligned with
        ``col_indices``), the bias the parameter ``bias``. ``weight`` is the CSR tensor of
        these (differentiable with respect to ``values``). The forward and backward never form
        the dense weight: ``torch.sparse.mm`` for the products, ``torch.sparse.sampled_addmm``
        for the gradient of ``values``. Inputs have shape (*, in_features).
        """

        def __init__(
            self,
            in_features: int,
            out_features: int,
            crow_indices,
            col_indices,
            values,
            bias=None,
        ) -> None:
            super().__init__()
            op = "SparseLinear"
            self.in_features = integer(in_features, "in_features", op, minimum=1)
            self.out_features = integer(out_features, "out_features", op, minimum=1)
            crow = torch.as_tensor(crow_indices).detach().clone()
            col = torch.as_tensor(col_indices).detach().clone()
            if crow.dtype not in (torch.int32, torch.int64) or col.dtype != crow.dtype:
                raise TypeError(
                    f"[{op}] crow_indices and col_indices must be integer tensors of one dtype "
                    f"(int32 or int64), got {crow.dtype} and {col.dtype}"
                )
            values = torch.as_tensor(values).detach().clone()
            if not values.is_floating_point():
                raise TypeError(f"[{op}] values must be floating point, got {values.dtype}")
            _check_csr(
                crow.cpu().numpy(),
                col.cpu().numpy(),
                values.shape,
                (self.out_features, self.in_features),
                op,
            )
            if not torch.isfinite(values).all():
                raise ValueError(f"[{op}] values contain NaN or infinity")
            self.register_buffer("crow_indices", crow)
            self.register_buffer("col_indices", col)
            # (out_features, in_features), so that a state_dict describes the layer in full
            self.register_buffer("shape", torch.tensor([self.out_features, self.in_features]))
            self.values = nn.Parameter(values)
            if bias is None:
                self.register_parameter("bias", None)
            else:
                bias = torch.as_tensor(bias, dtype=values.dtype).detach().clone()
                if tuple(bias.shape) != (self.out_features,):
                    raise ValueError(
                        f"[{op}] bias has shape {tuple(bias.shape)}, expected ({self.out_features},)"
                    )
                self.bias = nn.Parameter(bias)
            self._transpose_key = None
            self._transpose_cache = None

        @classmethod
        def from_scipy(cls, W, bias=None, *, dtype=None) -> "SparseLinear":
            """A SparseLinear of a scipy sparse matrix (its stored entries, explicit zeros
            included, are the pattern) and an optional bias; ``dtype`` a torch dtype (default
            the matrix's, as float32 or float64)."""
            if not sp.issparse(W):
                raise TypeError(
                    f"[SparseLinear.from_scipy] W must be a scipy sparse matrix, got {type(W).__name__}"
                )
            dtype = _torch_float_dtype(dtype, "SparseLinear.from_scipy", torch)
            W = _canonical_csr(W, "SparseLinear.from_scipy")
            if dtype is None:
                dtype = torch.float64 if W.dtype == np.float64 else torch.float32
            out, inp = W.shape
            itype = np.int32 if max(W.nnz, out, inp) < 2**31 else np.int64
            return cls(
                inp,
                out,
                torch.from_numpy(np.asarray(W.indptr, itype)),
                torch.from_numpy(np.asarray(W.indices, itype)),
                torch.as_tensor(np.asarray(W.data), dtype=dtype),
                None if bias is None else torch.as_tensor(np.asarray(bias), dtype=dtype),
            )

        @property
        def nnz(self) -> int:
            return int(self.values.numel())

        @property
        def density(self) -> float:
            return self.nnz / (self.out_features * self.in_features)

        @property
        def weight(self):
            """The weight as a torch sparse CSR tensor (out_features, in_features)."""
            return csr_tensor(
                self.crow_indices,
                self.col_indices,
                self.values,
                (self.out_features, self.in_features),
            )

        def to_scipy(self) -> sp.csr_array:
            """The weight as a ``scipy.sparse.csr_array`` (a copy)."""
            return sp.csr_array(
                (
                    self.values.detach().cpu().numpy().copy(),
                    self.col_indices.cpu().numpy().copy(),
                    self.crow_indices.cpu().numpy().copy(),
                ),
                shape=(self.out_features, self.in_features),
            )

        def _transpose(self):
            """(crow, col, perm) of Wᵀ in CSR: ``values[perm]`` are Wᵀ's values. Cached until
            the pattern buffers change (in place or replaced)."""
            key = (
                self.crow_indices,
                self.crow_indices._version,
                self.col_indices,
                self.col_indices._version,
            )
            old = self._transpose_key
            if (
                old is None
                or any(a is not b for a, b in zip(key[::2], old[::2]))
                or key[1::2] != old[1::2]
            ):
                crow, col = self.crow_indices.long(), self.col_indices.long()
                rows = torch.repeat_interleave(
                    torch.arange(self.out_features, device=col.device), crow.diff()
                )
                perm = torch.argsort(col, stable=True)  # by column, rows ascending within each
                counts = torch.bincount(col, minlength=self.in_features)
                crow_t = torch.zeros(self.in_features + 1, dtype=torch.int64, device=col.device)
                crow_t[1:] = torch.cumsum(counts, 0)
                itype = self.crow_indices.dtype
                self._transpose_cache = (crow_t.to(itype), rows[perm].to(itype), perm)
                self._transpose_key = key
            return self._transpose_cache

        def forward(self, x):
            if x.shape[-1] != self.in_features:
                raise ValueError(
                    f"[SparseLinear] input has {x.shape[-1]} features, expected {self.in_features}"
                )
            lead = x.shape[:-1]
            y = _SparseMatmul.apply(x.reshape(-1, self.in_features), self.values, self)
            if self.bias is not None:
                y = y + self.bias
            return y.reshape(*lead, self.out_features)

        def extra_repr(self) -> str:
            return (
                f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={self.nnz}, density={self.density:.4g}, bias={self.bias is not None}"
            )

    class AllReLU(nn.Module):
        """All-ReLU (Curci et al. 2021): ``x`` for x > 0, ``s·x`` otherwise, with ``s = +alpha``
        in odd and ``−alpha`` in even activation layers; ``layer`` is this layer's number
        (from 1) among the activation layers of its network."""

        def __init__(self, alpha: float = 0.6, layer: int = 1) -> None:
            super().__init__()
            self.alpha = real(alpha, "alpha", "AllReLU")
            self.layer = integer(layer, "layer", "AllReLU", minimum=1)

        @property
        def slope(self) -> float:
            return self.alpha if self.layer % 2 == 1 else -self.alpha

        def forward(self, x):
            return F.leaky_relu(x, negative_slope=self.slope)

        def extra_repr(self) -> str:
            return f"alpha={self.alpha}, layer={self.layer}"

    class SReLU(nn.Module):
        """S-shaped ReLU (Jin et al. 2016) with four trainable scalars shared by the layer:
        ``tr + ar (x − tr)`` for x ≥ tr, ``tl + al (x − tl)`` for x ≤ tl (and x < tr), ``x``
        between."""

        def __init__(self, tl=0.0, al=0.01, tr=1.0, ar=1.0, *, dtype=None) -> None:
            super().__init__()
            dtype = _torch_float_dtype(dtype, "SReLU", torch)
            for name, v in (("tl", tl), ("al", al), ("tr", tr), ("ar", ar)):
                v = real(v, name, "SReLU")
                setattr(self, name, nn.Parameter(torch.tensor(v, dtype=dtype)))

        def forward(self, x):
            upper = x >= self.tr
            lower = (x <= self.tl) & ~upper
            return torch.where(
                upper,
                self.tr + self.ar * (x - self.tr),
                torch.where(lower, self.tl + self.al * (x - self.tl), x),
            )

        def extra_repr(self) -> str:
            t = [float(p.detach()) for p in (self.tl, self.al, self.tr, self.ar)]
            return "tl={:g}, al={:g}, tr={:g}, ar={:g}".format(*t)

    class Affine(nn.Module):
        """Per-feature scale and shift ``y = gamma ⊙ x + beta`` over the last dimension."""

        def __init__(self, num_features: int, *, dtype=None) -> None:
            super().__init__()
            dtype = _torch_float_dtype(dtype, "Affine", torch)
            self.num_features = integer(num_features, "num_features", "Affine", minimum=1)
            self.gamma = nn.Parameter(torch.ones(self.num_features, dtype=dtype))
            self.beta = nn.Parameter(torch.zeros(self.num_features, dtype=dtype))

        def forward(self, x):
            return x * self.gamma + self.beta

        def extra_repr(self) -> str:
            return f"num_features={self.num_features}"

    classes = {
        "SparseLinear": SparseLinear,
        "AllReLU": AllReLU,
        "SReLU": SReLU,
        "Affine": Affine,
    }
    for name, cls in classes.items():  # importable and picklable as truesparse.interop.<name>
        cls.__module__ = __name__
        cls.__qualname__ = name
    _SparseMatmul.__module__ = __name__
    _SparseMatmul.__qualname__ = "_SparseMatmul"
    _torch_classes_cache.update(classes)
    return _torch_classes_cache


def __getattr__(name: str):
    if name in _TORCH_CLASSES:
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- CSR helpers ------------------------------------------------------------------------------------
def _check_csr(indptr, indices, values_shape, shape, op: str, what: str = "W") -> None:
    """ValueError unless (indptr, indices) is a valid CSR pattern of ``shape`` with sorted,
    unique columns in every row and one value per index."""
    rows, cols = shape
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    if indptr.ndim != 1 or indptr.shape[0] != rows + 1:
        raise ValueError(f"[{op}] {what}: indptr has shape {indptr.shape}, expected ({rows + 1},)")
    if indices.ndim != 1:
        raise ValueError(f"[{op}] {what}: indices must be 1-D, got shape {indices.shape}")
    if tuple(values_shape) != indices.shape:
        raise ValueError(
            f"[{op}] {what}: {indices.shape[0]} indices but values of shape {tuple(values_shape)}"
        )
    ip = indptr.astype(np.int64)
    if ip[0] != 0 or ip[-1] != indices.shape[0] or np.any(np.diff(ip) < 0):
        raise ValueError(
            f"[{op}] {what}: indptr must rise from 0 to the number of indices "
            f"({indices.shape[0]}), got {ip[0]} ... {ip[-1]}"
        )
    if indices.size:
        ix = indices.astype(np.int64)
        if ix.min() < 0 or ix.max() >= cols:
            raise ValueError(f"[{op}] {what}: a column index is outside [0, {cols})")
        step = np.diff(ix)
        starts = ip[1:-1][(ip[1:-1] > 0) & (ip[1:-1] < ix.size)] - 1  # row boundaries
        step[starts] = 1
        bad = np.flatnonzero(step <= 0)
        if bad.size:
            row = int(np.searchsorted(ip, bad[0] + 1, side="right") - 1)
            raise ValueError(f"[{op}] {what}: row {row} has unsorted or duplicate column indices")


def _canonical_csr(W, op: str) -> sp.csr_array:
    """A CSR copy of a scipy sparse matrix with sorted indices; duplicates are an error."""
    if W.format == "csr":
        W = sp.csr_array(W, copy=True)
        if not W.has_canonical_format:
            n = W.nnz
            W.sum_duplicates()
            if W.nnz != n:
                raise ValueError(f"[{op}] W has duplicate entries")
        return W
    coo = sp.coo_array(W)
    keys = coo.row.astype(np.int64) * W.shape[1] + coo.col
    if np.unique(keys).size != keys.size:
        raise ValueError(f"[{op}] W has duplicate entries")
    W = sp.csr_array(coo)
    W.sort_indices()
    return W


# -- to_torch ---------------------------------------------------------------------------------------
def to_torch(model: Sequential):
    """The model as a ``torch.nn.Sequential`` with the same forward (one torch module per
    truesparse layer, in order; ``module[i]`` is ``model.modules[i]``).

    Sparse linear layers become :class:`SparseLinear` (a CSR weight: the layer's pattern as
    ``crow_indices``/``col_indices`` buffers, its values as the parameter ``values``), dense
    ones ``nn.Linear``; batch norm keeps its running statistics, eps and momentum. The
    module's dtype is the model's (float32 or float64). The loss is not part of the module.
    Each layer's settings (which activation, a dropout's p, batch norm's eps and momentum) are
    those of the specs the model was built from (``model.specs``).
    """
    op = "to_torch"
    check_model(model, op)
    specs = model.specs
    torch = _import_torch(op)
    T = _torch_classes()
    nn = torch.nn
    tdtype = torch.float64 if model.dtype == np.float64 else torch.float32
    out = []
    width = model.sizes[0]
    activations = 0
    for i, (spec, module) in enumerate(zip(specs, model.modules)):
        if isinstance(module, LinearView):
            W, b = module.W, module.b
            o, inp = module.shape
            if module.is_sparse:
                t = T["SparseLinear"](
                    inp,
                    o,
                    torch.from_numpy(np.asarray(W.indptr, np.int32)),
                    torch.from_numpy(np.asarray(W.indices, np.int32)),
                    torch.from_numpy(np.asarray(W.data)).to(tdtype),
                    torch.from_numpy(b).to(tdtype),
                )
            else:
                t = nn.Linear(inp, o, dtype=tdtype)
                with torch.no_grad():
                    t.weight.copy_(torch.from_numpy(W))
                    t.bias.copy_(torch.from_numpy(b))
            width = o
        elif isinstance(spec, tuple(L.ACTIVATIONS.values())):
            activations += 1  # the engine numbers its activation layers from 1 (All-ReLU's sign)
            if isinstance(spec, L.ReLU):
                t = nn.ReLU()
            elif isinstance(spec, L.LeakyReLU):
                t = nn.LeakyReLU(negative_slope=float(spec.alpha))
            elif isinstance(spec, L.AllReLU):
                t = T["AllReLU"](float(spec.alpha), layer=activations)
            elif isinstance(spec, L.Sigmoid):
                t = nn.Sigmoid()
            elif isinstance(spec, L.Tanh):
                t = nn.Tanh()
            else:
                t = nn.Identity()
        elif isinstance(spec, L.Softmax):
            t = nn.Softmax(dim=-1)
        elif isinstance(spec, L.LogSoftmax):
            t = nn.LogSoftmax(dim=-1)
        elif isinstance(spec, L.BatchNorm):
            p = module.parameters
            t = nn.BatchNorm1d(
                width, eps=float(spec.eps), momentum=float(spec.momentum), dtype=tdtype
            )
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(p["gamma"]))
                t.bias.copy_(torch.from_numpy(p["beta"]))
                t.running_mean.copy_(torch.from_numpy(module.running_mean))
                t.running_var.copy_(torch.from_numpy(module.running_var))
        elif isinstance(spec, L.Dropout):
            t = nn.Dropout(p=float(spec.p))
        elif isinstance(spec, L.SReLU):
            tl, al, tr, ar = (float(v) for v in module.parameters["t"])
            t = T["SReLU"](tl, al, tr, ar, dtype=tdtype)
        elif isinstance(spec, L.Affine):
            p = module.parameters
            t = T["Affine"](width, dtype=tdtype)
            with torch.no_grad():
                t.gamma.copy_(torch.from_numpy(p["gamma"]))
                t.beta.copy_(torch.from_numpy(p["beta"]))
        else:  # pragma: no cover - a layer kind added to truesparse but not here
            raise ValueError(
                f"[{op}] layer {i} ({type(spec).__name__}) has no PyTorch counterpart in "
                f"truesparse.interop yet"
            )
        out.append(t)
    return nn.Sequential(*out).eval()  # like model.forward's default


# -- from_torch -------------------------------------------------------------------------------------
@dataclass
class _Layer:
    """One layer read from a PyTorch module or state_dict: its spec and what to set."""

    spec: Any
    where: str  # "Linear at position 2 ('1.0')" for error messages
    W: Any = None  # scipy CSR (sparse) or ndarray (dense) for linear layers
    b: Optional[np.ndarray] = None
    parameters: dict = field(default_factory=dict)
    statistics: dict = field(default_factory=dict)
    slope: Optional[float] = None  # All-ReLU: the slope to reproduce


def _array(t, op: str, where: str, name: str) -> np.ndarray:
    """An ndarray of a tensor or array: float32 and float64 as they are, other real dtypes
    (half precision, integers, bool) as float64."""
    if hasattr(t, "detach"):  # a torch tensor
        torch = sys.modules["torch"]
        if t.layout != torch.strided:
            raise TypeError(
                f"[{op}] {where}: {name} is a sparse torch tensor ({t.layout}); pass its "
                f"dense form (.to_dense()) and the pattern as masks="
            )
        if t.is_complex():
            raise TypeError(f"[{op}] {where}: {name} has dtype {t.dtype}, not real numbers")
        t = t.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float64)
        t = t.numpy()
    a = np.asarray(t)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
        raise TypeError(f"[{op}] {where}: {name} has dtype {a.dtype}, not real numbers")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"[{op}] {where}: {name} contains NaN or infinity")
    return a


def _mask_array(m, shape, op: str, where: str) -> np.ndarray:
    a = _array(m, op, where, "the mask")
    if a.shape != tuple(shape):
        raise ValueError(f"[{op}] {where}: the mask has shape {a.shape}, the weight {tuple(shape)}")
    if not np.all((a == 0) | (a == 1)):
        raise ValueError(f"[{op}] {where}: the mask must hold only 0 and 1")
    return a.astype(bool)


def _linear_layer(weight, bias, mask, where: str, op: str) -> _Layer:
    """A Linear layer of a dense weight: the pattern is ``mask`` if given, else the nonzeros;
    a full pattern gives a dense layer."""
    W = _array(weight, op, where, "weight")
    if W.ndim != 2:
        raise ValueError(f"[{op}] {where}: weight must be 2-D, got shape {W.shape}")
    out, inp = W.shape
    b = np.zeros(out) if bias is None else _array(bias, op, where, "bias")
    if b.shape != (out,):
        raise ValueError(f"[{op}] {where}: bias has shape {b.shape}, expected ({out},)")
    pattern = W != 0 if mask is None else _mask_array(mask, W.shape, op, where)
    nnz = int(np.count_nonzero(pattern))
    if nnz == out * inp:
        return _Layer(L.Linear(out), where, W, b)
    rows, cols = np.nonzero(pattern)
    indptr = np.zeros(out + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=out), out=indptr[1:])
    csr = sp.csr_array((W[rows, cols], cols.astype(np.int32), indptr.astype(np.int32)), (out, inp))
    return _Layer(L.Linear(out, density=_density(nnz, out, inp)), where, csr, b)


def _sparse_layer(csr: sp.csr_array, bias, where: str, op: str) -> _Layer:
    out, inp = csr.shape
    b = np.zeros(out) if bias is None else _array(bias, op, where, "bias")
    if b.shape != (out,):
        raise ValueError(f"[{op}] {where}: bias has shape {b.shape}, expected ({out},)")
    return _Layer(L.Linear(out, density=_density(csr.nnz, out, inp)), where, csr, b)


def _density(nnz: int, out: int, inp: int) -> float:
    """The density to build a sparse layer of nnz weights with (replaced by set_weights)."""
    d = max(nnz, 1) / (out * inp)
    return d if d < 1 else 1.0  # a full sparse layer: built dense, made sparse by set_weights


def _flatten(module, path: str, nn, out: list) -> None:
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            _flatten(child, f"{path}.{name}" if path else name, nn, out)
    else:
        out.append((path or "(root)", module))


def _layers_of_module(module, masks: dict, used: set, op: str) -> list[_Layer]:
    torch = sys.modules["torch"]
    nn = torch.nn
    T = _torch_classes()
    flat: list = []
    _flatten(module, "", nn, flat)
    result = []
    for position, (path, m) in enumerate(flat):
        where = f"{type(m).__name__} at position {position} ('{path}')"
        if isinstance(m, nn.Linear):
            mask = _pop_mask(masks, path, used)
            if mask is None and isinstance(getattr(m, "weight_mask", None), torch.Tensor):
                mask = m.weight_mask  # torch.nn.utils.prune: weight = weight_orig * weight_mask
            result.append(_linear_layer(m.weight, m.bias, mask, where, op))
        elif isinstance(m, T["SparseLinear"]):
            if _pop_mask(masks, path, used) is not None:
                raise ValueError(
                    f"[{op}] {where}: a SparseLinear takes no mask (its pattern is its own)"
                )
            values = _array(m.values, op, where, "values")
            indptr = m.crow_indices.cpu().numpy().astype(np.int64)
            indices = m.col_indices.cpu().numpy().astype(np.int64)
            shape = (m.out_features, m.in_features)
            _check_csr(indptr, indices, values.shape, shape, op, where)
            csr = sp.csr_array((values, indices.astype(np.int32), indptr.astype(np.int32)), shape)
            result.append(_sparse_layer(csr, m.bias, where, op))
        elif isinstance(m, nn.ReLU):
            result.append(_Layer(L.ReLU(), where))
        elif isinstance(m, nn.LeakyReLU):
            result.append(_Layer(L.LeakyReLU(alpha=float(m.negative_slope)), where))
        elif isinstance(m, T["AllReLU"]):
            result.append(_Layer(L.AllReLU(alpha=m.alpha), where, slope=m.slope))
        elif isinstance(m, nn.Sigmoid):
            result.append(_Layer(L.Sigmoid(), where))
        elif isinstance(m, nn.Tanh):
            result.append(_Layer(L.Tanh(), where))
        elif isinstance(m, nn.Identity):
            result.append(_Layer(L.Identity(), where))
        elif isinstance(m, nn.Flatten):
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(
                    f"[{op}] {where}: only Flatten(start_dim=1, end_dim=-1) is supported "
                    f"(a no-op on the (N, D) inputs of truesparse)"
                )
        elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            if m.dim not in (1, -1):
                raise ValueError(
                    f"[{op}] {where}: only dim=1 or dim=-1 (over the outputs of each example) is "
                    f"supported, got dim={m.dim}"
                )
            result.append(
                _Layer(L.Softmax() if isinstance(m, nn.Softmax) else L.LogSoftmax(), where)
            )
        elif isinstance(m, nn.BatchNorm1d):
            if not m.track_running_stats or m.running_mean is None:
                raise ValueError(
                    f"[{op}] {where}: BatchNorm1d without running statistics "
                    f"(track_running_stats=False) is not supported"
                )
            if m.momentum is None:
                raise ValueError(
                    f"[{op}] {where}: BatchNorm1d with momentum=None (a cumulative average) is "
                    f"not supported"
                )
            n = m.num_features
            gamma = _array(m.weight, op, where, "weight") if m.affine else np.ones(n)
            beta = _array(m.bias, op, where, "bias") if m.affine else np.zeros(n)
            result.append(
                _batch_norm_layer(
                    gamma,
                    beta,
                    _array(m.running_mean, op, where, "running_mean"),
                    _array(m.running_var, op, where, "running_var"),
                    float(m.eps),
                    float(m.momentum),
                    where,
                    op,
                )
            )
        elif isinstance(m, nn.Dropout):
            if not 0 <= m.p < 1:
                raise ValueError(f"[{op}] {where}: p must be in [0, 1), got {m.p}")
            result.append(_Layer(L.Dropout(float(m.p)), where))
        elif isinstance(m, T["SReLU"]):
            t = [float(getattr(m, name).detach()) for name in ("tl", "al", "tr", "ar")]
            if not all(math.isfinite(v) for v in t):
                raise ValueError(f"[{op}] {where}: a parameter contains NaN or infinity")
            spec = L.SReLU(*t) if t[0] < t[2] else L.SReLU()
            result.append(_Layer(spec, where, parameters={"t": np.array(t)}))
        elif isinstance(m, T["Affine"]):
            result.append(
                _Layer(
                    L.Affine(),
                    where,
                    parameters={
                        "gamma": _array(m.gamma, op, where, "gamma"),
                        "beta": _array(m.beta, op, where, "beta"),
                    },
                )
            )
        else:
            raise TypeError(
                f"[{op}] {where} is not supported; supported are (nested) nn.Sequential of "
                f"Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Identity, Flatten, Softmax, LogSoftmax, "
                f"BatchNorm1d, Dropout and truesparse.interop's SparseLinear, AllReLU, SReLU, "
                f"Affine; for another module pass its state_dict() and activation="
            )
    return result


def _batch_norm_layer(gamma, beta, mean, var, eps, momentum, where, op) -> _Layer:
    n = gamma.shape[0]
    for name, a in (
        ("weight", gamma),
        ("bias", beta),
        ("running_mean", mean),
        ("running_var", var),
    ):
        if a.shape != (n,):
            raise ValueError(f"[{op}] {where}: {name} has shape {a.shape}, expected ({n},)")
    if np.any(var < 0):
        raise ValueError(f"[{op}] {where}: running_var has a negative entry")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"[{op}] {where}: eps must be positive, got {eps}")
    if not 0 <= momentum <= 1:
        raise ValueError(f"[{op}] {where}: momentum must be in [0, 1], got {momentum}")
    return _Layer(
        L.BatchNorm(momentum=momentum, eps=eps),
        where,
        parameters={"gamma": gamma, "beta": beta},
        statistics={"running_mean": mean, "running_var": var},
    )


def _pop_mask(masks: dict, name: str, used: set):
    for key in (name, f"{name}.weight"):
        if key in masks:
            used.add(key)
            return masks[key]
    return None


def _layers_of_state_dict(
    state: Mapping, activation: Optional[str], alpha: float, masks: dict, used: set, op: str
) -> list[_Layer]:
    if activation is None:  # from_torch has checked a given one
        raise ValueError(
            f"[{op}] a state_dict holds no activations: pass activation= (one of "
            f"{sorted(L.ACTIVATIONS)}), the hidden activation of the MLP"
        )
    groups: dict[str, dict] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"[{op}] state_dict keys must be strings, got {type(key).__name__}")
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = value
    result: list[_Layer] = []
    linear = []  # indices into result of the linear layers
    for position, (prefix, g) in enumerate(groups.items()):
        names = set(g)
        where = f"'{prefix}' at position {position}" if prefix else f"position {position}"
        if names <= {"weight", "bias"} and "weight" in names and np.ndim(g["weight"]) == 2:
            where = f"Linear {where}"
            result.append(
                _linear_layer(g["weight"], g.get("bias"), _pop_mask(masks, prefix, used), where, op)
            )
            linear.append(len(result) - 1)
        elif (
            names <= {"weight_orig", "weight_mask", "bias"}
            and {"weight_orig", "weight_mask"} <= names
        ):
            where = f"pruned Linear {where}"
            mask = _pop_mask(masks, prefix, used)
            if mask is None:
                mask = g["weight_mask"]
            W = _array(g["weight_orig"], op, where, "weight_orig")
            M = _mask_array(mask, W.shape, op, where)
            result.append(_linear_layer(W * M, g.get("bias"), M, where, op))
            linear.append(len(result) - 1)
        elif (
            names <= {"crow_indices", "col_indices", "values", "bias", "shape"}
            and {
                "crow_indices",
                "col_indices",
                "values",
            }
            <= names
        ):
            where = f"SparseLinear {where}"
            if _pop_mask(masks, prefix, used) is not None:
                raise ValueError(
                    f"[{op}] {where}: a SparseLinear takes no mask (its pattern is its own)"
                )
            values = _array(g["values"], op, where, "values")
            indptr = _array(g["crow_indices"], op, where, "crow_indices").astype(np.int64)
            indices = _array(g["col_indices"], op, where, "col_indices").astype(np.int64)
            out, inp = _sparse_shape(g, indptr, result, where, op)
            _check_csr(indptr, indices, values.shape, (out, inp), op, where)
            csr = sp.csr_array(
                (values, indices.astype(np.int32), indptr.astype(np.int32)), (out, inp)
            )
            result.append(_sparse_layer(csr, g.get("bias"), where, op))
            linear.append(len(result) - 1)
        elif {"running_mean", "running_var"} <= names and names <= {
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        }:
            where = f"BatchNorm1d {where}"
            mean = _array(g["running_mean"], op, where, "running_mean")
            n = mean.shape[0] if mean.ndim == 1 else 0
            gamma = _array(g["weight"], op, where, "weight") if "weight" in g else np.ones(n)
            beta = _array(g["bias"], op, where, "bias") if "bias" in g else np.zeros(n)
            var = _array(g["running_var"], op, where, "running_var")
            # a state_dict does not hold eps and momentum: PyTorch's defaults
            result.append(_batch_norm_layer(gamma, beta, mean, var, 1e-5, 0.1, where, op))
        else:
            keys = ", ".join(f"{prefix}.{n}" if prefix else n for n in sorted(names))
            raise ValueError(
                f"[{op}] the state_dict entries {keys} (position {position}) are not a Linear, "
                f"pruned Linear, SparseLinear or BatchNorm1d; pass the module itself instead"
            )
    if not linear:
        raise ValueError(f"[{op}] the state_dict has no Linear layer (a 2-D 'weight')")
    # the hidden activation after every hidden Linear and its batch norm, as in truesparse.MLP
    act = L.ACTIVATIONS[activation]
    with_act = []
    for i, layer in enumerate(result):
        with_act.append(layer)
        later_linear = [j for j in linear if j > i]
        if later_linear and (i + 1 == later_linear[0]):
            spec = act(alpha=alpha) if act in (L.LeakyReLU, L.AllReLU) else act()
            with_act.append(_Layer(spec, f"the activation before {result[i + 1].where}"))
    return with_act


def _sparse_shape(group: dict, indptr, result: list, where: str, op: str) -> tuple[int, int]:
    """(out, in) of a SparseLinear in a state_dict: its ``shape`` entry, else the rows of its
    indptr and the width of the layer before it."""
    if "shape" in group:
        shape = _array(group["shape"], op, where, "shape")
        if shape.shape != (2,) or np.any(shape < 1) or np.any(shape != np.round(shape)):
            raise ValueError(f"[{op}] {where}: shape must be two positive integers, got {shape}")
        return int(shape[0]), int(shape[1])
    for layer in reversed(result):
        if isinstance(layer.spec, L.Linear):
            return indptr.shape[0] - 1, layer.W.shape[0]
        if "gamma" in layer.parameters:
            return indptr.shape[0] - 1, layer.parameters["gamma"].shape[0]
    raise ValueError(
        f"[{op}] {where}: the state_dict does not give its number of inputs (no 'shape' entry "
        f"and no layer before it)"
    )


def from_torch(
    source,
    *,
    activation: Optional[str] = None,
    alpha: float = 0.01,
    masks: Optional[Mapping[str, Any]] = None,
    loss: Optional[str] = None,
    label_smoothing: float = 0.0,
    fold_batch_norm: bool = False,
    weight_init: str = "he_normal",
    sparse_fan_in: str = "actual",
    dtype=np.float32,
    seed: int = 0,
    backend: str = "native",
    operand_dtype: str = "float32",
) -> Sequential:
    """A truesparse :class:`~truesparse.Sequential` with the forward of a PyTorch MLP.

    ``source`` is a module, an ``nn.Sequential`` (possibly nested) of ``Linear``, ``ReLU``,
    ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Identity``, ``Flatten``, ``BatchNorm1d``,
    ``Dropout``, ``Softmax``, ``LogSoftmax`` and this module's ``SparseLinear``, ``AllReLU``,
    ``SReLU``, ``Affine`` (what :func:`to_torch` makes); or the ``state_dict`` of an MLP (its
    ``Linear`` and ``BatchNorm1d`` entries in order; ``activation``/``alpha`` give the hidden
    activation, placed after every hidden Linear and its batch norm).

    A Linear layer's pattern is the nonzeros of its weight, or the 1s of its mask: from
    ``masks`` (name of the Linear, as in ``named_modules()`` or the state_dict prefix, with or
    without ``.weight`` -> 0/1 tensor of the weight's shape; the weight is then
    ``weight × mask``), or the ``weight_mask`` of ``torch.nn.utils.prune``. A full pattern
    gives a dense layer; a ``SparseLinear`` keeps its own pattern, explicit zeros included.

    ``loss`` (default: ``"cross_entropy"`` after a Softmax, ``"negative_log_likelihood"``
    after a LogSoftmax, else ``"softmax_cross_entropy"``; for a state_dict such a loss appends
    that last layer, as ``MLP`` does), ``label_smoothing``, ``weight_init``, ``sparse_fan_in``,
    ``dtype``, ``seed``, ``backend`` and ``operand_dtype`` are those of ``Sequential``.

    ``fold_batch_norm=True`` turns every BatchNorm1d into a truesparse ``Affine`` layer with
    its running statistics folded in (``γ/√(var + eps)``, ``β − γ·mean/√(var + eps)``): the
    same forward in evaluation mode. By default a BatchNorm1d becomes a truesparse
    ``BatchNorm`` with its γ, β, running mean and running variance.
    """
    op = "from_torch"
    # the options first, before the source is read
    if activation is not None:
        activation = choice(activation, L.ACTIVATIONS, "activation", op)
    alpha = real(alpha, "alpha", op)
    if loss is not None:
        loss = choice(loss, LOSSES, "loss", op)
    label_smoothing = real(label_smoothing, "label_smoothing", op, low=0, high=1)
    fold_batch_norm = flag(fold_batch_norm, "fold_batch_norm", op)
    weight_init = choice(weight_init, WEIGHT_INITS, "weight_init", op)
    sparse_fan_in = choice(sparse_fan_in, FAN_INS, "sparse_fan_in", op)
    dtype = float_dtype(dtype, op)
    seed = integer(seed, "seed", op, minimum=0, maximum=2**64 - 1)
    backend = choice(backend, BACKENDS, "backend", op)
    operand_dtype_kind(operand_dtype, dtype, backend, op)  # a known name, usable here
    if masks is None:
        masks = {}
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"[{op}] masks must be a dict of name -> 0/1 tensor, got {type(masks).__name__}"
        )
    masks = dict(masks)
    used: set = set()
    torch = sys.modules.get("torch")  # a torch module or tensor means torch is imported
    if torch is not None and isinstance(source, torch.nn.Module):
        if activation is not None:
            raise ValueError(
                f"[{op}] activation= is for a state_dict; a module's activations are its own"
            )
        parsed = _layers_of_module(source, masks, used, op)
    elif isinstance(source, Mapping):
        parsed = _layers_of_state_dict(source, activation, alpha, masks, used, op)
        if loss in LAST_LAYER:
            parsed.append(_Layer(LAST_LAYER[loss](), "the last layer"))
    else:
        raise TypeError(
            f"[{op}] source must be a torch.nn.Module or a state_dict (a mapping of names to "
            f"tensors), got {type(source).__name__}"
        )
    unused = sorted(set(masks) - used)
    if unused:
        raise ValueError(f"[{op}] masks names no Linear layer: {unused}")
    if not any(isinstance(p.spec, L.Linear) for p in parsed):
        raise ValueError(f"[{op}] the module has no Linear layer")
    if loss is None:
        last = parsed[-1].spec
        loss = next(
            (name for name, cls in LAST_LAYER.items() if isinstance(last, cls)),
            "softmax_cross_entropy",
        )
    if fold_batch_norm:
        parsed = [_folded(p) if isinstance(p.spec, L.BatchNorm) else p for p in parsed]
    # widths: every layer must take the width the previous one gives
    inputs = None
    width = None
    for p in parsed:
        if isinstance(p.spec, L.Linear):
            inp = p.W.shape[1]
            if width is not None and inp != width:
                raise ValueError(f"[{op}] {p.where} takes {inp} inputs but gets {width}")
            inputs = inp if inputs is None else inputs
            width = p.W.shape[0]
        elif "gamma" in p.parameters:
            n = p.parameters["gamma"].shape[0]
            if width is not None and n != width:
                raise ValueError(f"[{op}] {p.where} has {n} features but gets {width}")
            inputs = n if inputs is None else inputs
            width = n
    # All-ReLU: the engine numbers its activation layers; keep each layer's slope
    activations = 0
    for p in parsed:
        if isinstance(p.spec, tuple(L.ACTIVATIONS.values())):
            activations += 1
            if p.slope is not None:
                alpha_here = p.slope if activations % 2 == 1 else -p.slope
                p.spec = L.AllReLU(alpha=alpha_here)
    try:
        model = Sequential.__new__(Sequential)
        model._setup(  # no pattern sampled nor weight drawn: set_weights below gives them all
            inputs,
            [p.spec for p in parsed],
            draw_weights=False,
            loss=loss,
            label_smoothing=label_smoothing,
            weight_init=weight_init,
            sparse_fan_in=sparse_fan_in,
            dtype=dtype,
            seed=seed,
            backend=backend,
            operand_dtype=operand_dtype,
        )
        for p, module in zip(parsed, model.modules):
            if isinstance(module, LinearView):
                module.set_weights(p.W, p.b)
            else:
                for name, value in p.parameters.items():
                    module.set(name, value)
                for name, value in (p.statistics or {}).items():
                    module.set_statistic(name, value)
    except (ValueError, TypeError) as e:  # Sequential's own checks: loss, dtype, seed, ...
        raise type(e)(f"[{op}] {e}") from e
    return model


def _folded(p: _Layer) -> _Layer:
    """A batch norm layer as the Affine layer of its evaluation forward."""
    gamma, beta = (p.parameters[k].astype(np.float64) for k in ("gamma", "beta"))
    mean, var = (p.statistics[k].astype(np.float64) for k in ("running_mean", "running_var"))
    scale = gamma / np.sqrt(var + p.spec.eps)
    return _Layer(L.Affine(), p.where, parameters={"gamma": scale, "beta": beta - scale * mean})


# -- npz ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NpzWeights:
    """What :func:`load_npz` reads: ``layers``, one ``(W, b)`` per linear layer (W a
    ``scipy.sparse.csr_array`` (out, in), b an ndarray (out,)); ``modules``, one dict per
    layer of the model in order (the architecture entry, plus ``"arrays"``: the layer's
    parameters and statistics by name, and for a linear layer ``"W"``, ``"b"``); and
    ``architecture``, the parsed JSON entry. Iterating, ``len`` and indexing go over
    ``layers``."""

    layers: list
    modules: list
    architecture: dict

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]


def export_npz(
    model: Sequential,
    path,
    *,
    compressed: bool = False,
) -> None:
    """Write every layer of ``model`` to one ``.npz`` file at ``path`` (atomically; exactly
    that name, no suffix added), readable with ``np.load(path, allow_pickle=False)``.

    Keys (``l`` counts the linear layers from 0, ``m`` all layers): ``layer{l}/data``,
    ``layer{l}/indices``, ``layer{l}/indptr``, ``layer{l}/shape`` (the CSR arrays of W, out ×
    in, as scipy's; a dense layer stores its full pattern), ``layer{l}/bias``;
    ``module{m}/<name>`` for the parameters and statistics of the other layers (``gamma``,
    ``beta``, ``running_mean``, ``running_var``, ``t``); ``architecture``, a JSON string
    describing the model and its layers (docs/interop.md has the layout), with each layer's
    spec (``model.specs``). ``compressed=True writes a zip-compressed file (``np.savez_compressed``).
    Non-finite weights are an error (such a file could not be loaded back into a model).
    """
    op = "export_npz"
    check_model(model, op)
    path = file_to_write(path, op)
    compressed = flag(compressed, "compressed", op)
    specs = model.specs
    arrays: dict[str, np.ndarray] = {}
    entries = []
    li = -1  # the index of the linear layer
    for m, (spec, module) in enumerate(zip(specs, model.modules)):
        entry: dict[str, Any] = {"kind": module.kind}
        if isinstance(module, LinearView):
            li += 1
            W, b = module.W, module.b
            if not module.is_sparse:
                W = sp.csr_array(
                    (
                        W.ravel(),
                        np.tile(np.arange(W.shape[1], dtype=np.int32), W.shape[0]),
                        np.arange(0, W.size + 1, W.shape[1], dtype=np.int32),
                    ),
                    shape=W.shape,
                )
            if not (np.all(np.isfinite(W.data)) and np.all(np.isfinite(b))):
                raise ValueError(f"[{op}] layer {m} (Linear {li}) contains NaN or infinity")
            arrays[f"layer{li}/data"] = np.ascontiguousarray(W.data)
            arrays[f"layer{li}/indices"] = np.asarray(W.indices, np.int32)
            arrays[f"layer{li}/indptr"] = np.asarray(W.indptr, np.int32)
            arrays[f"layer{li}/shape"] = np.array(W.shape, np.int64)
            arrays[f"layer{li}/bias"] = np.ascontiguousarray(b)
            entry["layer"] = li
            entry["out"], entry["in"] = (int(n) for n in module.shape)
            entry["sparse"] = bool(module.is_sparse)
            entry["nnz"] = int(module.nnz)
        else:
            named = dict(module.parameters)
            if module.kind == "batch_norm":
                named.update(running_mean=module.running_mean, running_var=module.running_var)
            for name, value in named.items():
                if not np.all(np.isfinite(value)):
                    raise ValueError(
                        f"[{op}] layer {m} ({module.kind}) {name} contains NaN or infinity"
                    )
                arrays[f"module{m}/{name}"] = np.ascontiguousarray(value)
            entry["arrays"] = sorted(named)
        entry["spec"] = spec_to_json(spec)
        entries.append(entry)
    architecture = {
        "format": NPZ_FORMAT,
        "version": NPZ_VERSION,
        "truesparse": __version__,
        "inputs": int(model.sizes[0]),
        "outputs": int(model.sizes[-1]),
        "dtype": model.dtype.name,
        "loss": model.loss,
        "label_smoothing": model.label_smoothing,
        "modules": entries,
    }
    arrays["architecture"] = np.array(json.dumps(architecture, allow_nan=False))
    save = np.savez_compressed if compressed else np.savez
    with atomic_file(path, "wb") as f:
        save(f, **arrays)


def load_npz(path) -> NpzWeights:
    """Read a file of :func:`export_npz` (with ``allow_pickle=False``): the weights of every
    linear layer as ``(scipy.sparse.csr_array, bias)`` pairs and every other layer's arrays
    (see :class:`NpzWeights`). A malformed file is a ValueError."""
    op = "load_npz"
    path = file_to_read(path, op)
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"[{op}] {path!r} is not a .npz file readable without pickle: {e}") from e
    if not hasattr(npz, "files"):
        raise ValueError(f"[{op}] {path!r} is a .npy file, not a .npz archive")
    with npz:
        if "architecture" not in npz.files:
            raise ValueError(
                f"[{op}] {path!r} has no 'architecture' entry; not a file of export_npz"
            )
        try:
            architecture = json.loads(str(npz["architecture"][()]))
        except (ValueError, TypeError) as e:
            raise ValueError(f"[{op}] the architecture entry is not JSON: {e}") from e
        if not isinstance(architecture, dict) or architecture.get("format") != NPZ_FORMAT:
            raise ValueError(f"[{op}] {path!r} is not a {NPZ_FORMAT} file")
        if architecture.get("version") != NPZ_VERSION:
            raise ValueError(
                f"[{op}] {path!r} has format version {architecture.get('version')!r}; this "
                f"truesparse reads version {NPZ_VERSION}"
            )
        entries = architecture.get("modules")
        if not isinstance(entries, list):
            raise ValueError(f"[{op}] the architecture has no list of modules")

        def get(key, kinds="fiub"):
            if key not in npz.files:
                raise ValueError(f"[{op}] {path!r} has no entry {key!r}")
            try:
                a = npz[key]
            except Exception as e:  # object arrays (pickle), a damaged member
                raise ValueError(f"[{op}] entry {key!r} cannot be read: {e}") from e
            if a.dtype.kind not in kinds:
                raise ValueError(f"[{op}] entry {key!r} has dtype {a.dtype}")
            return a

        layers, modules = [], []
        for m, entry in enumerate(entries):
            if not isinstance(entry, dict) or "kind" not in entry:
                raise ValueError(f"[{op}] module {m} of the architecture has no kind")
            module = dict(entry)
            if entry["kind"] == "linear":
                li = entry.get("layer")
                if li != len(layers):
                    raise ValueError(
                        f"[{op}] module {m}: linear layer {li!r}, expected {len(layers)}"
                    )
                data, indices, indptr = (
                    get(f"layer{li}/data", "f"),
                    get(f"layer{li}/indices", "iu"),
                    get(f"layer{li}/indptr", "iu"),
                )
                shape = get(f"layer{li}/shape", "iu")
                if shape.shape != (2,) or np.any(shape < 1):
                    raise ValueError(f"[{op}] layer{li}/shape must be two positive integers")
                shape = (int(shape[0]), int(shape[1]))
                _check_csr(indptr, indices, data.shape, shape, op, f"layer{li}")
                b = get(f"layer{li}/bias", "f")
                if b.shape != (shape[0],):
                    raise ValueError(
                        f"[{op}] layer{li}/bias has shape {b.shape}, expected ({shape[0]},)"
                    )
                W = sp.csr_array((data, indices, indptr), shape=shape)
                layers.append((W, b))
                module["arrays"] = {"W": W, "b": b}
            else:
                module["arrays"] = {
                    name: get(f"module{m}/{name}") for name in entry.get("arrays", [])
                }
            modules.append(module)
    return NpzWeights(layers=layers, modules=modules, architecture=architecture)
