"""Data-parallel training over MPI on this machine: seconds per epoch and all-reduce time.

    python bench/mpi.py [--repeats 3] [--out mpi.json]

For two networks, with synthetic data of the shapes named, it runs side by side in one
session (one configuration at a time, never two at once):

- 1 process × 1 thread, 1 process × 2 threads, 2 MPI ranks × 1 thread (``mpiexec -n 2``);
- ``cifar``: 3072-1024-512-10 at 1 % overall density (ERK), 50,000 examples per epoch,
  batch 100, SGD momentum 0.9: one epoch timed after one warm-up epoch;
- ``wide``: 784-100,000×3-10 at SET's ε = 10 (6.3 M weights), batch 100, SGD momentum 0.9:
  10 steps timed after 2 warm-up steps and extrapolated to a 60,000-example epoch (600
  steps; stated as extrapolated in the output).

Per data-parallel run it reports the time inside the all-reduce per step (which includes
waiting for the slower rank) and, separately, the time of a bare ``MPI_Allreduce`` of the
same nnz-sized buffer (the communication alone). Each configuration is repeated
``--repeats`` times; the median is reported with the spread. Results: stdout (Markdown) and
bench/results/mpi.json. Requires mpi4py and mpiexec (``pip install "truesparse[mpi]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

NETWORKS = {
    "cifar": dict(sizes=[3072, 1024, 512, 10], density=0.01, examples=50_000, steps=None),
    "wide": dict(sizes=[784, 100_000, 100_000, 100_000, 10], epsilon=10, examples=60_000, steps=10),
}
BATCH = 100


def worker(name: str, threads: int) -> dict:
    """One configuration in this process (a rank when started by mpiexec)."""
    import truesparse as ts
    from truesparse import distributed

    net = NETWORKS[name]
    comm = None
    if distributed.launched_by_mpiexec():
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    ts.set_num_threads(threads)
    spent = {"allreduce": 0.0, "calls": 0}
    original = distributed.Communicator.allreduce

    def timed(self, buffer):
        start = time.perf_counter()
        original(self, buffer)
        spent["allreduce"] += time.perf_counter() - start
        spent["calls"] += 1
        spent["values"] = int(buffer.size)

    distributed.Communicator.allreduce = timed
    rng = np.random.default_rng(0)
    sizes = net["sizes"]
    kwargs = {"epsilon": net["epsilon"]} if "epsilon" in net else {"density": net["density"]}
    model = ts.MLP(sizes, seed=0, **kwargs)
    steps = net["steps"]
    examples = BATCH * (steps + 2) if steps else net["examples"]
    X = rng.standard_normal((examples, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], examples)
    opt = ts.SGD(lr=0.01, momentum=0.9)
    if steps:  # warm-up steps, then the timed steps
        model.fit(
            X[: 2 * BATCH], y[: 2 * BATCH], epochs=1, batch_size=BATCH, optimizer=opt, comm=comm
        )
        Xt, yt = X[2 * BATCH :], y[2 * BATCH :]
    else:  # a warm-up epoch, then the timed epoch
        model.fit(X, y, epochs=1, batch_size=BATCH, optimizer=opt, comm=comm)
        Xt, yt = X, y
    spent.update(allreduce=0.0, calls=0)
    start = time.perf_counter()
    model.fit(Xt, yt, epochs=1, batch_size=BATCH, optimizer=opt, comm=comm)
    seconds = time.perf_counter() - start
    timed_steps = -(-len(Xt) // BATCH)
    epoch_steps = net["examples"] // BATCH
    result = {
        "network": name,
        "nnz": int(model.nnz),
        "threads": threads,
        "ranks": 1 if comm is None else comm.Get_size(),
        "seconds_per_step": seconds / timed_steps,
        "seconds_per_epoch": seconds / timed_steps * epoch_steps,
        "extrapolated": bool(steps),
    }
    if comm is not None:
        result["allreduce_per_step"] = spent["allreduce"] / max(1, spent["calls"])
        result["allreduce_values"] = spent.get("values", 0)
        buffer = np.zeros(spent.get("values", 1), dtype=np.float32)
        comm.Barrier()
        bare = []
        for _ in range(20):
            comm.Barrier()
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            bare.append(time.perf_counter() - t)
        result["bare_allreduce"] = statistics.median(bare)
        if comm.Get_rank() != 0:
            return {}
    return result


def run_configuration(name: str, ranks: int, threads: int) -> dict:
    me = [sys.executable, os.path.abspath(__file__), "--worker", name, "--threads", str(threads)]
    command = [shutil.which("mpiexec"), "-n", str(ranks), *me] if ranks > 1 else me
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


# Interconnects of the step-time model: (name, bandwidth in bytes/s, latency per message in s).
LINKS = (("10 GbE", 1.25e9, 30e-6), ("100 Gb/s InfiniBand", 12.5e9, 2e-6))
NODES = (1, 2, 4, 8, 16, 32, 64)


def ring_allreduce(nbytes: float, nodes: int, bandwidth: float, latency: float) -> float:
    """Seconds of a ring all-reduce of ``nbytes`` over ``nodes``: 2(P−1) messages of
    nbytes/P each (reduce-scatter, then all-gather)."""
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) * latency + 2 * (nodes - 1) / nodes * nbytes / bandwidth


def masked_steps() -> dict:
    """Seconds per step of PyTorch's masked (dense × mask) training of the cifar network at
    1 % on this machine, 2 threads (bench/compare_torch.py's result), when it is there."""
    try:
        with open(os.path.join(RESULTS, "compare_torch_2t.json")) as f:
            rows = json.load(f)["rows"]
    except (OSError, KeyError, ValueError):
        return {}
    for row in rows:
        if row["density"] == 0.01 and "masked" in row:
            return {"cifar": row["masked"]["median_s"] / (NETWORKS["cifar"]["examples"] // BATCH)}
    return {}


def dense_weights(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def model_table(results: dict, masked_step: dict) -> str:
    """The predicted epoch time on P nodes (weak scaling: a batch of 100 per node, so P·100
    per step and 1/P as many steps per epoch) for truesparse (all-reduce of its nnz-sized
    buffer) and for a mask-based run of the same network (dense-sized all-reduce and dense
    compute), from the single-node step time measured here."""
    lines = []
    for name, net in NETWORKS.items():
        rows = [e for e in results["summary"] if e["network"] == name]
        if not rows:
            continue
        one = min(e["seconds_per_epoch_median"] for e in rows if e["ranks"] == 1)
        steps = net["examples"] // BATCH
        step = one / steps
        sparse_bytes = next(e["allreduce_bytes"] for e in rows if e["ranks"] > 1)
        dense_bytes = 4 * dense_weights(net["sizes"])
        masked = masked_step.get(name)
        lines.append(
            f"\n**{name}** ({'-'.join(map(str, net['sizes']))}): measured {step * 1e3:.2f} ms per "
            f"step of 100 on one node; all-reduce {sparse_bytes / 1e6:.3f} MB per step "
            f"(mask-based: {dense_bytes / 1e6:,.1f} MB"
            + (
                f", dense compute {masked * 1e3:.1f} ms per step"
                if masked
                else ", which does not fit in memory"
            )
            + ")\n"
        )
        header = "| interconnect | " + " | ".join(f"P = {p}" for p in NODES) + " |"
        lines += [header, "|---|" + "---|" * len(NODES)]
        for link, bandwidth, latency in LINKS:
            cells = []
            for p in NODES:
                t = step + ring_allreduce(sparse_bytes, p, bandwidth, latency)
                cell = f"{steps / p * t:.2f} s ({step / t:.0%})"
                if masked:
                    tm = masked + ring_allreduce(dense_bytes, p, bandwidth, latency)
                    cell += f" / {steps / p * tm:.1f} s"
                cells.append(cell)
            lines.append(f"| {link} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", default="cifar,wide")
    parser.add_argument("--out", default="mpi.json")
    parser.add_argument(
        "--model-only",
        action="store_true",
        help="print the step-time model from bench/results/mpi.json without measuring",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.threads)
        if result:
            print(json.dumps(result), flush=True)
        return
    if args.model_only:
        with open(os.path.join(RESULTS, args.out)) as f:
            print(model_table(json.load(f), masked_steps()))
        return
    if shutil.which("mpiexec") is None:
        sys.exit('bench/mpi.py needs mpiexec: pip install "truesparse[mpi]"')
    configurations = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads per rank)
    rows = []
    for name in args.networks.split(","):
        for r in range(args.repeats):  # interleaved, so that drift hits every configuration
            for ranks, threads in configurations:
                row = run_configuration(name, ranks, threads)
                row["repeat"] = r
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = []
    for name in args.networks.split(","):
        for ranks, threads in configurations:
            runs = [
                x
                for x in rows
                if x["network"] == name and (x["ranks"], x["threads"]) == (ranks, threads)
            ]
            epoch = [x["seconds_per_epoch"] for x in runs]
            entry = {
                "network": name,
                "ranks": ranks,
                "threads": threads,
                "nnz": runs[0]["nnz"],
                "seconds_per_epoch_median": statistics.median(epoch),
                "seconds_per_epoch_min": min(epoch),
                "seconds_per_epoch_max": max(epoch),
                "extrapolated": runs[0]["extrapolated"],
            }
            if ranks > 1:
                entry["allreduce_ms_per_step_median"] = 1e3 * statistics.median(
                    x["allreduce_per_step"] for x in runs
                )
                entry["bare_allreduce_ms_median"] = 1e3 * statistics.median(
                    x["bare_allreduce"] for x in runs
                )
                entry["allreduce_bytes"] = 4 * runs[0]["allreduce_values"]
            summary.append(entry)
    print(
        "\n| network | ranks × threads | s/epoch (median, min–max) | all-reduce ms/step (incl. wait) | bare all-reduce ms | bytes/step |"
    )
    print("|---|---|---|---|---|---|")
    for e in summary:
        extra = "*" if e["extrapolated"] else ""
        ar = (
            f"{e['allreduce_ms_per_step_median']:.2f}"
            if "allreduce_ms_per_step_median" in e
            else "–"
        )
        bare = f"{e['bare_allreduce_ms_median']:.2f}" if "bare_allreduce_ms_median" in e else "–"
        nbytes = f"{e['allreduce_bytes']:,}" if "allreduce_bytes" in e else "–"
        print(
            f"| {e['network']} (nnz {e['nnz']:,}) | {e['ranks']} × {e['threads']} | "
            f"{e['seconds_per_epoch_median']:.2f}{extra} ({e['seconds_per_epoch_min']:.2f}–"
            f"{e['seconds_per_epoch_max']:.2f}) | {ar} | {bare} | {nbytes} |"
        )
    print("\n* extrapolated from timed steps to a 60,000-example epoch")
    from truesparse.io import write_json_atomic

    os.makedirs(RESULTS, exist_ok=True)
    results = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "batch": BATCH,
        "repeats": args.repeats,
        "summary": summary,
        "runs": rows,
    }
    write_json_atomic(os.path.join(RESULTS, args.out), results)
    print(model_table(results, masked_steps()))


if __name__ == "__main__":
    main()
