"""Compiled (numba) forms of the 8-bit integer kernels of :mod:`..quantized`.

Integer sums are exact in any order, so these kernels equal the NumPy integer kernels
bit for bit by construction, provided the rescaling does what
:class:`..quantized.requantize.Requantizer` does, which :func:`_rescaled` spells out for
one accumulator (``v``, an int64) of output channel ``k``:

* the integer forms (``fp32`` False): ``((v * m + c) - 2**31 if below d) >> t``, clamped
  to ``[lo, hi]``; ``q`` holds ``m, c, d, t`` per channel (``d`` the lowest int64 when
  the form has no correction);
* XNNPACK's float32 form (``fp32`` True): ``float32(v + bias) * scale`` (the one
  rounding of ``float32(int)`` and one float32 multiply), clamped to ``[lo - zp, hi -
  zp]``, rounded to nearest even, plus ``zp``; ``q[4]`` holds the bias.

Kernels:

* :func:`depthwise_conv_2d`: from the raw 8-bit input, each output pixel's int32 sums
  ``Σ (x - zx) * w`` over its in-bounds taps (a tap on padding adds ``(zx - zx) * w =
  0``), rescaled into the 8-bit output before moving on: one pass, no padded copy.
* :func:`im2col`: a convolution's centred patch matrix ``x - zx`` in float32 (exact)
  straight from the 8-bit input, zeros on padding: one pass instead of pad, subtract,
  gather.
* :func:`requantize`: the epilogue of the float-BLAS GEMM (exact integers in float32 or
  float64) to the output type, in one pass.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_I64 = types.int64
_Q = types.int64[:, ::1]  # rows m, c, d, t, bias; one column per output channel
_SCALE = types.float32[::1]
_EIGHT = (types.int8, types.uint8)


def _x4(dt, ro):
    return types.Array(dt, 4, "C", readonly=ro)


# Compiled (or loaded from the disk cache) on import: 8-bit inputs, read-only or not.
_DEPTHWISE = [(_x4(dt, ro), _I64, types.int32[:, :, ::1], *(_I64,) * 7, _Q, _SCALE,
               types.boolean, _I64, _I64, _I64, types.Array(dt, 4, "C"))
              for dt in _EIGHT for ro in (False, True)]
_IM2COL = [(_x4(dt, ro), _I64, *(_I64,) * 10, types.float32[:, ::1])
           for dt in _EIGHT for ro in (False, True)]
_REQUANTIZE = [(types.Array(acc, 2, "C"), _Q, _SCALE, types.boolean, _I64, _I64, _I64,
                types.Array(out, 2, "C"))
               for acc in (types.float32, types.float64)
               for out in (types.int8, types.uint8, types.int16)]


@numba.njit(inline="always", **_JIT)
def _rescaled(v, k, q, scale, fp32, lo, hi, zp):
    """One accumulator ``v`` (int64) of channel ``k``, rescaled and clamped (module doc)."""
    if fp32:
        f = np.float32(v + q[4, k]) * scale[k]
        flo, fhi = np.float32(lo - zp), np.float32(hi - zp)
        if f < flo:
            f = flo
        elif f > fhi:
            f = fhi
        return np.int64(np.rint(f)) + zp
    y = v * q[0, k] + q[1, k]
    if y < q[2, k]:
        y -= 2147483648
    y >>= q[3, k]
    if y < lo:
        return lo
    if y > hi:
        return hi
    return y


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, zx, w, sh, sw, dh, dw, pt, pl, mult, q, scale, fp32, lo, hi, zp,
                      out):
    """``x`` [n, h, w, c] 8-bit, ``w`` [kh, kw, c * mult] centred int32, ``out`` [n, oh,
    ow, c * mult] (the input's type)."""
    n, h, wd, _ = x.shape
    kh, kw, cm = w.shape
    _, oh, ow, _ = out.shape
    acc = np.empty(cm, np.int32)
    z = np.int32(zx)
    for bi in range(n):
        for oy in range(oh):
            for ox in range(ow):
                acc[:] = 0
                for i in range(kh):
                    iy = oy * sh + i * dh - pt
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = ox * sw + j * dw - pl
                        if ix < 0 or ix >= wd:
                            continue
                        xr = x[bi, iy, ix]
                        wr = w[i, j]
                        if mult == 1:
                            for ch in range(cm):
                                acc[ch] += (np.int32(xr[ch]) - z) * wr[ch]
                        else:
                            for ch in range(cm):
                                acc[ch] += (np.int32(xr[ch // mult]) - z) * wr[ch]
                o = out[bi, oy, ox]
                for ch in range(cm):
                    o[ch] = _rescaled(np.int64(acc[ch]), ch, q, scale, fp32, lo, hi, zp)
    return out


@numba.njit(_IM2COL, **_JIT)
def im2col(x, zx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, cols):
    """``cols`` [n * oh * ow, kh * kw * c] float32: row ``(b, oy, ox)`` holds the centred
    input under each tap ``(i, j)`` in that order (channels innermost), 0 on padding."""
    n, h, wd, c = x.shape
    z = np.float32(zx)
    r = 0
    for bi in range(n):
        for oy in range(oh):
            for ox in range(ow):
                row = cols[r]
                p = 0
                for i in range(kh):
                    iy = oy * sh + i * dh - pt
                    for j in range(kw):
                        ix = ox * sw + j * dw - pl
                        if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                            for ch in range(c):
                                row[p + ch] = 0.0
                        else:
                            xr = x[bi, iy, ix]
                            for ch in range(c):
                                row[p + ch] = np.float32(xr[ch]) - z
                        p += c
                r += 1
    return cols


@numba.njit(_REQUANTIZE, **_JIT)
def requantize(acc, q, scale, fp32, lo, hi, zp, out):
    """``out`` [rows, channels] from ``acc`` (exact integers in float) rescaled."""
    rows, cols = acc.shape
    for r in range(rows):
        a = acc[r]
        o = out[r]
        for k in range(cols):
            o[k] = _rescaled(np.int64(a[k]), k, q, scale, fp32, lo, hi, zp)
    return out
