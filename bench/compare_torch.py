"""Seconds per training epoch: truesparse vs PyTorch dense, dense x mask, and CSR.

One epoch of an MLP 3072-1024-512-10 (ReLU, ReLU, logits), softmax cross entropy, SGD with
Nesterov momentum 0.9, lr 0.01, batch 100, on synthetic CIFAR-10-shaped data, at several
overall densities (per-layer densities by Erdos-Renyi). Each (framework, density) runs in its
own subprocess (`--worker run`) so that peak RSS is clean and one framework's thread pools
never touch another's. The CSR framework stores every layer of density < 1 as a
torch.sparse_csr_tensor with a hand-written autograd.Function (see csr_linear). Before timing,
`--worker check` verifies that truesparse and PyTorch (masked and CSR) compute the same thing
(logits, loss, gradients, two Nesterov steps) from identical weights.
See bench/README.md. PyTorch is needed only here, never to build or test truesparse.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

SIZES = [3072, 1024, 512, 10]  # CIFAR-10 inputs, two hidden ReLU layers, 10 logits
CLASSES = SIZES[-1]
BATCH = 100
LR, MOMENTUM = 0.01, 0.9
DEFAULT_DENSITIES = "0.001,0.01,0.05,0.1,0.2,0.5,1"
FRAMEWORKS = ("truesparse", "dense", "masked", "csr")
SPARSE_RUNS = ("truesparse", "masked", "csr")  # the frameworks run at every density
RESULT_TAG = "@@RESULT "  # prefix of the one stdout line a worker returns its JSON on


# ---------------------------------------------------------------------------------------------
# Shared by all workers (NumPy only, so the torch workers never import truesparse)
# ---------------------------------------------------------------------------------------------


def er_densities(sizes: list[int], density: float) -> list[float]:
    """Erdos-Renyi allocation of an overall density (docs/sparse-layers.md#density-allocation).

    Reference copy for the PyTorch workers; the check worker asserts it equals
    ts.er_densities, and the truesparse worker uses ts.er_densities itself.
    """
    shapes = list(zip(sizes[1:], sizes[:-1]))  # (n_out, n_in) per layer
    numel = [o * i for o, i in shapes]
    raw = [(o + i) / (o * i) for o, i in shapes]
    dense: set[int] = set()
    while True:
        budget = density * sum(numel) - sum(numel[k] for k in dense)
        divisor = sum(raw[k] * numel[k] for k in range(len(shapes)) if k not in dense)
        eps = budget / divisor if divisor > 0 else 0.0
        over = [k for k in range(len(shapes)) if k not in dense and eps * raw[k] > 1.0]
        if not over:
            return [1.0 if k in dense else eps * raw[k] for k in range(len(shapes))]
        dense.update(over)


def layer_nnz(sizes: list[int], densities: list[float]) -> list[int]:
    """Target stored weights per layer: round(d_l * n_in * n_out)."""
    return [round(d * o * i) for d, o, i in zip(densities, sizes[1:], sizes[:-1])]


def epoch_flops(sizes: list[int], nnz: list[int], examples: int) -> float:
    """Multiply-add flops of one epoch: 2*nnz*N for the forward product, 2*nnz*N for the
    weight gradient, and 2*nnz*N for the input gradient of every layer but the first."""
    per_example = sum((4 if k == 0 else 6) * n for k, n in enumerate(nnz))
    return float(per_example) * examples


def make_data(examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic CIFAR-10-shaped data: X (N, 3072) float32, y (N,) int64 in [0, 10).

    x = noise + mu[y], noise ~ N(0, 1), class means mu ~ N(0, 0.25**2) per feature: learnable
    (accuracy well above chance after one epoch) yet not trivially separable. Generated in
    chunks so that the only large allocation is X itself.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=examples, dtype=np.int64)
    mu = (0.25 * rng.standard_normal((CLASSES, SIZES[0]))).astype(np.float32)
    X = np.empty((examples, SIZES[0]), dtype=np.float32)
    chunk = 5000
    for s in range(0, examples, chunk):
        rng.standard_normal(out=X[s : s + chunk], dtype=np.float32)
        X[s : s + chunk] += mu[y[s : s + chunk]]
    return X, y


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def set_thread_env(threads: int) -> None:
    """Thread count for every OpenMP/BLAS runtime a worker might load (set before importing)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


# ---------------------------------------------------------------------------------------------
# PyTorch models: dense, and dense x mask
# ---------------------------------------------------------------------------------------------


def import_torch(threads: int):
    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)  # allowed once, before any parallel work
    return torch


def torch_mlp(torch, sizes: list[int]):
    layers = []
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_linears(model) -> list:
    return [m for m in model if hasattr(m, "weight")]


def random_masks(torch, model, nnz: list[int]) -> list:
    """One float 0/1 mask per linear weight with exactly nnz[l] ones at uniform positions.

    Also rescales each weight by 1/sqrt(layer density), so that the initial variance
    matches the sparse fan-in (as truesparse's sparse_fan_in="actual" does); without it
    PyTorch's default init times a 1 % mask barely trains. It does not change the cost.
    """
    masks = []
    with torch.no_grad():
        for lin, k in zip(torch_linears(model), nnz):
            m = torch.zeros(lin.weight.numel())
            m[torch.randperm(lin.weight.numel())[:k]] = 1.0
            masks.append(m.view_as(lin.weight))
            lin.weight.mul_((lin.weight.numel() / max(k, 1)) ** 0.5)
    return masks


# ---------------------------------------------------------------------------------------------
# PyTorch CSR layers: torch.sparse_csr_tensor weights, a hand-written autograd.Function
# ---------------------------------------------------------------------------------------------

# Kernel choices, measured with torch 2.13.0+cpu (MKL), one thread, batch 100, layer
# 3072->1024 at the ER densities of overall 0.01 (nnz 24,461) and 0.1 (nnz 244,610):
# - forward, orientation "W X^T": Y^T = addmm(b, W_csr (K, D), X^T) -> (K, B), returned as
#   its transpose (B, K): 0.31-0.48 ms / 3.3-3.5 ms. The other orientation, Y = X W^T with a
#   CSR of W^T (D, K) on the right of a dense product (torch.sparse.mm(X, Wt_csr)), took
#   2.2 ms / 13 ms (addmm(b, X, Wt_csr) 3.8 ms / 25 ms): 4-7x slower, not used. Returning
#   the (K, B) result as a transposed view keeps the hidden activations feature-major, so the
#   next layer's X^T is contiguous (0.31 ms instead of 0.48 ms at nnz 24,461).
# - grad_X = (W^T DY^T)^T with torch.sparse.mm(Wt_csr (D, K), DY^T): 0.42 ms / 2.6 ms;
#   torch.mm(DY, W_csr) (dense @ CSR) 2.5 ms / 23 ms. The CSR of W^T has a fixed pattern
#   (crow_t, col_t, computed once) and its values are W's values gathered by a fixed
#   permutation (index_select, 0.01 ms / 0.16 ms), redone in every backward, i.e. once per
#   step after the optimizer changed the values; W.t().to_sparse_csr() each step costs
#   1.4 ms / 8.5 ms instead.
# - grad_W on the pattern only: torch.sparse.sampled_addmm(W_csr, DY^T, X, beta=0), whose
#   result has W's crow/col indices, so its values() are the gradient of W's values in order:
#   0.36-0.54 ms / 3.3 ms (the dense DY^T X alone takes 8 ms).
# - the data batch's X^T: one explicit transposing copy per step, kept for the backward
#   (1.07 ms per step for layer 0's forward + weight gradient, against 1.27 ms when addmm and
#   sampled_addmm each transpose X internally).
# The optimizer is torch.optim.SGD(nesterov=True) itself, on the values (a dense 1-D
# Parameter of nnz entries, so its momentum buffer has nnz entries) and the biases, with
# fused=True: 33 us per step at density 0.01 against 69-86 us for the foreach/for-loop
# implementations that the dense and masked frameworks use (same update, one kernel).


def _csr_linear_function(torch):
    class CSRLinearFunction(torch.autograd.Function):
        """Y = X W^T + b for a CSR weight W (K, D) given by its values (nnz,) on a fixed
        pattern; gradients for X, the values (on the pattern only) and b."""

        @staticmethod
        def forward(ctx, x, values, bias, layer):
            # X^T (D, B) contiguous: a view for the hidden layers (feature-major activations),
            # one transposing copy per step for the data batch, reused by the backward
            xt = x.t().contiguous()
            ctx.save_for_backward(xt, values)
            ctx.layer = layer
            return torch.addmm(bias.unsqueeze(1), layer.csr(values), xt).t()  # (B, K) view

        @staticmethod
        def backward(ctx, dy):
            xt, values = ctx.saved_tensors
            layer = ctx.layer
            dx = dvalues = dbias = None
            if ctx.needs_input_grad[0]:  # not for the first layer (the data)
                dx = torch.sparse.mm(layer.csr_t(values), dy.t()).t()
            if ctx.needs_input_grad[1]:
                dvalues = torch.sparse.sampled_addmm(
                    layer.csr(values), dy.t(), xt.t(), beta=0.0, alpha=1.0
                ).values()
            if ctx.needs_input_grad[2]:
                dbias = dy.sum(0)
            return dx, dvalues, dbias, None

    return CSRLinearFunction


def csr_linear(torch, weight, mask, bias):
    """A torch.nn.Module with the stored entries of weight * mask (mask: float 0/1, (K, D))
    as a CSR weight, the pattern being mask's nonzeros, and a copy of bias."""
    Function = _csr_linear_function(torch)

    class CSRLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            K, D = weight.shape
            self.shape = (K, D)
            with torch.no_grad():
                flat = mask.reshape(-1).nonzero().squeeze(1)  # row-major = CSR order
                counts = (mask != 0).sum(1)
                crow = torch.zeros(K + 1, dtype=torch.int64)
                torch.cumsum(counts, 0, out=crow[1:])
                self.crow, self.col = crow, flat % D
                self.values = torch.nn.Parameter(weight.reshape(-1)[flat].clone())
                self.bias = torch.nn.Parameter(bias.detach().clone())
                # pattern of W^T and the permutation taking W's values to W^T's order
                order = torch.arange(flat.numel(), dtype=torch.float64)
                t = self.csr(order).t().to_sparse_csr()
                self.crow_t, self.col_t = t.crow_indices(), t.col_indices()
                self.perm = t.values().to(torch.int64)

        def csr(self, values):
            return torch.sparse_csr_tensor(
                self.crow, self.col, values, self.shape, check_invariants=False
            )

        def csr_t(self, values):
            return torch.sparse_csr_tensor(
                self.crow_t,
                self.col_t,
                torch.index_select(values, 0, self.perm),
                self.shape[::-1],
                check_invariants=False,
            )

        @property
        def nnz(self) -> int:
            return self.values.numel()

        def dense_weight(self):
            with torch.no_grad():
                return self.csr(self.values.detach()).to_dense()

        def dense_grad(self):
            return self.csr(self.values.grad).to_dense()

        def forward(self, x):
            return Function.apply(x, self.values, self.bias, self)

    return CSRLinear()


def csr_mlp(torch, model, masks: list):
    """The MLP `model` with every layer whose mask is not all ones as a CSR layer (its
    weights times its mask on the mask's pattern); the others stay nn.Linear (copied)."""
    import copy

    layers = []
    it = iter(masks)
    for m in model:
        if hasattr(m, "weight"):
            mask = next(it)
            if bool((mask != 0).all()):
                layers.append(copy.deepcopy(m))
            else:
                layers.append(csr_linear(torch, m.weight.detach(), mask, m.bias.detach()))
        else:
            layers.append(copy.deepcopy(m))
    return torch.nn.Sequential(*layers)


def csr_layers(model) -> list:
    """The weight layers (CSR or nn.Linear) of a torch_mlp or csr_mlp."""
    return [m for m in model if hasattr(m, "bias")]


def torch_nnz(model) -> list[int]:
    """Stored weights per layer: a CSR layer's nnz, a dense layer's nonzeros."""
    return [
        int(m.nnz) if hasattr(m, "nnz") else int((m.weight != 0).sum()) for m in csr_layers(model)
    ]


CSR_KERNELS = {
    "forward": "Y = addmm(b, W_csr (K, D), X^T)^T",
    "grad_X": "sparse.mm(Wt_csr (D, K), DY^T)^T, Wt_csr values gathered by a fixed permutation",
    "grad_W": "sparse.sampled_addmm(W_csr, DY^T, X, beta=0).values()",
    "optimizer": "torch.optim.SGD(nesterov=True, fused=True) on the CSR values and biases",
}


class TorchTrainer:
    """The training loop of the PyTorch variants; masks=None is plain dense training, or the
    CSR framework when model is a csr_mlp (fused=True: the fused SGD kernel, same update).

    Masked variant (as mask-based sparse training libraries do it, see README): the weights
    are multiplied by their mask once after init; in every step the weight gradients are
    multiplied by the mask before optimizer.step() and the weights again after it, all in
    place. Biases are not masked. The forward and backward products are dense.
    """

    def __init__(self, torch, model, masks=None, seed=0, fused=False):
        self.torch, self.model, self.masks = torch, model, masks
        self.weights = [lin.weight for lin in torch_linears(model)]
        kw = {"fused": True} if fused else {}  # one kernel per step instead of foreach's few
        self.opt = torch.optim.SGD(
            model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, **kw
        )
        self.gen = torch.Generator().manual_seed(seed)
        if masks is not None:
            with torch.no_grad():
                for w, m in zip(self.weights, masks):
                    w.mul_(m)

    def step(self, xb, yb):
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(xb)  # (B, 10)
        loss = torch.nn.functional.cross_entropy(logits, yb)  # batch mean
        loss.backward()
        if self.masks is not None:
            for w, m in zip(self.weights, self.masks):
                w.grad.mul_(m)
        self.opt.step()
        if self.masks is not None:
            with torch.no_grad():
                for w, m in zip(self.weights, self.masks):
                    w.mul_(m)
        return loss, logits

    def epoch(self, X, y, shuffle=True):
        """One pass in batches of BATCH; returns the running mean loss and accuracy (as
        truesparse's fit history reports them)."""
        torch = self.torch
        n = X.shape[0]
        order = torch.randperm(n, generator=self.gen) if shuffle else torch.arange(n)
        total_loss, correct = 0.0, 0
        for s in range(0, n, BATCH):
            idx = order[s : s + BATCH]
            # (B, 3072), (B,); index_select gathers twice as fast as X[idx]
            xb, yb = torch.index_select(X, 0, idx), torch.index_select(y, 0, idx)
            loss, logits = self.step(xb, yb)
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        return total_loss / n, correct / n

    def evaluate(self, X, y):
        torch = self.torch
        with torch.no_grad():
            logits = self.model(X)
            loss = torch.nn.functional.cross_entropy(logits, y).item()
            acc = (logits.argmax(1) == y).float().mean().item()
        return {"loss": loss, "accuracy": acc}


# ---------------------------------------------------------------------------------------------
# Worker: train one framework at one density, validate, time
# ---------------------------------------------------------------------------------------------


def worker_run(args) -> dict:
    set_thread_env(args.threads)
    fw, d = args.framework, args.density
    X, y = make_data(args.examples, args.seed)
    n_eval = min(args.examples, 5000)
    n_warm = min(args.examples, args.warmup_batches * BATCH)
    res: dict = {"framework": fw, "density": d, "threads": args.threads}

    if fw == "truesparse":
        import truesparse as ts

        ts.set_num_threads(args.threads)
        res["version"] = ts.__version__
        rss0 = peak_rss_mb()
        dens = [float(v) for v in ts.er_densities(SIZES, d)]
        kw = {"backend": args.ts_backend} if args.ts_backend else {}
        model = ts.MLP(SIZES, density=d, seed=args.seed, **kw)
        res["backend"] = args.ts_backend or "default"
        opt = ts.SGD(lr=LR, momentum=MOMENTUM, nesterov=True)
        actual_nnz = [int(L.nnz) for L in model.layers]

        def evaluate():
            return model.evaluate(X[:n_eval], y[:n_eval])

        fit_times = []  # the epoch time truesparse itself reports, beside our wall clock

        def train_epoch(Xs, ys):
            h = model.fit(Xs, ys, epochs=1, batch_size=BATCH, optimizer=opt, verbose=0)
            fit_times.append(float(h["time"][-1]))
            return float(h["loss"][-1]), float(h["accuracy"][-1])

    else:
        torch = import_torch(args.threads)
        torch.manual_seed(args.seed)
        res["version"] = torch.__version__
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)  # shares memory with X, y
        rss0 = peak_rss_mb()
        sparse = fw in ("masked", "csr")
        dens = er_densities(SIZES, d) if sparse else [1.0] * (len(SIZES) - 1)
        model = torch_mlp(torch, SIZES)
        masks = random_masks(torch, model, layer_nnz(SIZES, dens)) if sparse else None
        if fw == "csr":  # the masked framework's pattern and initial values, as CSR
            model, masks = csr_mlp(torch, model, masks), None
            res["csr_kernels"] = CSR_KERNELS
        trainer = TorchTrainer(torch, model, masks, seed=args.seed, fused=fw == "csr")
        actual_nnz = torch_nnz(model)

        def evaluate():
            return trainer.evaluate(Xt[:n_eval], yt[:n_eval])

        def train_epoch(Xs, ys):
            return trainer.epoch(Xt[: Xs.shape[0]], yt[: Xs.shape[0]])

    target_nnz = layer_nnz(SIZES, dens)
    res.update(densities=dens, target_nnz=target_nnz, nnz=actual_nnz)
    before = evaluate()
    train_epoch(X[:n_warm], y[:n_warm])  # warm-up: thread pools, allocator, caches

    seconds, train_loss, train_acc = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        loss, acc = train_epoch(X, y)
        seconds.append(time.perf_counter() - t0)
        train_loss.append(loss)
        train_acc.append(acc)

    after = evaluate()
    problems = []  # validation: learnt something, kept the pattern
    if fw == "truesparse":
        res["history_time_s"] = fit_times[1:]  # timed epochs only
    if fw == "masked":
        outside = [int(((w != 0) & (m == 0)).sum()) for w, m in zip(trainer.weights, masks)]
        if any(outside):
            problems.append(f"masked: nonzero weights outside the mask per layer: {outside}")
        actual_nnz = torch_nnz(model)
    elif fw == "csr":
        actual_nnz = torch_nnz(model)
    elif fw == "truesparse":
        actual_nnz = [int(L.nnz) for L in model.layers]

    if not after["loss"] < before["loss"]:
        problems.append(f"eval loss did not decrease: {before['loss']:.4f} -> {after['loss']:.4f}")
    chance = 1.0 / CLASSES
    if not after["accuracy"] > chance + 3 * np.sqrt(chance * (1 - chance) / n_eval):
        problems.append(f"eval accuracy {after['accuracy']:.4f} not above chance")
    if fw in ("truesparse", "csr") and actual_nnz != target_nnz:
        problems.append(f"nnz per layer {actual_nnz} != target {target_nnz}")

    flops = epoch_flops(SIZES, target_nnz, args.examples)
    median = statistics.median(seconds)
    res.update(
        nnz=actual_nnz,
        seconds=seconds,
        median_s=median,
        gflops=flops / median / 1e9,
        train_loss=train_loss,
        train_accuracy=train_acc,
        eval_before=before,
        eval_after=after,
        peak_rss_mb=peak_rss_mb(),
        rss_before_model_mb=rss0,
        valid=not problems,
        problems=problems,
    )
    return res


# ---------------------------------------------------------------------------------------------
# Worker: cross-check truesparse against PyTorch from identical weights
# ---------------------------------------------------------------------------------------------


def checked_difference(actual, expected, what) -> float:
    """Float32 comparison with the project's one tolerance check (truesparse.reference.testing,
    rtol = atol = 1e-4). Returns the largest absolute difference, for the report."""
    from truesparse.reference.testing import assert_close as check

    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    try:
        check(actual, expected, rtol=1e-4, atol=1e-4)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None
    return float(np.abs(actual - expected).max(initial=0.0))


def worker_check(args) -> dict:
    """Same weights in truesparse and PyTorch (masked, and CSR: csr_mlp of the same weights
    and masks) -> same logits, loss, gradients, and weights after two Nesterov steps (fit on
    200 examples, shuffle=False)."""
    set_thread_env(args.threads)
    import scipy.sparse as sp

    import truesparse as ts

    torch = import_torch(args.threads)
    ts.set_num_threads(args.threads)
    X, y = make_data(200, args.seed + 1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    report: dict = {"er_densities": {}, "models": {}}

    for d in args.densities:  # our reference allocation == the engine's
        ours, theirs = (
            er_densities(SIZES, d),
            [float(v) for v in ts.er_densities(SIZES, d)],
        )
        if not np.allclose(ours, theirs, rtol=1e-9, atol=0):
            raise AssertionError(f"er_densities({d}): reference {ours} != truesparse {theirs}")
        report["er_densities"][str(d)] = theirs

    def dense_of(W):
        return W.toarray() if sp.issparse(W) else np.asarray(W)

    for d in sorted({min(args.densities), 0.01, 1.0}):
        model = ts.MLP(SIZES, density=d, seed=args.seed)
        tm = torch_mlp(torch, SIZES)
        masks = []
        with torch.no_grad():
            for L, lin in zip(model.layers, torch_linears(tm)):
                W = dense_of(L.W)  # (out, in)
                lin.weight.copy_(torch.from_numpy(W.astype(np.float32)))
                lin.bias.copy_(torch.from_numpy(np.asarray(L.b, dtype=np.float32)))
                m = np.zeros(W.shape, dtype=np.float32)
                if sp.issparse(L.W):
                    coo = sp.coo_array(L.W)
                    m[coo.row, coo.col] = 1.0
                else:
                    m[:] = 1.0
                masks.append(torch.from_numpy(m))
        cm = csr_mlp(torch, tm, masks)  # the csr framework, from the same weights
        n_csr = sum(hasattr(m, "nnz") for m in cm)
        errs = {}
        # forward: identical logits
        logits_ts = model.forward(X[:BATCH])
        errs["logits"] = checked_difference(
            logits_ts, tm(Xt[:BATCH]).detach().numpy(), f"d={d} logits"
        )
        errs["csr logits"] = checked_difference(
            logits_ts, cm(Xt[:BATCH]).detach().numpy(), f"d={d} csr logits"
        )
        # backward: loss and gradients on the pattern
        loss_ts = model.backward(X[:BATCH], y[:BATCH])
        tm.zero_grad()
        loss_t = torch.nn.functional.cross_entropy(tm(Xt[:BATCH]), yt[:BATCH])
        loss_t.backward()
        errs["loss"] = checked_difference(loss_ts, loss_t.item(), f"d={d} loss")
        cm.zero_grad()
        loss_c = torch.nn.functional.cross_entropy(cm(Xt[:BATCH]), yt[:BATCH])
        loss_c.backward()
        errs["csr loss"] = checked_difference(loss_ts, loss_c.item(), f"d={d} csr loss")
        for k, (L, lin, m, c) in enumerate(
            zip(model.layers, torch_linears(tm), masks, csr_layers(cm))
        ):
            errs[f"DW{k}"] = checked_difference(
                dense_of(L.DW), (lin.weight.grad * m).numpy(), f"d={d} layer {k} DW"
            )
            errs[f"Db{k}"] = checked_difference(L.Db, lin.bias.grad.numpy(), f"d={d} layer {k} Db")
            dw_c = c.dense_grad() if hasattr(c, "nnz") else c.weight.grad
            errs[f"csr DW{k}"] = checked_difference(
                dense_of(L.DW), dw_c.numpy(), f"d={d} layer {k} csr DW"
            )
            errs[f"csr Db{k}"] = checked_difference(
                L.Db, c.bias.grad.numpy(), f"d={d} layer {k} csr Db"
            )
        # two Nesterov steps: truesparse fit vs the masked and the CSR PyTorch loops
        trainer = TorchTrainer(torch, tm, masks)
        trainer.epoch(Xt, yt, shuffle=False)
        TorchTrainer(torch, cm, fused=True).epoch(Xt, yt, shuffle=False)
        model.fit(
            X,
            y,
            epochs=1,
            batch_size=BATCH,
            optimizer=ts.SGD(lr=LR, momentum=MOMENTUM, nesterov=True),
            shuffle=False,
            verbose=0,
        )
        for k, (L, lin) in enumerate(zip(model.layers, torch_linears(tm))):
            errs[f"W{k} after 2 steps"] = checked_difference(
                dense_of(L.W),
                lin.weight.detach().numpy(),
                f"d={d} layer {k} W after 2 steps",
            )
            errs[f"b{k} after 2 steps"] = checked_difference(
                L.b, lin.bias.detach().numpy(), f"d={d} layer {k} b after 2 steps"
            )
        for k, (L, c) in enumerate(zip(model.layers, csr_layers(cm))):
            w_c = c.dense_weight() if hasattr(c, "nnz") else c.weight.detach()
            errs[f"csr W{k} after 2 steps"] = checked_difference(
                dense_of(L.W), w_c.numpy(), f"d={d} layer {k} csr W after 2 steps"
            )
            errs[f"csr b{k} after 2 steps"] = checked_difference(
                L.b, c.bias.detach().numpy(), f"d={d} layer {k} csr b after 2 steps"
            )
        report["models"][str(d)] = {
            "nnz": [int(L.nnz) for L in model.layers],
            "csr_layers": n_csr,
            "max_abs_diff": errs,
        }
    report["torch"] = torch.__version__
    report["truesparse"] = ts.__version__
    return report


# ---------------------------------------------------------------------------------------------
# Driver: one subprocess per (framework, density), table, JSON + Markdown
# ---------------------------------------------------------------------------------------------


def cpu_busy_seconds() -> float:
    """CPU seconds all processes of the machine have spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def other_load(seconds: float = 2.0) -> float:
    """Cores kept busy by other processes over the next `seconds` (the driver sleeps)."""
    b0, t0 = cpu_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (cpu_busy_seconds() - b0) / (time.perf_counter() - t0)


def wait_idle(max_other: float, max_wait: float) -> float:
    """Wait (up to max_wait s) until other processes use at most max_other cores."""
    deadline = time.perf_counter() + max_wait
    load = other_load()
    while load > max_other and time.perf_counter() < deadline:
        log(f"  machine busy ({load:.2f} cores used by other processes), waiting ...")
        time.sleep(20)
        load = other_load()
    return load


def spawn(args, worker: str, extra: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", worker]
    cmd += ["--threads", str(args.threads), "--examples", str(args.examples)]
    cmd += ["--repeats", str(args.repeats), "--seed", str(args.seed)]
    cmd += [
        "--warmup-batches",
        str(args.warmup_batches),
        "--densities",
        args.densities_str,
    ]
    if args.ts_backend:
        cmd += ["--ts-backend", args.ts_backend]
    cmd += extra
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    load_before = wait_idle(args.max_other_load, args.max_wait) if args.wait_idle else None
    t0, busy0, own0 = time.perf_counter(), cpu_busy_seconds(), children_cpu_seconds()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    # cores used by other processes while the worker ran: all busy time minus the worker's
    other = (cpu_busy_seconds() - busy0 - (children_cpu_seconds() - own0)) / wall
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if p.returncode != 0 or not lines:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        return {"error": f"worker {worker} {' '.join(extra)} exited {p.returncode}:\n{tail}"}
    out = json.loads(lines[-1][len(RESULT_TAG) :])
    out.update(wall_s=wall, other_load_cores=max(other, 0.0), other_load_before=load_before)
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_s(r: dict | None) -> str:
    if r is None:
        return "–"
    if "error" in r:
        return "error"
    return f"{r['median_s']:.3f}" + ("" if r["valid"] else " (INVALID)")


def ratio(num: dict | None, den: dict | None) -> str:
    ok = [r is not None and "error" not in r for r in (num, den)]
    return f"{num['median_s'] / den['median_s']:.1f}×" if all(ok) else "–"


def rss(r: dict | None) -> str:
    return "–" if r is None or "error" in r else f"{r['peak_rss_mb']:.0f}"


def table(meta: dict, rows: list[dict]) -> str:
    out = [
        (
            f"# truesparse vs PyTorch, one training epoch ({meta['threads']} thread"
            f"{'s' if meta['threads'] > 1 else ''})"
        ),
        "",
        (
            f"MLP {'-'.join(map(str, SIZES))} (ReLU, ReLU, logits), softmax cross entropy, SGD "
            f"Nesterov momentum {MOMENTUM}, lr {LR}, batch {BATCH}, {meta['examples']:,} synthetic "
            f"CIFAR-10-shaped examples; median of {meta['repeats']} timed epochs after a warm-up "
            f"of {meta['warmup_batches']} batches; each run in its own process."
        ),
        "",
        (
            f"CPU: {meta['cpu']} ({meta['logical_cpus']} logical CPUs), threads: {meta['threads']}, "
            f"truesparse {meta['truesparse']}, torch {meta['torch']}, numpy {meta['numpy']}, "
            f"Python {meta['python']}, {meta['date']}."
        ),
        f"Cross-check truesparse vs PyTorch from identical weights: {meta['check']}.",
        "",
        (
            "| density | per-layer densities | nnz per layer (total) | truesparse s/epoch "
            "| truesparse history time s/epoch | torch dense s/epoch | torch masked s/epoch "
            "| torch CSR s/epoch | masked/ours | csr/ours | dense/ours "
            "| truesparse GF/s | peak RSS MB (ts / dense / masked / csr) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ts_r, de, ma, cs = row["truesparse"], row["dense"], row["masked"], row.get("csr")
        ok = ts_r is not None and "error" not in ts_r
        gf = f"{ts_r['gflops']:.1f}" if ok else "–"
        ht = f"{statistics.median(ts_r['history_time_s']):.3f}" if ok else "–"
        out.append(
            f"| {row['density']:g} | {', '.join(f'{v:.4g}' for v in row['densities'])} "
            f"| {' + '.join(f'{n:,}' for n in row['nnz'])} ({sum(row['nnz']):,}) "
            f"| {fmt_s(ts_r)} | {ht} | {fmt_s(de)} | {fmt_s(ma)} | {fmt_s(cs)} "
            f"| {ratio(ma, ts_r)} | {ratio(cs, ts_r)} | {ratio(de, ts_r)} | {gf} "
            f"| {rss(ts_r)} / {rss(de)} / {rss(ma)} / {rss(cs)} |"
        )
    loads = [
        r["other_load_cores"]
        for row in rows
        for r in (row["truesparse"], row["dense"], row["masked"], row.get("csr"))
        if r is not None and "error" not in r
    ]
    if loads:
        out += [
            "",
            (
                f"Other processes kept {max(loads):.2f} cores busy at most during a run "
                f"(mean {statistics.mean(loads):.2f}; 0 = quiet machine)."
            ),
        ]
    out += [
        "",
        (
            "Torch dense does not depend on the density: it is measured once and repeated in each "
            "row. Masked and CSR at density 1 are plain dense and are not run. Torch CSR: the "
            "layers of density < 1 as torch.sparse_csr_tensor weights with a hand-written "
            "autograd.Function (addmm forward, sparse.mm input gradient with a CSR of W^T, "
            "sampled_addmm weight gradient on the pattern), the others nn.Linear."
        ),
    ]
    return "\n".join(out) + "\n"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def driver(args) -> int:
    frameworks = [f for f in args.frameworks.split(",") if f]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise SystemExit(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")
    meta = {
        "threads": args.threads,
        "examples": args.examples,
        "repeats": args.repeats,
        "warmup_batches": args.warmup_batches,
        "seed": args.seed,
        "ts_backend": args.ts_backend or "default",
        "sizes": SIZES,
        "batch": BATCH,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": "not run",
        "truesparse": "not run",
        "check": "not run",
    }
    failed = False

    if "truesparse" in frameworks and not args.skip_check:
        log("cross-check truesparse vs PyTorch ...")
        chk = spawn(args, "check", [])
        meta["check_report"] = chk
        if "error" in chk:
            meta["check"] = "FAILED"
            log(chk["error"])
            failed = True
        else:
            worst = max(v for m in chk["models"].values() for v in m["max_abs_diff"].values())
            meta["check"] = (
                f"passed (densities {', '.join(chk['models'])}: logits, loss, gradients and "
                f"weights after 2 Nesterov steps of masked and CSR PyTorch agree; max abs diff "
                f"{worst:.2g})"
            )
            log("all results match: " + meta["check"])

    dense_run = None
    if "dense" in frameworks:
        log("torch dense ...")
        dense_run = spawn(args, "run", ["--framework", "dense", "--density", "1"])
        log(json.dumps({k: dense_run.get(k) for k in ("median_s", "valid", "error")}))

    out_dir = args.out_dir
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"compare_torch_{args.threads}t")

    def save(rows: list[dict], complete: bool) -> str:
        """Write table and JSON (atomically); called after every run so a killed run keeps
        what it measured, marked incomplete."""
        for r in [dense_run] + [row[f] for row in rows for f in SPARSE_RUNS]:
            if r is not None and "error" not in r:
                meta["truesparse" if r["framework"] == "truesparse" else "torch"] = r["version"]
        meta["complete"] = complete
        md = table(meta, rows)
        if not complete:
            md += "\n**Incomplete run** (interrupted): rows or columns are missing.\n"
        from truesparse.io import write_text_atomic  # only here: workers never import it

        write_text_atomic(stem + ".json", json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        write_text_atomic(stem + ".md", md)
        return md

    rows = []
    for d in args.densities:
        dens = er_densities(SIZES, d)
        row = {"density": d, "densities": dens, "nnz": layer_nnz(SIZES, dens)}
        row["dense"] = dense_run
        row["truesparse"] = row["masked"] = row["csr"] = None
        rows.append(row)
        for fw in SPARSE_RUNS:
            if fw in frameworks and not (fw in ("masked", "csr") and d >= 1.0):
                log(f"{fw} density {d} ...")
                r = spawn(args, "run", ["--framework", fw, "--density", repr(d)])
                keys = ("median_s", "valid", "problems", "error")
                log(json.dumps({k: r.get(k) for k in keys}))
                row[fw] = r
                save(rows, complete=False)

    for r in [dense_run] + [row[f] for row in rows for f in SPARSE_RUNS]:
        if r is not None:
            failed |= "error" in r or not r.get("valid", False)
    md = save(rows, complete=True)
    print(md)
    log(f"wrote {out_dir}/compare_torch_{args.threads}t.{{json,md}}")
    if failed:
        log("FAILED: some validation did not pass or a worker failed (see JSON)")
    return 1 if failed else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for every framework")
    p.add_argument("--examples", type=int, default=50_000, help="training examples per epoch")
    p.add_argument(
        "--densities",
        dest="densities_str",
        default=DEFAULT_DENSITIES,
        help="comma-separated overall densities in (0, 1]",
    )
    p.add_argument("--repeats", type=int, default=2, help="timed epochs (median reported)")
    p.add_argument(
        "--warmup-batches",
        type=int,
        default=20,
        help="untimed warm-up batches before timing",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--ts-backend",
        default="",
        help="truesparse MLP(backend=...); default: the library's",
    )
    p.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help="comma-separated subset of truesparse,dense,masked,csr",
    )
    p.add_argument(
        "--wait-idle",
        action="store_true",
        help="before each run, wait until other processes use <= --max-other-load cores",
    )
    p.add_argument("--max-other-load", type=float, default=0.2, help="cores (with --wait-idle)")
    p.add_argument("--max-wait", type=float, default=600, help="seconds (with --wait-idle)")
    p.add_argument(
        "--skip-check",
        action="store_true",
        help="skip the truesparse-vs-PyTorch cross-check",
    )
    p.add_argument(
        "--out-dir",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    )
    # internal: run one measurement in this process
    p.add_argument("--worker", choices=["run", "check"], help=argparse.SUPPRESS)
    p.add_argument("--framework", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--density", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.densities = [float(s) for s in args.densities_str.split(",") if s.strip()]
    if not args.densities or any(not 0.0 < d <= 1.0 for d in args.densities):
        p.error("--densities must be values in (0, 1]")
    if args.threads < 1 or args.repeats < 1 or args.examples < BATCH:
        p.error("need --threads >= 1, --repeats >= 1, --examples >= batch size")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker == "run":
        print(RESULT_TAG + json.dumps(worker_run(args)), flush=True)
        return 0
    if args.worker == "check":
        print(RESULT_TAG + json.dumps(worker_check(args)), flush=True)
        return 0
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
