"""Builtin-only gradient rules for convolution and pooling.

* CONV_2D input gradient: TRANSPOSE_CONV with the filter's in/out channels swapped.
* CONV_2D filter gradient: a CONV_2D of the (padded) input, batch moved to channels, with
  the output gradient as the filter and the forward stride as dilation — TensorFlow's
  converter needs the Flex op Conv2DBackpropFilter for this; builtin ops suffice.
* MAX/AVERAGE_POOL_2D: windows that do not overlap (stride == size, the common 2×2 case):
  the gradient is the upsampled output gradient, masked where the input held the maximum.
"""

from __future__ import annotations

import numpy as np

from ..ops.common import SAME, pad_before_after
from .graph import Graph, TraceError, Value, user_frame


def _i32(g: Graph, values) -> Value:
    return g.const(np.array(values, np.int32))


def _perm(g: Graph, x: Value, perm) -> Value:
    return g.op("transpose", x, _i32(g, perm))


def conv_2d(g, attrs, ins, outs, dy):
    x, w = ins[0], ins[1]
    if attrs.get("dilation_h_factor", 1) != 1 or attrs.get("dilation_w_factor", 1) != 1:
        raise TraceError(f"{user_frame()}: gradients of dilated convolutions are not supported")
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")
    o, kh, kw, ci = w.shape
    if x.shape[3] != ci:
        raise TraceError(f"{user_frame()}: gradients of grouped convolutions are not supported")
    sh, sw, padding = attrs["stride_h"], attrs["stride_w"], attrs["padding"]
    dx = g.op("transpose_conv", g.op("shape", x, out_type=2), _perm(g, w, (3, 1, 2, 0)), dy,
              padding=padding, stride_h=sh, stride_w=sw)
    _, pt, pb = pad_before_after(x.shape[1], kh, sh, 1, padding)
    _, pl, pr = pad_before_after(x.shape[2], kw, sw, 1, padding)
    xp = x if not (pt or pb or pl or pr) else g.op(
        "pad", x, _i32(g, [[0, 0], [pt, pb], [pl, pr], [0, 0]]))
    # TFLite's CONV_2D kernel insists on a bias operand, so pass zeros.
    zero_bias = g.const(np.zeros(o, dy.dtype))
    r = g.op("conv_2d", _perm(g, xp, (3, 1, 2, 0)), _perm(g, dy, (3, 1, 2, 0)), zero_bias,
             padding=1, stride_h=1, stride_w=1, dilation_h_factor=sh, dilation_w_factor=sw)
    if r.shape[1:3] != (kh, kw):
        r = g.op("slice", r, _i32(g, [0, 0, 0, 0]), _i32(g, [-1, kh, kw, -1]))
    dw = _perm(g, r, (3, 1, 2, 0))
    db = None
    if len(ins) > 2 and ins[2] is not None:
        db = g.op("sum", dy, _i32(g, [0, 1, 2]), keep_dims=False)
    return [dx, dw, db]


def _non_overlapping(attrs, x: Value) -> tuple[int, int]:
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    if (attrs["stride_h"], attrs["stride_w"]) != (kh, kw) or (attrs["padding"] == SAME and (
            x.shape[1] % kh or x.shape[2] % kw)):
        raise TraceError(f"{user_frame()}: pooling gradients need stride == pool size (and, "
                         "with SAME padding, a size that divides the input)")
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")
    return kh, kw


def _upsample(g: Graph, v: Value, kh: int, kw: int, x: Value) -> Value:
    """Repeat each pixel kh×kw times, then zero-pad to x's spatial size (VALID drops the
    rows and columns no window covers; they get no gradient)."""
    up = g.op("resize_nearest_neighbor", v, _i32(g, [v.shape[1] * kh, v.shape[2] * kw]))
    extra_h, extra_w = x.shape[1] - up.shape[1], x.shape[2] - up.shape[2]
    if extra_h or extra_w:
        up = g.op("pad", up, _i32(g, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]]))
    return up


def max_pool_2d(g, attrs, ins, outs, dy):
    x, y = ins[0], outs[0]
    kh, kw = _non_overlapping(attrs, x)
    hit = g.op("equal", x, _upsample(g, y, kh, kw, x))
    spread = _upsample(g, dy, kh, kw, x)
    return [g.op("select_v2", hit, spread, g.op("zeros_like", spread))]


def average_pool_2d(g, attrs, ins, outs, dy):
    kh, kw = _non_overlapping(attrs, ins[0])
    return [_upsample(g, dy, kh, kw, ins[0]) * (1.0 / (kh * kw))]


RULES = {"conv_2d": conv_2d, "max_pool_2d": max_pool_2d, "average_pool_2d": average_pool_2d}
