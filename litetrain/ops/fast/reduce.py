"""Compiled (numba) forms of float reductions in :mod:`..reduce`.

* :func:`mean_hw`: MEAN of a float32 NHWC tensor over height and width (a global
  average pool, as in MobileNets' heads and squeeze-and-excitation blocks) in one pass.
  Same float32 operations in the same order as NumPy's ``np.add.reduce`` over those
  (outer) axes — each channel's sum starts from +0.0 (so -0.0 pixels alone sum to +0.0)
  and adds the pixels one after another — then one division by the pixel count in
  float32: the same bits.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
# Into a given output [n, 1, 1, c] (keep_dims) or [n, c]: a fresh array made here would
# cost more to hand back to Python than a small mean takes.
_MEAN_HW = [(types.Array(_F32, 4, "C", readonly=ro), types.Array(_F32, nd, "C"))
            for ro in (False, True) for nd in (4, 2)]


@numba.njit(_MEAN_HW, **_JIT)
def mean_hw(x, out):
    """``out`` (``n * c`` values, C order) = the mean of ``x`` [n, h, w, c] (``h * w >
    0``) over ``h`` and ``w``."""
    n, h, w, c = x.shape
    pixels = x.reshape(n, h * w, c)
    o2 = out.reshape(n, c)
    count = np.float32(h * w)
    zero = np.float32(0.0)
    for b in range(n):
        o = o2[b]
        for ch in range(c):
            o[ch] = zero
        for p in range(h * w):
            row = pixels[b, p]
            for ch in range(c):
                o[ch] += row[ch]
        for ch in range(c):
            o[ch] = o[ch] / count
