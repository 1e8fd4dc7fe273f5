"""Child processes started by tests. Every one is ended, reaped and its pipes closed when the
test leaves, even when it fails or times out, so that one failing test cannot fail the next
(pytest turns a still-running child's ``ResourceWarning`` into an error)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from typing import Iterator, Sequence

TIMEOUT = 120  # seconds: far above what any child here needs, so only a hang reaches it


def run(args: Sequence[str], timeout: float = TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` with captured text output and a timeout (after which the child is
    killed and reaped, and ``TimeoutExpired`` raised)."""
    return subprocess.run(
        list(args), capture_output=True, text=True, check=False, timeout=timeout, **kwargs
    )


def run_python(code: str, timeout: float = TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    """Runs ``python -c code`` in a new interpreter (see :func:`run`)."""
    return run([sys.executable, "-c", code], timeout=timeout, **kwargs)


@contextlib.contextmanager
def started_python(code: str, *, sigint: str = "default") -> Iterator[subprocess.Popen]:
    """A running ``python -c code`` with text pipes, for tests that talk to it while it runs.
    ``sigint`` is the SIGINT disposition it starts with, ``"default"`` or ``"ignored"`` (as a
    background job of a non-interactive shell starts), whatever the test runner's own is."""
    disposition = {"default": signal.SIG_DFL, "ignored": signal.SIG_IGN}[sigint]
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
