"""MAX_POOL_2D and AVERAGE_POOL_2D (NHWC) — float kernels, shape rules, gradient rules,
integer kernels, quantizer facts.

AVERAGE_POOL divides by the number of in-bounds taps, never counting padding; its integer
form divides integer sums with TFLite's rounding. Gradient rules cover windows that do not
overlap (stride == size, the common 2×2 case): the gradient is the upsampled output
gradient, masked where the input held the maximum.
"""

from __future__ import annotations

import numpy as np

from ..errors import TraceError, user_frame
from .common import SAME, fused
from .conv import window_shape
from .grad import i32
from .quantized.fixed_point import dtype_range
from .quantized.lib import Quantized, clamp, integer
from .registry import NodeInfo, OpDef
from .shapes import one, shape_of
from .windows import windows


def _counts(x_shape, kh, kw, attrs, dtype):
    ones = np.ones((1, *x_shape[1:3], 1), dtype)
    count = None
    for _, win in windows(ones, kh, kw, attrs):
        count = win.copy() if count is None else count.__iadd__(win)
    return count


def max_pool_2d(attrs, x):
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    out = None
    for _, win in windows(x, kh, kw, attrs, value=-np.inf):
        out = win.copy() if out is None else np.maximum(out, win, out=out)
    return fused(out, attrs.get("fused_activation_function", 0))


def average_pool_2d(attrs, x):
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    total = None
    for _, win in windows(x, kh, kw, attrs):
        total = win.astype(x.dtype, copy=True) if total is None else total.__iadd__(win)
    count = _counts(x.shape, kh, kw, attrs, x.dtype)
    return fused(total / count, attrs.get("fused_activation_function", 0))


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

def _non_overlapping(attrs, x) -> tuple[int, int]:
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    if (attrs["stride_h"], attrs["stride_w"]) != (kh, kw) or (attrs["padding"] == SAME and (
            x.shape[1] % kh or x.shape[2] % kw)):
        raise TraceError(f"{user_frame()}: pooling gradients need stride == pool size (and, "
                         "with SAME padding, a size that divides the input)")
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")
    return kh, kw


def _upsample(g, v, kh: int, kw: int, x):
    """Repeat each pixel kh×kw times, then zero-pad to x's spatial size (VALID drops the
    rows and columns no window covers; they get no gradient)."""
    up = g.op("resize_nearest_neighbor", v, i32(g, [v.shape[1] * kh, v.shape[2] * kw]))
    extra_h, extra_w = x.shape[1] - up.shape[1], x.shape[2] - up.shape[2]
    if extra_h or extra_w:
        up = g.op("pad", up, i32(g, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]]))
    return up


def _max_pool_vjp(g, attrs, ins, outs, dy):
    x, y = ins[0], outs[0]
    kh, kw = _non_overlapping(attrs, x)
    hit = g.op("equal", x, _upsample(g, y, kh, kw, x))
    spread = _upsample(g, dy, kh, kw, x)
    return [g.op("select_v2", hit, spread, g.op("zeros_like", spread))]


def _average_pool_vjp(g, attrs, ins, outs, dy):
    kh, kw = _non_overlapping(attrs, ins[0])
    return [_upsample(g, dy, kh, kw, ins[0]) * (1.0 / (kh * kw))]


OPS = [
    OpDef("max_pool_2d", max_pool_2d, "Pool2DOptions", shape=_pool_shape, vjp=_max_pool_vjp,
          integer=integer(_max_pool_integer), output_quantization="same_as_input",
          shape_inputs=()),
    OpDef("average_pool_2d", average_pool_2d, "Pool2DOptions", shape=_pool_shape,
          vjp=_average_pool_vjp, integer=integer(_average_pool_integer),
          output_quantization="same_as_input", shape_inputs=()),
]
