"""Run-to-run spread of the two-thread epoch, on a quiet machine and with another process busy
on one core, against one thread: is two threads reliably faster than one?

    python bench/threads.py [--runs 5] [--examples 50000] [--density 0.01] [--out-dir bench/results/]

Each run is its own process (a fresh OpenMP runtime, fresh thread placement): it builds the
3072-1024-512-10 MLP at the density (Erdős–Rényi per layer, as in compare_torch.py), trains
one untimed warm-up epoch, then times one epoch of SGD with Nesterov momentum (batch 100) on
synthetic CIFAR-10-shaped data. Configurations, each --runs times, interleaved: 1 and 2 threads
with adaptive threads (the default), and 2 threads without (TRUESPARSE_ADAPTIVE_THREADS=0);
quiet, and with a busy loop in another process for the whole run ("busy"). The spread of a
configuration is (max - min) / min over its runs. Every run must end at the same training loss,
bit for bit (the results do not depend on the thread count); otherwise the exit status is 1.
Results: threads.json and threads.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZES = [3072, 1024, 512, 10]
HERE = Path(__file__).resolve().parent


def worker(args) -> None:
    import numpy as np

    import truesparse as ts

    ts.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=args.examples)
    mu = (0.25 * rng.standard_normal((10, SIZES[0]))).astype(np.float32)
    X = rng.standard_normal((args.examples, SIZES[0]), dtype=np.float32) + mu[y]
    model = ts.MLP(SIZES, densities=ts.er_densities(SIZES, args.density), seed=0)
    opt = ts.SGD(lr=0.01, momentum=0.9, nesterov=True)
    model.fit(X, y, epochs=1, batch_size=100, optimizer=opt, verbose=0)  # warm-up epoch
    start = time.perf_counter()
    history = model.fit(X, y, epochs=1, batch_size=100, optimizer=opt, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "loss": float(history["loss"][-1])}))


def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_one(args, threads: int, adaptive: bool, busy: bool) -> dict:
    env = dict(os.environ, TRUESPARSE_ADAPTIVE_THREADS="1" if adaptive else "0")
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads)]
    cmd += ["--examples", str(args.examples), "--density", str(args.density)]
    hog = busy_loop() if busy else None
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return json.loads(out.strip().splitlines()[-1])


CONFIGS = [  # (label, threads, adaptive, busy)
    ("1 thread", 1, True, False),
    ("2 threads", 2, True, False),
    ("2 threads, adaptive off", 2, False, False),
    ("1 thread, busy core", 1, True, True),
    ("2 threads, busy core", 2, True, True),
    ("2 threads, adaptive off, busy core", 2, False, True),
]


def table(results: dict, meta: dict) -> str:
    lines = [
        "# Two threads against one: run-to-run spread (bench/threads.py)",
        "",
        f"MLP 3072-1024-512-10 at density {meta['density']}, {meta['examples']:,} examples, one timed "
        f"epoch per process after a warm-up epoch, {meta['runs']} processes per configuration, "
        f"interleaved; {meta['date']}.",
        "",
        "| configuration | s/epoch per run | median | spread (max-min)/min | vs 1 thread (same load) |",
        "|---|---|---|---|---|",
    ]
    for label, _, _, busy in CONFIGS:
        t = results[label]
        base = results["1 thread, busy core" if busy else "1 thread"]
        med, base_med = sorted(t)[len(t) // 2], sorted(base)[len(base) // 2]
        spread = (max(t) - min(t)) / min(t)
        runs = ", ".join(f"{v:.3f}" for v in t)
        lines.append(
            f"| {label} | {runs} | {med:.3f} | {100 * spread:.0f} % | {base_med / med:.2f}× |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--examples", type=int, default=50_000)
    p.add_argument("--density", type=float, default=0.01)
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results: dict[str, list[float]] = {label: [] for label, *_ in CONFIGS}
    losses = set()
    for r in range(args.runs):
        for label, threads, adaptive, busy in CONFIGS:
            run = run_one(args, threads, adaptive, busy)
            results[label].append(run["seconds"])
            losses.add(run["loss"])
            print(f"run {r + 1}: {label}: {run['seconds']:.3f} s, loss {run['loss']!r}", flush=True)
    # The results do not depend on the thread count (nor on adaptive threads): every run trains
    # the same bits, so a second loss value means a timed run computed something else.
    if len(losses) != 1:
        print(
            f"FAILED: the runs ended at different training losses {sorted(losses)}", file=sys.stderr
        )
        return 1
    meta = {
        "loss": losses.pop(),
        "runs": args.runs,
        "examples": args.examples,
        "density": args.density,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threads.json").write_text(
        json.dumps({"meta": meta, "seconds": results}, indent=1) + "\n"
    )
    md = table(results, meta)
    (out / "threads.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
