"""docs/study.md runs: its Python blocks are executed in order, in one namespace, in a
temporary directory, and their own assertions check what the page claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parent.parent / "docs" / "study.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", STUDY.read_text(encoding="utf-8"), re.S)


def test_the_page_has_its_steps():
    assert len(blocks()) >= 8


def test_the_study_runs(tmp_path, monkeypatch, capsys):
    for package in ("sklearn", "matplotlib", "torch"):
        pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks()):
        exec(compile(code, f"docs/study.md block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "5 of 12 epochs" in out
    assert re.search(r"test accuracy 0\.9\d\d after 12 epochs", out), out
    for name in ("run.tsck", "curves.png", "topology.png", "weights.npz"):
        assert (tmp_path / name).stat().st_size > 0
