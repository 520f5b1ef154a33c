"""Shape ops: RESHAPE, SHAPE, RANK, SQUEEZE, EXPAND_DIMS, TRANSPOSE, CAST, TILE,
BROADCAST_TO, FILL, ZEROS_LIKE, RANGE, ONE_HOT — kernels, shape rules (which also carry
the known values of shape vectors), gradient rules, quantized behaviour."""

from __future__ import annotations

import numpy as np

from .common import as_int_tuple, axes
from .grad import i32, reshape_like_input, unbroadcast
from .registry import NodeInfo, OpDef
from .shapes import (
    DYNAMIC,
    fully_known,
    one,
    require_values,
    reshaped,
    same_as,
    shape_of,
    values_of,
)


def reshape(attrs, x, shape=None):
    # The shape input wins over the legacy ``new_shape`` attr; an empty shape means scalar.
    dims = as_int_tuple(shape if shape is not None else attrs.get("new_shape", ()))
    return x.reshape(dims)


def shape_op(attrs, x):
    return np.array(x.shape, np.int64 if attrs.get("out_type", 2) == 4 else np.int32)


def squeeze(attrs, x):
    dims = as_int_tuple(attrs.get("squeeze_dims", ()))
    if not dims:
        return x.reshape([d for d in x.shape if d != 1])
    return np.squeeze(x, axis=axes(dims, x.ndim))


def expand_dims(attrs, x, axis):
    (a,) = as_int_tuple(axis)
    return np.expand_dims(x, a if a >= 0 else x.ndim + 1 + a)


def cast(out_dtype: np.dtype, x):
    return x.astype(out_dtype)


def _range(attrs, start, limit, delta):
    d = delta.item()
    if d == 0:
        raise ValueError("range delta must be non-zero")
    return np.arange(start.item(), limit.item(), d, dtype=start.dtype)


def one_hot(attrs, indices, depth, on_value, off_value):
    d = int(np.asarray(depth).reshape(()))
    if d < 0:
        raise ValueError(f"one_hot depth must be >= 0, got {d}")
    hot = np.arange(d) == np.expand_dims(indices, -1)  # out-of-range indices give all-off
    out = np.where(hot, on_value.reshape(()), off_value.reshape(()))
    axis = attrs.get("axis", -1)
    return np.moveaxis(out, -1, axis) if axis not in (-1, out.ndim - 1) else out


def fill(attrs, dims, value):
    return np.full(as_int_tuple(dims), value.reshape(()), dtype=value.dtype)


# --- shape rules -------------------------------------------------------------------------

def _passing_known(info: NodeInfo, shape) -> tuple:
    """An op that keeps a small vector's elements (in order) keeps their known values."""
    v = values_of(info, 0)
    return one(shape, v if v is not None and len(v) == int(np.prod(shape)) else None)


def _reshape_shape(info: NodeInfo):
    target = values_of(info, 1) if len(info.inputs) > 1 and info.inputs[1] is not None \
        else tuple(int(d) for d in np.asarray(info.attrs.get("new_shape", ())).tolist())
    if target is None:
        require_values(info, 1, "shape")
    return _passing_known(info, reshaped(shape_of(info, 0), target))


def _shape_shape(info: NodeInfo):
    x = shape_of(info, 0)
    return one((len(x),), tuple(None if d == DYNAMIC else d for d in x))


def _squeeze_shape(info: NodeInfo):
    x = shape_of(info, 0)
    dims = as_int_tuple(info.attrs.get("squeeze_dims", ()))
    drop = set(axes(dims, len(x))) if dims else {i for i, d in enumerate(x) if d == 1}
    return _passing_known(info, tuple(d for i, d in enumerate(x) if i not in drop))


def _expand_dims_shape(info: NodeInfo):
    x = list(shape_of(info, 0))
    (a,) = fully_known(info, 1, "axis")
    x.insert(a if a >= 0 else len(x) + 1 + a, 1)
    return _passing_known(info, tuple(x))


def _transpose_shape(info: NodeInfo):
    x = shape_of(info, 0)
    return one(tuple(x[p] for p in fully_known(info, 1, "permutation")))


def _tile_shape(info: NodeInfo):
    x = shape_of(info, 0)
    m = fully_known(info, 1, "multiples")
    return one(tuple(DYNAMIC if d == DYNAMIC else d * k for d, k in zip(x, m, strict=True)))


def _shape_from_values(k: int, what: str):
    def rule(info: NodeInfo):
        return one(tuple(DYNAMIC if d is None else d for d in require_values(info, k, what)))
    return rule


def _range_shape(info: NodeInfo):
    v = [values_of(info, k) for k in range(3)]
    if any(x is None or None in x for x in v):
        return one((DYNAMIC,))
    return one(np.arange(v[0][0], v[1][0], v[2][0]).shape)


def _one_hot_shape(info: NodeInfo):
    x = list(shape_of(info, 0))
    (depth,) = fully_known(info, 1, "depth")
    axis = info.attrs.get("axis", -1)
    x.insert(len(x) if axis == -1 else axis, depth)
    return one(tuple(x))


# --- gradient rules ----------------------------------------------------------------------

def _transpose_vjp(g, attrs, ins, outs, dy):
    perm = np.asarray(ins[1].data).reshape(-1)
    return [g.op("transpose", dy, i32(g, np.argsort(perm))), None]


def _cast_vjp(g, attrs, ins, outs, dy):
    if ins[0].dtype.kind != "f":
        return [None]
    return [g.op("cast", dy, out_dtypes=(ins[0].dtype,))]


def _cast_prepare(info: NodeInfo) -> np.dtype:
    """CAST's target type is its output tensor's type (the converter omits CastOptions)."""
    if not info.outputs:
        raise ValueError("CAST needs its output type (out_dtypes=...)")
    return info.outputs[0].dtype


# Ops that only rearrange values keep the input's quantization (TFLite requires it).
_SAME_Q = {"passthrough": True, "output_quantization": "same_as_input"}


def _transpose(attrs, x, perm):
    # ndarray.transpose is what np.transpose calls, without its Python-level dispatch (a
    # train step transposes a dozen small filters each run)
    return x.transpose(as_int_tuple(perm)).copy()


OPS = [
    OpDef("reshape", reshape, "ReshapeOptions", shape=_reshape_shape, vjp=reshape_like_input,
          shape_inputs=(1,), **_SAME_Q),
    OpDef("shape", shape_op, "ShapeOptions", shape=_shape_shape, passthrough=True,
          fresh_output=True, shape_inputs=()),
    OpDef("rank", lambda attrs, x: np.array(x.ndim, np.int32), "RankOptions",
          shape=lambda info: one((), (len(shape_of(info, 0)),)), passthrough=True,
          fresh_output=True, shape_inputs=()),
    OpDef("squeeze", squeeze, "SqueezeOptions", shape=_squeeze_shape, vjp=reshape_like_input,
          shape_inputs=(), **_SAME_Q),
    OpDef("expand_dims", expand_dims, "ExpandDimsOptions", shape=_expand_dims_shape,
          vjp=reshape_like_input, shape_inputs=(1,), **_SAME_Q),
    OpDef("transpose", _transpose,
          "TransposeOptions", shape=_transpose_shape, vjp=_transpose_vjp, shape_inputs=(1,),
          **_SAME_Q),
    OpDef("cast", cast, "CastOptions", prepare=_cast_prepare,
          shape=lambda info: _passing_known(info, shape_of(info, 0)), vjp=_cast_vjp,
          passthrough=True, shape_inputs=()),
    OpDef("tile", lambda attrs, x, mult: np.tile(x, as_int_tuple(mult)), "TileOptions",
          shape=_tile_shape, passthrough=True, shape_inputs=(1,)),
    OpDef("broadcast_to", lambda attrs, x, s: np.broadcast_to(x, as_int_tuple(s)).copy(),
          "BroadcastToOptions", shape=_shape_from_values(1, "shape"), passthrough=True,
          vjp=lambda g, attrs, ins, outs, dy: [unbroadcast(g, dy, ins[0]), None],
          shape_inputs=(1,), min_version=2),
    OpDef("fill", fill, "FillOptions", shape=_shape_from_values(0, "dims"), shape_inputs=(0,)),
    OpDef("zeros_like", lambda attrs, x: np.zeros_like(x), "ZerosLikeOptions",
          shape=same_as(0), passthrough=True, shape_inputs=()),
    OpDef("range", _range, "RangeOptions", shape=_range_shape, shape_inputs=(0, 1, 2)),
    OpDef("one_hot", one_hot, "OneHotOptions", shape=_one_hot_shape, shape_inputs=(1,)),
]
