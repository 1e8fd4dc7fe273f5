"""truesparse: truly sparse neural-network training.

Sparse layers are CSR matrices end to end (no dense weights, no masks); a C++ core runs the
batch forward and backward passes with Intel oneMKL's sparse BLAS and our own kernels.

>>> import truesparse as ts
>>> model = ts.MLP([784, 1024, 512, 10], density=0.05, seed=0)
"""

from . import _core, callbacks, checkpoint, layers, plot
from ._checks import flag as _flag
from ._core import get_adaptive_threads, get_num_threads, mkl_version, set_num_threads
from ._version import __version__
from .density import epsilon_densities, er_densities, uniform_densities
from .evolution import SET, RigL
from .interop import from_torch, load_npz
from .model import MLP, Sequential, load
from .optim import (
    SGD,
    Adam,
    AdamW,
    ConstantLR,
    CosineLR,
    ExponentialLR,
    LinearWarmup,
    MultiStepLR,
    StepLR,
)


def set_adaptive_threads(on: bool) -> None:
    """Adaptive threads (on by default): ``fit`` times its steps, tries a few on one thread now
    and then, and trains on one thread for a while when that was faster than all the threads
    set with :func:`set_num_threads` (another process busy on a core makes a two-thread step
    wait for its second thread). Results do not depend on the thread count, so they do not
    change. ``TRUESPARSE_ADAPTIVE_THREADS=0`` in the environment switches it off at import."""
    _core.set_adaptive_threads(_flag(on, "on", "set_adaptive_threads"))


__all__ = [
    "MLP",
    "Adam",
    "AdamW",
    "ConstantLR",
    "CosineLR",
    "ExponentialLR",
    "LinearWarmup",
    "MultiStepLR",
    "RigL",
    "SET",
    "SGD",
    "Sequential",
    "StepLR",
    "__version__",
    "callbacks",
    "checkpoint",
    "epsilon_densities",
    "er_densities",
    "from_torch",
    "get_adaptive_threads",
    "get_num_threads",
    "layers",
    "load",
    "load_npz",
    "mkl_version",
    "plot",
    "set_adaptive_threads",
    "set_num_threads",
    "uniform_densities",
]
