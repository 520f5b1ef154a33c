"""A minimal Protocol Buffers wire-format codec.

litetrain reads and writes a handful of TensorFlow messages (NodeDef attrs inside Flex
ops; SavedTensorSlices and BundleEntryProto in checkpoints). They need only varints,
fixed32/64 and length-delimited fields, so a 100-line codec beats shipping generated code
and the protobuf runtime to a device. Encoders emit fields in the order given, which for
TensorFlow's messages is field-number order: that makes output byte-identical to TF's.
"""

from __future__ import annotations

import struct

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def as_signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | VARINT) + encode_varint(int(value))


def field_bytes(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | LEN) + encode_varint(len(payload)) + payload


def field_fixed32(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | FIXED32) + struct.pack("<I", value)


def packed_varints(number: int, values) -> bytes:
    return field_bytes(number, b"".join(encode_varint(int(v)) for v in values))


class Fields(dict):
    """Field number → list of raw values (ints for varint/fixed, bytes for LEN).

    The typed getters raise :class:`WireError` when a field has the wrong wire type (a
    forged file can put a varint where a message belongs), so callers never feed an int
    to a bytes parser. A non-repeated field that occurs twice takes its last value, as
    protobuf does.
    """

    def bytes(self, number: int, default: bytes = b"") -> bytes:
        values = self.get(number)
        if not values:
            return default
        if not isinstance(values[-1], bytes):
            raise WireError(f"field {number}: expected a length-delimited value, got an "
                            "integer (wrong wire type)")
        return values[-1]

    def int(self, number: int, default: int = 0) -> int:
        values = self.get(number)
        if not values:
            return default
        if isinstance(values[-1], bytes):
            raise WireError(f"field {number}: expected an integer, got a length-delimited "
                            "value (wrong wire type)")
        return values[-1]

    def all_bytes(self, number: int) -> list[bytes]:
        values = self.get(number, [])
        if not all(isinstance(v, bytes) for v in values):
            raise WireError(f"field {number}: expected length-delimited values, got an "
                            "integer (wrong wire type)")
        return values


def parse(buf: bytes) -> Fields:
    """Decode one message's fields (see :class:`Fields`)."""
    fields = Fields()
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = decode_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = decode_varint(buf, pos)
        elif wire == LEN:
            size, pos = decode_varint(buf, pos)
            if pos + size > n:
                raise WireError(f"field {number}: length {size} runs past the message end")
            value, pos = bytes(buf[pos:pos + size]), pos + size
        elif wire == FIXED32:
            if pos + 4 > n:
                raise WireError("truncated fixed32")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        elif wire == FIXED64:
            if pos + 8 > n:
                raise WireError("truncated fixed64")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        else:
            raise WireError(f"unsupported wire type {wire} for field {number}")
        fields.setdefault(number, []).append(value)
    return fields


def unpack_varints(values: list) -> list[int]:
    """A repeated varint field's values, whether packed (bytes) or not (ints)."""
    out: list[int] = []
    for v in values:
        if isinstance(v, bytes):
            pos = 0
            while pos < len(v):
                x, pos = decode_varint(v, pos)
                out.append(x)
        else:
            out.append(v)
    return out
