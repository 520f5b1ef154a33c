"""Builtin-only gradient rules for convolution and pooling.

* CONV_2D input gradient: TRANSPOSE_CONV with the filter's in/out channels swapped.
* CONV_2D filter gradient: a CONV_2D of the (padded) input, batch moved to channels, with
  the output gradient as the filter and the forward stride as dilation — TensorFlow's
  converter needs the Flex op Conv2DBackpropFilter for this; builtin ops suffice.
* DEPTHWISE_CONV_2D input gradient: a depthwise convolution of the stride-dilated,
  fully padded output gradient with the spatially reversed filter; filter gradient: one
  strided slice of the padded input per tap, multiplied by the output gradient and summed.
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


def _plain_convolution(attrs) -> None:
    """Gradient rules cover undilated convolutions without a fused activation."""
    if attrs.get("dilation_h_factor", 1) != 1 or attrs.get("dilation_w_factor", 1) != 1:
        raise TraceError(f"{user_frame()}: gradients of dilated convolutions are not supported")
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")


def conv_2d(g, attrs, ins, outs, dy):
    x, w = ins[0], ins[1]
    _plain_convolution(attrs)
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
    return [dx, dw, *_bias_grad(g, ins, dy)]


def _dilate(g: Graph, v: Value, sh: int, sw: int) -> Value:
    """Insert ``s - 1`` zeros after every row/column: ``out[oh * s] = v[oh]``. Built from
    reshape and pad, batch-agnostic (batch written as -1)."""
    _, h, w, c = v.shape
    if sh > 1:  # rows: [N, H, 1, W*C] padded to [N, H, sh, W*C] (LiteRT's PAD takes ≤ 5-D)
        v = g.op("reshape", v, _i32(g, [-1, h, 1, w * c]))
        v = g.op("pad", v, _i32(g, [[0, 0], [0, 0], [0, sh - 1], [0, 0]]))
        h *= sh
        v = g.op("reshape", v, _i32(g, [-1, h, w, c]))
    if sw > 1:  # columns: [N, H, W, 1, C] padded to [N, H, W, sw, C]
        v = g.op("reshape", v, _i32(g, [-1, h, w, 1, c]))
        v = g.op("pad", v, _i32(g, [[0, 0], [0, 0], [0, 0], [0, sw - 1], [0, 0]]))
        v = g.op("reshape", v, _i32(g, [-1, h, w * sw, c]))
    return v


def _fit(g: Graph, v: Value, begin: tuple[int, int], size: tuple[int, int]) -> Value:
    """Rows/columns ``begin .. begin + size`` of ``v``, zero-padded where ``v`` ends."""
    h, w = v.shape[1:3]
    take_h, take_w = min(size[0], h - begin[0]), min(size[1], w - begin[1])
    if (begin, (take_h, take_w)) != ((0, 0), (h, w)):
        v = g.op("slice", v, _i32(g, [0, begin[0], begin[1], 0]), _i32(g, [-1, take_h, take_w, -1]))
    if (take_h, take_w) != tuple(size):
        v = g.op("pad", v, _i32(g, [[0, 0], [0, size[0] - take_h], [0, size[1] - take_w], [0, 0]]))
    return v


def depthwise_conv_2d(g, attrs, ins, outs, dy):
    x, w = ins[0], ins[1]
    _plain_convolution(attrs)
    _, h, wd, c = x.shape
    _, kh, kw, cm = w.shape
    m = cm // c
    sh, sw, padding = attrs["stride_h"], attrs["stride_w"], attrs["padding"]
    oh, pt, pb = pad_before_after(h, kh, sh, 1, padding)
    ow, pl, pr = pad_before_after(wd, kw, sw, 1, padding)
    # dx: padded-input gradient = full correlation of dilated dy with the reversed filter.
    d = _dilate(g, dy, sh, sw)
    d = g.op("pad", d, _i32(g, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]]))
    wr = g.op("reverse_v2", w, _i32(g, [1, 2]))
    full = g.op("depthwise_conv_2d", d, wr, g.const(np.zeros(cm, dy.dtype)), padding=1,
                stride_h=1, stride_w=1, depth_multiplier=1)
    if m > 1:
        full = g.op("sum", g.op("reshape", full, _i32(g, [-1, *full.shape[1:3], c, m])),
                    _i32(g, [4]), keep_dims=False)
    dx = _fit(g, full, (pt, pl), (h, wd))
    # dw: per tap, the input window it saw times the output gradient, summed.
    xp = x if not (pt or pb or pl or pr) else g.op(
        "pad", x, _i32(g, [[0, 0], [pt, pb], [pl, pr], [0, 0]]))
    dy5 = dy if m == 1 else g.op("reshape", dy, _i32(g, [-1, oh, ow, c, m]))
    taps = []
    for i in range(kh):
        for j in range(kw):
            win = g.op("strided_slice", xp, _i32(g, [0, i, j, 0]),
                       _i32(g, [0, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, 0]),
                       _i32(g, [1, sh, sw, 1]), begin_mask=9, end_mask=9)
            if m > 1:
                win = g.op("reshape", win, _i32(g, [-1, oh, ow, c, 1]))
            tap = g.op("sum", win * dy5, _i32(g, [0, 1, 2]), keep_dims=False)
            taps.append(tap if m == 1 else g.op("reshape", tap, _i32(g, [cm])))
    dw = g.op("reshape", g.op("pack", *taps, axis=0, values_count=len(taps)),
              _i32(g, [1, kh, kw, cm]))
    return [dx, dw, *_bias_grad(g, ins, dy)]


def _bias_grad(g: Graph, ins, dy: Value) -> list[Value | None]:
    """The bias operand's gradient (sum over batch and space), as many entries as given."""
    if len(ins) < 3:
        return []
    return [None if ins[2] is None else g.op("sum", dy, _i32(g, [0, 1, 2]), keep_dims=False)]


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


RULES = {"conv_2d": conv_2d, "depthwise_conv_2d": depthwise_conv_2d,
         "max_pool_2d": max_pool_2d, "average_pool_2d": average_pool_2d}
