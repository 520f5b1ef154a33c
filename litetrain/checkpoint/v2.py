"""V2 checkpoints (``SaveV2``/``RestoreV2``, ``tf.train.Checkpoint``): ``PREFIX.index`` is a
table of ``BundleEntryProto`` keyed by tensor name (header under ``""``), and
``PREFIX.data-00000-of-00001`` holds the raw little-endian bytes, each entry checked by a
masked CRC32C. Strings are stored as varint64 lengths, a masked CRC of the lengths, then
the bytes."""

from __future__ import annotations

import math
import struct

import numpy as np

from .. import dtypes
from .. import protowire as pw
from . import table
from .tensor_proto import decode_shape, encode_shape

_BUNDLE_VERSION = 1


def data_path(prefix: str) -> str:
    return f"{prefix}.data-00000-of-00001"


def index_path(prefix: str) -> str:
    return f"{prefix}.index"


def _string_bytes(arr: np.ndarray) -> tuple[bytes, int]:
    items = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in arr.reshape(-1)]
    lengths, crc = b"", 0
    for item in items:
        lengths += pw.encode_varint(len(item))
        crc = table.crc32c(struct.pack("<I", len(item)), crc)
    length_checksum = struct.pack("<I", table.mask(crc))
    crc = table.crc32c(length_checksum, crc)
    body = b"".join(items)
    return lengths + length_checksum + body, table.crc32c(body, crc)


def serialize(tensors: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(index file bytes, data file bytes)."""
    data = bytearray()
    entries = []
    for name in sorted(tensors):
        arr = tensors[name]
        if arr.dtype.kind == "O":
            raw, crc = _string_bytes(arr)
        else:
            raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
            crc = table.crc32c(raw)
        entry = pw.field_varint(1, dtypes.tf_from_numpy(arr.dtype))
        entry += pw.field_bytes(2, encode_shape(arr.shape))
        if data:
            entry += pw.field_varint(4, len(data))
        if raw:
            entry += pw.field_varint(5, len(raw))
        entry += pw.field_fixed32(6, table.mask(crc))
        data += raw
        entries.append((name.encode("utf-8"), entry))
    header = pw.field_varint(1, 1) + pw.field_bytes(3, pw.field_varint(1, _BUNDLE_VERSION))
    return table.build([(b"", header), *entries]), bytes(data)


def _read_strings(raw: bytes, count: int) -> np.ndarray:
    pos, lengths = 0, []
    for _ in range(count):
        n, pos = pw.decode_varint(raw, pos)
        lengths.append(n)
    pos += 4  # masked CRC of the lengths; the entry CRC below covers it too
    out = np.empty(count, object)
    for i, n in enumerate(lengths):
        if pos + n > len(raw):
            raise ValueError("string data runs past the entry")
        out[i] = raw[pos:pos + n]
        pos += n
    return out


class DataMismatch(ValueError):
    """The data file does not hold what the index says (wrong file, truncated, corrupt)."""


def parse_index(index: bytes) -> list[tuple[str, np.dtype, tuple[int, ...], int, int, int]]:
    """(name, dtype, shape, offset, size, crc) of every tensor the index lists."""
    entries = table.parse(index)
    first = next(entries, None)
    if first is None or first[0] != b"":
        raise ValueError("no bundle header (not a V2 checkpoint index)")
    header = pw.parse(first[1])
    if header.int(1, 1) != 1:
        raise ValueError(f"{header.int(1)} data shards; only single-shard bundles are read")
    if header.int(2) != 0:
        raise ValueError("big-endian bundles are not supported")
    out = []
    for key, value in entries:
        name = key.decode("utf-8")
        e = pw.parse(value)
        if 7 in e:
            raise ValueError(f"tensor '{name}' is partitioned into slices; not supported")
        dtype = dtypes.numpy_from_tf(e.int(1))
        shape = decode_shape(e.bytes(2))
        size = e.int(5)
        # Each value takes at least one byte (a string at least its length varint).
        if math.prod(shape) > size:
            raise ValueError(f"tensor '{name}': {size} bytes cannot hold {dtype}{list(shape)}")
        if dtype.kind != "O" and size != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"tensor '{name}': {size} bytes for {dtype}{list(shape)}")
        out.append((name, dtype, shape, e.int(4), size, table.unmask(e.int(6))))
    return out


def load_data(entries, data: bytes) -> dict[str, np.ndarray]:
    """The tensors ``entries`` (from :func:`parse_index`) describe, read from ``data``;
    :class:`DataMismatch` if any entry's bytes are missing or fail their CRC32C."""
    out = {}
    for name, dtype, shape, offset, size, crc in entries:
        if offset + size > len(data):
            raise DataMismatch(f"tensor '{name}' lies at [{offset}, {offset + size}) past the "
                               f"end of the {len(data)}-byte data file (truncated?)")
        raw = data[offset:offset + size]
        count = math.prod(shape)
        try:
            matches = crc == _entry_crc(raw, dtype, count)
        except ValueError:
            matches = False
        if not matches:
            raise DataMismatch(f"tensor '{name}': CRC32C mismatch (the data file is corrupt "
                               "or belongs to another index)")
        if dtype.kind == "O":
            arr = _read_strings(raw, count)
        else:
            arr = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
        out[name] = arr.reshape(shape)
    return out


def deserialize(index: bytes, data: bytes) -> dict[str, np.ndarray]:
    return load_data(parse_index(index), data)


def _entry_crc(raw: bytes, dtype: np.dtype, count: int) -> int:
    if dtype.kind != "O":
        return table.crc32c(raw)
    pos, crc = 0, 0
    for _ in range(count):
        n, pos = pw.decode_varint(raw, pos)
        crc = table.crc32c(struct.pack("<I", n) if n <= 0xFFFFFFFF else struct.pack("<Q", n), crc)
    return table.crc32c(raw[pos:], crc)
