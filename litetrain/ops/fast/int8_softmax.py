"""The compiled 8-bit SOFTMAX (part of the ``int8`` family: :mod:`.int8` re-exports it).

:func:`softmax` computes what ``activations._softmax_integer`` computes, in one pass per
row: the same float32 values in the same operations, so the same bits. Its exponentials
come from a table of NumPy's own float32 ``exp`` of the 256 possible ``x - max`` (made at
prepare: :func:`..quantized.activations_int.softmax8`), and each row's sum is taken in
the order NumPy's ``ndarray.sum`` adds a contiguous row (:func:`_pairwise_sum`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_I64 = types.int64
_EIGHT = (types.int8, types.uint8)
_SOFTMAX = [(types.Array(dt, 2, "C", readonly=ro), types.float32[::1], types.float32, _I64,
             _I64, _I64, types.Array(out, 2, "C"))
            for dt in _EIGHT for ro in (False, True) for out in _EIGHT]


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
