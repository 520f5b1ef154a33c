"""Compiled DEPTHWISE_CONV_2D (depth multiplier 1) by register tiles over a padded image,
for strided windows and a few others (:func:`litetrain.ops.compiled.strided_tiles`; part
of the ``conv`` family's kernels: :mod:`.conv` re-exports them).

:func:`.conv.depthwise_conv_2d` copies each input row into a ring of padded rows, split
by phase for strides, so that a tap's inputs for a whole output row are one contiguous
run; at stride 2 that copy moves a pixel's channels one short run at a time and took as
long as the arithmetic. Here each image is copied once, whole rows at a time, into a
zero-padded buffer, and sixteen channels of eight output pixels at a time (in raster
order, a tile spanning output rows) are held in registers, each tap's input vectors
loaded from the buffer at the pixels' window corners.

The NumPy kernel's operations, per output, in its order: the first tap's product, then
each other tap's product added in tap order (row by row, then column), a tap on the
padding multiplying +0.0 by its weight, then the bias (-0.0 without one: adds nothing),
the clamp with ``np.clip``'s values and signs, then optionally HARD_SWISH (``v *
clip(v + 3, 0, 6) / 6``). No fused multiply-add. Channel groups of sixteen: with at
least sixteen channels, the last group overlaps the one before (its channels computed
twice, the same bits stored twice); fewer are masked. A tile past a row's last pixel
repeats it (computed, never stored).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .lanes import FLOATS16 as _L16
from .lanes import add16 as _add
from .lanes import load16 as _load
from .lanes import mul16 as _mul
from .lanes import splat
from .lanes import store16 as _store

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_U = np.uint64


@intrinsic
def _finish(typingctx, v, b, lo, hi, hs):
    """``v + b``, then :func:`.conv._clamp` per lane (``np.clip``; ``lo == 0, hi == inf``
    is RELU: -0.0 becomes +0.0), then with ``hs`` :func:`.activations.hard_swish_value`
    per lane (``t = v + 3``, 0 below 0, 6 above 6, then ``v * t / 6``)."""
    def codegen(context, builder, signature, args):
        v, b, lo_s, hi_s, hs = args
        f32 = ir.FloatType()
        x = builder.fadd(v, b)
        lo, hi = splat(builder, lo_s), splat(builder, hi_s)
        relu = builder.fcmp_ordered("==", hi_s, ir.Constant(f32, float("inf")))
        low = builder.or_(builder.fcmp_ordered("<", x, lo),
                          builder.and_(builder.fcmp_ordered("==", x, lo), splat(builder, relu)))
        x = builder.select(low, lo, builder.select(builder.fcmp_ordered(">", x, hi), hi, x))
        zero = splat(builder, ir.Constant(f32, 0.0))
        six = splat(builder, ir.Constant(f32, 6.0))
        t = builder.fadd(x, splat(builder, ir.Constant(f32, 3.0)))
        t = builder.select(builder.fcmp_ordered("<", t, zero), zero,
                           builder.select(builder.fcmp_ordered(">", t, six), six, t))
        swished = builder.fdiv(builder.fmul(x, t), six)
        return builder.select(hs, swished, x)
    return _L16(_L16, _L16, _F32, _F32, types.boolean), codegen


@numba.njit(inline="always", **_JIT)
def _tile(pf, wf, of, pix, q0, toff, taps, c, c0, m, bv, o, lo, hi, hs, r):
    """``r`` ≤ 8 output pixels ``q0 ..`` of an image (in raster order: a tile may span
    output rows; window corners ``pix[q]`` in the padded image ``pf``) of channels
    ``c0 .. c0 + m``, stored at ``of[o + q * c]``: eight independent sums (past the
    ``r`` real pixels the tile repeats the last one, computed, never stored)."""
    s0 = pix[q0 + min(0, r - 1)] + _U(c0)
    s1 = pix[q0 + min(1, r - 1)] + _U(c0)
    s2 = pix[q0 + min(2, r - 1)] + _U(c0)
    s3 = pix[q0 + min(3, r - 1)] + _U(c0)
    s4 = pix[q0 + min(4, r - 1)] + _U(c0)
    s5 = pix[q0 + min(5, r - 1)] + _U(c0)
    s6 = pix[q0 + min(6, r - 1)] + _U(c0)
    s7 = pix[q0 + min(7, r - 1)] + _U(c0)
    w = _load(wf, c0, m)
    t0 = _U(toff[0])
    u0 = _mul(_load(pf, s0 + t0, m), w)
    u1 = _mul(_load(pf, s1 + t0, m), w)
    u2 = _mul(_load(pf, s2 + t0, m), w)
    u3 = _mul(_load(pf, s3 + t0, m), w)
    u4 = _mul(_load(pf, s4 + t0, m), w)
    u5 = _mul(_load(pf, s5 + t0, m), w)
    u6 = _mul(_load(pf, s6 + t0, m), w)
    u7 = _mul(_load(pf, s7 + t0, m), w)
    for t in range(1, taps):
        w = _load(wf, t * c + c0, m)
        a = _U(toff[t])
        u0 = _add(u0, _mul(_load(pf, s0 + a, m), w))
        u1 = _add(u1, _mul(_load(pf, s1 + a, m), w))
        u2 = _add(u2, _mul(_load(pf, s2 + a, m), w))
        u3 = _add(u3, _mul(_load(pf, s3 + a, m), w))
        u4 = _add(u4, _mul(_load(pf, s4 + a, m), w))
        u5 = _add(u5, _mul(_load(pf, s5 + a, m), w))
        u6 = _add(u6, _mul(_load(pf, s6 + a, m), w))
        u7 = _add(u7, _mul(_load(pf, s7 + a, m), w))
    _store(of, o, _finish(u0, bv, lo, hi, hs), m)
    _store(of, o + 1 * c, _finish(u1, bv, lo, hi, hs), m if r > 1 else 0)
    _store(of, o + 2 * c, _finish(u2, bv, lo, hi, hs), m if r > 2 else 0)
    _store(of, o + 3 * c, _finish(u3, bv, lo, hi, hs), m if r > 3 else 0)
    _store(of, o + 4 * c, _finish(u4, bv, lo, hi, hs), m if r > 4 else 0)
    _store(of, o + 5 * c, _finish(u5, bv, lo, hi, hs), m if r > 5 else 0)
    _store(of, o + 6 * c, _finish(u6, bv, lo, hi, hs), m if r > 6 else 0)
    _store(of, o + 7 * c, _finish(u7, bv, lo, hi, hs), m if r > 7 else 0)


@numba.njit(inline="always", **_JIT)
def _tile4(pf, wf, of, pix, q0, toff, taps, c, c0, m, bv, o, lo, hi, hs, r):
    """:func:`_tile` of four pixels (``r`` ≤ 4): an image's last few, at half the wasted
    work of an eight-pixel tile."""
    s0 = pix[q0 + min(0, r - 1)] + _U(c0)
    s1 = pix[q0 + min(1, r - 1)] + _U(c0)
    s2 = pix[q0 + min(2, r - 1)] + _U(c0)
    s3 = pix[q0 + min(3, r - 1)] + _U(c0)
    w = _load(wf, c0, m)
    t0 = _U(toff[0])
    u0 = _mul(_load(pf, s0 + t0, m), w)
    u1 = _mul(_load(pf, s1 + t0, m), w)
    u2 = _mul(_load(pf, s2 + t0, m), w)
    u3 = _mul(_load(pf, s3 + t0, m), w)
    for t in range(1, taps):
        w = _load(wf, t * c + c0, m)
        a = _U(toff[t])
        u0 = _add(u0, _mul(_load(pf, s0 + a, m), w))
        u1 = _add(u1, _mul(_load(pf, s1 + a, m), w))
        u2 = _add(u2, _mul(_load(pf, s2 + a, m), w))
        u3 = _add(u3, _mul(_load(pf, s3 + a, m), w))
    _store(of, o, _finish(u0, bv, lo, hi, hs), m)
    _store(of, o + 1 * c, _finish(u1, bv, lo, hi, hs), m if r > 1 else 0)
    _store(of, o + 2 * c, _finish(u2, bv, lo, hi, hs), m if r > 2 else 0)
    _store(of, o + 3 * c, _finish(u3, bv, lo, hi, hs), m if r > 3 else 0)


@numba.njit(inline="always", **_JIT)
def _depthwise(x, wt, bias, lo, hi, g, hs):
    """``x`` [n, h, w, c]; ``wt`` [kh * kw, c] the filter's taps; ``bias`` [c] (-0.0
    for none); ``g`` the geometry ``sh, sw, dh, dw, pt, pl, oh, ow, mult, kh, kw`` (as
    :func:`.conv.depthwise_conv_2d`'s, ``mult`` 1). Each image is copied once, row by
    row, into a zero-padded buffer; its output pixels then go in raster order by tiles
    of eight (four for its last few), a tile spanning rows where one ends: small
    outputs (3×3, 6×6) waste no lanes on short rows."""
    n, h, wd, c = x.shape
    sh, sw, dh, dw, pt, pl, oh, ow, kh, kw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], \
        g[7], g[9], g[10]
    out = np.empty((n, oh, ow, c), np.float32)
    hp, wp = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    rowlen = wp * c
    pf = np.zeros(hp * rowlen, np.float32)  # the padding stays +0.0
    xf, wf, of = x.reshape(x.size), wt.reshape(wt.size), out.reshape(out.size)
    taps = kh * kw
    toff = np.empty(taps, np.int64)
    for i in range(kh):
        for j in range(kw):
            toff[i * kw + j] = (i * dh * wp + j * dw) * c
    pixels = oh * ow
    pix = np.empty(pixels, np.uint64)  # each output pixel's window corner in pf
    for oy in range(oh):
        for ox in range(ow):
            pix[oy * ow + ox] = oy * sh * rowlen + ox * sw * c
    iy0, iy1 = max(0, -pt), min(h, hp - pt)  # input rows and columns inside the buffer
    ix0, ix1 = max(0, -pl), min(wd, wp - pl)
    run = max(0, ix1 - ix0) * c
    groups = max(1, (c + 15) // 16)
    m = min(16, c)
    for bi in range(n):
        for iy in range(iy0, iy1):
            src = _U(((bi * h + iy) * wd + ix0) * c)
            dst = _U((iy + pt) * rowlen + (ix0 + pl) * c)
            for q in range(_U(run)):
                pf[dst + q] = xf[src + q]
        o_image = bi * pixels * c
        for gi in range(groups):
            c0 = min(16 * gi, c - 16) if c >= 16 else 0
            bv = _load(bias, c0, m)
            q = 0
            while pixels - q > 4:
                _tile(pf, wf, of, pix, q, toff, taps, c, c0, m, bv, o_image + q * c + c0,
                      lo, hi, hs, min(8, pixels - q))
                q += 8
            if q < pixels:
                _tile4(pf, wf, of, pix, q, toff, taps, c, c0, m, bv, o_image + q * c + c0,
                       lo, hi, hs, pixels - q)
    return out


_SIG = [(types.Array(_F32, 4, "C", readonly=True), _F32[:, ::1], _F32[::1], _F32, _F32,
         types.int64[::1])]


@numba.njit(_SIG, **_JIT)
def depthwise_strided(x, wt, bias, lo, hi, g):
    """See :func:`_depthwise`."""
    return _depthwise(x, wt, bias, lo, hi, g, False)


@numba.njit(_SIG, **_JIT)
def depthwise_strided_hard_swish(x, wt, bias, lo, hi, g):
    """:func:`depthwise_strided`, then HARD_SWISH on each result as it is stored."""
    return _depthwise(x, wt, bias, lo, hi, g, True)
