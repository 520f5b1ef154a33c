"""Compiled (numba) forms of the float convolution kernels in :mod:`..conv`.

* :func:`depthwise_conv_2d`: output row by output row (in cache), each tap one long
  contiguous multiply-add over the row (filters tiled along the row at prepare, so few
  channels cost no per-pixel loop), bias and activation applied before moving on. Same
  products added in the same tap order as the NumPy kernel, so the same bits.
* :func:`bias_activation`: ``out += bias`` and the fused activation in one pass, in place
  on a block of a fresh GEMM result; :func:`bias_activation_hard_swish` then also a
  HARD_SWISH, :func:`bias_activation_scale` a MUL by a one-element value, fused into the
  convolution (:mod:`litetrain.runtime.epilogue`).
* :func:`im2col`: a block of CONV_2D's patch rows gathered straight from the input (no
  padded copy; a copy, so exact); :func:`im2col_affine` of the input rescaled on the way.
* :func:`mul_per_image_channels`: a squeeze-and-excitation MUL ``[n, h, w, c] * [n, 1,
  1, c]`` in one pass (:mod:`litetrain.runtime.se_scale`).
* :func:`col2im`: TRANSPOSE_CONV's taps added into its output, each output value
  receiving the same additions in the same tap order as the NumPy kernel's strided
  slices, so the same bits.

Activations are the clamping ones (NONE, RELU, RELU_N1_TO_1, RELU6) given as bounds
``lo``/``hi``, with the values and zero signs of NumPy's ``np.clip``/``np.maximum`` (NaN
passes). Other activations are applied by NumPy afterwards.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from .activations import hard_swish_value

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
# Compiled (or loaded from the disk cache) when this module is imported, so a run never
# waits for a compilation: float32 C-order arrays (the input may be read-only), flags,
# clamp bounds, then int64 geometry.
_F32 = types.float32
_INTS = (types.int64,) * 9
_DEPTHWISE = [
    (types.Array(_F32, 4, "C", readonly=ro), _F32[:, :, ::1], _F32[:, :, ::1], _F32[::1],
     types.boolean, _F32, _F32, *_INTS) for ro in (False, True)]
_BIAS_ACTIVATION = [(_F32[:, ::1], _F32[::1], types.boolean, _F32, _F32)]
_COL2IM = [(types.Array(_F32, 6, "C", readonly=ro), types.Array(_F32, 4, "C"),
            *(types.int64,) * 4) for ro in (False, True)]
_IM2COL = [(types.Array(_F32, 4, "C", readonly=ro), _F32[:, ::1], *(types.int64,) * 13)
           for ro in (False, True)]


@numba.njit(inline="always", **_JIT)
def _clamp(v, lo, hi):
    """``np.clip``'s values and signs; ``lo == 0, hi == inf`` is RELU, which is
    ``np.maximum(v, 0)``: -0.0 becomes +0.0 there."""
    if v < lo or (v == lo and hi == np.inf):
        return lo
    if v > hi:
        return hi
    return v


@numba.njit(inline="always", **_JIT)
def _add_each(out, v):
    """``out`` (pixels × channels, flat) += ``v`` (channels) at every pixel."""
    cm = v.size
    for p in range(out.size // cm):
        o = out[p * cm:(p + 1) * cm]
        for ch in range(cm):
            o[ch] += v[ch]


@numba.njit(inline="always", **_JIT)
def _multiply_add(out, x, w):
    for k in range(out.size):
        out[k] += x[k] * w[k]


@numba.njit(inline="always", **_JIT)
def _rearrange(x, ph, sw, mult):
    """``ph[iy, p, q * cm + ci * mult + m] = x[iy, q * sw + p, ci]``."""
    h, wd, c = x.shape
    cm = c * mult
    for iy in range(h):
        for p in range(sw):
            dst = ph[iy, p]
            for q in range((wd - p + sw - 1) // sw):
                src = x[iy, q * sw + p]
                o = dst[q * cm:(q + 1) * cm]
                if mult == 1:
                    for ci in range(c):
                        o[ci] = src[ci]
                else:
                    for ci in range(c):
                        v = src[ci]
                        for m in range(mult):
                            o[ci * mult + m] = v


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, wt, zw, b, has_bias, lo, hi, sh, sw, dh, dw, pt, pl, oh, ow, mult):
    """``x`` [n, h, w, c] float32; ``wt`` [kh, kw, ow * c * mult]: each tap's filter row
    repeated for every output column (so a tap is one long contiguous loop over an output
    row, whatever the channel count); ``zw`` [kh, kw, c * mult]: the filter times ``0.0``
    (what a tap on padding adds); ``b`` [c * mult].

    The NumPy kernel's sums, bit for bit: it starts from the first tap's product and adds
    the others in tap order, taps on padding giving ``0.0 * w``. Starting instead from
    -0.0 changes nothing (``-0.0 + p == p`` for every ``p``, signed zeros and NaN
    included), which lets every tap be added the same way. Strided or multiplied inputs
    are first rearranged per image (a copy: exact) so every tap reads a contiguous run."""
    n, h, wd, c = x.shape
    kh, kw, rowlen = wt.shape
    cm = c * mult
    out = np.empty((n, oh, rowlen), np.float32)
    direct = sw == 1 and mult == 1
    xf = x.reshape(n, h, wd * c)
    # One image as [h, phase, (column // sw) * cm + channel * mult + m] for input column
    # `column = (column // sw) * sw + phase`: the columns a tap reads are then adjacent.
    wph = (wd + sw - 1) // sw
    ph = np.empty((1 if direct else h, sw, wph * cm), np.float32)
    nz = np.float32(-0.0)
    for bi in range(n):
        if not direct:
            _rearrange(x[bi], ph, sw, mult)
        for oy in range(oh):
            row = out[bi, oy]
            for k in range(rowlen):
                row[k] = nz
            for i in range(kh):
                iy = oy * sh + i * dh - pt
                for j in range(kw):
                    off = j * dw - pl
                    x0, x1 = 0, 0  # outputs whose input column is in bounds
                    if 0 <= iy < h:
                        x0 = 0 if off >= 0 else (sw - 1 - off) // sw
                        x1 = min(ow, (wd - 1 - off) // sw + 1) if wd - 1 - off >= 0 else 0
                        x1 = max(x0, x1)
                    if x0 > 0:
                        _add_each(row[:x0 * cm], zw[i, j])
                    if x1 > x0:
                        first = x0 * sw + off  # the input column of output x0
                        if direct:
                            xv = xf[bi, iy, first * c:(first + x1 - x0) * c]
                        else:
                            q = first // sw
                            xv = ph[iy, first - q * sw, q * cm:(q + x1 - x0) * cm]
                        _multiply_add(row[x0 * cm:x1 * cm], xv, wt[i, j, x0 * cm:x1 * cm])
                    if x1 < ow:
                        _add_each(row[x1 * cm:], zw[i, j])
            if has_bias:
                for ox in range(ow):
                    o = row[ox * cm:(ox + 1) * cm]
                    for ch in range(cm):
                        o[ch] = _clamp(o[ch] + b[ch], lo, hi)
            elif lo != -np.inf or hi != np.inf:
                for k in range(rowlen):
                    row[k] = _clamp(row[k], lo, hi)
    return out.reshape(n, oh, ow, cm)


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


@numba.njit(_BIAS_ACTIVATION, **_JIT)
def bias_activation_hard_swish(out, b, has_bias, lo, hi):
    """:func:`bias_activation`, then HARD_SWISH (:func:`.activations.hard_swish_value`)
    on each result, in the same pass: the values a separate HARD_SWISH node computes
    from the stored float32 results."""
    rows, cols = out.shape
    for r in range(rows):
        o = out[r]
        if has_bias:
            for k in range(cols):
                o[k] = hard_swish_value(_clamp(o[k] + b[k], lo, hi))
        else:
            for k in range(cols):
                o[k] = hard_swish_value(_clamp(o[k], lo, hi))


@numba.njit([(*_BIAS_ACTIVATION[0], _F32)], **_JIT)
def bias_activation_scale(out, b, has_bias, lo, hi, k):
    """:func:`bias_activation`, then each result times ``k`` (float32): a MUL by a
    one-element value fused into the convolution (:mod:`litetrain.runtime.epilogue`)."""
    rows, cols = out.shape
    for r in range(rows):
        o = out[r]
        if has_bias:
            for c in range(cols):
                o[c] = _clamp(o[c] + b[c], lo, hi) * k
        else:
            for c in range(cols):
                o[c] = _clamp(o[c], lo, hi) * k


@numba.njit(inline="always", **_JIT)
def _copy_runs(dst, d, src, s, count, step_d, step_s, run):
    """``count`` runs of ``run`` values: ``dst[d + p * step_d + q] = src[s + p * step_s +
    q]`` over flat arrays. The indices are unsigned, so numba adds no negative-index
    wraparound to each access, and the run copies vectorise."""
    u = np.uint64
    ud, us, sd, ss = u(d), u(s), u(step_d), u(step_s)
    for p in range(u(count)):
        a, b = ud + p * sd, us + p * ss
        for q in range(u(run)):
            dst[a + q] = src[b + q]


@numba.njit(inline="always", **_JIT)
def _zero_runs(dst, d, count, step_d, run):
    """``count`` runs of ``run`` zeros: ``dst[d + p * step_d + q] = 0.0``."""
    zero = np.float32(0.0)
    u = np.uint64
    ud, sd = u(d), u(step_d)
    for p in range(u(count)):
        a = ud + p * sd
        for q in range(u(run)):
            dst[a + q] = zero


@numba.njit(inline="always", **_JIT)
def _border_window_row(dst, d, src, s, ix0, kw, dw, c, wd):
    """One window row of an output column whose window leaves the input: per tap ``c``
    values from input column ``ix0 + j * dw`` of the row at ``src[s:]``, or zeros."""
    for j in range(kw):
        ix = ix0 + j * dw
        if ix < 0 or ix >= wd:
            _zero_runs(dst, d + j * c, 1, 0, c)
        else:
            _copy_runs(dst, d + j * c, src, s + ix * c, 1, 0, 0, c)


@numba.njit(inline="always", **_JIT)
def _window_row(dst, d, src, s, geometry):
    """Window row ``(d, s)`` of every output column of an output row: the columns whose
    window row lies inside the input (``lo <= ox < hi``) copy it as one run of ``kw * c``
    values (``kw`` runs of ``c`` when dilated), the border columns tap by tap."""
    k, kw, sw, dw, pl, ow, c, wd, lo, hi = geometry
    for ox in range(lo):
        _border_window_row(dst, d + ox * k, src, s, ox * sw - pl, kw, dw, c, wd)
    for ox in range(hi, ow):
        _border_window_row(dst, d + ox * k, src, s, ox * sw - pl, kw, dw, c, wd)
    first = s + (lo * sw - pl) * c  # column lo's window row
    if dw == 1:
        _copy_runs(dst, d + lo * k, src, first, hi - lo, k, sw * c, kw * c)
    else:
        for j in range(kw):
            _copy_runs(dst, d + lo * k + j * c, src, first + j * dw * c, hi - lo, k, sw * c,
                       c)


@numba.njit(inline="always", **_JIT)
def _gather(x, out, b0, b1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow, scale, shift,
            affine):
    """:func:`im2col`; with ``affine`` (a literal at each call) :func:`im2col_affine`,
    which rescales each input row it reads into a one-row buffer first."""
    n, h, wd, c = x.shape
    src = x.reshape(n * h * wd * c)
    run = kw * c  # one window row
    k = kh * run  # one patch row
    dst = out.reshape(out.shape[0] * k)
    lo = min(ow, (pl + sw - 1) // sw)  # first column with ox * sw - pl >= 0
    last = wd - 1 - (kw - 1) * dw + pl  # ... and ox * sw <= last
    hi = max(lo, min(ow, last // sw + 1)) if last >= 0 else lo
    geometry = (k, kw, sw, dw, pl, ow, c, wd, lo, hi)
    rowlen = wd * c
    row = np.empty(rowlen if affine else 0, np.float32)
    r = 0
    for bi in range(b0, b1):
        for oy in range(y0, y1):
            for i in range(kh):
                iy = oy * sh + i * dh - pt
                d = r * k + i * run
                if iy < 0 or iy >= h:
                    _zero_runs(dst, d, ow, k, run)
                elif affine:
                    s = np.uint64((bi * h + iy) * rowlen)
                    for q in range(np.uint64(rowlen)):
                        row[q] = src[s + q] * scale + shift
                    _window_row(dst, d, row, 0, geometry)
                else:
                    _window_row(dst, d, src, (bi * h + iy) * rowlen, geometry)
            r += ow


@numba.njit(_IM2COL, **_JIT)
def im2col(x, out, b0, b1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow):
    """``out[r, (i * kw + j) * c + ch]`` = ``x[b, oy * sh + i * dh - pt, ox * sw + j * dw
    - pl, ch]`` (0.0 off the input) for the outputs ``r = (b, oy, ox)`` of ``[b0:b1,
    y0:y1]``, in C order: the patch rows of those outputs (a copy, exact).

    Per output row and window row ``i``: a window row off the input is zeros; else the
    output columns whose window row lies inside the input (``lo <= ox < hi``, found once)
    copy it as one run of ``kw * c`` values (``kw`` runs of ``c`` when dilated) without
    any test per value, and only the few border columns go tap by tap."""
    one = np.float32(1.0)
    _gather(x, out, b0, b1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow, one, one, False)


_IM2COL_AFFINE = [(*sig, _F32, _F32) for sig in _IM2COL]


@numba.njit(_IM2COL_AFFINE, **_JIT)
def im2col_affine(x, out, b0, b1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow, scale, shift):
    """:func:`im2col` of ``x * scale + shift`` (float32, multiply then add, two roundings:
    the MUL and ADD nodes that rescale a model's input, fused into its first convolution
    by :mod:`litetrain.runtime.prologue`) without making that array; padding stays 0.0
    (it pads the rescaled input)."""
    _gather(x, out, b0, b1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow, scale, shift, True)


_A4 = [types.Array(_F32, 4, "C", readonly=ro) for ro in (False, True)]
_PER_IMAGE = [(x, v, _F32[:, :, :, ::1], types.boolean) for x in _A4 for v in _A4]
_PER_IMAGE_IN_PLACE = [(_A4[0], v, types.boolean) for v in _A4]


@numba.njit(inline="always", **_JIT)
def _scale_images(xf, of, vf, n, m, c, x_first):
    """``of[(b * m + p) * c + k] = xf[...] * vf[b * c + k]`` (or ``vf * xf``) over flat
    arrays: ``n`` images of ``m`` pixels of ``c`` channels."""
    u = np.uint64
    cu, mu = u(c), u(m)
    for b in range(u(n)):
        vb = vf[b * cu:(b + u(1)) * cu]
        for p in range(mu):
            base = (b * mu + p) * cu
            if x_first:
                for k in range(cu):
                    of[base + k] = xf[base + k] * vb[k]
            else:
                for k in range(cu):
                    of[base + k] = vb[k] * xf[base + k]


@numba.njit(_PER_IMAGE, **_JIT)
def mul_per_image_channels(x, v, out, x_first):
    """``out = x * v`` (``v * x`` when not ``x_first``: the MUL's operand order) for ``x``
    [n, h, w, c] and a per-image channel vector ``v`` [n, 1, 1, c] (squeeze-and-
    excitation blocks), all float32 C order. One float32 product per element, as
    NumPy's broadcast computes it, in one pass with long vectorised loops (NumPy's inner
    loop would be one pixel's ``c`` values)."""
    n, h, w, c = x.shape
    size = n * h * w * c
    _scale_images(x.reshape(size), out.reshape(size), v.reshape(n * c), n, h * w, c,
                  x_first)


@numba.njit(_PER_IMAGE_IN_PLACE, **_JIT)
def mul_per_image_channels_in_place(x, v, x_first):
    """:func:`mul_per_image_channels` written into ``x`` (one array: the loop vectorises;
    two that may overlap would not)."""
    n, h, w, c = x.shape
    xf = x.reshape(n * h * w * c)
    _scale_images(xf, xf, v.reshape(n * c), n, h * w, c, x_first)


@numba.njit(_COL2IM, **_JIT)
def col2im(contrib, out, sh, sw, ph, pw):
    """``out[b, y * sh + i - ph, x * sw + j - pw] += contrib[b, y, x, i, j]`` where that
    lands in ``out`` [n, oh, ow, o], taps ``(i, j)`` in C order, in place: per output
    value the additions of the NumPy kernel's per-tap strided slices, in its order (the
    taps stay the outer loop of each image)."""
    n, h, wd, kh, kw, o = contrib.shape
    oh, ow = out.shape[1], out.shape[2]
    for b in range(n):
        for i in range(kh):
            for y in range(h):
                r = y * sh + i - ph
                if r < 0 or r >= oh:
                    continue
                for j in range(kw):
                    for x in range(wd):
                        c = x * sw + j - pw
                        if c < 0 or c >= ow:
                            continue
                        d = out[b, r, c]
                        src = contrib[b, y, x, i, j]
                        for k in range(o):
                            d[k] += src[k]
