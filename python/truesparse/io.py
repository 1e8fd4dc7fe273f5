"""Files that are never seen half-written: the one atomic writer of the package (checkpoints,
exported weights, the CLI's JSON results, the benchmarks' result files).

A file is written to a temporary file in the target's directory, flushed to disk, and then
moved over the target in one ``os.replace``; on any error the temporary file is removed and
an existing target is left as it was.

It also holds the checks of the path arguments of the package's file functions
(:func:`path_argument`, :func:`file_to_read`, :func:`file_to_write`): each error starts with
``[op]`` and names the parameter and the value it got.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Optional

from ._checks import _got, choice, integer, show

__all__ = [
    "atomic_file",
    "file_to_read",
    "file_to_write",
    "path_argument",
    "write_json_atomic",
    "write_text_atomic",
]


# -- path arguments ----------------------------------------------------------------------------
def path_argument(path, op: str, name: str = "path") -> str:
    """``path`` (a ``str`` or an ``os.PathLike`` of ``str``, not empty) as a ``str``: a
    TypeError for any other type (bytes included), a ValueError for ``""``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"[{op}] {name} must be a str or os.PathLike, got {_got(path)}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(
            f"[{op}] {name} must be a str or os.PathLike of str, got {show(path)} "
            f"({type(text).__name__})"
        )
    if not text:
        raise ValueError(f"[{op}] {name} must not be empty, got ''")
    return text


def file_to_read(path, op: str, name: str = "path") -> str:
    """:func:`path_argument`, naming an existing file (FileNotFoundError otherwise)."""
    text = path_argument(path, op, name)
    if not os.path.isfile(text):
        what = " (it is a directory)" if os.path.isdir(text) else ""
        raise FileNotFoundError(f"[{op}] no such file: {text!r}{what}")
    return text


def file_to_write(path, op: str, name: str = "path") -> str:
    """:func:`path_argument`, naming a file that can be written: its directory exists and it
    is not itself a directory (ValueError otherwise)."""
    text = path_argument(path, op, name)
    if not os.path.isdir(os.path.dirname(os.path.abspath(text))):
        raise ValueError(f"[{op}] the directory of {text!r} does not exist")
    if os.path.isdir(text):
        raise ValueError(f"[{op}] {name} {text!r} is a directory")
    return text


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` "wb" or "w", the latter
    UTF-8); when the block ends without an error, flush it to disk and move it over ``path``.
    On any error (or ``KeyboardInterrupt``) the temporary file is removed and ``path`` is left
    as it was."""
    mode = choice(mode, ("wb", "w"), "mode", "atomic_file")
    path = Path(path_argument(path, "atomic_file"))
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would have.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    if not isinstance(text, str):
        raise TypeError(f"[write_text_atomic] text must be a str, got {_got(text)}")
    path = path_argument(path, "write_text_atomic")
    with atomic_file(path, "w") as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, obj, *, indent: Optional[int] = 2) -> None:
    """Write ``obj`` as JSON (no NaN or infinity: they are not JSON) to ``path`` atomically.
    The object is serialised before anything is written, so a bad object leaves no file.
    ``indent``: spaces per level (an integer >= 0), or None for one line."""
    if indent is not None:
        indent = integer(indent, "indent", "write_json_atomic", minimum=0)
    path = path_argument(path, "write_json_atomic")
    write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
