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
* :func:`im2col`: a convolution's centred patch matrix ``x - zx`` in float32 (exact)
  straight from the 8-bit input, zeros on padding: one pass instead of pad, subtract,
  gather.
* :func:`mean_hw`: MEAN over height and width (global average pooling), centred int64
  sums rescaled in the same pass.
* :func:`add`: XNNPACK's ADD/SUB computed (not looked up), vectorized, over broadcast
  operands.
* :func:`lookup1`: a unary lookup table (activations) in one pass.
* :func:`lookup`: a binary lookup table (ADD, SUB, MUL, ...) over broadcast operands in
  one pass.
* :func:`gemm`: a small CONV_2D 1×1 / FULLY_CONNECTED product whole, int32 sums and
  rescaling, no float copy of the input.
* :func:`mul`: MUL computed (not looked up), vectorized: exact int32 products rescaled
  per tensor, over broadcast operands.
* :func:`quantize`: QUANTIZE float32 → integer in one pass.
* :func:`softmax`: 8-bit SOFTMAX (``activations._softmax_integer``'s float32 operations,
  NumPy's pairwise row sums) in one pass per row.
* :func:`requantize`: the epilogue of the float-BLAS GEMM (exact integers in float32 or
  float64) to the output type, in one pass.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

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
_QUANTIZE = [(types.Array(types.float32, 1, "C", readonly=ro), types.float32, types.float32,
              types.float32, types.float32, types.Array(out, 1, "C"))
             for ro in (False, True) for out in (*_EIGHT, types.int16)]
_LOOKUP1 = [(types.Array(_U8, 1, "C", readonly=ro), _U8[::1], _U8[::1]) for ro in (False, True)]
_ADD = [(types.Array(dt, 1, "C", readonly=ra), types.Array(dt, 1, "C", readonly=rb),
         *(_I64,) * 13, types.Array(dt, 3, "C")) for dt in _EIGHT for ra in (False, True)
        for rb in (False, True)]
_SOFTMAX = [(types.Array(dt, 2, "C", readonly=ro), types.float32[::1], types.float32, _I64,
             _I64, _I64, types.Array(out, 2, "C"))
            for dt in _EIGHT for ro in (False, True) for out in _EIGHT]
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
                o = _U(((bi * oh + oy) * ow + ox) * cm)
                _rescale_row(acc, _U(0), flat, o, cm, q, scale, fp32, lo, hi, zp)
                if table.size:
                    for ch in range(cm):
                        flat[o + _U(ch)] = table[np.uint8(flat[o + _U(ch)])]
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
    ``Σ x - h * w * zx`` (int64, exact), rescaled."""
    n, h, wd, c = x.shape
    acc = np.empty(c, np.int64)
    for bi in range(n):
        for ch in range(c):
            acc[ch] = -h * wd * zx
        for y in range(h):
            for xx in range(wd):
                for ch in range(c):
                    acc[ch] += x[bi, y, xx, ch]
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


@numba.njit(_LOOKUP1, **_JIT)
def lookup1(x, table, out):
    """A unary 8-bit table over the operand's bytes: ``out[k] = table[x[k]]``."""
    for k in range(x.size):
        out[k] = table[x[k]]
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


@numba.njit(inline="always", **_JIT)
def _block_sum(a, lo, n):
    """NumPy's float32 sum of ``a[lo:lo + n]``, ``n <= 128`` (``@TYPE@_pairwise_sum``'s
    leaves: fewer than 8 values in order, else eight interleaved partial sums)."""
    if n < 8:
        res = np.float32(0.0)
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(**_JIT)
def _pairwise_sum(a, lo, n):
    """NumPy's float32 pairwise sum of ``a[lo:lo + n]``, the order ``ndarray.sum`` adds a
    contiguous row in: more than 128 values are split at ``n / 2`` rounded down to a
    multiple of 8 and the halves' sums added. NumPy recurses; this walks the same tree
    with an explicit stack (numba's disk cache does not take recursive functions)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    state = np.empty(64, np.int64)  # 0: left half next, 1: right half next, 2: both done
    left = np.empty(64, np.float32)
    top, ret = 0, np.float32(0.0)
    starts[0], sizes[0], state[0] = lo, n, 0
    while top >= 0:
        start, size = starts[top], sizes[top]
        if size <= 128:
            ret = _block_sum(a, start, size)
            top -= 1
            continue
        half = size // 2 - (size // 2) % 8
        if state[top] == 0:
            state[top] = 1
            top += 1
            starts[top], sizes[top], state[top] = start, half, 0
        elif state[top] == 1:
            left[top], state[top] = ret, 2
            top += 1
            starts[top], sizes[top], state[top] = start + half, size - half, 0
        else:
            ret = left[top] + ret
            top -= 1
    return ret


@numba.njit(_SOFTMAX, **_JIT)
def softmax(x, table, scale, zp, lo, hi, out):
    """Each row of ``x`` [rows, n] (8-bit): ``e = table[x - max + 255]`` (the float32
    exponentials), ``inv = 1 / ((0 + Σ e) * scale)``, ``round_half_away(e * inv) + zp``
    clamped to ``[lo, hi]``, all in float32 as the NumPy kernel computes them."""
    rows, n = x.shape
    e = np.empty(n, np.float32)
    half = np.float32(0.5)
    for r in range(rows):
        m = np.int64(x[r, 0])
        for k in range(1, n):
            m = max(m, np.int64(x[r, k]))
        for k in range(n):
            e[k] = table[np.int64(x[r, k]) - m + 255]
        inv = np.float32(1.0) / ((np.float32(0.0) + _pairwise_sum(e, 0, n)) * scale)
        for k in range(n):
            v = e[k] * inv  # >= 0: round_half_away is floor(v + 0.5) (0 for 0)
            y = np.int64(np.floor(v + half)) if v > 0 else np.int64(0)
            out[r, k] = min(max(y + zp, lo), hi)
    return out
