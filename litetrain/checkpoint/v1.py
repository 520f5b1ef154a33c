"""V1 checkpoints: one table file, what ``tf.raw_ops.Save`` writes and ``Restore`` reads.

Key ``""`` holds ``SavedTensorSlices{meta}`` listing every tensor (name, shape, dtype,
slices); each other key (``EncodeTensorNameSlice``) holds ``SavedTensorSlices{data}`` with
one slice's values. Tensors are written in sorted name order, as TF does, which makes
the output byte-identical to TensorFlow's for the same tensors.
"""

from __future__ import annotations

import math

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
    """All tensors of a V1 checkpoint; raises ValueError/TableError on any inconsistency.

    Sizes are checked against the file before anything is allocated (every stored value
    takes at least one byte), and coverage is tracked element by element: each element
    must be written by exactly one slice record, so overlapping or missing slices are
    errors, never uninitialised memory.
    """
    entries = table.parse(data)
    first = next(entries, None)
    if first is None or first[0] != b"":
        raise ValueError("no SavedTensorSlices meta record at the start (not a V1 checkpoint)")
    meta_fields = pw.parse(first[1])
    if 1 not in meta_fields:
        raise ValueError("the first record holds no tensor metadata (not a V1 checkpoint)")
    specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    for raw in pw.parse(meta_fields.bytes(1)).all_bytes(1):
        m = pw.parse(raw)
        name = m.bytes(1).decode("utf-8")
        shape = decode_shape(m.bytes(2))
        dtype = dtypes.numpy_from_tf(m.int(3))
        if name in specs:
            raise ValueError(f"the metadata lists tensor '{name}' twice")
        total += math.prod(shape)
        if total > len(data):
            raise ValueError(f"the metadata claims tensor '{name}' {list(shape)} and more "
                             f"values than the {len(data)}-byte file can hold")
        specs[name] = (shape, dtype)
    out = {name: np.empty(shape, dtype) if dtype.kind != "O" else np.full(shape, b"", object)
           for name, (shape, dtype) in specs.items()}
    covered = {name: np.zeros(shape, bool) for name, (shape, _) in specs.items()}
    for _key, value in entries:
        f = pw.parse(value)
        if 2 not in f:
            raise ValueError("a data record holds no tensor slice")
        s = pw.parse(f.bytes(2))
        name = s.bytes(1).decode("utf-8")
        if name not in out:
            raise ValueError(f"data for '{name}', which the metadata does not list")
        target = out[name]
        # The trailing Ellipsis keeps 0-d selections arrays (a scalar string stays an array).
        index = (*decode_slice(s.bytes(2), target.shape), Ellipsis)
        if covered[name][index].any():
            raise ValueError(f"tensor '{name}': two slice records cover the same elements")
        view_shape = target[index].shape
        try:
            values = decode_values(s.bytes(3), target.dtype, math.prod(view_shape))
        except ValueError as e:
            raise ValueError(f"tensor '{name}' {list(target.shape)}: {e}") from None
        target[index] = values.reshape(view_shape)
        covered[name][index] = True
    for name, mask in covered.items():
        if not mask.all():
            raise ValueError(f"tensor '{name}': only {int(mask.sum())} of {mask.size} values "
                             "are stored")
    return out
