"""Compiled (numba) passes of a training batch norm whose centred values ``c = x - m``,
output ``y = (c * s) + b``, max-pooled output's gradient ``dy`` are never stored, but
recomputed where they are read (the fused steps of :mod:`litetrain.runtime.bn_fusion`):

* :func:`centred_square_sums`: ``Σ c²`` per channel (the variance's sum);
* :func:`centred_affine`: ``y``; :func:`centred_affine_max_pool`: ``max_pool(y)`` over
  tiling ``kh × kw`` windows (``y`` itself not written);
* :func:`centred_sums`: ``Σ dy`` and ``Σ dy · c`` (batch norm's two gradient sums);
  :func:`pooled_sums`: the same with ``dy`` the max-pool gradient of ``y``;
* :func:`centred_grad`: ``((dy * s2) + ((c * k1) + k0)) [* cast(xm > t)]`` (batch norm's
  input gradient, through the ReLU before it), and its column sums (the convolution's
  bias gradient); :func:`pooled_grad`: the same with ``dy`` the max-pool gradient;
* :func:`column_sums`: ``Σ p`` per channel, the order every sum above uses (what
  ``runtime/bn_fusion.py`` proves against BLAS per shape).

Operands are flat float32 arrays: ``[rows, c]`` (or ``[n, h, w, c]``) in C order, per-
channel vectors of ``c``. Each value is the NumPy steps' float32 operations in their
order, one rounding each, no fast-math and no fused multiply-add: a recomputed ``c`` or
``y`` has the stored one's bits; ``dy`` is ``dp * 1.0`` at the window's first tap
(row-major) equal to its maximum, ``dp * 0.0`` elsewhere (NaN equals nothing), as
``runtime/pool_grad.py``; a maximum is taken tap by tap from the window's first tap,
keeping ``m`` when it is NaN or greater than the tap, else the tap (NumPy's
``np.maximum`` order, ``ops/fast/train.py: max_pool``). Sums over rows follow OpenBLAS's
SGEMV order for ``ones @ p`` (what NumPy's sums over leading axes run, ``ops/reduce.py``):
rows in groups of eight, each group summed in order from its first row, each group's sum
added to a total from +0.0, the total added to +0.0; ``rows`` a multiple of eight.
(As in every compiled kernel here, a NaN made from two NaN operands of a commutative
operation may carry either one's sign: LLVM may order such operands either way.)
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .lanes import FLOATS16, V16
from .lanes import add16 as _add
from .lanes import load16 as _load
from .lanes import mul16 as _mul
from .lanes import splat16 as _splat
from .lanes import store16 as _store
from .lanes import sub16 as _sub

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F32 = types.float32
_I = types.int64
_R = types.Array(_F32, 1, "C", readonly=True)  # read-only typed: writable arrays pass too
_W = types.Array(_F32, 1, "C")


def _select01(builder, cond):
    return builder.select(cond, ir.Constant(V16, [1.0] * 16), ir.Constant(V16, [0.0] * 16))


@intrinsic
def _eq01(typingctx, a, b):
    """1.0 where ``a == b`` (NaN equals nothing), else 0.0."""
    def codegen(context, builder, signature, args):
        return _select01(builder, builder.fcmp_ordered("==", *args))
    return FLOATS16(FLOATS16, FLOATS16), codegen


@intrinsic
def _gt01(typingctx, a, b):
    """1.0 where ``a > b`` (false for NaN), else 0.0: a bool cast to float32."""
    def codegen(context, builder, signature, args):
        return _select01(builder, builder.fcmp_ordered(">", *args))
    return FLOATS16(FLOATS16, FLOATS16), codegen


@intrinsic
def _max_tap(typingctx, m, v):
    """``m`` where ``m`` is NaN or ``m > v``, else ``v`` (``np.maximum(m, v)``)."""
    def codegen(context, builder, signature, args):
        m, v = args
        keep = builder.or_(builder.fcmp_unordered("uno", m, m),
                           builder.fcmp_ordered(">", m, v))
        return builder.select(keep, m, v)
    return FLOATS16(FLOATS16, FLOATS16), codegen


# --- sums in BLAS's order --------------------------------------------------------------
# Each kernel walks its rows in groups of eight: a group's sum starts from its first
# row's value (no +0.0), adds the seven others in order, and is added to the total.

@numba.njit(**_JIT)
def _finish(total, c, out):
    zero = np.float32(0.0)
    for ch in range(c):
        out[ch] = zero + total[ch]


@numba.njit([(_R, _I, _I, _W)], **_JIT)
def column_sums(p, rows, c, out):
    """``ones(rows) @ p[rows, c]`` in the order of the module docstring."""
    total = np.zeros(c + 16, np.float32)
    for g in range(rows // 8):
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            o = g * 8 * c + cc
            acc = _load(p, o, width)
            for _ in range(7):
                o += c
                acc = _add(acc, _load(p, o, width))
            _store(total, cc, _add(_load(total, cc, width), acc), width)
    _finish(total, c, out)
    return out


@numba.njit([(_R, _R, _I, _I, _W)], **_JIT)
def centred_square_sums(x, m, rows, c, out):
    """``Σ (x - m)²`` per channel over ``rows`` rows of ``x``."""
    total = np.zeros(c + 16, np.float32)
    for g in range(rows // 8):
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv = _load(m, cc, width)
            o = g * 8 * c + cc
            d = _sub(_load(x, o, width), mv)
            acc = _mul(d, d)
            for _ in range(7):
                o += c
                d = _sub(_load(x, o, width), mv)
                acc = _add(acc, _mul(d, d))
            _store(total, cc, _add(_load(total, cc, width), acc), width)
    _finish(total, c, out)
    return out


@numba.njit([(_R, _R, _R, _I, _I, _I, _I, _W, _W)], **_JIT)
def centred_sums(dy, x, m, rows, c, dyo, xo, out_dy, out_dyc):
    """``Σ dy`` and ``Σ dy · (x - m)`` per channel (``dy``'s rows from ``dyo``,
    ``x``'s from ``xo``, in elements)."""
    t1, t2 = np.zeros(c + 16, np.float32), np.zeros(c + 16, np.float32)
    for g in range(rows // 8):
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv = _load(m, cc, width)
            o = g * 8 * c + cc
            d = _load(dy, dyo + o, width)
            a1, a2 = d, _mul(d, _sub(_load(x, xo + o, width), mv))
            for _ in range(7):
                o += c
                d = _load(dy, dyo + o, width)
                a1 = _add(a1, d)
                a2 = _add(a2, _mul(d, _sub(_load(x, xo + o, width), mv)))
            _store(t1, cc, _add(_load(t1, cc, width), a1), width)
            _store(t2, cc, _add(_load(t2, cc, width), a2), width)
    _finish(t1, c, out_dy)
    _finish(t2, c, out_dyc)


# --- elementwise --------------------------------------------------------------------------

@numba.njit([(_R, _R, _R, _R, _I, _I, _W)], **_JIT)
def centred_affine(x, m, s, b, rows, c, out):
    """``((x - m) * s) + b``."""
    for r0 in range(0, rows, 8):  # tiles of eight rows: the vectors loaded once a tile
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv, sv, bv = _load(m, cc, width), _load(s, cc, width), _load(b, cc, width)
            for r in range(r0, min(r0 + 8, rows)):
                o = r * c + cc
                _store(out, o, _add(_mul(_sub(_load(x, o, width), mv), sv), bv), width)
    return out


@numba.njit([(_R, _R, _R, _R, _R, _R, _R, _F32, types.boolean, _I, _I, _W, types.boolean,
              _W)], **_JIT)
def centred_grad(dy, x, m, s2, k1, k0, xm, t, masked, rows, c, out, summed, sums):
    """Batch norm's input gradient ``((dy * s2) + (((x - m) * k1) + k0)) [* cast(xm >
    t)]`` from a stored ``dy`` (``out`` may be ``dy``, ``x`` or ``xm``: each element is
    read before it is written); with ``summed``, also its column sums into ``sums``
    (the convolution's bias gradient)."""
    tv = _splat(t)
    total = np.zeros(c + 16, np.float32)
    for r0 in range(0, rows, 8):
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv, s2v = _load(m, cc, width), _load(s2, cc, width)
            k1v, k0v = _load(k1, cc, width), _load(k0, cc, width)
            acc = tv
            for r in range(r0, min(r0 + 8, rows)):
                o = r * c + cc
                cen = _sub(_load(x, o, width), mv)
                g = _add(_mul(_load(dy, o, width), s2v), _add(_mul(cen, k1v), k0v))
                if masked:
                    g = _mul(g, _gt01(_load(xm, o, width), tv))
                _store(out, o, g, width)
                acc = g if r == r0 else _add(acc, g)
            if summed:
                _store(total, cc, _add(_load(total, cc, width), acc), width)
    if summed:
        _finish(total, c, sums)
    return out


# --- through a max pool over tiling windows ----------------------------------------------

@numba.njit(inline="always", **_JIT)
def _centred_affine_max_pool(x, m, s, b, n, h, w, c, kh, kw, out):
    """``max_pool(((x - m) * s) + b)`` over tiling ``kh × kw`` windows of the
    ``[n, h, w, c]`` ``x`` (``h``, ``w`` multiples of ``kh``, ``kw``)."""
    oh, ow = h // kh, w // kw
    for i in range(n * oh):
        top = i * kh * w  # the window row's first pixel
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv, sv, bv = _load(m, cc, width), _load(s, cc, width), _load(b, cc, width)
            for q in range(ow):
                first = (top + q * kw) * c + cc
                acc = _add(_mul(_sub(_load(x, first, width), mv), sv), bv)
                for di in range(kh):
                    for dj in range(kw):
                        if di or dj:
                            o = first + (di * w + dj) * c
                            acc = _max_tap(acc, _add(_mul(_sub(_load(x, o, width), mv), sv), bv))
                _store(out, (i * ow + q) * c + cc, acc, width)
    return out


@numba.njit([(_R, _R, _R, _R, _I, _I, _I, _I, _I, _I, _W)], **_JIT)
def centred_affine_max_pool(x, m, s, b, n, h, w, c, kh, kw, out):
    """:func:`_centred_affine_max_pool` (2 × 2 windows: with their taps unrolled)."""
    if kh == 2 and kw == 2:
        return _centred_affine_max_pool(x, m, s, b, n, h, w, c, 2, 2, out)
    return _centred_affine_max_pool(x, m, s, b, n, h, w, c, kh, kw, out)


@numba.njit(inline="always", **_JIT)
def _pooled_grad(x, m, s, b, p, dp, s2, k1, k0, xm, t, masked, n, h, w, c, kh, kw, out,
                 summed, sums, hp, wp, pt, pl):
    """:func:`centred_grad` of the max-pool gradient ``dy`` of ``y = ((x - m) * s) + b``
    (``p``, ``dp``: the ``[n, h/kh, w/kw, c]`` pooled output and its cotangent): ``dy``
    is ``dp * 1.0`` at the window's first tap equal to ``p``, ``dp * 0.0`` at the others.
    With ``summed``, also the column sums of the result into ``sums``, each window row's
    from ``out`` once written (``kh·w`` a multiple of eight: groups never straddle).
    ``out`` is ``[n, hp, wp, c]`` with the result at rows ``pt…`` and columns ``pl…``
    (a PAD of it: the caller sets the border; with a border, ``w`` a multiple of eight)."""
    total = np.zeros(c + 16, np.float32)
    oh, ow = h // kh, w // kw
    tv = _splat(t)
    zero = _splat(np.float32(0.0))
    for i in range(n * oh):
        top = i * kh * w
        image = i // oh
        first = (image * hp + (i - image * oh) * kh + pt) * wp + pl  # out's first pixel
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv, sv, bv = _load(m, cc, width), _load(s, cc, width), _load(b, cc, width)
            s2v, k1v, k0v = _load(s2, cc, width), _load(k1, cc, width), _load(k0, cc, width)
            for q in range(ow):
                wo = (i * ow + q) * c + cc
                pv, dpv = _load(p, wo, width), _load(dp, wo, width)
                before = zero
                for di in range(kh):
                    for dj in range(kw):
                        o = (top + di * w + q * kw + dj) * c + cc
                        cen = _sub(_load(x, o, width), mv)
                        e = _eq01(_add(_mul(cen, sv), bv), pv)
                        dy = _mul(dpv, _mul(e, _eq01(before, zero)))  # hit: 1.0 or 0.0
                        before = _add(before, e)
                        g = _add(_mul(dy, s2v), _add(_mul(cen, k1v), k0v))
                        if masked:
                            g = _mul(g, _gt01(_load(xm, o, width), tv))
                        _store(out, (first + di * wp + q * kw + dj) * c + cc, g, width)
        if summed:
            for g8 in range(kh * w // 8):
                di = g8 * 8 // w
                for cc in range(0, c, 16):
                    width = min(16, c - cc)
                    o = (first + di * wp + g8 * 8 - di * w) * c + cc
                    acc = _load(out, o, width)
                    for _ in range(7):
                        o += c
                        acc = _add(acc, _load(out, o, width))
                    _store(total, cc, _add(_load(total, cc, width), acc), width)
    if summed:
        _finish(total, c, sums)
    return out


@numba.njit([(_R, _R, _R, _R, _R, _R, _R, _R, _R, _R, _F32, types.boolean, _I, _I, _I, _I,
              _I, _I, _W, types.boolean, _W, _I, _I, _I, _I)], **_JIT)
def pooled_grad(x, m, s, b, p, dp, s2, k1, k0, xm, t, masked, n, h, w, c, kh, kw, out,
                summed, sums, hp, wp, pt, pl):
    """:func:`_pooled_grad` (2 × 2 windows: with their taps unrolled)."""
    if kh == 2 and kw == 2:
        return _pooled_grad(x, m, s, b, p, dp, s2, k1, k0, xm, t, masked, n, h, w, c, 2, 2,
                            out, summed, sums, hp, wp, pt, pl)
    return _pooled_grad(x, m, s, b, p, dp, s2, k1, k0, xm, t, masked, n, h, w, c, kh, kw, out,
                        summed, sums, hp, wp, pt, pl)


@numba.njit(inline="always", **_JIT)
def _pooled_sums(x, m, s, b, p, dp, n, h, w, c, kh, kw, out_dy, out_dyc):
    """:func:`centred_sums` of the max-pool gradient ``dy`` of ``y`` (as
    :func:`pooled_grad`): each window row's ``dy`` made into a scratch block, then
    summed with ``x`` (``kh·w`` a multiple of eight: groups never straddle blocks)."""
    oh, ow = h // kh, w // kw
    block = np.empty(kh * w * c + 16, np.float32)
    t1, t2 = np.zeros(c + 16, np.float32), np.zeros(c + 16, np.float32)
    zero = _splat(np.float32(0.0))
    for i in range(n * oh):
        top = i * kh * w
        for cc in range(0, c, 16):
            width = min(16, c - cc)
            mv, sv, bv = _load(m, cc, width), _load(s, cc, width), _load(b, cc, width)
            for q in range(ow):
                wo = (i * ow + q) * c + cc
                pv, dpv = _load(p, wo, width), _load(dp, wo, width)
                before = zero
                for di in range(kh):
                    for dj in range(kw):
                        pixel = di * w + q * kw + dj
                        y = _add(_mul(_sub(_load(x, (top + pixel) * c + cc, width), mv), sv), bv)
                        e = _eq01(y, pv)
                        _store(block, pixel * c + cc, _mul(dpv, _mul(e, _eq01(before, zero))),
                               width)
                        before = _add(before, e)
        for g in range(kh * w // 8):
            for cc in range(0, c, 16):
                width = min(16, c - cc)
                mv = _load(m, cc, width)
                o = g * 8 * c + cc
                d = _load(block, o, width)
                a1, a2 = d, _mul(d, _sub(_load(x, top * c + o, width), mv))
                for _ in range(7):
                    o += c
                    d = _load(block, o, width)
                    a1 = _add(a1, d)
                    a2 = _add(a2, _mul(d, _sub(_load(x, top * c + o, width), mv)))
                _store(t1, cc, _add(_load(t1, cc, width), a1), width)
                _store(t2, cc, _add(_load(t2, cc, width), a2), width)
    _finish(t1, c, out_dy)
    _finish(t2, c, out_dyc)


@numba.njit([(_R, _R, _R, _R, _R, _R, _I, _I, _I, _I, _I, _I, _W, _W)], **_JIT)
def pooled_sums(x, m, s, b, p, dp, n, h, w, c, kh, kw, out_dy, out_dyc):
    """:func:`_pooled_sums` (2 × 2 windows: with their taps unrolled)."""
    if kh == 2 and kw == 2:
        _pooled_sums(x, m, s, b, p, dp, n, h, w, c, 2, 2, out_dy, out_dyc)
    else:
        _pooled_sums(x, m, s, b, p, dp, n, h, w, c, kh, kw, out_dy, out_dyc)
