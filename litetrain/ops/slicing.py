"""Slicing, joining, padding and gathering: SLICE, STRIDED_SLICE, CONCATENATION, PACK,
UNPACK, SPLIT, SPLIT_V, PAD, PADV2, MIRROR_PAD, REVERSE_V2, GATHER, GATHER_ND,
SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND — kernels, shape rules (with known values for shape
vectors), gradient rules, integer kernels and quantized behaviour.

SLICE, STRIDED_SLICE, SPLIT, SPLIT_V and UNPACK return views of their input, never copies: kernels
are pure (no kernel writes into its inputs), the runtime counts these ops' outputs in
their input's alias group (they do not declare ``fresh_output``), so in-place steps never
overwrite an array a live view still reads, and results reach the caller as copies. A
recurrent step splits its gate pre-activations 16-33 times; a copy per piece was most of
SPLIT's cost."""

from __future__ import annotations

import numpy as np

from ..errors import TraceError, user_frame
from .common import as_int_tuple, axes, fused
from .quantized.fixed_point import dtype_range, round_half_away
from .quantized.lib import Quantized, clamp, integer
from .registry import NodeInfo, OpDef
from .shapes import DYNAMIC, fully_known, one, shape_of, values_of


def slice_op(attrs, x, begin, size):
    b, s = as_int_tuple(begin), as_int_tuple(size)
    idx = tuple(slice(bi, None if si == -1 else bi + si) for bi, si in zip(b, s, strict=True))
    for bi, si, d in zip(b, s, x.shape, strict=False):
        if bi < 0 or bi > d or (si != -1 and (si < 0 or bi + si > d)):
            raise ValueError(f"slice begin {list(b)} size {list(s)} is out of range for "
                             f"shape {list(x.shape)}")
    return x[idx]  # a view (see the module docstring)


def _strided_spec(attrs, b, e, st) -> tuple:
    spec: list[object] = []
    for i in range(len(b)):
        bit = 1 << i
        if attrs.get("ellipsis_mask", 0) & bit:
            spec.append(Ellipsis)
        elif attrs.get("new_axis_mask", 0) & bit:
            spec.append(np.newaxis)
        elif attrs.get("shrink_axis_mask", 0) & bit:
            spec.append(b[i])
        else:
            stop = b[i] + e[i] if attrs.get("offset", False) else e[i]
            spec.append(slice(None if attrs.get("begin_mask", 0) & bit else b[i],
                              None if attrs.get("end_mask", 0) & bit else stop, st[i]))
    return tuple(spec)


def strided_slice(attrs, x, begin, end, strides=None):
    b, e = as_int_tuple(begin), as_int_tuple(end)
    st = as_int_tuple(strides) if strides is not None else (1,) * len(b)
    if 0 in st:
        raise ValueError("strided_slice stride must be non-zero")
    spec = _strided_spec(attrs, b, e, st)
    if Ellipsis not in spec:  # all-integer indices would give a NumPy scalar, not a view
        spec = (*spec, Ellipsis)
    return x[spec]  # a view (see the module docstring)


def concatenation(attrs, *xs):
    out = np.concatenate(xs, axis=attrs.get("axis", 0))
    return fused(out, attrs.get("fused_activation_function", 0))


def pack(attrs, *xs):
    return np.stack(xs, axis=attrs.get("axis", 0))


def unpack(attrs, x):
    """Views of ``x``'s slices along the axis (see the module docstring)."""
    return tuple(np.moveaxis(x, attrs.get("axis", 0), 0))


def split(attrs, axis, x):
    """Equal views along ``axis`` (basic slicing: np.split's checks and lists cost more
    than the views)."""
    axis = np.asarray(axis)
    if axis.size != 1:
        raise ValueError(f"split axis must be one integer, got {axis.tolist()}")
    a = int(axis.reshape(-1)[0])
    if not -x.ndim <= a < x.ndim:
        raise ValueError(f"axis {a} is out of range for rank {x.ndim}")
    a %= x.ndim
    n = attrs["num_splits"]
    d = x.shape[a]
    if d % n:
        raise ValueError(f"dim {a} of size {d} does not split into {n} equal parts")
    k = d // n
    lead = (slice(None),) * a
    return tuple(x[(*lead, slice(i * k, i * k + k))] for i in range(n))


def split_v(attrs, x, size_splits, axis):
    (a,) = axes(axis, x.ndim)
    sizes = _split_sizes(as_int_tuple(size_splits), x.shape[a])
    if sum(sizes) != x.shape[a] or min(sizes) < 0:
        raise ValueError(f"split sizes {sizes} do not add up to dim {a} of size {x.shape[a]}")
    lead, start, parts = (slice(None),) * a, 0, []
    for size in sizes:
        parts.append(x[(*lead, slice(start, start + size))])
        start += size
    return tuple(parts)


def _split_sizes(sizes, dim: int) -> list[int]:
    sizes = list(sizes)
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    return sizes


def pad(attrs, x, paddings, constant=None):
    p = np.asarray(paddings).reshape(-1, 2).tolist()
    if len(p) != x.ndim or min(min(r) for r in p) < 0:
        raise ValueError(f"paddings {p} do not fit an input of rank {x.ndim}")
    value = constant.reshape(()).item() if constant is not None else 0
    return np.pad(x, p, constant_values=value)


def _pad_into(attrs, x, paddings, constant=None, *, out):
    """PAD writing into ``out``: the borders set to the constant, the input copied in
    (np.pad's values: the constant is cast to the output's type either way)."""
    p = np.asarray(paddings).reshape(-1, 2).tolist()
    if len(p) != x.ndim or min(min(r) for r in p) < 0 or out.shape != tuple(
            s + b + a for s, (b, a) in zip(x.shape, p, strict=True)):
        return pad(attrs, x, paddings, constant)
    value = constant.reshape(()).item() if constant is not None else 0
    for axis, (before, after) in enumerate(p):
        lead = (slice(None),) * axis
        if before:
            out[(*lead, slice(0, before))] = value
        if after:
            out[(*lead, slice(out.shape[axis] - after, None))] = value
    out[tuple(slice(b, b + s) for (b, _), s in zip(p, x.shape, strict=True))] = x
    return out


def mirror_pad(attrs, x, paddings):
    p = np.asarray(paddings).reshape(-1, 2).tolist()
    return np.pad(x, p, mode="reflect" if attrs.get("mode", 0) == 0 else "symmetric")


def reverse_v2(attrs, x, axis):
    """A copy of a reversed view, spelled as basic slicing: ``np.flip`` gives the same
    view through several Python-level calls, which cost a train step tens of
    microseconds per small filter once its caches have gone cold."""
    ax = [int(a) % max(x.ndim, 1) for a in np.asarray(axis).reshape(-1).tolist()]
    if len(set(ax)) != len(ax):
        raise ValueError(f"reverse_v2 axis {ax} repeats an axis")
    if x.ndim == 0 and ax:
        raise ValueError(f"reverse_v2 axis {ax} is out of range for a scalar")
    return x[tuple(_BACKWARDS if d in ax else _ALL for d in range(x.ndim))].copy()


_ALL, _BACKWARDS = slice(None), slice(None, None, -1)


def gather(attrs, params, indices):
    axis = attrs.get("axis", 0) % max(params.ndim, 1)
    batch_dims = attrs.get("batch_dims", 0) % max(indices.ndim, 1) if indices.ndim else 0
    if np.any(indices < 0) or np.any(indices >= params.shape[axis]):
        raise ValueError(f"gather index out of range [0, {params.shape[axis]})")
    if batch_dims == 0:
        return np.take(params, indices, axis=axis)
    lead = params.shape[:batch_dims]
    p = params.reshape(-1, *params.shape[batch_dims:])
    i = indices.reshape(-1, *indices.shape[batch_dims:])
    out = np.stack([np.take(pp, ii, axis=axis - batch_dims) for pp, ii in zip(p, i, strict=True)])
    return out.reshape(*lead, *out.shape[1:])


def gather_nd(attrs, params, indices):
    k = indices.shape[-1]
    if np.any(indices < 0) or np.any(indices >= np.array(params.shape[:k])):
        raise ValueError(f"gather_nd index out of range for shape {list(params.shape)}")
    return params[tuple(np.moveaxis(indices, -1, 0))]


def space_to_batch_nd(attrs, x, block_shape, paddings, pad_value=0):
    block = as_int_tuple(block_shape)
    m = len(block)
    p = np.asarray(paddings).reshape(m, 2).tolist()
    xp = np.pad(x, [(0, 0), *p, *[(0, 0)] * (x.ndim - 1 - m)], constant_values=pad_value)
    n, spatial, rest = xp.shape[0], xp.shape[1:1 + m], xp.shape[1 + m:]
    shape = [n]
    for s, bl in zip(spatial, block, strict=True):
        if s % bl:
            raise ValueError(f"padded spatial dim {s} is not divisible by block {bl}")
        shape += [s // bl, bl]
    y = xp.reshape(*shape, *rest)
    perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)]
    perm += list(range(1 + 2 * m, y.ndim))
    y = y.transpose(perm)
    return y.reshape(n * int(np.prod(block)), *(s // bl for s, bl in
                                                zip(spatial, block, strict=True)), *rest)


def batch_to_space_nd(attrs, x, block_shape, crops):
    block = as_int_tuple(block_shape)
    m = len(block)
    c = np.asarray(crops).reshape(m, 2).tolist()
    nb = int(np.prod(block))
    n = x.shape[0] // nb
    spatial, rest = x.shape[1:1 + m], x.shape[1 + m:]
    y = x.reshape(*block, n, *spatial, *rest)
    perm = [m]
    for i in range(m):
        perm += [m + 1 + i, i]
    perm += list(range(1 + 2 * m, y.ndim))
    y = y.transpose(perm).reshape(n, *(s * bl for s, bl in zip(spatial, block, strict=True)),
                                  *rest)
    idx = tuple(slice(a, y.shape[1 + i] - b) for i, (a, b) in enumerate(c))
    return y[(slice(None), *idx)].copy()


# --- shape rules -------------------------------------------------------------------------

def _probe(shape, fn):
    """Run ``fn`` on a stand-in array of ``shape`` (dynamic dims as size 1 with a marker
    axis): the output's dims that came from a dynamic input dim are dynamic."""
    dyn = [i for i, d in enumerate(shape) if d == DYNAMIC]
    stand_in = np.zeros([1 if d == DYNAMIC else d for d in shape], np.int8)
    out = fn(stand_in)
    if not dyn:
        return out.shape
    marked = np.zeros([2 if d == DYNAMIC else d for d in shape], np.int8)
    wide = fn(marked)
    return tuple(DYNAMIC if a != b else a for a, b in zip(out.shape, wide.shape, strict=True))


def _slice_shape(info: NodeInfo):
    x = shape_of(info, 0)
    b, s = fully_known(info, 1, "begin"), fully_known(info, 2, "size")
    out = tuple(DYNAMIC if si == -1 and d == DYNAMIC else (d - bi if si == -1 else si)
                for bi, si, d in zip(b, s, x, strict=True))
    v = values_of(info, 0)
    return one(out, v[b[0]:b[0] + out[0]] if v is not None and len(x) == 1 else None)


def _strided_slice_shape(info: NodeInfo):
    x = shape_of(info, 0)
    b, e = fully_known(info, 1, "begin"), fully_known(info, 2, "end")
    st = fully_known(info, 3, "strides") if len(info.inputs) > 3 else (1,) * len(b)
    spec = _strided_spec(info.attrs, b, e, st)
    shape = _probe(x, lambda a: a[spec])
    v = values_of(info, 0)
    known = None
    if v is not None and len(x) == 1:
        picked = np.arange(len(v))[spec]
        known = tuple(v[i] for i in np.atleast_1d(picked))
    return one(shape, known)


def _concatenation_shape(info: NodeInfo):
    shapes = [shape_of(info, k) for k in range(len(info.inputs))]
    axis = info.attrs.get("axis", 0) % max(len(shapes[0]), 1)
    size = sum(s[axis] for s in shapes)
    out = list(shapes[0])
    out[axis] = DYNAMIC if any(s[axis] == DYNAMIC for s in shapes) else size
    for s in shapes:  # other dims: any input may know one that is dynamic in the first
        for i, d in enumerate(s):
            if i != axis and out[i] == DYNAMIC:
                out[i] = d
    known = None
    if len(out) == 1:
        parts = [values_of(info, k) for k in range(len(shapes))]
        if all(p is not None for p in parts):
            known = tuple(e for p in parts for e in p)
    return one(tuple(out), known)


def _pack_shape(info: NodeInfo):
    x = list(shape_of(info, 0))
    axis = info.attrs.get("axis", 0)
    x.insert(axis if axis >= 0 else len(x) + 1 + axis, len(info.inputs))
    known = None
    if len(x) == 1:
        parts = [values_of(info, k) for k in range(len(info.inputs))]
        if all(p is not None and len(p) == 1 for p in parts):
            known = tuple(p[0] for p in parts)
    return one(tuple(x), known)


def _unpack_shape(info: NodeInfo):
    x = list(shape_of(info, 0))
    axis = info.attrs.get("axis", 0) % len(x)
    n = x.pop(axis)
    return tuple(one(tuple(x))[0] for _ in range(n))


def _split_shape(info: NodeInfo):
    x = list(shape_of(info, 1))
    (a,) = axes(fully_known(info, 0, "axis"), len(x))
    n = info.attrs["num_splits"]
    x[a] = DYNAMIC if x[a] == DYNAMIC else x[a] // n
    return tuple(one(tuple(x))[0] for _ in range(n))


def _split_v_shape(info: NodeInfo):
    x = shape_of(info, 0)
    (a,) = axes(fully_known(info, 2, "axis"), len(x))
    sizes = _split_sizes(fully_known(info, 1, "sizes"), x[a])
    return tuple(one((*x[:a], s, *x[a + 1:]))[0] for s in sizes)


def _pad_shape(info: NodeInfo):
    x = shape_of(info, 0)
    p = np.asarray(fully_known(info, 1, "paddings")).reshape(-1, 2)
    return one(tuple(DYNAMIC if d == DYNAMIC else d + int(lo) + int(hi)
                     for d, (lo, hi) in zip(x, p, strict=True)))


def _gather_shape(info: NodeInfo):
    params, indices = shape_of(info, 0), shape_of(info, 1)
    axis = info.attrs.get("axis", 0) % max(len(params), 1)
    bd = info.attrs.get("batch_dims", 0) % max(len(indices), 1) if indices else 0
    out = (*params[:axis], *indices[bd:], *params[axis + 1:])
    pv, iv = values_of(info, 0), values_of(info, 1)
    known = None
    if pv is not None and iv is not None and len(params) == 1 and None not in iv:
        known = tuple(pv[i] for i in iv)
    return one(out, known)


def _gather_nd_shape(info: NodeInfo):
    params, indices = shape_of(info, 0), shape_of(info, 1)
    return one((*indices[:-1], *params[indices[-1]:]))


def _space_batch_shape(info: NodeInfo):
    x = shape_of(info, 0)
    block = fully_known(info, 1, "block shape")
    pads = np.asarray(fully_known(info, 2, "paddings or crops")).reshape(len(block), 2)
    nb = int(np.prod(block))
    to_batch = info.op == "space_to_batch_nd"
    n = DYNAMIC if x[0] == DYNAMIC else (x[0] * nb if to_batch else x[0] // nb)
    spatial = []
    for d, bl, (lo, hi) in zip(x[1:1 + len(block)], block, pads, strict=True):
        if d == DYNAMIC:
            spatial.append(DYNAMIC)
        elif to_batch:
            spatial.append((d + int(lo) + int(hi)) // bl)
        else:
            spatial.append(d * bl - int(lo) - int(hi))
    return one((n, *spatial, *x[1 + len(block):]))


# --- gradient rules ----------------------------------------------------------------------

def _as_list(dy) -> list:
    return list(dy) if isinstance(dy, (list, tuple)) else [dy]


def _unpack_vjp(g, attrs, ins, outs, dy):
    """The pieces' cotangents packed back along the unpacked axis."""
    parts = _as_list(dy)
    return [g.op("pack", *parts, axis=attrs.get("axis", 0), values_count=len(parts))]


def _pack_vjp(g, attrs, ins, outs, dy):
    parts = g.op("unpack", dy, axis=attrs.get("axis", 0), num=len(ins))
    return _as_list(parts)


def _split_vjp(g, attrs, ins, outs, dy):
    """SPLIT(axis, x): the pieces' cotangents concatenated along the axis."""
    (axis,) = np.asarray(ins[0].data).reshape(-1).tolist()
    return [None, g.op("concatenation", *_as_list(dy), axis=int(axis))]


def _gather_vjp(g, attrs, ins, outs, dy):
    """GATHER on axis 0 (an embedding lookup): each row's cotangent added into a zero
    table at its index — one SCATTER_ND, which accumulates repeated indices."""
    params, indices = ins
    if attrs.get("axis", 0) % params.ndim != 0 or attrs.get("batch_dims", 0):
        raise TraceError(f"{user_frame()}: gradients of gather need axis 0, no batch dims")
    where = g.op("expand_dims", indices, g.const(np.int32(-1)))
    return [g.op("scatter_nd", where, dy, g.op("shape", params, out_type=2)), None]


def _pad_vjp(g, attrs, ins, outs, dy):
    """PAD/PADV2: the cotangent of the unpadded region (a SLICE of ``dy``)."""
    x = ins[0]
    p = np.asarray(ins[1].data).reshape(-1, 2)
    begin = g.const(np.array(p[:, 0], np.int32))
    size = g.op("shape", x, out_type=2)
    return [g.op("slice", dy, begin, size)] + [None] * (len(ins) - 1)


def _concatenation_vjp(g, attrs, ins, outs, dy):
    axis = attrs.get("axis", 0) % dy.ndim
    sizes = [x.shape[axis] for x in ins]
    parts = g.op("split_v", dy, g.const(np.array(sizes, np.int32)),
                 g.const(np.array(axis, np.int32)), num_splits=len(ins))
    return list(parts) if isinstance(parts, tuple) else [parts]


# --- integer -----------------------------------------------------------------------------

def _concatenation_integer(s: Quantized, *xs):
    qo = s.qout[0]
    parts = []
    for x, q in zip(xs, s.qin, strict=True):
        if q.s == qo.s and q.zp == qo.zp:
            parts.append(x)
        else:  # TFLite's ConcatenationWithScaling: float scale and bias, std::round
            scale = np.float32(q.s) / np.float32(qo.s)
            v = round_half_away(x.astype(np.float32) * scale - np.float32(q.zp) * scale)
            parts.append(np.clip(v.astype(np.int64) + qo.zp, *dtype_range(qo.dtype)
                                 ).astype(qo.dtype))
    out = np.concatenate(parts, axis=s.attrs.get("axis", 0))
    return clamp(out, s.attrs, qo)


def _pad_integer(s: Quantized, x, paddings, value=None):
    """Quantized padding fills with the output's zero point (the real value 0)."""
    fill = value.reshape(()) if value is not None else np.array(s.qout[0].zp, x.dtype)
    pads = np.asarray(paddings, np.int64).reshape(-1, 2)
    return np.pad(x, [tuple(p) for p in pads], constant_values=fill).astype(x.dtype)


def _space_to_batch_integer(s: Quantized, x, block_shape, paddings):
    """Quantized: the padding holds the zero point (the real value 0), as in TFLite."""
    return space_to_batch_nd(s.attrs, x, block_shape, paddings, s.qout[0].zp)


_MOVES = {"passthrough": True}
_SAME_Q = {"passthrough": True, "output_quantization": "same_as_input"}

OPS = [
    OpDef("slice", slice_op, "SliceOptions", shape=_slice_shape, shape_inputs=(1, 2), **_SAME_Q),
    OpDef("strided_slice", strided_slice, "StridedSliceOptions", shape=_strided_slice_shape,
          shape_inputs=(1, 2, 3), **_SAME_Q),
    OpDef("concatenation", concatenation, "ConcatenationOptions", shape=_concatenation_shape,
          vjp=_concatenation_vjp, integer=integer(_concatenation_integer), shape_inputs=()),
    OpDef("pack", pack, "PackOptions", shape=_pack_shape, vjp=_pack_vjp, shape_inputs=(),
          **_MOVES),
    OpDef("unpack", unpack, "UnpackOptions", shape=_unpack_shape, vjp=_unpack_vjp,
          shape_inputs=(), num_outputs=None, **_MOVES),
    OpDef("split", split, "SplitOptions", shape=_split_shape, vjp=_split_vjp,
          shape_inputs=(0,), num_outputs=None, **_MOVES),
    OpDef("split_v", split_v, "SplitVOptions", shape=_split_v_shape, shape_inputs=(1, 2),
          num_outputs=None, **_MOVES),
    OpDef("pad", pad, "PadOptions", shape=_pad_shape, vjp=_pad_vjp,
          integer=integer(_pad_integer), fresh_output=True, into=_pad_into,
          output_quantization="same_as_input", shape_inputs=(1,)),
    OpDef("padv2", pad, "PadV2Options", shape=_pad_shape, vjp=_pad_vjp,
          integer=integer(_pad_integer), fresh_output=True, into=_pad_into,
          shape_inputs=(1,)),
    OpDef("mirror_pad", mirror_pad, "MirrorPadOptions", shape=_pad_shape, shape_inputs=(1,),
          **_MOVES),
    OpDef("reverse_v2", reverse_v2, "ReverseV2Options", shape=lambda info: one(
        shape_of(info, 0)), shape_inputs=(), **_MOVES),
    OpDef("gather", gather, "GatherOptions", shape=_gather_shape, vjp=_gather_vjp,
          shape_inputs=(), **_SAME_Q),
    OpDef("gather_nd", gather_nd, "GatherNdOptions", shape=_gather_nd_shape, shape_inputs=(),
          **_MOVES),
    OpDef("space_to_batch_nd", space_to_batch_nd, "SpaceToBatchNDOptions",
          shape=_space_batch_shape, integer=integer(_space_to_batch_integer),
          shape_inputs=(1, 2), **_SAME_Q),
    OpDef("batch_to_space_nd", batch_to_space_nd, "BatchToSpaceNDOptions",
          shape=_space_batch_shape, shape_inputs=(1, 2), **_SAME_Q),
]
