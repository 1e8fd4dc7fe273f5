"""Checkpoints: a model saved with everything needed to continue training exactly.

The file format (version 1) is a ZIP archive (stored, not compressed) that NumPy and any ZIP
reader can open without truesparse:

- ``header.json``: ``{"format": "truesparse-checkpoint", "version": 1, "truesparse": ...,
  "model": {...}, "training": {...}, "metadata": {...}, "arrays": {...}}``. ``model`` is the
  architecture and options the model is rebuilt from (the class, the inputs, the layer specs,
  loss, dtype, seed, ...); ``training`` holds the epochs done, the planned run that ``fit``
  continues with ``initial_epoch`` and the non-numeric history (topology records); ``arrays``
  maps every array member to its dtype, shape and SHA-256 checksum.
- ``state/<name>.npy``: the engine's state (``truesparse/state.h``): each layer's CSR
  ``indptr``/``indices``/``W`` (or dense ``W``), ``b``, optimizer moments ``.m``/``.v``,
  warm-up ages ``.age`` and step counts ``.steps`` per array, batch-norm running statistics,
  SReLU parameters, ``ever_active`` positions (ITOP), dropout ``calls`` and the network's
  ``steps`` and ``topology_updates`` counters (every random stream is derived from the seed
  and these counters).
- ``history/<key>.npy``: the numeric history lists (``loss``, ``accuracy``, ``time``,
  ``val_loss``, ``val_accuracy``) as float64; ``history/topology.<field>.npy``: the array
  fields of the topology records (``dropped_positions``, ...), each the concatenation over
  the records, whose scalars (and each array's length) are in the header.

``np.load(path)["state/modules.0.W"]`` reads an array. There is no pickle anywhere: loading a
checkpoint from an untrusted source runs no code. A truncated, corrupted or foreign file, or
one of a newer format version, is refused with a ``ValueError`` naming the file and the fault.
Files are written atomically (:func:`truesparse.io.atomic_file`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io as _io
import json
import os
import zipfile
from typing import IO, Any, Optional, Union

import numpy as np

from . import layers as L
from ._version import __version__
from .io import atomic_file, file_to_read, file_to_write

__all__ = ["FORMAT", "VERSION", "dumps", "load", "loads", "save"]

FORMAT = "truesparse-checkpoint"
VERSION = 1
HEADER = "header.json"
HISTORY_ARRAYS = ("loss", "accuracy", "time", "val_loss", "val_accuracy")


class CheckpointError(ValueError):
    """A file that is not a readable truesparse checkpoint."""


# -- writing ---------------------------------------------------------------------------------------
def save(model, path: Union[str, os.PathLike], *, metadata: Optional[dict] = None) -> None:
    """Write ``model`` to ``path`` atomically (the previous file stays intact until the new one
    is complete). ``metadata`` is any JSON-serialisable dict stored with it (default: the
    model's ``metadata`` attribute; the command line stores its configuration there)."""
    check_model(model, "save")
    _check_metadata(metadata, "save")
    path = file_to_write(path, "save")
    with atomic_file(path, "wb") as f:
        _write(model, f, metadata)


def dumps(model, *, metadata: Optional[dict] = None) -> bytes:
    """The checkpoint of ``model`` as bytes (what ``save`` writes)."""
    check_model(model, "save")
    _check_metadata(metadata, "save")
    buffer = _io.BytesIO()
    _write(model, buffer, metadata)
    return buffer.getvalue()


def check_model(model, op: str) -> None:
    """A TypeError unless ``model`` is a truesparse model (a Sequential or an MLP)."""
    from .model import Sequential  # the model module imports this one

    if not isinstance(model, Sequential):
        raise TypeError(
            f"[{op}] model must be a truesparse Sequential or MLP, got {type(model).__name__}"
        )


def _check_metadata(metadata, op: str) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise TypeError(f"[{op}] metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"[{op}] metadata must be JSON-serialisable: {e}") from None


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write(model, f: IO[bytes], metadata: Optional[dict]) -> None:
    if metadata is None:
        metadata = model.metadata
        _check_metadata(metadata, "save")
    arrays = {f"state/{name}": a for name, a in model._core.get_state().items()}
    history = model.history_
    for key in HISTORY_ARRAYS:
        if key in history:
            arrays[f"history/{key}"] = np.asarray(history[key], dtype=np.float64)
    topology = None
    if "topology" in history:
        topology, columns = _split_records(history["topology"])
        arrays.update({f"history/topology.{k}": a for k, a in columns.items()})
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "truesparse": __version__,
        "model": model._architecture(),
        "training": {
            "epochs_done": model._epochs_done,
            "plan": model._plan,
            "history_keys": list(history),
            "topology": topology,
            "history_json": {  # other entries (the degree histograms): JSON as they are
                k: v for k, v in history.items() if k not in HISTORY_ARRAYS and k != "topology"
            },
        },
        "metadata": metadata,
        "arrays": {},
    }
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, array in arrays.items():
            data = _npy_bytes(array)
            header["arrays"][name] = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            z.writestr(f"{name}.npy", data)
        z.writestr(HEADER, json.dumps(header, indent=1, allow_nan=False))


# -- reading ---------------------------------------------------------------------------------------
def load(path: Union[str, os.PathLike]):
    """The model saved at ``path`` (a :class:`~truesparse.Sequential` or
    :class:`~truesparse.MLP`), ready to predict or to continue training exactly."""
    name = file_to_read(path, "load")
    with open(name, "rb") as f:
        return _read(f, name)[0]


def loads(data: bytes):
    """The model of a checkpoint given as bytes (what :func:`dumps` returns)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"[load] data must be bytes, got {type(data).__name__}")
    return _read(_io.BytesIO(data), "<bytes>")[0]


def read_metadata(path: Union[str, os.PathLike]) -> dict:
    """The ``metadata`` dict stored with a checkpoint, from its header alone (the arrays are
    neither read nor checked: :func:`load` does that)."""
    name = file_to_read(path, "load")
    with open(name, "rb") as f:
        try:
            z = zipfile.ZipFile(f)
        except zipfile.BadZipFile:
            raise _fail(name, "is not a truesparse checkpoint: not a ZIP archive") from None
        with z:
            if HEADER not in z.namelist():
                raise _fail(name, f"is not a truesparse checkpoint: it has no {HEADER}")
            return _header(z, name)["metadata"]


def _fail(name: str, what: str) -> CheckpointError:
    return CheckpointError(f"[load] {name!r} {what}")


def _read(f: IO[bytes], name: str):
    try:
        z = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise _fail(
            name,
            "is not a truesparse checkpoint: not a ZIP archive (truncated or another kind of file)",
        ) from None
    with z:
        members = set(z.namelist())
        if HEADER not in members:
            raise _fail(name, f"is not a truesparse checkpoint: it has no {HEADER}")
        header = _header(z, name)
        arrays = {}
        for member, info in header["arrays"].items():
            arrays[member] = _array(z, f"{member}.npy", info, name)
        unexpected = members - {HEADER} - {f"{m}.npy" for m in header["arrays"]}
        if unexpected:
            raise _fail(name, f"is corrupted: unexpected member {sorted(unexpected)[0]!r}")
    from .model import _from_checkpoint  # the model module imports this one

    try:
        model = _from_checkpoint(header["model"], header["training"], arrays)
    except (KeyError, TypeError, ValueError) as e:
        reason = str(e).removeprefix("[load] ")  # the engine's checks name the array
        raise _fail(name, f"is corrupted: {reason}") from None
    model.metadata = header["metadata"]
    return model, header["metadata"]


def _header(z: zipfile.ZipFile, name: str) -> dict:
    try:
        header = json.loads(z.read(HEADER).decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as e:
        raise _fail(name, f"is corrupted: {HEADER} cannot be read ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _fail(name, f"is not a truesparse checkpoint: {HEADER} does not name {FORMAT!r}")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise _fail(name, f"is corrupted: format version {version!r}")
    if version > VERSION:
        raise _fail(
            name,
            f"has format version {version} (written by truesparse {header.get('truesparse')}); "
            f"this truesparse {__version__} reads versions up to {VERSION}: upgrade truesparse",
        )
    for key in ("model", "training", "metadata", "arrays"):
        if not isinstance(header.get(key), dict):
            raise _fail(name, f"is corrupted: {HEADER} has no {key!r} object")
    return header


def _array(z: zipfile.ZipFile, member: str, info: dict, name: str) -> np.ndarray:
    try:
        data = z.read(member)
    except KeyError:
        raise _fail(name, f"is corrupted: member {member!r} is missing") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:  # a CRC mismatch, a cut-off member
        raise _fail(name, f"is corrupted: member {member!r} cannot be read ({e})") from None
    if not isinstance(info, dict) or hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise _fail(name, f"is corrupted: member {member!r} does not match its checksum")
    try:
        array = np.lib.format.read_array(_io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as e:
        raise _fail(name, f"is corrupted: member {member!r} is not a NumPy array ({e})") from None
    if array.dtype.str != info.get("dtype") or list(array.shape) != info.get("shape"):
        raise _fail(name, f"is corrupted: member {member!r} is not the array its header describes")
    return array


# -- topology records: scalars in the header, arrays as concatenated columns --------------------
def _split_records(records: list) -> tuple[list, dict]:
    """The records with each array field replaced by its length, and per array field the
    concatenation of the arrays (int64) of all records."""
    scalars, columns = [], {}
    for r in records:
        entry = {}
        for key, value in r.items():
            if isinstance(value, np.ndarray):
                columns.setdefault(key, []).append(value.astype(np.int64, copy=False))
                entry[key] = {"length": int(value.size)}
            else:
                entry[key] = value
        scalars.append(entry)
    return scalars, {k: np.concatenate(v) for k, v in columns.items()}


def join_records(scalars: list, arrays: dict) -> list:
    """The inverse of _split_records, given the checkpoint's arrays."""
    records, offsets = [], {}
    for entry in scalars:
        record = {}
        for key, value in entry.items():
            if isinstance(value, dict):
                column = arrays[f"history/topology.{key}"]
                start = offsets.get(key, 0)
                offsets[key] = start + value["length"]
                if offsets[key] > column.size:
                    raise ValueError(f"topology column {key} is shorter than its records")
                record[key] = column[start : offsets[key]].copy()
            else:
                record[key] = value
        records.append(record)
    return records


# -- layer specs as JSON ---------------------------------------------------------------------------
def spec_to_json(spec: L.LayerSpec) -> dict:
    return {"type": type(spec).__name__, **dataclasses.asdict(spec)}


def spec_from_json(entry: dict) -> L.LayerSpec:
    fields = dict(entry)
    kind = fields.pop("type", None)
    cls = getattr(L, kind, None) if isinstance(kind, str) and kind in L.__all__ else None
    if not (
        isinstance(cls, type) and issubclass(cls, L.LayerSpec) and dataclasses.is_dataclass(cls)
    ):
        raise ValueError(f"unknown layer type {kind!r}")
    return cls(**fields)
