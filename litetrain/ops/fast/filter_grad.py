"""Compiled (numba) convolution filter gradients summed in OpenBLAS's own order.

:func:`row_taps` is the stride-1 filter gradient the gradient rule builds from shifted
rows (``ops/conv.py``: ``_filter_grad``): per image, per tap ``t``, the product
``XP[s_t : s_t + K]ᵀ · DP`` of the zero-padded input ``XP`` (``[pixels, c]``) and the
zero-padded output gradient ``DP`` (``[K, o]``), which NumPy hands to OpenBLAS one image
at a time (BATCH_MATMUL with ``adj_x``). For the small products of a 3-channel input
OpenBLAS's small-matrix kernel sums each output by one fused multiply-add per ``k``,
``k = 0 .. K-1`` in order, from +0.0, and stores it as it is (a -0.0 stays -0.0).
:func:`row_taps` computes exactly that, per output: ``llvm.fma`` on sixteen output
channels, from +0.0, ``k`` ascending, the input's padding included as multiply-adds by
+0.0 (``0 · inf`` is NaN, and a zero's sign depends on every term); no fast-math,
nothing else fused. The output gradient's padding (11 % of a 32×32 image's terms) adds
``x · (+0.0)``: for a finite image that changes no sum except the sign of one that is
±0 at that point, and a sum that becomes nonzero later comes out the same either way —
so those terms are left out, and an image with a non-finite value is summed over every
term, as is one whose short sums include a -0.0 (only then can the two differ). It
reads the input once per image into a small zero-padded scratch and the output gradient
in place (its padding: a row of zeros), and
keeps 27 sums in registers at once (three runs of nine consecutive ``(tap, channel)``
values per ``k``: a 3×3 filter's taps over three channels), so the FMAs are independent:
throughput, not latency. Whether OpenBLAS really sums in that order for a shape and BLAS
thread count is not assumed: :mod:`litetrain.runtime.row_filter_grad` compares the two
bit for bit before using this; nor is NumPy's order for the SUM over the images that
follows (:func:`image_sums`: from +0.0, image by image, the running sum's NaN kept).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .lanes import V16, mask, masked_load, masked_store, splat

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
RUNS, RUN = 3, 9  # a register tile: three runs of nine consecutive input values
TILE = RUNS * RUN


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, ary).data


def _load_lanes(builder, ptr, lanes):
    """The lanes of ``ptr`` set in the mask ``lanes``, zeros in the others."""
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(V16, [ptr.type, i32, lanes.type, V16]),
        "llvm.masked.load.v16f32.p0")
    return builder.call(fn, [ptr, ir.Constant(i32, 4), lanes, ir.Constant(V16, None)])


@intrinsic
def _tile_sums(typingctx, xs, b0, b1, b2, c, dy, dbase, count, wd, top, left, oh, ow, o,
               width, acc, zeros, q_lo, q_hi, y_lo):
    """``acc[a·16 + l]`` (``a < 27``, ``l < 16``) = Σ over ``count`` grid points ``k =
    y·wd + q``, in order, by FMA from +0.0, of ``xs[k·c + b_r + m] · D[k, l]`` for ``a =
    r·9 + m``, where ``D[k]`` is ``dy[dbase + ((y - top)·ow + q - left)·o :][:width]``
    for ``(y, q)`` inside the ``oh × ow`` grid after ``top``/``left`` zero rows and
    columns, else the sixteen zeros of ``zeros`` (lanes past ``width``: zeros). The
    points run row by row from ``(y_lo, q_lo)``, columns ``q_lo <= q < q_hi``: the whole
    ``wd``-wide grid, or the output gradient's own rows and columns only."""
    def codegen(context, builder, signature, args):
        (xs_, b0_, b1_, b2_, c_, dy_, dbase_, count_, wd_, top_, left_, oh_, ow_, o_,
         width_, acc_, zeros_, q_lo_, q_hi_, y_lo_) = args
        ty = signature.args
        xp, dp = _data(context, builder, ty[0], xs_), _data(context, builder, ty[5], dy_)
        ap, zp = _data(context, builder, ty[15], acc_), _data(context, builder, ty[16], zeros_)
        i64 = ir.IntType(64)
        zero, one = ir.Constant(i64, 0), ir.Constant(i64, 1)
        fma = cgutils.get_or_insert_function(builder.module,
                                             ir.FunctionType(V16, [V16] * 3),
                                             "llvm.fma.v16f32")
        lanes = mask(builder, builder.trunc(width_, ir.IntType(32)))  # once, before the loop
        start = builder.block
        loop = builder.append_basic_block("k")
        done = builder.append_basic_block("done")
        builder.cbranch(builder.icmp_signed(">", count_, zero), loop, done)
        builder.position_at_end(loop)
        k, y, q = (builder.phi(i64) for _ in range(3))
        sums = [builder.phi(V16) for _ in range(TILE)]
        for p, v in ((k, zero), (y, y_lo_), (q, q_lo_)):
            p.add_incoming(v, start)
        for s in sums:
            s.add_incoming(ir.Constant(V16, None), start)
        dy_row, dx_col = builder.sub(y, top_), builder.sub(q, left_)
        inside = builder.and_(builder.icmp_unsigned("<", dy_row, oh_),
                              builder.icmp_unsigned("<", dx_col, ow_))
        at = builder.add(dbase_, builder.mul(
            builder.add(builder.mul(dy_row, ow_), dx_col), o_))
        # outside the grid: the same loads from a row of zeros (a scalar select, not a
        # mask made per k: vector compares would take the FMA pipes' slots)
        drow = builder.select(inside, builder.gep(dp, [at]), zp)
        d = _load_lanes(builder, builder.bitcast(drow, V16.as_pointer()), lanes)
        row = builder.mul(builder.add(builder.mul(y, wd_), q), c_)
        new = []
        for r, base in enumerate((b0_, b1_, b2_)):
            first = builder.add(row, base)
            for m in range(RUN):
                v = builder.load(builder.gep(xp, [builder.add(first, ir.Constant(i64, m))]))
                new.append(builder.call(fma, [splat(builder, v), d, sums[r * RUN + m]]))
        k1, q1 = builder.add(k, one), builder.add(q, one)
        wrap = builder.icmp_signed(">=", q1, q_hi_)
        end = builder.block
        k.add_incoming(k1, end)
        q.add_incoming(builder.select(wrap, q_lo_, q1), end)
        y.add_incoming(builder.select(wrap, builder.add(y, one), y), end)
        for s, v in zip(sums, new, strict=True):
            s.add_incoming(v, end)
        builder.cbranch(builder.icmp_signed("<", k1, count_), loop, done)
        builder.position_at_end(done)
        outs = [builder.phi(V16) for _ in range(TILE)]  # phis first in their block
        for a, out in enumerate(outs):
            out.add_incoming(ir.Constant(V16, None), start)
            out.add_incoming(new[a], end)
            ptr = builder.bitcast(builder.gep(ap, [ir.Constant(i64, a * 16)]),
                                  V16.as_pointer())
            builder.store(out, ptr, align=4)
        return context.get_dummy_value()
    i = types.int64
    return types.void(xs, i, i, i, i, dy, i, i, i, i, i, i, i, i, i, acc, zeros, i, i, i), \
        codegen


_F1 = types.Array(types.float32, 1, "C")
_I1 = types.Array(types.int64, 1, "C", readonly=True)
_I2 = types.Array(types.int64, 2, "C", readonly=True)


@numba.njit(**_JIT)
def _image(scratch, c, dy, b, o, hd, wd, d_top, d_left, oh, ow, bases, dest, acc, zeros, out,
           skip):
    """Image ``b``'s sums into ``out[:, b]``: over the output gradient's own points when
    ``skip``, else over the whole padded grid."""
    if skip:
        count, q_lo, q_hi, y_lo = oh * ow, d_left, d_left + ow, d_top
    else:
        count, q_lo, q_hi, y_lo = hd * wd, 0, wd, 0
    for o0 in range(0, o, 16):
        width = min(16, o - o0)
        for tile in range(bases.shape[0]):
            _tile_sums(scratch, bases[tile, 0], bases[tile, 1], bases[tile, 2], c, dy,
                       b * oh * ow * o + o0, count, wd, d_top, d_left, oh, ow, o, width,
                       acc, zeros, q_lo, q_hi, y_lo)
            for a in range(TILE):
                to = dest[tile, a]
                if to >= 0:
                    t, ci = to // c, to % c
                    for lane in range(width):
                        out[t, b, ci, o0 + lane] = acc[a * 16 + lane]


@numba.njit(**_JIT)
def _has_negative_zero(out, b) -> bool:
    for t in range(out.shape[0]):
        for v in out[t, b].reshape(-1):
            if v == 0 and math.copysign(1.0, v) < 0:
                return True
    return False


@numba.njit([(types.Array(types.float32, 4, "C", readonly=ro), _F1, _I1, _I2, _I2,
              types.Array(types.float32, 4, "C")) for ro in (False, True)], **_JIT)
def row_taps(x, dy, geo, bases, dest, out):
    """``out[t, b, ci, :]`` = Σ over ``k < K`` of ``XP_b[s_t + k, ci] · DP_b[k, :]`` in
    OpenBLAS's small-kernel order (module docstring), for the images ``b`` of ``x``
    (``[n, h, w, c]``) and ``dy`` (``[n, oh, ow, o]`` flattened).

    ``geo``: ``[top, left, hx, wx, d_top, d_left, hd, wd, oh, ow, length]`` — ``XP_b`` is
    image ``b`` with ``top``/``left`` zero rows/columns on an ``hx × wx`` grid, ``DP_b``
    the output gradient on an ``hd × wd`` grid after ``d_top``/``d_left`` zero rows and
    columns (``K = hd·wd``), ``length`` the scratch's floats (the padded image and the
    tiles' reads past it). ``bases[tile, r]``: the first value (a float offset into
    ``XP_b`` at ``k = 0``) of the tile's run ``r``; ``dest[tile, r·9 + m]``: the
    ``t·c + ci`` that sum goes to, or -1 (nothing)."""
    n, h, w, c = x.shape
    top, left, _, wx, d_top, d_left, hd, wd, oh, ow, length = geo
    o = out.shape[3]
    scratch = np.zeros(length, np.float32)
    acc = np.empty(TILE * 16, np.float32)
    zeros = np.zeros(16, np.float32)
    span = w * c
    for b in range(n):
        finite = True
        for r in range(h):
            at = ((r + top) * wx + left) * c
            src = x[b, r].reshape(span)
            for e in range(span):
                v = src[e]
                finite &= v - v == 0  # (NaN for inf and NaN)
                scratch[at + e] = v
        # The output gradient's padding adds x·(+0.0) to every sum: for a finite x,
        # nothing but (at a -0.0 sum) a +0.0 for a -0.0. Summed with and without those
        # terms, two sums are equal once nonzero, and while both are zero the full one
        # is -0.0 only if the other is: they differ only where the short sum ends as
        # -0.0 (a product that underflowed, negative). So with a finite image the
        # padded points are left out, and an image with a -0.0 sum is summed again over
        # every point.
        _image(scratch, c, dy, b, o, hd, wd, d_top, d_left, oh, ow, bases, dest, acc,
               zeros, out, finite)
        if finite and _has_negative_zero(out, b):
            _image(scratch, c, dy, b, o, hd, wd, d_top, d_left, oh, ow, bases, dest, acc,
                   zeros, out, False)
    return out


CHANNELS = 8  # input channels of one register tile (times two vectors of 16 outputs)


@intrinsic
def _block_sums(typingctx, xs, zero, dy, acc, count, b, i, j, oh, ow, h, w, c, y0, x0, sy,
                sx, top, left, rows, cols, ci0, o, o0, w1, w2):
    """``acc[m·32 + v·16 + l]`` (``m < 8``, ``v < 2``, ``l < 16``) = Σ over ``count``
    window rows from ``(b, i, j)`` on (C order over ``[n, oh, ow]``), in order, by FMA
    from +0.0, of ``X[b, i, j, ci0 + m] · D[(b·oh + i)·ow + j, o0 + v·16 + l]``, where
    ``X`` is a tap's window of ``xs`` (``[n, h, w, c]``): ``xs[b, y0 + (i - top)·sy, x0
    + (j - left)·sx]`` for ``top <= i < top + rows`` and ``left <= j < left + cols``,
    else the zeros of ``zero``; ``D`` is ``dy`` (``[·, o]``) with ``w1``/``w2`` lanes of
    each vector read (zeros in the others)."""
    def codegen(context, builder, signature, args):
        (xs_, zero_, dy_, acc_, count_, b_, i_, j_, oh_, ow_, h_, w_, c_, y0_, x0_, sy_, sx_,
         top_, left_, rows_, cols_, ci0_, o_, o0_, w1_, w2_) = args
        ty = signature.args
        xp, zp = _data(context, builder, ty[0], xs_), _data(context, builder, ty[1], zero_)
        dp, ap = _data(context, builder, ty[2], dy_), _data(context, builder, ty[3], acc_)
        i64 = ir.IntType(64)
        zero, one = ir.Constant(i64, 0), ir.Constant(i64, 1)
        fma = cgutils.get_or_insert_function(builder.module,
                                             ir.FunctionType(V16, [V16] * 3),
                                             "llvm.fma.v16f32")
        mul, add, sub = builder.mul, builder.add, builder.sub
        start = builder.block
        loop = builder.append_basic_block("r")
        done = builder.append_basic_block("done")
        builder.cbranch(builder.icmp_signed(">", count_, zero), loop, done)
        builder.position_at_end(loop)
        r, bb, ii, jj = (builder.phi(i64) for _ in range(4))
        sums = [builder.phi(V16) for _ in range(2 * CHANNELS)]
        for p, v in ((r, zero), (bb, b_), (ii, i_), (jj, j_)):
            p.add_incoming(v, start)
        for s in sums:
            s.add_incoming(ir.Constant(V16, None), start)
        wi, wj = sub(ii, top_), sub(jj, left_)
        inside = builder.and_(builder.icmp_unsigned("<", wi, rows_),
                              builder.icmp_unsigned("<", wj, cols_))
        src = add(mul(add(mul(add(mul(bb, h_), add(y0_, mul(wi, sy_))), w_),
                          add(x0_, mul(wj, sx_))), c_), ci0_)
        xrow = builder.select(inside, builder.gep(xp, [src]), zp)
        at = add(mul(add(mul(add(mul(bb, oh_), ii), ow_), jj), o_), o0_)
        d = [masked_load(builder, builder.bitcast(builder.gep(dp, [add(at, ir.Constant(
            i64, 16 * v))]), V16.as_pointer()), width) for v, width in enumerate((w1_, w2_))]
        new = []
        for m in range(CHANNELS):
            x = splat(builder, builder.load(builder.gep(xrow, [ir.Constant(i64, m)])))
            new += [builder.call(fma, [x, d[v], sums[2 * m + v]]) for v in range(2)]
        j1 = add(jj, one)
        wrap_j = builder.icmp_signed(">=", j1, ow_)
        i1 = builder.select(wrap_j, add(ii, one), ii)
        wrap_i = builder.icmp_signed(">=", i1, oh_)
        r1 = add(r, one)
        end = builder.block
        r.add_incoming(r1, end)
        jj.add_incoming(builder.select(wrap_j, zero, j1), end)
        ii.add_incoming(builder.select(wrap_i, zero, i1), end)
        bb.add_incoming(builder.select(wrap_i, add(bb, one), bb), end)
        for s, v in zip(sums, new, strict=True):
            s.add_incoming(v, end)
        builder.cbranch(builder.icmp_signed("<", r1, count_), loop, done)
        builder.position_at_end(done)
        outs = [builder.phi(V16) for _ in range(2 * CHANNELS)]
        for a, out in enumerate(outs):
            out.add_incoming(ir.Constant(V16, None), start)
            out.add_incoming(new[a], end)
            ptr = builder.bitcast(builder.gep(ap, [ir.Constant(i64, a * 16)]),
                                  V16.as_pointer())
            builder.store(out, ptr, align=4)
        return context.get_dummy_value()
    i = types.int64
    return types.void(xs, zero, dy, acc, *(i,) * 22), codegen


def _plus_by_fma(context, builder, signature, args, part_kept: bool):
    """Codegen of ``out[at:][:width] += part[p_at:][:width]`` (args ``out, at, part, p_at,
    width``) as one FMA by 1.0 per lane: the exact sum, and where both are NaN the
    multiplied operand's — ``part``'s when ``part_kept``, else ``out``'s."""
    out_, at_, part_, p_at_, width_ = args
    ty = signature.args
    op = builder.bitcast(builder.gep(_data(context, builder, ty[0], out_), [at_]),
                         V16.as_pointer())
    pp = builder.bitcast(builder.gep(_data(context, builder, ty[2], part_), [p_at_]),
                         V16.as_pointer())
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(V16, [V16] * 3),
                                         "llvm.fma.v16f32")
    kept, other = (pp, op) if part_kept else (op, pp)
    total = builder.call(fma, [masked_load(builder, kept, width_), ir.Constant(V16, [1.0] * 16),
                               masked_load(builder, other, width_)])
    masked_store(builder, total, op, width_)
    return context.get_dummy_value()


@intrinsic
def _add_block(typingctx, out, at, acc, a_at, width):
    """``out[at:at + width] = acc[a_at:][:width] · 1 + out[at:][:width]``, one FMA per
    lane: the value of ``acc + out`` (the product is exact), and where both are NaN,
    ``acc``'s, as OpenBLAS's add of a K block's sums onto C gives it (a product's NaN
    wins over the addend's in this CPU's FMA; the proof checks it)."""
    def codegen(context, builder, signature, args):
        return _plus_by_fma(context, builder, signature, args, part_kept=True)
    return types.void(out, types.int64, acc, types.int64, types.int64), codegen


@numba.njit([(types.Array(types.float32, 1, "C", readonly=ro), _F1, _I1, _I1, _I1, _I1, _I1,
              _I1, _I1, _I1, _I1, _I1, types.Array(types.float32, 3, "C"))
             for ro in (False, True)], **_JIT)
def strided_taps(x, dy, shape, y0, x0, sy, sx, top, left, rows, cols, edges, out):
    """``out[t, ci, :]`` = Σ over the window rows of tap ``t``'s window value times
    ``dy``'s row, in OpenBLAS's level-3 order: per K block ``[edges[k], edges[k + 1])``
    a sum by FMA from +0.0 in row order, the blocks added in order onto +0.0.

    ``x`` is ``[n, h, w, c]`` flattened (``shape``: ``n, h, w, c, oh, ow``; ``c`` a
    multiple of 8), ``dy`` ``[n·oh·ow, o]`` flattened; tap ``t``'s window (``[n, oh, ow,
    c]``) reads ``x[b, y0 + (i - top)·sy, x0 + (j - left)·sx]`` where ``top <= i < top +
    rows`` and ``left <= j < left + cols`` and is zero elsewhere (a STRIDED_SLICE PADded:
    ``runtime/filter_grad.py``'s geometry)."""
    _, h, w, c, oh, ow = shape
    taps, _, o = out.shape
    zero = np.zeros(CHANNELS, np.float32)
    acc = np.empty(2 * CHANNELS * 16, np.float32)
    plane = oh * ow
    out[...] = np.float32(0.0)
    flat = out.reshape(-1)
    for k in range(edges.size - 1):  # a block's rows of x and dy stay in cache
        r0 = edges[k]
        b, rem = r0 // plane, r0 % plane
        for t in range(taps):
            for ci0 in range(0, c, CHANNELS):
                for o0 in range(0, o, 32):
                    w1, w2 = min(16, o - o0), max(0, min(16, o - o0 - 16))
                    _block_sums(x, zero, dy, acc, edges[k + 1] - r0, b, rem // ow,
                                rem % ow, oh, ow, h, w, c, y0[t], x0[t], sy[t], sx[t], top[t],
                                left[t], rows[t], cols[t], ci0, o, o0, w1, w2)
                    for m in range(CHANNELS):
                        at = (t * c + ci0 + m) * o + o0
                        _add_block(flat, at, acc, m * 32, w1)
                        if w2:
                            _add_block(flat, at + 16, acc, m * 32 + 16, w2)
    return out


@intrinsic
def _add_onto(typingctx, out, at, part, p_at, width):
    """``out[at:at + width] = out[at:][:width] · 1 + part[p_at:][:width]``, one FMA per
    lane: the value of ``out + part``, and where both are NaN, ``out``'s (the running
    sum's), as NumPy's float32 add reduction keeps it (a product's NaN wins over the
    addend's in this CPU's FMA; the proof checks it)."""
    def codegen(context, builder, signature, args):
        return _plus_by_fma(context, builder, signature, args, part_kept=False)
    return types.void(out, types.int64, part, types.int64, types.int64), codegen


@numba.njit([(types.Array(types.float32, 4, "C", readonly=True),
              types.Array(types.float32, 3, "C"))], **_JIT)
def image_sums(parts, out):
    """``out[t] = ((+0.0 + parts[t, 0]) + parts[t, 1]) + …`` over the images (axis 1),
    in order, in float32: NumPy's ``np.add.reduce(parts, axis=1)`` (its identity first,
    then each image's block added to the running sum)."""
    taps, n, c, o = parts.shape
    size = c * o
    flat, src = out.reshape(-1), parts.reshape(-1)
    flat[:] = np.float32(0.0)
    for t in range(taps):
        for b in range(n):
            for e0 in range(0, size, 16):
                _add_onto(flat, t * size + e0, src, (t * n + b) * size + e0,
                          min(16, size - e0))
    return out
