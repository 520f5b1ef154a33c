"""Compiled (numba) kernels of depthwise and pooling gradient steps
(:mod:`litetrain.runtime.depthwise_grad`, :mod:`litetrain.runtime.avg_pool_grad`):

* :func:`filter_grad`: a stride-1 depthwise filter's gradient, every tap's sum of
  ``window * dy`` over batch and space in one pass over ``dy``, the windows read from
  the unpadded input (a tap on the padding multiplies ``+0.0``, as the padded copy
  would), each sum in OpenBLAS SGEMV's order for ``ones @ p`` (as
  ``ops/fast/train.py``'s ``product_sums``: rows in groups of eight summed in order, the
  groups' sums added to a total from ``+0.0``, the total added to ``+0.0``);
* :func:`upsampled_masked`: an average pool's gradient through the ReLU before it,
  ``(dy[n, y // kh, x // kw] * s) * cast(v > t)`` per element, in one pass.

Float32 throughout; each product and sum rounded to float32 in the NumPy forms' order,
no fast-math, no contraction into fused multiply-adds: the same bits, NaN, infinities
and signed zeros included. Whether BLAS sums in that order for a shape is checked
before the filter gradient's kernel is used (``runtime/depthwise_grad.py``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .lanes import FLOATS16, V16, splat
from .lanes import add16 as _add
from .lanes import load16 as _load
from .lanes import mul16 as _mul
from .lanes import splat16 as _splat16
from .lanes import store16 as _store

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_FLAT = types.Array(_F32, 1, "C", readonly=True)
_I = types.int64


@numba.njit(inline="always")
def _fill(x, b, h, w, c, pt, pl, hp, wp, scratch, start):
    """Image ``b`` of ``X`` into the scratch at ``start`` (``hp × wp × c``), at row
    ``pt`` and column ``pl``; what lies outside stays +0.0 (the scratch starts zeroed and
    only these places are ever written)."""
    for yy in range(h):
        r = yy + pt
        if r >= hp:
            break
        src = ((b * h + yy) * w) * c
        dst = start + (r * wp + pl) * c
        cols = min(w, wp - pl)
        count = cols * c
        for k in range(0, count, 16):  # sixteen at a time (a plain copy)
            m = min(16, count - k)
            _store(scratch, dst + k, _load(x, src + k, m), m)


@numba.njit([(_FLAT, _FLAT, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _F32[:, ::1])], **_JIT)
def filter_grad(x, dy, n, h, w, c, oh, ow, kh, kw, pt, pl, out):
    """``out[t, ch]`` = the sum over ``(b, y, q)`` of ``X[b, y + i - pt, q + j - pl, ch]
    * DY[b, y, q, ch]`` for tap ``t = i·kw + j`` (``X`` read as ``+0.0`` outside ``[h,
    w]``), ``X`` [n, h, w, c] and ``DY`` [n, oh, ow, c] flat in ``x`` and ``dy``;
    ``n·oh·ow`` a multiple of eight. With a row more in ``out``, that row is the sum of
    ``DY`` itself in the same order (a bias's gradient: ``p · 1.0`` is ``p``).

    Each image of ``X`` is copied into a small zero-bordered scratch (the padded image
    the taps read, two of them: a group of eight rows may end in the next image), so
    every load is a plain one; the sums are as ``product_sums``'."""
    taps = kh * kw
    bias = out.shape[0] > taps
    hp, wp = oh + kh - 1, ow + kw - 1
    size = hp * wp * c
    scratch = np.zeros(2 * size + 16, np.float32)
    total = np.zeros((taps + 1) * c + 16, np.float32)
    rows = np.empty((2, 8), np.int64)  # per row of a group: where DY's and its window start
    b = y = q = 0
    filled = -1  # the last image copied into its scratch
    for _ in range(n * oh * ow // 8):
        if q + 8 <= ow:  # the group's eight rows are neighbours in one image row
            if b > filled:
                _fill(x, b, h, w, c, pt, pl, hp, wp, scratch, (b % 2) * size)
                filled = b
            first = ((b * oh + y) * ow + q) * c
            start = (b % 2) * size + (y * wp + q) * c
            for r in range(8):
                rows[0, r] = first + r * c
                rows[1, r] = start + r * c
            q += 8
            if q == ow:
                q = 0
                y += 1
                if y == oh:
                    y = 0
                    b += 1
        else:
            for r in range(8):  # the group's eight rows, in order
                if b > filled:
                    _fill(x, b, h, w, c, pt, pl, hp, wp, scratch, (b % 2) * size)
                    filled = b
                rows[0, r] = ((b * oh + y) * ow + q) * c
                rows[1, r] = (b % 2) * size + (y * wp + q) * c
                q += 1
                if q == ow:
                    q = 0
                    y += 1
                    if y == oh:
                        y = 0
                        b += 1
        s0, s1, s2, s3, s4, s5, s6, s7 = rows[1]
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            d0 = _load(dy, rows[0, 0] + cc, width)
            d1 = _load(dy, rows[0, 1] + cc, width)
            d2 = _load(dy, rows[0, 2] + cc, width)
            d3 = _load(dy, rows[0, 3] + cc, width)
            d4 = _load(dy, rows[0, 4] + cc, width)
            d5 = _load(dy, rows[0, 5] + cc, width)
            d6 = _load(dy, rows[0, 6] + cc, width)
            d7 = _load(dy, rows[0, 7] + cc, width)
            for i in range(kh):
                for j in range(kw):
                    a = (i * wp + j) * c + cc
                    g = _mul(_load(scratch, s0 + a, width), d0)
                    g = _add(g, _mul(_load(scratch, s1 + a, width), d1))
                    g = _add(g, _mul(_load(scratch, s2 + a, width), d2))
                    g = _add(g, _mul(_load(scratch, s3 + a, width), d3))
                    g = _add(g, _mul(_load(scratch, s4 + a, width), d4))
                    g = _add(g, _mul(_load(scratch, s5 + a, width), d5))
                    g = _add(g, _mul(_load(scratch, s6 + a, width), d6))
                    g = _add(g, _mul(_load(scratch, s7 + a, width), d7))
                    o = (i * kw + j) * c + cc
                    _store(total, o, _add(_load(total, o, width), g), width)
            if bias:
                g = _add(_add(_add(_add(_add(_add(_add(d0, d1), d2), d3), d4), d5), d6), d7)
                o = taps * c + cc
                _store(total, o, _add(_load(total, o, width), g), width)
    zero = np.float32(0.0)
    for t in range(out.shape[0]):
        for ch in range(c):
            out[t, ch] = zero + total[t * c + ch]
    return out


@intrinsic
def _greater16(typingctx, v, t):
    """Per lane ``1.0`` where ``v > t`` (false for NaN, as ``np.greater``), else
    ``0.0``: ``cast(v > t)`` as float32."""
    def codegen(context, builder, signature, args):
        above = builder.fcmp_ordered(">", args[0], splat(builder, args[1]))
        return builder.select(above, ir.Constant(V16, [1.0] * 16), ir.Constant(V16, [0.0] * 16))
    return FLOATS16(FLOATS16, types.float32), codegen


@numba.njit([(_FLAT, _F32, _FLAT, _F32, _I, _I, _F32[:, :, :, ::1])], **_JIT)
def upsampled_masked(dy, s, v, t, kh, kw, out):
    """``out[b, y, q, ch] = (DY[b, y // kh, q // kw, ch] * s) * cast(V[b, y, q, ch] >
    t)``, ``DY`` [n, oh, ow, c] flat in ``dy``, ``V`` of ``out``'s shape flat in ``v``
    (each element of ``v`` read before its place in ``out`` is written)."""
    n, h, w, c = out.shape
    flat = out.reshape(-1)
    ow = w // kw
    oh = h // kh
    scale = _splat16(s)
    k = 0
    for b in range(n):
        for y in range(h):
            base = (b * oh + y // kh) * ow
            for q in range(w):
                d = (base + q // kw) * c
                for cc in range(0, c, 16):
                    width = min(16, c - cc)
                    share = _mul(_load(dy, d + cc, width), scale)
                    _store(flat, k + cc, _mul(share, _greater16(_load(v, k + cc, width), t)),
                           width)
                k += c
    return out


@numba.njit([(types.Array(_F32, 4, "C", readonly=True), _I, _I, _I, _I, _I, _I,
              types.Array(_F32, 2, "C", readonly=True), _F32[:, :, :, ::1])], **_JIT)
def average_pool(x, kh, kw, sh, sw, pt, pl, count, out):
    """AVERAGE_POOL_2D's NumPy kernel (``ops/pool.py``): per window, from the first tap
    (``+0.0`` on the padding) the taps added in row-major order, the sum divided by
    ``count[oy, ox]`` (its in-bounds taps), all in float32."""
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    zero = np.float32(0.0)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                o = out[b, oy, ox]
                first = True
                for i in range(kh):
                    y = oy * sh + i - pt
                    for j in range(kw):
                        q = ox * sw + j - pl
                        inside = 0 <= y < h and 0 <= q < w
                        if inside:
                            v = x[b, y, q]
                            if first:
                                for ch in range(c):
                                    o[ch] = v[ch]
                            else:
                                for ch in range(c):
                                    o[ch] = o[ch] + v[ch]
                        elif first:
                            for ch in range(c):
                                o[ch] = zero
                        else:
                            for ch in range(c):
                                o[ch] = o[ch] + zero
                        first = False
                d = count[oy, ox]
                for ch in range(c):
                    o[ch] = o[ch] / d
    return out
