"""Compiled (numba) forms of float activation kernels in :mod:`..activations`.

* :func:`hard_swish`: ``x * clip(x + 3, 0, 6) / 6`` in one pass, float32 operations in
  NumPy's order (constants are float32: a float64 constant would change the bits);
  :func:`hard_swish_in_place` the same over one array, written back.
* :func:`hard_swish_value`: that arithmetic on one value, for the convolution epilogues
  of :mod:`.conv` that apply a fused HARD_SWISH.

The kernels return nothing: boxing a returned array costs a call about 0.3 µs.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_HARD_SWISH = [(types.Array(_F32, 1, "C", readonly=ro), _F32[::1]) for ro in (False, True)]


@numba.njit(inline="always", **_JIT)
def hard_swish_value(v):
    """``v * clip(v + 3, 0, 6) / 6`` on a float32 ``v``: ``np.clip``'s results, NaN and
    signed zeros included."""
    three, zero, six = np.float32(3.0), np.float32(0.0), np.float32(6.0)
    t = v + three
    if t < zero:
        t = zero
    elif t > six:
        t = six
    return v * t / six


@numba.njit(_HARD_SWISH, **_JIT)
def hard_swish(x, out):
    """``out[:] = x * clip(x + 3, 0, 6) / 6`` over flat float32 arrays (``out`` may be
    ``x``, but then :func:`hard_swish_in_place` is the fast form)."""
    for k in range(x.size):
        out[k] = hard_swish_value(x[k])


@numba.njit([(_F32[::1],)], **_JIT)
def hard_swish_in_place(x):
    """:func:`hard_swish` with ``out`` being ``x``, as a one-array loop (two array
    arguments that may overlap keep LLVM from vectorising the loop)."""
    for k in range(x.size):
        x[k] = hard_swish_value(x[k])
