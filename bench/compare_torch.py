"""Seconds per training epoch: truesparse vs PyTorch dense vs PyTorch dense x mask.

One epoch of an MLP 3072-1024-512-10 (ReLU, ReLU, logits), softmax cross entropy, SGD with
Nesterov momentum 0.9, lr 0.01, batch 100, on synthetic CIFAR-10-shaped data, at several
overall densities (per-layer densities by Erdos-Renyi). Each (framework, density) runs in its
own subprocess (`--worker run`) so that peak RSS is clean and one framework's thread pools
never touch another's. Before timing, `--worker check` verifies that truesparse and PyTorch
compute the same thing (logits, loss, gradients, two Nesterov steps) from identical weights.
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
FRAMEWORKS = ("truesparse", "dense", "masked")
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
    import torch

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


class TorchTrainer:
    """The training loop of both PyTorch variants; masks=None is plain dense training.

    Masked variant (as mask-based sparse training libraries do it, see README): the weights
    are multiplied by their mask once after init; in every step the weight gradients are
    multiplied by the mask before optimizer.step() and the weights again after it, all in
    place. Biases are not masked. The forward and backward products are dense.
    """

    def __init__(self, torch, model, masks=None, seed=0):
        self.torch, self.model, self.masks = torch, model, masks
        self.weights = [lin.weight for lin in torch_linears(model)]
        self.opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True)
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
            xb, yb = X[idx], y[idx]  # (B, 3072), (B,)
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
        dens = er_densities(SIZES, d) if fw == "masked" else [1.0] * (len(SIZES) - 1)
        model = torch_mlp(torch, SIZES)
        masks = random_masks(torch, model, layer_nnz(SIZES, dens)) if fw == "masked" else None
        trainer = TorchTrainer(torch, model, masks, seed=args.seed)
        actual_nnz = [int((lin.weight != 0).sum()) for lin in torch_linears(model)]

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
        actual_nnz = [int((lin.weight != 0).sum()) for lin in torch_linears(model)]
    elif fw == "truesparse":
        actual_nnz = [int(L.nnz) for L in model.layers]

    if not after["loss"] < before["loss"]:
        problems.append(f"eval loss did not decrease: {before['loss']:.4f} -> {after['loss']:.4f}")
    chance = 1.0 / CLASSES
    if not after["accuracy"] > chance + 3 * np.sqrt(chance * (1 - chance) / n_eval):
        problems.append(f"eval accuracy {after['accuracy']:.4f} not above chance")
    if fw == "truesparse" and actual_nnz != target_nnz:
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
    """Same weights in truesparse and PyTorch -> same logits, loss, gradients, and weights
    after two Nesterov steps (fit on 200 examples, shuffle=False)."""
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
        errs = {}
        # forward: identical logits
        errs["logits"] = checked_difference(
            model.forward(X[:BATCH]), tm(Xt[:BATCH]).detach().numpy(), f"d={d} logits"
        )
        # backward: loss and gradients on the pattern
        loss_ts = model.backward(X[:BATCH], y[:BATCH])
        tm.zero_grad()
        loss_t = torch.nn.functional.cross_entropy(tm(Xt[:BATCH]), yt[:BATCH])
        loss_t.backward()
        errs["loss"] = checked_difference(loss_ts, loss_t.item(), f"d={d} loss")
        for k, (L, lin, m) in enumerate(zip(model.layers, torch_linears(tm), masks)):
            errs[f"DW{k}"] = checked_difference(
                dense_of(L.DW), (lin.weight.grad * m).numpy(), f"d={d} layer {k} DW"
            )
            errs[f"Db{k}"] = checked_difference(L.Db, lin.bias.grad.numpy(), f"d={d} layer {k} Db")
        # two Nesterov steps: truesparse fit vs the masked PyTorch loop
        trainer = TorchTrainer(torch, tm, masks)
        trainer.epoch(Xt, yt, shuffle=False)
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
        report["models"][str(d)] = {
            "nnz": [int(L.nnz) for L in model.layers],
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
            "| truesparse history time s/epoch | torch dense s/epoch | torch masked s/epoch | masked/ours | dense/ours "
            "| truesparse GF/s | peak RSS MB (ts / dense / masked) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ts_r, de, ma = row["truesparse"], row["dense"], row["masked"]
        ok = ts_r is not None and "error" not in ts_r
        gf = f"{ts_r['gflops']:.1f}" if ok else "–"
        ht = f"{statistics.median(ts_r['history_time_s']):.3f}" if ok else "–"
        out.append(
            f"| {row['density']:g} | {', '.join(f'{v:.4g}' for v in row['densities'])} "
            f"| {' + '.join(f'{n:,}' for n in row['nnz'])} ({sum(row['nnz']):,}) "
            f"| {fmt_s(ts_r)} | {ht} | {fmt_s(de)} | {fmt_s(ma)} | {ratio(ma, ts_r)} "
            f"| {ratio(de, ts_r)} | {gf} | {rss(ts_r)} / {rss(de)} / {rss(ma)} |"
        )
    loads = [
        r["other_load_cores"]
        for row in rows
        for r in (row["truesparse"], row["dense"], row["masked"])
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
            "row. Masked at density 1 is plain dense and is not run."
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
                f"weights after 2 Nesterov steps agree; max abs diff {worst:.2g})"
            )
            log("all results match: " + meta["check"])

    dense_run = None
    if "dense" in frameworks:
        log("torch dense ...")
        dense_run = spawn(args, "run", ["--framework", "dense", "--density", "1"])
        log(json.dumps({k: dense_run.get(k) for k in ("median_s", "valid", "error")}))

    out_dir = args.out_dir
    stem = os.path.join(out_dir, f"compare_torch_{args.threads}t")

    def save(rows: list[dict], complete: bool) -> str:
        """Write table and JSON (atomically); called after every run so a killed run keeps
        what it measured, marked incomplete."""
        for r in [dense_run] + [row[f] for row in rows for f in ("truesparse", "masked")]:
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
        row["truesparse"] = row["masked"] = None
        rows.append(row)
        for fw in ("truesparse", "masked"):
            if fw in frameworks and not (fw == "masked" and d >= 1.0):
                log(f"{fw} density {d} ...")
                r = spawn(args, "run", ["--framework", fw, "--density", repr(d)])
                keys = ("median_s", "valid", "problems", "error")
                log(json.dumps({k: r.get(k) for k in keys}))
                row[fw] = r
                save(rows, complete=False)

    for r in [dense_run] + [row[f] for row in rows for f in ("truesparse", "masked")]:
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
        help="comma-separated subset of truesparse,dense,masked",
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
