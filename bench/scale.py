"""Scale of truesparse through its Python API: a very wide network, widths, hidden sizes.

    python bench/scale.py [--threads 1] [--backend native|mkl] [--out-dir bench/results/]
    python bench/scale.py --quick --out-dir /tmp/scale      # a smoke run of about 10 seconds

The same three measurements as ``bench_mlp --scale/--width-sweep/--throughput-sweep`` (the C++
benchmark), for users who do not build C++. Every network is an MLP (ReLU, softmax cross
entropy) trained with ``fit`` by SGD (lr 0.01, Nesterov momentum 0.9) in batches of 100 on
synthetic float32 data (784 features, 10 classes: class means uniform in [0, 1] plus
0.5·N(0, 1) noise):

``scale``
    784-700,000-700,000-700,000-10 at SET's ε = 10 (``MLP(epsilon=10)``, about 42 M stored
    weights): one warm-up batch, then ``--batches`` batches of 100 timed one by one, and the
    60,000-example epoch EXTRAPOLATED from their median (said so in the output). Peak RSS
    (``getrusage`` ``ru_maxrss``), bytes per stored weight from the growth of the resident set
    (after building, after training) and from the engine's own estimate (``memory.h``).
``width``
    784-H-H-H-10 for H = 1024, 4096, 16384, 65536 with the same stored weights whatever H:
    100,000 in each of the layers 784×H, H×H, H×H and 10,000 in the output layer H×10. Seconds
    per batch and the ratio to the first width: how much of a step grows with the width rather
    than with the stored weights.
``hidden``
    784-H-H-H-10 at ε = 10 for H = 20,000 and 200,000: effective throughput 6·nnz·N / time per
    batch in GFLOP/s (2 flops per stored weight and example in each of the forward product,
    the input gradient and the weight gradient) and its ratio between the sizes.

Each network runs in its own process, one after the other, so that the peak RSS and the
resident-set growth are its own. The time of a batch is ``history["time"]`` of a one-batch
``fit`` (the engine's epoch: batch gather, forward, backward, optimizer step); the wall time
of the ``fit`` call (with its input checks) is recorded too. Results: ``scale_<threads>t.json``
and ``scale_<threads>t.md`` in ``--out-dir``. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BATCH = 100
INPUTS, CLASSES = 784, 10
DEFAULTS = {
    "scale": "784,700000,700000,700000,10",
    "widths": "1024,4096,16384,65536",
    "hidden": "20000,200000",
}
QUICK = {"scale": "784,20000,20000,20000,10", "hidden": "2000,20000"}
MEASUREMENTS = ("scale", "width", "hidden")


# -- one network in this process (the worker) ---------------------------------------------------
def current_rss() -> float:
    """Resident set of this process now, in bytes (/proc/self/statm); 0 where unreadable."""
    try:
        with open("/proc/self/statm") as f:
            return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss() -> float:
    """Peak resident set of this process so far (ru_maxrss: kilobytes on Linux), in bytes."""
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024.0


def synthetic(examples: int, seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
    """Learnable synthetic data: class means uniform in [0, 1] plus 0.5·N(0, 1) noise."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0, 1, (CLASSES, INPUTS)).astype(np.float32)
    y = rng.integers(0, CLASSES, examples).astype(np.int32)
    X = means[y] + 0.5 * rng.standard_normal((examples, INPUTS), dtype=np.float32)
    return X, y


def memory_estimate(ts, model, backend: str) -> dict:
    """The engine's estimate (memory.h) of what the model holds and what training in batches
    of 100 with SGD momentum adds, in bytes; {} where the private bindings are missing."""
    try:
        from truesparse import _core

        held = _core.model_memory(
            model.sizes[0],
            [spec._spec() for spec in model._specs],
            backend=backend,
        )
        opt = ts.SGD(lr=0.01, momentum=0.9, nesterov=True)._config()
        training = _core.training_memory(model._core, BATCH, opt, examples=BATCH, check=False)
    except (AttributeError, ImportError, TypeError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {
        "model": int(held["model"]),
        "model_peak_while_built": int(held["peak"]),
        "model_terms": {k: int(v) for k, v in held.items() if k not in ("model", "peak") and v},
        "training": int(training["training"]),
        "training_terms": {
            k: int(training[k])
            for k in ("optimizer", "activations", "batch", "evolution")
            if training.get(k)
        },
    }


def worker(cfg: dict) -> dict:
    """Build the network ``cfg`` describes, train warm-up and timed batches, measure memory."""
    import truesparse as ts

    ts.set_num_threads(cfg["threads"])
    sizes, warmup, batches = cfg["sizes"], cfg["warmup"], cfg["batches"]
    X, y = synthetic((warmup + batches) * BATCH)
    density = {"epsilon": cfg["epsilon"]} if "epsilon" in cfg else {"densities": cfg["densities"]}
    rss_before = current_rss()
    start = time.perf_counter()
    model = ts.MLP(sizes, seed=0, backend=cfg["backend"], **density)
    build_s = time.perf_counter() - start
    rss_built = current_rss()
    estimate = memory_estimate(ts, model, cfg["backend"])
    opt = ts.SGD(lr=0.01, momentum=0.9, nesterov=True)
    engine, wall, loss = [], [], float("nan")
    for b in range(warmup + batches):
        rows = slice(b * BATCH, (b + 1) * BATCH)
        start = time.perf_counter()
        history = model.fit(X[rows], y[rows], epochs=1, batch_size=BATCH, optimizer=opt)
        seconds = time.perf_counter() - start
        loss = float(history["loss"][0])
        if b >= warmup:
            engine.append(float(history["time"][0]))
            wall.append(seconds)
    rss_trained, rss_peak = current_rss(), peak_rss()
    nnz = int(model.nnz)
    return {
        "sizes": sizes,
        "densities": [float(layer.density) for layer in model.layers],
        "layer_nnz": [int(layer.nnz) for layer in model.layers],
        "nnz": nnz,
        "threads": cfg["threads"],
        "backend": cfg["backend"],
        "build_s": build_s,
        "warmup_batches": warmup,
        "timed_batches": batches,
        "batch_s": engine,
        "batch_s_median": statistics.median(engine),
        "batch_s_mean": statistics.fmean(engine),
        "fit_wall_s_median": statistics.median(wall),
        "last_loss": loss,
        "rss_before": rss_before,
        "rss_built": rss_built,
        "rss_trained": rss_trained,
        "peak_rss": rss_peak,
        "bytes_per_weight_built": (rss_built - rss_before) / nnz,
        "bytes_per_weight_trained": (rss_trained - rss_before) / nnz,
        "bytes_per_weight_peak": (rss_peak - rss_before) / nnz,
        "estimate": estimate,
        "truesparse": ts.__version__,
        "mkl": ts.mkl_version(),
    }


def run_worker(cfg: dict) -> dict:
    """One network in a fresh process; the result, or {"error": ...}."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"error": f"exit status {done.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


# -- the three measurements --------------------------------------------------------------------
def ints(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def width_densities(h: int, per_layer: int, output: int) -> list[float]:
    """Densities of 784-H-H-H-10 giving ``per_layer`` stored weights in 784×H, H×H, H×H and
    ``output`` in H×10 (nnz = round(d · n_in · n_out) gives those counts exactly)."""
    sizes = [INPUTS, h, h, h, CLASSES]
    want = [per_layer, per_layer, per_layer, output]
    return [min(1.0, w / (a * b)) for w, a, b in zip(want, sizes[:-1], sizes[1:])]


def measure(args) -> dict:
    base = {"threads": args.threads, "backend": args.backend, "warmup": args.warmup}
    results: dict = {}
    if "scale" in args.only:
        cfg = dict(base, sizes=ints(args.scale), epsilon=args.epsilon, batches=args.batches)
        log(f"scale network {args.scale} at epsilon {args.epsilon} ...")
        r = run_worker(cfg)
        if "error" not in r:
            steps = -(-args.epoch_examples // BATCH)
            r["epoch_examples"] = args.epoch_examples
            r["epoch_s_extrapolated"] = steps * r["batch_s_median"]
            r["extrapolated_from_batches"] = r["timed_batches"]
            r["effective_gflops"] = 6 * r["nnz"] * BATCH / r["batch_s_median"] / 1e9
        results["scale"] = r
        log(json.dumps({k: r.get(k) for k in ("nnz", "batch_s_median", "peak_rss", "error")}))
    if "width" in args.only:
        rows = []
        for h in ints(args.widths):
            if INPUTS * h < args.sweep_nnz or CLASSES * h < args.output_nnz:
                rows.append({"H": h, "error": "the layers cannot hold the requested weights"})
                continue
            dens = width_densities(h, args.sweep_nnz, args.output_nnz)
            cfg = dict(base, sizes=[INPUTS, h, h, h, CLASSES], densities=dens)
            cfg["batches"] = args.width_batches
            log(f"width H = {h} ...")
            r = dict(run_worker(cfg), H=h)
            rows.append(r)
        first = next((r["batch_s_median"] for r in rows if "error" not in r), None)
        for r in rows:
            if "error" not in r:
                r["vs_first"] = r["batch_s_median"] / first
        results["width"] = {
            "per_layer_nnz": args.sweep_nnz,
            "output_nnz": args.output_nnz,
            "rows": rows,
        }
    if "hidden" in args.only:
        rows = []
        for h in ints(args.hidden):
            cfg = dict(base, sizes=[INPUTS, h, h, h, CLASSES], epsilon=args.epsilon)
            cfg["batches"] = args.hidden_batches
            log(f"hidden size H = {h} at epsilon {args.epsilon} ...")
            r = dict(run_worker(cfg), H=h)
            if "error" not in r:
                r["effective_gflops"] = 6 * r["nnz"] * BATCH / r["batch_s_median"] / 1e9
            rows.append(r)
        first = next((r["effective_gflops"] for r in rows if "error" not in r), None)
        for r in rows:
            if "error" not in r:
                r["vs_first"] = r["effective_gflops"] / first
        results["hidden"] = {"epsilon": args.epsilon, "rows": rows}
    return results


# -- reporting ---------------------------------------------------------------------------------
def gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def terms(d: dict) -> str:
    return ", ".join(f"{k} {v / 1e6:,.1f} MB" for k, v in d.items())


def markdown(meta: dict, results: dict) -> str:
    out = [
        f"# bench/scale.py: {meta['threads']} thread(s), backend {meta['backend']}",
        "",
        f"{meta['machine']}, {meta['cpus']} CPUs; truesparse {meta.get('truesparse', '?')}, "
        f"MKL {meta.get('mkl', '?')}; batch {BATCH}, SGD lr 0.01 Nesterov 0.9, synthetic data; "
        f"{meta['warmup']} warm-up batch(es) before the timed ones"
        + ("; --quick" if meta["quick"] else ""),
        "",
    ]
    r = results.get("scale")
    if r is not None:
        out += ["## Scale network", ""]
        if "error" in r:
            out += [f"failed: {r['error']}", ""]
        else:
            nnz = r["nnz"]
            sizes = "-".join(f"{s:,}" for s in r["sizes"])
            out += [
                f"{sizes} at ε = {meta['epsilon']:g}: stored weights "
                + " + ".join(f"{n:,}" for n in r["layer_nnz"])
                + f" = **{nnz:,}**, built in {r['build_s']:.1f} s.",
                "",
                "| quantity | value |",
                "|---|---|",
                f"| time per batch of 100 (median of {r['timed_batches']}; mean) | "
                f"{r['batch_s_median']:.3f} s; {r['batch_s_mean']:.3f} s |",
                f"| wall time of a one-batch `fit` (median, with input checks) | "
                f"{r['fit_wall_s_median']:.3f} s |",
                f"| epoch of {r['epoch_examples']:,} examples | **{r['epoch_s_extrapolated']:.1f} s, "
                f"extrapolated** from {r['extrapolated_from_batches']} timed batches "
                f"({-(-r['epoch_examples'] // BATCH)} × the median), not measured |",
                f"| effective throughput 6·nnz·N / time | {r['effective_gflops']:.2f} GFLOP/s |",
                f"| peak RSS (ru_maxrss) | {gb(r['peak_rss'])} ({gb(r['rss_before'])} before the "
                "model was built) |",
                f"| RSS growth per stored weight: built / after training / peak | "
                f"{r['bytes_per_weight_built']:.1f} / {r['bytes_per_weight_trained']:.1f} / "
                f"{r['bytes_per_weight_peak']:.1f} B |",
            ]
            e = r.get("estimate", {})
            if "model" in e:
                out += [
                    f"| engine estimate, model (memory.h) | {gb(e['model'])} = "
                    f"{e['model'] / nnz:.1f} B per stored weight ({terms(e['model_terms'])}) |",
                    f"| engine estimate, training adds | {gb(e['training'])} = "
                    f"{e['training'] / nnz:.1f} B per stored weight "
                    f"({terms(e['training_terms'])}) |",
                ]
            out += [""]
    w = results.get("width")
    if w is not None:
        out += [
            "## Width sweep at fixed stored weights",
            "",
            f"784-H-H-H-10; {w['per_layer_nnz']:,} stored weights in each of 784×H, H×H, H×H "
            f"and {w['output_nnz']:,} in H×10, whatever H.",
            "",
            "| H | stored weights per layer | total | s/batch (median) | mean | vs first | peak RSS |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in w["rows"]:
            if "error" in r:
                out.append(f"| {r['H']:,} | failed: {r['error']} | | | | | |")
                continue
            out.append(
                f"| {r['H']:,} | {' + '.join(f'{n:,}' for n in r['layer_nnz'])} | {r['nnz']:,} | "
                f"{r['batch_s_median'] * 1e3:.2f} ms | {r['batch_s_mean'] * 1e3:.2f} ms | "
                f"{r['vs_first']:.2f} | {gb(r['peak_rss'])} |"
            )
        out += [""]
    h = results.get("hidden")
    if h is not None:
        out += [
            "## Hidden-size throughput",
            "",
            f"784-H-H-H-10 at ε = {h['epsilon']:g}; effective GFLOP/s = 6·nnz·N / median time "
            "per batch.",
            "",
            "| H | stored weights | s/batch (median) | GFLOP/s | vs first | peak RSS |",
            "|---|---|---|---|---|---|",
        ]
        for r in h["rows"]:
            if "error" in r:
                out.append(f"| {r['H']:,} | failed: {r['error']} | | | | |")
                continue
            out.append(
                f"| {r['H']:,} | {r['nnz']:,} | {r['batch_s_median']:.4f} s | "
                f"{r['effective_gflops']:.2f} | {r['vs_first']:.2f} | {gb(r['peak_rss'])} |"
            )
        out += [""]
    return "\n".join(out)


def failures(results: dict) -> int:
    rows = [results.get("scale")] if "scale" in results else []
    for key in ("width", "hidden"):
        rows += results.get(key, {}).get("rows", [])
    return sum(1 for r in rows if r is None or "error" in r)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", choices=("native", "mkl"), default="native")
    p.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help="comma-separated subset of scale,width,hidden",
    )
    p.add_argument(
        "--scale", default=None, help=f"sizes of the scale network ({DEFAULTS['scale']})"
    )
    p.add_argument("--epsilon", type=float, default=10.0, help="SET's ε (scale and hidden)")
    p.add_argument("--batches", type=int, default=None, help="timed batches, scale (5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed batches before timing")
    p.add_argument("--epoch-examples", type=int, default=60_000, help="the extrapolated epoch")
    p.add_argument("--widths", default=DEFAULTS["widths"], help="H of the width sweep")
    p.add_argument("--sweep-nnz", type=int, default=100_000, help="weights per layer (width)")
    p.add_argument("--output-nnz", type=int, default=10_000, help="weights of H×10 (width)")
    p.add_argument("--width-batches", type=int, default=None, help="timed batches, width (20)")
    p.add_argument(
        "--hidden", default=None, help=f"H of the throughput sweep ({DEFAULTS['hidden']})"
    )
    p.add_argument("--hidden-batches", type=int, default=None, help="timed batches, hidden (5)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: scale network {QUICK['scale']} and hidden sizes {QUICK['hidden']} "
        "unless given, 2 timed batches (5 for the width sweep) unless given",
    )
    p.add_argument("--out-dir", default=RESULTS, help="where scale_<threads>t.{json,md} go")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    args.only = [m for m in args.only.split(",") if m]
    if not args.only or any(m not in MEASUREMENTS for m in args.only):
        p.error("--only takes a comma-separated subset of scale,width,hidden")
    args.scale = args.scale or (QUICK if args.quick else DEFAULTS)["scale"]
    args.hidden = args.hidden or (QUICK if args.quick else DEFAULTS)["hidden"]
    args.batches = args.batches or (2 if args.quick else 5)
    args.width_batches = args.width_batches or (5 if args.quick else 20)
    args.hidden_batches = args.hidden_batches or (2 if args.quick else 5)
    if min(args.threads, args.batches, args.width_batches, args.hidden_batches) < 1:
        p.error("--threads and the batch counts must be >= 1")
    if args.warmup < 0 or args.epoch_examples < 1:
        p.error("--warmup must be >= 0 and --epoch-examples >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    start = time.perf_counter()
    results = measure(args)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "backend": args.backend,
        "warmup": args.warmup,
        "epsilon": args.epsilon,
        "quick": bool(args.quick),
        "seconds": time.perf_counter() - start,
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
    }
    for part in results.values():
        for r in [part, *part.get("rows", [])]:
            if "truesparse" in r:
                meta["truesparse"], meta["mkl"] = r["truesparse"], r["mkl"]
    md = markdown(meta, results)
    from truesparse.io import write_text_atomic

    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, f"scale_{args.threads}t")
    write_text_atomic(
        stem + ".json", json.dumps({"meta": meta, "results": results}, indent=1) + "\n"
    )
    write_text_atomic(stem + ".md", md + "\n")
    print(md)
    log(f"wrote {stem}.json and {stem}.md ({meta['seconds']:.0f} s)")
    bad = failures(results)
    if bad:
        log(f"FAILED: {bad} network(s) could not be measured (see the JSON)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
