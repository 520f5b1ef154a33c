"""The IDX file format of MNIST and Fashion-MNIST: read and write, raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian uint32, then the values in big-endian row-major order. Reading checks every
field against the file's length, so a truncated or foreign file is a ``DatasetError``
that names the file, never a silently short array. A gzip file is decompressed only as
far as its IDX header says the data goes (plus one byte to detect trailing data), so a
small file that inflates to gigabytes (a "gzip bomb") is an error, not a MemoryError.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}


_MAX_BYTES = 1 << 34  # 16 GiB: larger headers are refused before reading anything


def _expected_size(head: bytes) -> int | None:
    """Total file size the header promises (``None`` if ``head`` is too short to say)."""
    if len(head) < 4:
        return None
    header = 4 + 4 * head[3]
    if head[:2] != b"\0\0" or head[2] not in _TYPES or len(head) < header:
        return None
    shape = struct.unpack(f">{head[3]}I", head[4:header])
    return header + math.prod(shape) * _TYPES[head[2]].itemsize


def _gunzip(path: Path) -> bytes:
    with gzip.open(path, "rb") as f:
        head = f.read(4)
        if len(head) == 4:
            head += f.read(4 * head[3])
        need = _expected_size(head)
        if need is None:
            return head + f.read(1 << 20)  # not IDX; parse_idx says why
        if need > _MAX_BYTES:
            raise DatasetError(f"{path}: the IDX header claims {need:,} bytes of data, more "
                               f"than the {_MAX_BYTES:,} accepted")
        data = head + f.read(need - len(head) + 1)  # one extra byte reveals trailing data
    if len(data) > need:
        raise DatasetError(f"{path}: decompresses to more than the {need:,} bytes its IDX "
                           "header describes (trailing data, or a gzip bomb)")
    return data


def _raw_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic == b"\x1f\x8b":
            return _gunzip(path)
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, (gzip.BadGzipFile, EOFError, zlib.error)):
            raise DatasetError(f"{path}: corrupt gzip data ({e})") from None
        raise DatasetError(f"cannot read IDX file {path}: {e.strerror or e}") from None
    except MemoryError:
        raise DatasetError(f"{path}: not enough memory to read it") from None


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """The array held by IDX ``data`` (already decompressed), in native byte order."""
    if len(data) < 4 or data[:2] != b"\0\0":
        raise DatasetError(f"{where}: not an IDX file (expected 2 zero bytes, a type code "
                           f"and a rank; got {data[:4]!r})")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise DatasetError(f"{where}: unknown IDX type code 0x{code:02x}; known: "
                           f"{', '.join(f'0x{c:02x}' for c in _TYPES)}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{where}: truncated header ({len(data)} bytes, rank {ndim} "
                           f"needs {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    need = header + math.prod(shape) * dtype.itemsize
    if len(data) != need:
        raise DatasetError(f"{where}: shape {list(shape)} of {dtype.name} needs {need} bytes, "
                           f"the file has {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not, detected from its bytes)."""
    path = Path(path)
    return parse_idx(_raw_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX; gzip it when ``compress`` (default: the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=")
    if key not in _CODES or array.ndim > 255:
        raise DatasetError(f"IDX holds uint8/int8/int16/int32/float32/float64 arrays of rank "
                           f"≤ 255, got {array.dtype}{list(array.shape)}")
    code = _CODES[key]
    payload = (bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
               + array.astype(_TYPES[code], copy=False).tobytes())
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
