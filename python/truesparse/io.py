"""Files that are never seen half-written: the one atomic writer of the package (checkpoints,
exported weights, the CLI's JSON results, the benchmarks' result files).

A file is written to a temporary file in the target's directory, flushed to disk, and then
moved over the target in one ``os.replace``; on any error the temporary file is removed and
an existing target is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_file", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` "wb" or "w", the latter
    UTF-8); when the block ends without an error, flush it to disk and move it over ``path``.
    On any error (or ``KeyboardInterrupt``) the temporary file is removed and ``path`` is left
    as it was."""
    if mode not in ("wb", "w"):
        raise ValueError(f"[atomic_file] mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
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
    with atomic_file(path, "w") as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, obj, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON (no NaN or infinity: they are not JSON) to ``path`` atomically.
    The object is serialised before anything is written, so a bad object leaves no file."""
    write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
