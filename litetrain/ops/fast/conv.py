"""Compiled (numba) forms of the float convolution kernels in :mod:`..conv`.

* :func:`depthwise_conv_2d`: input rows copied once each into a small ring of padded
  rows (phase-split for strides, channels repeated for multipliers), so each tap's inputs
  for a whole output row are one contiguous run; 3×3 and 5×5 filters sum all their taps
  in registers, two output rows at a time, in vectorised loops over the rows' runs, bias
  and activation in the same pass (:func:`depthwise_conv_2d_hard_swish`: then a fused
  HARD_SWISH too). Same products added in the same tap order as the NumPy kernel, so the
  same bits. Strided ones and some others take :mod:`.depthwise`'s register tiles over
  a padded image instead (re-exported here as part of this family).
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
from .depthwise import depthwise_strided, depthwise_strided_hard_swish  # noqa: F401

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
# Compiled (or loaded from the disk cache) when this module is imported, so a run never
# waits for a compilation: float32 C-order arrays (the input may be read-only), flags,
# clamp bounds, then int64 geometry.
_F32 = types.float32
# (The depthwise input typed read-only takes writable arrays too: one compiled form.)
_DEPTHWISE = [(types.Array(_F32, 4, "C", readonly=True), _F32[:, ::1], _F32[::1], _F32, _F32,
               types.int64[::1])]
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


# Row stride (floats) of the prepared depthwise filter taps [taps, STRIDE]: a compile-time
# constant, so the unrolled kernels address every tap's row from one register; 1040, not
# 1024, so the rows do not all fall into the same L1 cache sets.
STRIDE = 1040
# The depthwise code indexes flat arrays with unsigned offsets: NumPy-style negative index
# wrapping (done for signed ones) would keep LLVM from vectorising, and views made in the
# inner loops cost reference counting.
_U = np.uint64


@numba.njit(inline="always", **_JIT)
def _aligned(n):
    """An uninitialised float32 array of ``n`` values starting on a 64-byte boundary (a
    vector load that straddles two cache lines costs two)."""
    buf = np.empty(n + 16, np.float32)
    start = (16 - (buf.ctypes.data // 4) % 16) % 16
    return buf[start:start + n]


@numba.njit(inline="always", **_JIT)
def _load_row(src, s0, dst, d0, c, mult, sw, pl, seg, wd):
    """Input row ``src[s0:s0 + wd * c]`` into the ring row at ``dst[d0:]`` (``sw * seg``
    long): padded column ``X = ix + pl`` at ``(X % sw) * seg + (X // sw) * c * mult``,
    each channel repeated ``mult`` times. Positions no input column lands on stay +0.0
    (padding); columns past the ring row (never read) are skipped."""
    cm = c * mult
    qlen = seg // cm
    for ph in range(sw):
        q0 = (pl - ph + sw - 1) // sw  # first q whose column q * sw + ph - pl is >= 0
        q1 = min(qlen, (wd - 1 - ph + pl) // sw + 1)
        if sw == 1 and mult == 1:  # one contiguous run
            o, i = d0 + q0 * c, s0 + (q0 - pl) * c
            for k in range((q1 - q0) * c):
                dst[_U(o + k)] = src[_U(i + k)]
            return
        for q in range(q0, q1):
            o = d0 + ph * seg + q * cm
            i = s0 + (q * sw + ph - pl) * c
            if mult == 1:
                for ch in range(c):
                    dst[_U(o + ch)] = src[_U(i + ch)]
            else:
                for ch in range(c):
                    v = src[_U(i + ch)]
                    for m in range(mult):
                        dst[_U(o + ch * mult + m)] = v


@numba.njit(inline="always", **_JIT)
def _ring_row(xf, ring, tags, bi, iy, n, h, rl, c, mult, sw, pl, seg, wd):
    """Offset in ``ring`` of padded input row ``iy`` of image ``bi`` (copied into the ring
    on first use); the ring's last row (all +0.0) above and below the images."""
    if iy < 0 or iy >= h or bi >= n:
        return tags.size * rl
    key = bi * h + iy
    slot = key % tags.size
    if tags[slot] != key:
        _load_row(xf, key * wd * c, ring, slot * rl, c, mult, sw, pl, seg, wd)
        tags[slot] = key
    return slot * rl


# The taps of one filter row at position k of a chunk: ``x`` the ring, ``r`` the offsets
# of the filter row's taps' inputs, ``t`` its first tap. ``_first*`` start a sum with
# the first product, ``_add*`` add the products to ``a``, one by one in tap order.
@numba.njit(inline="always", **_JIT)
def _first3(x, r, w, k):
    return (x[_U(r[0] + k)] * w[_U(k)] + x[_U(r[1] + k)] * w[_U(STRIDE + k)]
            + x[_U(r[2] + k)] * w[_U(2 * STRIDE + k)])


@numba.njit(inline="always", **_JIT)
def _add3(a, x, r, w, t, k):
    return (a + x[_U(r[0] + k)] * w[_U(t * STRIDE + k)]
            + x[_U(r[1] + k)] * w[_U((t + 1) * STRIDE + k)]
            + x[_U(r[2] + k)] * w[_U((t + 2) * STRIDE + k)])


@numba.njit(inline="always", **_JIT)
def _first5(x, r, w, k):
    return (x[_U(r[0] + k)] * w[_U(k)] + x[_U(r[1] + k)] * w[_U(STRIDE + k)]
            + x[_U(r[2] + k)] * w[_U(2 * STRIDE + k)]
            + x[_U(r[3] + k)] * w[_U(3 * STRIDE + k)]
            + x[_U(r[4] + k)] * w[_U(4 * STRIDE + k)])


@numba.njit(inline="always", **_JIT)
def _add5(a, x, r, w, t, k):
    return (a + x[_U(r[0] + k)] * w[_U(t * STRIDE + k)]
            + x[_U(r[1] + k)] * w[_U((t + 1) * STRIDE + k)]
            + x[_U(r[2] + k)] * w[_U((t + 2) * STRIDE + k)]
            + x[_U(r[3] + k)] * w[_U((t + 3) * STRIDE + k)]
            + x[_U(r[4] + k)] * w[_U((t + 4) * STRIDE + k)])


@numba.njit(inline="always", **_JIT)
def _taps3(row, f0, off):
    return (row + f0 + off[0], row + f0 + off[1], row + f0 + off[2])


@numba.njit(inline="always", **_JIT)
def _taps5(row, f0, off):
    return (row + f0 + off[0], row + f0 + off[1], row + f0 + off[2], row + f0 + off[3],
            row + f0 + off[4])


@numba.njit(inline="always", **_JIT)
def _act(v, lo, hi, hs):
    """The clamp, then (``hs``: a literal at each kernel) HARD_SWISH."""
    v = _clamp(v, lo, hi)
    if hs:
        return hard_swish_value(v)
    return v


@numba.njit(inline="always", **_JIT)
def _finish2(out, o, p, u, v, bt, k, lo, hi, hs):
    bk = bt[_U(k)]
    out[_U(o + k)] = _act(u + bk, lo, hi, hs)
    out[_U(p + k)] = _act(v + bk, lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _rows3x3(out, o, p, x, rows, off, w, bt, n, lo, hi, hs):
    """Output rows at ``out[o:]`` (input rows ``rows[0:3]``) and ``out[p:]``
    (``rows[3:6]``) of a 3×3 filter, chunk by chunk of the filter tiles' length: the nine
    products summed in registers, then bias and clamp."""
    span = bt.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        a, b, c = _taps3(rows[0], f0, off), _taps3(rows[1], f0, off), _taps3(rows[2], f0, off)
        d, e, f = _taps3(rows[3], f0, off), _taps3(rows[4], f0, off), _taps3(rows[5], f0, off)
        for k in range(m):
            u = _add3(_add3(_first3(x, a, w, k), x, b, w, 3, k), x, c, w, 6, k)
            v = _add3(_add3(_first3(x, d, w, k), x, e, w, 3, k), x, f, w, 6, k)
            _finish2(out, o + f0, p + f0, u, v, bt, k, lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _rows3x3_s1(out, o, p, x, rows, off, w, bt, n, lo, hi, hs):
    """:func:`_rows3x3` at vertical stride 1 (undilated): input rows ``rows[0:3]`` and
    ``rows[1:4]``, the shared ones loaded once."""
    span = bt.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        a, b, c = _taps3(rows[0], f0, off), _taps3(rows[1], f0, off), _taps3(rows[2], f0, off)
        d = _taps3(rows[3], f0, off)
        for k in range(m):
            u = _add3(_add3(_first3(x, a, w, k), x, b, w, 3, k), x, c, w, 6, k)
            v = _add3(_add3(_first3(x, b, w, k), x, c, w, 3, k), x, d, w, 6, k)
            _finish2(out, o + f0, p + f0, u, v, bt, k, lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _rows3x3_s2(out, o, p, x, rows, off, w, bt, n, lo, hi, hs):
    """:func:`_rows3x3` at vertical stride 2 (undilated): input rows ``rows[0:3]`` and
    ``rows[2:5]``, the shared one loaded once."""
    span = bt.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        a, b, c = _taps3(rows[0], f0, off), _taps3(rows[1], f0, off), _taps3(rows[2], f0, off)
        d, e = _taps3(rows[3], f0, off), _taps3(rows[4], f0, off)
        for k in range(m):
            u = _add3(_add3(_first3(x, a, w, k), x, b, w, 3, k), x, c, w, 6, k)
            v = _add3(_add3(_first3(x, c, w, k), x, d, w, 3, k), x, e, w, 6, k)
            _finish2(out, o + f0, p + f0, u, v, bt, k, lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _row3x3(out, o, x, rows, off, w, bt, n, lo, hi, hs):
    """One output row of a 3×3 filter at ``out[o:]`` (input rows ``rows``): the last of
    an odd row count."""
    span = bt.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        a, b, c = _taps3(rows[0], f0, off), _taps3(rows[1], f0, off), _taps3(rows[2], f0, off)
        for k in range(m):
            u = _add3(_add3(_first3(x, a, w, k), x, b, w, 3, k), x, c, w, 6, k)
            out[_U(o + f0 + k)] = _act(u + bt[_U(k)], lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _rows5x5_s1(out, o, p, x, rows, off, w, bt, n, lo, hi, hs):
    """:func:`_rows3x3_s1` for a 5×5 filter: input rows ``rows[0:5]`` and ``rows[1:6]``."""
    span = bt.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        a, b, c = _taps5(rows[0], f0, off), _taps5(rows[1], f0, off), _taps5(rows[2], f0, off)
        d, e, f = _taps5(rows[3], f0, off), _taps5(rows[4], f0, off), _taps5(rows[5], f0, off)
        for k in range(m):
            u = _add5(_add5(_add5(_add5(_first5(x, a, w, k), x, b, w, 5, k), x, c, w, 10, k),
                            x, d, w, 15, k), x, e, w, 20, k)
            v = _add5(_add5(_add5(_add5(_first5(x, b, w, k), x, c, w, 5, k), x, d, w, 10, k),
                            x, e, w, 15, k), x, f, w, 20, k)
            _finish2(out, o + f0, p + f0, u, v, bt, k, lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _row5x5(out, o, x, rows, off, w, bt, n, lo, hi, hs):
    """One output row of a 5×5 filter at ``out[o:]`` (input rows ``rows``), as in
    :func:`_rows3x3` (two rows' fifty input runs at once, unshared, are more than LLVM
    vectorises)."""
    span = bt.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        a, b, c = _taps5(rows[0], f0, off), _taps5(rows[1], f0, off), _taps5(rows[2], f0, off)
        d, e = _taps5(rows[3], f0, off), _taps5(rows[4], f0, off)
        for k in range(m):
            u = _add5(_add5(_add5(_add5(_first5(x, a, w, k), x, b, w, 5, k), x, c, w, 10, k),
                            x, d, w, 15, k), x, e, w, 20, k)
            out[_U(o + f0 + k)] = _act(u + bt[_U(k)], lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _row_taps(out, o, x, rows, off, w, stride, bt, n, lo, hi, hs):
    """Any filter, one output row at ``out[o:]``: tap by tap over each chunk (in L1), then
    bias and clamp; ``rows[i]`` is filter row i's input row."""
    span = bt.size
    kw = off.size
    for f0 in range(0, n, span):
        m = min(span, n - f0)
        oc = o + f0
        for t in range(len(rows) * kw):
            xi = rows[t // kw] + f0 + off[t % kw]
            wi = t * stride
            if t == 0:
                for k in range(m):
                    out[_U(oc + k)] = x[_U(xi + k)] * w[_U(wi + k)]
            else:
                for k in range(m):
                    out[_U(oc + k)] += x[_U(xi + k)] * w[_U(wi + k)]
        for k in range(m):
            out[_U(oc + k)] = _act(out[_U(oc + k)] + bt[_U(k)], lo, hi, hs)


@numba.njit(inline="always", **_JIT)
def _depthwise(x, w, bt, lo, hi, g, hs):
    """``x`` [n, h, w, c] float32; ``w`` [kh * kw, stride]: each tap's filter values
    (``c * mult``) repeated along its row to a chunk length ``span`` (``bt.size``, a
    multiple of ``c * mult``); ``bt`` the bias repeated likewise (-0.0 without a bias:
    adding it changes no bits); clamp bounds; ``g`` the geometry ``sh, sw, dh, dw, pt,
    pl, oh, ow, mult, kh, kw``.

    The NumPy kernel's sums, bit for bit: each output starts from its first tap's product
    and adds the others in tap order, a tap on padding adding ``0.0 * w``, then the bias,
    then the clamp. Input rows are copied once each into a small ring of zero-padded rows
    (columns split by phase for strides, channels repeated for multipliers) so that a
    tap's inputs for a whole output row are one contiguous run at a fixed offset, padding
    included (``+0.0 * w`` is what a padding tap adds); 3×3 and 5×5 filters then sum all
    their taps in registers, two output rows at a time where their inputs overlap, over
    runs LLVM vectorises."""
    n, h, wd, c = x.shape
    sh, sw, dh, dw, pt, pl, oh, ow, mult, kh, kw = g[0], g[1], g[2], g[3], g[4], g[5], \
        g[6], g[7], g[8], g[9], g[10]
    cm = c * mult
    rowlen = ow * cm
    rows_out = n * oh
    # Output rows are computed in pairs, in order over all images (a pair may span two);
    # an odd count leaves a spare row at the end (unwritten but by the any-size form).
    out = _aligned((rows_out + 1) * rowlen)
    seg = (ow + ((kw - 1) * dw) // sw) * cm
    rl = sw * seg
    # Ring slots: enough that the input rows one pair reads never share a slot (within
    # an image: a window and a stride; across two: the first's last rows, the second's
    # first); a row still there from the previous pair is not copied again.
    tags = np.empty(max(sh + (kh - 1) * dh + 1, h + (kh - 1) * dh - (oh - 1) * sh + 1),
                    np.int64)
    tags[:] = -1
    ring = _aligned((tags.size + 1) * rl)
    ring[:] = 0.0
    off = np.empty(kw, np.int64)
    for j in range(kw):
        q = j * dw // sw
        off[j] = (j * dw - q * sw) * seg + q * cm
    stride = w.shape[1]
    unrolled = stride == STRIDE
    wf = w.reshape(w.size)
    xf = x.reshape(x.size)
    rows = np.empty(2 * kh, np.int64)
    for r0 in range(0, rows_out, 2):
        for i in range(2 * kh):
            r = r0 + i // kh
            iy = (r % oh) * sh - pt + (i % kh) * dh
            rows[i] = _ring_row(xf, ring, tags, r // oh, iy, n, h, rl, c, mult, sw, pl, seg,
                                wd)
        o, p = r0 * rowlen, (r0 + 1) * rowlen
        shared = dh == 1 and r0 % oh + 1 < oh  # one image: windows overlap at strides 1, 2
        if unrolled and kh == 3 and kw == 3:
            if r0 + 1 == rows_out:
                r3 = (rows[0], rows[1], rows[2])
                _row3x3(out, o, ring, r3, off, wf, bt, rowlen, lo, hi, hs)
            elif shared and sh == 1:
                r4 = (rows[0], rows[1], rows[2], rows[5])
                _rows3x3_s1(out, o, p, ring, r4, off, wf, bt, rowlen, lo, hi, hs)
            elif shared and sh == 2:
                r5 = (rows[0], rows[1], rows[2], rows[4], rows[5])
                _rows3x3_s2(out, o, p, ring, r5, off, wf, bt, rowlen, lo, hi, hs)
            else:
                r6 = (rows[0], rows[1], rows[2], rows[3], rows[4], rows[5])
                _rows3x3(out, o, p, ring, r6, off, wf, bt, rowlen, lo, hi, hs)
        elif unrolled and kh == 5 and kw == 5 and shared and sh == 1 and r0 + 1 < rows_out:
            r6 = (rows[0], rows[1], rows[2], rows[3], rows[4], rows[9])
            _rows5x5_s1(out, o, p, ring, r6, off, wf, bt, rowlen, lo, hi, hs)
        else:
            for t in range(min(2, rows_out - r0)):  # one row at a time, no spare row
                if unrolled and kh == 5 and kw == 5:
                    _row5x5(out, o + t * rowlen, ring, rows[t * 5:t * 5 + 5], off, wf, bt,
                            rowlen, lo, hi, hs)
                else:
                    _row_taps(out, o + t * rowlen, ring, rows[t * kh:(t + 1) * kh], off, wf,
                              stride, bt, rowlen, lo, hi, hs)
    return out[:n * oh * rowlen].reshape(n, oh, ow, cm)


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, w, bt, lo, hi, g):
    """See :func:`_depthwise`."""
    return _depthwise(x, w, bt, lo, hi, g, False)


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d_hard_swish(x, w, bt, lo, hi, g):
    """:func:`depthwise_conv_2d`, then HARD_SWISH (:func:`.activations.hard_swish_value`)
    on each result as it is stored: the values a separate HARD_SWISH node computes from
    the stored float32 results, without a second pass over them."""
    return _depthwise(x, w, bt, lo, hi, g, True)


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
