"""TensorFlow checkpoints, usable on their own: ``read(path)`` and ``write(path, tensors)``.

* V1 (default for ``write``): one file at ``path``, what ``tf.raw_ops.Save`` writes and
  the on-device-training tutorial's ``save``/``restore`` signatures use.
* V2: ``path.index`` + ``path.data-00000-of-00001``, what ``tf.train.Checkpoint`` and
  ``SaveV2`` write.

Writes are atomic (temp file in the same folder, fsync, rename; a V2 pair is committed
by the protocol in :mod:`.bundle`), and a kill at any moment leaves the previous or the
new checkpoint readable. Reads check every CRC, size and record before returning; any
problem raises :class:`~litetrain.CheckpointError` naming the file, and messages never
quote the file's bytes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..protowire import WireError
from . import bundle, table, v1, v2
from .atomic import atomic_write

__all__ = ["list_variables", "read", "write"]

_FORMATS = ("v1", "v2")


def _normalise(tensors: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
    out = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"{path}: tensor names must be non-empty strings, got "
                                  f"{name!r}")
        arr = np.asarray(value)
        if arr.dtype.kind in "SU":
            arr = arr.astype(object)
        out[name] = arr
    return out


def write(path: str | os.PathLike, tensors: dict[str, np.ndarray],
          format: str = "v1") -> None:
    """Write ``tensors`` (name → array) as a TensorFlow checkpoint, atomically."""
    path = os.fspath(path)
    if format not in _FORMATS:
        raise CheckpointError(f"format must be one of {_FORMATS}, got {format!r}")
    folder = Path(path).parent
    if not folder.is_dir():
        raise CheckpointError(f"cannot write checkpoint '{path}': folder '{folder}' does "
                              "not exist")
    tensors = _normalise(tensors, path)
    try:
        if format == "v1":
            atomic_write(path, v1.serialize(tensors))
        else:
            index, data = v2.serialize(tensors)
            bundle.write(path, index, data)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"cannot write checkpoint '{path}': {e}") from None
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint '{path}': {e.strerror or e}") from None


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint '{path}': {e.strerror or e}") from None


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor in a V1 file or a V2 bundle (give the V2 prefix or its ``.index``)."""
    path = os.fspath(path)
    prefix = path[: -len(".index")] if path.endswith(".index") else path
    is_v2 = not os.path.isfile(path) or path.endswith(".index")
    if is_v2 and not os.path.isfile(v2.index_path(prefix)):
        raise CheckpointError(f"no checkpoint at '{path}': neither a V1 file nor a V2 "
                              f"'{v2.index_path(prefix)}' exists")
    try:
        if is_v2:
            return bundle.read(prefix, _read_bytes)
        return v1.deserialize(_read_bytes(path))
    except CheckpointError:
        raise
    except MemoryError:
        raise CheckpointError(f"checkpoint '{path}': not enough memory to load it") from None
    except (table.TableError, WireError, ValueError, UnicodeDecodeError, IndexError,
            TypeError, OverflowError, struct.error) as e:
        raise CheckpointError(f"checkpoint '{path}' is corrupt or not a TensorFlow "
                              f"checkpoint: {e}") from None


def list_variables(path: str | os.PathLike) -> list[tuple[str, list[int]]]:
    """``(name, shape)`` pairs, like ``tf.train.list_variables``."""
    return [(n, list(a.shape)) for n, a in sorted(read(path).items())]
