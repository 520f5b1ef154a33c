"""Compiled (numba) float CONV_2D forward as register-tiled GEMMs in BLAS's own order.

NumPy's ``patches @ filter`` (OpenBLAS's SGEMM on x86-64 AVX-512, one K block) computes
each output as: start from +0.0, then one fused multiply-add per ``k = 0 .. K-1`` in
order. :func:`gemm` and :func:`conv_2d` compute exactly that per output (``llvm.fma``
on sixteen lanes, accumulators from +0.0, ``k`` ascending; no fast-math, nothing else
fused) with eight patch rows by thirty-two output channels of accumulators held in
registers, then apply CONV_2D's epilogue — the same float32 operations as
:func:`.conv.bias_activation` and its HARD_SWISH / MUL forms — to each block of rows
while it is in cache, and write the output once. Whether BLAS really sums in that order
for a given GEMM shape is not assumed: :mod:`litetrain.ops.conv_exact` compares the two
bit for bit on that shape before any node uses these kernels.

Patches are those of ``conv_gemm._patch_rows`` (taps row by row, then input channels),
gathered a block of output rows at a time into an L1-sized scratch by the conv family's
``_gather`` (optionally rescaling the input on the way: ``im2col_affine``); a 1×1
stride-1 convolution reads its input rows as the patches. The filter is packed once per
node (:func:`pack`): per sixteen output channels, the ``K`` rows of sixteen values (zeros
past the last channel), so every load of a filter vector is contiguous.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .conv import _gather
from .lanes import lanes_at, masked_store, splat
from .xnnpack import _V16, _VEC16, _fma16, _load16

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_U = np.uint64
# Epilogue modes: bias and clamp only; then HARD_SWISH; then a MUL by a scalar.
PLAIN, HARD_SWISH, SCALE = 0, 1, 2
# Bytes of patch rows one block holds (they stay in the L1/L2 cache across all the
# channel tiles), and the most rows a block of a 1×1 convolution's input takes.
_BLOCK_BYTES = 24 << 10
_MAX_ROWS = 256
_ROWS = 8  # rows of one register tile


@intrinsic
def store_first(typingctx, arr, index, v, width):
    """``arr[index:index + width] = v[:width]`` (``width`` clipped to 0..16) as one masked
    store: no lane past ``width`` is touched."""
    def codegen(context, builder, signature, args):
        ary, index, v, width = args
        masked_store(builder, v, lanes_at(context, builder, signature.args[0], ary, index),
                     width)
        return context.get_dummy_value()
    return types.void(arr, types.intp, _VEC16, types.intp), codegen


@intrinsic
def _finish16(typingctx, v, b, lo, hi, mode, scale):
    """CONV_2D's epilogue on sixteen sums in registers, lane by lane the float32
    operations of :func:`.conv.bias_activation` (``mode`` PLAIN: ``_clamp(v + b, lo,
    hi)``), of ``bias_activation_hard_swish`` (HARD_SWISH: then ``hard_swish_value``) and
    of ``bias_activation_scale`` (SCALE: then ``* scale``). No bias is ``b = -0.0``
    (``v + -0.0`` is ``v``, bit for bit).

    The clamp ``lo if x < lo or (x == lo and hi == inf); else hi if x > hi; else x`` is
    computed as ``max(lo, x)`` (``lo > x ? lo : x``: one ``vmaxps``), plus ``z``, then
    ``min(hi, ·)`` (``hi < t ? hi : t``), where ``z`` is +0.0 for RELU (``lo`` +0.0,
    ``hi`` infinite: a zero ``x`` equals ``lo`` and becomes +0.0) and -0.0 otherwise (an
    identity, NaN included: ``x`` is already the sum's quiet NaN). The same value for
    every ``x`` with the clamps the kernels are given (``lo`` +0.0, -1 or -inf: never
    -0.0), and three vector operations instead of six and a branch."""
    def codegen(context, builder, signature, args):
        v, b, lo, hi, mode, scale = args
        f32 = ir.FloatType()
        lo_v, hi_v = splat(builder, lo), splat(builder, hi)
        x = builder.fadd(v, b)
        x = builder.select(builder.fcmp_ordered(">", lo_v, x), lo_v, x)
        relu = builder.and_(
            builder.fcmp_ordered("==", hi, ir.Constant(f32, float("inf"))),
            builder.icmp_signed("==", builder.bitcast(lo, ir.IntType(32)),
                                ir.Constant(ir.IntType(32), 0)))
        z = builder.select(relu, ir.Constant(f32, 0.0), ir.Constant(f32, -0.0))
        x = builder.fadd(x, splat(builder, z))
        x = builder.select(builder.fcmp_ordered("<", hi_v, x), hi_v, x)
        is_hs = builder.icmp_signed("==", mode, ir.Constant(mode.type, HARD_SWISH))
        is_sc = builder.icmp_signed("==", mode, ir.Constant(mode.type, SCALE))
        with builder.if_else(is_hs) as (then, otherwise):
            with then:
                # hard_swish_value: t = x + 3; t = 0 if t < 0 else (6 if t > 6 else t);
                # x * t / 6
                zero = splat(builder, ir.Constant(f32, 0.0))
                six = splat(builder, ir.Constant(f32, 6.0))
                t = builder.fadd(x, splat(builder, ir.Constant(f32, 3.0)))
                t = builder.select(builder.fcmp_ordered("<", t, zero), zero,
                                   builder.select(builder.fcmp_ordered(">", t, six), six, t))
                swished = builder.fdiv(builder.fmul(x, t), six)
                from_then = builder.block
            with otherwise:
                scaled = builder.select(is_sc, builder.fmul(x, splat(builder, scale)), x)
                from_otherwise = builder.block
        out = builder.phi(_V16)
        out.add_incoming(swished, from_then)
        out.add_incoming(scaled, from_otherwise)
        return out
    return _VEC16(_VEC16, _VEC16, _F32, _F32, types.int64, _F32), codegen


@numba.njit(inline="always", **_JIT)
def _steps(k, r):
    """Offsets of a tile's eight rows (row stride ``k``); past the ``r`` real rows the
    tile repeats the last one (computed, never stored)."""
    return (_U(0), _U(min(1, r - 1)) * k, _U(min(2, r - 1)) * k, _U(min(3, r - 1)) * k,
            _U(min(4, r - 1)) * k, _U(min(5, r - 1)) * k, _U(min(6, r - 1)) * k,
            _U(min(7, r - 1)) * k)


@numba.njit(inline="always", **_JIT)
def _rows32(af, a0, rows, k_all, wf, w0, ks, step, of, o0, o, zero, w_a, w_b, bf, t,
            lo, hi, mode, scale):
    """``rows`` rows from ``af[a0:]`` (row stride ``k_all``) by 32 channels, eight rows a
    register tile: filter tiles at ``wf[w0:]`` and ``wf[w0 + step:]``, ``k``'s sixteen
    values of a tile ``ks`` apart (the layout :func:`pack` chose), outputs at
    ``of[o0:]`` (row stride ``o``; ``w_a``, ``w_b`` valid lanes of each half). One
    function body, so nothing is called (nor any reference counted) per tile."""
    k = _U(k_all)
    wa0 = _U(w0)
    wb0 = wa0 + _U(step)
    ba, bb = _load16(bf, 16 * t), _load16(bf, 16 * t + 16)
    for r0 in range(0, rows, _ROWS):
        r = min(_ROWS, rows - r0)
        s0, s1, s2, s3, s4, s5, s6, s7 = _steps(k, r)
        x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = zero
        y0 = y1 = y2 = y3 = y4 = y5 = y6 = y7 = zero
        a = _U(a0 + r0 * k_all)
        for i in range(k):
            wa = _load16(wf, wa0 + _U(ks) * i)
            wv = _load16(wf, wb0 + _U(ks) * i)
            p = a + i
            v = af[p + s0]
            x0 = _fma16(v, wa, x0)
            y0 = _fma16(v, wv, y0)
            v = af[p + s1]
            x1 = _fma16(v, wa, x1)
            y1 = _fma16(v, wv, y1)
            v = af[p + s2]
            x2 = _fma16(v, wa, x2)
            y2 = _fma16(v, wv, y2)
            v = af[p + s3]
            x3 = _fma16(v, wa, x3)
            y3 = _fma16(v, wv, y3)
            v = af[p + s4]
            x4 = _fma16(v, wa, x4)
            y4 = _fma16(v, wv, y4)
            v = af[p + s5]
            x5 = _fma16(v, wa, x5)
            y5 = _fma16(v, wv, y5)
            v = af[p + s6]
            x6 = _fma16(v, wa, x6)
            y6 = _fma16(v, wv, y6)
            v = af[p + s7]
            x7 = _fma16(v, wa, x7)
            y7 = _fma16(v, wv, y7)
        d = o0 + r0 * o
        store_first(of, d, _finish16(x0, ba, lo, hi, mode, scale), w_a)
        store_first(of, d + 16, _finish16(y0, bb, lo, hi, mode, scale), w_b)
        store_first(of, d + o, _finish16(x1, ba, lo, hi, mode, scale), w_a if r > 1 else 0)
        store_first(of, d + o + 16, _finish16(y1, bb, lo, hi, mode, scale), w_b if r > 1 else 0)
        store_first(of, d + 2 * o, _finish16(x2, ba, lo, hi, mode, scale), w_a if r > 2 else 0)
        store_first(of, d + 2 * o + 16, _finish16(y2, bb, lo, hi, mode, scale),
                     w_b if r > 2 else 0)
        store_first(of, d + 3 * o, _finish16(x3, ba, lo, hi, mode, scale), w_a if r > 3 else 0)
        store_first(of, d + 3 * o + 16, _finish16(y3, bb, lo, hi, mode, scale),
                     w_b if r > 3 else 0)
        store_first(of, d + 4 * o, _finish16(x4, ba, lo, hi, mode, scale), w_a if r > 4 else 0)
        store_first(of, d + 4 * o + 16, _finish16(y4, bb, lo, hi, mode, scale),
                     w_b if r > 4 else 0)
        store_first(of, d + 5 * o, _finish16(x5, ba, lo, hi, mode, scale), w_a if r > 5 else 0)
        store_first(of, d + 5 * o + 16, _finish16(y5, bb, lo, hi, mode, scale),
                     w_b if r > 5 else 0)
        store_first(of, d + 6 * o, _finish16(x6, ba, lo, hi, mode, scale), w_a if r > 6 else 0)
        store_first(of, d + 6 * o + 16, _finish16(y6, bb, lo, hi, mode, scale),
                     w_b if r > 6 else 0)
        store_first(of, d + 7 * o, _finish16(x7, ba, lo, hi, mode, scale), w_a if r > 7 else 0)
        store_first(of, d + 7 * o + 16, _finish16(y7, bb, lo, hi, mode, scale),
                     w_b if r > 7 else 0)


@numba.njit(inline="always", **_JIT)
def _rows16(af, a0, rows, k_all, wf, w0, ks, step, of, o0, o, zero, w_a, bf, t, lo,
            hi, mode, scale):
    """:func:`_rows32` for the last sixteen channels."""
    k = _U(k_all)
    wa0 = _U(w0)
    ba = _load16(bf, 16 * t)
    for r0 in range(0, rows, _ROWS):
        r = min(_ROWS, rows - r0)
        s0, s1, s2, s3, s4, s5, s6, s7 = _steps(k, r)
        x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = zero
        a = _U(a0 + r0 * k_all)
        for i in range(k):
            wa = _load16(wf, wa0 + _U(ks) * i)
            p = a + i
            x0 = _fma16(af[p + s0], wa, x0)
            x1 = _fma16(af[p + s1], wa, x1)
            x2 = _fma16(af[p + s2], wa, x2)
            x3 = _fma16(af[p + s3], wa, x3)
            x4 = _fma16(af[p + s4], wa, x4)
            x5 = _fma16(af[p + s5], wa, x5)
            x6 = _fma16(af[p + s6], wa, x6)
            x7 = _fma16(af[p + s7], wa, x7)
        d = o0 + r0 * o
        store_first(of, d, _finish16(x0, ba, lo, hi, mode, scale), w_a)
        store_first(of, d + o, _finish16(x1, ba, lo, hi, mode, scale), w_a if r > 1 else 0)
        store_first(of, d + 2 * o, _finish16(x2, ba, lo, hi, mode, scale), w_a if r > 2 else 0)
        store_first(of, d + 3 * o, _finish16(x3, ba, lo, hi, mode, scale), w_a if r > 3 else 0)
        store_first(of, d + 4 * o, _finish16(x4, ba, lo, hi, mode, scale), w_a if r > 4 else 0)
        store_first(of, d + 5 * o, _finish16(x5, ba, lo, hi, mode, scale), w_a if r > 5 else 0)
        store_first(of, d + 6 * o, _finish16(x6, ba, lo, hi, mode, scale), w_a if r > 6 else 0)
        store_first(of, d + 7 * o, _finish16(x7, ba, lo, hi, mode, scale), w_a if r > 7 else 0)


@numba.njit(inline="always", **_JIT)
def _tail32(af, a0, r, k_all, wf, w0, ks, step, of, o0, o, zero, w_a, w_b, bf, t, lo,
            hi, mode, scale):
    """:func:`_rows32`'s last ``r`` ≤ 4 rows as one four-row tile (an eight-row one would
    spend twice the multiply-adds on repeated rows)."""
    k = _U(k_all)
    wa0 = _U(w0)
    wb0 = wa0 + _U(step)
    ba, bb = _load16(bf, 16 * t), _load16(bf, 16 * t + 16)
    s0, s1, s2, s3 = _steps(k, r)[:4]
    x0 = x1 = x2 = x3 = y0 = y1 = y2 = y3 = zero
    a = _U(a0)
    for i in range(k):
        wa = _load16(wf, wa0 + _U(ks) * i)
        wv = _load16(wf, wb0 + _U(ks) * i)
        p = a + i
        v = af[p + s0]
        x0 = _fma16(v, wa, x0)
        y0 = _fma16(v, wv, y0)
        v = af[p + s1]
        x1 = _fma16(v, wa, x1)
        y1 = _fma16(v, wv, y1)
        v = af[p + s2]
        x2 = _fma16(v, wa, x2)
        y2 = _fma16(v, wv, y2)
        v = af[p + s3]
        x3 = _fma16(v, wa, x3)
        y3 = _fma16(v, wv, y3)
    store_first(of, o0, _finish16(x0, ba, lo, hi, mode, scale), w_a)
    store_first(of, o0 + 16, _finish16(y0, bb, lo, hi, mode, scale), w_b)
    store_first(of, o0 + o, _finish16(x1, ba, lo, hi, mode, scale), w_a if r > 1 else 0)
    store_first(of, o0 + o + 16, _finish16(y1, bb, lo, hi, mode, scale),
                 w_b if r > 1 else 0)
    store_first(of, o0 + 2 * o, _finish16(x2, ba, lo, hi, mode, scale),
                 w_a if r > 2 else 0)
    store_first(of, o0 + 2 * o + 16, _finish16(y2, bb, lo, hi, mode, scale),
                 w_b if r > 2 else 0)
    store_first(of, o0 + 3 * o, _finish16(x3, ba, lo, hi, mode, scale),
                 w_a if r > 3 else 0)
    store_first(of, o0 + 3 * o + 16, _finish16(y3, bb, lo, hi, mode, scale),
                 w_b if r > 3 else 0)


@numba.njit(inline="always", **_JIT)
def _tail16(af, a0, r, k_all, wf, w0, ks, step, of, o0, o, zero, w_a, bf, t, lo, hi,
            mode, scale):
    """:func:`_tail32` for the last sixteen channels."""
    k = _U(k_all)
    wa0 = _U(w0)
    ba = _load16(bf, 16 * t)
    s0, s1, s2, s3 = _steps(k, r)[:4]
    x0 = x1 = x2 = x3 = zero
    a = _U(a0)
    for i in range(k):
        wa = _load16(wf, wa0 + _U(ks) * i)
        p = a + i
        x0 = _fma16(af[p + s0], wa, x0)
        x1 = _fma16(af[p + s1], wa, x1)
        x2 = _fma16(af[p + s2], wa, x2)
        x3 = _fma16(af[p + s3], wa, x3)
    store_first(of, o0, _finish16(x0, ba, lo, hi, mode, scale), w_a)
    store_first(of, o0 + o, _finish16(x1, ba, lo, hi, mode, scale), w_a if r > 1 else 0)
    store_first(of, o0 + 2 * o, _finish16(x2, ba, lo, hi, mode, scale),
                 w_a if r > 2 else 0)
    store_first(of, o0 + 3 * o, _finish16(x3, ba, lo, hi, mode, scale),
                 w_a if r > 3 else 0)


_FLAT_IN = types.Array(_F32, 1, "C", readonly=True)


@numba.njit([(_FLAT_IN, types.int64, types.int64, types.int64, _F32[::1], _F32[::1],
              types.int64, types.int64, _VEC16, _F32[::1], _F32, _F32, types.int64, _F32)],
            **_JIT)
def _block(af, a0, rows, k_all, wf, of, o0, o, zero, bf, lo, hi, mode, scale):
    """``of[o0 + r * o + c]`` = the epilogue of the sum over ``k`` of ``af[a0 + r * k_all
    + k] * filter[k, c]`` in BLAS's order, for ``r < rows``: channel tiles outer (the
    block's patch rows stay in cache), eight rows a register tile (the last one to four
    rows a four-row tile). Called, not inlined:
    one compiled copy serves both kernels."""
    tiles = (o + 15) // 16
    tail = rows % _ROWS if rows % _ROWS <= 4 else 0  # rows left to a four-row tile
    main = rows - tail
    ta, to = a0 + main * k_all, o0 + main * o
    # The filter's layout (see pack): [k, o] as BLAS reads it when o is a multiple of
    # sixteen, else per sixteen channels [tiles, k * 16].
    ks, step = (o, 16) if o % 16 == 0 else (16, 16 * k_all)
    for t in range(0, tiles, 2):
        w0 = t * step
        w_a = min(16, o - 16 * t)
        if t + 1 < tiles:
            w_b = min(16, o - 16 * (t + 1))
            _rows32(af, a0, main, k_all, wf, w0, ks, step, of, o0 + 16 * t, o, zero, w_a,
                    w_b, bf, t, lo, hi, mode, scale)
            if tail:
                _tail32(af, ta, tail, k_all, wf, w0, ks, step, of, to + 16 * t, o, zero, w_a,
                        w_b, bf, t, lo, hi, mode, scale)
        else:
            _rows16(af, a0, main, k_all, wf, w0, ks, step, of, o0 + 16 * t, o, zero, w_a, bf,
                    t, lo, hi, mode, scale)
            if tail:
                _tail16(af, ta, tail, k_all, wf, w0, ks, step, of, to + 16 * t, o, zero, w_a,
                        bf, t, lo, hi, mode, scale)


@numba.njit(inline="always", **_JIT)
def _rows(k_all):
    """Rows of a block of patch rows ``k_all`` long: a multiple of the tile's rows."""
    rows = _BLOCK_BYTES // (4 * max(1, k_all))
    return max(_ROWS, min(_MAX_ROWS, rows - rows % _ROWS))


# The input typed read-only takes writable arrays too: one compiled form each.
_A2 = [types.Array(_F32, 2, "C", readonly=True)]
_A4 = [types.Array(_F32, 4, "C", readonly=True)]
# packed filter, output, packed bias, lo, hi, mode, scale
_PACKED = (_F32[:, ::1], _F32[:, ::1], _F32[::1], _F32, _F32, types.int64, _F32)


@numba.njit([(a, *_PACKED) for a in _A2], **_JIT)
def pointwise(a, wpack, out, bpack, lo, hi, mode, scale):
    """``out`` [m, o] = CONV_2D's epilogue (bias ``bpack``, clamp to ``[lo, hi]``, then
    per ``mode``) of ``a`` [m, k] times the filter packed as ``wpack`` (:func:`pack`),
    each sum from +0.0 by one fused multiply-add per ``k`` in order (BLAS's order, which
    :mod:`litetrain.ops.conv_exact` checks before adopting): a 1×1 stride-1 CONV_2D on
    its input rows, or any GEMM of patch rows, in one call."""
    m, k_all = a.shape
    o = out.shape[1]
    zero = _load16(np.zeros(16, np.float32), 0)
    rows = _rows(k_all)
    af, of, wf = a.reshape(m * k_all), out.reshape(m * o), wpack.reshape(wpack.size)
    for r0 in range(0, m, rows):
        _block(af, r0 * k_all, min(rows, m - r0), k_all, wf, of, r0 * o, o, zero, bpack,
               lo, hi, mode, scale)


@numba.njit([(x, *_PACKED, *(types.int64,) * 9, types.boolean, _F32, _F32) for x in _A4],
            **_JIT)
def conv_2d(x, wpack, out, bpack, lo, hi, mode, scale, kh, kw, sh, sw, dh, dw, pt, pl, ow,
            affine, mul, add):
    """CONV_2D of ``x`` [n, h, w, ci] into ``out`` [n * oh * ow, o]: per block of output
    rows, the patches into an L1-sized scratch (of ``x * mul + add`` when ``affine``),
    then :func:`pointwise`'s tiles on them, in one call."""
    n, ci = x.shape[0], x.shape[3]
    o = out.shape[1]
    k_all = kh * kw * ci
    oh = out.shape[0] // max(1, n * ow)
    zero = _load16(np.zeros(16, np.float32), 0)
    of, wf = out.reshape(out.size), wpack.reshape(wpack.size)
    lines = max(1, min(oh, _rows(k_all) // max(1, ow)))
    scratch = np.empty((lines * ow, k_all), np.float32)
    sf = scratch.reshape(scratch.size)
    for bi in range(n):
        for y0 in range(0, oh, lines):
            y1 = min(oh, y0 + lines)
            _gather(x, scratch, bi, bi + 1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow,
                    mul, add, affine)
            _block(sf, 0, (y1 - y0) * ow, k_all, wf, of, (bi * oh + y0) * ow * o, o, zero,
                   bpack, lo, hi, mode, scale)


def pack_bias(bias: np.ndarray | None, channels: int) -> np.ndarray:
    """The bias as :func:`pointwise`'s ``bpack``: float32, padded to whole tiles of 32
    (a pair of sixteen-channel tiles reads 32 values); no bias is all -0.0."""
    out = np.full(-(-channels // 32) * 32, -0.0, np.float32)
    if bias is not None:
        out[:channels] = bias
    return out


def pack(gemm_filter: np.ndarray) -> np.ndarray:
    """The GEMM filter ``[k, o]`` as the kernels read it: when ``o`` is a multiple of
    sixteen, that array in C order (a C-order float32 one itself: each ``k``'s sixteen
    values of a channel tile are contiguous there, no second copy of the filter is kept;
    any other, such as a transposed view, a C-order copy); else ``[ceil(o / 16), k *
    16]``, per sixteen output channels each ``k``'s sixteen values (zeros past ``o``)."""
    k, o = gemm_filter.shape
    if o % 16 == 0:
        if (gemm_filter.dtype == np.float32 and gemm_filter.flags.c_contiguous
                and gemm_filter.flags.writeable):
            return gemm_filter
        return np.array(gemm_filter, np.float32, order="C")
    tiles = -(-o // 16)
    padded = np.zeros((k, tiles * 16), np.float32)
    padded[:, :o] = gemm_filter
    return np.ascontiguousarray(padded.reshape(k, tiles, 16).transpose(1, 0, 2)
                                ).reshape(tiles, k * 16)


# Output pixels of one register tile of the direct-read kernel.
_PIXELS = 8


@numba.njit(inline="always", **_JIT)
def _direct16(pf, p0, offs, k_all, wf, w0, ks, of, o0, o, zero, w_a, bf, t, lo, hi, mode,
              scale, count, step):
    """``count`` output pixels of one output row by the sixteen channels of filter tile
    ``t``, eight pixels a register tile: pixel ``q``'s patch value ``i`` is
    ``pf[p0 + q * step + offs[i]]`` (the padded image read in place: no patch rows),
    filter vectors at ``wf[w0 + ks * i]``, outputs at ``of[o0 + q * o]``. Each sum is
    :func:`_rows16`'s: from +0.0, one fused multiply-add per ``i`` in order."""
    ba = _load16(bf, 16 * t)
    wa0 = _U(w0)
    for q0 in range(0, count, _PIXELS):
        r = min(_PIXELS, count - q0)
        s0, s1, s2, s3, s4, s5, s6, s7 = _steps(_U(step), r)
        x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = zero
        a = _U(p0 + q0 * step)
        for i in range(k_all):
            wa = _load16(wf, wa0 + _U(ks) * i)
            p = a + offs[i]
            x0 = _fma16(pf[p + s0], wa, x0)
            x1 = _fma16(pf[p + s1], wa, x1)
            x2 = _fma16(pf[p + s2], wa, x2)
            x3 = _fma16(pf[p + s3], wa, x3)
            x4 = _fma16(pf[p + s4], wa, x4)
            x5 = _fma16(pf[p + s5], wa, x5)
            x6 = _fma16(pf[p + s6], wa, x6)
            x7 = _fma16(pf[p + s7], wa, x7)
        d = o0 + q0 * o
        store_first(of, d, _finish16(x0, ba, lo, hi, mode, scale), w_a)
        store_first(of, d + o, _finish16(x1, ba, lo, hi, mode, scale), w_a if r > 1 else 0)
        store_first(of, d + 2 * o, _finish16(x2, ba, lo, hi, mode, scale), w_a if r > 2 else 0)
        store_first(of, d + 3 * o, _finish16(x3, ba, lo, hi, mode, scale), w_a if r > 3 else 0)
        store_first(of, d + 4 * o, _finish16(x4, ba, lo, hi, mode, scale), w_a if r > 4 else 0)
        store_first(of, d + 5 * o, _finish16(x5, ba, lo, hi, mode, scale), w_a if r > 5 else 0)
        store_first(of, d + 6 * o, _finish16(x6, ba, lo, hi, mode, scale), w_a if r > 6 else 0)
        store_first(of, d + 7 * o, _finish16(x7, ba, lo, hi, mode, scale), w_a if r > 7 else 0)


@numba.njit([(x, *_PACKED, *(types.int64,) * 9, types.boolean, _F32, _F32) for x in _A4],
            **_JIT)
def conv_2d_direct(x, wpack, out, bpack, lo, hi, mode, scale, kh, kw, sh, sw, dh, dw, pt,
                   pl, ow, affine, mul, add):
    """:func:`conv_2d` (same arguments, same bits) without patch rows: each image is
    copied once (as ``x * mul + add`` when ``affine``) into a zero-padded image buffer,
    and each register tile reads its pixels' patch values straight from there at a fixed
    stride — the values the patch rows hold (padding +0.0), multiplied and added in the
    same order. For few input channels, whose patch rows are gathered in short runs."""
    n, h, wd, c = x.shape
    o = out.shape[1]
    k_all = kh * kw * c
    oh = out.shape[0] // max(1, n * ow)
    hp, wp = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    rowlen = wp * c
    pf = np.zeros(hp * rowlen, np.float32)  # the padding stays +0.0
    offs = np.empty(k_all, np.uint64)
    for i in range(kh):
        for j in range(kw):
            for ch in range(c):
                offs[(i * kw + j) * c + ch] = i * dh * rowlen + j * dw * c + ch
    zero = _load16(np.zeros(16, np.float32), 0)
    of, wf, xf = out.reshape(out.size), wpack.reshape(wpack.size), x.reshape(x.size)
    ks, step = (o, 16) if o % 16 == 0 else (16, 16 * k_all)
    iy0, iy1 = max(0, -pt), min(h, hp - pt)  # input rows and columns inside the buffer
    ix0, ix1 = max(0, -pl), min(wd, wp - pl)
    run = max(0, ix1 - ix0) * c
    for bi in range(n):
        for iy in range(iy0, iy1):
            src = _U(((bi * h + iy) * wd + ix0) * c)
            dst = _U((iy + pt) * rowlen + (ix0 + pl) * c)
            if affine:
                for q in range(_U(run)):
                    pf[dst + q] = xf[src + q] * mul + add
            else:
                for q in range(_U(run)):
                    pf[dst + q] = xf[src + q]
        for oy in range(oh):
            for t in range((o + 15) // 16):
                _direct16(pf, oy * sh * rowlen, offs, k_all, wf, t * step, ks, of,
                          (bi * oh + oy) * ow * o + 16 * t, o, zero, min(16, o - 16 * t),
                          bpack, t, lo, hi, mode, scale, ow, sw * c)
