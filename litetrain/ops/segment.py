"""Ids, segments and scatters: UNIQUE, SEGMENT_SUM, UNSORTED_SEGMENT_SUM/PROD/MAX/MIN,
SCATTER_ND, EMBEDDING_LOOKUP, BROADCAST_ARGS — what an Embedding layer's gradient and
sparse updates become in converted training graphs.

Segment ops reduce rows of ``data`` into ``num_segments`` (SEGMENT_SUM: max id + 1) rows;
a segment no row maps to holds the reduction's identity (0 for sums; for products 1; for
max/min the type's lowest/highest value), as TensorFlow's kernels do; negative ids are
dropped. SCATTER_ND adds updates into zeros (duplicates accumulate).
"""

from __future__ import annotations

import numpy as np

from .registry import NodeInfo, OpDef, Shaped
from .shapes import DYNAMIC, broadcast, one, require_values, shape_of, values_of


def unique(attrs, x):
    """Values in order of first appearance, and each element's index among them."""
    values, first, inverse = np.unique(x, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    idx_type = np.int64 if attrs.get("idx_out_type", 2) == 4 else np.int32
    return values[order], rank[inverse.reshape(-1)].reshape(x.shape).astype(idx_type)


def _identity(ufunc: np.ufunc, dtype: np.dtype):
    if ufunc is np.add:
        return 0
    if ufunc is np.multiply:
        return 1
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    return info.min if ufunc is np.maximum else info.max


def _segments(ufunc: np.ufunc, data, ids, n: int):
    ids = np.asarray(ids)
    if ids.shape != data.shape[:ids.ndim]:
        raise ValueError(f"segment ids {list(ids.shape)} do not match the leading dims of "
                         f"data {list(data.shape)}")
    if ids.size and ids.max() >= n:
        raise ValueError(f"segment id {int(ids.max())} is not below num_segments {n}")
    rows = data.reshape(ids.size, *data.shape[ids.ndim:])
    flat = ids.reshape(-1)
    keep = flat >= 0
    out = np.full((n, *rows.shape[1:]), _identity(ufunc, data.dtype), data.dtype)
    ufunc.at(out, flat[keep], rows[keep])
    return out


def _unsorted(ufunc: np.ufunc):
    def kernel(attrs, data, segment_ids, num_segments):
        return _segments(ufunc, data, segment_ids, int(np.asarray(num_segments).reshape(-1)[0]))
    return kernel


def segment_sum(attrs, data, segment_ids):
    if segment_ids.size and np.any(np.diff(segment_ids.reshape(-1)) < 0):
        raise ValueError("SEGMENT_SUM needs sorted segment ids")
    n = int(segment_ids.max()) + 1 if segment_ids.size else 0
    return _segments(np.add, data, segment_ids, n)


def scatter_nd(attrs, indices, updates, shape):
    out = np.zeros(tuple(int(d) for d in np.asarray(shape).reshape(-1)), updates.dtype)
    k = indices.shape[-1]
    idx = indices.reshape(-1, k)
    if idx.size and (np.any(idx < 0) or np.any(idx >= np.array(out.shape[:k]))):
        raise ValueError(f"scatter_nd index out of range for shape {list(out.shape)}")
    np.add.at(out, tuple(idx.T), updates.reshape(idx.shape[0], *out.shape[k:]))
    return out


def embedding_lookup(attrs, ids, params):
    if ids.size and (ids.min() < 0 or ids.max() >= params.shape[0]):
        raise ValueError(f"embedding id out of range [0, {params.shape[0]})")
    return params[ids]


def broadcast_args(attrs, s0, s1):
    return np.array(np.broadcast_shapes(tuple(s0.tolist()), tuple(s1.tolist())), s0.dtype)


def _unique_shape(info: NodeInfo):
    return Shaped((DYNAMIC,)), Shaped(shape_of(info, 0))


def _unsorted_shape(info: NodeInfo):
    data, ids = shape_of(info, 0), shape_of(info, 1)
    (n,) = require_values(info, 2, "num_segments")
    return one((DYNAMIC if n is None else n, *data[len(ids):]))


def _segment_sum_shape(info: NodeInfo):
    return one((DYNAMIC, *shape_of(info, 0)[len(shape_of(info, 1)):]))


def _scatter_nd_shape(info: NodeInfo):
    return one(tuple(DYNAMIC if d is None else d for d in require_values(info, 2, "shape")))


def _broadcast_args_shape(info: NodeInfo):
    a, b = values_of(info, 0), values_of(info, 1)
    if a is None or b is None or None in a or None in b:
        return one((max(shape_of(info, 0)[0], shape_of(info, 1)[0]),))
    out = broadcast(a, b)
    return one((len(out),), out)


OPS = [
    OpDef("unique", unique, "UniqueOptions", shape=_unique_shape, fresh_output=True,
          shape_inputs=(0,), num_outputs=2),
    OpDef("segment_sum", segment_sum, "SegmentSumOptions", shape=_segment_sum_shape,
          fresh_output=True, shape_inputs=(1,)),
    OpDef("unsorted_segment_sum", _unsorted(np.add), "UnsortedSegmentSumOptions",
          shape=_unsorted_shape, fresh_output=True, shape_inputs=(2,)),
    OpDef("unsorted_segment_prod", _unsorted(np.multiply), "UnsortedSegmentProdOptions",
          shape=_unsorted_shape, fresh_output=True, shape_inputs=(2,)),
    OpDef("unsorted_segment_max", _unsorted(np.maximum), "UnsortedSegmentMaxOptions",
          shape=_unsorted_shape, fresh_output=True, shape_inputs=(2,)),
    OpDef("unsorted_segment_min", _unsorted(np.minimum), "UnsortedSegmentMinOptions",
          shape=_unsorted_shape, fresh_output=True, shape_inputs=(2,)),
    OpDef("scatter_nd", scatter_nd, "ScatterNdOptions", shape=_scatter_nd_shape,
          fresh_output=True, shape_inputs=(2,)),
    OpDef("embedding_lookup", embedding_lookup, shape=lambda info: one(
        (*shape_of(info, 0), *shape_of(info, 1)[1:])), passthrough=True, fresh_output=True,
          shape_inputs=()),
    OpDef("broadcast_args", broadcast_args, shape=_broadcast_args_shape, fresh_output=True,
          shape_inputs=()),
]
