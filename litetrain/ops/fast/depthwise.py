"""Compiled DEPTHWISE_CONV_2D (depth multiplier 1) reading its input in place, for strided
windows (part of the ``conv`` family's kernels: :mod:`.conv` re-exports them).

:func:`.conv.depthwise_conv_2d` copies each input row into a ring of padded rows, split
by phase for strides, so that a tap's inputs for a whole output row are one contiguous
run; at stride 2 that copy moves four input values per output (a pixel's few channels at
a time) and took as long as the arithmetic. Here sixteen channels of eight output pixels
at a time are held in registers and each tap's input vectors are loaded straight from
the input, ``stride * c`` floats apart: nothing is copied. Pixels whose window reaches
into the padding go one at a time (zeros loaded for the padding taps), so small images
with wide windows are left to the ring kernel (:func:`litetrain.ops.compiled.in_place`).

The NumPy kernel's operations, per output, in its order: the first tap's product, then
each other tap's product added in tap order (row by row, then column), a tap on the
padding multiplying +0.0 (a masked load's zeros) by its weight, then the bias (-0.0
without one: adds nothing), the clamp with ``np.clip``'s values and signs, then
optionally HARD_SWISH (``v * clip(v + 3, 0, 6) / 6``). No fused multiply-add. Channel
groups of sixteen: with at least sixteen channels, the last group overlaps the one
before (its channels computed twice, the same bits stored twice); fewer are masked.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

from .lanes import V16, lanes_at, masked_load, masked_store, splat

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_U = np.uint64


class _Lanes(types.Type):
    """Sixteen float32 lanes in a register (LLVM's ``<16 x float>``)."""

    def __init__(self):
        super().__init__(name="DepthwiseLanes16")


_L16 = _Lanes()


@register_model(_Lanes)
class _LanesModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, V16)


@intrinsic
def _load(typingctx, arr, index, n):
    """``arr[index:index + n]`` in the first ``n`` ≤ 16 lanes, zeros in the others; no
    value is read for ``n = 0`` (then ``index`` may lie anywhere)."""
    def codegen(context, builder, signature, args):
        return masked_load(builder, lanes_at(context, builder, signature.args[0], *args[:2]),
                           args[2])
    return _L16(arr, types.intp, types.intp), codegen


@intrinsic
def _store(typingctx, arr, index, v, n):
    """``arr[index:index + n] = v[:n]``."""
    def codegen(context, builder, signature, args):
        masked_store(builder, args[2], lanes_at(context, builder, signature.args[0],
                                                *args[:2]), args[3])
        return context.get_dummy_value()
    return types.void(arr, types.intp, _L16, types.intp), codegen


@intrinsic
def _mul(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.fmul(*args)
    return _L16(_L16, _L16), codegen


@intrinsic
def _add(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.fadd(*args)
    return _L16(_L16, _L16), codegen


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
def _pixels8(xf, wf, of, p, step, toff, taps, c, c0, m, bv, o, lo, hi, hs):
    """Eight output pixels (window corners ``p + q * step`` in ``xf``, all taps inside the
    input) of channels ``c0 .. c0 + m``, stored at ``of[o + q * c]``: eight independent
    sums, enough to hide the additions' latency."""
    s1 = step
    s2 = s1 + step
    s3 = s2 + step
    s4 = s3 + step
    s5 = s4 + step
    s6 = s5 + step
    s7 = s6 + step
    w = _load(wf, c0, m)
    a = p + _U(toff[0])
    u0 = _mul(_load(xf, a, m), w)
    u1 = _mul(_load(xf, a + s1, m), w)
    u2 = _mul(_load(xf, a + s2, m), w)
    u3 = _mul(_load(xf, a + s3, m), w)
    u4 = _mul(_load(xf, a + s4, m), w)
    u5 = _mul(_load(xf, a + s5, m), w)
    u6 = _mul(_load(xf, a + s6, m), w)
    u7 = _mul(_load(xf, a + s7, m), w)
    for t in range(1, taps):
        w = _load(wf, t * c + c0, m)
        a = p + _U(toff[t])
        u0 = _add(u0, _mul(_load(xf, a, m), w))
        u1 = _add(u1, _mul(_load(xf, a + s1, m), w))
        u2 = _add(u2, _mul(_load(xf, a + s2, m), w))
        u3 = _add(u3, _mul(_load(xf, a + s3, m), w))
        u4 = _add(u4, _mul(_load(xf, a + s4, m), w))
        u5 = _add(u5, _mul(_load(xf, a + s5, m), w))
        u6 = _add(u6, _mul(_load(xf, a + s6, m), w))
        u7 = _add(u7, _mul(_load(xf, a + s7, m), w))
    _store(of, o, _finish(u0, bv, lo, hi, hs), m)
    _store(of, o + 1 * c, _finish(u1, bv, lo, hi, hs), m)
    _store(of, o + 2 * c, _finish(u2, bv, lo, hi, hs), m)
    _store(of, o + 3 * c, _finish(u3, bv, lo, hi, hs), m)
    _store(of, o + 4 * c, _finish(u4, bv, lo, hi, hs), m)
    _store(of, o + 5 * c, _finish(u5, bv, lo, hi, hs), m)
    _store(of, o + 6 * c, _finish(u6, bv, lo, hi, hs), m)
    _store(of, o + 7 * c, _finish(u7, bv, lo, hi, hs), m)


@numba.njit(inline="always", **_JIT)
def _pixels1(xf, wf, of, p, toff, taps, c, c0, m, bv, o, lo, hi, hs):
    """One output pixel (window corner ``p``, all taps inside the input)."""
    u = _mul(_load(xf, p + _U(toff[0]), m), _load(wf, c0, m))
    for t in range(1, taps):
        u = _add(u, _mul(_load(xf, p + _U(toff[t]), m), _load(wf, t * c + c0, m)))
    _store(of, o, _finish(u, bv, lo, hi, hs), m)


@numba.njit(inline="always", **_JIT)
def _pixel(xf, wf, of, row0, rows, ix0, g, c, c0, m, bv, o, lo, hi, hs):
    """One output pixel anywhere (taps on the padding load zeros): window rows starting at
    input row ``row0`` of an image whose first value is ``xf[rows]``, first column
    ``ix0``."""
    dh, dw, h, wd, kh, kw = g
    u = _load(wf, 0, 0)  # zeros, replaced by the first product
    for i in range(kh):
        iy = row0 + i * dh
        for j in range(kw):
            ix = ix0 + j * dw
            inside = 0 <= iy < h and 0 <= ix < wd
            at = rows + (iy * wd + ix) * c + c0 if inside else 0
            p = _mul(_load(xf, at, m if inside else 0), _load(wf, (i * kw + j) * c + c0, m))
            u = p if i == 0 and j == 0 else _add(u, p)
    _store(of, o, _finish(u, bv, lo, hi, hs), m)


@numba.njit(inline="always", **_JIT)
def _depthwise(x, wt, bias, lo, hi, g, hs):
    """``x`` [n, h, w, c]; ``wt`` [kh * kw, c] the filter's taps; ``bias`` [c] (-0.0
    for none); ``g`` the geometry ``sh, sw, dh, dw, pt, pl, oh, ow, mult, kh, kw`` (as
    :func:`.conv.depthwise_conv_2d`'s, ``mult`` 1)."""
    n, h, wd, c = x.shape
    sh, sw, dh, dw, pt, pl, oh, ow, kh, kw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], \
        g[7], g[9], g[10]
    out = np.empty((n, oh, ow, c), np.float32)
    xf, wf, of = x.reshape(x.size), wt.reshape(wt.size), out.reshape(out.size)
    taps = kh * kw
    toff = np.empty(taps, np.int64)
    for i in range(kh):
        for j in range(kw):
            toff[i * kw + j] = (i * dh * wd + j * dw) * c
    # output columns whose window lies inside the input's columns
    x_lo = min(ow, (pl + sw - 1) // sw)
    last = wd - 1 - (kw - 1) * dw + pl
    x_hi = max(x_lo, min(ow, last // sw + 1)) if last >= 0 else x_lo
    geometry = (dh, dw, h, wd, kh, kw)
    step = _U(sw * c)
    groups = max(1, (c + 15) // 16)
    for bi in range(n):
        rows = bi * h * wd * c
        for oy in range(oh):
            row0 = oy * sh - pt
            inside = row0 >= 0 and row0 + (kh - 1) * dh < h
            o_row = (bi * oh + oy) * ow * c
            for gi in range(groups):
                c0 = min(16 * gi, c - 16) if c >= 16 else 0
                m = min(16, c)
                bv = _load(bias, c0, m)
                q0, q1 = (x_lo, x_hi) if inside else (0, 0)
                for ox in range(0, q0):
                    _pixel(xf, wf, of, row0, rows, ox * sw - pl, geometry, c, c0, m, bv,
                           o_row + ox * c + c0, lo, hi, hs)
                ox = q0
                while ox + 8 <= q1:
                    p = _U(rows + (row0 * wd + ox * sw - pl) * c + c0)
                    _pixels8(xf, wf, of, p, step, toff, taps, c, c0, m, bv,
                             o_row + ox * c + c0, lo, hi, hs)
                    ox += 8
                while ox < q1:
                    p = _U(rows + (row0 * wd + ox * sw - pl) * c + c0)
                    _pixels1(xf, wf, of, p, toff, taps, c, c0, m, bv, o_row + ox * c + c0,
                             lo, hi, hs)
                    ox += 1
                for ox_b in range(ox, ow):
                    _pixel(xf, wf, of, row0, rows, ox_b * sw - pl, geometry, c, c0, m, bv,
                           o_row + ox_b * c + c0, lo, hi, hs)
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
