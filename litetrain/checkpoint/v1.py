"""V1 checkpoints: one table file, what ``tf.raw_ops.Save`` writes and ``Restore`` reads.

Key ``""`` holds ``SavedTensorSlices{meta}`` listing every tensor (name, shape, dtype,
slices); each other key (``EncodeTensorNameSlice``) holds ``SavedTensorSlices{data}`` with
one slice's values. Tensors are written in sorted name order, as TF does, which makes
the output byte-identical to TensorFlow's for the same tensors.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from .. import protowire as pw
from . import table
from .ordered_code import tensor_key
from .tensor_proto import (
    decode_shape,
    decode_slice,
    decode_values,
    encode_full_slice,
    encode_shape,
    encode_values,
)

_TF_CHECKPOINT_VERSION = 1


def serialize(tensors: dict[str, np.ndarray]) -> bytes:
    names = sorted(tensors)
    metas = b""
    records = []
    for name in names:
        arr = tensors[name]
        slice_proto = encode_full_slice(arr.ndim)
        metas += pw.field_bytes(1, pw.field_bytes(1, name.encode("utf-8"))
                                + pw.field_bytes(2, encode_shape(arr.shape))
                                + pw.field_varint(3, dtypes.tf_from_numpy(arr.dtype))
                                + pw.field_bytes(4, slice_proto))
        saved_slice = (pw.field_bytes(1, name.encode("utf-8")) + pw.field_bytes(2, slice_proto)
                       + pw.field_bytes(3, encode_values(arr)))
        records.append((tensor_key(name, arr.ndim), pw.field_bytes(2, saved_slice)))
    meta = metas + pw.field_bytes(2, pw.field_varint(1, _TF_CHECKPOINT_VERSION))
    records.sort()
    return table.build([(b"", pw.field_bytes(1, meta)), *records])


def deserialize(data: bytes) -> dict[str, np.ndarray]:
    """All tensors of a V1 checkpoint; raises ValueError/TableError on any inconsistency."""
    entries = table.parse(data)
    first = next(entries, None)
    if first is None or first[0] != b"":
        raise ValueError("no SavedTensorSlices meta record at the start (not a V1 checkpoint)")
    meta_fields = pw.parse(first[1])
    if 1 not in meta_fields:
        raise ValueError("the first record holds no tensor metadata (not a V1 checkpoint)")
    out: dict[str, np.ndarray] = {}
    filled: dict[str, int] = {}
    for raw in pw.parse(meta_fields[1][0]).get(1, []):
        m = pw.parse(raw)
        name = m.get(1, [b""])[0].decode("utf-8")
        shape = decode_shape(m.get(2, [b""])[0])
        dtype = dtypes.numpy_from_tf(m.get(3, [0])[0])
        out[name] = np.empty(shape, dtype) if dtype.kind != "O" else np.full(shape, b"", object)
        filled[name] = 0
    for key, value in entries:
        f = pw.parse(value)
        if 2 not in f:
            raise ValueError(f"record {key[:40]!r} holds no tensor data")
        s = pw.parse(f[2][0])
        name = s.get(1, [b""])[0].decode("utf-8")
        if name not in out:
            raise ValueError(f"data for '{name}', which the metadata does not list")
        target = out[name]
        # The trailing Ellipsis keeps 0-d selections arrays (a scalar string stays an array).
        index = (*decode_slice(s.get(2, [b""])[0], target.shape), Ellipsis)
        view_shape = target[index].shape
        try:
            values = decode_values(s.get(3, [b""])[0], target.dtype, int(np.prod(view_shape)))
        except ValueError as e:
            raise ValueError(f"tensor '{name}' {list(target.shape)}: {e}") from None
        target[index] = values.reshape(view_shape)
        filled[name] += values.size
    for name, n in filled.items():
        if n < out[name].size:
            raise ValueError(f"tensor '{name}': only {n} of {out[name].size} values are stored")
    return out
