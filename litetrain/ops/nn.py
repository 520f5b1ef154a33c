"""Matmul, convolution and pooling kernels (float), NHWC layout as in TFLite.

Filters: CONV_2D and TRANSPOSE_CONV use ``[out, kh, kw, in]``; DEPTHWISE_CONV_2D uses
``[1, kh, kw, in * multiplier]``. Convolutions gather windows into one patch matrix
(im2col) and do a single matmul, so the time goes to BLAS.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .common import as_int_tuple, fused, pad_before_after
from .registry import OpDef


def fully_connected(attrs, x, w, b=None):
    units, depth = w.shape
    if x.size % depth:
        raise ValueError(f"input of shape {list(x.shape)} cannot be flattened into rows of "
                         f"{depth} (weights {list(w.shape)})")
    out = x.reshape(-1, depth) @ w.T
    if b is not None:
        out += b
    if attrs.get("keep_num_dims", False):
        out = out.reshape(*x.shape[:-1], units)
    return fused(out, attrs.get("fused_activation_function", 0))


def batch_matmul(attrs, a, b):
    if attrs.get("adj_x", False):
        a = np.swapaxes(a, -1, -2)
    if attrs.get("adj_y", False):
        b = np.swapaxes(b, -1, -2)
    return matmul(a, b)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul``, except for a depth-1 product (a batch-1 weight gradient), which
    NumPy's matmul sends to a loop ~10x slower than BLAS: in 2-D ``np.dot`` hands it to
    BLAS, in N-D it is the broadcast product it is. Same values: each element is one
    product either way."""
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1 and b.shape[-2] == 1:
        return np.dot(a, b) if a.ndim == b.ndim == 2 else np.multiply(a, b)
    return np.matmul(a, b)


def _padded(x, pads_h, pads_w, value=0.0):
    if not any(pads_h + pads_w):
        return x
    return np.pad(x, ((0, 0), pads_h, pads_w, (0, 0)), constant_values=value)


def windows(x, kh, kw, attrs, dil_h=1, dil_w=1, value=0.0):
    """Yield ((i, j), window) for each filter tap: the strided input slice it multiplies."""
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    oh, ph0, ph1 = pad_before_after(x.shape[1], kh, sh, dil_h, attrs["padding"])
    ow, pw0, pw1 = pad_before_after(x.shape[2], kw, sw, dil_w, attrs["padding"])
    xp = _padded(x, (ph0, ph1), (pw0, pw1), value)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dil_h, j * dil_w
            yield (i, j), xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def im2col(x, kh, kw, attrs, dil_h=1, dil_w=1):
    """Patch matrix ``[n, oh, ow, kh, kw, c]`` for a convolution with these settings."""
    cols = None
    for (i, j), win in windows(x, kh, kw, attrs, dil_h, dil_w):
        if cols is None:
            cols = np.empty((*win.shape[:3], kh, kw, x.shape[3]), x.dtype)
        cols[:, :, :, i, j, :] = win
    return cols


def conv_2d(attrs, x, w, b=None):
    n, _, _, c = x.shape
    o, kh, kw, ci = w.shape
    if c % ci:
        raise ValueError(f"input has {c} channels, not a multiple of the filter's {ci}")
    groups = c // ci
    dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
    if kh == kw == 1 and attrs["stride_h"] == attrs["stride_w"] == 1 and groups == 1:
        out = x.reshape(-1, c) @ w.reshape(o, c).T
        out = out.reshape(*x.shape[:3], o)
    else:
        cols = im2col(x, kh, kw, attrs, dh, dw)
        oh, ow = cols.shape[1:3]
        og = o // groups
        out = np.empty((n, oh, ow, o), np.result_type(x, w))
        for g in range(groups):
            patch = cols[..., g * ci:(g + 1) * ci].reshape(n * oh * ow, kh * kw * ci)
            wg = w[g * og:(g + 1) * og].reshape(og, kh * kw * ci)
            out[..., g * og:(g + 1) * og] = (patch @ wg.T).reshape(n, oh, ow, og)
    if b is not None:
        out += b
    return fused(out, attrs.get("fused_activation_function", 0))


def depthwise_conv_2d(attrs, x, w, b=None):
    c = x.shape[3]
    _, kh, kw, cm = w.shape
    if cm % c:
        raise ValueError(f"filter depth {cm} is not a multiple of the {c} input channels")
    mult = cm // c
    dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
    out = None
    for (i, j), win in windows(x, kh, kw, attrs, dh, dw):
        tap = (win[..., :, None] * w[0, i, j].reshape(c, mult)).reshape(*win.shape[:3], cm)
        out = tap if out is None else out + tap
    if b is not None:
        out += b
    return fused(out, attrs.get("fused_activation_function", 0))


def transpose_conv(attrs, output_shape, w, x, b=None):
    n, oh, ow, o = as_int_tuple(output_shape)
    _, kh, kw, ci = w.shape
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    _, ph, _ = pad_before_after(oh, kh, sh, 1, attrs["padding"])
    _, pw, _ = pad_before_after(ow, kw, sw, 1, attrs["padding"])
    h, wd = x.shape[1:3]
    full_h = max((h - 1) * sh + kh, oh + ph)
    full_w = max((wd - 1) * sw + kw, ow + pw)
    full = np.zeros((n, full_h, full_w, o), np.result_type(x, w))
    # One matmul gives every (tap, output channel) contribution; scatter-add them.
    contrib = (x.reshape(-1, ci) @ w.reshape(o * kh * kw, ci).T).reshape(n, h, wd, o, kh, kw)
    for i in range(kh):
        for j in range(kw):
            full[:, i:i + (h - 1) * sh + 1:sh, j:j + (wd - 1) * sw + 1:sw, :] += \
                contrib[..., i, j]
    out = np.ascontiguousarray(full[:, ph:ph + oh, pw:pw + ow, :])
    if b is not None:
        out += b
    return fused(out, attrs.get("fused_activation_function", 0))


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
    # TFLite divides by the number of in-bounds taps, never counting padding.
    ones = np.ones((1, *x.shape[1:3], 1), x.dtype)
    count = None
    for _, win in windows(ones, kh, kw, attrs):
        count = win.copy() if count is None else count.__iadd__(win)
    return fused(total / count, attrs.get("fused_activation_function", 0))


OPS = [
    OpDef("fully_connected", fully_connected, "FullyConnectedOptions", fresh_output=True),
    OpDef("batch_matmul", batch_matmul, "BatchMatMulOptions", fresh_output=True),
    OpDef("conv_2d", conv_2d, "Conv2DOptions"),
    OpDef("depthwise_conv_2d", depthwise_conv_2d, "DepthwiseConv2DOptions"),
    OpDef("transpose_conv", transpose_conv, "TransposeConvOptions"),
    OpDef("max_pool_2d", max_pool_2d, "Pool2DOptions"),
    OpDef("average_pool_2d", average_pool_2d, "Pool2DOptions"),
]

# Every output shape here follows from input shapes and attrs alone; ops that differ
# declare their own ``shape_inputs``.
OPS = [op if op.shape_inputs is not None else replace(op, shape_inputs=()) for op in OPS]
