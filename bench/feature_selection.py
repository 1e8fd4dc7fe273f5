"""Feature selection by truly sparse training against scikit-learn's selectors, reproducible.

    python bench/feature_selection.py [--seeds 0,1,2] [--datasets mnist5k,digits,...]
        [--methods QuickSelection,NeuroFS,...] [--threads 1] [--epochs N] [--out-dir DIR]

On five data sets, each selector picks k features from the training split; two fixed
classifiers are then trained on those columns of the training split and scored on the test
split: ExtraTreesClassifier(n_estimators=50) (the evaluation classifier of the QuickSelection
and NeuroFS reference code) and a linear SVM (StandardScaler + LinearSVC). The selectors:

    QuickSelection, NeuroFS     truesparse.feature_selection with the papers' defaults
    mutual_info, anova_f        SelectKBest(mutual_info_classif / f_classif, k)
    l1_linear_svc, l1_logistic  SelectFromModel(L1 LinearSVC / L1 LogisticRegression (saga),
                                max_features=k, threshold=-inf): the k largest |coef|
    random_forest               SelectFromModel(RandomForestClassifier(100 trees), k)
    random, all                 k random columns; every column (no selection)

Data sets (k): mnist5k (50; truesparse.datasets, 4,000 / 1,000), digits (16; truesparse.datasets),
wine (5) and breast_cancer (8) (scikit-learn, stratified 80 / 20, MinMaxScaler fitted on the
training split), synthetic (10): make_classification, 2,500 x 100, 3 classes, 5 informative
and 5 redundant columns (linear combinations of the informative ones) first (shuffle=False),
90 noise columns; scaled like wine. On it the table also gives the fraction of columns 0-9
among the k selected.

Every (data set, method, seed) runs in its own process (``--worker``) on ``--threads`` threads
(OMP/MKL/OpenBLAS and truesparse): the fit's wall time, and its memory as the growth of the
process's peak resident set during the fit (the data are loaded from a prepared .npz before,
so the peak before the fit is the interpreter, the libraries and the data). The seed drives
the selector, the random columns and both classifiers; the splits are fixed (seed 0).

Results: bench/results/feature_selection.json (every run: selected columns, accuracies, time,
memory) and feature_selection.md (the table), written atomically after every run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
RESULT_TAG = "@@RESULT "  # prefix of the stdout line a worker returns its JSON on
DATASETS = {  # name -> k
    "mnist5k": 50,
    "digits": 16,
    "wine": 5,
    "breast_cancer": 8,
    "synthetic": 10,
}
SYNTHETIC_RELEVANT = 10  # columns 0-9: 5 informative, 5 redundant
METHODS = (
    "QuickSelection",
    "NeuroFS",
    "mutual_info",
    "anova_f",
    "l1_linear_svc",
    "l1_logistic",
    "random_forest",
    "random",
    "all",
)


# -- data (parent) -------------------------------------------------------------------------------
def load(name: str):
    """(X_train, y_train, X_test, y_test), float32 features."""
    from sklearn.preprocessing import MinMaxScaler

    from truesparse import datasets

    if name in ("mnist5k", "digits"):  # already in [0, 1]
        return datasets.load(name, seed=0)
    if name == "synthetic":
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=2500,
            n_features=100,
            n_informative=5,
            n_redundant=5,
            n_repeated=0,
            n_classes=3,
            n_clusters_per_class=2,
            shuffle=False,
            random_state=0,
        )
    else:
        from sklearn import datasets as skd

        X, y = getattr(skd, f"load_{name}")(return_X_y=True)
    X_train, y_train, X_test, y_test = datasets.stratified_split(X, y, 0.2, seed=0)
    scaler = MinMaxScaler().fit(X_train)
    return (
        scaler.transform(X_train).astype(np.float32),
        y_train.astype(np.int64),
        scaler.transform(X_test).astype(np.float32),
        y_test.astype(np.int64),
    )


# -- one run (worker) ----------------------------------------------------------------------------
def make_selector(method: str, k: int, seed: int, epochs):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_selection import (
        SelectFromModel,
        SelectKBest,
        f_classif,
        mutual_info_classif,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    from truesparse.feature_selection import NeuroFS, QuickSelection

    ours = {} if epochs is None else {"epochs": epochs}
    top_k = dict(max_features=k, threshold=-np.inf)
    if method == "QuickSelection":
        return QuickSelection(k, random_state=seed, **ours)
    if method == "NeuroFS":
        return NeuroFS(k, random_state=seed, **ours)
    if method == "mutual_info":
        return SelectKBest(lambda X, y: mutual_info_classif(X, y, random_state=seed), k=k)
    if method == "anova_f":
        return SelectKBest(f_classif, k=k)
    if method == "l1_linear_svc":
        svc = LinearSVC(penalty="l1", dual=False, C=1.0, max_iter=5000, random_state=seed)
        return SelectFromModel(svc, **top_k)
    if method == "l1_logistic":
        lr = LogisticRegression(l1_ratio=1.0, solver="saga", C=1.0, max_iter=300, random_state=seed)
        return SelectFromModel(lr, **top_k)
    if method == "random_forest":
        rf = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
        return SelectFromModel(rf, **top_k)
    raise ValueError(f"unknown method {method!r}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def accuracies(X_train, y_train, X_test, y_test, seed: int) -> dict:
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    et = ExtraTreesClassifier(n_estimators=50, random_state=seed, n_jobs=1)
    svm = make_pipeline(StandardScaler(), LinearSVC(C=1.0, max_iter=10000, random_state=seed))
    return {
        "extra_trees": float(et.fit(X_train, y_train).score(X_test, y_test)),
        "linear_svm": float(svm.fit(X_train, y_train).score(X_test, y_test)),
    }


def worker(args) -> None:
    import truesparse as ts

    ts.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # convergence and constant-feature warnings of baselines
    with np.load(args.data) as f:
        X_train, y_train, X_test, y_test = (
            f[n] for n in ("X_train", "y_train", "X_test", "y_test")
        )
        k = int(f["k"])
    D = X_train.shape[1]
    seed, method = args.seed, args.method
    selector = None
    if method not in ("all", "random"):  # built (and its modules imported) before the clock
        selector = make_selector(method, k, seed, args.epochs)
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    if method == "all":
        columns = np.arange(D)
    elif method == "random":
        columns = np.sort(np.random.default_rng(seed).choice(D, size=k, replace=False))
    else:
        columns = selector.fit(X_train, y_train).get_support(indices=True)
    fit_seconds = time.perf_counter() - start
    rss_after = peak_rss_mb()
    result = {
        "method": method,
        "seed": seed,
        "k": len(columns),
        "columns": [int(c) for c in columns],
        "fit_seconds": fit_seconds if method not in ("all", "random") else 0.0,
        "rss_before_fit_mb": rss_before,
        "peak_rss_mb": rss_after,
        "fit_peak_growth_mb": rss_after - rss_before,
        "threads": ts.get_num_threads(),
    }
    result.update(accuracies(X_train[:, columns], y_train, X_test[:, columns], y_test, seed))
    print(RESULT_TAG + json.dumps(result), flush=True)


# -- the table -----------------------------------------------------------------------------------
def mean_std(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.pstdev(values):.1f}"


def table(payload: dict) -> str:
    runs, info = payload["runs"], payload["datasets"]
    lines = [
        f"Feature selection: accuracy of fixed classifiers on the k selected columns (test split,"
        f" %, mean ± std over seeds {payload['config']['seeds']}), the selector's fit time "
        f"(median s) and the growth of the worker's peak RSS during the fit (max MB), "
        f"{payload['config']['threads']} thread(s), {payload['machine']}.",
        "",
    ]
    for name, d in info.items():
        synthetic = name == "synthetic"
        lines.append(
            f"**{name}**: {d['n_train']} train / {d['n_test']} test, {d['n_features']} features, "
            f"{d['n_classes']} classes, k = {d['k']}"
        )
        lines.append("")
        head = "| selector | ExtraTrees | linear SVM |"
        rule = "|---|---|---|"
        if synthetic:
            head += " relevant found |"
            rule += "---|"
        lines += [head + " fit s | fit MB |", rule + "---|---|"]
        for method in payload["config"]["methods"]:
            rs = [r for r in runs if r["dataset"] == name and r["method"] == method]
            if not rs:
                continue
            row = f"| {method} | {mean_std(r['extra_trees'] for r in rs)} | "
            row += f"{mean_std(r['linear_svm'] for r in rs)} |"
            if synthetic:
                found = [
                    sum(c < SYNTHETIC_RELEVANT for c in r["columns"]) / SYNTHETIC_RELEVANT
                    for r in rs
                ]
                row += f" {mean_std(found)} |" if method != "all" else " — |"
            if method in ("all", "random"):
                row += " — | — |"
            else:
                row += f" {statistics.median(r['fit_seconds'] for r in rs):.2f} |"
                row += f" {max(r['fit_peak_growth_mb'] for r in rs):.0f} |"
            lines.append(row)
        lines.append("")
    if not payload["complete"]:
        lines.append("_Incomplete: the run was stopped; the table shows the runs that finished._")
    return "\n".join(lines) + "\n"


def write(payload: dict, out_dir: str) -> None:
    from truesparse.io import write_json_atomic, write_text_atomic

    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(os.path.join(out_dir, "feature_selection.json"), payload)
    write_text_atomic(os.path.join(out_dir, "feature_selection.md"), table(payload))


def versions() -> dict:
    import sklearn

    from truesparse.config import versions as truesparse_versions

    return {**truesparse_versions(), "scikit-learn": sklearn.__version__}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of both sparse selectors (smoke runs)"
    )
    p.add_argument("--out-dir", default=RESULTS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.datasets.split(",")
    methods = args.methods.split(",")
    for n in names:
        if n not in DATASETS:
            p.error(f"unknown data set {n!r}; choose from {', '.join(DATASETS)}")
    for m in methods:
        if m not in METHODS:
            p.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    payload = {
        "config": {
            "seeds": seeds,
            "datasets": names,
            "methods": methods,
            "threads": args.threads,
            "epochs": args.epochs,
        },
        "versions": versions(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
        "datasets": {},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name in names:
            X_train, y_train, X_test, y_test = load(name)
            files[name] = os.path.join(tmp, f"{name}.npz")
            np.savez(files[name], X_train=X_train, y_train=y_train, X_test=X_test,
                     y_test=y_test, k=DATASETS[name])  # fmt: skip
            payload["datasets"][name] = {
                "n_train": len(X_train),
                "n_test": len(X_test),
                "n_features": X_train.shape[1],
                "n_classes": int(len(np.unique(y_train))),
                "k": DATASETS[name],
            }
        for name in names:
            for seed in seeds:
                for method in methods:
                    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--data",
                           files[name], "--method", method, "--seed", str(seed), "--threads",
                           str(args.threads)]  # fmt: skip
                    if args.epochs is not None:
                        cmd += ["--epochs", str(args.epochs)]
                    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    lines = [x for x in done.stdout.splitlines() if x.startswith(RESULT_TAG)]
                    if done.returncode != 0 or not lines:
                        sys.exit(f"{name} {method} seed {seed} failed:\n{done.stderr}")
                    run = {"dataset": name, **json.loads(lines[-1][len(RESULT_TAG) :])}
                    payload["runs"].append(run)
                    print(
                        f"{name:13s} {method:15s} seed {seed}: ET {run['extra_trees']:.4f} "
                        f"SVM {run['linear_svm']:.4f} fit {run['fit_seconds']:.2f} s "
                        f"+{run['fit_peak_growth_mb']:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
                    write(payload, args.out_dir)
    payload["complete"] = True
    payload["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write(payload, args.out_dir)
    print(table(payload))


if __name__ == "__main__":
    main()
