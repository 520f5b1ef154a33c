"""Shape and data-movement ops: reshape, slicing, joining, padding, gathering, casting,
resizing. None of them do arithmetic on values beyond copying and interpolation."""

from __future__ import annotations

import numpy as np

from .common import as_int_tuple, axes, fused
from .registry import OpDef


def reshape(attrs, x, shape=None):
    # The shape input wins over the legacy ``new_shape`` attr; an empty shape means scalar.
    dims = as_int_tuple(shape if shape is not None else attrs.get("new_shape", ()))
    return x.reshape(dims)


def shape_op(attrs, x):
    return np.array(x.shape, np.int64 if attrs.get("out_type", 2) == 4 else np.int32)


def slice_op(attrs, x, begin, size):
    b, s = as_int_tuple(begin), as_int_tuple(size)
    idx = tuple(slice(bi, None if si == -1 else bi + si) for bi, si in zip(b, s, strict=True))
    for bi, si, d in zip(b, s, x.shape, strict=False):
        if bi < 0 or bi > d or (si != -1 and (si < 0 or bi + si > d)):
            raise ValueError(f"slice begin {list(b)} size {list(s)} is out of range for "
                             f"shape {list(x.shape)}")
    return x[idx].copy()


def reverse_v2(attrs, x, axes):
    axes = tuple(int(a) % max(x.ndim, 1) for a in np.atleast_1d(axes))
    return np.flip(x, axes).copy()


def strided_slice(attrs, x, begin, end, strides=None):
    b, e = as_int_tuple(begin), as_int_tuple(end)
    st = as_int_tuple(strides) if strides is not None else (1,) * len(b)
    if 0 in st:
        raise ValueError("strided_slice stride must be non-zero")
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
    return np.array(x[tuple(spec)], copy=True)


def concatenation(attrs, *xs):
    out = np.concatenate(xs, axis=attrs.get("axis", 0))
    return fused(out, attrs.get("fused_activation_function", 0))


def pack(attrs, *xs):
    return np.stack(xs, axis=attrs.get("axis", 0))


def unpack(attrs, x):
    axis = attrs.get("axis", 0)
    return tuple(np.moveaxis(x, axis, 0).copy())


def split(attrs, axis, x):
    (a,) = axes(axis, x.ndim)
    n = attrs["num_splits"]
    if x.shape[a] % n:
        raise ValueError(f"dim {a} of size {x.shape[a]} does not split into {n} equal parts")
    return tuple(p.copy() for p in np.split(x, n, axis=a))


def split_v(attrs, x, size_splits, axis):
    (a,) = axes(axis, x.ndim)
    sizes = list(as_int_tuple(size_splits))
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = x.shape[a] - (sum(sizes) + 1)
    if sum(sizes) != x.shape[a] or min(sizes) < 0:
        raise ValueError(f"split sizes {sizes} do not add up to dim {a} of size {x.shape[a]}")
    return tuple(p.copy() for p in np.split(x, np.cumsum(sizes)[:-1], axis=a))


def squeeze(attrs, x):
    dims = as_int_tuple(attrs.get("squeeze_dims", ()))
    if not dims:
        return x.reshape([d for d in x.shape if d != 1])
    return np.squeeze(x, axis=axes(dims, x.ndim))


def expand_dims(attrs, x, axis):
    (a,) = as_int_tuple(axis)
    return np.expand_dims(x, a if a >= 0 else x.ndim + 1 + a)


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


def cast(attrs, x):
    return x.astype(attrs["_out_types"][0])


def pad(attrs, x, paddings, constant=None):
    p = np.asarray(paddings).reshape(-1, 2).tolist()
    if len(p) != x.ndim or min(min(r) for r in p) < 0:
        raise ValueError(f"paddings {p} do not fit an input of rank {x.ndim}")
    value = constant.reshape(()).item() if constant is not None else 0
    return np.pad(x, p, constant_values=value)


def mirror_pad(attrs, x, paddings):
    p = np.asarray(paddings).reshape(-1, 2).tolist()
    return np.pad(x, p, mode="reflect" if attrs.get("mode", 0) == 0 else "symmetric")


def space_to_batch_nd(attrs, x, block_shape, paddings):
    block = as_int_tuple(block_shape)
    m = len(block)
    p = np.asarray(paddings).reshape(m, 2).tolist()
    xp = np.pad(x, [(0, 0), *p, *[(0, 0)] * (x.ndim - 1 - m)])
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


def _resize_scale(in_size: int, out_size: int, align_corners: bool) -> float:
    if align_corners and out_size > 1:
        return (in_size - 1) / (out_size - 1)
    return in_size / out_size


def resize_bilinear(attrs, x, size):
    oh, ow = as_int_tuple(size)
    ac, hp = attrs.get("align_corners", False), attrs.get("half_pixel_centers", False)

    def coords(in_size, out_size):
        scale = _resize_scale(in_size, out_size, ac)
        v = np.arange(out_size, dtype=np.float32)
        v = (v + 0.5) * scale - 0.5 if hp else v * scale
        lo = np.maximum(np.floor(v), 0).astype(np.int64)
        hi = np.minimum(np.ceil(v), in_size - 1).astype(np.int64)
        return v - lo, lo, hi

    fy, y0, y1 = coords(x.shape[1], oh)
    fx, x0, x1 = coords(x.shape[2], ow)
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(x.dtype)


def resize_nearest_neighbor(attrs, x, size):
    oh, ow = as_int_tuple(size)
    ac, hp = attrs.get("align_corners", False), attrs.get("half_pixel_centers", False)

    def index(in_size, out_size):
        scale = _resize_scale(in_size, out_size, ac)
        v = (np.arange(out_size) + (0.5 if hp else 0.0)) * scale
        # TFLite rounds half away from zero when aligning corners, else floors.
        i = np.floor(v + 0.5) if ac else np.floor(v)
        return np.clip(i.astype(np.int64), 0, in_size - 1)

    return x[:, index(x.shape[1], oh)][:, :, index(x.shape[2], ow)]


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


OPS = [
    OpDef("reshape", reshape, "ReshapeOptions", shape_inputs=(1,)),
    OpDef("shape", shape_op, "ShapeOptions", shape_inputs=()),
    OpDef("rank", lambda attrs, x: np.array(x.ndim, np.int32), "RankOptions", shape_inputs=()),
    OpDef("slice", slice_op, "SliceOptions", shape_inputs=(1, 2)),
    OpDef("strided_slice", strided_slice, "StridedSliceOptions", shape_inputs=(1, 2, 3)),
    OpDef("concatenation", concatenation, "ConcatenationOptions", shape_inputs=()),
    OpDef("pack", pack, "PackOptions", shape_inputs=()),
    OpDef("unpack", unpack, "UnpackOptions", shape_inputs=()),
    OpDef("split", split, "SplitOptions", shape_inputs=(0,)),
    OpDef("split_v", split_v, "SplitVOptions", shape_inputs=(1, 2)),
    OpDef("squeeze", squeeze, "SqueezeOptions", shape_inputs=()),
    OpDef("expand_dims", expand_dims, "ExpandDimsOptions", shape_inputs=(1,)),
    OpDef("transpose", lambda attrs, x, perm: np.transpose(x, as_int_tuple(perm)).copy(),
          "TransposeOptions", shape_inputs=(1,)),
    OpDef("tile", lambda attrs, x, mult: np.tile(x, as_int_tuple(mult)), "TileOptions",
          shape_inputs=(1,)),
    OpDef("broadcast_to", lambda attrs, x, s: np.broadcast_to(x, as_int_tuple(s)).copy(),
          "BroadcastToOptions", shape_inputs=(1,), min_version=2),
    OpDef("pad", pad, "PadOptions", shape_inputs=(1,)),
    OpDef("padv2", pad, "PadV2Options", shape_inputs=(1,)),
    OpDef("mirror_pad", mirror_pad, "MirrorPadOptions", shape_inputs=(1,)),
    OpDef("reverse_v2", reverse_v2, "ReverseV2Options", shape_inputs=()),
    OpDef("gather", gather, "GatherOptions", shape_inputs=()),
    OpDef("gather_nd", gather_nd, "GatherNdOptions", shape_inputs=()),
    OpDef("cast", cast, "CastOptions", shape_inputs=()),
    OpDef("fill", fill, "FillOptions", shape_inputs=(0,)),
    OpDef("one_hot", one_hot, "OneHotOptions", shape_inputs=(1,)),
    OpDef("zeros_like", lambda attrs, x: np.zeros_like(x), "ZerosLikeOptions", shape_inputs=()),
    OpDef("range", _range, "RangeOptions", shape_inputs=(0, 1, 2)),
    OpDef("space_to_batch_nd", space_to_batch_nd, "SpaceToBatchNDOptions", shape_inputs=(1, 2)),
    OpDef("batch_to_space_nd", batch_to_space_nd, "BatchToSpaceNDOptions", shape_inputs=(1, 2)),
    OpDef("resize_bilinear", resize_bilinear, "ResizeBilinearOptions", shape_inputs=(1,)),
    OpDef("resize_nearest_neighbor", resize_nearest_neighbor, "ResizeNearestNeighborOptions",
          shape_inputs=(1,)),
]
