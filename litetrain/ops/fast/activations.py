"""Compiled (numba) forms of float activation kernels in :mod:`..activations`.

* :func:`hard_swish`: ``x * clip(x + 3, 0, 6) / 6`` in one pass, float32 operations in
  NumPy's order (constants are float32: a float64 constant would change the bits).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_HARD_SWISH = [(types.Array(_F32, 1, "C", readonly=ro), _F32[::1]) for ro in (False, True)]


@numba.njit(_HARD_SWISH, **_JIT)
def hard_swish(x, out):
    """``out[:] = x * clip(x + 3, 0, 6) / 6`` over flat float32 arrays (``out`` may be
    ``x``); ``np.clip``'s results, NaN and signed zeros included."""
    three, zero, six = np.float32(3.0), np.float32(0.0), np.float32(6.0)
    for k in range(x.size):
        v = x[k]
        t = v + three
        if t < zero:
            t = zero
        elif t > six:
            t = six
        out[k] = v * t / six
    return out
