"""Compiled (numba) forms of the 8-bit integer kernels of :mod:`..quantized`.

Integer sums are exact in any order, so these kernels equal the NumPy integer kernels
bit for bit by construction, provided the rescaling does what
:class:`..quantized.requantize.Requantizer` does, which :func:`_rescale_row` spells out for
the accumulators ``v`` (exact integers) of output channel ``k``:

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
* :func:`depthwise_conv_2d_rows`: the same for stride 1 and depth multiplier 1 when
  every sum is below 2**24: a chunk of an output row at a time, each tap row's centred
  input row (float32, exact) built once as one run, the taps' products summed over the
  whole chunk in float32 (exact integers) against the filter tiled along it: long
  vectorised loops instead of one short one per pixel and tap.
* :func:`im2col`: a convolution's centred patch matrix ``x - zx`` in float32 (exact)
  straight from the 8-bit input, zeros on padding: one pass instead of pad, subtract,
  gather.
* :func:`mean_hw`: MEAN over height and width (global average pooling), centred int64
  sums rescaled in the same pass.
* :func:`add`: XNNPACK's ADD/SUB computed (not looked up), vectorized, over broadcast
  operands.
* :func:`lookup1`: a unary lookup table (activations) in one pass (:mod:`.lut8`: 64
  bytes per step with AVX-512 VBMI).
* :func:`lookup`: a binary lookup table (ADD, SUB, MUL, ...) over broadcast operands in
  one pass.
* :func:`gemm`: a small CONV_2D 1×1 / FULLY_CONNECTED product whole, int32 sums and
  rescaling, no float copy of the input.
* :func:`mul`: MUL computed (not looked up), vectorized: exact int32 products rescaled
  per tensor, over broadcast operands.
* :func:`mul_channels`: MUL of a feature map by a per-item channel vector
  (squeeze-and-excitation), computed as :func:`mul` computes it, over long runs.
* :func:`quantize`: QUANTIZE float32 → integer in one pass.
* :func:`softmax`: 8-bit SOFTMAX (``activations._softmax_integer``'s float32 operations,
  NumPy's pairwise row sums) in one pass per row (:mod:`.int8_softmax`).
* :func:`requantize`: the epilogue of the float-BLAS GEMM (exact integers in float32 or
  float64) to the output type, in one pass.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from .int8_softmax import softmax  # noqa: F401  (the family's kernels: one module)
from .lut8 import look_up, lookup1  # noqa: F401

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_U = np.uint64  # offsets numba need not check for negative (wrap-around) indexing
_I64 = types.int64
_Q = types.int64[:, ::1]  # rows m, c, d, t, bias; one column per output channel
_SCALE = types.float32[::1]
_EIGHT = (types.int8, types.uint8)


def _x4(dt, ro):
    return types.Array(dt, 4, "C", readonly=ro)


# Compiled (or loaded from the disk cache) on import: 8-bit inputs, read-only or not.
_DEPTHWISE = [(_x4(dt, ro), _I64, types.int32[:, :, ::1], *(_I64,) * 7, _Q, _SCALE,
               types.boolean, _I64, _I64, _I64, types.Array(dt, 1, "C", readonly=True),
               types.Array(dt, 4, "C"))
              for dt in _EIGHT for ro in (False, True)]
_DEPTHWISE_ROWS = [(_x4(dt, ro), _I64, types.float32[:, :, ::1], *(_I64,) * 4, _Q, _SCALE,
                    types.boolean, _I64, _I64, _I64, types.Array(dt, 1, "C", readonly=True),
                    types.Array(dt, 4, "C"))
                   for dt in _EIGHT for ro in (False, True)]
_IM2COL = [(_x4(dt, ro), _I64, *(_I64,) * 11, types.float32[:, ::1])
           for dt in _EIGHT for ro in (False, True)]
_MEAN = [(_x4(types.int8, ro), _I64, _Q, _SCALE, types.boolean, _I64, _I64, _I64,
          types.int8[:, ::1]) for ro in (False, True)]
_GEMM = [(types.Array(dt, 2, "C", readonly=ro), _I64, types.int32[:, ::1], _Q, _SCALE,
          types.boolean, _I64, _I64, _I64, types.Array(out, 2, "C"))
         for dt in _EIGHT for ro in (False, True) for out in _EIGHT]
_U8 = types.uint8
_LOOKUP = [(types.Array(_U8, 1, "C", readonly=ra), types.Array(_U8, 1, "C", readonly=rb),
            *(_I64,) * 6, _U8[::1], _U8[:, :, ::1])
           for ra in (False, True) for rb in (False, True)]
_MUL = [(types.Array(dt, 1, "C", readonly=ra), types.Array(dt, 1, "C", readonly=rb),
         *(_I64,) * 12, types.float32, types.boolean, _I64, _I64, _I64,
         types.Array(dt, 3, "C")) for dt in _EIGHT for ra in (False, True)
        for rb in (False, True)]
_MUL_CHANNELS = [(types.Array(dt, 2, "C", readonly=ra), types.Array(dt, 2, "C", readonly=rb),
                  *(_I64,) * 6, types.float32, types.boolean, _I64, _I64, _I64,
                  types.Array(dt, 2, "C")) for dt in _EIGHT for ra in (False, True)
                 for rb in (False, True)]
_QUANTIZE = [(types.Array(types.float32, 1, "C", readonly=ro), types.float32, types.float32,
              types.float32, types.float32, types.Array(out, 1, "C"))
             for ro in (False, True) for out in (*_EIGHT, types.int16)]
_ADD = [(types.Array(dt, 1, "C", readonly=ra), types.Array(dt, 1, "C", readonly=rb),
         *(_I64,) * 13, types.Array(dt, 3, "C")) for dt in _EIGHT for ra in (False, True)
        for rb in (False, True)]
_REQUANTIZE = [(types.Array(acc, 2, "C"), _Q, _SCALE, types.boolean, _I64, _I64, _I64,
                types.Array(out, 2, "C"))
               for acc in (types.float32, types.float64)
               for out in (types.int8, types.uint8, types.int16)]


@numba.njit(inline="always", **_JIT)
def _rescale_row(acc, ao, out, oo, n, q, scale, fp32, lo, hi, zp):
    """``out[oo + k]`` = accumulator ``acc[ao + k]`` (exact integers) of channel ``k``,
    rescaled and clamped (module doc), for ``k < n``; flat arrays, unsigned offsets (no
    view per row, no negative-index checks). ``float64(acc) + bias`` is exact (both
    below 2**53), so its ``float32`` is the one rounding of ``float32(int)``."""
    if fp32:
        flo, fhi = np.float32(lo - zp), np.float32(hi - zp)
        for k in range(n):
            f = np.float32(np.float64(acc[ao + _U(k)]) + np.float64(q[4, k])) * scale[k]
            if f < flo:
                f = flo
            elif f > fhi:
                f = fhi
            out[oo + _U(k)] = np.int64(np.rint(f)) + zp
    else:
        for k in range(n):
            y = np.int64(acc[ao + _U(k)]) * q[0, k] + q[1, k]
            if y < q[2, k]:
                y -= 2147483648
            y >>= q[3, k]
            out[oo + _U(k)] = min(max(y, lo), hi)


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, zx, w, sh, sw, dh, dw, pt, pl, mult, q, scale, fp32, lo, hi, zp,
                      table, out):
    """``x`` [n, h, w, c] 8-bit, ``w`` [kh, kw, c * mult] centred int32, ``out`` [n, oh,
    ow, c * mult] (the input's type); each result looked up in ``table`` (256 entries
    indexed by its bits) when that is not empty."""
    n, h, wd, _ = x.shape
    kh, kw, cm = w.shape
    _, oh, ow, _ = out.shape
    flat = out.reshape(-1)
    acc = np.empty(cm, np.int32)
    z = np.int32(zx)
    for bi in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for ch in range(cm):
                    acc[ch] = 0
                for i in range(kh):
                    iy = oy * sh + i * dh - pt
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = ox * sw + j * dw - pl
                        if ix < 0 or ix >= wd:
                            continue
                        if mult == 1:
                            for ch in range(cm):
                                acc[ch] += (np.int32(x[bi, iy, ix, ch]) - z) * w[i, j, ch]
                        else:
                            for ch in range(cm):
                                acc[ch] += (np.int32(x[bi, iy, ix, ch // mult]) - z) \
                                    * w[i, j, ch]
                _rescale_row(acc, _U(0), flat, _U(((bi * oh + oy) * ow + ox) * cm), cm, q,
                             scale, fp32, lo, hi, zp)
            if table.size:  # the output row, while in cache
                look_up(flat, (bi * oh + oy) * ow * cm, ow * cm, table)
    return out


@numba.njit(inline="always", **_JIT)
def _rescale_run(a, o, q, scale, fp32, lo, hi, zp):
    """:func:`_rescale_row` over slices (``a`` exact integers in float32, ``q`` and
    ``scale`` per element): the same operations, in loops LLVM vectorises.
    ``int64(a) + bias`` is exact, so its ``float32`` is the one rounding of
    ``float32(int)``, as there."""
    n = a.size
    if fp32:
        b, s = q[4, :n], scale[:n]
        flo, fhi = np.float32(lo - zp), np.float32(hi - zp)
        for e in range(n):
            f = np.float32(np.int64(a[e]) + b[e]) * s[e]
            o[e] = np.int64(np.rint(min(max(f, flo), fhi))) + zp
    else:
        m, c, d, t = q[0, :n], q[1, :n], q[2, :n], q[3, :n]
        for e in range(n):
            y = np.int64(a[e]) * m[e] + c[e]
            if y < d[e]:
                y -= 2147483648
            y >>= t[e]
            o[e] = min(max(y, lo), hi)


@numba.njit(_DEPTHWISE_ROWS, **_JIT)
def depthwise_conv_2d_rows(x, zx, wt, dh, dw, pt, pl, q, scale, fp32, lo, hi, zp, table,
                           out):
    """:func:`depthwise_conv_2d` for stride 1 and depth multiplier 1: ``wt`` [kh, kw, run]
    the centred filter in float32 tiled ``run / c`` times, ``q``/``scale`` the rescaling
    tiled alike; sums exact in float32 (the caller's bound: below 2**24)."""
    n, h, wd, c = x.shape
    kh, kw, run = wt.shape
    _, oh, ow, _ = out.shape
    cw = run // c  # output pixels per chunk
    src, dst = x.reshape(-1), out.reshape(-1)
    z = np.float32(zx)
    span = (kw - 1) * dw
    rows = np.empty((cw + span) * c, np.float32)
    acc = np.empty(run, np.float32)
    for bi in range(n):
        for oy in range(oh):
            for ox0 in range(0, ow, cw):
                nx = min(cw, ow - ox0)
                size, width = nx * c, (nx + span) * c
                a = acc[:size]
                a[:] = 0
                m0, m1 = max(0, pl - ox0), min(nx + span, wd + pl - ox0)  # in-bounds pixels
                for i in range(kh):
                    iy = oy + i * dh - pt
                    if iy < 0 or iy >= h or m1 <= m0:
                        continue  # padding rows add (zx - zx) * w = 0
                    rows[:m0 * c] = 0
                    rows[m1 * c:width] = 0
                    s0 = ((bi * h + iy) * wd + ox0 - pl + m0) * c
                    seg, rr = src[s0:s0 + (m1 - m0) * c], rows[m0 * c:m1 * c]
                    for e in range(rr.size):
                        rr[e] = np.float32(seg[e]) - z
                    j = 0
                    while j < kw:
                        r0, w0 = rows[j * dw * c:j * dw * c + size], wt[i, j, :size]
                        if j + 2 < kw:
                            r1 = rows[(j + 1) * dw * c:(j + 1) * dw * c + size]
                            r2 = rows[(j + 2) * dw * c:(j + 2) * dw * c + size]
                            w1, w2 = wt[i, j + 1, :size], wt[i, j + 2, :size]
                            for e in range(size):
                                a[e] += r0[e] * w0[e] + r1[e] * w1[e] + r2[e] * w2[e]
                            j += 3
                        else:
                            for e in range(size):
                                a[e] += r0[e] * w0[e]
                            j += 1
                base = ((bi * oh + oy) * ow + ox0) * c
                _rescale_run(a, dst[base:base + size], q, scale, fp32, lo, hi, zp)
                if table.size:
                    look_up(dst, base, size, table)
    return out


@numba.njit(_IM2COL, **_JIT)
def im2col(x, zx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, r0, cols):
    """``cols`` [rows, kh * kw * c] float32: rows ``r0, r0 + 1, ...`` of the patch matrix
    (row ``(b * oh + oy) * ow + ox`` holds the centred input under each tap ``(i, j)`` in
    that order, channels innermost, 0 on padding); a filter row wholly in bounds (no
    dilation) is one contiguous run of the input.

    Flat arrays and unsigned offsets: numba's negative-index handling on computed signed
    indices would cost more than the copy."""
    _, h, wd, c = x.shape
    src = x.reshape(-1)
    dst = cols.reshape(-1)
    z = np.float32(zx)
    run = kw * c
    o = _U(0)
    bi, oy, ox = r0 // (oh * ow), (r0 // ow) % oh, r0 % ow
    for _ in range(cols.shape[0]):
        x0 = ox * sw - pl
        whole = dw == 1 and x0 >= 0 and x0 + kw <= wd
        for i in range(kh):
            iy = oy * sh + i * dh - pt
            if iy < 0 or iy >= h:
                for e in range(run):
                    dst[o + _U(e)] = 0.0
            elif whole:
                p = _U(((bi * h + iy) * wd + x0) * c)
                for e in range(run):
                    dst[o + _U(e)] = np.float32(src[p + _U(e)]) - z
            else:
                for j in range(kw):
                    ix = x0 + j * dw
                    oj = o + _U(j * c)
                    if ix < 0 or ix >= wd:
                        for ch in range(c):
                            dst[oj + _U(ch)] = 0.0
                    else:
                        p = _U(((bi * h + iy) * wd + ix) * c)
                        for ch in range(c):
                            dst[oj + _U(ch)] = np.float32(src[p + _U(ch)]) - z
            o += _U(run)
        ox += 1
        if ox == ow:
            ox, oy = 0, oy + 1
            if oy == oh:
                oy, bi = 0, bi + 1
    return cols


@numba.njit(_REQUANTIZE, **_JIT)
def requantize(acc, q, scale, fp32, lo, hi, zp, out):
    """``out`` [rows, channels] from ``acc`` (exact integers in float) rescaled."""
    rows, n = acc.shape
    a, o = acc.reshape(-1), out.reshape(-1)
    for r in range(rows):
        _rescale_row(a, _U(r * n), o, _U(r * n), n, q, scale, fp32, lo, hi, zp)
    return out


@numba.njit(_MEAN, **_JIT)
def mean_hw(x, zx, q, scale, fp32, lo, hi, zp, out):
    """``out`` [n, c]: each item's and channel's centred sum over height and width,
    ``Σ x - h * w * zx`` (exact: int32 partial sums of ``k`` pixels' channels side by
    side over long runs, then int64), rescaled."""
    n, h, wd, c = x.shape
    px = h * wd
    k = max(1, 1024 // c)
    run = k * c
    part = np.empty(run, np.int32)  # |partial sums| <= 255 * h * w: no overflow
    acc = np.empty(c, np.int64)
    flat = x.reshape(n, px * c)
    whole = (px // k) * run
    for bi in range(n):
        part[:] = 0
        xi = flat[bi]
        for p0 in range(0, whole, run):
            seg = xi[p0:p0 + run]
            for e in range(run):
                part[e] += seg[e]
        rest = xi[whole:]
        for e in range(rest.size):
            part[e] += rest[e]
        for ch in range(c):
            acc[ch] = -px * zx
        for j in range(k):
            pj = part[j * c:(j + 1) * c]
            for ch in range(c):
                acc[ch] += pj[ch]
        _rescale_row(acc, _U(0), out.reshape(-1), _U(bi * c), c, q, scale, fp32, lo, hi, zp)
    return out


@numba.njit(_LOOKUP, **_JIT)
def lookup(a, b, sa0, sa1, sa2, sb0, sb1, sb2, table, out):
    """A binary 8-bit table (:mod:`..quantized.tables`) over broadcast operands:
    ``out[i, j, k] = table[a[...] << 8 | b[...]]``, the operands' bytes read at element
    offsets ``i * s0 + j * s1 + k * s2`` (stride 0 along a broadcast dim)."""
    n0, n1, n2 = out.shape
    for i in range(n0):
        for j in range(n1):
            pa = _U(i * sa0 + j * sa1)
            pb = _U(i * sb0 + j * sb1)
            o = out[i, j]
            for k in range(n2):
                ia = np.int64(a[pa + _U(k * sa2)]) << 8
                o[k] = table[_U(ia | np.int64(b[pb + _U(k * sb2)]))]
    return out


@numba.njit(_GEMM, **_JIT)
def gemm(x, zx, w, q, scale, fp32, lo, hi, zp, out):
    """``out`` [m, n] = ``(x - zx) @ w`` rescaled: ``x`` [m, k] 8-bit, ``w`` [k, n] centred
    int32, int32 sums (exact: the caller's bound), for products too small for BLAS to
    pay off."""
    m, k = x.shape
    n = w.shape[1]
    flat = out.reshape(-1)
    acc = np.empty(n, np.int32)
    z = np.int32(zx)
    for r in range(m):
        for c in range(n):
            acc[c] = 0
        for p in range(k):
            v = np.int32(x[r, p]) - z
            for c in range(n):
                acc[c] += v * w[p, c]
        _rescale_row(acc, _U(0), flat, _U(r * n), n, q, scale, fp32, lo, hi, zp)
    return out


@numba.njit(inline="always", **_JIT)
def _rescale_tensor(acc, n, out, m, c, d, t, scale, fp32, lo, hi, zp):
    """``out[k]`` for ``k < n``: ``acc[k]`` rescaled by one (per-tensor) set of
    constants, as :func:`_rescale_row` does per channel (no bias)."""
    if fp32:
        flo, fhi = np.float32(lo - zp), np.float32(hi - zp)
        for k in range(n):
            f = np.float32(acc[k]) * scale
            if f < flo:
                f = flo
            elif f > fhi:
                f = fhi
            out[k] = np.int32(np.rint(f)) + zp
    else:
        for k in range(n):
            y = np.int64(acc[k]) * m + c
            if y < d:
                y -= 2147483648
            y >>= t
            out[k] = min(max(y, lo), hi)


_CHUNK = 1024


@numba.njit(_MUL, **_JIT)
def mul(a, b, sa0, sa1, sa2, sb0, sb1, sb2, za, zb, m, c, d, t, scale, fp32, lo, hi, zp,
        out):
    """MUL of 8-bit operands walked as :func:`lookup` walks them (innermost strides 1 or
    0): ``(a - za) * (b - zb)`` (int32, exact) rescaled by per-tensor constants (``m, c,
    d, t`` the integer form, ``scale`` the float32 one: :func:`_rescale_tensor`). Loops
    index chunk views by their loop counters only, which keeps them vectorized."""
    n0, n1, n2 = out.shape
    acc = np.empty(min(n2, _CHUNK), np.int32)
    a_z, b_z = np.int32(za), np.int32(zb)
    for i in range(n0):
        for j in range(n1):
            for k0 in range(0, n2, _CHUNK):
                n = min(_CHUNK, n2 - k0)
                pa = i * sa0 + j * sa1 + k0 * sa2
                pb = i * sb0 + j * sb1 + k0 * sb2
                if sa2 == 1 and sb2 == 1:
                    av, bv = a[pa:pa + n], b[pb:pb + n]
                    for k in range(n):
                        acc[k] = (np.int32(av[k]) - a_z) * (np.int32(bv[k]) - b_z)
                elif sa2 == 1:
                    av, v = a[pa:pa + n], np.int32(b[pb]) - b_z
                    for k in range(n):
                        acc[k] = (np.int32(av[k]) - a_z) * v
                elif sb2 == 1:
                    bv, v = b[pb:pb + n], np.int32(a[pa]) - a_z
                    for k in range(n):
                        acc[k] = v * (np.int32(bv[k]) - b_z)
                else:
                    acc[:n] = (np.int32(a[pa]) - a_z) * (np.int32(b[pb]) - b_z)
                _rescale_tensor(acc, n, out[i, j, k0:k0 + n], m, c, d, t, scale, fp32, lo,
                                hi, zp)
    return out


@numba.njit(_MUL_CHANNELS, **_JIT)
def mul_channels(a, g, za, zg, m, c, d, t, scale, fp32, lo, hi, zp, out):
    """:func:`mul` of ``a`` [n, pixels * channels] and ``g`` [n, channels] broadcast over
    the pixels (``MUL([n, h, w, c], [n, 1, 1, c])``, either operand order: integer
    products commute): ``(a - za) * (g - zg)`` (int32, exact) rescaled per tensor, over
    runs of whole pixels against the item's centred vector tiled once."""
    n, r = a.shape
    ch = g.shape[1]
    run = ch * max(1, _CHUNK // ch)
    tiled = np.empty(run, np.int32)
    acc = np.empty(run, np.int32)
    a_z = np.int32(za)
    for i in range(n):
        gi = g[i]
        for p in range(0, min(run, r), ch):
            t_p = tiled[p:p + ch]
            for k in range(ch):
                t_p[k] = np.int32(gi[k]) - np.int32(zg)
        for k0 in range(0, r, run):
            size = min(run, r - k0)
            av, gv, sums = a[i, k0:k0 + size], tiled[:size], acc[:size]
            for k in range(size):
                sums[k] = (np.int32(av[k]) - a_z) * gv[k]
            _rescale_tensor(sums, size, out[i, k0:k0 + size], m, c, d, t, scale, fp32, lo,
                            hi, zp)
    return out


@numba.njit(_QUANTIZE, **_JIT)
def quantize(x, scale, zp, lo, hi, out):
    """QUANTIZE float32 → integer (:func:`..quantized.lib.requantize_float`) in one pass,
    the same float32 operations in the same order: ``x / scale``, plus ``±0.5`` (the
    sign of the quotient), truncated, plus the zero point, then ``fmax(·, lo)`` (NaN
    gives ``lo``) and ``fmin(·, hi)``."""
    half = np.float32(0.5)
    for k in range(x.size):
        v = x[k] / scale
        v = v + (half if v >= 0 else -half)  # NaN stays NaN either way
        v = np.float32(np.trunc(v)) + zp
        if not v >= lo:
            v = lo
        elif v > hi:
            v = hi
        out[k] = np.int64(v)
    return out


@numba.njit(_ADD, **_JIT)
def add(a, b, sa0, sa1, sa2, sb0, sb1, sb2, am, bm, shift, bias, zp, lo, hi, out):
    """XNNPACK's 8-bit ADD/SUB (``arithmetic._add_sub``'s XNNPACK form) computed over
    operands walked as :func:`mul` walks them: ``((bias + a * am + b * bm) >> shift) +
    zp``, clamped, in int64 (exact)."""
    n0, n1, n2 = out.shape
    for i in range(n0):
        for j in range(n1):
            for k0 in range(0, n2, _CHUNK):
                n = min(_CHUNK, n2 - k0)
                pa = i * sa0 + j * sa1 + k0 * sa2
                pb = i * sb0 + j * sb1 + k0 * sb2
                o = out[i, j, k0:k0 + n]
                if sa2 == 1 and sb2 == 1:
                    av, bv = a[pa:pa + n], b[pb:pb + n]
                    for k in range(n):
                        y = ((bias + np.int64(av[k]) * am + np.int64(bv[k]) * bm) >> shift) + zp
                        o[k] = min(max(y, lo), hi)
                elif sa2 == 1:
                    av, v = a[pa:pa + n], bias + np.int64(b[pb]) * bm
                    for k in range(n):
                        y = ((v + np.int64(av[k]) * am) >> shift) + zp
                        o[k] = min(max(y, lo), hi)
                elif sb2 == 1:
                    bv, v = b[pb:pb + n], bias + np.int64(a[pa]) * am
                    for k in range(n):
                        y = ((v + np.int64(bv[k]) * bm) >> shift) + zp
                        o[k] = min(max(y, lo), hi)
                else:
                    y = ((bias + np.int64(a[pa]) * am + np.int64(b[pb]) * bm) >> shift) + zp
                    for k in range(n):
                        o[k] = min(max(y, lo), hi)
    return out
