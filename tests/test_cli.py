"""Tests of the ``truesparse`` command line (truesparse.cli), run in-process through main().

A short training run on scikit-learn's digits checks the printed header, the per-epoch lines,
the final line and the --json file; bad arguments and engine errors must exit with status 2
and one message on stderr, without a traceback.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

import processes
import truesparse as ts
from conftest import match_all
from truesparse import cli, datasets

DIGITS = ["train", "--dataset", "digits", "--sizes", "32", "--density", "0.5", "--epochs", "2"]
HISTORY_KEYS = ["loss", "accuracy", "val_loss", "val_accuracy", "time"]


@pytest.fixture(autouse=True)
def _needs_digits():
    pytest.importorskip("sklearn")


def epoch_lines(out: str) -> list[list[float]]:
    """The per-epoch table rows: epoch, train loss, train acc, test loss, test acc, time."""
    rows = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit():
            rows.append([float(f) for f in fields])
    return rows


def layer_lines(out: str) -> list[list[str]]:
    """The header's layer rows: index, 'out', 'x', 'in', kind, density, nnz."""
    rows = [line.split() for line in out.splitlines()]
    return [r for r in rows if len(r) == 7 and r[0].isdigit() and r[2] == "x"]


def test_train_digits(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    assert cli.main([*DIGITS, "--json", str(out_file)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert captured.err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"truesparse {ts.__version__}")
    assert "1438 train, 359 test, 64 features, 10 classes" in lines[0]
    assert (
        f"layers 64-32-10 | activation relu | float32 | threads {ts.get_num_threads()}" in lines[1]
    )

    layers = layer_lines(out)
    assert [(int(r[1]), int(r[3])) for r in layers] == [(32, 64), (10, 32)]

    rows = epoch_lines(out)
    assert [r[0] for r in rows] == [1, 2]
    for _, loss, acc, val_loss, val_acc, seconds in rows:
        assert loss > 0 and val_loss > 0 and seconds >= 0
        assert 0 <= acc <= 1 and 0 <= val_acc <= 1
    assert lines[-1].startswith("final test accuracy")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary left
    record = json.loads(out_file.read_text())
    assert record["sizes"] == [64, 32, 10]
    assert record["config"]["density"] == 0.5 and record["config"]["epochs"] == 2
    assert record["interrupted"] is False
    assert [layer["shape"] for layer in record["layers"]] == [[32, 64], [10, 32]]
    assert [layer["nnz"] for layer in record["layers"]] == [
        int(r[6].replace(",", "")) for r in layers
    ]
    history = record["history"]
    assert sorted(history) == sorted(HISTORY_KEYS)
    assert all(len(history[key]) == 2 for key in HISTORY_KEYS)
    # The printed table shows the recorded history.
    for row, loss, val_acc in zip(rows, history["loss"], history["val_accuracy"]):
        assert row[1] == pytest.approx(loss, abs=5e-5)
        assert row[4] == pytest.approx(val_acc, abs=5e-5)
    # The final evaluation is of the model after the last epoch.
    assert record["test_accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    assert record["test_loss"] == pytest.approx(history["val_loss"][-1], rel=1e-4)
    assert record["test_accuracy"] > 0.2  # better than chance (0.1) after 2 short epochs


def test_train_quiet_dense_layer_and_threads(capsys, restore_threads):
    args = [*DIGITS[:-4], "--densities", "0.5,1", "--epochs", "1", "--threads", "1", "--quiet"]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("final test accuracy")

    assert cli.main(args[:-1]) == 0
    out = capsys.readouterr().out
    assert "threads 1" in out
    assert [r[4] for r in layer_lines(out)] == ["sparse", "dense"]


def test_train_with_batch_norm_dropout_schedule_and_evolution(capsys):
    args = [
        *DIGITS[:-4],
        "--epochs",
        "2",
        "--batch-norm",
        "--dropout",
        "0.1",
        "--label-smoothing",
        "0.05",
        "--schedule",
        "cosine",
        "--warmup-steps",
        "5",
        "--optimizer",
        "adamw",
        "--lr",
        "0.003",
        "--evolution",
        "rigl",
        "--delta-t",
        "10",
    ]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert len(epoch_lines(out)) == 2
    assert "final test accuracy" in out


def test_train_epsilon_and_no_hidden_layer(capsys):
    args = ["train", "--dataset", "digits", "--sizes", "", "--epsilon", "2", "--epochs", "1"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "layers 64-10 |" in out
    assert len(epoch_lines(out)) == 1


def test_json_overwrites_previous_file(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    out_file.write_text("old")
    assert cli.main([*DIGITS[:-1], "1", "--quiet", "--json", str(out_file)]) == 0
    assert len(json.loads(out_file.read_text())["history"]["loss"]) == 1


BAD_ARGUMENTS = {
    "density zero": (["--density", "0"], "--density"),
    "density above one": (["--density", "1.5"], "--density"),
    "density nan": (["--density", "nan"], "--density"),
    "density and epsilon": (["--epsilon", "2"], "--epsilon"),
    "size not a number": (["--sizes", "32,x"], "--sizes"),
    "size zero": (["--sizes", "0"], "--sizes"),
    "densities count": (["--density", None, "--densities", "0.5"], "--densities"),
    "negative epochs": (["--epochs", "-1"], "--epochs"),
    "zero batch size": (["--batch-size", "0"], "--batch-size"),
    "zero learning rate": (["--lr", "0"], "--lr"),
    "momentum one": (["--momentum", "1"], "--momentum"),
    "unknown activation": (["--activation", "swish"], "--activation"),
    "unknown dataset": (["--dataset", "mnist6k"], "--dataset"),
    "stray path": (["--path", "."], "--path"),
    "mnist without path": (["--dataset", "mnist"], "--path"),
    "zero threads": (["--threads", "0"], "--threads"),
    "unknown dtype": (["--dtype", "float16"], "--dtype"),
    "unknown operand dtype": (["--operand-dtype", "bf16"], "--operand-dtype"),
    "json in missing directory": (["--json", "no/such/dir/run.json"], "--json"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_exit_2(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra, option = BAD_ARGUMENTS[case]
    args = list(DIGITS)
    if extra[1] is None:  # drop an option of DIGITS
        i = args.index(extra[0])
        del args[i : i + 2]
        extra = extra[2:]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and option in err
    assert "Traceback" not in err


def test_bfloat16_operands_of_float64_exit_2_before_loading_the_data(monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("the data set was loaded")

    monkeypatch.setattr(datasets, "load", no_data)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*DIGITS, "--dtype", "float64", "--operand-dtype", "bfloat16"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (  # the model's own message
        "truesparse train: error: [MLP] operand_dtype='bfloat16' needs dtype float32, got float64\n"
    )


def test_missing_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_missing_data_files_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--dataset", "mnist", "--path", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_engine_value_error_exits_2(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise ValueError("[MLP] the engine refuses")

    monkeypatch.setattr(ts, "MLP", refuse)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(DIGITS)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "truesparse train: error: [MLP] the engine refuses\n"


def test_interrupt_keeps_finished_epochs(monkeypatch, tmp_path, capsys):
    class Interrupted(ts.MLP):
        def fit(self, *args, **kwargs):
            kwargs["epochs"] = 1
            super().fit(*args, **kwargs)
            raise KeyboardInterrupt

    monkeypatch.setattr(ts, "MLP", Interrupted)
    out_file = tmp_path / "run.json"
    assert cli.main([*DIGITS, "--json", str(out_file)]) == 130
    assert "interrupted after 1 epochs" in capsys.readouterr().out
    record = json.loads(out_file.read_text())
    assert record["interrupted"] is True and len(record["history"]["loss"]) == 1


@pytest.mark.parametrize("loss", list(ts.model.LOSSES))
def test_every_loss_of_the_package_trains_from_the_cli(loss, capsys):
    """The CLI's choices are the package's name lists, so every loss can be chosen."""
    assert cli.main([*DIGITS[:-1], "1", "--loss", loss, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("final test accuracy")


def test_cli_choices_are_the_package_name_lists():
    from truesparse import density, evolution, layers, model, optim

    assert cli.LOSSES == list(model.LOSSES) and len(cli.LOSSES) == 5
    assert cli.ACTIVATIONS == list(layers.ACTIVATIONS)
    assert cli.INITS == list(model.WEIGHT_INITS)
    assert cli.ALLOCATIONS == list(density.ALLOCATIONS)
    assert cli.OPTIMIZERS == list(optim.OPTIMIZERS)
    assert cli.OPERAND_DTYPES == list(model.OPERAND_DTYPES) == ["float32", "bfloat16"]
    assert cli.EVOLUTIONS == ["none", *evolution.EVOLUTIONS]
    assert set(cli.SCHEDULES) <= set(optim.SCHEDULES)


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"truesparse {ts.__version__}\n")
    assert f"threads    {ts.get_num_threads()}" in out
    for name in ("mnist5k", "digits", "mnist", "cifar10"):
        assert f"  {name} " in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"truesparse {ts.__version__}\n"


def test_python_dash_m():
    result = processes.run([sys.executable, "-m", "truesparse", "info"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"truesparse {ts.__version__}")


def test_python_dash_m_bad_argument():
    result = processes.run(
        [sys.executable, "-m", "truesparse", "train", "--dataset", "digits", "--density", "2"]
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(match_all("truesparse train: error:", "--density", "(0, 1]"), result.stderr)


# --- topology in the JSON output, truesparse plot, the progress bar -------------------------

SET_RUN = [*DIGITS, "--evolution", "set", "--quiet"]


def test_json_records_topology_and_degrees(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    assert cli.main([*SET_RUN, "--json", str(out_file)]) == 0
    record = json.loads(out_file.read_text())
    sparse = [i for i, layer in enumerate(record["layers"]) if layer["sparse"]]
    # SET updates after every epoch but the last: one update here, one record per sparse layer.
    assert [r["layer"] for r in record["topology"]] == sparse
    for r in record["topology"]:
        assert set(r) == {
            "layer",
            "step",
            "nnz",
            "dropped",
            "grown",
            "reselected",
            "itop_rate",
            "in_degree_histogram",
            "out_degree_histogram",
        }  # the positions are left out
        assert r["step"] == 15 and r["dropped"] == r["grown"] > 0 and 0 < r["itop_rate"] <= 1
    for moment in ("start", "end"):
        assert [d["layer"] for d in record["degrees"][moment]] == sparse
        for d in record["degrees"][moment]:
            out, inp = d["shape"]
            assert sum(d["in_degree_histogram"]) == inp
            assert sum(d["out_degree_histogram"]) == out
            assert d["nnz"] == record["layers"][d["layer"]]["nnz"]
    # No update after the last epoch: the end is the last update's pattern.
    for d, r in zip(record["degrees"]["end"], record["topology"]):
        assert d["in_degree_histogram"] == r["in_degree_histogram"]
        assert d["out_degree_histogram"] == r["out_degree_histogram"]
    assert record["degrees"]["start"] != record["degrees"]["end"]


def test_static_run_records_no_topology(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    assert cli.main([*DIGITS, "--quiet", "--json", str(out_file)]) == 0
    record = json.loads(out_file.read_text())
    assert record["topology"] == []
    assert record["degrees"]["start"] == record["degrees"]["end"]


def _check_png(path):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib_image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image.shape


def test_plot_command(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    static, evolving = tmp_path / "static.json", tmp_path / "set.json"
    assert cli.main([*DIGITS, "--quiet", "--json", str(static)]) == 0
    assert cli.main([*SET_RUN, "--json", str(evolving)]) == 0
    capsys.readouterr()
    image = tmp_path / "set-run.png"
    assert cli.main(["plot", str(evolving), "-o", str(image), "--dpi", "40"]) == 0
    assert capsys.readouterr().out == f"wrote {image}\n"
    with_topology = _check_png(image)
    # Default output: beside the JSON file, with the suffix .png.
    assert cli.main(["plot", str(static), "--dpi", "40"]) == 0
    without_topology = _check_png(tmp_path / "static.png")
    assert with_topology[0] > without_topology[0]  # the topology rows below the curves


def test_plot_of_an_interrupted_run(tmp_path, capsys):
    """NaN values are written as null; the plot draws them as gaps."""
    pytest.importorskip("matplotlib")
    run = {"history": {"loss": [1.0, None], "accuracy": [0.5, None], "time": [0.1, 0.1]}}
    source = tmp_path / "run.json"
    source.write_text(json.dumps(run))
    assert cli.main(["plot", str(source), "--dpi", "40"]) == 0
    _check_png(tmp_path / "run.png")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("{", "not valid JSON"),
        ("[1, 2]", "not the output of 'truesparse train --json'"),
        ('{"history": {"accuracy": [0.5]}}', "cannot draw this run"),
    ],
    ids=["missing", "invalid", "not a run", "no loss"],
)
def test_plot_errors_name_the_file(content, message, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    source = tmp_path / "run.json"
    if content is not None:
        source.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", str(source)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("truesparse plot: error: ")
    assert str(source) in err and message in err
    assert not (tmp_path / "run.png").exists()


def test_plot_bad_output(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    source = tmp_path / "run.json"
    source.write_text(json.dumps({"history": {"loss": [1.0], "accuracy": [0.5]}}))
    for output, message in (("run.xyz", "cannot write 'xyz'"), ("no/such/dir/x.png", "--output")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["plot", str(source), "-o", str(tmp_path / output)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    source = tmp_path / "run.json"
    source.write_text(json.dumps({"history": {"loss": [1.0], "accuracy": [0.5]}}))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", str(source)])
    assert exit_info.value.code == 2
    assert 'pip install "truesparse[plot]"' in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--progress", "--no-progress", None])
def test_train_shows_a_progress_bar_per_epoch(option, capsys):
    pytest.importorskip("tqdm")
    assert cli.main([*DIGITS, *([option] if option else [])]) == 0
    captured = capsys.readouterr()
    assert len(epoch_lines(captured.out)) == 2  # the table is printed as before
    if option == "--progress":
        # Bars of 1438 examples, cleared at the end of each epoch (the table row follows);
        # tqdm redraws at most every 0.1 s, so the intermediate states may not show.
        assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err
        assert "/1438" in captured.err and "ex/s" in captured.err
        assert captured.err.endswith("\r")
    else:  # off, or automatic: captured stderr is not a terminal
        assert captured.err == ""


def test_progress_without_tqdm_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*DIGITS, "--progress"])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err
        == "truesparse train: error: --progress needs tqdm: pip install tqdm\n"
    )


def test_regression_data_set(tmp_path, capsys):
    """diabetes has real targets: one output, squared_error, no accuracy columns."""
    out_file = tmp_path / "run.json"
    args = ["train", "--dataset", "diabetes", "--sizes", "16", "--density", "0.5"]
    assert cli.main([*args, "--epochs", "2", "--lr", "0.0001", "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "10 features, a real target (regression)" in out and "layers 10-16-1 |" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    rows = [r for r in rows if len(r) == 5]
    assert [r[0] for r in rows] == ["1", "2"]
    for _, loss, test_loss, rmse, _ in rows:
        assert float(loss) > 0
        assert float(rmse) == pytest.approx(float(test_loss) ** 0.5, rel=1e-3)
    assert out.splitlines()[-1].startswith("final test loss")
    record = json.loads(out_file.read_text())
    assert record["task"] == "regression" and record["sizes"] == [10, 16, 1]
    assert record["config"]["loss"] == "squared_error"
    assert sorted(record["history"]) == ["loss", "time", "val_loss"]
    assert "test_accuracy" not in record and record["test_loss"] > 0
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, "--loss", "softmax_cross_entropy"])
    assert exit_info.value.code == 2
    assert "regression" in capsys.readouterr().err


# --- checkpoints: --save, --resume, evaluate ----------------------------------------------------
PLANNED_RUN = [
    "train", "--dataset", "digits", "--sizes", "64", "--density", "0.3", "--epochs", "6",
    "--lr", "0.05", "--schedule", "cosine", "--evolution", "rigl", "--delta-t", "10",
]  # fmt: skip


def comparable(run: dict) -> dict:
    """What a repeated run must reproduce exactly (not the times, paths or thread counts)."""
    history = {k: v for k, v in run["history"].items() if k != "time"}
    keep = ("sizes", "layers", "topology", "degrees", "test_loss", "test_accuracy")
    return {"history": history, **{k: run[k] for k in keep}}


def test_a_run_killed_and_resumed_equals_the_uninterrupted_run(tmp_path, capsys):
    assert cli.main([*PLANNED_RUN, "--quiet", "--json", str(tmp_path / "whole.json")]) == 0
    checkpoint = tmp_path / "run.tsck"
    command = [*PLANNED_RUN, "--save", str(checkpoint)]
    code = f"import sys; from truesparse import cli; sys.exit(cli.main({command!r}))"
    with processes.started_python(code) as proc:
        for line in proc.stdout:
            if line.split()[:1] == ["3"] and len(line.split()) == 6:
                break  # epoch 3 is done and saved
        proc.kill()  # during epoch 4 or its checkpoint
        proc.wait(timeout=60)
    capsys.readouterr()
    resumed = tmp_path / "resumed.json"
    assert cli.main(["train", "--resume", str(checkpoint), "--json", str(resumed)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"resuming .*run.tsck after epoch [34] of 6", out)
    whole, again = (json.loads(p.read_text()) for p in (tmp_path / "whole.json", resumed))
    assert comparable(again) == comparable(whole)
    assert again["checkpoint"] == str(checkpoint) and ts.load(checkpoint).planned_run["done"] == 6


def test_evaluate_a_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "m.tsck"
    assert cli.main([*DIGITS, "--seed", "3", "--quiet", "--save", str(checkpoint)]) == 0
    final = capsys.readouterr().out.splitlines()[-1]
    result = tmp_path / "eval.json"
    assert (
        cli.main(["evaluate", str(checkpoint), "--dataset", "digits", "--json", str(result)]) == 0
    )
    out = capsys.readouterr().out
    accuracy = re.search(r"final test accuracy (\S+)", final).group(1)
    assert f"test accuracy {accuracy}" in out  # the training run's split (seed 3) is reused
    record = json.loads(result.read_text())
    model = ts.load(checkpoint)
    X_train, y_train, X_test, y_test = datasets.load("digits", seed=3)
    assert record["test_loss"] == model.evaluate(X_test, y_test)["loss"]
    assert record["seed"] == 3 and record["examples"] == len(X_test)


def test_operand_dtype_reaches_the_model_its_checkpoint_and_resume(tmp_path, capsys):
    checkpoint, out_file = tmp_path / "bf16.tsck", tmp_path / "run.json"
    args = [*DIGITS, "--operand-dtype", "bfloat16", "--save", str(checkpoint)]
    assert cli.main([*args, "--json", str(out_file)]) == 0
    assert "| activation relu | float32 (bfloat16 operands) | threads" in capsys.readouterr().out
    model = ts.load(checkpoint)
    assert model._architecture()["operand_dtype"] == "bfloat16"
    assert model.metadata["config"]["operand_dtype"] == "bfloat16"
    assert json.loads(out_file.read_text())["config"]["operand_dtype"] == "bfloat16"
    # --resume takes it from the checkpoint's options; another one is refused, named.
    assert cli.main(["train", "--resume", str(checkpoint)]) == 0
    assert "float32 (bfloat16 operands)" in capsys.readouterr().out
    assert ts.load(checkpoint)._architecture()["operand_dtype"] == "bfloat16"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--resume", str(checkpoint), "--operand-dtype", "float32"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"truesparse train: error: --resume {checkpoint}: the model's operand dtype is "
        "bfloat16, the options give float32\n"
    )


def test_resume_takes_the_recorded_values_given_again(tmp_path, capsys):
    checkpoint = tmp_path / "run.tsck"
    assert cli.main([*DIGITS, "--quiet", "--save", str(checkpoint)]) == 0
    again = ["--activation", "relu", "--seed", "0", "--density", "0.5", "--dataset", "digits"]
    # the same values given again are no change (the run is complete: nothing more to train)
    assert cli.main(["train", "--resume", str(checkpoint), "--no-quiet", *again]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len(ts.load(checkpoint).history_["loss"]) == 2


def test_a_checkpoint_from_before_operand_dtype_resumes_with_float32(tmp_path, capsys):
    new, old = tmp_path / "new.tsck", tmp_path / "old.tsck"
    assert cli.main([*DIGITS, "--quiet", "--save", str(new)]) == 0
    model = ts.load(new)
    assert model._architecture()["operand_dtype"] == "float32"  # the default
    del model.metadata["config"]["operand_dtype"]  # options recorded before it existed
    model.save(old)
    capsys.readouterr()
    out_file = tmp_path / "run.json"
    assert cli.main(["train", "--resume", str(old), "--no-quiet", "--json", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "| activation relu | float32 | threads" in out and "operands" not in out
    assert json.loads(out_file.read_text())["config"]["operand_dtype"] == "float32"


@pytest.mark.parametrize(
    "args,message",
    [
        (["evaluate", "{missing}", "--dataset", "digits"], "no such file"),
        (["evaluate", "{text}", "--dataset", "digits"], "is not a truesparse checkpoint"),
        (["evaluate", "{model}", "--dataset", "diabetes"], "has 10 features but the model has 64"),
        (["train", "--resume", "{text}"], "--resume '"),
        (["train", "--resume", "{bare}"], "records no command-line options"),
        (["train", "--resume", "{model}", "--sizes", "8"], "the model's layers are 64-32-10"),
        # what the model was built as, and the data of its planned run, stay as recorded
        (
            ["train", "--resume", "{model}", "--activation", "tanh"],
            ": the run was started with --activation relu, the options give tanh (a resumed run",
        ),
        (
            ["train", "--resume", "{model}", "--seed", "4"],
            "started with --seed 0, the options give 4",
        ),
        (
            ["train", "--resume", "{model}", "--batch-norm"],
            "with --batch-norm off, the options give on",
        ),
        (
            ["train", "--resume", "{model}", "--dataset", "mnist5k"],
            "--dataset digits, the options give mnist5k",
        ),
        (
            ["train", "--resume", "{model}", "--epsilon", "5"],
            "started with --density 0.5, the options leave it out",
        ),
    ],
)
def test_checkpoint_errors_are_one_line(tmp_path, capsys, args, message):
    paths = {
        "missing": tmp_path / "missing.tsck",
        "text": tmp_path / "text.tsck",
        "model": tmp_path / "model.tsck",
        "bare": tmp_path / "bare.tsck",
    }
    paths["text"].write_text("not a checkpoint")
    assert cli.main([*DIGITS, "--quiet", "--save", str(paths["model"])]) == 0
    ts.MLP([64, 32, 10], density=0.5).save(paths["bare"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([a.format(**{k: str(v) for k, v in paths.items()}) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err, err


# -- truesparse select -----------------------------------------------------------------------------
SELECT = ["select", "--dataset", "digits", "--epochs", "2", "-k", "8"]


@pytest.mark.parametrize("method", ["quickselection", "neurofs"])
def test_select_prints_the_features_and_the_accuracy(method, tmp_path, capsys):
    from sklearn.ensemble import ExtraTreesClassifier

    from truesparse import feature_selection

    out_file = tmp_path / "select.json"
    assert cli.main([*SELECT, "--method", method, "--seed", "1", "--json", str(out_file)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{method} on digits: 8 of 64 features, 2 epochs, seed 1 | fit ")
    printed = [int(j) for j in lines[1].removeprefix("selected features: ").split()]
    accuracy = float(re.search(r"selected features (\S+)", lines[2]).group(1))

    # the selector and the classifier the command describes, on the split of --seed
    X_train, y_train, X_test, y_test = datasets.load("digits", seed=1)
    Selector = getattr(feature_selection, cli.SELECT_METHODS[method])
    selector = Selector(8, epochs=2, random_state=1).fit(X_train, y_train)
    expected = selector.get_support(indices=True).tolist()
    assert printed == expected
    trees = ExtraTreesClassifier(n_estimators=50, random_state=1)
    score = trees.fit(X_train[:, expected], y_train).score(X_test[:, expected], y_test)
    assert accuracy == pytest.approx(score, abs=5e-5)

    record = json.loads(out_file.read_text())
    assert record["selected"] == expected and record["k"] == 8 and record["epochs"] == 2
    assert record["method"] == method and record["dataset"] == "digits" and record["seed"] == 1
    assert record["test_accuracy"] == score
    assert record["importances"] == selector.feature_importances_.tolist()
    assert record["classifier"] == "ExtraTreesClassifier(n_estimators=50)"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", "65"], "[QuickSelection.fit] k must be an integer in [1, n_features] = [1, 64]"),
        (["--dataset", "diabetes"], "diabetes is a regression data set"),
        (["--dataset", "mnist"], "--dataset mnist needs --path DIR"),
        (["--path", "."], "--path is only for mnist and cifar10"),
        (["--json", "no/such/dir/out.json"], "--json no/such/dir/out.json: directory"),
        (["--json", "."], "--json .: is a directory"),
        # argparse's own checks: its usage, then the error line
        (["-k", "0"], "argument -k: must be >= 1, got 0"),
        (["--method", "lasso"], "argument --method: invalid choice: 'lasso'"),
        (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    ],
)
def test_select_errors_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*SELECT, *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if err.startswith("usage:"):  # argparse
        err = err.splitlines()[-1] + "\n"
    assert err.startswith("truesparse select: error: ") and err.count("\n") == 1, err
    assert message in err


def test_select_without_scikit_learn_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(SELECT)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "truesparse select: error: select needs scikit-learn >= 1.6: pip install scikit-learn\n"
    )
