"""Compiled (numba) forms of the elementwise chains gradient rules emit, each in one pass
(the fused steps of :mod:`litetrain.runtime.fused`, whose NumPy forms they replace):

* :func:`masked`: ``dy * cast(mask)`` — ReLU's, max-pool's and other masked gradients;
* :func:`masked_greater`: ``dy * cast(x > t)`` — ReLU's gradient with its comparison;
* :func:`sigmoid_grad`: ``(dy * y) * (s - y)`` — LOGISTIC's gradient ``dy·y·(1 - y)``;
* :func:`tanh_grad`: ``dy * (s - y * y)`` — TANH's gradient ``dy·(1 - y²)``;
* :func:`sigmoid_grad_of_product`, :func:`tanh_grad_of_product`: the same with
  ``dy = a * b`` (a recurrent step's gate cotangents);
* :func:`affine`: ``(x * s) + b`` per channel — batch norm's output;
* :func:`batch_norm_grad`: ``(dy * s) + ((xc * k1) + k0)`` per channel — batch norm's
  input gradient; :func:`batch_norm_grad_masked`: that times ``cast(x > t)`` (through a
  ReLU);
* :func:`max_pool_grad`: MAX_POOL_2D's gradient over tiling windows
  (:mod:`litetrain.runtime.pool_grad`).

Flat float32 (``mask``: bool) arrays of one size, or (per channel) ``[rows, channels]``
arrays and ``[channels]`` vectors; ``s`` and ``t`` are float32 scalars; ``out`` may be
one of the full-size operands (every element is read before it is written). Each
is the NumPy form's float32 operations in its order (a bool cast to float32 is exactly
1 or 0), no fast-math, no contraction into fused multiply-adds: the same bits, NaN,
infinities and signed zeros included.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from .lanes import add16 as _add
from .lanes import load16 as _load
from .lanes import mul16 as _mul
from .lanes import store16 as _store

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32


def _arrays(*kinds):
    """Signatures over every read-only/writable mix of the input arrays (``out`` is
    writable), so that constants and views of them need no copy."""
    sigs = []
    for mask in range(1 << len(kinds)):
        sigs.append(tuple(types.Array(k, 1, "C", readonly=bool(mask >> n & 1))
                          for n, k in enumerate(kinds)))
    return sigs


_B = types.boolean


def _arrays4(*kinds):
    """As :func:`_arrays`, for C-contiguous 4-D arrays."""
    sigs = []
    for mask in range(1 << len(kinds)):
        sigs.append(tuple(types.Array(k, 4, "C", readonly=bool(mask >> n & 1))
                          for n, k in enumerate(kinds)))
    return sigs


@numba.njit([(*a, _F32[::1]) for a in _arrays(_F32, _B)], **_JIT)
def masked(dy, mask, out):
    one, zero = np.float32(1.0), np.float32(0.0)
    for k in range(dy.size):
        out[k] = dy[k] * (one if mask[k] else zero)
    return out


@numba.njit([(*a, _F32, _F32[::1]) for a in _arrays(_F32, _F32)], **_JIT)
def masked_greater(dy, x, t, out):
    one, zero = np.float32(1.0), np.float32(0.0)
    for k in range(dy.size):
        out[k] = dy[k] * (one if x[k] > t else zero)
    return out


@numba.njit([(*a, _F32, _F32[::1]) for a in _arrays(_F32, _F32)], **_JIT)
def sigmoid_grad(dy, y, s, out):
    for k in range(dy.size):
        v = y[k]
        out[k] = (dy[k] * v) * (s - v)
    return out


@numba.njit([(*a, _F32, _F32[::1]) for a in _arrays(_F32, _F32)], **_JIT)
def tanh_grad(dy, y, s, out):
    for k in range(dy.size):
        v = y[k]
        out[k] = dy[k] * (s - v * v)
    return out


def _rows(*kinds):
    """Signatures over read-only/writable mixes of ``[rows, channels]`` arrays (``"A"``)
    and ``[channels]`` vectors (``"V"``)."""
    sigs = []
    for mask in range(1 << len(kinds)):
        sigs.append((*(types.Array(_F32, 2 if k == "A" else 1, "C",
                                   readonly=bool(mask >> n & 1))
                       for n, k in enumerate(kinds)), _F32[:, ::1]))
    return sigs


@numba.njit(_rows("A", "V", "V"), **_JIT)
def affine(x, s, b, out):
    """``(x * s) + b`` with per-channel ``s`` and ``b`` (batch norm's output)."""
    rows, c = x.shape
    for r in range(rows):
        for ch in range(c):
            out[r, ch] = (x[r, ch] * s[ch]) + b[ch]
    return out


@numba.njit(_rows("A", "V", "A", "V", "V"), **_JIT)
def batch_norm_grad(dy, s, xc, k1, k0, out):
    """``(dy * s) + ((xc * k1) + k0)`` with per-channel ``s``, ``k1``, ``k0`` (batch
    norm's input gradient as its rule emits it)."""
    rows, c = dy.shape
    for r in range(rows):
        for ch in range(c):
            out[r, ch] = (dy[r, ch] * s[ch]) + ((xc[r, ch] * k1[ch]) + k0[ch])
    return out


# Inputs typed read-only take writable arrays too: one compiled form.
@numba.njit([(*(types.Array(_F32, 2 if k == "A" else 1, "C", readonly=True)
                for k in "AVAVVA"), _F32, _F32[:, ::1])], **_JIT)
def batch_norm_grad_masked(dy, s, xc, k1, k0, x, t, out):
    """``((dy * s) + ((xc * k1) + k0)) * cast(x > t)``: batch norm's input gradient
    through the ReLU before it (the mask read before ``out`` is written: it may be
    ``x``)."""
    rows, c = dy.shape
    one, zero = np.float32(1.0), np.float32(0.0)
    for r in range(rows):
        for ch in range(c):
            m = one if x[r, ch] > t else zero
            out[r, ch] = ((dy[r, ch] * s[ch]) + ((xc[r, ch] * k1[ch]) + k0[ch])) * m
    return out


@numba.njit([(*a, _F32, _F32[::1]) for a in _arrays(_F32, _F32, _F32)], **_JIT)
def sigmoid_grad_of_product(a, b, y, s, out):
    """``((a * b) * y) * (s - y)``: LOGISTIC's gradient of a product cotangent."""
    for k in range(a.size):
        v = y[k]
        out[k] = ((a[k] * b[k]) * v) * (s - v)
    return out


@numba.njit([(*a, _F32, _F32[::1]) for a in _arrays(_F32, _F32, _F32)], **_JIT)
def tanh_grad_of_product(a, b, y, s, out):
    """``(a * b) * (s - y * y)``: TANH's gradient of a product cotangent."""
    for k in range(a.size):
        v = y[k]
        out[k] = (a[k] * b[k]) * (s - v * v)
    return out


@numba.njit([(*a, types.int64, types.int64, _F32[:, :, :, ::1])
             for a in _arrays4(_F32, _F32, _F32)], **_JIT)
def max_pool_grad(x, y, dy, kh, kw, out):
    """MAX_POOL_2D's gradient over tiling ``kh × kw`` windows: each window's cotangent
    ``dy`` times 1.0 at the first tap (row-major) equal to the window's maximum ``y``,
    times 0.0 at the others (``runtime/pool_grad.py``'s chain, in one pass, writing the
    output row by row)."""
    n, oh, ow, c = dy.shape
    one, zero = np.float32(1.0), np.float32(0.0)
    taken = np.empty((ow, c), np.bool_)
    for b in range(n):
        for r in range(oh):
            taken[:, :] = False
            for i in range(kh):
                xr, orow = x[b, r * kh + i], out[b, r * kh + i]
                for q in range(ow):
                    for j in range(kw):
                        for ch in range(c):
                            hit = (xr[q * kw + j, ch] == y[b, r, q, ch]) and not taken[q, ch]
                            taken[q, ch] = taken[q, ch] or hit
                            orow[q * kw + j, ch] = dy[b, r, q, ch] * (one if hit else zero)
    return out


# BLAS order of ``ones @ p`` (NumPy's sum over leading axes, ``ops/reduce.py``) for a
# ``[rows, c]`` ``p`` with ``rows`` a multiple of eight, as OpenBLAS's SGEMV computes it
# here: per column, the rows in groups of eight, each group summed in order, each
# group's sum added to a total from +0.0, the total added to +0.0. Whether BLAS really
# sums so for a shape is checked before use (``runtime/product_sum.py``).
_FLAT = types.Array(_F32, 1, "C", readonly=True)
_I = types.int64


@numba.njit([(_FLAT, _I, _I, _I, _FLAT, _I, _I, _I, _I, _I, _I, _I, _F32[::1])], **_JIT)
def product_sum(a, ao, a0, a1, b, bo, b0, b1, n, h, w, c, out):
    """``ones @ (A * B).reshape(-1, c)`` in BLAS's order (see above) without the
    product array, for ``[n, h, w, c]`` operands whose rows of ``w·c`` values are
    contiguous: ``A[i, y, x, ch]`` is ``a[ao + i·a0 + y·a1 + x·c + ch]`` (``B`` alike
    in ``b``); ``n·h·w`` a multiple of eight. Sixteen channels at a time: each product
    rounded to float32, then added (no contraction)."""
    total = np.zeros(c + 16, np.float32)
    pa = np.empty(8, np.int64)
    pb = np.empty(8, np.int64)
    i = y = x = 0
    for _ in range(n * h * w // 8):
        for j in range(8):  # the group's eight rows, in order
            pa[j] = ao + i * a0 + y * a1 + x * c
            pb[j] = bo + i * b0 + y * b1 + x * c
            x += 1
            if x == w:
                x = 0
                y += 1
                if y == h:
                    y = 0
                    i += 1
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            g = _mul(_load(a, pa[0] + cc, width), _load(b, pb[0] + cc, width))
            for j in range(1, 8):
                g = _add(g, _mul(_load(a, pa[j] + cc, width), _load(b, pb[j] + cc, width)))
            _store(total, cc, _add(_load(total, cc, width), g), width)
    zero = np.float32(0.0)
    for ch in range(c):
        out[ch] = zero + total[ch]
    return out


@numba.njit([(_FLAT, types.Array(types.int64, 1, "C", readonly=True), _I, _I, _FLAT, _I, _I,
               _I, _I, _I, _I, _I, _F32[:, ::1])], **_JIT)
def product_sums(a, offsets, a0, a1, b, bo, b0, b1, n, h, w, c, out):
    """:func:`product_sum` of several ``A`` (one per row of ``out``, at ``offsets`` in
    ``a``, all with image and row strides ``a0``, ``a1``) with one ``B``, in one pass:
    a depthwise filter's gradient, tap by tap (each row the same bits as
    :func:`product_sum` of that ``A``)."""
    taps = offsets.size
    total = np.zeros(taps * c + 16, np.float32)
    pa = np.empty(8, np.int64)
    pb = np.empty(8, np.int64)
    i = y = x = 0
    for _ in range(n * h * w // 8):
        for j in range(8):
            pa[j] = i * a0 + y * a1 + x * c
            pb[j] = bo + i * b0 + y * b1 + x * c
            x += 1
            if x == w:
                x = 0
                y += 1
                if y == h:
                    y = 0
                    i += 1
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            bs = (_load(b, pb[0] + cc, width), _load(b, pb[1] + cc, width),
                  _load(b, pb[2] + cc, width), _load(b, pb[3] + cc, width),
                  _load(b, pb[4] + cc, width), _load(b, pb[5] + cc, width),
                  _load(b, pb[6] + cc, width), _load(b, pb[7] + cc, width))
            for t in range(taps):
                o = offsets[t] + cc
                g = _mul(_load(a, pa[0] + o, width), bs[0])
                g = _add(g, _mul(_load(a, pa[1] + o, width), bs[1]))
                g = _add(g, _mul(_load(a, pa[2] + o, width), bs[2]))
                g = _add(g, _mul(_load(a, pa[3] + o, width), bs[3]))
                g = _add(g, _mul(_load(a, pa[4] + o, width), bs[4]))
                g = _add(g, _mul(_load(a, pa[5] + o, width), bs[5]))
                g = _add(g, _mul(_load(a, pa[6] + o, width), bs[6]))
                g = _add(g, _mul(_load(a, pa[7] + o, width), bs[7]))
                k = t * c + cc
                _store(total, k, _add(_load(total, k, width), g), width)
    zero = np.float32(0.0)
    for t in range(taps):
        for ch in range(c):
            out[t, ch] = zero + total[t * c + ch]
    return out


_X4 = types.Array(_F32, 4, "C", readonly=True)


@numba.njit([(_X4, types.int64, types.int64, types.int64, types.int64, _F32[:, :, :, ::1])],
            **_JIT)
def max_pool(x, kh, kw, sh, sw, out):
    """MAX_POOL_2D's NumPy kernel without padding (``ops/pool.py``): from each window's
    first tap, ``np.maximum(m, tap)`` tap by tap in row-major order, as NumPy computes
    it: ``m`` when ``m`` is NaN or greater, else the tap (a NaN tap, an equal zero of
    either sign)."""
    n, oh, ow, c = out.shape
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                o = out[b, i, j]
                first = x[b, i * sh, j * sw]
                for ch in range(c):
                    o[ch] = first[ch]
                for di in range(kh):
                    for dj in range(kw):
                        if di == 0 and dj == 0:
                            continue
                        t = x[b, i * sh + di, j * sw + dj]
                        for ch in range(c):
                            m, v = o[ch], t[ch]
                            o[ch] = m if (m != m or m > v) else v
    return out


_I64 = types.Array(types.int64, 1, "C", readonly=True)


@numba.njit([(_X4, _I64, _I64, _I64, _I64, _I64, _I64, _I64, _I64, _F32[:, :, :, ::1])],
            **_JIT)
def gather_taps(x, y0, x0, sy, sx, top, left, rows, cols, out):
    """Strided windows of ``x`` side by side: ``out[b, i, j, t·c:(t+1)·c]`` is
    ``x[b, y0[t] + (i - top[t])·sy[t], x0[t] + (j - left[t])·sx[t]]`` where
    ``top[t] <= i < top[t] + rows[t]`` and ``left[t] <= j < left[t] + cols[t]``, else
    zeros (a tap's STRIDED_SLICE of ``x``, PADded by ``top``/``left`` before it).
    Copies only: the same values."""
    n, oh, ow = out.shape[:3]
    c = x.shape[3]
    taps = y0.size
    zero = np.float32(0.0)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                o = out[b, i, j]
                for t in range(taps):
                    k = t * c
                    ii, jj = i - top[t], j - left[t]
                    if 0 <= ii < rows[t] and 0 <= jj < cols[t]:
                        src = x[b, y0[t] + ii * sy[t], x0[t] + jj * sx[t]]
                        for ch in range(c):
                            o[k + ch] = src[ch]
                    else:
                        for ch in range(c):
                            o[k + ch] = zero
    return out
