"""Tensor values as TensorFlow protos: the typed ``*_val`` fields of ``TensorProto``
(what V1 checkpoints store) and ``TensorShapeProto``/``TensorSliceProto``."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from .. import protowire as pw

# TensorProto field numbers.
TENSOR_CONTENT, FLOAT_VAL, DOUBLE_VAL, INT_VAL, STRING_VAL = 4, 5, 6, 7, 8
INT64_VAL, BOOL_VAL, HALF_VAL = 10, 11, 13
_INT_VAL_TYPES = (np.int32, np.int16, np.int8, np.uint8, np.uint16)


def encode_shape(shape: tuple[int, ...]) -> bytes:
    return b"".join(pw.field_bytes(2, pw.field_varint(1, d) if d else b"") for d in shape)


def decode_shape(raw: bytes) -> tuple[int, ...]:
    """Dims of a TensorShapeProto; raises ValueError for unknown (negative) dims."""
    dims = tuple(pw.as_signed(pw.parse(d).int(1)) for d in pw.parse(raw).all_bytes(2))
    if any(d < 0 for d in dims):
        raise ValueError(f"shape {list(dims)} has a negative dim")
    return dims


def encode_full_slice(rank: int) -> bytes:
    return pw.field_bytes(1, b"") * rank


def decode_slice(raw: bytes, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The index a TensorSliceProto selects (an extent without a length means all)."""
    extents = pw.parse(raw).all_bytes(1)
    if extents and len(extents) != len(shape):
        raise ValueError(f"slice has {len(extents)} extents for a rank-{len(shape)} tensor")
    out = []
    for ext, dim in zip(extents, shape, strict=False):
        e = pw.parse(ext)
        start = pw.as_signed(e.int(1))
        length = pw.as_signed(e.int(2)) if 2 in e else dim - start
        if start < 0 or length < 0 or start + length > dim:
            raise ValueError(f"slice [{start}, {start + length}) is outside dim {dim}")
        out.append(slice(start, start + length))
    return tuple(out) or tuple(slice(None) for _ in shape)


def encode_values(arr: np.ndarray) -> bytes:
    """A TensorProto holding only the typed value field, as TF's V1 writer makes it."""
    flat = arr.reshape(-1)
    if flat.size == 0:
        return b""
    dt = arr.dtype
    if dt == np.float32:
        return pw.field_bytes(FLOAT_VAL, flat.astype("<f4").tobytes())
    if dt == np.float64:
        return pw.field_bytes(DOUBLE_VAL, flat.astype("<f8").tobytes())
    if dt == np.int64:
        return pw.packed_varints(INT64_VAL, flat.tolist())
    if dt == np.bool_:
        return pw.packed_varints(BOOL_VAL, flat.astype(np.int64).tolist())
    if dt == np.float16:
        return pw.packed_varints(HALF_VAL, flat.view(np.uint16).tolist())
    if dt.type in _INT_VAL_TYPES:
        return pw.packed_varints(INT_VAL, flat.astype(np.int64).tolist())
    if dt.kind == "O":
        return b"".join(pw.field_bytes(STRING_VAL, _as_bytes(v)) for v in flat)
    raise ValueError(f"dtype {dt} cannot be stored in a checkpoint")


def _as_bytes(v) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def decode_values(raw: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    """``count`` values of ``dtype`` from a TensorProto's value fields."""
    f = pw.parse(raw)
    if TENSOR_CONTENT in f:
        content = f.bytes(TENSOR_CONTENT)
        if dtype.kind == "O" or len(content) != count * dtype.itemsize:
            raise ValueError(f"tensor_content of {len(content)} bytes does not hold {count} "
                             f"values of {dtype}")
        arr = np.frombuffer(content, dtype.newbyteorder("<")).astype(dtype)
    elif dtype.kind == "O":
        strings = f.all_bytes(STRING_VAL)
        arr = np.empty(len(strings), object)
        arr[:] = strings
    elif dtype in (np.float32, np.float64):
        field, code = (FLOAT_VAL, "<f4") if dtype == np.float32 else (DOUBLE_VAL, "<f8")
        size = np.dtype(code).itemsize
        raw_values = b"".join(v if isinstance(v, bytes) else v.to_bytes(size, "little")
                              for v in f.get(field, []) if isinstance(v, bytes)
                              or v.bit_length() <= 8 * size)
        if len(raw_values) % size:
            raise ValueError(f"{len(raw_values)} bytes of packed {dtype} values is not a "
                             f"multiple of {size}")
        arr = np.frombuffer(raw_values, code).astype(dtype)
    elif dtype == np.float16:
        arr = np.array(pw.unpack_varints(f.get(HALF_VAL, [])), np.uint16).view(np.float16)
    else:
        field = {np.int64: INT64_VAL, np.bool_: BOOL_VAL}.get(dtype.type, INT_VAL)
        vals = [pw.as_signed(v) for v in pw.unpack_varints(f.get(field, []))]
        arr = np.array(vals, np.int64).astype(dtype)
    if arr.size != count:
        raise ValueError(f"holds {arr.size} values of {dtype}, expected {count}")
    return arr


def dtype_code(arr: np.ndarray) -> int:
    return dtypes.tf_from_numpy(arr.dtype)
