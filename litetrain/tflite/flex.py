"""Flex (Select TF) op options: a FlexBuffer ``[tf_op_name, serialized NodeDef]``.

The NodeDef's ``attr`` map is decoded into plain Python values: ``type`` attrs become
NumPy dtypes, ``list(...)`` attrs tuples, ``s`` attrs ``str`` (when UTF-8) or ``bytes``.
The op itself is named by the operator code (``Flex<Op>``), so the FlexBuffer's op name is
only checked for being there.
"""

from __future__ import annotations

import struct

import numpy as np
from flatbuffers import flexbuffers

from .. import dtypes, protowire
from ..errors import ModelFormatError

PREFIX = "Flex"

# AttrValue fields (attr_value.proto).
_LIST, _S, _I, _F, _B, _TYPE, _SHAPE = 1, 2, 3, 4, 5, 6, 7


def _float32(bits: int) -> float:
    return float(np.frombuffer(bits.to_bytes(4, "little"), "<f4")[0])


def _string(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _shape(raw: bytes) -> tuple[int, ...] | None:
    f = protowire.parse(raw)
    if f.int(3):  # unknown_rank
        return None
    return tuple(protowire.as_signed(protowire.parse(d).int(1)) for d in f.all_bytes(2))


def _attr_value(raw: bytes) -> object:
    f = protowire.parse(raw)
    if _LIST in f:
        lst = protowire.parse(f.bytes(_LIST))
        if _TYPE in lst:
            return tuple(dtypes.numpy_from_tf(t) for t in protowire.unpack_varints(lst[_TYPE]))
        if _I in lst:
            return tuple(protowire.as_signed(v) for v in protowire.unpack_varints(lst[_I]))
        if _F in lst:
            packed = b"".join(v if isinstance(v, bytes) else v.to_bytes(4, "little")
                              for v in lst[_F])
            return tuple(float(x) for x in np.frombuffer(packed, "<f4"))
        if _S in lst:
            return tuple(_string(s) for s in lst.all_bytes(_S))
        if _B in lst:
            return tuple(bool(b) for b in protowire.unpack_varints(lst[_B]))
        if _SHAPE in lst:
            return tuple(_shape(s) for s in lst.all_bytes(_SHAPE))
        return ()
    if _S in f:
        return _string(f.bytes(_S))
    if _I in f:
        return protowire.as_signed(f.int(_I))
    if _F in f:
        return _float32(f.int(_F))
    if _B in f:
        return bool(f.int(_B))
    if _TYPE in f:
        return dtypes.numpy_from_tf(f.int(_TYPE))
    if _SHAPE in f:
        return _shape(f.bytes(_SHAPE))
    return None


def decode_node_def(raw: bytes) -> tuple[str, dict[str, object]]:
    """(op, attrs) of a serialized ``NodeDef`` (fields: op = 2, attr = 5)."""
    f = protowire.parse(raw)
    op = f.bytes(2).decode("utf-8")
    attrs: dict[str, object] = {}
    for entry in f.all_bytes(5):
        kv = protowire.parse(entry)
        key = kv.bytes(1).decode("utf-8")
        attrs[key] = _attr_value(kv.bytes(2))
    return op, attrs


def decode_options(raw: bytes, where: str) -> dict[str, object]:
    """Attrs of a Flex op from its ``custom_options`` bytes."""
    try:
        vec = flexbuffers.GetRoot(raw).AsVector
        vec[0].AsStringBytes.decode("utf-8")
        _, attrs = decode_node_def(bytes(vec[1].AsStringBytes))
    except (protowire.WireError, ValueError, IndexError, TypeError, UnicodeDecodeError,
            KeyError, OverflowError, struct.error, AttributeError, AssertionError,
            RecursionError, MemoryError) as e:
        # flexbuffers trusts its input; any of these means forged or foreign bytes.
        raise ModelFormatError(f"{where}: custom options are not a Flex "
                               f"[op name, NodeDef] FlexBuffer ({type(e).__name__}: "
                               f"{str(e)[:200]})") from None
    return attrs


def _encode_attr(value) -> bytes:
    """An ``AttrValue`` for a Python/NumPy attr value (the inverse of ``_attr_value``)."""
    pw = protowire
    if isinstance(value, (np.dtype, type)) and not isinstance(value, bool):
        return pw.field_varint(_TYPE, dtypes.tf_from_numpy(value))
    if isinstance(value, bool):
        return pw.field_varint(_B, int(value))
    if isinstance(value, int):
        return pw.field_varint(_I, value)
    if isinstance(value, float):
        return pw.field_fixed32(_F, int.from_bytes(np.float32(value).tobytes(), "little"))
    if isinstance(value, (str, bytes)):
        return pw.field_bytes(_S, value.encode() if isinstance(value, str) else value)
    if isinstance(value, tuple):
        if all(isinstance(v, (np.dtype, type)) for v in value):
            body = pw.packed_varints(_TYPE, [dtypes.tf_from_numpy(v) for v in value])
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            body = pw.packed_varints(_I, value)
        else:
            raise ValueError(f"cannot encode list attr {value!r}")
        return pw.field_bytes(_LIST, body)
    raise ValueError(f"cannot encode attr value {value!r}")


def encode_options(tf_op: str, n_inputs: int, attrs: dict[str, object]) -> bytes:
    """``custom_options`` for a Flex op, laid out as TensorFlow's converter writes them:
    a FlexBuffer vector of two STRINGs, the op name and the serialized NodeDef."""
    pw = protowire
    node_def = pw.field_bytes(2, tf_op.encode()) + pw.field_bytes(3, b"") * n_inputs
    for key in sorted(attrs):
        if key.startswith("_") or key == "custom_options":
            continue
        entry = pw.field_bytes(1, key.encode()) + pw.field_bytes(2, _encode_attr(attrs[key]))
        node_def += pw.field_bytes(5, entry)
    fbb = flexbuffers.Builder()
    with fbb.Vector():
        fbb.String(tf_op)
        # The NodeDef is arbitrary bytes but must be typed STRING, as TensorFlow writes it.
        fbb._WriteBlob(node_def, append_zero=True, type_=flexbuffers.Type.STRING)
    return bytes(fbb.Finish())
