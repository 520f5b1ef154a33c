"""Compiled (numba) forms of the hybrid (dynamic-range) kernels' passes in
:mod:`..quantized.lib` (``hybrid_conv``), bit for bit.

* :func:`quantize_rows`: each row of a float32 matrix quantized to int8 as TFLite's
  ``tensor_utils::{Symmetric,Asymmetric}QuantizeFloats`` do (and as ``lib.quantize_rows``
  does: the scale and nudged zero point in double, ``1.0f / scale`` in float32, halves to
  even in blocks of 8 and away from zero on the tail), written centred (``q - offset``)
  as the float values the GEMM reads; per row its scaling factor and offset.
* :func:`epilogue`: ``acc * (row_scale * filter_scale) + bias`` and a clamping activation
  in one pass, in place on a float32 GEMM result (:func:`epilogue64`: from float64 sums
  into a float32 output). Min/max and the rounding loops are written so that the
  compiler vectorizes them (integer reductions, no choice inside a loop).
* :func:`depthwise_conv_2d`: the whole hybrid depthwise convolution: each batch item
  quantized into a scratch row, the tap products summed per output pixel while it is in
  cache, then the epilogue (:func:`depthwise_conv_2d32`: the same with float32 sums and
  no depth multiplier, sixteen channels of four output pixels at a time in registers).
* :func:`pointwise`: the whole hybrid 1×1 stride-1 CONV_2D or FULLY_CONNECTED (a GEMM
  of quantized rows and the filter): each row quantized into a scratch row, the integer
  sums in registers (the filter packed per sixteen output channels at prepare), then the
  epilogue on each block of sums while it is in cache.

Both whole-op kernels can end with XNNPACK's HARD_SWISH on each result
(:func:`.xnnpack.hard_swish_value`, the separate node's formula), when a plan fuses that
node into them.

Every float operation is the NumPy path's, in its order and precision. Sums of the
integer products are exact (prepare proves every partial sum < 2**24 in float32, float64
otherwise), so their order does not matter; they are still taken in floats, from -0.0,
tap by tap, because a sum whose every product is -0.0 is -0.0 in NumPy (which an integer
sum would lose). The functions return ``False`` for a row with NaN or ±inf and leave the
call to NumPy, whose results (or errors) on such input are the reference.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from .conv import _clamp  # the float kernels' clamp: the same bits for activations
from .xnnpack import (
    _add16,
    _clip16,
    _fma16,
    _fma16v,
    _hard_swish16,
    _load16,
    _load16m,
    _mul16,
    _store16,
    _store16m,
    _tap16,
    hard_swish_value,
)

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32, _F64 = types.float32, types.float64
_B = types.boolean


def _x(ndim: int, readonly: bool):
    return types.Array(_F32, ndim, "C", readonly=readonly)


# Compiled (or loaded from the disk cache) when this module is imported: float32 C-order
# inputs (maybe read-only), centred values in float32 (sums exact in float32) or float64.
_QUANTIZE = [(_x(2, ro), _B, types.Array(d, 2, "C"), _F32[::1], _F32[::1])
             for ro in (False, True) for d in (_F32, _F64)]
_EPILOGUE = [(_F32[:, ::1], types.int64, _F32[::1], _F32[::1], _F32[::1], _B, _F32, _F32)]
_EPILOGUE64 = [(_F64[:, ::1], types.int64, _F32[::1], _F32[::1], _F32[::1], _B, _F32, _F32,
                _F32[:, ::1])]
_DEPTHWISE = [(_x(4, ro), _B, types.Array(d, 3, "C"), _F32[::1], _F32[::1], _B, _F32, _F32,
               *(types.int64,) * 9, _B, _F32[:, :, :, ::1])
              for ro in (False, True) for d in (_F32, _F64)]
_DEPTHWISE32 = [(_x(4, ro), _B, _F32[:, :, ::1], _F32[::1], _F32[::1], _B, _F32, _F32,
                 *(types.int64,) * 8, _B, _F32[:, :, :, ::1]) for ro in (False, True)]
_POINTWISE = [(_x(2, ro), _F32[:, ::1], _F32[:, ::1], _F32, _F32, _B, _B, _F32[:, ::1])
              for ro in (False, True)]


@numba.njit(inline="always", **_JIT)
def _half_away(v):
    """``fixed_point.round_half_away`` on a float32: ``sign(v) * floor(|v| + 0.5)`` in
    float32 (``np.sign(-0.0)`` is +0.0, so is the result then)."""
    if v > 0:
        s = np.float32(1.0)
    elif v < 0:
        s = np.float32(-1.0)
    else:
        s = np.float32(0.0)
    return s * np.floor(abs(v) + np.float32(0.5))


@numba.njit(inline="always", **_JIT)
def _round_half_away64(v):
    if v > 0:
        s = 1.0
    elif v < 0:
        s = -1.0
    else:
        s = 0.0
    return s * np.floor(abs(v) + 0.5)


@numba.njit(inline="always", **_JIT)
def _asymmetric_params(lo, hi):
    """``lib._asymmetric_params``: (double scale, 0 for an all-zero row; nudged zero
    point)."""
    rmin = 0.0 if lo > 0.0 else lo  # Python's min(lo, 0.0), max(hi, 0.0)
    rmax = 0.0 if hi < 0.0 else hi
    if rmin == rmax:
        return 0.0, 0.0
    scale = (rmax - rmin) / 255.0
    from_min = -128.0 - rmin / scale
    from_max = 127.0 - rmax / scale
    zp = from_min if 128.0 + abs(rmin / scale) < 127.0 + abs(rmax / scale) else from_max
    if zp <= -128.0:
        return scale, -128.0
    if zp >= 127.0:
        return scale, 127.0
    return scale, _round_half_away64(zp)


@numba.njit(inline="always", **_JIT)
def _float_of_key(key):
    """The float32 whose :func:`_range` key is ``key``."""
    bits = np.empty(1, np.int32)
    bits[0] = key ^ ((key >> 31) & np.int32(0x7FFFFFFF))
    return bits.view(np.float32)[0]


@numba.njit(inline="always", **_JIT)
def _range(x, absolute):
    """(min, max, all finite) of a float32 row — or (0, max |x|, all finite) when
    ``absolute`` — in integer arithmetic, which the compiler vectorizes (float min/max
    reductions it does not, without fast-math): a float's bits, its magnitude bits
    flipped when negative, order as int32 as the floats do (-0.0 just below +0.0, which
    no result depends on). NaN and ±inf have the all-ones exponent."""
    bits = x.view(np.int32)
    lo, hi = np.int32(0x7FFFFFFF), np.int32(-0x80000000)
    top = np.int32(0)
    flip, exponent = np.int32(0x7FFFFFFF), np.int32(0x7F800000)
    if absolute:  # one loop each: no choice inside the loop
        for k in range(bits.size):
            i = bits[k]
            key = i & flip
            hi = key if key > hi else hi
            e = i & exponent
            top = e if e > top else top
    else:
        for k in range(bits.size):
            i = bits[k]
            key = i ^ ((i >> 31) & flip)
            lo = key if key < lo else lo
            hi = key if key > hi else hi
            e = i & exponent
            top = e if e > top else top
    if absolute:
        return np.float32(0.0), _float_of_key(hi), top != exponent
    return _float_of_key(lo), _float_of_key(hi), top != exponent


@numba.njit(inline="always", **_JIT)
def _round_into(x, inv, offset, add, qlo, qhi, q, start, stop, to_even):
    """``q[k] = clip(round(x[k] * inv [+ offset]), qlo, qhi) - offset`` over
    ``start:stop``; the offset is added only when ``add`` (asymmetric), as NumPy does
    (``v + 0.0`` would turn -0.0 into +0.0)."""
    for k in range(start, stop):
        v = x[k] * inv
        if add:
            v = v + offset
        r = np.rint(v) if to_even else _half_away(v)
        r = qlo if r < qlo else r
        r = qhi if r > qhi else r
        q[k] = r - offset


@numba.njit(inline="always", **_JIT)
def _quantize_row(x, asymmetric, q):
    """One row ``x`` (not empty) quantized, written centred into ``q``: (finite, scale,
    offset)."""
    n = x.size
    lo, hi, finite = _range(x, not asymmetric)
    if not finite:
        return False, np.float32(0.0), np.float32(0.0)
    if asymmetric:
        scale64, nudged64 = _asymmetric_params(np.float64(lo), np.float64(hi))
        scale, offset = np.float32(scale64), np.float32(nudged64)
        if scale == 0:  # all zeros (or a range below float32's): q = 0, scale 1
            for k in range(n):
                q[k] = np.float32(0.0) - offset
            return True, np.float32(1.0), offset
        inv = np.float32(1.0) / scale
        qlo = np.float32(-128.0)
    else:
        offset = np.float32(0.0)
        if hi > 0:
            scale = hi / np.float32(127.0)
            inv = np.float32(127.0) / hi
        else:
            scale, inv = np.float32(1.0), np.float32(0.0)
        qlo = np.float32(-127.0)
    qhi = np.float32(127.0)
    n8 = n // 8 * 8
    _round_into(x, inv, offset, asymmetric, qlo, qhi, q, 0, n8, True)  # NEON: halves to even
    _round_into(x, inv, offset, asymmetric, qlo, qhi, q, n8, n, False)  # tail: halves away
    return True, scale, offset


@numba.njit(_QUANTIZE, **_JIT)
def quantize_rows(x, asymmetric, q, scale, offset):
    """Rows of ``x`` quantized, centred into ``q`` (same shape); ``False`` (and the rest
    unwritten) at the first row with NaN or ±inf."""
    for r in range(x.shape[0]):
        ok, s, o = _quantize_row(x[r], asymmetric, q[r])
        if not ok:
            return False
        scale[r], offset[r] = s, o
    return True


@numba.njit(inline="always", **_JIT)
def _epilogue(acc, pixels, scale, w_scale, b, has_bias, lo, hi, out):
    cols = acc.shape[1]
    m = np.empty(cols, np.float32)
    for r in range(acc.shape[0] // pixels):
        s = scale[r]
        for k in range(cols):
            m[k] = s * w_scale[k]
        for p in range(r * pixels, (r + 1) * pixels):
            a, o = acc[p], out[p]
            if has_bias:
                for k in range(cols):
                    o[k] = _clamp(np.float32(a[k] * m[k]) + b[k], lo, hi)
            else:
                for k in range(cols):
                    o[k] = _clamp(np.float32(a[k] * m[k]), lo, hi)


@numba.njit(_EPILOGUE, **_JIT)
def epilogue(acc, pixels, scale, w_scale, b, has_bias, lo, hi):
    """In place on a float32 ``acc`` [rows * pixels, channels] (``pixels`` outputs per
    quantized row)."""
    _epilogue(acc, pixels, scale, w_scale, b, has_bias, lo, hi, acc)
    return acc


@numba.njit(_EPILOGUE64, **_JIT)
def epilogue64(acc, pixels, scale, w_scale, b, has_bias, lo, hi, out):
    """The same from a float64 ``acc`` (products rounded once to float32) into ``out``."""
    _epilogue(acc, pixels, scale, w_scale, b, has_bias, lo, hi, out)
    return out


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, asymmetric, w, w_scale, b, has_bias, lo, hi, sh, sw, dh, dw, pt, pl,
                      oh, ow, mult, hswish, out):
    """``x`` [n, h, w, c] float32, ``w`` the centred filter [kh, kw, c * mult] (float32 or
    float64: the precision of the sums), into ``out`` [n, oh, ow, c * mult]. Taps on
    padding add ``0.0 * w`` as NumPy's padded input does. ``hswish``: then XNNPACK's
    HARD_SWISH on each result."""
    n, h, wd, c = x.shape
    kh, kw, cm = w.shape
    row = np.empty(h * wd * c, w.dtype)
    xq = row.reshape((h, wd, c))
    acc = np.empty(cm, w.dtype)
    m = np.empty(cm, np.float32)
    zero = np.zeros(1, w.dtype)[0]  # +0.0 in the sums' precision
    for bi in range(n):
        ok, s, _ = _quantize_row(x[bi].reshape(h * wd * c), asymmetric, row)
        if not ok:
            return False
        for ch in range(cm):
            m[ch] = s * w_scale[ch]
        for oy in range(oh):
            for ox in range(ow):
                acc[:] = -zero
                for i in range(kh):
                    iy = oy * sh + i * dh - pt
                    for j in range(kw):
                        ix = ox * sw + j * dw - pl
                        wr = w[i, j]
                        if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                            for ch in range(cm):
                                acc[ch] += zero * wr[ch]
                        elif mult == 1:
                            xr = xq[iy, ix]
                            for ch in range(cm):
                                acc[ch] += xr[ch] * wr[ch]
                        else:
                            xr = xq[iy, ix]
                            for ch in range(cm):
                                acc[ch] += xr[ch // mult] * wr[ch]
                o = out[bi, oy, ox]
                if has_bias:
                    for ch in range(cm):
                        o[ch] = _clamp(np.float32(acc[ch] * m[ch]) + b[ch], lo, hi)
                else:
                    for ch in range(cm):
                        o[ch] = _clamp(np.float32(acc[ch] * m[ch]), lo, hi)
                if hswish:
                    for ch in range(cm):
                        o[ch] = hard_swish_value(o[ch])
    return True


@numba.njit(_DEPTHWISE32, **_JIT)
def depthwise_conv_2d32(x, asymmetric, w, w_scale, b, has_bias, lo, hi, sh, sw, dh, dw, pt, pl,
                        oh, ow, hswish, out):
    """:func:`depthwise_conv_2d` for float32 sums and a depth multiplier of 1: the sums of
    sixteen channels (fewer at the end: masked lanes) of four output pixels in registers,
    each from -0.0 (as NumPy's), the taps in any order (the sums are exact), then the
    epilogue of those pixels."""
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    row = np.empty(h * wd * c, np.float32)
    wf = w.reshape(-1)
    sums = np.empty(4 * c, np.float32)
    m = np.empty(c, np.float32)
    start = _load16(np.full(16, -0.0, np.float32), 0)
    zero = _load16(np.zeros(16, np.float32), 0)
    for bi in range(n):
        ok, s, _ = _quantize_row(x[bi].reshape(h * wd * c), asymmetric, row)
        if not ok:
            return False
        for ch in range(c):
            m[ch] = s * w_scale[ch]
        for oy in range(oh):
            for ox in range(0, ow, 4):
                for c0 in range(0, c, 16):
                    k = min(16, c - c0)
                    a0, a1, a2, a3 = start, start, start, start
                    for i in range(kh):
                        iy = oy * sh + i * dh - pt
                        line, inside = iy * wd, 0 <= iy < h
                        for j in range(kw):
                            wv = _load16m(wf, (i * kw + j) * c + c0, k)
                            i0 = ox * sw + j * dw - pl
                            i1, i2, i3 = i0 + sw, i0 + 2 * sw, i0 + 3 * sw
                            a0 = _fma16v(_tap16(row, (line + i0) * c + c0,
                                                inside and 0 <= i0 < wd, k, zero), wv, a0)
                            a1 = _fma16v(_tap16(row, (line + i1) * c + c0,
                                                inside and 0 <= i1 < wd, k, zero), wv, a1)
                            a2 = _fma16v(_tap16(row, (line + i2) * c + c0,
                                                inside and 0 <= i2 < wd, k, zero), wv, a2)
                            a3 = _fma16v(_tap16(row, (line + i3) * c + c0,
                                                inside and 0 <= i3 < wd, k, zero), wv, a3)
                    _store16m(sums, c0, a0, k)
                    _store16m(sums, c + c0, a1, k)
                    _store16m(sums, 2 * c + c0, a2, k)
                    _store16m(sums, 3 * c + c0, a3, k)
                for p in range(min(4, ow - ox)):  # pixels past ``ow`` are not stored
                    o = out[bi, oy, ox + p]
                    for c0 in range(0, c, 16):  # the epilogue, sixteen lanes at a time
                        k = min(16, c - c0)
                        v = _mul16(_load16m(sums, p * c + c0, k), _load16m(m, c0, k))
                        if has_bias:
                            v = _add16(v, _load16m(b, c0, k))
                        v = _clip16(v, lo, hi)
                        if hswish:
                            v = _hard_swish16(v)
                        _store16m(o, c0, v, k)
    return True


_ROWS = 64  # pixels whose sums :func:`pointwise` keeps at a time (scratch in cache)


@numba.njit(inline="always", **_JIT)
def _sums(qm, p0, n, wpack, acc, zeros):
    """``acc[p] = qm[p0 + p] @ filter`` for ``p < n``, all ``16 * tiles`` lanes: exact
    float32 sums from +0.0, so in any order. Four pixels by sixteen channels a tile; a
    pixel left over sums its inputs in four interleaved parts (four independent chains),
    then adds the parts (exact too; +0.0 parts keep a zero sum +0.0)."""
    depth = qm.shape[1]
    tiles = wpack.shape[0]
    z = _load16(zeros, 0)
    for t in range(tiles):
        wt = wpack[t]
        for p in range(0, n - n % 4, 4):
            x0, x1, x2, x3 = qm[p0 + p], qm[p0 + p + 1], qm[p0 + p + 2], qm[p0 + p + 3]
            a0, a1, a2, a3 = z, z, z, z
            for k in range(depth):
                wv = _load16(wt, k * 16)
                a0 = _fma16(x0[k], wv, a0)
                a1 = _fma16(x1[k], wv, a1)
                a2 = _fma16(x2[k], wv, a2)
                a3 = _fma16(x3[k], wv, a3)
            _store16(acc[p], t * 16, a0)
            _store16(acc[p + 1], t * 16, a1)
            _store16(acc[p + 2], t * 16, a2)
            _store16(acc[p + 3], t * 16, a3)
    k4 = depth - depth % 4
    for p in range(n - n % 4, n):
        xr, dst = qm[p0 + p], acc[p]
        for t in range(tiles):
            wt = wpack[t]
            a0, a1, a2, a3 = z, z, z, z
            for k in range(0, k4, 4):
                a0 = _fma16(xr[k], _load16(wt, k * 16), a0)
                a1 = _fma16(xr[k + 1], _load16(wt, k * 16 + 16), a1)
                a2 = _fma16(xr[k + 2], _load16(wt, k * 16 + 32), a2)
                a3 = _fma16(xr[k + 3], _load16(wt, k * 16 + 48), a3)
            for k in range(k4, depth):
                a0 = _fma16(xr[k], _load16(wt, k * 16), a0)
            _store16(dst, t * 16, _add16(_add16(a0, a1), _add16(a2, a3)))


@numba.njit(_POINTWISE, **_JIT)
def pointwise(x, wpack, ep, lo, hi, asymmetric, hswish, out):
    """``out`` [rows * pixels, o] from ``x`` [rows, pixels * depth] (each row quantized
    alone: a batch item of a 1×1 CONV_2D, a FULLY_CONNECTED row) and the centred filter
    packed as ``wpack`` [ceil(o / 16), depth * 16] (per sixteen output channels, the
    filter row of each input channel in order, zeros past ``o``): per output
    ``clamp(float32(sum * (row_scale * filter_scale)) + bias)``, then XNNPACK's
    HARD_SWISH when ``hswish``. ``ep`` [2, 16 * ceil(o / 16)]: the filter's scales and
    the bias (-0.0 without one: ``v + -0.0`` is ``v``, signs of zero included), padded.

    Every row is quantized first (into one scratch array), then the sums of all pixels
    ``_ROWS`` at a time (:func:`_sums`; across rows, so single-pixel rows share tiles),
    then the epilogue of those pixels while their sums are in cache. The sums start from
    +0.0, as BLAS's: exact (prepare checked every partial sum stays below 2**24), so
    their order is free, the sign of a zero sum included."""
    depth = wpack.shape[1] // 16
    tiles, o = wpack.shape[0], out.shape[1]
    rows, width = x.shape
    pixels = width // depth
    total = rows * pixels
    q = np.empty(rows * width, np.float32)
    m = np.zeros((rows, tiles * 16), np.float32)
    for r in range(rows):
        ok, s, _ = _quantize_row(x[r], asymmetric, q[r * width:(r + 1) * width])
        if not ok:
            return False
        for c in range(o):
            m[r, c] = s * ep[0, c]
    qm = q.reshape((total, depth))
    acc = np.empty((min(_ROWS, total), tiles * 16), np.float32)
    zeros = np.zeros(16, np.float32)
    bias = ep[1]
    for p0 in range(0, total, _ROWS):
        n = min(_ROWS, total - p0)
        _sums(qm, p0, n, wpack, acc, zeros)
        for p in range(n):  # the epilogue, sixteen lanes at a time
            a, dst, mr = acc[p], out[p0 + p], m[(p0 + p) // pixels]
            for c0 in range(0, o, 16):
                v = _clip16(_add16(_mul16(_load16(a, c0), _load16(mr, c0)),
                                   _load16(bias, c0)), lo, hi)
                if hswish:
                    v = _hard_swish16(v)
                _store16m(dst, c0, v, min(16, o - c0))
    return True
