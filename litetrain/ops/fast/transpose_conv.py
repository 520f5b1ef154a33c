"""Compiled (numba) float TRANSPOSE_CONV: the NumPy kernel's GEMM in BLAS's own order with
its column-to-image additions fused, the product matrix never written.

The NumPy kernel (:func:`litetrain.ops.conv.transpose_conv`) computes every (input pixel,
tap, output channel) contribution in one GEMM ``x [n·h·w, ci] @ taps [ci, kh·kw·o]``,
then adds each tap's block into the zeroed output, taps ``(i, j)`` in C order. Where
:func:`litetrain.ops.conv_exact.proven` has shown that BLAS computes that GEMM's every
output from +0.0 by one fused multiply-add per ``k`` in order, :func:`transpose_conv`
computes the same: per output pixel, for each tap landing on it in C order, that chain of
fused multiply-adds (``llvm.fma`` on sixteen lanes, from +0.0, ``k`` ascending; no
fast-math), then ``out + chain`` — the NumPy kernel's ``+=`` — into the output. Taps
that land outside the output (its padding) are never computed.

Register tiles are eight output pixels of one output row that the same taps reach (the
pixels ``cx, cx + sw, …``: their inputs are consecutive pixels of an input row) by
thirty-two (or a last sixteen) output channels. A lane whose pixel a tap misses (at the
image's borders) reads a pixel in bounds and its sum is not added. The filter is packed
per call (:func:`litetrain.ops.transpose_exact.pack_taps`): per tap, ``[ci, o]`` in C
order when ``o`` is a multiple of sixteen, else per sixteen channels ``[ci, 16]``
(zeros past ``o``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .lanes import V16
from .xnnpack import _VEC16, _fma16, _load16, _load16m, _store16m

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_U = np.uint64
_PIXELS = 8  # output pixels of one register tile


@intrinsic
def _plus(typingctx, a, b):
    """``a + b`` per lane as NumPy's ``a + b`` (x86's ``addps a, b``): where ``a`` is
    NaN, ``a`` quieted, else the sum (a NaN ``b`` quieted, or the default NaN of ``inf +
    -inf``). The backend may swap an ``fadd``'s operands, which changes which NaN wins
    when both are NaN; this does not depend on it."""
    def codegen(context, builder, signature, args):
        a, b = args
        ints = ir.VectorType(ir.IntType(32), 16)
        quiet = builder.bitcast(builder.or_(builder.bitcast(a, ints),
                                            ir.Constant(ints, [0x400000] * 16)), V16)
        return builder.select(builder.fcmp_unordered("uno", a, a), quiet,
                              builder.fadd(a, b))
    return _VEC16(_VEC16, _VEC16), codegen


@numba.njit(inline="always", **_JIT)
def _add(of, d, acc, width, ok):
    """``of[d:d + width] += acc[:width]`` (NumPy's ``out + acc``) when ``ok`` (a plain
    load for sixteen lanes: a masked one costs ~5 % of the kernel's time)."""
    if ok:
        old = _load16(of, d) if width >= 16 else _load16m(of, d, width)
        _store16m(of, d, _plus(old, acc), width)


@numba.njit(inline="always", **_JIT)
def _lanes(first, g0, last, ci):
    """The eight lanes' input offsets: pixel ``g0 + p`` (at most ``last``) of the image
    starting at pixel ``first``."""
    return (_U((first + min(g0, last)) * ci), _U((first + min(g0 + 1, last)) * ci),
            _U((first + min(g0 + 2, last)) * ci), _U((first + min(g0 + 3, last)) * ci),
            _U((first + min(g0 + 4, last)) * ci), _U((first + min(g0 + 5, last)) * ci),
            _U((first + min(g0 + 6, last)) * ci), _U((first + min(g0 + 7, last)) * ci))


@numba.njit(inline="always", **_JIT)
def _chain32(xf, wf, lanes, ci, w0, ks, step, zero):
    """Eight pixels' sums by thirty-two channels: each from +0.0, one fused multiply-add
    per ``k`` in order."""
    s0, s1, s2, s3, s4, s5, s6, s7 = lanes
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = zero
    y0 = y1 = y2 = y3 = y4 = y5 = y6 = y7 = zero
    wa0 = _U(w0)
    wb0 = wa0 + _U(step)
    for k in range(_U(ci)):
        wa = _load16(wf, wa0 + _U(ks) * k)
        wb = _load16(wf, wb0 + _U(ks) * k)
        v = xf[s0 + k]
        x0 = _fma16(v, wa, x0)
        y0 = _fma16(v, wb, y0)
        v = xf[s1 + k]
        x1 = _fma16(v, wa, x1)
        y1 = _fma16(v, wb, y1)
        v = xf[s2 + k]
        x2 = _fma16(v, wa, x2)
        y2 = _fma16(v, wb, y2)
        v = xf[s3 + k]
        x3 = _fma16(v, wa, x3)
        y3 = _fma16(v, wb, y3)
        v = xf[s4 + k]
        x4 = _fma16(v, wa, x4)
        y4 = _fma16(v, wb, y4)
        v = xf[s5 + k]
        x5 = _fma16(v, wa, x5)
        y5 = _fma16(v, wb, y5)
        v = xf[s6 + k]
        x6 = _fma16(v, wa, x6)
        y6 = _fma16(v, wb, y6)
        v = xf[s7 + k]
        x7 = _fma16(v, wa, x7)
        y7 = _fma16(v, wb, y7)
    return (x0, x1, x2, x3, x4, x5, x6, x7), (y0, y1, y2, y3, y4, y5, y6, y7)


@numba.njit(inline="always", **_JIT)
def _chain16(xf, wf, lanes, ci, w0, ks, zero):
    """:func:`_chain32` for the last sixteen channels."""
    s0, s1, s2, s3, s4, s5, s6, s7 = lanes
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = zero
    wa0 = _U(w0)
    for k in range(_U(ci)):
        wa = _load16(wf, wa0 + _U(ks) * k)
        x0 = _fma16(xf[s0 + k], wa, x0)
        x1 = _fma16(xf[s1 + k], wa, x1)
        x2 = _fma16(xf[s2 + k], wa, x2)
        x3 = _fma16(xf[s3 + k], wa, x3)
        x4 = _fma16(xf[s4 + k], wa, x4)
        x5 = _fma16(xf[s5 + k], wa, x5)
        x6 = _fma16(xf[s6 + k], wa, x6)
        x7 = _fma16(xf[s7 + k], wa, x7)
    return x0, x1, x2, x3, x4, x5, x6, x7


@numba.njit(inline="always", **_JIT)
def _add8(of, d, v, width, dst):
    """Lane ``p``'s sums ``v[p]`` added at ``of[d + dst[p]]`` where ``dst[p] >= 0``."""
    _add(of, d + dst[0], v[0], width, dst[0] >= 0)
    _add(of, d + dst[1], v[1], width, dst[1] >= 0)
    _add(of, d + dst[2], v[2], width, dst[2] >= 0)
    _add(of, d + dst[3], v[3], width, dst[3] >= 0)
    _add(of, d + dst[4], v[4], width, dst[4] >= 0)
    _add(of, d + dst[5], v[5], width, dst[5] >= 0)
    _add(of, d + dst[6], v[6], width, dst[6] >= 0)
    _add(of, d + dst[7], v[7], width, dst[7] >= 0)


@numba.njit(inline="always", **_JIT)
def _targets(h, wd, oh, ow, o, kh, kw, sh, sw, ph, pw):
    """``[kh·kw, h·w + 8]``: where tap ``(i, j)`` takes each input pixel in an image's
    output (its first value's offset), -1 where that is outside it (and past the last
    pixel)."""
    pixels = h * wd
    dst = np.full((kh * kw, pixels + _PIXELS), -1, np.int64)
    for i in range(kh):
        for j in range(kw):
            for y in range(h):
                oy = y * sh + i - ph
                if oy < 0 or oy >= oh:
                    continue
                for q in range(wd):
                    ox = q * sw + j - pw
                    if 0 <= ox < ow:
                        dst[i * kw + j, y * wd + q] = (oy * ow + ox) * o
    return dst


_SIG = [(types.Array(_F32, 4, "C", readonly=True), _F32[:, ::1], _F32[:, :, :, ::1],
         *(types.int64,) * 6)]


@numba.njit(_SIG, **_JIT)
def transpose_conv(x, wpack, out, kh, kw, sh, sw, ph, pw):
    """``out`` [n, oh, ow, o] = TRANSPOSE_CONV of ``x`` [n, h, w, ci] with the per-tap
    filter ``wpack`` [kh·kw, …] (see the module docstring): per image, its output zeroed
    (+0.0), then tap by tap in C order each input pixel's sums (from +0.0, one fused
    multiply-add per input channel in order) added into the output pixel the tap takes
    it to, where that is inside the output. Register tiles are eight consecutive input
    pixels of an image (across its rows); a tile none of whose pixels the tap keeps is
    skipped."""
    n, h, wd, ci = x.shape
    oh, ow, o = out.shape[1], out.shape[2], out.shape[3]
    xf, of, wf = x.reshape(x.size), out.reshape(out.size), wpack.reshape(wpack.size)
    tapsize = wpack.shape[1]
    tiles = (o + 15) // 16
    ks, step = (o, 16) if o % 16 == 0 else (16, 16 * ci)
    zero = _load16(np.zeros(16, np.float32), 0)
    pixels, image = h * wd, oh * ow * o
    targets = _targets(h, wd, oh, ow, o, kh, kw, sh, sw, ph, pw)
    for bi in range(n):
        of[bi * image:(bi + 1) * image] = 0.0  # (in cache for the taps' additions)
        for t in range(0, tiles, 2):
            w_a = min(16, o - 16 * t)
            w_b = min(16, o - 16 * t - 16)
            d = bi * image + 16 * t
            for tap in range(kh * kw):
                w0 = tap * tapsize + t * step
                dst_row = targets[tap]
                for g0 in range(0, pixels, _PIXELS):
                    dst = (dst_row[g0], dst_row[g0 + 1], dst_row[g0 + 2], dst_row[g0 + 3],
                           dst_row[g0 + 4], dst_row[g0 + 5], dst_row[g0 + 6],
                           dst_row[g0 + 7])
                    if max(dst) < 0:
                        continue
                    lanes = _lanes(bi * pixels, g0, pixels - 1, ci)
                    if w_b > 0:
                        xs, ys = _chain32(xf, wf, lanes, ci, w0, ks, step, zero)
                        _add8(of, d, xs, w_a, dst)
                        _add8(of, d + 16, ys, w_b, dst)
                    else:
                        xs = _chain16(xf, wf, lanes, ci, w0, ks, zero)
                        _add8(of, d, xs, w_a, dst)
