"""Naive loop implementations of TFLite's conv and pool semantics, for tests only.

They follow the documented definitions pixel by pixel in float64, sharing nothing with
the kernels under test except the padding rule, which is restated here.
"""

from __future__ import annotations

import math

import numpy as np


def out_and_pad(size, k, stride, dil, same):
    eff = (k - 1) * dil + 1
    out = math.ceil(size / stride) if same else math.ceil((size - eff + 1) / stride)
    total = max((out - 1) * stride + eff - size, 0) if same else 0
    return out, total // 2


def conv2d(x, w, b, stride, dil, same):
    n, h, wd, c = x.shape
    o, kh, kw, ci = w.shape
    groups = c // ci
    oh, pt = out_and_pad(h, kh, stride[0], dil[0], same)
    ow, pl = out_and_pad(wd, kw, stride[1], dil[1], same)
    out = np.zeros((n, oh, ow, o))
    og = o // groups
    for b_ in range(n):
        for y in range(oh):
            for xx in range(ow):
                for oc in range(o):
                    g = oc // og
                    acc = 0.0 if b is None else float(b[oc])
                    for i in range(kh):
                        for j in range(kw):
                            iy = y * stride[0] + i * dil[0] - pt
                            ix = xx * stride[1] + j * dil[1] - pl
                            if 0 <= iy < h and 0 <= ix < wd:
                                for ic in range(ci):
                                    acc += x[b_, iy, ix, g * ci + ic] * w[oc, i, j, ic]
                    out[b_, y, xx, oc] = acc
    return out


def depthwise(x, w, b, stride, dil, same):
    n, h, wd, c = x.shape
    _, kh, kw, cm = w.shape
    m = cm // c
    oh, pt = out_and_pad(h, kh, stride[0], dil[0], same)
    ow, pl = out_and_pad(wd, kw, stride[1], dil[1], same)
    out = np.zeros((n, oh, ow, cm))
    for b_ in range(n):
        for y in range(oh):
            for xx in range(ow):
                for oc in range(cm):
                    acc = 0.0 if b is None else float(b[oc])
                    for i in range(kh):
                        for j in range(kw):
                            iy = y * stride[0] + i * dil[0] - pt
                            ix = xx * stride[1] + j * dil[1] - pl
                            if 0 <= iy < h and 0 <= ix < wd:
                                acc += x[b_, iy, ix, oc // m] * w[0, i, j, oc]
                    out[b_, y, xx, oc] = acc
    return out


def transpose_conv(x, w, out_shape, stride, same):
    n, h, wd, _ = x.shape
    _o, kh, kw, _ = w.shape
    _, oh, ow, _ = out_shape
    _, pt = out_and_pad(oh, kh, stride[0], 1, same)
    _, pl = out_and_pad(ow, kw, stride[1], 1, same)
    out = np.zeros(out_shape)
    for b_ in range(n):
        for y in range(h):
            for xx in range(wd):
                for i in range(kh):
                    for j in range(kw):
                        oy, ox = y * stride[0] + i - pt, xx * stride[1] + j - pl
                        if 0 <= oy < oh and 0 <= ox < ow:
                            out[b_, oy, ox, :] += w[:, i, j, :] @ x[b_, y, xx, :]
    return out


def pool(x, k, stride, same, kind):
    n, h, wd, c = x.shape
    oh, pt = out_and_pad(h, k[0], stride[0], 1, same)
    ow, pl = out_and_pad(wd, k[1], stride[1], 1, same)
    out = np.zeros((n, oh, ow, c))
    for b_ in range(n):
        for y in range(oh):
            for xx in range(ow):
                vals = [x[b_, y * stride[0] + i - pt, xx * stride[1] + j - pl]
                        for i in range(k[0]) for j in range(k[1])
                        if 0 <= y * stride[0] + i - pt < h and 0 <= xx * stride[1] + j - pl < wd]
                out[b_, y, xx] = np.max(vals, 0) if kind == "max" else np.mean(vals, 0)
    return out
