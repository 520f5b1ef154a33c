"""Compiled (numba) forms of the float convolution kernels in :mod:`..conv`.

* :func:`depthwise_conv_2d`: one pass over the output, each output pixel's taps
  accumulated while it is in cache, bias and activation applied before moving on. Same
  products added in the same tap order as the NumPy kernel, so the same bits.
* :func:`bias_activation`: ``out += bias`` and the fused activation in one pass, in place
  on a fresh GEMM result.

Activations are the clamping ones (NONE, RELU, RELU_N1_TO_1, RELU6) given as bounds
``lo``/``hi``, with the values and zero signs of NumPy's ``np.clip``/``np.maximum`` (NaN
passes). Other activations are applied by NumPy afterwards.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
# Compiled (or loaded from the disk cache) when this module is imported, so a run never
# waits for a compilation: float32 C-order arrays (the input may be read-only), flags,
# clamp bounds, then int64 geometry.
_F32 = types.float32
_INTS = (types.int64,) * 9
_DEPTHWISE = [
    (types.Array(_F32, 4, "C", readonly=ro), _F32[:, :, ::1], _F32[::1], types.boolean,
     _F32, _F32, *_INTS) for ro in (False, True)]
_BIAS_ACTIVATION = [(_F32[:, ::1], _F32[::1], types.boolean, _F32, _F32)]


@numba.njit(inline="always", **_JIT)
def _clamp(v, lo, hi):
    """``np.clip``'s values and signs; ``lo == 0, hi == inf`` is RELU, which is
    ``np.maximum(v, 0)``: -0.0 becomes +0.0 there."""
    if v < lo or (v == lo and hi == np.inf):
        return lo
    if v > hi:
        return hi
    return v


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, w, b, has_bias, lo, hi, sh, sw, dh, dw, pt, pl, oh, ow, mult):
    """``x`` [n, h, w, c] float32, ``w`` [kh, kw, c * mult], ``b`` [c * mult].

    The NumPy kernel's sums, bit for bit: it starts from the first tap's product and
    adds the others in tap order, taps on padding giving ``0.0 * w``. Starting instead
    from -0.0 changes nothing (``-0.0 + p == p`` for every ``p``, signed zeros and NaN
    included), which lets every tap be added the same way."""
    n, h, wd, _ = x.shape
    kh, kw, cm = w.shape
    out = np.full((n, oh, ow, cm), np.float32(-0.0))
    zero = np.float32(0.0)
    for bi in range(n):
        for oy in range(oh):
            for ox in range(ow):
                o = out[bi, oy, ox]
                for i in range(kh):
                    iy = oy * sh + i * dh - pt
                    for j in range(kw):
                        ix = ox * sw + j * dw - pl
                        wr = w[i, j]
                        if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                            for ch in range(cm):
                                o[ch] += zero * wr[ch]
                        elif mult == 1:
                            xr = x[bi, iy, ix]
                            for ch in range(cm):
                                o[ch] += xr[ch] * wr[ch]
                        else:
                            xr = x[bi, iy, ix]
                            for ch in range(cm):
                                o[ch] += xr[ch // mult] * wr[ch]
                if has_bias:
                    for ch in range(cm):
                        o[ch] = _clamp(o[ch] + b[ch], lo, hi)
                elif lo != -np.inf or hi != np.inf:
                    for ch in range(cm):
                        o[ch] = _clamp(o[ch], lo, hi)
    return out


@numba.njit(_BIAS_ACTIVATION, **_JIT)
def bias_activation(out, b, has_bias, lo, hi):
    """In place on a 2-D ``out`` [rows, channels]: ``out += b``, then clamp to [lo, hi]."""
    rows, cols = out.shape
    for r in range(rows):
        o = out[r]
        if has_bias:
            for k in range(cols):
                o[k] = _clamp(o[k] + b[k], lo, hi)
        else:
            for k in range(cols):
                o[k] = _clamp(o[k], lo, hi)
    return out
