"""TFLite's STRING tensor layout: ``int32 count``, ``count + 1`` int32 byte offsets from
the start of the buffer, then the concatenated bytes. Scalars use the same layout with
count 1. In memory, strings are NumPy ``object`` arrays of ``bytes``."""

from __future__ import annotations

import itertools
import struct

import numpy as np

from ..errors import ModelFormatError


def decode(raw: bytes, where: str = "string tensor") -> np.ndarray:
    if len(raw) < 4:
        raise ModelFormatError(f"{where}: {len(raw)} bytes is too short for a string tensor")
    (count,) = struct.unpack_from("<i", raw, 0)
    header = 4 * (count + 2)
    if count < 0 or header > len(raw):
        raise ModelFormatError(f"{where}: string count {count} does not fit in {len(raw)} bytes")
    offsets = struct.unpack_from(f"<{count + 1}i", raw, 4)
    if offsets[0] < header or offsets[-1] > len(raw) or any(
            a > b for a, b in itertools.pairwise(offsets)):
        raise ModelFormatError(f"{where}: string offsets {list(offsets)} are not increasing "
                               f"within the {len(raw)}-byte buffer")
    out = np.empty(count, dtype=object)
    for i in range(count):
        out[i] = raw[offsets[i]:offsets[i + 1]]
    return out


def encode(values: np.ndarray) -> bytes:
    items = [v.encode("utf-8") if isinstance(v, str) else bytes(v)
             for v in np.asarray(values, dtype=object).reshape(-1)]
    header = 4 * (len(items) + 2)
    offsets, pos = [], header
    for item in items:
        offsets.append(pos)
        pos += len(item)
    offsets.append(pos)
    return struct.pack(f"<{len(items) + 2}i", len(items), *offsets) + b"".join(items)
