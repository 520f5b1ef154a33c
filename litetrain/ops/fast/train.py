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
