"""truesparse.reference: the NumPy reference implementation of every layer, activation,
loss, optimizer and learning-rate schedule.

The second rung of the validation ladder (docs/index.md#validation-ladder): ``validation/`` proves each
gradient equation in SymPy, this package executes exactly those equations in plain NumPy
(float64, dense weights times a 0/1 pattern standing in for sparsity), and ``tests/``
compare the C++ engine against it. It imports only NumPy, never the compiled core.

Batches are feature-major, one example per column: X (D,N) -> Y (K,N); a linear layer is
Y = W X + b 1ᵀ with W (K,D). The code is written with the vocabulary of
``matrix_operations`` (``row_repeat``, ``rows_sum``, ``hadamard``, ...), the names used by
the SymPy derivations, so that the two read alike.

``LAYERS``, ``ACTIVATIONS`` and ``LOSSES`` map the snake_case name of each component to its
class; ``validation/test_<name>.py`` holds its proof, and ``validation/test_coverage.py``
fails if one is missing.
"""

from . import matrix_operations, schedules, testing
from .activations import AllReLU, Identity, LeakyReLU, ReLU, Sigmoid, SReLU, Tanh
from .layers import Affine, BatchNorm, Dropout, Layer, Linear, LogSoftmax, Softmax
from .losses import (
    CrossEntropy,
    LogisticCrossEntropy,
    Loss,
    NegativeLogLikelihood,
    SoftmaxCrossEntropy,
    SquaredError,
    one_hot,
)
from .optimizers import SGD, Adam, AdamW, Momentum, Nesterov, Optimizer

LAYERS = {
    "linear": Linear,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
    "batch_norm": BatchNorm,
    "affine": Affine,
    "dropout": Dropout,
}

ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "all_relu": AllReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "identity": Identity,
    "srelu": SReLU,
}

LOSSES = {
    "squared_error": SquaredError,
    "cross_entropy": CrossEntropy,
    "logistic_cross_entropy": LogisticCrossEntropy,
    "negative_log_likelihood": NegativeLogLikelihood,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
}

OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "adamw": AdamW,
}

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "LOSSES",
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "Affine",
    "AllReLU",
    "BatchNorm",
    "CrossEntropy",
    "Dropout",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "LogisticCrossEntropy",
    "Loss",
    "Momentum",
    "NegativeLogLikelihood",
    "Nesterov",
    "Optimizer",
    "ReLU",
    "SReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "Tanh",
    "matrix_operations",
    "one_hot",
    "schedules",
    "testing",
]
