"""Compiled (numba) forms of the XNNPACK-order float kernels in :mod:`..xnnpack_float`.

Each computes exactly what its NumPy form does: the same float32 operations in the same
order. The fused multiply-adds call LLVM's ``llvm.fma.f32`` (one rounding of ``a * b +
c``, as the NumPy form's round-to-odd emulation); nothing else is fused (no fast-math, so
LLVM contracts no other product and sum). Each output's chain of fused multiply-adds runs
in the NumPy form's tap order; only independent outputs go side by side:

* :func:`conv`: XNNPACK's own microkernel shape — four output pixels by sixteen output
  channels of accumulators held in registers (:class:`Vec16`, LLVM's ``<16 x float>``,
  with ``llvm.fma.v16f32``), the filter packed per sixteen channels at prepare;
* :func:`conv_direct`: the same sums for few input channels (a network's stem) read in
  place from a padded copy of each image, eight output pixels by sixteen channels a
  register tile, with a fused input rescaling and HARD_SWISH (chosen per geometry after a
  bit check: :func:`litetrain.ops.conv_exact.xnnpack_direct_proven`);
* :func:`depthwise`: sixteen channels of four output pixels at a time in registers;
* :func:`hard_swish`, :func:`mean_hw`: one pass each.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from .lanes import V16, lanes_at, masked_load, masked_store, splat

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


_V16 = V16


class Vec16(types.Type):
    """Sixteen float32 lanes held in a register (LLVM's ``<16 x float>``): the
    accumulators of the CONV_2D tile kernel, as XNNPACK's own."""

    def __init__(self):
        super().__init__(name="Vec16f32")


_VEC16 = Vec16()


@register_model(Vec16)
class _Vec16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _V16)


@intrinsic
def _load16(typingctx, arr, index):
    """``arr[index:index + 16]`` (a 1-D float32 array; the caller keeps it in bounds)."""
    def codegen(context, builder, signature, args):
        return builder.load(lanes_at(context, builder, signature.args[0], *args), align=4)
    return _VEC16(arr, types.intp), codegen


@intrinsic
def _store16(typingctx, arr, index, v):
    """``arr[index:index + 16] = v``."""
    def codegen(context, builder, signature, args):
        builder.store(args[2], lanes_at(context, builder, signature.args[0], *args[:2]),
                      align=4)
        return context.get_dummy_value()
    return types.void(arr, types.intp, _VEC16), codegen


@intrinsic
def _load16m(typingctx, arr, index, n):
    """``arr[index:index + n]`` in the first ``n <= 16`` lanes, zeros in the others
    (nothing past them is read: ``llvm.masked.load``)."""
    def codegen(context, builder, signature, args):
        ptr = lanes_at(context, builder, signature.args[0], *args[:2])
        return masked_load(builder, ptr, args[2])
    return _VEC16(arr, types.intp, types.intp), codegen


@intrinsic
def _store16m(typingctx, arr, index, v, n):
    """``arr[index:index + n] = v[:n]`` (nothing past them is written)."""
    def codegen(context, builder, signature, args):
        masked_store(builder, args[2], lanes_at(context, builder, signature.args[0],
                                                *args[:2]), args[3])
        return context.get_dummy_value()
    return types.void(arr, types.intp, _VEC16, types.intp), codegen


@intrinsic
def _fma16(typingctx, x, w, acc):
    """``x * w + acc`` per lane (``x`` a float32 broadcast), one rounding each."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16] * 3),
                                            "llvm.fma.v16f32")
        return builder.call(fn, [splat(builder, args[0]), args[1], args[2]])
    return _VEC16(_F32, _VEC16, _VEC16), codegen


@intrinsic
def _fma16v(typingctx, x, w, acc):
    """``x * w + acc`` per lane (three vectors), one rounding each."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16] * 3),
                                            "llvm.fma.v16f32")
        return builder.call(fn, list(args))
    return _VEC16(_VEC16, _VEC16, _VEC16), codegen


@intrinsic
def _add16(typingctx, a, b):
    """``a + b`` per lane."""
    def codegen(context, builder, signature, args):
        return builder.fadd(*args)
    return _VEC16(_VEC16, _VEC16), codegen


@intrinsic
def _mul16(typingctx, a, b):
    """``a * b`` per lane."""
    def codegen(context, builder, signature, args):
        return builder.fmul(*args)
    return _VEC16(_VEC16, _VEC16), codegen


@intrinsic
def _clip16(typingctx, v, lo, hi):
    """The float kernels' clamp (``fast.conv._clamp``: ``np.clip``'s values and signs,
    -0.0 becoming +0.0 under RELU, ``lo == 0, hi == inf``) per lane."""
    def codegen(context, builder, signature, args):
        v, lo_s, hi_s = args
        lo, hi = splat(builder, lo_s), splat(builder, hi_s)
        relu = builder.fcmp_ordered("==", hi_s, ir.Constant(ir.FloatType(), float("inf")))
        low = builder.or_(builder.fcmp_ordered("<", v, lo),
                          builder.and_(builder.fcmp_ordered("==", v, lo),
                                       splat(builder, relu)))
        v = builder.select(builder.fcmp_ordered(">", v, hi), hi, v)
        return builder.select(low, lo, v)
    return _VEC16(_VEC16, _F32, _F32), codegen


@intrinsic
def _hard_swish16(typingctx, v):
    """:func:`hard_swish_value` per lane: ``fma(v, 0x1.555556p-3, 0.5)``, below 0 -> 0,
    else above 1 -> 1 (NaN stays NaN), times ``v``."""
    def codegen(context, builder, signature, args):
        (v,) = args
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16] * 3),
                                            "llvm.fma.v16f32")
        t = builder.call(fn, [v, splat(builder, ir.Constant(f32, float(_SIXTH))),
                              splat(builder, ir.Constant(f32, 0.5))])
        zero, one = splat(builder, ir.Constant(f32, 0.0)), splat(builder, ir.Constant(f32, 1.0))
        t = builder.select(builder.fcmp_ordered("<", t, zero), zero,
                           builder.select(builder.fcmp_ordered(">", t, one), one, t))
        return builder.fmul(t, v)
    return _VEC16(_VEC16), codegen


@intrinsic
def _clamp16(typingctx, v, lo, hi):
    """XNNPACK's ``max(lo, v)`` then ``min(hi, v)`` per lane: ``lo > v ? lo : v``, then
    ``hi < v ? hi : v`` (NaN and zeros equal to a bound keep ``v``)."""
    def codegen(context, builder, signature, args):
        v, lo, hi = args[0], splat(builder, args[1]), splat(builder, args[2])
        v = builder.select(builder.fcmp_ordered(">", lo, v), lo, v)
        return builder.select(builder.fcmp_ordered("<", hi, v), hi, v)
    return _VEC16(_VEC16, _F32, _F32), codegen


# The input may be read-only (a constant, a caller's array); the packed filters and biases
# are the settings' own, writable.
_INPUTS = [functools.partial(types.Array, _F32, layout="C", readonly=ro) for ro in (False, True)]


_BLOCK = 128  # patches gathered at a time (in the L1 cache)
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


@numba.njit(inline="always", **_JIT)
def _tiles(patch, rows, wpack, bpack, lo, hi, out, row0, scratch):
    """``out[row0 + r]`` for ``r < rows``: the bias, then per patch value ``k`` in order
    one fused multiply-add with the filter row ``k``, then the clamp; four rows by sixteen
    output channels a tile, their sums in registers (XNNPACK's microkernel shape)."""
    k_all = patch.shape[1]
    o = out.shape[1]
    tiles = wpack.shape[0]
    for t in range(tiles):
        wt = wpack[t]
        b0 = bpack[t * 16:t * 16 + 16]
        width = min(16, o - t * 16)
        for r in range(0, rows - rows % 4, 4):
            p0, p1, p2, p3 = patch[r], patch[r + 1], patch[r + 2], patch[r + 3]
            a0 = _load16(b0, 0)
            a1, a2, a3 = a0, a0, a0
            for k in range(k_all):
                wv = _load16(wt, k * 16)
                a0 = _fma16(p0[k], wv, a0)
                a1 = _fma16(p1[k], wv, a1)
                a2 = _fma16(p2[k], wv, a2)
                a3 = _fma16(p3[k], wv, a3)
            _put16(out, row0 + r, t, width, _clamp16(a0, lo, hi), scratch)
            _put16(out, row0 + r + 1, t, width, _clamp16(a1, lo, hi), scratch)
            _put16(out, row0 + r + 2, t, width, _clamp16(a2, lo, hi), scratch)
            _put16(out, row0 + r + 3, t, width, _clamp16(a3, lo, hi), scratch)
        for r in range(rows - rows % 4, rows):
            pr = patch[r]
            a0 = _load16(b0, 0)
            for k in range(k_all):
                a0 = _fma16(pr[k], _load16(wt, k * 16), a0)
            _put16(out, row0 + r, t, width, _clamp16(a0, lo, hi), scratch)


@numba.njit(inline="always", **_JIT)
def _put16(out, row, t, width, v, scratch):
    """The first ``width`` lanes of ``v`` into ``out[row, 16 t:]`` (a masked store past
    the last channel; ``scratch`` is unused)."""
    if width == 16:
        _store16(out[row], t * 16, v)
    else:
        _store16m(out[row], t * 16, v, width)


@numba.njit([(_F32[:, ::1], _F32[:, ::1], _F32[::1], _F32, _F32, _F32[:, ::1])], **_JIT)
def conv_patches(patch, wpack, bpack, lo, hi, out):
    """``out`` [rows, o] from gathered patch rows ``patch`` [rows, kh * kw * ci] (the
    values :func:`conv` gathers, in its order): the same sums as :func:`conv`, for
    patches gathered elsewhere (the conv family's ``im2col``)."""
    scratch = np.empty(16, np.float32)
    _tiles(patch, patch.shape[0], wpack, bpack, lo, hi, out, 0, scratch)


@numba.njit([(_input(4), _F32[:, ::1], _F32[::1], types.intp, _F32, _F32, *_INTS)
             for _input in _INPUTS], **_JIT)
def conv(x, wpack, bpack, o, lo, hi, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """CONV_2D of ``x`` [n, h, w, ci] with the filter packed as ``wpack`` [ceil(o / 16),
    kh * kw * ci * 16] (per sixteen output channels, the patch values in order: taps row
    by row, then input channels; zeros past ``o``) and the bias as ``bpack``: per output,
    the bias, then one fused multiply-add per tap and input channel in that order (taps
    in the padding multiply zeros, as XNNPACK's zero buffer and the NumPy form's padded
    copy), then the clamp to ``[lo, hi]``. A 1×1 stride-1 convolution reads its input as
    the patches; others gather ``_BLOCK`` patches at a time (a row of taps inside the
    input, undilated, as one contiguous run)."""
    n, h, w, ci = x.shape
    k_all = kh * kw * ci
    pixels = n * oh * ow
    out = np.empty((pixels, o), np.float32)
    scratch = np.empty(16, np.float32)
    if kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and oh == h \
            and ow == w:
        _tiles(x.reshape(pixels, ci), pixels, wpack, bpack, lo, hi, out, 0, scratch)
        return out.reshape(n, oh, ow, o)
    patch = np.empty((_BLOCK, k_all), np.float32)
    xf = x.reshape(-1)
    zero = np.float32(0.0)
    for p0 in range(0, pixels, _BLOCK):
        rows = min(_BLOCK, pixels - p0)
        for q in range(rows):
            b, r = divmod(p0 + q, oh * ow)
            oy, ox = divmod(r, ow)
            dst = patch[q]
            x0 = ox * sw - pl
            run = dw == 1 and x0 >= 0 and x0 + kw <= w  # the taps of a row: one run
            k = 0
            for ky in range(kh):
                iy = oy * sh + ky * dh - pt
                if run and 0 <= iy < h:
                    src = xf[((b * h + iy) * w + x0) * ci:((b * h + iy) * w + x0 + kw) * ci]
                    for t in range(kw * ci):
                        dst[k + t] = src[t]
                    k += kw * ci
                    continue
                for kx in range(kw):
                    ix = x0 + kx * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        src = x[b, iy, ix]
                        for c in range(ci):
                            dst[k + c] = src[c]
                    else:
                        for c in range(ci):
                            dst[k + c] = zero
                    k += ci
        _tiles(patch, rows, wpack, bpack, lo, hi, out, p0, scratch)
    return out.reshape(n, oh, ow, o)


# Output pixels of one register tile of :func:`conv_direct`.
_PIXELS = 8
_U = np.uint64


@numba.njit(inline="always", **_JIT)
def _out16(v, lo, hi, swish):
    """XNNPACK's clamp of sixteen sums, then (``swish``) its HARD_SWISH."""
    v = _clamp16(v, lo, hi)
    if swish:
        v = _hard_swish16(v)
    return v


@numba.njit([(_INPUTS[1](4), _F32[:, ::1], _F32[::1], types.intp, _F32, _F32, types.boolean,
              types.boolean, _F32, _F32, *_INTS)], **_JIT)  # (read-only takes writable too)
def conv_direct(x, wpack, bpack, o, lo, hi, swish, affine, mul, add, kh, kw, sh, sw, dh,
                dw, pt, pl, oh, ow):
    """:func:`conv` (same filter and bias layout, same sums: each output from its bias,
    one fused multiply-add per patch value in order, taps in the padding multiplying
    +0.0) reading the patch values in place: each image is copied once (as ``x * mul +
    add``, two roundings, when ``affine``: a fused input rescaling) into a zero-padded
    buffer, and each register tile of eight output pixels by sixteen channels reads its
    pixels' values from there at a fixed stride (``fast.gemm.conv_2d_direct``'s scheme,
    XNNPACK's order). Then the clamp and (``swish``) XNNPACK's HARD_SWISH as the tile is
    stored. For few input channels, whose patch rows are gathered in short runs."""
    n, h, wd, c = x.shape
    k_all = kh * kw * c
    hp, wp = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    rowlen = wp * c
    pf = np.zeros(hp * rowlen, np.float32)  # the padding stays +0.0
    offs = np.empty(k_all, np.uint64)
    for i in range(kh):
        for j in range(kw):
            for ch in range(c):
                offs[(i * kw + j) * c + ch] = i * dh * rowlen + j * dw * c + ch
    out = np.empty((n, oh, ow, o), np.float32)
    of, wf, xf = out.reshape(out.size), wpack.reshape(wpack.size), x.reshape(x.size)
    iy0, iy1 = max(0, -pt), min(h, hp - pt)  # input rows and columns inside the buffer
    ix0, ix1 = max(0, -pl), min(wd, wp - pl)
    run = max(0, ix1 - ix0) * c
    step = _U(sw * c)
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
            for t in range(wpack.shape[0]):
                width = min(16, o - 16 * t)
                bv = _load16(bpack, 16 * t)
                w0 = _U(t * 16 * k_all)
                for q0 in range(0, ow, _PIXELS):
                    r = min(_PIXELS, ow - q0)
                    # past the r real pixels the tile repeats the last (never stored)
                    s1, s2, s3 = _U(min(1, r - 1)) * step, _U(min(2, r - 1)) * step, \
                        _U(min(3, r - 1)) * step
                    s4, s5, s6 = _U(min(4, r - 1)) * step, _U(min(5, r - 1)) * step, \
                        _U(min(6, r - 1)) * step
                    s7 = _U(min(7, r - 1)) * step
                    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = bv
                    a = _U(oy * sh * rowlen) + _U(q0) * step
                    for i in range(_U(k_all)):
                        wv = _load16(wf, w0 + _U(16) * i)
                        p = a + offs[i]
                        a0 = _fma16(pf[p], wv, a0)
                        a1 = _fma16(pf[p + s1], wv, a1)
                        a2 = _fma16(pf[p + s2], wv, a2)
                        a3 = _fma16(pf[p + s3], wv, a3)
                        a4 = _fma16(pf[p + s4], wv, a4)
                        a5 = _fma16(pf[p + s5], wv, a5)
                        a6 = _fma16(pf[p + s6], wv, a6)
                        a7 = _fma16(pf[p + s7], wv, a7)
                    d = ((bi * oh + oy) * ow + q0) * o + 16 * t
                    _store16m(of, d, _out16(a0, lo, hi, swish), width)
                    _store16m(of, d + o, _out16(a1, lo, hi, swish), width if r > 1 else 0)
                    _store16m(of, d + 2 * o, _out16(a2, lo, hi, swish), width if r > 2 else 0)
                    _store16m(of, d + 3 * o, _out16(a3, lo, hi, swish), width if r > 3 else 0)
                    _store16m(of, d + 4 * o, _out16(a4, lo, hi, swish), width if r > 4 else 0)
                    _store16m(of, d + 5 * o, _out16(a5, lo, hi, swish), width if r > 5 else 0)
                    _store16m(of, d + 6 * o, _out16(a6, lo, hi, swish), width if r > 6 else 0)
                    _store16m(of, d + 7 * o, _out16(a7, lo, hi, swish), width if r > 7 else 0)
    return out


@numba.njit(inline="always", **_JIT)
def _tap16(xf, offset, inside, m, zero):
    """``m`` input channels at ``offset`` (zeros in the other lanes), or zeros for a tap
    in the padding."""
    return _load16m(xf, offset, m) if inside else zero


@numba.njit([(_input(4), _F32[:, :, ::1], _F32[::1], _F32, _F32, *_INTS)
             for _input in _INPUTS], **_JIT)
def depthwise(x, wt, bias, lo, hi, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """DEPTHWISE_CONV_2D (depth multiplier 1) of ``x`` [n, h, w, c] with ``wt`` [kh, kw,
    c] and ``bias`` [c]: per output, the bias, then one fused multiply-add per tap, taps
    column by column (XNNPACK's dwconv order; taps in the padding multiply zeros), then
    the clamp. Sixteen channels (fewer at the end: masked lanes) of four output pixels at
    a time in registers (four independent chains), then the remaining pixels one by one."""
    n, h, w, c = x.shape
    out = np.empty((n, oh, ow, c), np.float32)
    xf, wf, of = x.reshape(-1), wt.reshape(-1), out.reshape(-1)
    z = _load16(np.zeros(16, np.float32), 0)
    ow4 = ow - ow % 4
    for b in range(n):
        for oy in range(oh):
            for c0 in range(0, c, 16):
                m = min(16, c - c0)
                bv = _load16m(bias, c0, m)
                for ox in range(0, ow4, 4):
                    a0, a1, a2, a3 = bv, bv, bv, bv
                    for kx in range(kw):
                        i0 = ox * sw + kx * dw - pl
                        i1, i2, i3 = i0 + sw, i0 + 2 * sw, i0 + 3 * sw
                        for ky in range(kh):
                            iy = oy * sh + ky * dh - pt
                            wv = _load16m(wf, (ky * kw + kx) * c + c0, m)
                            row, inside = (b * h + iy) * w, 0 <= iy < h
                            a0 = _fma16v(_tap16(xf, (row + i0) * c + c0,
                                                inside and 0 <= i0 < w, m, z), wv, a0)
                            a1 = _fma16v(_tap16(xf, (row + i1) * c + c0,
                                                inside and 0 <= i1 < w, m, z), wv, a1)
                            a2 = _fma16v(_tap16(xf, (row + i2) * c + c0,
                                                inside and 0 <= i2 < w, m, z), wv, a2)
                            a3 = _fma16v(_tap16(xf, (row + i3) * c + c0,
                                                inside and 0 <= i3 < w, m, z), wv, a3)
                    at = ((b * oh + oy) * ow + ox) * c + c0
                    _store16m(of, at, _clamp16(a0, lo, hi), m)
                    _store16m(of, at + c, _clamp16(a1, lo, hi), m)
                    _store16m(of, at + 2 * c, _clamp16(a2, lo, hi), m)
                    _store16m(of, at + 3 * c, _clamp16(a3, lo, hi), m)
                for ox in range(ow4, ow):
                    a0 = bv
                    for kx in range(kw):
                        ix = ox * sw + kx * dw - pl
                        for ky in range(kh):
                            iy = oy * sh + ky * dh - pt
                            a0 = _fma16v(_tap16(xf, ((b * h + iy) * w + ix) * c + c0,
                                                0 <= iy < h and 0 <= ix < w, m, z),
                                         _load16m(wf, (ky * kw + kx) * c + c0, m), a0)
                    _store16m(of, ((b * oh + oy) * ow + ox) * c + c0, _clamp16(a0, lo, hi),
                              m)
    return out


@numba.njit(inline="always", **_JIT)
def hard_swish_value(v):
    """XNNPACK's f32 vhswish of one float32: ``min(max(fma(v, 0x1.555556p-3, 0.5), 0), 1)
    * v`` (NaN stays NaN); also what the hybrid kernels fuse after their epilogue."""
    t = _fma(v, _SIXTH, np.float32(0.5))
    if t < np.float32(0.0):
        t = np.float32(0.0)
    elif t > np.float32(1.0):
        t = np.float32(1.0)
    return t * v


@numba.njit([(types.Array(_F32, 1, "C", readonly=ro), _F32[::1]) for ro in (False, True)],
            **_JIT)
def hard_swish(x, out):
    """``out[:] = min(max(fma(x, 0x1.555556p-3, 0.5), 0), 1) * x`` (NaN stays NaN, as
    NumPy's maximum/minimum keep it)."""
    for k in range(x.size):
        out[k] = hard_swish_value(x[k])
    return out



@numba.njit(inline="always", **_JIT)
def _px(r, k, ch, pixels):
    """Pixel ``k``'s value of channel ``ch``, zero past the last pixel."""
    return r[k, ch] if k < pixels else np.float32(0.0)


@numba.njit([(types.Array(_F32, 4, "C", readonly=ro), _F32[:, ::1]) for ro in (False, True)],
            **_JIT)
def mean_hw(x, out):
    """``out`` [n, c]: the mean of ``x`` [n, h, w, c] over ``h * w > 0`` pixels in XNNPACK's
    global average pooling order (seven pixels a pass, zeros past the last:
    :func:`..xnnpack_float._gavgpool`); whole passes read the pixels unchecked."""
    n, h, w, c = x.shape
    pixels = h * w
    scale = np.float32(1.0) / np.float32(pixels)
    for b in range(n):
        r = x[b].reshape((pixels, c))
        total = out[b]
        if pixels >= 7:
            for k in range(c):
                total[k] = ((r[0, k] + r[1, k]) + r[6, k]) + ((r[2, k] + r[3, k])
                                                            + (r[4, k] + r[5, k]))
        else:
            for k in range(c):
                total[k] = ((_px(r, 0, k, pixels) + _px(r, 1, k, pixels))
                            + _px(r, 6, k, pixels)) + ((_px(r, 2, k, pixels)
                                                        + _px(r, 3, k, pixels))
                                                       + (_px(r, 4, k, pixels)
                                                          + _px(r, 5, k, pixels)))
        for s in range(7, pixels, 7):
            if s + 7 <= pixels:
                for k in range(c):
                    total[k] = (((r[s, k] + r[s + 1, k]) + (r[s + 2, k] + r[s + 3, k]))
                                + ((r[s + 4, k] + r[s + 5, k]) + (r[s + 6, k] + total[k])))
            else:
                for k in range(c):
                    total[k] = (((_px(r, s, k, pixels) + _px(r, s + 1, k, pixels))
                                 + (_px(r, s + 2, k, pixels) + _px(r, s + 3, k, pixels)))
                                + ((_px(r, s + 4, k, pixels) + _px(r, s + 5, k, pixels))
                                   + (_px(r, s + 6, k, pixels) + total[k])))
        for k in range(c):
            v = total[k] * scale
            total[k] = v if v > -np.inf else -np.inf  # max(mean, -inf): NaN becomes -inf
    return out
