"""Compiled (numba) forms of the XNNPACK-order float kernels in :mod:`..xnnpack_float`.

Each computes exactly what its NumPy form does: the same float32 operations in the same
order. The fused multiply-adds call LLVM's ``llvm.fma.f32`` (one rounding of ``a * b +
c``, as the NumPy form's round-to-odd emulation); nothing else is fused (no fast-math, so
LLVM contracts no other product and sum). Loops run over output channels innermost, each
output's chain of fused multiply-adds in the NumPy form's tap order, so LLVM can
vectorise across channels without reordering any sum.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_SIXTH = np.float32(float.fromhex("0x1.555556p-3"))


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (float32)."""
    sig = _F32(_F32, _F32, _F32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32],
                                              ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, args)
    return sig, codegen


def _arrays(*ndims):
    """Signatures: C-contiguous float32 arrays of these ranks, each input (all but the
    last, written) read-only or not."""
    *ins, last = ndims
    return [(*(types.Array(_F32, n, "C", readonly=ro) for n, ro in zip(ins, flags, strict=True)),
             types.Array(_F32, last, "C")) for flags in itertools.product((False, True),
                                                                         repeat=len(ins))]


_BLOCK = 128  # output pixels a pass: their patches and sums stay in the L1 cache
_INTS = (types.intp,) * 10  # kh, kw, stride_h, stride_w, dilation_h, dilation_w,
#                             pad_top, pad_left, out_h, out_w


@numba.njit(inline="always", **_JIT)
def _clamp(v, lo, hi):
    """XNNPACK's ``max(v, lo)`` then ``min(v, hi)`` (NaN and signed zeros kept, as NumPy's
    ``maximum``/``minimum`` keep them)."""
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


@numba.njit([(x, w, b, _F32, _F32, *_INTS) for x, w, b in
             itertools.product(*[[types.Array(_F32, n, "C", readonly=ro) for ro in
                                  (False, True)] for n in (4, 2, 1)])], **_JIT)
def conv(x, wt, bias, lo, hi, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """CONV_2D of ``x`` [n, h, w, ci] with ``wt`` [kh * kw * ci, o] (the filter, taps row
    by row then input channels, output channels last) and ``bias`` [o]: per output, the
    bias, then one fused multiply-add per tap and input channel in that order (taps in
    the padding multiply zeros, as XNNPACK's zero buffer and the NumPy form's padded
    copy), then the clamp to ``[lo, hi]``. Output pixels go in blocks, their patches
    transposed so each fused multiply-add runs along a block."""
    n, h, w, ci = x.shape
    k_all, o = wt.shape
    pixels = n * oh * ow
    out = np.empty((pixels, o), np.float32)
    patch = np.empty((k_all, _BLOCK), np.float32)
    acc = np.empty((o, _BLOCK), np.float32)
    zero = np.float32(0.0)
    for p0 in range(0, pixels, _BLOCK):
        pb = min(_BLOCK, pixels - p0)
        for q in range(pb):
            b, r = divmod(p0 + q, oh * ow)
            oy, ox = divmod(r, ow)
            k = 0
            for ky in range(kh):
                iy = oy * sh + ky * dh - pt
                for kx in range(kw):
                    ix = ox * sw + kx * dw - pl
                    if 0 <= iy < h and 0 <= ix < w:
                        src = x[b, iy, ix]
                        for c in range(ci):
                            patch[k + c, q] = src[c]
                    else:
                        for c in range(ci):
                            patch[k + c, q] = zero
                    k += ci
        for j in range(o):
            a = acc[j]
            bj = bias[j]
            for q in range(pb):
                a[q] = bj
        full = k_all - k_all % 4
        for k in range(0, full, 4):  # four taps a pass over the block, still in order
            s0, s1, s2, s3 = patch[k], patch[k + 1], patch[k + 2], patch[k + 3]
            for j in range(o):
                a = acc[j]
                w0, w1, w2, w3 = wt[k, j], wt[k + 1, j], wt[k + 2, j], wt[k + 3, j]
                for q in range(pb):
                    a[q] = _fma(s3[q], w3, _fma(s2[q], w2, _fma(s1[q], w1,
                                                                _fma(s0[q], w0, a[q]))))
        for k in range(full, k_all):
            src = patch[k]
            wk = wt[k]
            for j in range(o):
                a = acc[j]
                wv = wk[j]
                for q in range(pb):
                    a[q] = _fma(src[q], wv, a[q])
        for q in range(pb):
            dst = out[p0 + q]
            for j in range(o):
                dst[j] = _clamp(acc[j, q], lo, hi)
    return out.reshape(n, oh, ow, o)


@numba.njit([(x, w, b, _F32, _F32, *_INTS) for x, w, b in
             itertools.product(*[[types.Array(_F32, n, "C", readonly=ro) for ro in
                                  (False, True)] for n in (4, 3, 1)])], **_JIT)
def depthwise(x, wt, bias, lo, hi, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """DEPTHWISE_CONV_2D (depth multiplier 1) of ``x`` [n, h, w, c] with ``wt`` [kh, kw,
    c] and ``bias`` [c]: per output, the bias, then one fused multiply-add per tap, taps
    column by column (XNNPACK's dwconv order; taps in the padding multiply zeros), then
    the clamp. An output row at a time: each tap one pass along it."""
    n, h, w, c = x.shape
    out = np.empty((n, oh, ow, c), np.float32)
    zero = np.float32(0.0)
    for b in range(n):
        for oy in range(oh):
            row = out[b, oy]
            for ox in range(ow):
                dst = row[ox]
                for k in range(c):
                    dst[k] = bias[k]
            for kx in range(kw):
                for ky in range(kh):
                    iy = oy * sh + ky * dh - pt
                    wk = wt[ky, kx]
                    for ox in range(ow):
                        ix = ox * sw + kx * dw - pl
                        dst = row[ox]
                        if 0 <= iy < h and 0 <= ix < w:
                            src = x[b, iy, ix]
                            for k in range(c):
                                dst[k] = _fma(src[k], wk[k], dst[k])
                        else:
                            for k in range(c):
                                dst[k] = _fma(zero, wk[k], dst[k])
            for ox in range(ow):
                dst = row[ox]
                for k in range(c):
                    dst[k] = _clamp(dst[k], lo, hi)
    return out


@numba.njit([(types.Array(_F32, 1, "C", readonly=ro), _F32[::1]) for ro in (False, True)],
            **_JIT)
def hard_swish(x, out):
    """``out[:] = min(max(fma(x, 0x1.555556p-3, 0.5), 0), 1) * x`` (NaN stays NaN, as
    NumPy's maximum/minimum keep it)."""
    half, zero, one = np.float32(0.5), np.float32(0.0), np.float32(1.0)
    for k in range(x.size):
        v = x[k]
        t = _fma(v, _SIXTH, half)
        if t < zero:
            t = zero
        elif t > one:
            t = one
        out[k] = t * v
    return out


@numba.njit([(types.Array(_F32, 4, "C", readonly=ro),) for ro in (False, True)], **_JIT)
def mean_hw(x):
    """``[n, c]``: the mean of ``x`` [n, h, w, c] over ``h * w > 0`` pixels in XNNPACK's
    global average pooling order (seven pixels a pass, zeros past the last:
    :func:`..xnnpack_float._gavgpool`)."""
    n, h, w, c = x.shape
    pixels = h * w
    padded = max(7, -(-pixels // 7) * 7)
    rows = np.zeros((n, padded, c), np.float32)
    rows[:, :pixels] = x.reshape(n, pixels, c)
    out = np.empty((n, c), np.float32)
    scale = np.float32(1.0) / np.float32(pixels)
    for b in range(n):
        r = rows[b]
        total = out[b]
        for k in range(c):
            total[k] = ((r[0, k] + r[1, k]) + r[6, k]) + ((r[2, k] + r[3, k])
                                                        + (r[4, k] + r[5, k]))
        for s in range(7, pixels, 7):
            for k in range(c):
                total[k] = (((r[s, k] + r[s + 1, k]) + (r[s + 2, k] + r[s + 3, k]))
                            + ((r[s + 4, k] + r[s + 5, k]) + (r[s + 6, k] + total[k])))
        for k in range(c):
            v = total[k] * scale
            total[k] = v if v > -np.inf else -np.inf  # max(mean, -inf): NaN becomes -inf
    return out
