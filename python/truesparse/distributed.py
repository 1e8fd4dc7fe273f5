"""Data-parallel training over MPI, through mpi4py (docs/distributed.md).

``model.fit(X, y, ..., comm=MPI.COMM_WORLD)`` trains one model on every rank of ``comm``:
each step, each rank computes the gradient of its part of the global batch, the gradients of
the stored weights (and biases, other parameters) are summed by one all-reduce of an
nnz-sized buffer, and every rank applies the same step. The engine does the slicing and the
packing (``cpp/include/truesparse/distributed.h``); this module gives it the all-reduce and
makes the ranks agree before and between epochs, so that an error on one rank ends every
rank with a message instead of a hang.

mpi4py is an optional dependency (``pip install "truesparse[mpi]"``, which also brings an MPI
from PyPI); the core package does not need it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Any, Optional

import numpy as np

__all__ = ["Communicator", "launched_by_mpiexec", "raised_on_every_rank", "root_rank", "world"]

# Environment variables that MPI launchers set in every rank (MPICH/Hydra and Intel MPI, Open
# MPI, PMIx): without one of them the command line never imports mpi4py (whose import starts
# MPI).
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def _mpi(op: str):
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            f"[{op}] data-parallel training needs mpi4py and an MPI library: "
            'pip install "truesparse[mpi]"'
        ) from e
    return MPI


def launched_by_mpiexec() -> bool:
    """Whether this process looks like a rank started by mpiexec/mpirun."""
    return any(v in os.environ for v in _LAUNCHER_VARIABLES)


def root_rank() -> bool:
    """Whether this process is rank 0 of an mpiexec job, or not started by one (from the
    launchers' environment, without starting MPI)."""
    for variable in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if variable in os.environ:
            return os.environ[variable] == "0"
    return True


def raised_on_every_rank(error: BaseException) -> bool:
    """Whether a data-parallel fit raised ``error`` on every rank at the same point (marked
    by fit; rank 0 then reports it for all)."""
    return bool(getattr(error, "truesparse_every_rank", False))


def world(op: str = "train") -> Optional["Communicator"]:
    """``MPI.COMM_WORLD`` as a :class:`Communicator` when this process was started by mpiexec
    with more than one rank, else None (one process: no MPI needed)."""
    if not launched_by_mpiexec():
        return None
    comm = _mpi(op).COMM_WORLD
    return Communicator(comm, op) if comm.Get_size() > 1 else None


class Communicator:
    """What ``fit`` needs of an mpi4py communicator: the all-reduce the engine calls, and the
    collective checks that keep the ranks in step."""

    def __init__(self, comm: Any, op: str) -> None:
        MPI = _mpi(op)
        if not isinstance(comm, MPI.Comm):
            raise TypeError(
                f"[{op}] comm must be an mpi4py communicator, got {type(comm).__name__}"
            )
        self._MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.op = op

    @property
    def root(self) -> bool:
        """Rank 0: the one that prints, writes files and checkpoints."""
        return self.rank == 0

    def threads_per_rank(self) -> int:
        """This process's CPUs divided among the ranks on its machine (at least 1)."""
        local = self.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            ranks_here = local.Get_size()
        finally:
            local.Free()
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cpus or 1) // ranks_here)

    def allreduce(self, buffer: np.ndarray) -> None:
        """Sum ``buffer`` over all ranks, in place (called by the engine once per step)."""
        self.comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)

    def agree(self, error: Optional[BaseException]) -> None:
        """Collective: every rank says whether it failed; if any did, every rank raises. The
        failing rank raises its own error; the others a RuntimeError naming it."""
        said = None if error is None else f"{type(error).__name__}: {error}"
        errors = self.comm.allgather(said)
        if error is not None:
            error.truesparse_every_rank = True
            raise error
        failed = [(rank, e) for rank, e in enumerate(errors) if e is not None]
        if failed:
            rank, message = failed[0]
            peer = RuntimeError(f"[{self.op}] rank {rank} of {self.size} failed: {message}")
            peer.truesparse_every_rank = True
            raise peer

    def same(self, value: Any, what: str) -> None:
        """Collective: ``value`` (bytes or a string) must be equal on every rank, or every rank
        raises ValueError naming ``what`` and the ranks that differ."""
        values = self.comm.allgather(value)
        differ = [rank for rank, v in enumerate(values) if v != values[0]]
        if differ:
            error = ValueError(
                f"[{self.op}] {what} differs between ranks (rank 0 and ranks {differ}); every "
                "rank must call fit with the same model and settings"
            )
            error.truesparse_every_rank = True
            raise error

    def total(self, value: int) -> list[int]:
        """Collective: ``value`` of every rank, in rank order."""
        return [int(v) for v in self.comm.allgather(int(value))]

    def abort(self, error: BaseException) -> None:
        """Ends every rank after an error that the other ranks cannot learn about (they may be
        waiting in an all-reduce): prints it on this rank's stderr and aborts the job."""
        print(
            f"[{self.op}] rank {self.rank} of {self.size}: {type(error).__name__}: {error}; "
            "aborting every rank",
            file=sys.stderr,
            flush=True,
        )
        # The process manager forwards this rank's stderr asynchronously and MPI_Abort kills
        # every process at once: without a moment between the two, a loaded machine was seen to
        # lose the message (an empty stderr). Half a second on a path that ends the job anyway.
        time.sleep(0.5)
        self.comm.Abort(1)

    def engine_arguments(self, sharded: bool) -> dict:
        """The keyword arguments of the engine's data-parallel calls."""
        return {
            "rank": self.rank,
            "size": self.size,
            "sharded": sharded,
            "allreduce": self.allreduce,
        }


def digest(*arrays: Optional[np.ndarray]) -> bytes:
    """A SHA-256 of arrays (shape, dtype and bytes): equal data on every rank."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.digest()
