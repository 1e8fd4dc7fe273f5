"""truesparse.io: the one atomic writer. A file is replaced whole or not at all."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

import processes
from truesparse import cli, io


def test_write_json_atomic(tmp_path):
    path = tmp_path / "result.json"
    io.write_json_atomic(path, {"a": [1, 2.5]})
    assert json.loads(path.read_text()) == {"a": [1, 2.5]}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

    # A failure while serialising leaves the previous file intact and no temporary behind.
    with pytest.raises(TypeError):
        io.write_json_atomic(path, {"a": object()})
    with pytest.raises(ValueError, match="Out of range float"):
        io.write_json_atomic(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": [1, 2.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert cli.write_json_atomic is io.write_json_atomic  # the CLI's name is the same writer


def test_write_text_atomic_keeps_the_mode_of_an_existing_file(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("old\n")
    path.chmod(0o640)
    io.write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_writer_killed_mid_write_leaves_the_previous_file(tmp_path):
    """SIGKILL while the new content is being written: the old file is still whole."""
    path = tmp_path / "result.txt"
    io.write_text_atomic(path, "previous\n")
    code = textwrap.dedent(
        f"""
        import os, signal
        from truesparse import io
        def die(fd):  # the new text is written but not yet renamed into place
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        io.write_text_atomic({str(path)!r}, "x" * 10_000_000)
        """
    )
    proc = processes.run_python(code)
    assert proc.returncode == -9
    assert path.read_text() == "previous\n"
