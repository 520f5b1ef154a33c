"""How tensors cross the API boundary: caller values converted and checked for an input
tensor, and the ``tf.lite``-style dict describing a tensor.

:class:`InputCheck` is :func:`convert_input` for one tensor, with what the check needs
worked out once: an array that already has the tensor's dtype and a shape its signature
allows passes through as it is (what :func:`convert_input` returns for it too), and
anything else takes :func:`convert_input`'s path, with its conversions and messages."""

from __future__ import annotations

import os

import numpy as np

from .. import dtypes
from ..errors import SignatureError
from ..ir import Tensor


def _string_array(value, t: Tensor, where: str) -> np.ndarray:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    arr = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    if arr.dtype.kind not in "SUO":
        raise SignatureError(f"{where}: expected a string (str, bytes, path or a NumPy "
                             f"string array) for {t.describe()}, got {arr.dtype} values")
    out = np.empty(arr.shape, dtype=object)
    for i, v in np.ndenumerate(arr):
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        if isinstance(v, str):
            v = v.encode("utf-8")
        if not isinstance(v, (bytes, np.bytes_)):
            raise SignatureError(f"{where}: element {i} is {type(v).__name__}, not a string")
        out[i] = bytes(v)
    if out.shape != t.shape and out.size == 1 and len(t.signature_shape) == 0:
        out = out.reshape(())
    return out


def _dtype_hint(arr: np.ndarray, t: Tensor, want: np.dtype) -> str:
    """What came and how to fix it: integer class labels for a float one-hot input need
    one-hot rows, not a cast."""
    got = f"an {arr.dtype} array" if str(arr.dtype)[0] in "aeio" else f"a {arr.dtype} array"
    sig = t.signature_shape
    if arr.dtype.kind in "iu" and np.dtype(want).kind == "f" and len(sig) == arr.ndim + 1 \
            and sig[-1] > 1:
        return (f"{got} of shape {list(arr.shape)}: class indices? this input takes one-hot "
                f"rows: litetrain.data.one_hot(labels, {sig[-1]})")
    return f"{got}; convert it with .astype(np.{np.dtype(want).name})"


def convert_input(value, t: Tensor, where: str) -> np.ndarray:
    """Check and convert one input value for tensor ``t`` (``SignatureError`` if it can't)."""
    if t.dtype == dtypes.STRING:
        arr = _string_array(value, t, where)
    else:
        want = dtypes.to_numpy(t.dtype)
        if isinstance(value, (np.ndarray, np.generic)):
            arr = np.asarray(value)
            if arr.dtype != want:
                raise SignatureError(f"{where}: expected {t.describe()}, got "
                                     f"{_dtype_hint(arr, t, want)}")
        else:
            try:
                arr = np.asarray(value, dtype=want)
            except (TypeError, ValueError) as e:
                raise SignatureError(f"{where}: cannot convert {type(value).__name__} to "
                                     f"{t.describe()}: {e}") from None
    sig = t.signature_shape
    if arr.ndim != len(sig) or any(s not in (-1, d) for s, d in zip(sig, arr.shape, strict=True)):
        raise SignatureError(f"{where}: expected {t.describe()} (-1 = any size), got shape "
                             f"{list(arr.shape)}")
    return arr


class InputCheck:
    """``convert_input(value, tensor, where)`` for one tensor, with a fast path for arrays
    that need nothing done."""

    __slots__ = ("batch_free", "dtype", "shape", "tensor", "where")

    def __init__(self, t: Tensor, where: str):
        self.tensor, self.where = t, where
        self.dtype = None if t.dtype == dtypes.STRING else dtypes.to_numpy(t.dtype)
        sig = tuple(t.signature_shape)
        # The fast path knows two signatures: fully static (the shape must be it), and
        # free only in the first dim (the batch: the other dims must be sig[1:]).
        self.batch_free = bool(sig) and sig[0] == -1 and -1 not in sig[1:]
        self.shape = sig[1:] if self.batch_free else sig if -1 not in sig else None

    def __call__(self, value) -> np.ndarray:
        if (value.__class__ is np.ndarray and self.dtype is not None
                and self.shape is not None and value.dtype == self.dtype):
            shape = value.shape
            if (shape[1:] == self.shape and len(shape) == len(self.shape) + 1
                    if self.batch_free else shape == self.shape):
                return value
        return convert_input(value, self.tensor, self.where)


def tensor_details(t: Tensor, index: int, shape: tuple[int, ...]) -> dict:
    """The dict ``tf.lite.Interpreter`` uses to describe a tensor."""
    q = t.quantization
    scales = q.scale if q is not None else np.zeros(0, np.float32)
    zps = q.zero_point.astype(np.int32) if q is not None else np.zeros(0, np.int32)
    per_tensor = (float(scales[0]), int(zps[0])) if q is not None and scales.size == 1 \
        else (0.0, 0)
    dtype = np.bytes_ if t.dtype == dtypes.STRING else dtypes.to_numpy(t.dtype).type
    return {
        "name": t.name,
        "index": index,
        "shape": np.array(shape, np.int32),
        "shape_signature": np.array(t.signature_shape, np.int32),
        "dtype": dtype,
        "quantization": per_tensor,
        "quantization_parameters": {"scales": scales, "zero_points": zps,
                                    "quantized_dimension": q.axis if q is not None else 0},
        "sparsity_parameters": {},
    }
