"""TFLite ``TensorType`` codes and their NumPy dtypes.

String tensors are held as NumPy ``object`` arrays of ``bytes`` (what
``tf.lite.Interpreter`` returns); resource handles are ``int32`` ids.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelFormatError

# TensorType enum values from the TFLite schema.
FLOAT32, FLOAT16, INT32, UINT8, INT64, STRING, BOOL, INT16 = 0, 1, 2, 3, 4, 5, 6, 7
COMPLEX64, INT8, FLOAT64, COMPLEX128, UINT64, RESOURCE, VARIANT = 8, 9, 10, 11, 12, 13, 14
UINT32, UINT16, INT4, BFLOAT16 = 15, 16, 17, 18

_NUMPY_BY_CODE: dict[int, np.dtype] = {
    FLOAT32: np.dtype(np.float32),
    FLOAT16: np.dtype(np.float16),
    INT32: np.dtype(np.int32),
    UINT8: np.dtype(np.uint8),
    INT64: np.dtype(np.int64),
    STRING: np.dtype(object),
    BOOL: np.dtype(np.bool_),
    INT16: np.dtype(np.int16),
    COMPLEX64: np.dtype(np.complex64),
    INT8: np.dtype(np.int8),
    FLOAT64: np.dtype(np.float64),
    COMPLEX128: np.dtype(np.complex128),
    UINT64: np.dtype(np.uint64),
    RESOURCE: np.dtype(np.int32),
    VARIANT: np.dtype(object),
    UINT32: np.dtype(np.uint32),
    UINT16: np.dtype(np.uint16),
}

TYPE_NAMES: dict[int, str] = {
    FLOAT32: "float32", FLOAT16: "float16", INT32: "int32", UINT8: "uint8", INT64: "int64",
    STRING: "string", BOOL: "bool", INT16: "int16", COMPLEX64: "complex64", INT8: "int8",
    FLOAT64: "float64", COMPLEX128: "complex128", UINT64: "uint64", RESOURCE: "resource",
    VARIANT: "variant", UINT32: "uint32", UINT16: "uint16", INT4: "int4", BFLOAT16: "bfloat16",
}

_CODE_BY_NUMPY: dict[np.dtype, int] = {
    dt: code for code, dt in _NUMPY_BY_CODE.items() if code not in (RESOURCE, VARIANT)
}


def to_numpy(code: int) -> np.dtype:
    """The NumPy dtype that holds values of TFLite type ``code``."""
    try:
        return _NUMPY_BY_CODE[code]
    except KeyError:
        name = TYPE_NAMES.get(code, f"code {code}")
        raise ModelFormatError(f"tensor type {name} is not supported") from None


def storage(code: int) -> np.dtype:
    """The NumPy dtype a tensor of type ``code`` is held in while running: its own, except
    INT4, which files pack two to a byte and kernels see unpacked as int8."""
    return np.dtype(np.int8) if code == INT4 else to_numpy(code)


def pack_int4(values: np.ndarray) -> bytes:
    """INT4 values as a file stores them: two to a byte, the first in the low nibble."""
    flat = (np.asarray(values).astype(np.int8).reshape(-1) & 0x0F).astype(np.uint8)
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    return (flat[0::2] | (flat[1::2] << 4)).tobytes()


def unpack_int4(raw: np.ndarray, count: int) -> np.ndarray | None:
    """The first ``count`` INT4 values of packed bytes, as int8 (``None``: too few bytes)."""
    packed = raw.view(np.uint8)
    vals = np.stack([packed & 0x0F, packed >> 4], -1).reshape(-1).astype(np.int8)
    vals = np.where(vals > 7, vals - 16, vals).astype(np.int8)
    return vals[:count] if vals.size >= count else None


def from_numpy(dtype: np.dtype | type) -> int:
    """The TFLite type code for a NumPy dtype (``bytes``/``str`` arrays map to STRING)."""
    dt = np.dtype(dtype)
    if dt.kind in "SUO":
        return STRING
    try:
        return _CODE_BY_NUMPY[dt]
    except KeyError:
        raise ModelFormatError(f"NumPy dtype {dt} has no TFLite tensor type") from None


def name(code: int) -> str:
    """A readable name for a TFLite type code."""
    return TYPE_NAMES.get(code, f"type{code}")


# TensorFlow's DataType enum (types.proto), used by Flex NodeDefs and checkpoints.
TF_FLOAT, TF_DOUBLE, TF_INT32, TF_UINT8, TF_INT16, TF_INT8, TF_STRING = 1, 2, 3, 4, 5, 6, 7
TF_COMPLEX64, TF_INT64, TF_BOOL, TF_BFLOAT16, TF_UINT16, TF_COMPLEX128 = 8, 9, 10, 14, 17, 18
TF_HALF, TF_RESOURCE, TF_VARIANT, TF_UINT32, TF_UINT64 = 19, 20, 21, 22, 23

_NUMPY_BY_TF: dict[int, np.dtype] = {
    TF_FLOAT: np.dtype(np.float32), TF_DOUBLE: np.dtype(np.float64),
    TF_INT32: np.dtype(np.int32), TF_UINT8: np.dtype(np.uint8), TF_INT16: np.dtype(np.int16),
    TF_INT8: np.dtype(np.int8), TF_STRING: np.dtype(object),
    TF_COMPLEX64: np.dtype(np.complex64), TF_INT64: np.dtype(np.int64),
    TF_BOOL: np.dtype(np.bool_), TF_UINT16: np.dtype(np.uint16),
    TF_COMPLEX128: np.dtype(np.complex128), TF_HALF: np.dtype(np.float16),
    TF_UINT32: np.dtype(np.uint32), TF_UINT64: np.dtype(np.uint64),
}
_TF_BY_NUMPY: dict[np.dtype, int] = {v: k for k, v in _NUMPY_BY_TF.items()}
# Held like TFLite holds them: a variant (e.g. a TensorList) as a Python object, a
# resource as its int32 id. Not in the reverse map: object and int32 mean string and int32.
_NUMPY_BY_TF[TF_VARIANT] = np.dtype(object)
_NUMPY_BY_TF[TF_RESOURCE] = np.dtype(np.int32)


def numpy_from_tf(tf_type: int) -> np.dtype:
    """The NumPy dtype for a TensorFlow DataType code (ref types, +100, map to the base)."""
    try:
        return _NUMPY_BY_TF[tf_type % 100]
    except KeyError:
        raise ModelFormatError(f"TensorFlow DataType {tf_type} is not supported") from None


def tf_from_numpy(dtype: np.dtype | type) -> int:
    dt = np.dtype(dtype)
    if dt.kind in "SUO":
        return TF_STRING
    try:
        return _TF_BY_NUMPY[dt]
    except KeyError:
        raise ModelFormatError(f"NumPy dtype {dt} has no TensorFlow DataType") from None
