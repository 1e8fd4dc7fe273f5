"""Tests of run configuration files (truesparse.config and ``truesparse train --config``):
every option of ``train`` can be given in a TOML file under its name (dashes or underscores),
checked by the command line's own rules; the command line overrides the file; bad files end
with the CLI's one-line error and exit status 2. A run's JSON output records every option's
effective value and the versions used, and running ``train`` again from that configuration
(as a TOML file, as arguments, or from the JSON file itself) gives the identical result."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import scipy

import truesparse as ts
from truesparse import cli
from truesparse import config as tsconfig

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli")


def train_parser():
    return cli._make_parser().parse_args(["train"]).parser


def run_cli(args, capsys):
    """(exit status, stdout, stderr) of the command line; SystemExit counts as a status."""
    try:
        status = cli.main(args)
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def config_file(tmp_path, text):
    """A TOML configuration file holding text, in tmp_path."""
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check_one_line_error(status, err, *parts):
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("truesparse train: error: ")
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err


# --- checking a table against the parser ----------------------------------------------------


def test_every_train_option_can_be_given():
    parser = train_parser()
    known = tsconfig.options(parser)
    flags = {a.dest for a in parser._actions if a.option_strings}
    assert set(known) == flags - {"help", "config", "resume"}  # no file names another to read
    assert {"dataset", "sizes", "density", "batch_size", "nesterov", "json", "save"} <= set(known)


def test_values_are_converted_by_the_command_line_rules():
    values = tsconfig.check(
        {
            "dataset": "digits",
            "sizes": [32, 16],
            "densities": "0.5,0.25,1",
            "batch-size": 50,
            "lr": 1,  # an integer for a float option
            "momentum": 0.5,
            "nesterov": False,
            "batch_norm": True,
            "optimizer": "adam",
            "operand-dtype": "bfloat16",
            "delta_t": None,  # JSON null: not given
        },
        train_parser(),
    )
    assert values == {
        "dataset": "digits",
        "sizes": [32, 16],
        "densities": [0.5, 0.25, 1.0],
        "batch_size": 50,
        "lr": 1.0,
        "momentum": 0.5,
        "nesterov": False,
        "batch_norm": True,
        "optimizer": "adam",
        "operand_dtype": "bfloat16",
    }
    assert tsconfig.check({"sizes": []}, train_parser()) == {"sizes": []}


BAD_TABLES = {
    "unknown key": ({"epoch": 2}, ["unknown option 'epoch'", "did you mean 'epochs'"]),
    "the config itself": ({"config": "other.toml"}, ["unknown option 'config'"]),
    "twice": ({"batch-size": 10, "batch_size": 20}, ["'batch_size'", "'batch-size'"]),
    "integer as text": ({"epochs": "ten"}, ["epochs:", "expected an integer"]),
    "integer as float": ({"epochs": 2.5}, ["epochs:", "expected an integer"]),
    "integer as bool": ({"epochs": True}, ["epochs:", "boolean"]),
    "out of range": ({"density": 1.5}, ["density:", "(0, 1]"]),
    "flag as text": ({"batch_norm": "yes"}, ["batch_norm:", "true or false"]),
    "flag as number": ({"nesterov": 1}, ["nesterov:", "true or false"]),
    "string as number": ({"path": 5}, ["path:", "expected a string"]),
    "bad choice": ({"activation": "swish"}, ["activation:", "invalid choice", "'relu'"]),
    "operand dtype": (
        {"operand_dtype": "float16"},
        ["operand_dtype:", "invalid choice 'float16'", "'float32', 'bfloat16'"],
    ),
    "list item": ({"sizes": [32, "x"]}, ["sizes:", "'x'"]),
    "list of lists": ({"sizes": [[32]]}, ["sizes:", "array of numbers"]),
    "table": ({"lr": {"value": 0.1}}, ["lr:", "table"]),
    "exclusive": ({"density": 0.5, "epsilon": 2}, ["'density'", "'epsilon'", "exclude"]),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_tables(case):
    table, parts = BAD_TABLES[case]
    with pytest.raises(tsconfig.ConfigError) as info:
        tsconfig.check(table, train_parser())
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


# --- reading files --------------------------------------------------------------------------


def test_read_toml_and_json(tmp_path):
    toml = config_file(tmp_path, 'dataset = "digits"\nsizes = [32]\n')
    assert tsconfig.read(toml) == {"dataset": "digits", "sizes": [32]}
    plain = tmp_path / "options.json"
    plain.write_text('{"epochs": 3}', encoding="utf-8")
    assert tsconfig.read(plain) == {"epochs": 3}
    output = tmp_path / "run.json"  # the output of truesparse train --json: its config
    output.write_text(json.dumps({"config": {"epochs": 4}, "history": {}}), encoding="utf-8")
    assert tsconfig.read(output) == {"epochs": 4}


BAD_FILES = {
    "missing": (None, "no such file"),
    "invalid TOML": ("epochs = \n", "invalid TOML"),
    "invalid JSON": ("{", "invalid JSON"),
    "JSON list": ("[1, 2]", "expected a table of options"),
    "not UTF-8": (b"\xff\xfe\x00", "not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_name_the_file(case, tmp_path):
    content, part = BAD_FILES[case]
    path = tmp_path / ("run.json" if "JSON" in case else "run.toml")
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(tsconfig.ConfigError) as info:
        tsconfig.from_file(path, train_parser())
    message = str(info.value)
    assert message.startswith(str(path)) and part in message and "\n" not in message


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(tsconfig.ConfigError, match="is a directory"):
        tsconfig.read(tmp_path)


# --- writing a configuration back -----------------------------------------------------------


def test_to_toml_and_to_arguments_round_trip():
    parser = train_parser()
    config = {
        "dataset": "digits",
        "path": None,
        "sizes": [32, 16],
        "densities": None,
        "epsilon": 2.5,
        "alpha": -0.01,
        "lr": 1e-05,
        "nesterov": False,
        "batch_norm": True,
        "quiet": False,
        "json": 'dir with "quotes"/run.json',
        "epochs": 3,
    }
    given = {key: value for key, value in config.items() if value is not None}
    text = tsconfig.to_toml(config)
    assert "path" not in text  # None: not given
    assert tsconfig.check(tomllib.loads(text), parser) == given
    argv = tsconfig.to_arguments(config, parser)
    assert "--no-nesterov" in argv and "--batch-norm" in argv and "--alpha=-0.01" in argv
    assert "--quiet" not in argv
    args = parser.parse_args(argv)
    for key, value in given.items():
        assert getattr(args, key) == value, key
    with pytest.raises(TypeError):
        tsconfig.to_toml({"x": {"nested": 1}})


# --- the command line -----------------------------------------------------------------------


def test_config_file_gives_the_options(tmp_path, capsys):
    path = config_file(
        tmp_path,
        'dataset = "digits"\nsizes = [32]\ndensity = 0.5\nepochs = 1\n'
        "batch-size = 50\nbatch_norm = true\nquiet = true\n",
    )
    out_file = tmp_path / "out.json"
    status, out, err = run_cli(["train", "--config", str(path), "--json", str(out_file)], capsys)
    assert status == 0, err
    assert out.startswith("final test accuracy")  # quiet came from the file
    config = json.loads(out_file.read_text())["config"]
    assert config["batch_size"] == 50 and config["batch_norm"] is True
    assert config["sizes"] == [32] and config["epochs"] == 1 and config["quiet"] is True


def test_command_line_overrides_the_file(tmp_path, capsys):
    path = config_file(
        tmp_path,
        'dataset = "digits"\nsizes = [32]\ndensity = 0.5\nepochs = 3\nquiet = true\n'
        "batch_norm = true\n",
    )
    out_file = tmp_path / "out.json"
    args = ["train", "--config", str(path), "--epochs", "1", "--epsilon", "2"]
    args += ["--no-quiet", "--no-batch-norm", "--json", str(out_file)]
    status, out, err = run_cli(args, capsys)
    assert status == 0, err
    assert "epoch" in out and "layers 64-32-10" in out  # not quiet any more
    config = json.loads(out_file.read_text())["config"]
    assert config["epochs"] == 1 and config["batch_norm"] is False
    # --epsilon on the command line replaces the file's density (they exclude each other).
    assert config["epsilon"] == 2.0 and config["density"] is None
    # The file's dataset and sizes stay.
    assert config["dataset"] == "digits" and config["sizes"] == [32]


@pytest.mark.parametrize(
    "content, parts",
    [
        ('dataset = "digits"\nepoch = 2\n', ["unknown option 'epoch'", "did you mean 'epochs'"]),
        ('dataset = "digits"\nepochs = "two"\n', ["epochs:", "expected an integer"]),
        ('dataset = "digits"\nbatch_norm = 1\n', ["batch_norm:", "true or false"]),
        ("epochs = \n", ["invalid TOML"]),
    ],
    ids=["unknown key", "wrong type", "flag", "syntax"],
)
def test_bad_config_exits_2_with_one_line(content, parts, tmp_path, capsys):
    path = config_file(tmp_path, content)
    status, _, err = run_cli(["train", "--config", str(path)], capsys)
    check_one_line_error(status, err, f"--config {path}:", *parts)


def test_operand_dtype_from_the_file(tmp_path, capsys):
    path = config_file(
        tmp_path,
        'dataset = "digits"\nsizes = [32]\ndensity = 0.5\nepochs = 1\nquiet = true\n'
        'operand-dtype = "bfloat16"\n',
    )
    checkpoint = tmp_path / "run.tsck"
    status, _, err = run_cli(["train", "--config", str(path), "--save", str(checkpoint)], capsys)
    assert status == 0, err
    model = ts.load(checkpoint)
    assert model._architecture()["operand_dtype"] == "bfloat16"
    assert model.metadata["config"]["operand_dtype"] == "bfloat16"
    # With dtype float64 from the command line: the model's message, before any training.
    status, out, err = run_cli(["train", "--config", str(path), "--dtype", "float64"], capsys)
    check_one_line_error(status, err, "[MLP] operand_dtype='bfloat16' needs dtype float32")
    assert out == ""
    bad = tmp_path / "bad.toml"
    bad.write_text('dataset = "digits"\noperand_dtype = "bf16"\n', encoding="utf-8")
    status, _, err = run_cli(["train", "--config", str(bad)], capsys)
    check_one_line_error(status, err, f"--config {bad}: operand_dtype: invalid choice 'bf16'")


def test_missing_config_file_exits_2(tmp_path, capsys):
    path = tmp_path / "nowhere.toml"
    status, _, err = run_cli(["train", "--config", str(path)], capsys)
    check_one_line_error(status, err, str(path), "no such file")


def test_dataset_is_still_required(tmp_path, capsys):
    path = config_file(tmp_path, "epochs = 1\n")
    for args in (["train"], ["train", "--config", str(path)]):
        status, _, err = run_cli(args, capsys)
        assert status == 2 and "--dataset is required" in err


# --- repeating a run from its JSON output ---------------------------------------------------


def result_of(path) -> dict:
    """What must repeat exactly: everything but the times, the output path and versions."""
    run = json.loads(path.read_text())
    history = {key: values for key, values in run["history"].items() if key != "time"}
    return {
        "history": history,
        "sizes": run["sizes"],
        "layers": run["layers"],
        "topology": run["topology"],
        "degrees": run["degrees"],
        "test_loss": run["test_loss"],
        "test_accuracy": run["test_accuracy"],
    }


FIRST_RUN = [
    "train",
    "--dataset",
    "digits",
    "--sizes",
    "24,16",
    "--densities",
    "0.4,0.5,1",
    "--epochs",
    "2",
    "--batch-size",
    "64",
    "--lr",
    "0.05",
    "--no-nesterov",
    "--batch-norm",
    "--dropout",
    "0.1",
    "--schedule",
    "cosine",
    "--evolution",
    "set",
    "--zeta",
    "0.2",
    "--seed",
    "3",
    "--quiet",
]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    pytest.importorskip("sklearn")
    directory = tmp_path_factory.mktemp("first")
    path = directory / "run.json"
    assert cli.main([*FIRST_RUN, "--json", str(path)]) == 0
    return path


def test_json_records_every_option_and_the_versions(first_run):
    run = json.loads(first_run.read_text())
    parser = train_parser()
    assert list(run["config"]) == list(tsconfig.options(parser))  # every option, in order
    config = run["config"]
    assert config["sizes"] == [24, 16] and config["densities"] == [0.4, 0.5, 1.0]
    assert config["nesterov"] is False and config["batch_norm"] is True
    assert config["density"] is None and config["epsilon"] is None  # not given
    assert config["momentum"] == 0.9 and config["weight_init"] == "he_normal"  # defaults
    assert config["json"] == str(first_run)
    versions = run["versions"]
    assert versions["truesparse"] == ts.__version__ == run["truesparse_version"]
    assert versions["numpy"] == np.__version__ and versions["scipy"] == scipy.__version__
    assert versions["python"] == platform.python_version()
    assert versions["mkl"] == ts.mkl_version()
    assert versions["platform"] == platform.platform()


def test_repeat_from_toml(first_run, tmp_path, capsys):
    config = json.loads(first_run.read_text())["config"]
    config["json"] = str(tmp_path / "again.json")
    toml = tmp_path / "again.toml"
    toml.write_text(tsconfig.to_toml(config), encoding="utf-8")
    status, _, err = run_cli(["train", "--config", str(toml)], capsys)
    assert status == 0, err
    assert result_of(tmp_path / "again.json") == result_of(first_run)


def test_repeat_from_arguments(first_run, tmp_path, capsys):
    config = json.loads(first_run.read_text())["config"]
    config["json"] = str(tmp_path / "again.json")
    argv = ["train", *tsconfig.to_arguments(config, train_parser())]
    status, _, err = run_cli(argv, capsys)
    assert status == 0, err
    assert result_of(tmp_path / "again.json") == result_of(first_run)


def test_repeat_from_the_json_output_itself(first_run, tmp_path, capsys):
    again = tmp_path / "again.json"
    status, _, err = run_cli(["train", "--config", str(first_run), "--json", str(again)], capsys)
    assert status == 0, err
    assert result_of(again) == result_of(first_run)
    assert json.loads(again.read_text())["config"]["json"] == str(again)
