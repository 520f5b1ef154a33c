"""Sliding windows over NHWC tensors, shared by convolution, pooling and their gradients.

``windows`` yields, for each filter tap, the strided slice of the (padded) input that the
tap multiplies; ``im2col`` gathers them into one patch matrix so a convolution is a single
matmul and the time goes to BLAS.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .common import pad_before_after


def padded(x, pads_h, pads_w, value=0.0):
    if not any(pads_h + pads_w):
        return x
    return np.pad(x, ((0, 0), pads_h, pads_w, (0, 0)), constant_values=value)


def windows(x, kh, kw, attrs, dil_h=1, dil_w=1, value=0.0):
    """Yield ((i, j), window) for each filter tap: the strided input slice it multiplies."""
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    oh, ph0, ph1 = pad_before_after(x.shape[1], kh, sh, dil_h, attrs["padding"])
    ow, pw0, pw1 = pad_before_after(x.shape[2], kw, sw, dil_w, attrs["padding"])
    xp = padded(x, (ph0, ph1), (pw0, pw1), value)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dil_h, j * dil_w
            yield (i, j), xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def tap_range(size: int, out: int, stride: int, offset: int) -> tuple[int, int, int]:
    """Along one spatial dim, for the tap reading input ``o * stride + offset`` at output
    ``o``: the outputs ``[o0, o1)`` whose input is in ``[0, size)``, and the first input."""
    o0 = max(0, -(offset // stride)) if offset < 0 else 0
    o1 = min(out, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    o1 = max(o0, o1)
    return o0, o1, o0 * stride + offset


def im2col(x, kh, kw, attrs, dil_h=1, dil_w=1):
    """Patch matrix ``[n, oh, ow, kh, kw, c]`` for a convolution with these settings: one
    copy of a strided view of the (padded) input, whose innermost runs are ``kw * c``
    contiguous values when ``dil_w == 1``."""
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    oh, ph0, ph1 = pad_before_after(x.shape[1], kh, sh, dil_h, attrs["padding"])
    ow, pw0, pw1 = pad_before_after(x.shape[2], kw, sw, dil_w, attrs["padding"])
    xp = padded(x, (ph0, ph1), (pw0, pw1))
    s0, s1, s2, s3 = xp.strides
    view = as_strided(xp, (x.shape[0], oh, ow, kh, kw, x.shape[3]),
                      (s0, s1 * sh, s2 * sw, s1 * dil_h, s2 * dil_w, s3), writeable=False)
    return view.copy()
