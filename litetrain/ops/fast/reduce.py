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
_MEAN_HW = [(types.Array(_F32, 4, "C", readonly=ro),) for ro in (False, True)]


@numba.njit(_MEAN_HW, **_JIT)
def mean_hw(x):
    """``[n, c]`` = the mean of ``x`` [n, h, w, c] (``h * w > 0``) over ``h`` and ``w``."""
    n, h, w, c = x.shape
    pixels = x.reshape(n, h * w, c)
    out = np.empty((n, c), np.float32)
    count = np.float32(h * w)
    zero = np.float32(0.0)
    for b in range(n):
        o = out[b]
        for ch in range(c):
            o[ch] = zero
        for p in range(h * w):
            row = pixels[b, p]
            for ch in range(c):
                o[ch] += row[ch]
        for ch in range(c):
            o[ch] = o[ch] / count
    return out
