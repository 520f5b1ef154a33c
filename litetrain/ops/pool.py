"""MAX_POOL_2D and AVERAGE_POOL_2D (NHWC) — float kernels, shape rules, gradient rules,
integer kernels, quantizer facts.

AVERAGE_POOL divides by the number of in-bounds taps, never counting padding; its integer
form divides integer sums with TFLite's rounding. Gradient rules (builtin ops only) cover
every stride and padding.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import TraceError, user_frame
from .common import SAME, fused, pad_before_after
from .conv import depthwise_vjp, dilate, fit, window_shape
from .fast import WithKernels, kernels
from .grad import i32, mask
from .quantized.fixed_point import dtype_range
from .quantized.lib import Quantized, clamp, integer
from .registry import NodeInfo, OpDef
from .shapes import one, shape_of
from .windows import tap_range, windows

_F32 = np.dtype(np.float32)


def _counts(x_shape, kh, kw, attrs, dtype):
    ones = np.ones((1, *x_shape[1:3], 1), dtype)
    count = None
    for _, win in windows(ones, kh, kw, attrs):
        count = win.copy() if count is None else count.__iadd__(win)
    return count


def max_pool_2d(attrs, x):
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    oh, pt, pb = pad_before_after(x.shape[1], kh, sh, 1, attrs["padding"])
    ow, pl, pr = pad_before_after(x.shape[2], kw, sw, 1, attrs["padding"])
    if (pt or pb or pl or pr) and x.dtype.kind == "f":
        out = _max_in_bounds(x, (kh, kw, sh, sw, pt, pl), (oh, ow))
    elif attrs.__class__ is WithKernels and (module := attrs.ready()) is not None and (
            x.__class__ is np.ndarray and x.dtype == _F32 and x.flags.c_contiguous
            and oh > 0 and ow > 0):
        out = module.max_pool(x, kh, kw, sh, sw, np.empty((x.shape[0], oh, ow, x.shape[3]),
                                                           _F32))
    else:
        out = None
        for _, win in windows(x, kh, kw, attrs, value=-np.inf):
            out = win.copy() if out is None else np.maximum(out, win, out=out)
    return fused(out, attrs.get("fused_activation_function", 0))


def _max_pool_prepare(info: NodeInfo):
    """The compiled kernel (the ``[fast]`` extra's ``train`` family: NumPy's maxima in
    NumPy's order, one pass) for a float32 input; else the attrs."""
    x = info.inputs[0]
    loader = kernels("train")
    if loader is None or x is None or x.dtype != np.float32:
        return info.attrs
    return WithKernels(info.attrs, loader)


def _max_in_bounds(x, geometry, size):
    """The maxima over the windows of the -inf-padded input without padding it: from
    -inf, each tap's maximum taken over only the outputs whose input is in bounds (a
    padding tap is ``max(v, -inf) == v``, NaN and signed zeros included), in tap order:
    the same maxima of the same operands."""
    kh, kw, sh, sw, pt, pl = geometry
    (n, h, w, c), (oh, ow) = x.shape, size
    out = np.full((n, oh, ow, c), -np.inf, x.dtype)
    for i in range(kh):
        y0, y1, iy = tap_range(h, oh, sh, i - pt)
        for j in range(kw):
            x0, x1, ix = tap_range(w, ow, sw, j - pl)
            if y1 > y0 and x1 > x0:
                inside = out[:, y0:y1, x0:x1]
                np.maximum(inside, x[:, iy:iy + (y1 - y0 - 1) * sh + 1:sh,
                                     ix:ix + (x1 - x0 - 1) * sw + 1:sw], out=inside)
    return out


def average_pool_2d(attrs, x):
    """From each window's first tap the taps added in row-major order (``+0.0`` on the
    padding), divided by the window's in-bounds taps; compiled (the same float32
    operations in the same order) when prepare chose it and it has loaded."""
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    if attrs.__class__ is WithKernels and (module := attrs.ready()) is not None and (
            x.__class__ is np.ndarray and x.dtype == _F32 and x.flags.c_contiguous):
        sh, sw = attrs["stride_h"], attrs["stride_w"]
        oh, pt, _ = pad_before_after(x.shape[1], kh, sh, 1, attrs["padding"])
        ow, pl, _ = pad_before_after(x.shape[2], kw, sw, 1, attrs["padding"])
        if oh > 0 and ow > 0:
            count = _window_counts(x.shape[1], x.shape[2], kh, kw, sh, sw, attrs["padding"])
            out = module.average_pool(x, kh, kw, sh, sw, pt, pl, count,
                                      np.empty((x.shape[0], oh, ow, x.shape[3]), _F32))
            return fused(out, attrs.get("fused_activation_function", 0))
    total = None
    for _, win in windows(x, kh, kw, attrs):
        total = win.astype(x.dtype, copy=True) if total is None else total.__iadd__(win)
    count = _counts(x.shape, kh, kw, attrs, x.dtype)
    return fused(total / count, attrs.get("fused_activation_function", 0))


@functools.lru_cache(maxsize=64)
def _window_counts(h: int, w: int, kh: int, kw: int, sh: int, sw: int, padding) -> np.ndarray:
    """``[oh, ow]`` float32: each window's in-bounds taps (read-only, kept per shape)."""
    attrs = {"stride_h": sh, "stride_w": sw, "padding": padding}
    count = np.ascontiguousarray(_counts((1, h, w, 1), kh, kw, attrs, _F32)[0, :, :, 0])
    count.flags.writeable = False
    return count


def _average_pool_prepare(info: NodeInfo):
    """The compiled kernel (the ``[fast]`` extra's ``dwgrad`` family) for a float32
    input; else the attrs."""
    x = info.inputs[0]
    loader = kernels("dwgrad")
    if loader is None or x is None or x.dtype != np.float32:
        return info.attrs
    return WithKernels(info.attrs, loader)


def _pool_shape(info: NodeInfo):
    a = info.attrs
    return one(window_shape(info, a["filter_height"], a["filter_width"], shape_of(info, 0)[3]))


# --- integer -----------------------------------------------------------------------------

def _average_pool_integer(s: Quantized, x):
    attrs = s.attrs
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    total = None
    for _, win in windows(x.astype(np.int64), kh, kw, attrs):
        total = win.copy() if total is None else total + win
    count = _counts(x.shape, kh, kw, attrs, np.int64)
    half = count // 2
    num = np.where(total > 0, total + half, total - half)
    out = np.where(num >= 0, num // count, -((-num) // count))  # C++ truncating division
    return clamp(out, attrs, s.qout[0])


def _max_pool_integer(s: Quantized, x):
    kh, kw = s.attrs["filter_height"], s.attrs["filter_width"]
    lo = dtype_range(x.dtype)[0]
    out = None
    for _, win in windows(x, kh, kw, s.attrs, value=lo):
        out = win.copy() if out is None else np.maximum(out, win)
    return clamp(out, s.attrs, s.qout[0])


# --- gradient rules ----------------------------------------------------------------------
# Builtin ops only. Windows that do not overlap (stride == size, the common 2×2 case) take
# a cheap form (AVERAGE_POOL: one broadcast MUL; MAX_POOL: per tap over the window grid,
# interleaved back); any other stride and padding the general one: AVERAGE_POOL
# is the input gradient of a depthwise convolution with a ones filter, on the cotangent
# divided by each window's in-bounds count; MAX_POOL sends each window's cotangent to its
# first maximum in row-major order (TensorFlow's rule), tap by tap.


def _plain(attrs) -> tuple[int, int]:
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")
    return attrs["filter_height"], attrs["filter_width"]


def _non_overlapping(attrs, x) -> bool:
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    return (attrs["stride_h"], attrs["stride_w"]) == (kh, kw) and not (
        attrs["padding"] == SAME and (x.shape[1] % kh or x.shape[2] % kw))


def _upsample_share(g, dy, kh: int, kw: int, x):
    """Each window's share of its cotangent, ``dy · (1 / (kh·kw))``, repeated over the
    window's kh×kw pixels by one broadcast MUL (``[n·oh, 1, ow, 1, c]`` times a
    ``[1, kh, 1, kw, 1]`` constant of the share: the same float32 product per pixel as
    scaling then upsampling, in one pass over the input's size), then zero-padded to x's
    spatial size (VALID drops the rows and columns no window covers; they get no
    gradient)."""
    _, oh, ow, c = dy.shape
    share = g.const(np.full((1, kh, 1, kw, 1), 1.0 / (kh * kw), dy.dtype))
    up = g.op("mul", g.op("reshape", dy, i32(g, [-1, 1, ow, 1, c])), share)
    up = g.op("reshape", up, i32(g, [-1, oh * kh, ow * kw, c]))
    extra_h, extra_w = x.shape[1] - oh * kh, x.shape[2] - ow * kw
    if extra_h or extra_w:
        up = g.op("pad", up, i32(g, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]]))
    return up


def _geometry(attrs, x):
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    oh, pt, pb = pad_before_after(x.shape[1], kh, sh, 1, attrs["padding"])
    ow, pl, pr = pad_before_after(x.shape[2], kw, sw, 1, attrs["padding"])
    return kh, kw, sh, sw, oh, ow, (pt, pb, pl, pr)


def _max_pool_vjp(g, attrs, ins, outs, dy):
    x, y = ins[0], outs[0]
    kh, kw = _plain(attrs)
    if _non_overlapping(attrs, x):
        return [_tiled_max_pool_vjp(g, x, y, dy, kh, kw)]
    kh, kw, sh, sw, oh, ow, (pt, pb, pl, pr) = _geometry(attrs, x)
    hp, wp = x.shape[1] + pt + pb, x.shape[2] + pl + pr
    xp = x if not (pt or pb or pl or pr) else g.op(
        "padv2", x, i32(g, [[0, 0], [pt, pb], [pl, pr], [0, 0]]),
        g.const(np.finfo(np.float32).min, x.dtype))
    taken, total = None, None
    for i in range(kh):
        for j in range(kw):
            win = g.op("strided_slice", xp, i32(g, [0, i, j, 0]),
                       i32(g, [0, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, 0]),
                       i32(g, [1, sh, sw, 1]), begin_mask=9, end_mask=9)
            hit, taken = _first_maximum(g, win, y, taken)
            part = dilate(g, mask(g, hit, dy), sh, sw)
            part = g.op("pad", part, i32(g, [[0, 0], [i, 0], [j, 0], [0, 0]]))
            part = fit(g, part, (0, 0), (hp, wp))
            total = part if total is None else total + part
    return [fit(g, total, (pt, pl), x.shape[1:3])]


def _first_maximum(g, win, y, taken):
    """Where this tap holds its window's maximum and no earlier tap did (ties go to the
    first tap in row-major order, as in TensorFlow's MaxPoolGrad); and the taps taken so
    far, this one included."""
    hit = g.op("equal", win, y)
    if taken is None:
        return hit, hit
    hit = g.op("logical_and", hit, g.op("logical_not", taken))
    return hit, g.op("logical_or", taken, hit)


def _tiled_max_pool_vjp(g, x, y, dy, kh: int, kw: int):
    """Windows that tile the input: tap by tap (a strided slice, a quarter of the input
    for 2×2), the first maximum in row-major order takes the window's cotangent (ties
    go to the first, as in TensorFlow); the taps' results are interleaved back by
    PACK + RESHAPE, so every pass is over the window grid, never per window."""
    _, oh, ow, c = y.shape
    taken, rows = None, []
    for i in range(kh):
        cols = []
        for j in range(kw):
            win = g.op("strided_slice", x, i32(g, [0, i, j, 0]),
                       i32(g, [0, i + (oh - 1) * kh + 1, j + (ow - 1) * kw + 1, 0]),
                       i32(g, [1, kh, kw, 1]), begin_mask=9, end_mask=9)
            hit, taken = _first_maximum(g, win, y, taken)
            cols.append(mask(g, hit, dy))
        row = cols[0] if kw == 1 else g.op("pack", *cols, axis=3, values_count=kw)
        rows.append(g.op("reshape", row, i32(g, [-1, oh, ow * kw, c])))
    full = rows[0] if kh == 1 else g.op("pack", *rows, axis=2, values_count=kh)
    full = g.op("reshape", full, i32(g, [-1, oh * kh, ow * kw, c]))
    extra_h, extra_w = x.shape[1] - oh * kh, x.shape[2] - ow * kw
    if extra_h or extra_w:  # VALID leaves the last rows/columns outside every window
        full = g.op("pad", full, i32(g, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]]))
    return full


def _average_pool_vjp(g, attrs, ins, outs, dy):
    x = ins[0]
    kh, kw = _plain(attrs)
    if _non_overlapping(attrs, x):
        return [_upsample_share(g, dy, kh, kw, x)]
    c = x.shape[3]
    counts = _counts(x.shape, kh, kw, attrs, np.float32)  # [1, oh, ow, 1] in-bounds taps
    ones = g.const(np.ones((1, kh, kw, c), x.dtype))
    conv = {"padding": attrs["padding"], "stride_h": attrs["stride_h"],
            "stride_w": attrs["stride_w"]}
    dx, *_ = depthwise_vjp(g, conv, [x, ones], [], dy / g.const(counts.astype(x.dtype)))
    return [dx]


OPS = [
    OpDef("max_pool_2d", max_pool_2d, "Pool2DOptions", prepare=_max_pool_prepare,
          shape=_pool_shape, vjp=_max_pool_vjp,
          integer=integer(_max_pool_integer), output_quantization="same_as_input",
          shape_inputs=()),
    OpDef("average_pool_2d", average_pool_2d, "Pool2DOptions", prepare=_average_pool_prepare,
          shape=_pool_shape,
          vjp=_average_pool_vjp, integer=integer(_average_pool_integer),
          output_quantization="same_as_input", shape_inputs=()),
]
