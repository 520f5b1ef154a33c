"""Checkpoint V1 record keys: ``EncodeTensorNameSlice`` built from OrderedCode pieces.

Key = NumIncreasing(0) + String(name) + NumIncreasing(rank) + per dim
SignedNumIncreasing(start), SignedNumIncreasing(length), where a full slice is start 0,
length -1 ("all"). Readers take names from the record values, so only encoding is needed.
"""

from __future__ import annotations


def _num_increasing(v: int) -> bytes:
    if v == 0:
        return b"\x00"
    payload = v.to_bytes((v.bit_length() + 7) // 8, "big")
    return bytes([len(payload)]) + payload


def _string(s: bytes) -> bytes:
    return s.replace(b"\xff", b"\xff\x00").replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _signed_num_increasing(v: int) -> bytes:
    # One-byte form of OrderedCode's signed encoding, enough for full slices (0 and -1).
    if not -64 <= v < 64:
        raise ValueError(f"slice bound {v} needs the multi-byte form, which is not written")
    return bytes([(v + 0x80) & 0xFF])


def tensor_key(name: str, rank: int) -> bytes:
    """The key of a full-slice record for tensor ``name`` of this rank."""
    key = _num_increasing(0) + _string(name.encode("utf-8")) + _num_increasing(rank)
    return key + (_signed_num_increasing(0) + _signed_num_increasing(-1)) * rank
