"""TensorFlow's LevelDB-style immutable table (``tensorflow/core/lib/io/table*``).

Layout: data blocks (prefix-compressed entries, a restart point every 16 entries, then
the restart offsets and their count), each followed by a 5-byte trailer (compression
type 0 and the masked CRC32C of block + type byte); an empty metaindex block; an index
block (restart interval 1) mapping a separator key to each data block's handle; and a
48-byte footer (two block handles, zero padding, magic). The writer reproduces TF's
byte layout exactly (block flush rules, separator keys), so equal inputs give equal files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import google_crc32c

from ..protowire import WireError, decode_varint, encode_varint

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_SIZE = 262144
RESTART_INTERVAL = 16
_MASK_DELTA = 0xA282EAD8


class TableError(ValueError):
    """The bytes are not a well-formed table."""


def crc32c(data: bytes, crc: int = 0) -> int:
    return google_crc32c.extend(crc, data)


def mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


class _Block:
    def __init__(self, restart_interval: int):
        self.interval = restart_interval
        self.reset()

    def reset(self) -> None:
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    @property
    def empty(self) -> bool:
        return not self.buf

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            n = min(len(key), len(self.last_key))
            while shared < n and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared)
        self.buf += encode_varint(len(value)) + key[shared:] + value
        self.last_key = key
        self.counter += 1

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        return bytes(self.buf) + struct.pack(f"<{len(self.restarts) + 1}I",
                                             *self.restarts, len(self.restarts))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def _handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def build(entries: list[tuple[bytes, bytes]]) -> bytes:
    """Serialize ``(key, value)`` pairs, which must be strictly sorted by key."""
    out = bytearray()
    data, index = _Block(RESTART_INTERVAL), _Block(1)
    pending: tuple[int, int] | None = None
    last_key = b""

    def write_block(block: _Block) -> tuple[int, int]:
        raw = block.finish()
        offset = len(out)
        out.extend(raw)
        out.extend(b"\x00" + struct.pack("<I", mask(crc32c(b"\x00", crc32c(raw)))))
        block.reset()
        return offset, len(raw)

    for n, (key, value) in enumerate(entries):
        if n and key <= last_key:
            raise TableError(f"table keys must be strictly increasing: {key!r} after "
                             f"{last_key!r}")
        if n and len(key) + len(value) >= 2 * BLOCK_SIZE and not data.empty:
            pending = write_block(data)
        if pending is not None:
            index.add(_shortest_separator(last_key, key), _handle(*pending))
            pending = None
        last_key = key
        data.add(key, value)
        if data.size_estimate() >= BLOCK_SIZE:
            pending = write_block(data)
    if not data.empty:
        pending = write_block(data)
    metaindex = write_block(_Block(RESTART_INTERVAL))
    if pending is not None:
        index.add(_short_successor(last_key), _handle(*pending))
    index_handle = write_block(index)
    footer = _handle(*metaindex) + _handle(*index_handle)
    out.extend(footer.ljust(40, b"\x00") + struct.pack("<Q", MAGIC))
    return bytes(out)


def _read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset + size + 5 > len(data):
        raise TableError(f"{what} at [{offset}, {offset + size}) runs past the end of the "
                         f"{len(data)}-byte file (truncated?)")
    raw = data[offset:offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if unmask(stored) != crc32c(bytes([kind]), crc32c(raw)):
        raise TableError(f"{what} at offset {offset}: CRC32C mismatch (the file is corrupt)")
    if kind != 0:
        raise TableError(f"{what}: compression type {kind} is not supported (only none)")
    return raw


def _entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableError(f"{what}: {len(block)} bytes is too short for a block")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise TableError(f"{what}: {n_restarts} restart points do not fit")
    pos, key = 0, b""
    while pos < end:
        shared, pos = decode_varint(block, pos)
        unshared, pos = decode_varint(block, pos)
        vlen, pos = decode_varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise TableError(f"{what}: entry at offset {pos} is malformed")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def parse(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield every ``(key, value)`` of a table, checking each block's CRC."""
    if len(data) < FOOTER_SIZE:
        raise TableError(f"{len(data)} bytes is too short for a table (footer is "
                         f"{FOOTER_SIZE} bytes)")
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != MAGIC:
        raise TableError("bad magic number at the end (not a TensorFlow table/checkpoint)")
    footer = data[len(data) - FOOTER_SIZE:]
    try:
        meta_off, pos = decode_varint(footer, 0)
        meta_size, pos = decode_varint(footer, pos)
        index_off, pos = decode_varint(footer, pos)
        index_size, pos = decode_varint(footer, pos)
        # The metaindex block is empty in TF's files; checking its CRC still validates
        # the footer's first handle.
        _read_block(data, meta_off, meta_size, "metaindex block")
        index = _read_block(data, index_off, index_size, "index block")
        for _, handle in _entries(index, "index block"):
            off, p = decode_varint(handle, 0)
            size, _ = decode_varint(handle, p)
            yield from _entries(_read_block(data, off, size, "data block"), "data block")
    except WireError as e:
        raise TableError(f"malformed varint ({e})") from None
